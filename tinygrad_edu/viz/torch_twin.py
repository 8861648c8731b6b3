"""The same visualisations for PyTorch models: every viz function accepts a torch.nn.Module.

`framework_of(model)` hands a PyTorch model to `TorchFramework`, so `Trace` captures its layers
with torch's own `register_forward_hook` and `retain_grad()`, and CAM, Grad-CAM, saliency,
activations and filter visualisation run unchanged. A scratch model and its twin with the same
weights give the same maps, which the tests check. tinygrad_edu never imports torch: this adapter
is handed the torch module that the caller's model already belongs to.

    twin = models.to_torch(model)
    grad_cam(twin, x)            # == grad_cam(model, x) up to float32 rounding
"""
from __future__ import annotations

import numpy as np


class TorchFramework:
    """PyTorch's tensors, layers and no_grad, for `Trace`."""

    name = "torch"

    def __init__(self, torch):
        self.torch = torch  # the module of the caller's model (from sys.modules), never imported
        self.conv2d, self.linear = torch.nn.Conv2d, torch.nn.Linear

    def tensor(self, array: np.ndarray, requires_grad: bool = False):
        return self.torch.tensor(np.asarray(array), requires_grad=requires_grad)

    def is_tensor(self, value) -> bool:
        return isinstance(value, self.torch.Tensor)

    def numpy(self, t) -> np.ndarray:
        return t.detach().cpu().numpy()

    def grad(self, t) -> np.ndarray | None:
        return None if t.grad is None else t.grad.detach().cpu().numpy()

    def no_grad(self):
        return self.torch.no_grad()
