"""Convolution and pooling: Numba kernels vs the naive references in `tinygrad_edu.testing`,
gradient checks of the Functions, argument errors, and (when installed) PyTorch parity."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_edu import gemm, kernels, parallel
from tinygrad_edu.autograd import Function, no_grad
from tinygrad_edu.ops_cnn import Conv2d, avg_pool2d, conv2d, max_pool2d
from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing import (
    avg_pool2d_ref,
    batch_norm_ref,
    conv2d_ref,
    gradcheck,
    max_pool2d_backward_ref,
    max_pool2d_ref,
    pool_output_size,
)

FEW = settings(max_examples=25, deadline=None)


def _array(rng, shape, dtype, contiguous: bool) -> np.ndarray:
    """Random array; when not contiguous, a transposed view of a (.., W, H) array."""
    if contiguous:
        return rng.standard_normal(shape).astype(dtype)
    swapped = rng.standard_normal(shape[:-2] + shape[-2:][::-1]).astype(dtype)
    view = np.swapaxes(swapped, -1, -2)
    assert not view.flags.c_contiguous or min(shape[-2:]) == 1
    return view


def _tensor(a: np.ndarray, requires_grad: bool = True) -> Tensor:
    return Tensor(a, dtype=a.dtype, requires_grad=requires_grad)


def _pad_total(padding, reach: int, axis: int) -> int:
    if padding == "valid":
        return 0
    if padding == "same":
        return reach - 1
    return 2 * padding[axis]


# ------------------------------------------------------------------ strategies
@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.sampled_from(["same", "valid"])))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    hw = [max(1, reach[i] - _pad_total(padding, reach[i], i)) + draw(st.integers(0, 4))
          for i in range(2)]
    return {
        "x_shape": (draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), *hw),
        "w_shape": (groups * draw(st.integers(1, 2)), 0, *kernel),  # in-channels filled below
        "opts": {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups},
        "bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "contiguous": draw(st.booleans()),
    }


@st.composite
def pool_cases(draw, dilation: bool = True):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    hw = [max(1, reach[i] - 2 * padding[i]) + draw(st.integers(0, 4)) for i in range(2)]
    return {
        "shape": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *hw),
        "opts": {"kernel_size": kernel, "stride": stride, "padding": padding,
                 "ceil_mode": draw(st.booleans()), **({"dilation": dil} if dilation else {})},
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "contiguous": draw(st.booleans()),
    }


def _conv_inputs(case, seed: int = 0):
    rng = np.random.default_rng(seed)
    x_shape, (oc, _, kh, kw) = case["x_shape"], case["w_shape"]
    w_shape = (oc, x_shape[1] // case["opts"]["groups"], kh, kw)
    x = _array(rng, x_shape, case["dtype"], case["contiguous"])
    w = _array(rng, w_shape, case["dtype"], case["contiguous"])
    b = rng.standard_normal(oc).astype(case["dtype"]) if case["bias"] else None
    return x, w, b


def _tol(dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


# ------------------------------------------------------------------ conv2d vs reference
@FEW
@given(conv_cases())
def test_conv2d_matches_reference_and_backward_is_the_adjoint(case):
    x, w, b = _conv_inputs(case)
    X, Wt = _tensor(x), _tensor(w)
    B = None if b is None else _tensor(b)
    y = conv2d(X, Wt, B, **case["opts"])
    # batch-minor: (N, OC, OH, OW) view of the GEMM's (OC, OH, OW, N) result, no copy
    assert y.dtype == x.dtype and y.array.transpose(1, 2, 3, 0).flags.c_contiguous
    np.testing.assert_allclose(y.array, conv2d_ref(x, w, b, **case["opts"]), **_tol(x.dtype))

    # conv is linear in x and in w: <conv(x, w), gy> = <x, gx> = <w, gw> (+ <b, gb> with bias)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    y.backward(gy)
    bias_part = 0.0 if b is None else np.sum(b * gy.sum(axis=(0, 2, 3)))
    total = np.sum(y.array.astype(np.float64) * gy)
    for grad, value in ((X.grad, x), (Wt.grad, w)):
        assert grad.dtype == x.dtype and grad.shape == value.shape
        np.testing.assert_allclose(np.sum(grad.array.astype(np.float64) * value) + bias_part, total,
                                   rtol=1e-4 if x.dtype == np.float32 else 1e-10, atol=1e-3)
    if b is not None:
        np.testing.assert_allclose(B.grad.array, gy.sum(axis=(0, 2, 3)), **_tol(x.dtype))


@FEW
@given(conv_cases())
def test_col2im_is_the_adjoint_of_im2col(case):
    x = _conv_inputs({**case, "contiguous": True})[0]
    _, _, kh, kw = case["w_shape"]
    N, C, H, W = x.shape
    (sh, sw), (dh, dw) = case["opts"]["stride"], case["opts"]["dilation"]
    padding = case["opts"]["padding"]
    pt, pl = (0, 0) if padding == "valid" else (
        (dh * (kh - 1) // 2, dw * (kw - 1) // 2) if padding == "same" else padding)
    oh = (H + _pad_total(padding, dh * (kh - 1) + 1, 0) - dh * (kh - 1) - 1) // sh + 1
    ow = (W + _pad_total(padding, dw * (kw - 1) + 1, 1) - dw * (kw - 1) - 1) // sw + 1
    col = kernels.im2col(x, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow)
    assert col.shape == (C * kh * kw, N * oh * ow) and col.dtype == x.dtype
    c = np.random.default_rng(2).standard_normal(col.shape).astype(x.dtype)
    back = kernels.col2im(c, N, C, H, W, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow)
    np.testing.assert_allclose(np.sum(col * c, dtype=np.float64),
                               np.sum(x * back, dtype=np.float64), rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ pooling vs reference
@FEW
@given(pool_cases())
def test_max_pool2d_matches_reference(case):
    rng = np.random.default_rng(0)
    x = _array(rng, case["shape"], case["dtype"], case["contiguous"])
    x = np.round(x, 1)  # coarse values: many ties, which must go to the first maximum
    X = _tensor(x)
    y, indices = max_pool2d(X, **case["opts"], return_indices=True)
    y_ref, indices_ref = max_pool2d_ref(x, **case["opts"])
    np.testing.assert_array_equal(y.array, y_ref)
    np.testing.assert_array_equal(indices.array, indices_ref)
    assert y.dtype == x.dtype and indices.dtype == np.int64
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    y.backward(gy)
    np.testing.assert_allclose(X.grad.array, max_pool2d_backward_ref(x, gy, **case["opts"]),
                               **_tol(x.dtype))


@FEW
@given(pool_cases(dilation=False), st.booleans())
def test_avg_pool2d_matches_reference(case, count_include_pad):
    rng = np.random.default_rng(0)
    x = _array(rng, case["shape"], case["dtype"], case["contiguous"])
    opts = {**case["opts"], "count_include_pad": count_include_pad}
    X = _tensor(x)
    y = avg_pool2d(X, **opts)
    assert y.dtype == x.dtype
    np.testing.assert_allclose(y.array, avg_pool2d_ref(x, **opts), **_tol(x.dtype))
    # avg pooling is linear: <avg(x), gy> = <x, gx>
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    y.backward(gy)
    np.testing.assert_allclose(np.sum(X.grad.array * x, dtype=np.float64),
                               np.sum(y.array * gy, dtype=np.float64), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, padding, dilation, ceil_mode, size", [
    (2, 0, 1, False, (7, 9)), (1, 1, 1, False, (5, 6)), (2, 1, 1, True, (7, 8)),
    (3, 1, 2, True, (9, 7)), (2, (1, 0), (1, 2), False, (6, 9)), (1, 0, 2, False, (4, 5)),
    (2, 1, 1, False, (1, 3))])
def test_max_pool2d_of_2x2_windows_matches_reference_inside_and_at_the_border(
        dtype, stride, padding, dilation, ceil_mode, size):
    """2x2 windows take their own kernels (kernels._max_pool2x2 and its backward) for the
    windows inside the input, and the generic loops for the strips that reach the padding."""
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal((3, 4) + size), 1).astype(dtype)  # many ties
    opts = {"kernel_size": 2, "stride": stride, "padding": padding, "dilation": dilation,
            "ceil_mode": ceil_mode}
    X = _tensor(x)
    y, indices = max_pool2d(X, **opts, return_indices=True)
    y_ref, indices_ref = max_pool2d_ref(x, **opts)
    np.testing.assert_array_equal(y.array, y_ref)
    np.testing.assert_array_equal(indices.array, indices_ref)
    gy = rng.standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    np.testing.assert_allclose(X.grad.array, max_pool2d_backward_ref(x, gy, **opts),
                               **_tol(dtype))


def test_max_pool2d_ties_route_to_one_position():
    """A flat image (MNIST background, ReLU zeros): each window's gradient goes to its first pixel
    only; a `window == max` mask would send it to all four."""
    X = _tensor(np.zeros((1, 1, 4, 4)))
    y = max_pool2d(X, 2)
    y.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(X.grad.array[0, 0], expected)


def test_max_pool2d_overlapping_ties_accumulate_on_the_first_pixel():
    X = _tensor(np.zeros((1, 1, 3, 3)))
    max_pool2d(X, 2, stride=1).backward(np.ones((1, 1, 2, 2)))
    assert X.grad.array.sum() == 4 and np.count_nonzero(X.grad.array) == 4
    np.testing.assert_array_equal(X.grad.array[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("shape, k", [((3, 4, 9, 11), 2), ((2, 3, 13, 12), 4), ((2, 2, 8, 8), 2),
                                      ((2, 2, 7, 7), 3)])
def test_max_pool_tiles_backward_routes_each_gradient_and_clears_the_rest(shape, k):
    """Windows side by side (stride = kernel, no padding) write each pixel's gradient once
    (_max_pool_tiles_backward); pixels no window covers (the odd last rows and columns) must
    still be 0 in gx's uncleared memory. Against a naive loop over the windows."""
    rng = np.random.default_rng(1)
    x = kernels.batch_minor(shape, np.float32)
    x[...] = np.round(rng.standard_normal(shape))  # ties: the first maximum takes it
    OH, OW = (shape[2] - k) // k + 1, (shape[3] - k) // k + 1
    y, window = kernels.max_pool2d_forward(x, k, k, k, k, 0, 0, 1, 1, OH, OW)
    gy = kernels.batch_minor(y.shape, np.float32)
    gy[...] = rng.standard_normal(y.shape)
    gx = kernels.max_pool2d_backward(gy, window, shape[2], shape[3], k, k, k, k, 0, 0, 1, 1)
    expected = np.zeros(shape, np.float32)
    kh, kw = np.divmod(window.astype(int), k)
    for n, c, oh, ow in np.ndindex(y.shape):
        expected[n, c, oh * k + kh[n, c, oh, ow], ow * k + kw[n, c, oh, ow]] += gy[n, c, oh, ow]
    np.testing.assert_array_equal(gx, expected)


def test_max_pool2d_nan_wins_and_minus_inf_windows_keep_an_index():
    x = np.array([[[[1.0, np.nan, 5.0, 2.0], [-np.inf, -np.inf, 0.0, 7.0]]]])
    y, indices = max_pool2d(Tensor(x), 2, return_indices=True)
    assert np.isnan(y.array[0, 0, 0, 0]) and y.array[0, 0, 0, 1] == 7.0
    np.testing.assert_array_equal(indices.array[0, 0, 0], [1, 7])
    y, indices = max_pool2d(Tensor(np.full((1, 1, 2, 2), -np.inf)), 2, return_indices=True)
    assert y.array.item() == -np.inf and indices.array.item() == 0


def test_max_pool2d_return_indices_without_a_graph():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    with no_grad():
        y, indices = max_pool2d(Tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(indices.array, max_pool2d_ref(x, 3, 2, 1)[1])
    assert y.shape == indices.shape == (2, 3, 3, 3)


def test_pool_output_size_ceil_mode_drops_a_window_starting_in_the_right_padding():
    assert pool_output_size(5, 2, 2, 0, 1, ceil_mode=False) == 2
    assert pool_output_size(5, 2, 2, 0, 1, ceil_mode=True) == 3
    assert pool_output_size(4, 2, 3, 1, 1, ceil_mode=True) == 2  # a 3rd would start at 5 >= 4+1


# ------------------------------------------------------------------ gradient checks
def _leaf(rng, *shape) -> Tensor:
    return Tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=True)


@pytest.mark.parametrize("opts", [
    {"stride": 1, "padding": 1},
    {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2},
    {"padding": "same", "dilation": 2},
])
def test_conv2d_gradcheck(opts):
    rng = np.random.default_rng(0)
    x, w, b = _leaf(rng, 2, 4, 6, 5), _leaf(rng, 4, 4 // opts.get("groups", 1), 3, 2), _leaf(rng, 4)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, **opts), x, w, b)
    assert gradcheck(lambda x, w: conv2d(x, w, **opts), x, w)


@pytest.mark.parametrize("opts", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": (2, 3), "stride": 1, "dilation": 2},
])
def test_max_pool2d_gradcheck(opts):
    assert gradcheck(lambda x: max_pool2d(x, **opts), _leaf(np.random.default_rng(0), 2, 2, 7, 7))


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_gradcheck(count_include_pad):
    x = _leaf(np.random.default_rng(0), 2, 2, 6, 7)
    assert gradcheck(lambda x: avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                          count_include_pad=count_include_pad), x)


class _SquareWithWrongBackward(Function):
    """x**2 whose backward forgets the factor 2: gradcheck must catch it."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        (x,) = self.saved
        return grad * x


class _NanBackward(_SquareWithWrongBackward):
    def backward(self, grad):
        return grad * np.nan


class _Conv2dWithUnflippedGradient(Conv2d):
    """A plausible conv bug: the weight gradient comes out spatially flipped."""

    def backward(self, grad):
        gx, gw = super().backward(grad)
        return gx, gw[:, :, ::-1, ::-1]


def test_gradcheck_catches_a_wrong_backward():
    x = _leaf(np.random.default_rng(0), 3, 2)
    with pytest.raises(AssertionError, match=r"input 0 at element \(\d, \d\): analytic .* numeric"):
        gradcheck(_SquareWithWrongBackward.apply, x)
    assert gradcheck(_SquareWithWrongBackward.apply, x, raise_exception=False) is False
    with pytest.raises(AssertionError, match="analytic nan"):
        gradcheck(_NanBackward.apply, x)
    rng = np.random.default_rng(1)
    x, w = _leaf(rng, 1, 1, 4, 4), _leaf(rng, 2, 1, 3, 3)
    with pytest.raises(AssertionError, match="input 1"):
        gradcheck(lambda x, w: _Conv2dWithUnflippedGradient.apply(x, w, padding=1), x, w)


def test_conv2d_skips_the_input_gradient_when_not_needed(monkeypatch):
    def fail(*args):
        raise AssertionError("col2im called for an input that needs no gradient")

    monkeypatch.setattr(kernels, "col2im", fail)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    w = Tensor(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), requires_grad=True)
    conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad.dtype == np.float32


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    y = avg_pool2d(max_pool2d(conv2d(x, w, b, padding=1), 2), 2)
    y.sum().backward()
    assert {t.dtype for t in (y, x.grad, w.grad, b.grad)} == {np.dtype(np.float32)}


# ------------------------------------------------------------------ paths small shapes miss
def _check_conv(x, w, b, **opts):
    """float64 conv2d vs conv2d_ref, and its gradients by random projections: conv is linear in x
    and in w, so <gx, v> = <conv(v, w), gy> and <gw, u> = <conv(x, u), gy> for any v, u."""
    rng = np.random.default_rng(3)
    X, Wt, B = _tensor(x), _tensor(w), _tensor(b)
    y = conv2d(X, Wt, B, **opts)
    np.testing.assert_allclose(y.array, conv2d_ref(x, w, b, **opts), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    v, u = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    np.testing.assert_allclose(np.sum(X.grad.array * v), np.sum(conv2d_ref(v, w, **opts) * gy),
                               rtol=1e-9)
    np.testing.assert_allclose(np.sum(Wt.grad.array * u), np.sum(conv2d_ref(x, u, **opts) * gy),
                               rtol=1e-9)
    np.testing.assert_allclose(B.grad.array, gy.sum(axis=(0, 2, 3)), rtol=1e-10)


@pytest.mark.parametrize("shape, opts", [
    ((4, 16, 32, 32), {"padding": 1}),
    ((4, 16, 40, 36), {"stride": 2, "padding": (2, 1), "dilation": 2, "groups": 2}),
])
def test_conv2d_large_enough_to_run_in_several_row_bands(shape, opts):
    """Inputs whose im2col columns exceed the cache-sized workspace, so Conv2d streams them in
    bands of output rows (the last one shorter); tiny Hypothesis shapes fit in one band."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, shape[1] // opts.get("groups", 1), 3, 3))
    _check_conv(rng.standard_normal(shape), w, rng.standard_normal(4), **opts)


@pytest.mark.parametrize("groups", [1, 2])
def test_kept_columns_give_the_weight_gradient_in_one_product_split_over_threads(groups,
                                                                                monkeypatch):
    """A small conv keeps its im2col for backward, and its weight gradient is then one product
    that matmul splits over the gradient's columns (ResNet-18's 2x2 layers): the same bits at
    one thread and at two, and the float64 reference's values. Our kernel forced on: it runs
    on any CPU, and only it splits a product over the threads."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 512, 2, 2)).astype(np.float32)  # too many channels to be direct
    w = (rng.standard_normal((128, 512 // groups, 3, 3)) * 0.1).astype(np.float32)
    gy = rng.standard_normal((32, 128, 2, 2)).astype(np.float32)
    splits, real, native = [], gemm.parallel_for, gemm.native_for
    monkeypatch.setattr(gemm, "parallel_for", lambda fn, n: splits.append(n) or real(fn, n))
    monkeypatch.setattr(gemm, "native_for",
                        lambda fn, args, n: splits.append(n) or native(fn, args, n))
    before = parallel.get_num_threads()
    grads = {}
    gemm.set_enabled(True)
    try:
        for threads in (1, 2):
            parallel.set_num_threads(threads)
            conv = Conv2d()
            conv.needs_input_grad = (False, True)
            conv.forward(x, w, padding=1, groups=groups)
            assert conv.col is not None and not (conv.winograd or conv.direct_weight_grad)
            splits.clear()
            grads[threads] = conv.backward(gy)[1]
    finally:
        parallel.set_num_threads(before)
        gemm.set_enabled(None)
    assert len(splits) == groups and min(splits) > 1  # one product per group, each split
    np.testing.assert_array_equal(grads[1], grads[2])
    X, Wt = _tensor(x.astype(np.float64)), _tensor(w.astype(np.float64))
    conv2d(X, Wt, padding=1, groups=groups).backward(gy.astype(np.float64))
    np.testing.assert_allclose(grads[2], Wt.grad.array, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise_conv2d(groups):
    """A 1x1 stride-1 unpadded conv needs no im2col: its columns are the input itself."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6))
    _check_conv(x, rng.standard_normal((6, 4 // groups, 1, 1)), rng.standard_normal(6),
                groups=groups)
    x = np.swapaxes(rng.standard_normal((3, 4, 6, 5)), 2, 3)  # non-contiguous
    _check_conv(x, rng.standard_normal((6, 4 // groups, 1, 1)), rng.standard_normal(6),
                groups=groups)


def test_conv_pool_chain_matches_references_and_gradchecks():
    """Outputs of one op feed the next as they are (whatever their memory layout)."""
    rng = np.random.default_rng(0)
    x, w1, w2 = (rng.standard_normal(s) for s in ((1, 2, 5, 5), (2, 2, 3, 3), (3, 2, 1, 1)))

    def chain(x, w1, w2):
        h = max_pool2d(conv2d(x, w1, padding=1).relu(), 2, stride=1)
        return avg_pool2d(conv2d(h, w2), 2, ceil_mode=True)

    h_ref = max_pool2d_ref(np.maximum(conv2d_ref(x, w1, padding=1), 0), 2, stride=1)[0]
    expected = avg_pool2d_ref(conv2d_ref(h_ref, w2), 2, ceil_mode=True)
    leaves = [_tensor(a) for a in (x, w1, w2)]
    np.testing.assert_allclose(chain(*leaves).array, expected, rtol=1e-10, atol=1e-10)
    assert gradcheck(chain, *leaves)


def test_max_pool2d_window_with_more_than_127_taps():
    """A 12x12 window (144 taps) cannot store its argmax position in int8."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 14, 13))
    X = _tensor(x)
    y, indices = max_pool2d(X, 12, stride=1, padding=1, return_indices=True)
    y_ref, indices_ref = max_pool2d_ref(x, 12, stride=1, padding=1)
    np.testing.assert_array_equal(y.array, y_ref)
    np.testing.assert_array_equal(indices.array, indices_ref)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    np.testing.assert_allclose(X.grad.array, max_pool2d_backward_ref(x, gy, 12, 1, 1))


# ------------------------------------------------------------------ argument errors
@pytest.mark.parametrize("call, message", [
    (lambda: conv2d(Tensor(np.zeros((1, 28, 28))), Tensor(np.zeros((8, 1, 3, 3)))),
     r"conv2d: expected input \(N, C, H, W\), got \(1, 28, 28\)"),
    (lambda: conv2d(Tensor(np.zeros((1, 3, 8, 8))), Tensor(np.zeros((8, 1, 3, 3)))),
     r"conv2d: input \(1, 3, 8, 8\) has 3 channels, but weight \(8, 1, 3, 3\) .* expects 1"),
    (lambda: conv2d(Tensor(np.zeros((1, 1, 3, 3))), Tensor(np.zeros((8, 1, 5, 5)))),
     r"conv2d: kernel 5x5 .* larger than the padded input 3x3"),
    (lambda: conv2d(Tensor(np.zeros((1, 1, 8, 8))), Tensor(np.zeros((8, 1, 3, 3))),
                    Tensor(np.zeros(4))), r"conv2d: expected bias of shape \(8,\)"),
    (lambda: conv2d(Tensor(np.zeros((1, 1, 8, 8))), Tensor(np.zeros((8, 1, 3, 3))), stride=2,
                    padding="same"), "conv2d: padding='same' needs stride 1"),
    (lambda: max_pool2d(Tensor(np.zeros((1, 1, 8, 8))), 3, padding=2),
     r"max_pool2d: padding \(2, 2\) should be at most half of kernel_size \(3, 3\)"),
    (lambda: avg_pool2d(Tensor(np.zeros((1, 1, 8, 8))), 2, padding=2),
     r"avg_pool2d: padding \(2, 2\) should be at most half"),
    (lambda: max_pool2d(Tensor(np.zeros((1, 8, 8))), 2),
     r"max_pool2d: expected input \(N, C, H, W\), got \(1, 8, 8\)"),
    (lambda: max_pool2d(Tensor(np.zeros((1, 1, 2, 2))), 3),
     r"max_pool2d: input \(1, 1, 2, 2\) is too small"),
])
def test_argument_errors_name_the_op_and_shapes(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


# ------------------------------------------------------------------ batch_norm_ref
def test_batch_norm_ref_normalises_each_channel():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)) * 3 + 2
    y, mean, var = batch_norm_ref(x, np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), [0.0, 1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), [1.0, 2.0, 0.5], rtol=1e-4)


# ------------------------------------------------------------------ PyTorch parity (optional)
def _torch_leaf(torch, a: np.ndarray):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("opts", [
    {"stride": 1, "padding": 1},
    {"stride": (2, 3), "padding": (2, 1), "dilation": (2, 1), "groups": 3},
    {"padding": "same", "dilation": (1, 2)},
    {"padding": "valid", "stride": 2},
])
def test_conv2d_parity_with_torch(opts):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 6, 9, 8)), rng.standard_normal((6, 6 // opts.get("groups", 1), 3, 4))
    b, ours = rng.standard_normal(6), [_tensor(a) for a in (x, w)]
    ours.append(_tensor(b))
    theirs = [_torch_leaf(torch, a) for a in (x, w, b)]
    y, yt = conv2d(*ours, **opts), torch.nn.functional.conv2d(*theirs, **opts)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.array, yt.detach().numpy(), rtol=0, atol=1e-8)
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.array, ref.grad.detach().numpy(), rtol=0, atol=1e-8)


@pytest.mark.parametrize("opts", [
    {"kernel_size": 2},
    {"kernel_size": 2, "stride": 1, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 0), "dilation": (2, 1)},
])
@pytest.mark.parametrize("values", ["normal", "ties", "nan"])
def test_max_pool2d_parity_with_torch(opts, values):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    if values == "ties":
        x = np.maximum(np.round(x), 0)  # ReLU-like zeros: mostly ties
    elif values == "nan":  # NaN wins, the last one of a window where several are
        x[rng.random(x.shape) < 0.15] = np.nan
    X, xt = _tensor(x), _torch_leaf(torch, x)
    y, indices = max_pool2d(X, **opts, return_indices=True)
    yt, indices_t = torch.nn.functional.max_pool2d(xt, **opts, return_indices=True)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.array, yt.detach().numpy(), rtol=0, atol=1e-8)
    np.testing.assert_array_equal(indices.array, indices_t.detach().numpy())
    np.testing.assert_allclose(X.grad.array, xt.grad.detach().numpy(), rtol=0, atol=1e-8)


@pytest.mark.parametrize("opts", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    {"kernel_size": (2, 3), "stride": (3, 1), "padding": (1, 1), "count_include_pad": False},
])
def test_avg_pool2d_parity_with_torch(opts):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    X, xt = _tensor(x), _torch_leaf(torch, x)
    y, yt = avg_pool2d(X, **opts), torch.nn.functional.avg_pool2d(xt, **opts)
    gy = rng.standard_normal(y.shape)
    y.backward(gy)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.array, yt.detach().numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(X.grad.array, xt.grad.detach().numpy(), rtol=0, atol=1e-8)


def test_batch_norm_ref_parity_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(3), rng.standard_normal(3)
    y, _, _ = batch_norm_ref(x, w, b)
    yt = torch.nn.functional.batch_norm(torch.tensor(x), None, None, torch.tensor(w),
                                        torch.tensor(b), training=True)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-8)


def test_gradcheck_perturbs_non_contiguous_inputs():
    """A transposed (non-contiguous) input must be perturbed in place, not through a copy."""
    a = np.arange(6.0).reshape(2, 3)
    x = Tensor(a.T, dtype=np.float64, requires_grad=True)  # astype keeps the F-order layout
    assert not x.array.flags.c_contiguous
    assert gradcheck(lambda t: (t * t).sum(), x)


# ------------------------------------------------------------------ batch norm kernels
def _batch_minor_copy(x: np.ndarray) -> np.ndarray:
    out = kernels.batch_minor(x.shape, x.dtype)
    out[...] = x
    return out


def _batch_norm_step(x: np.ndarray, w, b, upstream) -> list[np.ndarray]:
    """Output, the three gradients and the running statistics of one training batch norm."""
    from tinygrad_edu.nn import functional as F
    X, W, B = (Tensor(a, dtype=a.dtype, requires_grad=True) for a in (x, w, b))
    mean, var = np.zeros(x.shape[1], x.dtype), np.ones(x.shape[1], x.dtype)
    y = F.batch_norm(X, mean, var, W, B, training=True)
    (y * Tensor(upstream, dtype=x.dtype)).sum().backward()
    return [y.array, X.grad.array, W.grad.array, B.grad.array, mean, var]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_batch_norm_kernels_equal_the_numpy_path_and_the_reference(dtype, tol, monkeypatch):
    """A conv's batch-minor output takes the Numba loops; a C-contiguous copy the numpy ops:
    same output, gradients and running statistics, and the output equals batch_norm_ref."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 3, 5, 6)) * 3 + 2).astype(dtype)
    w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    upstream = rng.standard_normal(x.shape).astype(dtype)
    calls = []
    forward = kernels.batch_norm_forward
    monkeypatch.setattr(kernels, "batch_norm_forward", lambda *a: calls.append(1) or forward(*a))
    fused = _batch_norm_step(_batch_minor_copy(x), w, b, upstream)
    assert calls == [1]
    numpy_path = _batch_norm_step(np.ascontiguousarray(x), w, b, upstream)
    assert calls == [1]
    for got, want in zip(fused, numpy_path):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(fused[0], batch_norm_ref(x, w, b)[0], rtol=tol, atol=tol)


def test_batch_norm_kernels_gradcheck_and_any_upstream_layout():
    from tinygrad_edu.nn import functional as F
    rng = np.random.default_rng(1)
    x = _batch_minor_copy(rng.standard_normal((3, 2, 4, 5)))
    X = Tensor(x, dtype=np.float64, requires_grad=True)
    W, B = (Tensor(rng.standard_normal(2), dtype=np.float64, requires_grad=True) for _ in "wb")
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), X, W, B)
    up = rng.standard_normal(x.shape)  # a C-contiguous upstream gradient: copied, same result
    y = F.batch_norm(X, None, None, W, B, training=True)
    gx, gw, gb = y._ctx.backward(up)
    gx2, gw2, gb2 = y._ctx.backward(_batch_minor_copy(up))
    for got, want in ((gx, gx2), (gw, gw2), (gb, gb2)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ Winograd F(2x2, 3x3)
@pytest.mark.parametrize("shape, padding", [((2, 3, 6, 6), 1), ((3, 2, 7, 5), 0),
                                            ((1, 4, 3, 4), 2), ((2, 5, 9, 8), 1)])
def test_winograd_conv2d_matches_reference(shape, padding):
    """Even and odd output sizes (the last tile sticks out), every padding it takes; float64
    to rounding, float32 within 1e-5 of the largest output (measured 4e-7 at 64 channels)."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(shape), rng.standard_normal((4, shape[1], 3, 3)), \
        rng.standard_normal(4)
    expected = conv2d_ref(x, w, b, padding=padding)
    for band_bytes in (1 << 20, 1):  # one band of tile rows, then one band per tile row
        y = kernels.winograd_conv2d(x, w, b, padding, band_bytes)
        assert y.transpose(1, 2, 3, 0).flags.c_contiguous  # batch-minor, like every conv
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    y32 = kernels.winograd_conv2d(x.astype(np.float32), w.astype(np.float32), b, padding)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_filter_matches_g_w_gt(dtype):
    """U[4i + j, oc, c] = (G w[oc, c] G^T)[i, j], also for the flipped, channel-swapped view
    of w that the input gradient passes (not contiguous)."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    G = np.array(kernels.WINOGRAD_G)
    for weights in (w, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)):
        expected = np.einsum("ia,ocab,jb->ijoc", G, weights.astype(np.float64), G)
        U = kernels.winograd_filter(weights)
        assert U.dtype == dtype and U.shape == (16,) + weights.shape[:2]
        np.testing.assert_allclose(U, expected.reshape(U.shape), rtol=1e-6, atol=1e-6)


def test_winograd_filter_split_over_threads_matches(monkeypatch):
    """Split over output channels at two threads (a small grain, so that 16 channels make
    several tasks): the same U as in one task, for w and for the input gradient's view."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    before = parallel.get_num_threads()
    monkeypatch.setattr(kernels, "_FILTER_GRAIN", 1 << 6)
    tasks, real = [], kernels.parallel_for
    monkeypatch.setattr(kernels, "parallel_for", lambda fn, n: tasks.append(n) or real(fn, n))
    try:
        for weights in (w, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)):
            parallel.set_num_threads(1)
            alone = kernels.winograd_filter(weights)
            parallel.set_num_threads(2)
            tasks.clear()
            np.testing.assert_array_equal(kernels.winograd_filter(weights), alone)
            assert tasks == [4]
    finally:
        parallel.set_num_threads(before)


def test_winograd_error_at_64_channels_in_float32():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 64, 8, 8)).astype(np.float32)
    w = rng.standard_normal((32, 64, 3, 3)).astype(np.float32)
    expected = conv2d_ref(x.astype(np.float64), w.astype(np.float64), padding=1)
    error = np.abs(kernels.winograd_conv2d(x, w, None, 1) - expected).max()
    assert error <= 1e-5 * np.abs(expected).max()


@pytest.fixture
def winograd_everywhere(monkeypatch):
    """Every eligible 3x3 conv takes the Winograd path, however small; counts the calls."""
    from tinygrad_edu import ops_cnn
    monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_RATIO", 0)
    calls, real = [], kernels.winograd_conv2d
    monkeypatch.setattr(kernels, "winograd_conv2d", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_winograd_conv2d_gradcheck(winograd_everywhere, padding):
    rng = np.random.default_rng(0)
    x, w, b = _leaf(rng, 2, 3, 5, 4), _leaf(rng, 2, 3, 3, 3), _leaf(rng, 2)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, padding=padding), x, w, b)
    assert len(winograd_everywhere) >= 2  # forward and input gradient both went through it


def test_winograd_and_im2col_paths_agree(winograd_everywhere, monkeypatch):
    from tinygrad_edu import ops_cnn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((4, 24, 8, 8)).astype(np.float32)
    results = []
    for min_channels in (1, 10**9):  # Winograd, then im2col + GEMM
        monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_CHANNELS", min_channels)
        X, Wt = _tensor(x), _tensor(w)
        y = conv2d(X, Wt, padding=1)
        y.backward(gy)
        results.append((y.array, X.grad.array, Wt.grad.array))
    assert len(winograd_everywhere) == 2
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("x_shape, w_shape, opts, expected", [
    ((32, 64, 16, 16), (64, 64, 3, 3), {"padding": 1}, True),      # ResNet-18 layer1 at 64x64
    ((32, 128, 8, 8), (128, 128, 3, 3), {"padding": 1}, True),     # layer2
    ((32, 256, 4, 4), (256, 256, 3, 3), {"padding": 1}, True),     # layer3
    ((32, 512, 2, 2), (512, 512, 3, 3), {"padding": 1}, False),    # layer4: weights dominate
    ((32, 3, 32, 32), (64, 3, 3, 3), {"padding": 1}, False),       # 3 input channels
    ((32, 64, 16, 16), (64, 64, 3, 3), {"padding": 1, "stride": 2}, False),
    ((32, 64, 16, 16), (64, 64, 3, 3), {"padding": "same", "dilation": 2}, False),
])
def test_which_convs_take_winograd(x_shape, w_shape, opts, expected, monkeypatch):
    calls, real = [], kernels.winograd_conv2d
    monkeypatch.setattr(kernels, "winograd_conv2d", lambda *a: calls.append(1) or real(*a))
    with no_grad():
        conv2d(Tensor(np.zeros(x_shape, np.float32)), Tensor(np.zeros(w_shape, np.float32)),
               **opts)
    assert bool(calls) == expected


# ------------------------------------------------------------------ direct convolution
@pytest.mark.parametrize("x_shape, w_shape, pads", [
    ((3, 2, 7, 6), (6, 2, 3, 5), (1, 2, 0, 3)),   # 6 outputs: a block and a half; asymmetric
    ((2, 3, 9, 9), (8, 3, 5, 5), (2, 2, 2, 2)),   # LeNet-5's first conv, small: 5-tap rows
    ((1, 1, 4, 5), (4, 1, 1, 2), (0, 0, 1, 0)),   # 1x2 kernel: no tap triple at all
    ((2, 4, 6, 8), (5, 4, 7, 4), (3, 3, 0, 0)),   # rows of 4 taps: a triple and one left
    ((2, 6, 5, 7), (4, 6, 3, 3), (1, 1, 1, 1)),   # 3x3: triples only
    ((8, 3, 9, 10), (8, 3, 5, 5), (2, 2, 2, 2)),  # rows of 80 values: our dot kernel's too
    ((16, 6, 5, 7), (5, 6, 3, 3), (1, 0, 1, 1)),  # ... with 5 outputs, asymmetric padding
])
@pytest.mark.parametrize("our_gemm", [True, False])
def test_direct_conv2d_and_its_weight_grad_match_reference(x_shape, w_shape, pads, our_gemm,
                                                          monkeypatch):
    """float64 to rounding; float32 within 1e-5 of the largest value (measured 3e-7). With our
    GEMM, float32 convs of at least _OFFSET_MIN_TAPS taps (C*KH*KW) run on it (all but the
    first and third here), and weight gradients whose rows (OW*N) fill whole vectors on our
    dot kernel (the last two); without it, on the direct loops, as float64 does."""
    monkeypatch.setattr(gemm, "_forced", our_gemm)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), \
        rng.standard_normal(w_shape[0])
    PT, PB, PL, PR = pads
    xp = np.pad(x, ((0, 0), (0, 0), (PT, PB), (PL, PR)))
    expected = conv2d_ref(xp, w, b)
    gy = rng.standard_normal(expected.shape)
    # the weight gradient by its definition: d<conv(x, w), gy>/dw[o, c, i, j]
    KH, KW = w_shape[2:]
    OH, OW = expected.shape[2:]
    gw_ref = np.einsum("nohw,nchwij->ocij", gy, np.stack(
        [np.stack([xp[:, :, i:i + OH, j:j + OW] for j in range(KW)], -1) for i in range(KH)],
        -2))
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        y = kernels.direct_conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), pads)
        assert y.dtype == dtype and y.transpose(1, 2, 3, 0).flags.c_contiguous
        np.testing.assert_allclose(y, expected, rtol=0, atol=tol * np.abs(expected).max())
        gw, gb = kernels.direct_conv2d_weight_grad(x.astype(dtype), gy.astype(dtype), KH, KW,
                                                   pads)
        np.testing.assert_allclose(gw, gw_ref, rtol=0, atol=tol * np.abs(gw_ref).max())
        np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=0,
                                   atol=tol * np.abs(gy.sum(axis=(0, 2, 3))).max())


def test_direct_error_at_lenet5_size_in_float32():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 3, 5, 5)).astype(np.float32)
    expected = conv2d_ref(x.astype(np.float64), w.astype(np.float64), padding=2)
    error = np.abs(kernels.direct_conv2d(x, w, None, (2, 2, 2, 2)) - expected).max()
    assert error <= 1e-5 * np.abs(expected).max()


@pytest.fixture
def direct_calls(monkeypatch):
    """Counts the calls of the direct kernels (forward or input gradient, weight gradient)."""
    calls = []
    for name in ("direct_conv2d", "direct_conv2d_weight_grad"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, real=real, name=name:
                            calls.append(name) or real(*a))
    return calls


FORWARD, WEIGHT_GRAD = "direct_conv2d", "direct_conv2d_weight_grad"


@pytest.mark.parametrize("w_shape, opts, calls", [
    # 3 input channels: forward and weight gradient direct; the input gradient's conv has 3
    # outputs, less than a block: im2col
    ((5, 3, 3, 2), {"padding": 1}, [FORWARD, WEIGHT_GRAD]),
    ((5, 3, 3, 2), {"padding": 0}, [FORWARD, WEIGHT_GRAD]),
    ((5, 3, 3, 2), {"padding": "same"}, [FORWARD, WEIGHT_GRAD]),
    # 3x3, 5 channels in and 6 out: forward and input gradient direct, rows too short for the
    # weight gradient
    ((6, 5, 3, 3), {"padding": 1}, [FORWARD, FORWARD]),
])
def test_direct_conv2d_gradcheck(direct_calls, w_shape, opts, calls):
    rng = np.random.default_rng(0)
    x, w, b = _leaf(rng, 2, w_shape[1], 5, 6), _leaf(rng, *w_shape), _leaf(rng, w_shape[0])
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, **opts), x, w, b)
    assert gradcheck(lambda x, w: conv2d(x, w, **opts), x, w)
    direct_calls.clear()
    conv2d(x, w, b, **opts).sum().backward()  # forward, weight and input gradients
    assert direct_calls == calls


def test_direct_and_im2col_paths_agree(direct_calls, monkeypatch):
    from tinygrad_edu import ops_cnn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 4, 12, 10)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    gy = rng.standard_normal((4, 8, 12, 10)).astype(np.float32)
    results = []
    for max_channels in (4, 0):  # direct, then im2col + GEMM
        monkeypatch.setattr(ops_cnn, "_DIRECT_MAX_CHANNELS", max_channels)
        monkeypatch.setattr(ops_cnn, "_DIRECT_MAX_CHANNELS_WIDE", max_channels * 16)
        X, Wt, B = _tensor(x), _tensor(w), _tensor(b)
        y = conv2d(X, Wt, B, padding=1)
        y.backward(gy)
        results.append((y.array, X.grad.array, Wt.grad.array, B.grad.array))
    assert direct_calls == ["direct_conv2d", "direct_conv2d_weight_grad", "direct_conv2d"]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("x_shape, w_shape, opts, expected", [
    ((32, 3, 64, 64), (32, 3, 5, 5), {"padding": 2}, True),        # LeNet-5's first conv
    ((32, 1, 28, 28), (16, 1, 3, 3), {"padding": 1}, True),        # CNN3's
    # ResNet-18's: its forward over the input's phases where that runs on our GEMM
    ((32, 3, 64, 64), (64, 3, 7, 7), {"padding": 3, "stride": 2}, gemm.enabled(np.float32)),
    ((32, 32, 16, 16), (64, 32, 5, 5), {"padding": 2}, True),      # LeNet-5's second conv
    ((32, 128, 16, 16), (64, 128, 5, 5), {"padding": 2}, False),   # many input channels
    ((32, 16, 14, 14), (32, 16, 3, 3), {"padding": 1}, True),      # CNN3's second: 3x3
    ((32, 64, 16, 16), (64, 64, 3, 3), {"padding": 1}, False),     # 64 channels: Winograd
    ((2, 3, 8, 8), (2, 3, 3, 3), {"padding": 1}, False),           # fewer outputs than a block
    ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": 3}, False),           # padding beyond the kernel
    ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": 2, "dilation": 2}, False),
])
def test_which_convs_take_direct(x_shape, w_shape, opts, expected, direct_calls):
    with no_grad():
        conv2d(Tensor(np.zeros(x_shape, np.float32)), Tensor(np.zeros(w_shape, np.float32)),
               **opts)
    assert bool(direct_calls) == expected


def test_direct_conv2d_skips_the_input_gradient_when_not_needed(direct_calls):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    conv2d(x, w, padding=1).sum().backward()
    assert direct_calls == ["direct_conv2d", "direct_conv2d_weight_grad"]
    assert x.grad is None and w.grad.dtype == np.float32


def test_direct_weight_grad_gradcheck_with_many_input_channels(direct_calls, monkeypatch):
    """Many input channels: im2col + GEMM forward, direct weight gradient (rows forced long
    enough), im2col input gradient."""
    from tinygrad_edu import ops_cnn
    monkeypatch.setattr(ops_cnn, "_DIRECT_MIN_ROW", 1)
    rng = np.random.default_rng(0)
    x, w, b = _leaf(rng, 2, 6, 5, 6), _leaf(rng, 5, 6, 3, 2), _leaf(rng, 5)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, padding=1), x, w, b)
    assert set(direct_calls) == {"direct_conv2d_weight_grad"}


@pytest.mark.parametrize("x_shape, w_shape, opts, expected", [
    ((32, 64, 16, 16), (64, 64, 3, 3), {"padding": 1}, True),      # ResNet-18 layer1
    ((32, 32, 16, 16), (64, 32, 5, 5), {"padding": 2}, True),      # LeNet-5's second conv
    ((32, 256, 4, 4), (256, 256, 3, 3), {"padding": 1}, False),    # rows of 128: GEMM
    ((32, 64, 16, 16), (128, 64, 3, 3), {"padding": 1, "stride": 2}, False),
    ((32, 64, 16, 16), (128, 64, 1, 1), {}, False),                # 1x1: GEMM
    ((8, 3, 64, 64), (64, 3, 7, 7), {"padding": 3, "stride": 2}, True),  # ResNet's, by phases
    ((8, 16, 32, 32), (64, 16, 3, 3), {"padding": 1, "stride": 2}, False),  # stride 2, 16 in
])
def test_which_convs_take_the_direct_weight_grad(x_shape, w_shape, opts, expected, direct_calls):
    x = Tensor(np.zeros(x_shape, np.float32))
    w = Tensor(np.zeros(w_shape, np.float32), requires_grad=True)
    conv2d(x, w, **opts).sum().backward()
    assert ("direct_conv2d_weight_grad" in direct_calls) == expected


@pytest.mark.parametrize("w_shape, opts", [
    ((8, 3, 7, 7), {"padding": 3}),          # ResNet-18's first conv
    ((4, 2, 3, 3), {"padding": 1}),
    ((5, 1, 4, 5), {"padding": (1, 2)}),     # 5 outputs, an even and an odd kernel side
    ((4, 3, 2, 3), {"padding": 0}),
])
def test_stride2_conv_over_phases_matches_reference_and_gradchecks(direct_calls, w_shape, opts):
    """A stride-2 conv with few input channels: its weight gradient by the direct kernel over
    its input's phases."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, w_shape[1], 11, 10)), rng.standard_normal(w_shape), \
        rng.standard_normal(w_shape[0])
    _check_conv(x, w, b, stride=2, **opts)
    assert direct_calls == ["direct_conv2d_weight_grad"]
    X, Wt, B = (_leaf(rng, *a.shape) for a in (x[:, :, :7, :8], w, b))
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, stride=2, **opts), X, Wt, B)


def test_stride2_weights_grad_is_the_adjoint_of_stride2_weights():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((4, 3, 7, 5))
    g2 = rng.standard_normal(kernels.stride2_weights(u).shape)
    assert g2.shape == (4, 12, 4, 3)
    np.testing.assert_allclose(np.sum(kernels.stride2_weights(u) * g2),
                               np.sum(u * kernels.stride2_weights_grad(g2, 7, 5)), rtol=1e-12)


def _log_softmax_nll_ref(z, t, ignore_index):
    """numpy's formulas, row by row: log_softmax and the loss at the target."""
    with np.errstate(invalid="ignore"):  # -inf - -inf: NaN, as the kernel gives
        shifted = z - z.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    keep = t != ignore_index
    losses = np.where(keep, -logp[np.arange(len(t)), np.where(keep, t, 0)], 0)
    return logp, losses, int(keep.sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_nll_matches_reference_with_ignored_rows_and_extreme_logits(dtype):
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((9, 7)) * 30).astype(dtype)
    z[3] = [9, 1, np.nan, 3, 4, 5, 6]  # NaN spreads to the row, as in numpy
    z[5] = 1e30  # equal huge logits: uniform
    z[6, :] = -np.inf  # all impossible: NaN, as in numpy
    t = rng.integers(0, 7, 9)
    t[[1, 4]] = -100
    logp, losses, count = kernels.log_softmax_nll(z, t, -100)
    want_logp, want_losses, want_count = _log_softmax_nll_ref(z, t, -100)
    assert count == want_count == 7 and logp.dtype == losses.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(logp, want_logp, rtol=tol, atol=tol)
    np.testing.assert_allclose(losses, want_losses, rtol=tol, atol=tol)
    scale = np.broadcast_to(np.asarray(0.25, dtype), (9,))
    g = kernels.softmax_minus_one_hot(logp, t, -100, scale)
    one_hot = np.eye(7, dtype=dtype)[np.where(t != -100, t, 0)] * (t != -100)[:, None]
    want_g = (np.exp(want_logp) * (t != -100)[:, None] - one_hot) * dtype(0.25)
    want_g[t == -100] = 0
    np.testing.assert_allclose(g, want_g, rtol=tol, atol=tol)


def test_log_softmax_nll_gives_nan_for_a_target_out_of_range():
    _, losses, _ = kernels.log_softmax_nll(np.zeros((2, 3)), np.array([3, -1]), -100)
    assert np.isnan(losses).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_kernel_path_gradchecks(reduction):
    from tinygrad_edu.nn import functional as F
    x = _leaf(np.random.default_rng(4), 6, 5)
    t = Tensor(np.array([0, 4, -100, 2, 2, 1]))
    assert gradcheck(lambda x: F.cross_entropy(x, t, reduction=reduction), x)


@pytest.mark.parametrize("x_shape, w_shape, stride", [
    ((2, 3, 12, 12), (8, 3, 3, 3), 1),  # few channels: the direct weight gradient
    ((2, 64, 8, 8), (32, 64, 1, 1), 1),  # im2col + GEMM
    ((2, 3, 12, 12), (8, 3, 3, 3), 2),  # stride 2: over the input's phases
])
def test_conv_weight_gradients_become_grad_without_a_copy(x_shape, w_shape, stride,
                                                         monkeypatch):
    """The conv's weight gradient is an array that owns its memory, so backward adopts it as
    .grad instead of copying it (a view of one is copied: 2.4 ms of a ResNet-18 step); the
    values stay float64's."""
    from tinygrad_edu import autograd
    handed = []
    accumulate = autograd._accumulate
    monkeypatch.setattr(autograd, "_accumulate",
                        lambda t, g, owned: handed.append(g) or accumulate(t, g, owned))
    rng = np.random.default_rng(7)
    x = Tensor(rng.standard_normal(x_shape).astype(np.float32))
    w = Tensor(rng.standard_normal(w_shape).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(w_shape[0], np.float32), requires_grad=True)
    conv2d(x, w, b, stride=stride).sum().backward()
    assert [g.base for g in handed] == [None, None]
    assert {id(g) for g in handed} == {id(w.grad.array), id(b.grad.array)}
    w64 = Tensor(w.array, dtype=np.float64, requires_grad=True)
    conv2d(Tensor(x.array, dtype=np.float64), w64, stride=stride).sum().backward()
    np.testing.assert_allclose(w.grad.array, w64.grad.array, rtol=1e-4, atol=1e-3)
