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
    "torch.FloatTensor": "use torch.tensor(data, dtype=torch.float32), or x.float()",
    "torch.LongTensor": "use torch.tensor(data, dtype=torch.int64), or x.long()",
    "torch.cuda.FloatTensor": "tinygrad_edu runs on the CPU; use torch.tensor(data)",
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
    "torchvision.datasets.CIFAR100": "not available offline; use ImageFolder",
    "torchvision.io": "open images with PIL (datasets.ImageFolder's loader does)",
    "torchvision.transforms.v2": "use tinygrad_edu.vision.transforms (the v1 names)",
    "torch.utils.data.DistributedSampler": "train in one process",
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


def module_getattr(module: str):
    """A module-level `__getattr__` for `module`: names it lacks raise `missing(module, name)`.

        __getattr__ = module_getattr(__name__)
    """
    def __getattr__(name: str):
        raise missing(module, name)
    return __getattr__
