"""Look inside a model: every layer's output shape, and the activations of one named layer.

`Trace` runs one forward pass with a hook on every sub-module and keeps each layer's input and
output, so that CAM, Grad-CAM, saliency and filter visualisation can read activations and
gradients at any layer. It works on tinygrad_edu models and, through `torch_twin`, on their
PyTorch twins (same layer names, same code).

    list_layers(model, (1, 28, 28))            # [('features.conv1', (1, 32, 28, 28)), ...]
    acts = layer_activations(model, x, "features.relu1")     # (N, 32, 28, 28)
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from .. import autograd
from ..nn import Conv2d, Linear, Module
from ..tensor import Tensor


class VizError(ValueError):
    """A request the model cannot answer (unknown layer, bad target, head without CAM...)."""


# ---- frameworks: what Trace needs from tinygrad_edu or PyTorch ------------------------------

class ScratchFramework:
    """tinygrad_edu's tensors, layers and no_grad, for `Trace`."""

    name = "tinygrad_edu"
    conv2d, linear = Conv2d, Linear

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> Tensor:
        return Tensor(array, requires_grad=requires_grad)

    def is_tensor(self, value) -> bool:
        return isinstance(value, Tensor)

    def numpy(self, t: Tensor) -> np.ndarray:
        return t.array

    def grad(self, t: Tensor) -> np.ndarray | None:
        return None if t.grad is None else t.grad.array

    def no_grad(self):
        return autograd.no_grad()


def framework_of(model):
    """The framework adapter of `model`: tinygrad_edu, or PyTorch for a `torch.nn.Module`."""
    if isinstance(model, Module):
        return ScratchFramework()
    if any(c.__module__.startswith("torch.nn") for c in type(model).__mro__):
        from .torch_twin import TorchFramework
        return TorchFramework(sys.modules["torch"])  # loaded by whoever built the model
    raise TypeError(f"viz: expected a tinygrad_edu.nn.Module or a torch.nn.Module, "
                    f"got {type(model).__name__}")


def as_batch(x) -> np.ndarray:
    """A Tensor, torch tensor or array of shape (N, C, H, W) or (C, H, W) -> float32 (N, C, H, W)."""
    if isinstance(x, Tensor):
        x = x.array
    elif hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]  # (C, H, W) -> (1, C, H, W)
    if x.ndim != 4:
        raise VizError(f"viz: expected images (N, C, H, W) or one image (C, H, W), "
                       f"got shape {x.shape}")
    return x


# ---- layers by name --------------------------------------------------------------------------

def layer_names(model) -> list[str]:
    """Dotted names of every sub-module, in `named_modules` order."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model, name: str):
    """The sub-module called `name`; an unknown name raises a VizError listing the valid ones."""
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise VizError(f"{type(model).__name__} has no layer named {name!r}; valid names: "
                       f"{', '.join(layer_names(model))}")
    return modules[name]


def conv_layer_names(model) -> list[str]:
    """Dotted names of the Conv2d layers, in `named_modules` order."""
    conv = framework_of(model).conv2d
    return [name for name, m in model.named_modules() if isinstance(m, conv)]


def default_layer(model) -> str:
    """The name of the last Conv2d: the usual Grad-CAM layer (finest semantic feature maps)."""
    convs = conv_layer_names(model)
    if not convs:
        raise VizError(f"{type(model).__name__} has no Conv2d layer; pass a layer name "
                       f"explicitly (valid names: {', '.join(layer_names(model))})")
    return convs[-1]


# ---- outputs and targets ---------------------------------------------------------------------

def select_output(out, output: int | str | None = None):
    """The head `output` (index or name) of a model's tuple / namedtuple / dict output.

    A plain tensor output is its own head; `None` picks the first head of a tuple or dict.
    """
    if isinstance(out, dict):
        keys = list(out)
        if output is None:
            return out[keys[0]]
        if isinstance(output, int) and 0 <= output < len(keys):
            return out[keys[output]]
        if output in out:
            return out[output]
        raise VizError(f"the model returns a dict with heads {keys}; got output={output!r}")
    if isinstance(out, (tuple, list)):
        fields = getattr(out, "_fields", ())
        if output is None:
            return out[0]
        if isinstance(output, int) and -len(out) <= output < len(out):
            return out[output]
        if output in fields:
            return getattr(out, output)
        names = f" named {list(fields)}" if fields else ""
        raise VizError(f"the model returns {len(out)} outputs{names}; got output={output!r}")
    if output not in (None, 0):
        raise VizError(f"the model returns a single tensor; output={output!r} does not apply")
    return out


def resolve_targets(target, logits: np.ndarray) -> np.ndarray:
    """One class per image: the predicted class if `target` is None, else an int or N ints."""
    n, classes = logits.shape
    if target is None:
        return logits.argmax(1)
    t = np.broadcast_to(np.asarray(target), (n,)) if np.ndim(target) == 0 else np.asarray(target)
    if t.shape != (n,) or t.dtype.kind not in "iu":
        raise VizError(f"target must be None, one class or one class per image ({n} ints), "
                       f"got {target!r}")
    if t.min() < 0 or t.max() >= classes:
        raise VizError(f"target classes must be in 0..{classes - 1}, got {t.tolist()}")
    return t.astype(np.int64)


# ---- tracing ---------------------------------------------------------------------------------

@contextlib.contextmanager
def eval_frozen(model) -> Iterator[None]:
    """eval() and frozen parameters while inside, restored after: explaining a model must neither
    update BatchNorm statistics nor leave gradients on its weights."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for m, _ in modes:
            m.training = False
        for p, _ in params:
            p.requires_grad_(False)
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in params:
            p.requires_grad_(flag)


class Trace:
    """One forward pass of `model` on `x` with every sub-module's last input and output kept.

    With `grad=True` the input requires grad and the layers named in `retain` keep theirs, so
    after `backward(seed)` (from the selected output or from a layer) `grad(name)` and
    `input_grad()` hold d(objective)/d(layer output) and d(objective)/d(input). A module called
    several times in one forward keeps its last call.
    """

    def __init__(self, model, x, retain: Sequence[str] = (), output: int | str | None = None,
                 grad: bool = True):
        self.model, self.fw, self.output_key = model, framework_of(model), output
        modules = [(n, m) for n, m in model.named_modules() if n]
        for name in retain:
            get_layer(model, name)
        self.modules = dict(modules)
        self.calls: dict[str, tuple] = {}  # name -> (inputs, output) of its last call
        self.order: list[str] = []  # names in the order their forward finished
        self.x = self.fw.tensor(as_batch(x), requires_grad=grad)
        handles = [m.register_forward_hook(self._hook(n, n in retain)) for n, m in modules]
        try:
            with eval_frozen(model), (contextlib.nullcontext() if grad else self.fw.no_grad()):
                self.raw_output = model(self.x)
        finally:
            for h in handles:
                h.remove()

    def _hook(self, name: str, retain: bool):
        def hook(module, inputs, out):
            if retain and self.fw.is_tensor(out) and out.requires_grad:
                out.retain_grad()
            self.calls[name] = (inputs, out)
            self.order.append(name)
        return hook

    # -- reading values
    def head(self):
        """The selected output tensor (the logits that targets index)."""
        return select_output(self.raw_output, self.output_key)

    def logits(self) -> np.ndarray:
        out = self.head()
        if not self.fw.is_tensor(out) or out.ndim != 2:
            shape = getattr(out, "shape", type(out).__name__)
            raise VizError(f"expected the model's output to be class scores (N, classes), got "
                           f"{shape}; choose a head with output=NAME_OR_INDEX")
        return self.fw.numpy(out)

    def _call(self, name: str) -> tuple:
        get_layer(self.model, name)
        if name not in self.calls:
            raise VizError(f"layer {name!r} was not called in the forward pass of "
                           f"{type(self.model).__name__}")
        return self.calls[name]

    def output_tensor(self, name: str):
        out = self._call(name)[1]
        if not self.fw.is_tensor(out):
            raise VizError(f"layer {name!r} returns a {type(out).__name__}, not one tensor")
        return out

    def output(self, name: str) -> np.ndarray:
        """The output of layer `name` as a numpy array."""
        return self.fw.numpy(self.output_tensor(name))

    def input(self, name: str) -> np.ndarray:
        """The first input of layer `name` as a numpy array."""
        return self.fw.numpy(self._call(name)[0][0])

    # -- gradients
    def backward(self, seed: np.ndarray, layer: str | None = None) -> None:
        """Back-propagate `seed` (shaped like the output, or like `layer`'s output)."""
        start = self.head() if layer is None else self.output_tensor(layer)
        start.backward(self.fw.tensor(seed.astype(np.float32)))

    def backward_from_targets(self, target) -> np.ndarray:
        """Back-propagate the sum over images of logit[n, target[n]]; return the targets used.

        Images do not interact in eval mode, so one pass gives every image its own gradient.
        """
        logits = self.logits()
        targets = resolve_targets(target, logits)
        seed = np.zeros_like(logits)
        seed[np.arange(len(targets)), targets] = 1.0  # one-hot: d(sum_n y[n, t_n]) / dy
        self.backward(seed)
        return targets

    def grad(self, name: str) -> np.ndarray:
        g = self.fw.grad(self.output_tensor(name))
        if g is None:
            raise VizError(f"layer {name!r} received no gradient: its output does not "
                           f"influence the chosen output")
        return g

    def input_grad(self) -> np.ndarray:
        return self.fw.grad(self.x)


def feature_layer_output(trace: Trace, name: str, method: str) -> np.ndarray:
    """Layer `name`'s output, which must be a feature map (N, C, H, W), for `method`'s error."""
    out = trace.output(name)
    if out.ndim != 4:
        raise VizError(f"{method}: layer {name!r} outputs shape {out.shape}; it needs a feature "
                       f"map (N, C, H, W) such as a Conv2d's (conv layers: "
                       f"{', '.join(conv_layer_names(trace.model))})")
    return out


# ---- public API ------------------------------------------------------------------------------

def _shape(value):
    """Shape of a tensor, or of each tensor in a tuple/list/dict output."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(_shape(v) for v in value)
    return tuple(value.shape) if hasattr(value, "shape") else None


def list_layers(model, input_shape: Sequence[int]) -> list[tuple[str, tuple | None]]:
    """Every layer's dotted name and output shape for an input of `input_shape`.

    `input_shape` is (C, H, W) or (N, C, H, W); layers the forward pass never calls get None.
    >>> list_layers(models.get_model("cnn2"), (1, 28, 28))[0]
    ('features', (1, 64, 7, 7))
    """
    shape = tuple(input_shape)
    x = np.zeros(shape if len(shape) == 4 else (1, *shape), np.float32)
    trace = Trace(model, x, grad=False)
    return [(name, _shape(trace.calls[name][1]) if name in trace.calls else None)
            for name in layer_names(model)]


def predict(model, x, output: int | str | None = None) -> np.ndarray:
    """The class scores (N, classes) of the chosen head, without gradients."""
    return Trace(model, x, output=output, grad=False).logits()


def layer_activations(model, x, layer: str | None = None) -> np.ndarray:
    """The output (N, C, H, W) of `layer` (default: the last Conv2d) for images `x`."""
    layer = layer or default_layer(model)
    return feature_layer_output(Trace(model, x, grad=False), layer, "layer_activations")
