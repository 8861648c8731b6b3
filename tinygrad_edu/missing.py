"""What to do instead, for PyTorch names tinygrad_edu does not have.

The packages' module-level `__getattr__` calls `missing(module, name)`, so that
`tg.compile(model)` fails with "tinygrad_edu has no torch.compile; remove it" rather than a bare
AttributeError. docs/porting.md lists the same names.
"""
from __future__ import annotations

HINTS = {
    "torch.compile": "remove it (tinygrad_edu runs eagerly)",
    "torch.jit": "remove the scripting / tracing; call the model directly",
    "torch.autocast": "remove it; tinygrad_edu computes in float32 (or float64)",
    "torch.amp": "remove the mixed-precision code; tinygrad_edu computes in float32",
    "torch.distributed": "train in one process",
    "torch.hub": "build the model from models/ or torchvision-style code instead",
    "torch.sparse": "use dense tensors",
    "torch.fft": "use numpy.fft on tensor.numpy() (no gradient)",
    "torch.linalg": "use matmul / norm, or numpy.linalg on tensor.numpy() (no gradient)",
    "torch.set_float32_matmul_precision": "remove it; matmuls run in the tensors' dtype",
    "torch.inference_mode": "use tinygrad_edu.no_grad()",
    "torch.nn.DataParallel": "use the model itself (CPU, one process)",
    "torch.nn.parallel": "use the model itself (CPU, one process)",
    "torch.nn.LSTM": "not implemented yet; build it from nn.Linear and tensor ops",
    "torch.nn.GRU": "not implemented yet; build it from nn.Linear and tensor ops",
    "torch.nn.RNN": "not implemented yet; build it from nn.Linear and tensor ops",
    "torch.nn.Transformer": "not implemented yet; build it from nn.Linear, LayerNorm and softmax",
    "torch.nn.MultiheadAttention": "not implemented yet; write it with matmul and softmax",
    "torch.nn.Conv3d": "not implemented; use Conv2d",
    "torch.nn.MaxPool1d": "use F.max_pool2d on x.unsqueeze(2)",
    "torch.nn.functional.scaled_dot_product_attention": "write softmax(q @ k.T / sqrt(d)) @ v",
    "torch.nn.functional.grid_sample": "not implemented",
    "torchvision.models": "use the networks in models/ (LeNet-5, ResNet-18, ...)",
    "torchvision.datasets.CIFAR10": "not available offline; use ImageFolder on a folder of "
                                    "images",
}


def missing(module: str, name: str) -> AttributeError:
    """The AttributeError for `module.name`, with the advice of HINTS where there is some."""
    torch_name = module.replace("tinygrad_edu.vision", "torchvision").replace(
        "tinygrad_edu", "torch") + f".{name}"
    hint = next((h for k, h in HINTS.items() if torch_name == k or torch_name.startswith(k + ".")),
                None)
    if hint is not None:
        return AttributeError(f"tinygrad_edu has no {torch_name}; {hint}")
    return AttributeError(f"module {module!r} has no attribute {name!r} (tinygrad_edu has no "
                          f"{torch_name}; docs/porting.md lists what is supported)")
