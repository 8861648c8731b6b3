"""`check_op`: one op against numpy, the gradient check and PyTorch, like tinygrad's
`helper_test_op`. Each op test is then one line:

    check_op([(3, 4), (4,)], lambda x, y: x * y, np.multiply)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing import gradcheck

try:  # detected once: without torch, check_op still runs the numpy and gradient checks
    import torch
except ImportError:
    torch = None

TORCH_ATOL = TORCH_RTOL = 1e-8  # float64 on both sides


def make_array(shape: tuple, rng: np.random.Generator, low: float = -2.0, high: float = 2.0,
               layout: str = "contiguous") -> np.ndarray:
    """Uniform float64 values of `shape`. layout "transposed" gives the transpose of a contiguous
    buffer, "sliced" every second element of the last dim: both are non-contiguous views."""
    if layout == "transposed":
        return rng.uniform(low, high, shape[::-1]).T
    if layout == "sliced" and shape:
        return rng.uniform(low, high, shape[:-1] + (2 * shape[-1],))[..., ::2]
    return rng.uniform(low, high, shape)


def check_op(shapes: Sequence[tuple], tg_fn: Callable, np_fn: Callable | None = None,
             torch_fn: Callable | None = None, *, low: float = -2.0, high: float = 2.0,
             layout: str = "contiguous", arrays: Sequence[np.ndarray] | None = None,
             grad: bool = True, finite_differences: bool = True, atol: float = 1e-10,
             rtol: float = 1e-7, seed: int = 0) -> None:
    """Check tg_fn on float64 inputs of `shapes` (or the given `arrays`):

    1. forward against np_fn(*arrays), when given;
    2. backward against finite differences (`gradcheck`, random upstream gradient), when `grad`
       and `finite_differences` (turn the latter off at kinks: ties, clip bounds, relu at 0);
    3. forward and backward against PyTorch in float64 to 1e-8 with the same upstream gradient,
       when torch is installed. torch_fn defaults to tg_fn itself (same method names); pass
       torch_fn=False to skip this step for an op torch lacks.
    """
    rng = np.random.default_rng(seed)
    if arrays is None:
        arrays = [make_array(tuple(s), rng, low, high, layout) for s in shapes]
    xs = [Tensor(a, dtype=np.float64, requires_grad=grad) for a in arrays]
    out = tg_fn(*xs)
    assert out.dtype == np.float64, f"float64 inputs gave a {out.dtype} output"
    if np_fn is not None:
        expected = np.asarray(np_fn(*arrays))
        assert out.shape == expected.shape, f"shape {out.shape}, numpy gives {expected.shape}"
        np.testing.assert_allclose(out.detach().numpy(), expected, atol=atol, rtol=rtol,
                                   err_msg="forward differs from numpy")
    if grad and finite_differences:  # C-order copies: gradcheck perturbs through a flat view
        assert gradcheck(tg_fn, *[Tensor(np.ascontiguousarray(a), dtype=np.float64,
                                         requires_grad=True) for a in arrays])
    if torch is None or torch_fn is False:
        return
    _check_torch(xs, arrays, out, tg_fn if torch_fn is None else torch_fn, grad, rng)


def _check_torch(xs, arrays, out, torch_fn, grad: bool, rng: np.random.Generator) -> None:
    """Forward, and backward with one random upstream gradient, against PyTorch (float64)."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=grad) for a in arrays]
    out_t = torch_fn(*ts)
    assert tuple(out_t.shape) == out.shape, f"shape {out.shape}, torch gives {tuple(out_t.shape)}"
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), atol=TORCH_ATOL,
                               rtol=TORCH_RTOL, err_msg="forward differs from torch")
    if not grad:
        return
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    out_t.backward(torch.from_numpy(upstream))
    for i, (x, t) in enumerate(zip(xs, ts)):
        expected = np.zeros(x.shape) if t.grad is None else t.grad.detach().numpy()
        ours = np.zeros(x.shape) if x.grad is None else x.grad.detach().numpy()
        assert ours.shape == x.shape and ours.dtype == np.float64, (
            f"input {i}: gradient {ours.shape} {ours.dtype} for an input {x.shape} float64")
        np.testing.assert_allclose(ours, expected, atol=TORCH_ATOL, rtol=TORCH_RTOL,
                                   err_msg=f"gradient of input {i} differs from torch")


def mnist_available() -> bool:
    """Whether real MNIST is in the data cache; the tests that train on it skip otherwise."""
    from tinygrad_edu.data import MNIST, DataError

    try:
        MNIST(train=False, download=False)
        return True
    except DataError:
        return False
