"""tinygrad_edu: a readable, fast, from-scratch deep-learning framework for teaching.

    import tinygrad_edu as tg
    x = tg.randn(4, 3, requires_grad=True)
    (x ** 2).sum().backward()

It is also PyTorch's face: a script ports by importing `tinygrad_edu as torch` and
`tinygrad_edu.vision as torchvision` instead of the real ones (docs/porting.md). Names it
lacks raise an AttributeError that says what to use instead.
"""
import importlib

import numpy as _np

# Sub-packages after Tensor, which they all build on: tg.nn, tg.optim, tg.data, tg.train, ...
from . import data, metrics, nn, optim, testing, train, utils
from .autograd import (
    Function,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .device import accelerator, backends, cuda, device
from .functions import *  # torch's namespace: tg.exp, tg.max, tg.zeros(device=), ...
from .generator import Generator
from .missing import module_getattr
from .parallel import get_num_threads, set_num_threads
from .random import get_rng, get_rng_state, manual_seed, set_rng_state
from .serialization import load, save
from .tensor import (
    Tensor,
    cat,
    from_numpy,
    get_default_dtype,
    maximum,
    minimum,
    set_default_dtype,
    stack,
    where,
)

float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
float16 = _np.dtype(_np.float16)
int32 = _np.dtype(_np.int32)
int64 = _np.dtype(_np.int64)
int16 = _np.dtype(_np.int16)
int8 = _np.dtype(_np.int8)
uint8 = _np.dtype(_np.uint8)
bool_ = _np.dtype(_np.bool_)
float, double, long, half = float32, float64, int64, float16
bool = bool_

__version__ = "0.1.0"


_missing_getattr = module_getattr(__name__)


def __getattr__(name: str):
    """`tg.viz` on first use (it imports matplotlib, which `import tinygrad_edu` does not);
    any other missing name says what to use instead."""
    if name == "viz":
        return importlib.import_module(f"{__name__}.viz")
    return _missing_getattr(name)
