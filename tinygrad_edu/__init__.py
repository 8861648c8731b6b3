"""tinygrad_edu: a readable, fast, from-scratch deep-learning framework for teaching.

    import tinygrad_edu as tg
    x = tg.randn(4, 3, requires_grad=True)
    (x ** 2).sum().backward()
"""
import numpy as _np

# Sub-packages after Tensor, which they all build on: tg.nn, tg.optim, tg.data, tg.train, ...
from . import data, metrics, nn, optim, testing, train
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .random import get_rng, get_rng_state, manual_seed, set_rng_state
from .serialization import load, save
from .tensor import (
                     Tensor,
                     arange,
                     cat,
                     empty,
                     empty_like,
                     eye,
                     from_numpy,
                     full,
                     full_like,
                     get_default_dtype,
                     linspace,
                     maximum,
                     minimum,
                     ones,
                     ones_like,
                     rand,
                     rand_like,
                     randint,
                     randn,
                     randn_like,
                     randperm,
                     set_default_dtype,
                     stack,
                     tensor,
                     where,
                     zeros,
                     zeros_like,
)

float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
float16 = _np.dtype(_np.float16)
int32 = _np.dtype(_np.int32)
int64 = _np.dtype(_np.int64)
uint8 = _np.dtype(_np.uint8)
bool_ = _np.dtype(_np.bool_)
float, double, long = float32, float64, int64

__version__ = "0.1.0"
