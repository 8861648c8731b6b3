"""The torch-free oracle: naive reference kernels and `gradcheck`.

The references are slow on purpose: one output element at a time, straight from the definition,
with no Numba and no torch, so that the fast kernels in `kernels.py` can be tested against them.
"""
from __future__ import annotations

import math

import numpy as np

from . import autograd
from .autograd import enable_grad, no_grad
from .tensor import Tensor


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


# ------------------------------------------------------------------ convolution
def conv2d_ref(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
               padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """Direct convolution (cross-correlation, like PyTorch), one output element at a time.

    x (N, C, H, W), weight (OC, C/groups, KH, KW) -> (N, OC, OH, OW). padding: int, pair,
    'valid' or 'same' (stride 1; an odd total pad puts the extra row/column at the bottom/right).
    """
    N = x.shape[0]
    OC, Cg, KH, KW = weight.shape
    (SH, SW), (DH, DW) = _pair(stride), _pair(dilation)
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        th, tw = DH * (KH - 1), DW * (KW - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        ph, pw = _pair(padding)
        pads = ((ph, ph), (pw, pw))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    Hp, Wp = xp.shape[2:]
    OH = (Hp - DH * (KH - 1) - 1) // SH + 1
    OW = (Wp - DW * (KW - 1) - 1) // SW + 1
    OCg = OC // groups
    y = np.zeros((N, OC, OH, OW), np.result_type(x, weight))
    for n in range(N):
        for oc in range(OC):
            g = oc // OCg
            for oh in range(OH):
                for ow in range(OW):
                    h0, w0 = oh * SH, ow * SW
                    patch = xp[n, g * Cg:(g + 1) * Cg,
                               h0:h0 + DH * (KH - 1) + 1:DH, w0:w0 + DW * (KW - 1) + 1:DW]
                    y[n, oc, oh, ow] = np.sum(patch * weight[oc])
            if bias is not None:
                y[n, oc] += bias[oc]
    return y


# ------------------------------------------------------------------ pooling
def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """Number of windows along one axis, PyTorch's rule: with ceil_mode a partial last window is
    kept only if it starts inside the input or the left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    rounding = math.ceil if ceil_mode else math.floor
    out = rounding(span / stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    (KH, KW) = _pair(kernel_size)
    (SH, SW) = _pair(kernel_size if stride is None else stride)
    (PH, PW), (DH, DW) = _pair(padding), _pair(dilation)
    H, W = x.shape[2:]
    OH = pool_output_size(H, KH, SH, PH, DH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, DW, ceil_mode)
    return (KH, KW), (SH, SW), (PH, PW), (DH, DW), (OH, OW)


def _max_window(plane: np.ndarray, oh, ow, K, S, P, D):
    """(value, flat index) of the first maximum of one window of an (H, W) plane (NaN wins)."""
    H, W = plane.shape
    best, arg = -math.inf, -1
    for kh in range(K[0]):
        for kw in range(K[1]):
            ih, iw = oh * S[0] - P[0] + kh * D[0], ow * S[1] - P[1] + kw * D[1]
            if 0 <= ih < H and 0 <= iw < W:
                v = plane[ih, iw]
                if arg < 0 or v > best or math.isnan(v):
                    best, arg = v, ih * W + iw
    return best, arg


def max_pool2d_ref(x: np.ndarray, kernel_size, stride=None, padding=0, dilation=1,
                   ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) -> (y, indices): each window's first maximum and its flat index in (H*W)."""
    K, S, P, D, (OH, OW) = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), x.dtype)
    indices = np.empty((N, C, OH, OW), np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    y[n, c, oh, ow], indices[n, c, oh, ow] = _max_window(x[n, c], oh, ow, K, S,
                                                                        P, D)
    return y, indices


def max_pool2d_backward_ref(x: np.ndarray, gy: np.ndarray, kernel_size, stride=None, padding=0,
                            dilation=1, ceil_mode: bool = False) -> np.ndarray:
    """Gradient of max_pool2d: each window's gy goes to its first maximum only (like PyTorch)."""
    K, S, P, D, (OH, OW) = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C, W = x.shape[0], x.shape[1], x.shape[3]
    gx = np.zeros_like(x, dtype=gy.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    _, arg = _max_window(x[n, c], oh, ow, K, S, P, D)
                    if arg >= 0:
                        gx[n, c, arg // W, arg % W] += gy[n, c, oh, ow]
    return gx


def avg_pool2d_ref(x: np.ndarray, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                   count_include_pad: bool = True) -> np.ndarray:
    """(N, C, H, W) -> window means. The divisor counts zero padding when count_include_pad, but
    never the part of a ceil_mode window that hangs past the padding (PyTorch's rule)."""
    K, S, P, _, (OH, OW) = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW), x.dtype)
    for oh in range(OH):
        for ow in range(OW):
            h0, w0 = oh * S[0] - P[0], ow * S[1] - P[1]
            h1, w1 = min(h0 + K[0], H + P[0]), min(w0 + K[1], W + P[1])
            inside = x[:, :, max(h0, 0):min(h1, H), max(w0, 0):min(w1, W)]
            count = (h1 - h0) * (w1 - w0) if count_include_pad else inside[0, 0].size
            y[:, :, oh, ow] = inside.sum(axis=(2, 3)) / count
    return y


# ------------------------------------------------------------------ normalisation
def batch_norm_ref(x: np.ndarray, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
                   eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode batch norm with batch statistics, for (N, C) or (N, C, H, W) input.

    Returns (y, mean, var): per-channel batch mean and BIASED variance (the one that normalises;
    PyTorch's running_var is updated with the unbiased one, var * m / (m - 1)).
    """
    C = x.shape[1]
    y = np.empty_like(x)
    mean, var = np.empty(C, x.dtype), np.empty(C, x.dtype)
    for c in range(C):
        values = x[:, c]
        mean[c] = values.sum() / values.size
        var[c] = ((values - mean[c]) ** 2).sum() / values.size
        y[:, c] = (values - mean[c]) / math.sqrt(var[c] + eps)
        if weight is not None:
            y[:, c] *= weight[c]
        if bias is not None:
            y[:, c] += bias[c]
    return y, mean, var


# ------------------------------------------------------------------ gradient checks
def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Compare backward's gradients with central differences, like `torch.autograd.gradcheck`.

    Tensor inputs with requires_grad are checked on float64 copies; fn returns a Tensor (or a
    tuple whose first item is checked). The output is weighted by a seeded random upstream
    gradient (all-ones can hide bugs), so the check is on the vector-Jacobian product. The
    inputs may also come as one tuple, as torch takes them.

        assert gradcheck(lambda x, w: conv2d(x, w, padding=1), x, w)
    """
    inputs = [_float64_copy(t) for t in _as_inputs(inputs)]
    _checked(inputs, "gradcheck")
    return _verdict(_worst_of(fn, inputs, eps, atol, rtol), "gradcheck: backward disagrees with "
                    "finite differences", eps, atol, rtol, raise_exception)


def gradgradcheck(fn, *inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True) -> bool:
    """Check double backward, like `torch.autograd.gradgradcheck`: the gradients of fn taken
    with `create_graph=True` are differentiated again (w.r.t. every input that requires grad
    and w.r.t. the upstream gradient `grad_outputs`, random when None) and compared with
    central differences of those gradients, in float64. Also checks that the create_graph
    gradients equal the first-order ones (a wrong `backward_graph` value would otherwise be
    differentiated consistently and pass).

        assert gradgradcheck(lambda x, w: conv2d(x, w, padding=1), x, w)
    """
    inputs = [_float64_copy(t) for t in _as_inputs(inputs)]
    checked = _checked(inputs, "gradgradcheck")
    rng = np.random.default_rng(1)
    if grad_outputs is None:
        grad_outputs = rng.standard_normal(_first_output(fn(*inputs)).shape)
    v = Tensor(np.asarray(getattr(grad_outputs, "data", grad_outputs), np.float64),
               dtype=np.float64, requires_grad=True)
    weights = [rng.standard_normal(inputs[i].shape) for i in checked]

    def grads(*args, create_graph=True):  # (*inputs, v) -> d<fn(inputs), v>/d(checked inputs)
        with enable_grad():  # also inside the finite differences, which run under no_grad
            out = _first_output(fn(*args[:-1]))
            return autograd.grad(out, [args[i] for i in checked], args[-1],
                                 create_graph=create_graph, allow_unused=True)

    def weighted(*args) -> Tensor:  # one scalar: sum_i <weights_i, gradient_i>
        with enable_grad():
            terms = [(g * u).sum() for g, u in zip(grads(*args), weights) if g is not None]
        if not any(t.requires_grad for t in terms):
            raise ValueError("gradgradcheck: the gradients depend neither on the inputs nor on "
                             "grad_outputs, so there is no double backward to check")
        return sum(terms[1:], terms[0])

    if not _same_first_order(grads, inputs + [v], checked, raise_exception):
        return False
    worst = _worst_of(weighted, inputs + [v], eps, atol, rtol)
    return _verdict(worst, "gradgradcheck: double backward disagrees with finite differences "
                    "of the gradient", eps, atol, rtol, raise_exception)


def _same_first_order(grads, args: list, checked: list, raise_exception: bool) -> bool:
    """The create_graph gradients (backward_graph) against the first-order ones (backward):
    two analytic results, so to rounding (1e-7), not to finite differences' tolerance."""
    atol, rtol = 1e-9, 1e-7
    first = grads(*args, create_graph=False)
    second = grads(*args)
    for i, a, b in zip(checked, first, second):
        a = np.zeros(args[i].shape) if a is None else a.array
        b = np.zeros(args[i].shape) if b is None else b.array
        if not np.allclose(b, a, atol=atol, rtol=rtol, equal_nan=False):
            if raise_exception:
                j = np.unravel_index(np.argmax(np.abs(a - b)), a.shape) if a.size else ()
                raise AssertionError(
                    f"gradgradcheck: the create_graph gradient of input {i} differs from the "
                    f"first-order one at element {tuple(int(k) for k in j)}: {b[j]:.6g} vs "
                    f"{a[j]:.6g}")
            return False
    return True


def _worst_of(fn, inputs: list, eps, atol, rtol):
    """The worst disagreement between backward and central differences of fn (its first
    output, weighted by a seeded random upstream gradient) over float64 leaf inputs."""
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    out = _first_output(fn(*inputs))
    upstream = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(upstream)
    pairs = {}
    for i in checked:
        t = inputs[i]
        analytic = np.zeros_like(t.array) if t.grad is None else t.grad.array
        pairs[i] = (analytic, _numeric_grad(fn, inputs, t, upstream, eps))
    return _worst(pairs, atol, rtol)


def _as_inputs(inputs: tuple) -> tuple:
    """f(x, y) or, as torch takes them, f((x, y))."""
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        return tuple(inputs[0])
    return inputs


def _checked(inputs: list, name: str) -> list:
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError(f"{name}: no input has requires_grad=True, so there is nothing to check")
    return checked


def _worst(pairs: dict, atol: float, rtol: float):
    """(excess over tolerance, input index, element index, analytic, numeric) of the worst
    element over all inputs, or None when every element is within tolerance."""
    worst = None
    for i, (analytic, numeric) in pairs.items():
        excess = np.array(np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric)))
        excess[np.isnan(excess)] = np.inf  # a NaN gradient is a failure, not a pass
        j = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else None
        if j is not None and excess[j] > 0 and (worst is None or excess[j] > worst[0]):
            worst = (excess[j], i, tuple(int(k) for k in j), analytic[j], numeric[j])
    return worst


def _verdict(worst, what: str, eps, atol, rtol, raise_exception: bool) -> bool:
    if worst is None:
        return True
    _, i, j, a, n = worst
    if raise_exception:
        raise AssertionError(f"{what} for input {i} at element {j}: analytic {a:.6g}, numeric "
                             f"{n:.6g} (atol={atol}, rtol={rtol}, eps={eps})")
    return False


def _float64_copy(t):
    """Floating Tensors become float64 leaf copies (same requires_grad); anything else passes."""
    if isinstance(t, Tensor) and t.dtype.kind == "f":
        return Tensor(t.array.astype(np.float64), dtype=np.float64, requires_grad=t.requires_grad)
    return t


def _first_output(out) -> Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _numeric_grad(fn, inputs: list, t: Tensor, upstream: np.ndarray, eps: float) -> np.ndarray:
    """d(sum(fn(inputs) * upstream)) / d(t), one central difference per element of t."""
    grad = np.zeros(t.array.shape, np.float64)
    with no_grad():
        for k in np.ndindex(t.array.shape):  # indexes t.array in place, whatever its strides
            orig = t.array[k]
            t.array[k] = orig + eps
            plus = np.sum(_first_output(fn(*inputs)).array * upstream)
            t.array[k] = orig - eps
            minus = np.sum(_first_output(fn(*inputs)).array * upstream)
            t.array[k] = orig
            grad[k] = (plus - minus) / (2 * eps)
    return grad
