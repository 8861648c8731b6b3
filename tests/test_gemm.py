"""tinygrad_edu.gemm: our float32 GEMM against a float64 reference, for every edge of its blocking
(rows and columns that do not fill a panel, k longer than a block, several column blocks), the
layouts the convolutions and linear layers hand it (transposed views, row slices, strided
outputs, a's and b's rows read in place or packed), accumulation, and the rule that decides
where it runs; then convolutions in float32 with it on and off."""
import numpy as np
import pytest

from tinygrad_edu import gemm
from tinygrad_edu.ops_cnn import conv2d
from tinygrad_edu.tensor import Tensor


@pytest.fixture
def ours():
    """Our kernel for float32, whatever this machine's rule says (it runs on any CPU, only
    slower without AVX-512)."""
    gemm.set_enabled(True)
    yield
    gemm.set_enabled(None)


def _layouts(rng, m, k, n):
    """(a, b) of shape (m, k), (k, n) in the layouts the convs pass."""
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    wide = np.zeros((k, n + 5), np.float32)
    wide[:, 3:3 + n] = b32
    yield "contiguous", a32, b32
    yield "a transposed", np.ascontiguousarray(a32.T).T, b32
    yield "b transposed", a32, np.ascontiguousarray(b32.T).T  # the weight gradient's col.T
    yield "b a slice of wider rows", a32, wide[:, 3:3 + n]  # a band of a conv's rows
    yield "a's rows reversed", a32[::-1], b32  # not read in place: packed
    yield "a one row repeated", np.broadcast_to(a32[:1], (m, k)), b32  # row stride 0: packed


SHAPES = [(1, 1, 1), (3, 5, 7), (8, 256, 32), (13, 300, 70), (129, 257, 1025), (64, 600, 455),
          (9, 40, 2050)]


@pytest.mark.parametrize("m, k, n", SHAPES)
def test_matmul_matches_float64_reference_in_every_layout(ours, m, k, n):
    rng = np.random.default_rng(m * 1000 + n)
    for name, a, b in _layouts(rng, m, k, n):
        expected = a.astype(np.float64) @ b.astype(np.float64)
        tol = 1e-6 * np.sqrt(k) * max(1.0, np.abs(expected).max())
        out = np.full((m, n), np.nan, np.float32)  # every value must be written
        assert gemm.matmul(a, b, out=out) is out
        np.testing.assert_allclose(out, expected, rtol=0, atol=tol, err_msg=name)
        start = rng.standard_normal((m, n)).astype(np.float32)
        out = start.copy()
        gemm.matmul(a, b, out=out, accumulate=True)
        np.testing.assert_allclose(out, start + expected, rtol=0, atol=tol, err_msg=name)


def test_matmul_writes_strided_outputs_and_only_them(ours):
    """out a transposed view, and a block of a larger array (whose other values stay)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, 300)).astype(np.float32)
    b = rng.standard_normal((300, 70)).astype(np.float32)
    expected = a.astype(np.float64) @ b
    out_t = np.zeros((70, 20), np.float32).T
    gemm.matmul(a, b, out=out_t)
    np.testing.assert_allclose(out_t, expected, rtol=0, atol=1e-4)
    big = np.full((30, 100), 7.0, np.float32)
    gemm.matmul(a, b, out=big[5:25, 10:80])
    np.testing.assert_allclose(big[5:25, 10:80], expected, rtol=0, atol=1e-4)
    big[5:25, 10:80] = 7.0
    assert (big == 7.0).all()


def test_b_rows_a_multiple_of_4_kb_apart_take_the_packed_path_and_agree(ours):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((24, 70)).astype(np.float32)
    b = rng.standard_normal((70, 1024)).astype(np.float32)  # rows 4 KB apart: packed
    expected = a.astype(np.float64) @ b
    out = np.empty((24, 1024), np.float32)
    np.testing.assert_allclose(gemm.matmul(a, b, out=out), expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(gemm.matmul(a, b[:, :1000], out=out[:, :1000]),
                               expected[:, :1000], rtol=0, atol=1e-4)


def test_empty_sizes(ours):
    out = np.full((4, 3), 5.0, np.float32)
    gemm.matmul(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32), out=out)
    assert (out == 0).all()  # a sum of nothing
    out[...] = 5.0
    gemm.matmul(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32), out=out,
                accumulate=True)
    assert (out == 5).all()
    gemm.matmul(np.zeros((0, 2), np.float32), np.zeros((2, 3), np.float32),
                out=np.empty((0, 3), np.float32))


def test_the_rule_float32_only_avx512_host_and_a_narrower_blas(monkeypatch):
    gemm.set_enabled(None)
    monkeypatch.setattr(gemm, "_host_has_avx512", lambda: True)
    monkeypatch.setattr(gemm, "_blas_lacks_avx512", lambda: True)
    assert gemm.enabled(np.float32) and not gemm.enabled(np.float64)
    monkeypatch.setattr(gemm, "_blas_lacks_avx512", lambda: False)
    assert not gemm.enabled(np.float32)
    monkeypatch.setattr(gemm, "_blas_lacks_avx512", lambda: True)
    monkeypatch.setattr(gemm, "_host_has_avx512", lambda: False)
    assert not gemm.enabled(np.float32)
    gemm.set_enabled(True)
    try:
        assert gemm.enabled(np.float32) and not gemm.enabled(np.float64)
    finally:
        gemm.set_enabled(None)


def test_off_and_float64_are_numpy_matmul(monkeypatch):
    """Where the rule says no (or the dtype is not float32), matmul is np.matmul exactly."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((9, 33)).astype(dtype)
        b = rng.standard_normal((33, 40)).astype(dtype)
        gemm.set_enabled(False)
        try:
            out = np.empty((9, 40), dtype)
            np.testing.assert_array_equal(gemm.matmul(a, b, out=out), a @ b)
            np.testing.assert_array_equal(gemm.matmul(a, b, out=out, accumulate=True), 2 * (a @ b))
        finally:
            gemm.set_enabled(None)


CONVS = [((2, 3, 9, 9), (5, 3, 3, 3), {"padding": 1}),
         ((2, 16, 10, 10), (8, 16, 3, 3), {"stride": 2, "padding": 1}),
         ((3, 6, 7, 7), (9, 6, 1, 1), {}),
         ((2, 8, 9, 9), (8, 2, 3, 3), {"groups": 4, "padding": 1}),
         ((2, 64, 6, 6), (64, 64, 3, 3), {"padding": 1})]  # Winograd's path


@pytest.mark.parametrize("x_shape, w_shape, opts", CONVS)
def test_float32_convs_agree_with_our_gemm_on_and_off(x_shape, w_shape, opts):
    """Forward and both gradients in float32: with our GEMM as with numpy's, to float32 rounding."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    results = []
    for on in (True, False):
        gemm.set_enabled(on)
        try:
            X, W, B = (Tensor(v, requires_grad=True) for v in (x, w, b))
            y = conv2d(X, W, B, **opts)
            y.backward(Tensor(np.ones(y.shape, np.float32)))
            results.append([y.array, X.grad.array, W.grad.array, B.grad.array])
        finally:
            gemm.set_enabled(None)
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("threads", [1, 3])
def test_packed_operand_gives_the_same_products_bit_for_bit(ours, monkeypatch, threads):
    """pack(a) once, then products with several b: the values matmul(a, b) computes, to the
    bit (same panels, same order of sums), whether pack ran in one task or split into many,
    and the values of the same a with contiguous rows, which matmul reads in place (so pack
    returns such an a itself)."""
    import tinygrad_edu as tg
    before = tg.get_num_threads()
    tg.set_num_threads(threads)
    monkeypatch.setattr(gemm, "_PACK_GRAIN", 1)  # as many pack tasks as there are threads
    try:
        rng = np.random.default_rng(5)
        rows = rng.standard_normal((45, 300)).astype(np.float32)
        assert gemm.pack(rows) is rows
        for a in (np.asfortranarray(rows), np.repeat(rows, 2, axis=1)[:, ::2]):
            packed = gemm.pack(a)
            assert isinstance(packed, gemm.Packed) and packed.shape == a.shape
            for n in (1, 33, 100):
                b = rng.standard_normal((300, n)).astype(np.float32)
                want = gemm.matmul(a, b, out=np.empty((45, n), np.float32))
                got = gemm.matmul(packed, b, out=np.empty((45, n), np.float32))
                np.testing.assert_array_equal(got, want)
                in_place = gemm.matmul(rows, b, out=np.empty((45, n), np.float32))
                np.testing.assert_array_equal(got, in_place)
    finally:
        tg.set_num_threads(before)


def test_pack_is_the_array_itself_where_our_kernel_does_not_run():
    a = np.ones((4, 5), np.float32)
    gemm.set_enabled(False)
    try:
        assert gemm.pack(a) is a
    finally:
        gemm.set_enabled(None)
    a64 = np.ones((4, 5))  # float64: numpy's GEMM
    assert gemm.pack(a64) is a64


def test_a_packed_operand_still_multiplies_when_our_kernel_is_switched_off(ours):
    a = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))  # columns contiguous
    b = np.ones((4, 2), np.float32)
    packed = gemm.pack(a)
    assert isinstance(packed, gemm.Packed)
    gemm.set_enabled(False)
    np.testing.assert_array_equal(gemm.matmul(packed, b, out=np.empty((3, 2), np.float32)), a @ b)


@pytest.mark.parametrize("m, n", [(20, 300), (300, 20)])  # split over columns, then rows
def test_a_large_product_split_over_the_threads_equals_one_thread_bit_for_bit(ours, monkeypatch,
                                                                             m, n):
    import tinygrad_edu as tg
    from tinygrad_edu import parallel
    rng = np.random.default_rng(6)
    a = rng.standard_normal((m, 70)).astype(np.float32)
    b = rng.standard_normal((70, n)).astype(np.float32)
    whole = gemm.matmul(a, b, out=np.empty((m, n), np.float32))
    before = tg.get_num_threads()
    tg.set_num_threads(3)
    monkeypatch.setattr(gemm, "_SPLIT_MACS", 1)
    calls, real = [], parallel.parallel_for
    monkeypatch.setattr(gemm, "parallel_for", lambda fn, n: calls.append(n) or real(fn, n))
    try:
        split = gemm.matmul(a, b, out=np.empty((m, n), np.float32))
        start = rng.standard_normal((m, n)).astype(np.float32)
        added = gemm.matmul(a, b, out=start.copy(), accumulate=True)
    finally:
        tg.set_num_threads(before)
    assert calls and min(calls) > 1
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(added, start + whole, rtol=1e-6, atol=1e-5)


def test_operands_that_do_not_fit_are_refused_as_numpy_refuses_them(ours):
    """The kernel reads within the shapes it is given: a mismatch must stop before it."""
    a, b = np.ones((3, 4), np.float32), np.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match="as many rows as a has columns"):
        gemm.matmul(a, b, out=np.empty((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"out the shape \(a's rows"):
        gemm.matmul(a, np.ones((4, 2), np.float32), out=np.empty((3, 3), np.float32))
    with pytest.raises(ValueError):  # numpy's own refusal where our kernel is off
        gemm.set_enabled(False)
        gemm.matmul(a, b, out=np.empty((3, 2), np.float32))


def test_small_products_go_to_numpy_under_the_rule_and_to_ours_when_forced(monkeypatch):
    """Under the machine's rule, a product numpy does faster (few columns, or few
    multiply-adds) never reaches our kernel; set_enabled(True) sends it there too."""
    calls = []
    monkeypatch.setattr(gemm, "_product", lambda *args: calls.append(args[0].shape))
    monkeypatch.setattr(gemm, "enabled", lambda dtype=np.float32: True)
    a, out = np.ones((32, 128), np.float32), np.empty((32, 10), np.float32)
    gemm.matmul(a, np.ones((128, 10), np.float32), out=out)  # MLP3's last layer
    np.testing.assert_array_equal(out, 128)
    gemm.matmul(a, np.ones((128, 64), np.float32), out=np.empty((32, 64), np.float32))
    assert calls == [(32, 128)]  # only the product of 512K multiply-adds
    gemm.set_enabled(True)
    try:
        gemm.matmul(a, np.ones((128, 10), np.float32), out=out)
    finally:
        gemm.set_enabled(None)
    assert calls == [(32, 128)] * 2
