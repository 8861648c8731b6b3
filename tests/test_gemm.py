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
    yield "both transposed", np.ascontiguousarray(a32.T).T, np.ascontiguousarray(b32.T).T
    yield "b a slice of wider rows", a32, wide[:, 3:3 + n]  # a band of a conv's rows
    aligned = np.zeros((k, 128 * -(-(n + 3) // 128)), np.float32)  # rows 512 B apart: packed
    aligned[:, 3:3 + n] = b32  # (with 64 rows of a or more), panel rows copied as vectors
    yield "b rows a multiple of 512 B apart", a32, aligned[:, 3:3 + n]
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


def test_the_rule_float32_only_on_an_avx512_host(monkeypatch):
    gemm.set_enabled(None)
    monkeypatch.setattr(gemm, "_host_lanes", lambda: 16)
    assert gemm.enabled(np.float32) and not gemm.enabled(np.float64)
    monkeypatch.setattr(gemm, "_host_lanes", lambda: 0)
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
         ((2, 64, 8, 8), (64, 64, 3, 3), {"padding": 1}),  # Winograd's path (_winograd_fits)
         ((3, 3, 13, 12), (8, 3, 7, 7), {"stride": 2, "padding": 3})]  # over 4 phases, on


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


@pytest.fixture
def split_calls(monkeypatch):
    """Three threads, and the task counts of gemm's parallel_for calls (a list) while the test
    runs: the test lowers the grain it splits by, computes, then checks the counts."""
    import tinygrad_edu as tg
    from tinygrad_edu import parallel
    before = tg.get_num_threads()
    tg.set_num_threads(3)
    calls, real, native = [], parallel.parallel_for, parallel.native_for
    monkeypatch.setattr(gemm, "parallel_for", lambda fn, n: calls.append(n) or real(fn, n))
    monkeypatch.setattr(gemm, "native_for",
                        lambda fn, args, n: calls.append(n) or native(fn, args, n))
    yield calls
    tg.set_num_threads(before)


@pytest.mark.parametrize("m, n", [(20, 300), (300, 20)])  # split over columns, then rows
def test_a_large_product_split_over_the_threads_equals_one_thread_bit_for_bit(ours, monkeypatch,
                                                                             split_calls, m, n):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((m, 70)).astype(np.float32)
    b = rng.standard_normal((70, n)).astype(np.float32)
    whole = gemm.matmul(a, b, out=np.empty((m, n), np.float32))  # small: one task
    start = rng.standard_normal((m, n)).astype(np.float32)
    assert not split_calls
    monkeypatch.setattr(gemm, "_SPLIT_MACS", 1)
    split = gemm.matmul(a, b, out=np.empty((m, n), np.float32))
    added = gemm.matmul(a, b, out=start.copy(), accumulate=True)
    assert split_calls and min(split_calls) > 1
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(added, start + whole, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpys_products_are_split_over_the_threads_too(monkeypatch, split_calls, dtype):
    """Where our kernel does not run, a large product is still split over our threads (numpy's
    BLAS is pinned to one): in pieces of out's longer side, each numpy's own product."""
    rng = np.random.default_rng(8)
    gemm.set_enabled(False)
    monkeypatch.setattr(gemm, "_SPLIT_MACS", 1)
    try:
        for m, n in [(20, 300), (300, 20)]:
            a, b = rng.standard_normal((m, 70)).astype(dtype), rng.standard_normal((70, n))
            b = b.astype(dtype).T.copy().T  # columns contiguous, as w.T
            start = rng.standard_normal((m, n)).astype(dtype)
            split = gemm.matmul(a, b, out=np.empty((m, n), dtype))
            added = gemm.matmul(a, b, out=start.copy(), accumulate=True)
            reference = a.astype(np.float64) @ b.astype(np.float64)
            np.testing.assert_allclose(split, reference, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(added, start + reference, rtol=1e-5, atol=1e-4)
        with pytest.raises(ValueError):  # an out of the wrong shape: numpy's refusal, whole
            gemm.matmul(a, b, out=np.empty((m, n + 1), dtype))
    finally:
        gemm.set_enabled(None)
    assert len(split_calls) == 4 and min(split_calls) > 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_k_of_one_is_a_broadcast_multiply_with_numpys_values(monkeypatch, dtype):
    """a (M, 1) @ b (1, N), a linear layer with one output's input gradient: the multiply, not
    numpy's GEMM, and the same values bit for bit, b a row of a wider array included."""
    rng = np.random.default_rng(9)
    gemm.set_enabled(False)
    monkeypatch.setattr(gemm, "_numpy_product", None)  # calling it would raise TypeError
    try:
        a = rng.standard_normal((32, 1)).astype(dtype)
        b = rng.standard_normal((4, 1024)).astype(dtype)[1:2]  # rows 4096 bytes apart
        start = rng.standard_normal((32, 1024)).astype(dtype)
        np.testing.assert_array_equal(gemm.matmul(a, b, out=np.empty((32, 1024), dtype)),
                                      np.matmul(a, b))
        np.testing.assert_array_equal(gemm.matmul(a, b, out=start.copy(), accumulate=True),
                                      start + np.matmul(a, b))
    finally:
        gemm.set_enabled(None)


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


@pytest.mark.parametrize("shape", [(16, 64, 64, 256), (3, 13, 300, 70), (1, 1, 1, 1),
                                   (2, 9, 40, 1025)])
def test_batched_matmul_runs_each_product_on_our_kernel_in_one_call(ours, monkeypatch, shape):
    """out[k] = a[k] @ b[k] for every k (Winograd's 16 products per band), all of them in one
    call of the compiled loop, against a float64 reference."""
    B, m, k, n = shape
    rng = np.random.default_rng(m + n)
    a = rng.standard_normal((B, m, k)).astype(np.float32)
    b = rng.standard_normal((B, k, n)).astype(np.float32)
    calls = []
    batched = gemm._batched
    monkeypatch.setattr(gemm, "_batched", lambda *args: calls.append(1) or batched(*args))
    out = np.full((B, m, n), np.nan, np.float32)  # every value must be written
    assert gemm.batched_matmul(a, b, out=out) is out
    assert calls == [1]
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=0,
                               atol=1e-6 * np.sqrt(k) * max(1.0, np.abs(expected).max()))


def test_a_winograd_conv_makes_each_bands_products_in_one_call(ours, monkeypatch):
    """kernels.winograd_conv2d hands a band's 16 products to batched_matmul at once."""
    calls = []
    batched = gemm._batched
    monkeypatch.setattr(gemm, "_batched", lambda a, *rest: calls.append(a.shape) or
                        batched(a, *rest))
    x = np.random.default_rng(2).standard_normal((2, 64, 8, 8)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((64, 64, 3, 3)).astype(np.float32)
    conv2d(Tensor(x), Tensor(w), padding=1)
    assert calls and all(shape == (16, 64, 64) for shape in calls)


def test_batched_matmul_is_numpy_where_our_kernel_does_not_take_the_operands(monkeypatch):
    """Off, float64, or an operand that is not C-contiguous: np.matmul exactly; and shapes
    that do not multiply are refused before the kernel reads past them."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 9, 33)).astype(np.float32)
    b = rng.standard_normal((4, 33, 40)).astype(np.float32)
    monkeypatch.setattr(gemm, "_batched", None)  # must not be called
    cases = [(a.astype(np.float64), b.astype(np.float64), True),
             (np.ascontiguousarray(a.transpose(0, 2, 1)).transpose(0, 2, 1), b, True),
             (a, b, False)]
    for x, y, on in cases:
        gemm.set_enabled(on)
        try:
            out = np.empty((4, 9, 40), x.dtype)
            np.testing.assert_array_equal(gemm.batched_matmul(x, y, out=out), x @ y)
        finally:
            gemm.set_enabled(None)
    gemm.set_enabled(True)
    try:
        with pytest.raises(ValueError, match=r"needs \(B, M, K\) @ \(B, K, N\)"):
            gemm.batched_matmul(a, np.ones((4, 32, 40), np.float32),
                                out=np.empty((4, 9, 40), np.float32))
        with pytest.raises(ValueError, match="batched_matmul"):
            gemm.batched_matmul(a, b, out=np.empty((4, 9, 41), np.float32))
        frozen = np.empty((4, 9, 40), np.float32)
        frozen.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):  # numpy's words, not a Numba typing error
            gemm.batched_matmul(a, b, out=frozen)
    finally:
        gemm.set_enabled(None)


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


def _offset_reference(a, b, offsets, starts, L, bias):
    """offset_matmul by its definition, in float64."""
    rows = np.stack([np.stack([b[s + o:s + o + L] for o in offsets]) for s in starts])  # R,K,L
    return np.einsum("mk,rkl->mrl", a.astype(np.float64), rows) + bias[:, None, None]


@pytest.mark.parametrize("m, k, L, starts", [
    (8, 75, 64, [0, 96]),          # whole panels of rows and columns
    (13, 7, 45, [5, 0, 3]),        # a partial panel of rows and of columns, starts in any order
    (3, 1, 31, [2]),               # one tap, fewer rows than a panel
    (16, 300, 100, [0, 50, 70]),   # rows read overlapping (a conv's taps)
])
def test_offset_matmul_matches_float64_reference(m, k, L, starts):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    offsets = rng.integers(0, 200, k)
    starts = np.array(starts)
    b = rng.standard_normal(starts.max() + offsets.max() + -(-L // gemm.NR) * gemm.NR).astype(
        np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    out = np.full((m, len(starts), L), np.nan, np.float32)
    gemm.offset_matmul(gemm.pack_panels(a[::-1][::-1]), b, offsets, starts, out, bias)
    expected = _offset_reference(a, b.astype(np.float64), offsets, starts, L, bias)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    gemm.offset_matmul(gemm.pack_panels(a), b, offsets, starts[:0], out[:, :0], None)  # no rows
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_offset_matmul_writes_only_its_slice_of_out():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((9, 20)).astype(np.float32)
    b = rng.standard_normal(500).astype(np.float32)
    offsets, starts = np.arange(20) * 3, np.array([0, 40])
    out = np.zeros((9, 4, 70), np.float32)
    gemm.offset_matmul(gemm.pack_panels(a), b, offsets, starts, out[:, 1:3, 3:67])
    expected = _offset_reference(a, b, offsets, starts, 64, np.zeros(9))
    np.testing.assert_allclose(out[:, 1:3, 3:67], expected, rtol=0, atol=1e-5 * 20)
    out[:, 1:3, 3:67] = 0
    assert not out.any()


def test_offset_matmul_refuses_reads_past_b_and_wrong_shapes():
    a = gemm.pack_panels(np.ones((4, 3), np.float32))
    out = np.empty((4, 2, 40), np.float32)
    offsets, starts = np.array([0, 1, 2]), np.array([0, 10])
    reach = 10 + 2 + -(-40 // gemm.NR) * gemm.NR  # the last row's last panel of columns
    with pytest.raises(ValueError, match=f"read up to value {reach} of b, which has {reach - 1}"):
        gemm.offset_matmul(a, np.zeros(reach - 1, np.float32), offsets, starts, out)
    gemm.offset_matmul(a, np.zeros(reach, np.float32), offsets, starts, out)  # exactly enough
    with pytest.raises(ValueError, match="shape"):
        gemm.offset_matmul(a, np.zeros(reach, np.float32), offsets[:2], starts, out)
    with pytest.raises(ValueError, match="read up to"):
        gemm.offset_matmul(a, np.zeros(reach, np.float32), offsets - 1, starts, out)


@pytest.mark.parametrize("m, k, L, runs", [
    (4, 6, 16, 1),      # one tile
    (5, 7, 32, 3),      # partial tiles of a's rows and of b's
    (9, 200, 48, 300),  # more runs than a chunk (_DOT_VALUES), more rows than _DOT_TAPS
])
def test_offset_dots_match_float64_reference(m, k, L, runs):
    rng = np.random.default_rng(2)
    a_step, b_step = L + 8, L + 24
    a = rng.standard_normal(m * 40 + runs * a_step).astype(np.float32)
    b = rng.standard_normal(k * 10 + runs * b_step).astype(np.float32)
    a_rows, b_rows = rng.integers(0, m * 40, m), rng.integers(0, k * 10, k)

    def rows(v, starts, step):  # (rows, runs * L) in float64
        return np.stack([np.concatenate([v[s + r * step:s + r * step + L] for r in range(runs)])
                         for s in starts]).astype(np.float64)

    expected = rows(a, a_rows, a_step) @ rows(b, b_rows, b_step).T
    got = gemm.offset_dots(a, a_rows, b, b_rows, L, runs, a_step, b_step)
    assert got.shape == (m, k) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * np.abs(expected).max())


def test_offset_dots_refuse_rows_past_the_arrays_and_partial_vectors():
    a, b = np.ones(64, np.float32), np.ones(64, np.float32)
    assert gemm.offset_dots(a, np.array([0, 16]), b, np.array([32]), 16, 2, 16, 16).tolist() == \
        [[32.0], [32.0]]
    with pytest.raises(ValueError, match="reaching value 65 of a"):
        gemm.offset_dots(a, np.array([1, 33]), b, np.array([32]), 16, 2, 16, 16)
    half = gemm.LANES // 2  # rows of half a vector
    with pytest.raises(ValueError, match=f"multiple of {gemm.LANES}"):
        gemm.offset_dots(a, np.array([0]), b, np.array([0]), half, 1, half, half)


def test_offset_products_split_over_the_threads_equal_one_thread_bit_for_bit(monkeypatch,
                                                                              split_calls):
    """offset_matmul splits over runs of (output row, panel of columns), some ending inside a
    row, offset_dots over a's rows: the same sums."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((13, 30)).astype(np.float32)
    b = rng.standard_normal(3000).astype(np.float32)
    offsets, starts = rng.integers(0, 500, 30), np.arange(7) * 300
    g_rows, b_rows = rng.integers(0, 1000, 13), rng.integers(0, 1000, 30)
    packed = gemm.pack_panels(a)

    def both():
        out = np.empty((13, 7, 100), np.float32)
        gemm.offset_matmul(packed, b, offsets, starts, out)
        return out, gemm.offset_dots(b, g_rows, b, b_rows, 64, 5, 320, 350)

    whole = both()  # small: one task each
    assert max(split_calls) == 1  # packing a, then the two products, each one task
    split_calls.clear()
    monkeypatch.setattr(gemm, "_OFFSET_MACS", 1)
    split = both()
    assert len(split_calls) == 2 and min(split_calls) > 1
    for got, want in zip(split, whole):
        np.testing.assert_array_equal(got, want)
