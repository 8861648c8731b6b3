"""Devices, honestly: tinygrad_edu runs on the CPU only, like `torch.device('cpu')`.

`device('cpu')` and `.to('cpu')` work; asking for 'cuda', 'mps' or any other device raises one
sentence saying so; `cuda.is_available()`, `backends.mps.is_available()` and
`accelerator.is_available()` return False, so a PyTorch script takes its CPU branch.

    dev = tg.device("cuda" if tg.cuda.is_available() else "cpu")   # device(type='cpu')
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np


class device:
    """A device name: only 'cpu' (optionally 'cpu:0') exists here.

        tg.device("cpu") == "cpu"   # True
    """

    __slots__ = ("index", "type")

    def __init__(self, type: str | device = "cpu", index: int | None = None):
        if isinstance(type, device):
            type, index = type.type, type.index
        name = str(type)
        if ":" in name:
            name, _, number = name.partition(":")
            index = int(number) if number.isdigit() else index
        if name != "cpu":
            raise not_here(f".to({str(type)!r})")
        self.type, self.index = name, index

    def __eq__(self, other) -> bool:
        try:
            return isinstance(other, (str, device)) and device(other).type == self.type
        except RuntimeError:
            return False

    def __hash__(self) -> int:
        return hash(self.type)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"


def not_here(usage: str) -> RuntimeError:
    """The one sentence for asking for an accelerator: `usage` is what to drop."""
    return RuntimeError(f"tinygrad_edu runs on the CPU; drop the {usage} (or use 'cpu')")


def check_cpu(value, argument: str = "device") -> None:
    """Refuse `argument=value` (e.g. `zeros(3, device='cuda')`) unless it names the CPU."""
    if value is None:
        return
    try:
        device(value)
    except RuntimeError:
        raise not_here(f"{argument}={str(value)!r}") from None


CPU = device("cpu")


def is_device(value) -> bool:
    """True for a `device` or a string naming one (valid or not): what `.to(x)` treats as a device,
    as opposed to a dtype."""
    if isinstance(value, device):
        return True
    return isinstance(value, str) and value.partition(":")[0] in _DEVICE_NAMES


_DEVICE_NAMES = {"cpu", "cuda", "mps", "xpu", "xla", "meta", "hip", "ipu", "hpu", "mtia",
                 "privateuseone", "vulkan", "opengl", "ideep", "mkldnn", "ve", "lazy", "fpga"}


def _false() -> bool:
    """No accelerator: tinygrad_edu computes on the CPU."""
    return False


def _zero() -> int:
    """No accelerator devices."""
    return 0


def _no_accelerator():
    """`torch.accelerator.current_accelerator()` is None on a machine without one."""



def _nothing(*args, **kwargs) -> None:
    """Seeding or synchronising an accelerator that does not exist does nothing, as in torch."""


cuda = SimpleNamespace(is_available=_false, device_count=_zero, manual_seed=_nothing,
                       manual_seed_all=_nothing, synchronize=_nothing, empty_cache=_nothing)
accelerator = SimpleNamespace(is_available=_false, device_count=_zero,
                              current_accelerator=_no_accelerator, synchronize=_nothing)
backends = SimpleNamespace(mps=SimpleNamespace(is_available=_false, is_built=_false),
                           cuda=SimpleNamespace(is_built=_false),
                           cudnn=SimpleNamespace(benchmark=False, deterministic=False,
                                                 enabled=True, is_available=_false))


def dtype_of_to(args: tuple, dtype=None, device_=None):
    """The dtype that `.to(*args, dtype=, device=)` asks for (None: keep it), after checking
    that any device named is the CPU. Arguments may be a device or its name, a dtype, or a
    tensor (whose dtype is taken), in any order, as torch's `Tensor.to` / `Module.to` accept."""
    for arg in args:
        if is_device(arg):
            device_ = arg
        elif _is_array_like(arg):
            dtype = arg.dtype
        elif arg is not None:
            dtype = arg
    if device_ is not None:
        device(device_)
    return dtype


def _is_array_like(value) -> bool:
    """A tensor or array (not a dtype, nor a numpy scalar type such as np.float32)."""
    return not isinstance(value, (type, np.dtype, str)) and hasattr(value, "shape") and \
        hasattr(value, "dtype")
