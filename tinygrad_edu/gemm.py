"""Our float32 GEMM, `matmul(a, b, out)`: out = a @ b for 2-D arrays of any strides, used by
the convolutions (ops_cnn, kernels.winograd_conv2d) and the linear layers (ops.Linear) where
it beats numpy's BLAS: `enabled()`.

Why our own: numpy's OpenBLAS may run narrower vector kernels than the CPU has, and its own
threads would spin against ours (parallel.py pins it to one). On the benchmark machine (an
AVX-512 AMD EPYC), measured at one thread (float32, 2026-12-01): where the environment set
OPENBLAS_CORETYPE=Haswell, so that OpenBLAS multiplied 8 floats per instruction where the CPU
can do 16, the conv GEMMs' shapes ran at 156-255 GFLOP/s with this kernel and 110-135 with
OpenBLAS. Where OpenBLAS runs its AVX-512 ("SkylakeX") kernels (2026-12-02), a product alone is
about as fast either way (MLP3 b128's two largest, ours vs OpenBLAS's: 760 vs 719 us, 628 vs
604), but the models' steps are faster on ours (split over our threads, read in place, the
stride-1 convs and Winograd's products on it; alternating, one thread: CNN3 b32 9.95 -> 8.33
ms, LeNet-5 79.9 -> 64.9, ResNet-18 397 -> 368, the VGG block 146 -> 119; two threads: MLP3
b128 3.04 -> 2.55, LeNet-5 58.9 -> 42.5). So it is used wherever the host has AVX-512 and the
arrays are float32; everywhere else `matmul` is np.matmul. On an AVX2 host (a Zen 3 EPYC,
2026-12-02) the kernel takes the shape of its 16 registers of 8 floats (below) and its tile
runs at 80 GFLOP/s in cache, but whole products trail OpenBLAS's Zen kernels (one thread:
35-76 GFLOP/s against 61-81) and so do the steps (alternating, two threads, ours vs numpy's:
MLP3 b128 3.83 vs 3.64 ms, CNN3 b32 13.18 vs 11.83, LeNet-5 97.5 vs 90.5, the VGG block 151 vs
143; only the line network gains, 31.3 vs 40.1): there it runs only when forced on
(`set_enabled(True)`, as the tests do).

How (the blocking of Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
2008, as BLIS and OpenBLAS do it): a block of b (KC x NC values, sized for L2) and a block of a
(MC x KC) are copied ("packed") into panels NR = 32 columns and MR = 8 rows wide (with
AVX-512), laid out in the order the micro-kernel reads them. The micro-kernel computes one MR x NR tile of the product
over the KC-long panels in 16 vector registers of 16 floats: per step of k it loads two vectors
of b's panel, broadcasts each of the 8 values of a's panel and does 16 fused multiply-adds, so
it runs at the speed of the multiply-adds, not of memory. Numba's loop vectoriser cannot keep
such accumulators in registers (it loads and stores them every step: 95-130 GFLOP/s measured),
so the micro-kernel is written in LLVM IR with llvmlite (`_tile`, a Numba intrinsic); the
packing, the loops and the edges are plain Numba. Packing reads any strides, so a transposed
operand (im2col's columns for the weight gradient, w^T for the input gradient) needs no copy
of its own; a's panels and b's are even read in place when their rows are contiguous
(`_gemm`), and x @ w.T with few rows of x is computed as (w @ x.T).T, which reads w in
place. Rows or columns that do not fill a panel are padded with zeros: the products they
give fall outside `out` and are dropped, but stale memory there could hold NaNs or
denormals, which would slow the multiply-adds down. A product called outside a parallel
task is split over the threads (`matmul`); inside one (a conv's band) it runs in that task's
thread. Products numpy does faster (small ones) go to numpy (`_small`).

Two more products serve the stride-1 convolutions without im2col ("implicit GEMM"): in
`offset_matmul` b's rows lie anywhere in a flat array (a conv's taps are its padded input's
rows, shifted), read by the same micro-kernel; `offset_dots`, the weight gradient's
a @ b.T of such rows, has its own micro-kernel of 4 x 6 dot products (`_dot_kernel`).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .parallel import chunks, native_for, parallel_for, tasks_for
from .spin import TASK_SIGNATURE, floats_at, ints_at


@functools.cache
def _host_lanes() -> int:
    """float32 values per vector register of this host's widest fused multiply-add: 16 with
    AVX-512, 8 with AVX2 and FMA, 0 without either."""
    import llvmlite.binding as llvm  # the compiler Numba uses: what it compiles for
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 16
    return 8 if features.get("avx2") and features.get("fma") else 0


# The kernel's shape follows the registers: AVX-512 has 32 of 16 floats, AVX2 16 of 8. A tile
# of MR rows x 2 vectors keeps its accumulators, b's two vectors and a's broadcast in them
# (AVX-512: 8 x 32, 16 accumulators; AVX2: 6 x 16, 12 of 16 registers, as BLIS's Haswell
# kernel), and so does the dot kernel's _DOT_ROWS x _DOT_COLS tile (24 of 32; 12 of 16).
LANES = _host_lanes() or 16  # float32 values per vector register (16 where the host has none)
MR, NR = (8, 2 * LANES) if LANES == 16 else (6, 2 * LANES)  # the micro-kernel's tile
# blocks: a's MC x KC (128 KB; 120 KB) and b's KC x NC (1 MB) stay in L2; MC whole panels
KC, MC, NC = 256, 128 if MR == 8 else 120, 1024
_DOT_ROWS, _DOT_COLS = (4, 6) if LANES == 16 else (3, 4)  # the dot kernel's tile
_PACK_ROWS = 32  # rows of b (or of a.T) packed at a time (_pack)
_PACK_GRAIN = 1 << 16  # a parallel task of pack(): at least 64K values (a copy, ~30 us)
_NUMPY_MACS = 1 << 17  # smaller products go to numpy's GEMM (_small)
_SPLIT_MACS = 1 << 21  # a matmul called outside a task is split from 2M multiply-adds (~10 us)
_OFFSET_MACS = 1 << 22  # offset_matmul and offset_dots: tasks of 4M (a conv's, ops_cnn)


_forced: bool | None = None  # set_enabled's choice; None: the rule of enabled()


def enabled(dtype=np.float32) -> bool:
    """Whether matmul runs our kernel for arrays of `dtype` (float32 only) on this machine."""
    if np.dtype(dtype) != np.float32:
        return False
    if _forced is not None:
        return _forced
    return _host_lanes() == 16


def set_enabled(value: bool | None) -> None:
    """Force our kernel on (True: for every float32 product, the small ones numpy does faster
    included) or off (False), as benchmarks and tests do; None restores the rule of enabled()
    and of matmul's small products."""
    global _forced
    _forced = value


class Packed(NamedTuple):
    """An operand a (M, K) packed once into its MR-row panels over the whole of K (`pack`), for
    several products with the same a whose rows are not contiguous: w^T against each band of a
    conv's output gradient (contiguous rows are read in place instead)."""
    panels: np.ndarray
    source: np.ndarray  # a itself

    @property
    def shape(self) -> tuple:
        return self.source.shape

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype


def pack(a: np.ndarray) -> Packed | np.ndarray:
    """a, packed for matmul's first operand, so that products with the same a do not each pack
    it again; a itself where our kernel does not run, or reads a's rows in place (contiguous
    rows: faster than packing them once, ResNet-18 at one thread 227.6 -> 221.7 ms).

        w_t = pack(w.T)                        # (C*KH*KW, OC), columns contiguous
        for band in bands: matmul(w_t, gy[band], out=gcol[band])
    """
    if not enabled(a.dtype) or _rows_contiguous(a):
        return a
    return pack_panels(a)


def pack_panels(a: np.ndarray) -> Packed:
    """a (M, K) float32 of any strides copied into its MR-row panels over the whole of K (the
    last one padded with zero rows), as matmul and offset_matmul read them. Split over the
    threads in whole panels, as the caller usually waits for it before its own tasks."""
    M, K = a.shape
    n_panels = -(-M // MR)
    panels = np.empty(n_panels * MR * K, np.float32)
    runs = chunks(n_panels, tasks_for(M * K, _PACK_GRAIN))

    def task(i: int, worker: int) -> None:  # whole panels: rows p0*MR .. p1*MR
        p0, p1 = runs[i]
        rows = min(M, p1 * MR) - p0 * MR
        _pack_a(a, p0 * MR, rows, 0, K, panels[p0 * MR * K:p1 * MR * K])

    parallel_for(task, len(runs))
    return Packed(panels, a)


_NO_ARRAY, _NO_PANELS = np.empty((0, 0), np.float32), np.empty(0, np.float32)  # unused slots


def matmul(a: np.ndarray | Packed, b: np.ndarray, out: np.ndarray,
           accumulate: bool = False) -> np.ndarray:
    """out (M, N) = a (M, K) @ b (K, N), or out += a @ b when `accumulate`; any strides; a may
    come from pack().

        matmul(gy, col.T, out=gw)   # a conv's weight gradient, col read transposed
    """
    if not (enabled(a.dtype) and a.dtype == b.dtype == out.dtype) or (
            _forced is None and _small(a, b)):
        a = a.source if isinstance(a, Packed) else a
        if (a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]
                or out.shape != (a.shape[0], b.shape[1])):
            return _numpy_product(a, b, out, accumulate)  # (numpy's own errors, whole)
        product = _outer_product if a.shape[1] == 1 else _numpy_product
        return _split(a, b, out, accumulate, product)
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape != (M, N):  # the kernel does not check its bounds
        raise ValueError(f"gemm.matmul: a {a.shape} @ b {b.shape} into out {out.shape}: b needs "
                         f"as many rows as a has columns, and out the shape (a's rows, b's "
                         f"columns)")
    if (not isinstance(a, Packed) and b.strides[0] == 4 != b.strides[1]
            and (_rows_contiguous(a) or _rows_contiguous(a.T))
            and 2 * (M * N + M * K) < K * N):
        return _transposed_product(a, b, out, accumulate)  # b transposed, a small (x @ w.T)
    return _split(a, b, out, accumulate, _product)


def _split(a, b, out, accumulate: bool, product) -> np.ndarray:
    """product(a, b, out, accumulate) split over the threads along out's longer side, in
    whole panels, when called outside a parallel task and large enough: for numpy's GEMM too,
    as parallel.py pins OpenBLAS to one thread (without the split, an AVX2 host's linear
    layers ran on one core. Alternating, two threads, 2026-12-02: MLP3 b128 3.25 -> 3.02 ms and
    4.18 -> 3.82 (though 3.67 -> 4.03 in a first, noisier run), the line network 32.7 -> 25.7
    and 35.5 -> 29.2). Our kernel's pieces are native tasks (parallel.native_for), which a
    worker starts without waiting for the GIL: on an AVX-512 Xeon (2026-12-04, two threads)
    128 x 784 @ 784 x 256 248 -> 218 us (one thread 345), MLP3 b128's step 1.33 -> 1.24 ms
    and 1.27 -> 1.20 (alternating medians; the line network and LeNet-5 unchanged). Smaller
    products did not pay for a split within a step even so (4M multiply-adds per task: MLP3
    b128 1.29 -> 1.33 ms, though alone 128 x 256 @ 256 x 128 took 60 -> 50 us), until the
    native args were built in one compiled call (_product_args): then, on an AMD EPYC VM
    (2026-12-04, two threads, alternating medians), tasks of 2M rather than 8M took MLP3 b32
    0.414 -> 0.380 ms, b128 0.673 -> 0.657, CNN2, CNN3 and the line network unchanged."""
    (M, K), N = a.shape, b.shape[1]
    parts = tasks_for(M * N * K, _SPLIT_MACS)  # 1 inside a task (a conv's band) or when small
    if parts == 1 or isinstance(a, Packed):
        product(a, b, out, accumulate)
        return out
    by_columns = N >= M
    if (product is _product and a.dtype == np.float32 and a.flags.writeable
            and b.flags.writeable and out.flags.writeable):
        args = _product_args(a, b, out, accumulate, _rows_contiguous(a), by_columns, parts)
        if args.size:
            native_for(_native_product.address, args, (args.size - _HEADER) // 2)
            return out
    if by_columns:
        pieces = [(a, b[:, j0 * NR:j1 * NR], out[:, j0 * NR:j1 * NR])
                  for j0, j1 in chunks(-(-N // NR), parts)]
    else:
        pieces = [(a[i0 * MR:i1 * MR], b, out[i0 * MR:i1 * MR])
                  for i0, i1 in chunks(-(-M // MR), parts)]
    parallel_for(lambda i, worker: product(*pieces[i], accumulate), len(pieces))
    return out


# A product split into native tasks (parallel.native_for): args holds accumulate, whether a
# is read in place and whether the tasks take runs of out's columns (else of its rows), then
# the address, shape and steps (in values) of a, b and out, then each task's run (start, stop).
_HEADER = 3 + 3 * 5


@njit(cache=True)
def _product_args(a, b, out, accumulate, a_in_place, by_columns, parts):
    """The args of a native product of up to `parts` tasks (_native_product; as many as
    (size - _HEADER) // 2), each a run of whole panels of out's columns (by_columns) or rows,
    cut as parallel.chunks cuts; empty when an operand cannot be described to a native task
    (neither its rows nor its columns contiguous, or empty). One compiled call for what took
    9 us of Python (three ctypes addresses alone 2.3): 256 x 784 @ 784 x 32 in two tasks took
    44 us, its tasks 29."""
    width, size = (NR, out.shape[1]) if by_columns else (MR, out.shape[0])
    panels = -(-size // width)
    parts = min(parts, panels)
    args = np.empty(_HEADER + 2 * parts, np.int64)
    args[0], args[1], args[2] = accumulate, a_in_place, by_columns
    if not (_describe(a, args, 3) and _describe(b, args, 8) and _describe(out, args, 13)):
        return args[:0]
    for k in range(parts):
        args[_HEADER + 2 * k] = panels * k // parts * width
        args[_HEADER + 2 * k + 1] = min(size, panels * (k + 1) // parts * width)
    return args


@njit(cache=True, inline="always")
def _describe(x, args, at):
    """args[at:at + 5] = x's address, shape and steps in values, as _view reads them; False
    when x is empty or neither its rows nor its columns are contiguous with a positive step."""
    rows, columns = x.strides
    if x.size == 0 or not ((columns == 4 and rows > 0 and rows % 4 == 0) or (
            rows == 4 and columns > 0 and columns % 4 == 0)):
        return False
    args[at], args[at + 1], args[at + 2] = x.ctypes.data, x.shape[0], x.shape[1]
    args[at + 3], args[at + 4] = rows // 4, columns // 4
    return True


@njit(cache=True, nogil=True)
def _view(fields):
    """The 2-D float32 array that _describe gave `fields` of."""
    address, rows, columns, row_step, column_step = fields
    if column_step == 1:
        return carray(floats_at(address), (rows, max(row_step, columns)))[:, :columns]
    return carray(floats_at(address), (columns, max(column_step, rows)))[:, :rows].T


def _numpy_product(a, b, out, accumulate: bool) -> np.ndarray:
    """out (+)= a @ b by numpy (its BLAS, one thread)."""
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)
    return out


def _outer_product(a, b, out, accumulate: bool) -> np.ndarray:
    """out (+)= a @ b for a (M, 1) and b (1, N): a broadcast multiply, the same values (one
    product each) in a quarter of the time of numpy's GEMM, which packs both operands for a
    k of 1 (a linear layer with one output, as the line network's heads: its input gradient
    32 x 1 @ 1 x 1024 took 80 us, the multiply 19)."""
    if accumulate:
        out += a * b
    else:
        np.multiply(a, b, out=out)
    return out


def batched_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[k] = a[k] @ b[k] for every k of C-contiguous (B, M, K), (B, K, N) and (B, M, N)
    arrays, in the calling thread, in one call into our kernel where it runs (else
    np.matmul): Winograd's 16 products per band of tiles (kernels.winograd_conv2d). Every
    product goes to our kernel, the small ones matmul leaves to numpy included: what numpy
    saves them is our call's overhead, which one call does not have. One call, not B: each
    call from Python takes the GIL, and at two threads a task that wants it while the other
    thread holds it sleeps on it (~25 us here before it runs again, measured). Alternating
    with 16 matmul calls per band (2026-12-02, medians): ResNet-18's 64-channel 16x16
    Winograd conv at two threads 3.09 -> 2.06 ms, at one 4.27 -> 3.64 (a band's 16 calls
    217 us at one thread, 11.9 us per product alone; at two threads a band took 480-820 us
    with both threads running); steps at two threads ResNet-18 123.8 -> 121.9 ms, the VGG
    block 49.5 -> 46.0, at one 210.8 -> 195.8 and 74.8 -> 70.8."""
    if not (enabled(a.dtype) and a.dtype == b.dtype == out.dtype
            and a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous
            and a.flags.writeable and b.flags.writeable and out.flags.writeable):
        return np.matmul(a, b, out=out)  # (a read-only out: numpy's own refusal)
    if b.shape[:2] != (a.shape[0], a.shape[2]) or out.shape != a.shape[:2] + b.shape[2:]:
        raise ValueError(f"gemm.batched_matmul: a {a.shape} @ b {b.shape} into out "
                         f"{out.shape}: needs (B, M, K) @ (B, K, N) into (B, M, N)")
    _batched(a, b, out)
    return out


@njit(cache=True, nogil=True)
def _batched(a, b, out):
    none = np.empty(0, np.float32)  # no packed panels: a's rows are read in place
    for k in range(a.shape[0]):
        _gemm(a[k], none, False, a.shape[1], a.shape[2], b[k], out[k], False, True)


def _small(a, b) -> bool:
    """Products numpy's GEMM does faster, as ours costs ~3 us to call and computes 32 columns
    at a time: under 128K multiply-adds, or under 16 columns (measured at one thread: 32 x 128
    @ 128 x 10, MLP3's last layer, 5.4 us ours, 2.1 numpy; 128 x 128 @ 128 x 10: 9.0 vs 5.5;
    64 x 64 @ 64 x 64: 4.8 vs 5.6)."""
    return b.shape[1] < LANES or a.shape[0] * a.shape[1] * b.shape[1] < _NUMPY_MACS


def _transposed_product(a, b, out, accumulate: bool) -> np.ndarray:
    """out (+)= a @ b for a with contiguous rows or columns and b with contiguous columns (a
    linear layer's x @ w.T), where copying a (M x K) and out (M x N) costs less than half of
    packing b (K x N): as out.T = b.T @ a.T, so that b is read in place and only a is packed
    (packing a transposed operand is a scalar copy per value: 32 x 784 @ 784 x 256, 118 -> 68
    us at one thread), or read in place too when its columns are contiguous (a conv's
    batch-minor output flattened: the line network's 32 x 3872 @ 3872 x 1024, 10.2 -> 2.8 ms
    at one thread, its step 21.0 -> 17.2 ms at two); out.T is computed contiguous and then
    copied, faster than through the tile buffer (77 us). Without the size rule a conv's
    weight gradient (gy @ col.T, large out) took this way and made ResNet-18's step 25%
    slower."""
    t = matmul(b.T, a.T, out=np.empty((b.shape[1], a.shape[0]), np.float32))
    if accumulate:
        out += t.T
    else:
        out[...] = t.T
    return out


def _product(a, b, out, accumulate: bool) -> None:
    """One thread's matmul: our kernel on a or on its packed panels."""
    M, K = a.shape
    if isinstance(a, Packed):
        a, panels, in_place = _NO_ARRAY, a.panels, False
    else:
        panels, in_place = _NO_PANELS, _rows_contiguous(a)
    kernel = _gemm if a.flags.writeable and b.flags.writeable else _gemm_read_only
    kernel(a, panels, panels is not _NO_PANELS, M, K, b, out, accumulate, in_place)


def _rows_contiguous(x: np.ndarray) -> bool:
    """x's rows are contiguous float32 values, each further on than the last."""
    return x.strides[1] == 4 and x.strides[0] > 0 and x.strides[0] % 4 == 0


def _gemm_loops(a, packed_a, is_packed, M, K, b, out, accumulate, a_in_place):
    """The blocked loops around the micro-kernel; a's panels are packed block by block, read
    from packed_a (`pack`) when is_packed, or read in place (rows contiguous) when a_in_place,
    but for a last panel of fewer than MR rows. Every tile of a block is added into out (or
    stored, for the first block of k when not accumulating)."""
    N = b.shape[1]
    if K == 0 and not accumulate:
        out[:, :] = 0
    a_panels = packed_a if is_packed else np.empty(-(-min(M, MC) // MR) * MR * KC, np.float32)
    b_panels = np.empty(-(-min(N, NC) // NR) * NR * KC, np.float32)
    tile = np.empty(MR * NR, np.float32)
    lda = a.strides[0] // 4 if a_in_place else 0
    # b's panels are read in place when its rows are contiguous, unless they lie a multiple of
    # 4 KB apart: then a panel's rows share a few L1 sets and evict each other (measured: a
    # 128 x 64 x 1024 product at 183 GFLOP/s in place, 223 packed; 64 x 576 x 455: 230 vs 192),
    # or of 512 B apart (at most 16 of 64 sets) when a has 64 rows or more to reuse the packed
    # panels (2026-12-04, an AVX-512 Xeon, one thread, in place vs packed in one process:
    # 256 x 2304 @ 2304 x 512 126 vs 160 GFLOP/s, 512 x 128 @ 128 x 4608 124 vs 143, 512 x 4608
    # @ 4608 x 128 135 vs 149; with 32 rows or fewer packing lost: 32 x 128 @ 128 x 256 17.5 vs
    # 19.9 us, 32 x 256 @ 256 x 512 60.5 vs 72.8)
    ldb = b.strides[0] // 4
    b_rows = (b.strides[1] == 4 and b.strides[0] % 4 == 0 and ldb % 1024 != 0
              and (ldb % 128 != 0 or M < 64))
    for j0 in range(0, N, NC):
        nc = min(NC, N - j0)
        for k0 in range(0, K, KC):
            kc = min(KC, K - k0)
            if not b_rows:
                _pack_b(b, k0, kc, j0, nc, b_panels)
            elif nc % NR:  # only the last, partial panel
                _pack_b(b, k0, kc, j0 + nc - nc % NR, nc % NR, b_panels)
            add = accumulate or k0 > 0
            for i0 in range(0, M, MC):
                mc = min(MC, M - i0)
                if is_packed:  # panel p holds a's rows p*MR.. over all K, k after k
                    a_at, a_step = (i0 // MR) * K * MR + k0 * MR, K * MR
                elif a_in_place:  # only the last, partial panel, packed where it is read
                    a_at, a_step = -(mc // MR) * kc * MR, kc * MR
                    if mc % MR:
                        _pack_a(a, i0 + mc - mc % MR, mc % MR, k0, kc, a_panels)
                else:
                    _pack_a(a, i0, mc, k0, kc, a_panels)
                    a_at, a_step = 0, kc * MR
                for jp in range(-(-nc // NR)):
                    j = j0 + jp * NR
                    if b_rows and j + NR <= N:  # b's own rows
                        _column_of_tiles(a, lda, a_panels, a_at, a_step, mc, b, k0 * ldb + j,
                                         ldb, out, tile, i0, j, k0, kc, add)
                    else:
                        _column_of_tiles(a, lda, a_panels, a_at, a_step, mc, b_panels,
                                         0 if b_rows else jp * kc * NR, NR, out, tile, i0, j,
                                         k0, kc, add)


@njit(cache=True, nogil=True, inline="always")
def _column_of_tiles(a, lda, a_panels, a_at, a_step, mc, b, b_off, ldb, out, tile, i0, j, k0,
                     kc, add):
    """The tiles out[i0:i0+mc, j:j+NR] (+)= a's rows i0.. @ one NR-column panel of b (at b_off
    in b's memory, rows ldb apart). a's packed panels are in a_panels, the first at a_at, the
    next a_step further; when lda > 0 the whole panels are read from a itself (rows lda apart,
    columns from k0). Straight into out where a whole tile fits and out's rows are contiguous,
    else through the tile buffer."""
    M, N = out.shape
    direct = out.strides[1] == 4 and out.strides[0] % 4 == 0
    ld = out.strides[0] // 4
    for ip in range(-(-mc // MR)):
        i, a_off = i0 + ip * MR, a_at + ip * a_step
        in_place = lda > 0 and i + MR <= M
        if direct and i + MR <= M and j + NR <= N:
            if in_place:
                _tile_rows(a, i * lda + k0, lda, b, b_off, ldb, out, i * ld + j, ld, kc, add)
            else:
                _tile(a_panels, a_off, 0, b, b_off, ldb, out, i * ld + j, ld, kc, add)
        else:
            if in_place:
                _tile_rows(a, i * lda + k0, lda, b, b_off, ldb, tile, 0, NR, kc, False)
            else:
                _tile(a_panels, a_off, 0, b, b_off, ldb, tile, 0, NR, kc, False)
            _add_tile(tile, out, i, j, add)


@njit(cache=True, nogil=True, inline="always")
def _pack(src, k0, kc, j0, nc, width, panels):
    """src[k0:k0+kc, j0:j0+nc] -> panels `width` values wide, each kc x width, k after k,
    zero-padded: b's panels with width NR, and a's with width MR from src = a.T (_pack_a).
    Rows of src are copied _PACK_ROWS at a time across all the panels: going down one panel's
    column of rows instead reads rows a few KB apart, which share a few L1 sets (w^T of
    ResNet-18's 256-channel conv, rows 9 KB apart, 6.9 GB/s that way, 17 this way, in cache;
    its step at one thread 186.6 -> 182.9 ms). A transposed src (columns contiguous: a linear
    layer's w.T) is copied in LANES x LANES blocks transposed in registers (_transpose_block),
    the edges value by value: in cache 0.40 -> 0.17 ns per value (2026-12-04, an AVX-512 Xeon;
    MLP3's 128 x 784 @ 784 x 256 x @ w.T at one thread 410 -> 369 us, its b128 step at two
    1.31 -> 1.25 ms and 1.27 -> 1.25, alternating processes)."""
    n_panels = -(-nc // width)
    if src.strides[0] < src.strides[1]:  # src's columns are contiguous (a transposed view)
        blocks = src.strides[0] == 4 and src.strides[1] % 4 == 0 and width % LANES == 0
        ld, full_k = src.strides[1] // 4, kc - kc % LANES if blocks else 0
        for jp in range(n_panels):
            base = jp * kc * width
            used = min(width, nc - jp * width)
            full_j = used - used % LANES if blocks else 0
            for jb in range(0, full_j, LANES):  # LANES x LANES blocks, transposed in registers
                for kb in range(0, full_k, LANES):
                    _transpose_block(src, (j0 + jp * width + jb) * ld + k0 + kb, ld, panels,
                                     base + kb * width + jb, width)
            for j in range(used):  # the rest value by value
                column = src[k0:k0 + kc, j0 + jp * width + j]
                for k in range(full_k if j < full_j else 0, kc):
                    panels[base + k * width + j] = column[k]
    else:
        for kb in range(0, kc, _PACK_ROWS):
            for jp in range(n_panels):
                base = jp * kc * width
                used = min(width, nc - jp * width)
                for k in range(kb, min(kc, kb + _PACK_ROWS)):
                    row = src[k0 + k, j0 + jp * width:j0 + jp * width + used]
                    for j in range(used):
                        panels[base + k * width + j] = row[j]
    for jp in range(n_panels):
        base = jp * kc * width
        for k in range(kc):
            for j in range(min(width, nc - jp * width), width):
                panels[base + k * width + j] = 0


@njit(cache=True, nogil=True, inline="always")
def _pack_b(b, k0, kc, j0, nc, panels):
    """b[k0:k0+kc, j0:j0+nc] -> panels of NR columns, each kc x NR row after row. Where b's
    rows are contiguous, each whole panel's row is copied as vectors (_copy_row): in cache,
    0.30 ns per value as Numba's loop (12-13 GB/s), 0.08-0.10 as vectors (2026-12-04, an
    AVX-512 Xeon, one thread; products whose b is packed, rows 4 KB apart: 64 x 576 @ 576 x
    8192 6.46 -> 4.92-5.05 ms, 128 x 1152 @ 1152 x 2048 5.05 -> 4.56)."""
    if b.strides[1] == 4 and b.strides[0] % 4 == 0 and nc >= NR:
        ldb, full = b.strides[0] // 4, nc // NR
        for kb in range(0, kc, _PACK_ROWS):  # _PACK_ROWS rows across all the panels at a time
            for jp in range(full):
                for k in range(kb, min(kc, kb + _PACK_ROWS)):
                    _copy_row(b, (k0 + k) * ldb + j0 + jp * NR, panels, (jp * kc + k) * NR)
        if nc % NR:
            _pack(b, k0, kc, j0 + full * NR, nc % NR, NR, panels[full * kc * NR:])
    else:
        _pack(b, k0, kc, j0, nc, NR, panels)


@njit(cache=True, nogil=True, inline="always")
def _pack_a(a, i0, mc, k0, kc, panels):
    """a[i0:i0+mc, k0:k0+kc] -> panels of MR rows, each kc x MR column after column."""
    _pack(a.T, k0, kc, i0, mc, MR, panels)


@njit(cache=True, nogil=True, inline="always")
def _add_tile(tile, out, i, j, add):
    """out[i:i+MR, j:j+NR] (+)= tile, the part inside out."""
    for r in range(min(MR, out.shape[0] - i)):
        row = out[i + r]
        src = tile[r * NR:(r + 1) * NR]
        if add:
            for c in range(min(NR, out.shape[1] - j)):
                row[j + c] += src[c]
        else:
            for c in range(min(NR, out.shape[1] - j)):
                row[j + c] = src[c]


def offset_matmul(a: Packed, b: np.ndarray, offsets: np.ndarray, starts: np.ndarray,
                  out: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """out[:, r, :] = a @ B_r (+ bias[:, None]) for each r < R, where row k of B_r (K, L) is
    b[starts[r] + offsets[k]:][:L]: a product whose second operand's rows lie anywhere in the
    flat array b, read where they are. A stride-1 convolution is one (kernels.direct_conv2d):
    b is its padded batch-minor input, and row k = (c, kh, kw) of output row r starts at
    ((c*HP + r + kh)*WP + kw)*N, so im2col's columns are never built ("implicit GEMM", as
    cuDNN and oneDNN call it). a comes from pack_panels, out is (M, R, L) with contiguous
    rows. Our kernel only (the caller checks enabled()); split over the threads in runs of
    (row r, panel of columns) when called outside a parallel task. The last panel of columns
    reads up to NR - 1 values past its rows, so b must extend that far; the products those
    give are dropped.

        offset_matmul(pack_panels(w.reshape(OC, -1)), xp, offsets, starts, out=y)
    """
    M, K = a.shape
    R, L = starts.shape[0], out.shape[2] if out.ndim == 3 else -1
    if (out.shape != (M, R, L) or offsets.shape != (K,) or out.strides[2] != 4 or K == 0
            or b.ndim != 1 or not b.flags.c_contiguous):
        raise ValueError(f"gemm.offset_matmul: a {a.shape}, {offsets.shape} offsets, "
                         f"{starts.shape} starts into out {out.shape}: out needs the shape "
                         f"(a's rows, starts, L) with contiguous rows, a one offset per "
                         f"column (at least one), b one contiguous row of values")
    reach = int(starts.max()) + int(offsets.max()) + -(-L // NR) * NR if R else 0
    if R and (min(int(starts.min()), int(offsets.min())) < 0 or reach > b.size):
        raise ValueError(f"gemm.offset_matmul: rows read up to value {reach} of b, which "
                         f"has {b.size}: offsets and starts must be >= 0, and b needs NR - 1 "
                         f"values past its last row (the last panel of columns reads them)")
    bias = np.zeros(M, np.float32) if bias is None else bias.astype(np.float32, copy=False)
    offsets, starts = offsets.astype(np.int64, copy=False), starts.astype(np.int64, copy=False)
    # tasks take runs of (output row, panel of columns) pairs, as even as the work allows: runs
    # of whole rows were not (CNN3's 14 rows in 4 tasks, 3 + 4 + 3 + 4, left one thread idle
    # for a seventh of the conv; alternating, two threads, its 16 -> 32 conv's forward 481 ->
    # 434 us, 32 -> 64 472 -> 432, at batch 128 2161 -> 1974)
    runs = chunks(R * -(-L // NR), tasks_for(M * K * R * L, _OFFSET_MACS))  # 1 inside a task

    # native tasks (parallel.native_for: no GIL to wait for). Alternating, two threads,
    # 2026-12-04, offset_matmul and offset_dots native or not: CNN3 b32 4.42 -> 4.27 ms, b128
    # 12.31 -> 12.04, CNN2 b32 6.34 -> 6.20, LeNet-5 24.9 -> 24.7, the VGG block 57.8 -> 58.1
    if out.flags.c_contiguous and out.flags.writeable and b.flags.writeable:
        args = [M, K, R, L, a.panels.size, b.size, *(x.ctypes.data for x in (
            a.panels, b, offsets, starts, out, bias))]
        native_for(_native_offset_matmul.address,
                   np.array(args + [v for run in runs for v in run], np.int64), len(runs))
        return out

    def task(i: int, worker: int) -> None:
        _offset_loops(a.panels, K, b, offsets, starts, out, bias, *runs[i])

    parallel_for(task, len(runs))
    return out


@njit(cache=True, nogil=True)
def _offset_loops(panels, K, b, offsets, starts, out, bias, u0, u1):
    """offset_matmul's loops over the pairs u0..u1 - 1 of (output row r, NR-column panel),
    u = r * panels per row + panel: for each, every MR-row panel of a, so that the b values a
    panel of columns reads stay in cache for all of a."""
    M, L = out.shape[0], out.shape[2]
    ldm, ldr = out.strides[0] // 4, out.strides[1] // 4
    tile = np.empty(MR * NR, np.float32)
    per_row = -(-L // NR)
    for u in range(u0, u1):
        r, j = u // per_row, (u % per_row) * NR
        for i in range(0, M, MR):
            a_off = (i // MR) * K * MR
            if i + MR <= M and j + NR <= L:  # straight into out, then the bias
                _tile_offsets(panels, a_off, 0, b, starts[r] + j, offsets, out,
                              i * ldm + r * ldr + j, ldm, K, False)
                for q in range(MR):
                    row = out[i + q, r, j:j + NR]
                    for c in range(NR):
                        row[c] += bias[i + q]
            else:
                _tile_offsets(panels, a_off, 0, b, starts[r] + j, offsets, tile, 0, NR, K,
                              False)
                for q in range(min(MR, M - i)):
                    for c in range(min(NR, L - j)):
                        out[i + q, r, j + c] = tile[q * NR + c] + bias[i + q]


def offset_dots(a: np.ndarray, a_rows: np.ndarray, b: np.ndarray, b_rows: np.ndarray,
                L: int, R: int, a_step: int, b_step: int) -> np.ndarray:
    """out (M, K) float32, out[i, k] = sum over r < R, q < L of
    a[a_rows[i] + r*a_step + q] * b[b_rows[k] + r*b_step + q]: the dot products of rows that
    lie anywhere in the flat arrays a and b, each made of R runs of L values. The weight
    gradient of offset_matmul's convolution is one (kernels.direct_conv2d_weight_grad):
    a is the output gradient (row oc, runs of OW*N values OH times), b the padded input
    (row k = tap (c, kh, kw)), so no columns are built. L must be a multiple of 16 (one
    vector). The products are summed in float32 in vector registers over up to _DOT_VALUES
    values of a row, then in float64. Our kernel only (the caller checks enabled()); split over
    the threads in runs of a's rows when called outside a parallel task."""
    M, K = a_rows.shape[0], b_rows.shape[0]
    reach_a = int(a_rows.max()) + (R - 1) * a_step + L if M and R else 0
    reach_b = int(b_rows.max()) + (R - 1) * b_step + L if K and R else 0
    if (L % LANES or L <= 0 or a.ndim != 1 or b.ndim != 1 or not a.flags.c_contiguous
            or not b.flags.c_contiguous or reach_a > a.size or reach_b > b.size
            or min(int(a_rows.min(initial=0)), int(b_rows.min(initial=0))) < 0):
        raise ValueError(f"gemm.offset_dots: rows of {L} values (a positive multiple of "
                         f"{LANES}), {R} runs, reaching value {reach_a} of a ({a.size}) and "
                         f"{reach_b} of b ({b.size}): rows must lie inside a and b, which "
                         f"must be one contiguous row of values each")
    out = np.zeros((M, K), np.float32)
    if not (M and K and R):
        return out
    a_rows, b_rows = _whole_tiles(a_rows, _DOT_ROWS), _whole_tiles(b_rows, _DOT_COLS)
    runs = chunks(-(-M // _DOT_ROWS), tasks_for(M * K * R * L, _OFFSET_MACS))  # whole tiles

    if a.flags.writeable and b.flags.writeable:  # native tasks, as offset_matmul's
        args = [M, K, L, R, a_step, b_step, a.size, b.size, len(a_rows), len(b_rows),
                *(x.ctypes.data for x in (a, a_rows, b, b_rows, out))]
        native_for(_native_offset_dots.address,
                   np.array(args + [v for run in runs for v in run], np.int64), len(runs))
        return out

    def task(i: int, worker: int) -> None:  # rows of a t0*_DOT_ROWS .. t1*_DOT_ROWS
        t0, t1 = runs[i]
        _dots_loops(a, a_rows[t0 * _DOT_ROWS:t1 * _DOT_ROWS], b, b_rows, L, R, a_step, b_step,
                    out[t0 * _DOT_ROWS:t1 * _DOT_ROWS])

    parallel_for(task, len(runs))
    return out


def _whole_tiles(rows: np.ndarray, n: int) -> np.ndarray:
    """rows as int64, the last repeated up to a multiple of n."""
    return np.concatenate([rows, np.full(-len(rows) % n, rows[-1])]).astype(np.int64)


# values of each run chunk's rows (_dots_loops). 2K rather than 4K: a's tile of 4 rows (32 KB)
# then stays in a 48 KB L1. One thread, 2026-12-04 (an AVX-512 Xeon), in one process, the
# weight gradients of 3x3 convs at batch 32, 4K -> 2K: 64 channels at 16x16 5.31 -> 4.77 ms
# (and 4.64 -> 4.17), 64 at 32x32 19.3 -> 18.2, 128 at 8x8 3.80 -> 3.54; 5x5 ones 3 -> 32 at
# 64x64 4.37 -> 3.87, 32 -> 64 at 32x32 21.2 -> 19.7; 16 at 14x14 and 32 at 7x7 0.19-0.20 ms
# either way
_DOT_VALUES = 1 << 11
_DOT_TAPS = 96  # b's rows per chunk (_dots_loops)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _dots_loops(a, a_rows, b, b_rows, L, R, a_step, b_step, out):
    """offset_dots' loops, a and b's rows padded to whole tiles (repeating the last; their
    results are dropped). For a chunk of the runs (about _DOT_VALUES values of each row: a's
    tile of rows stays in L1 over b's tiles) and a chunk of _DOT_TAPS of b's rows (they stay in
    L2 over all of a), every tile of a's rows against every tile of b's; each result is added
    into a float64 total. Measured at one thread, LeNet-5's first conv's weight gradient: 3.7
    ms with chunks of 4K values (2026-12-02; 2K since), 4.2 with runs of 2K values and all
    of b's rows per tile of a's, 4.2 (the VGG block's 64 -> 64 at 32x32: 15.3 vs 13.1 ms)
    with the lanes summed in Numba."""
    M, K = out.shape
    sums = np.empty(_DOT_ROWS * _DOT_COLS, np.float32)
    totals = np.zeros((M, K))
    runs = max(1, _DOT_VALUES // L)
    for r in range(0, R, runs):
        a_r, b_r = a[r * a_step:], b[r * b_step:]
        for k0 in range(0, K, _DOT_TAPS):
            for i in range(0, M, _DOT_ROWS):
                for k in range(k0, min(K, k0 + _DOT_TAPS), _DOT_COLS):
                    _dot_tile(a_r, a_rows[i:i + _DOT_ROWS], b_r, b_rows[k:k + _DOT_COLS], L,
                              min(runs, R - r), a_step, b_step, sums)
                    for u in range(min(_DOT_ROWS, M - i)):
                        for v in range(min(_DOT_COLS, K - k)):
                            totals[i + u, k + v] += sums[u * _DOT_COLS + v]
    out[...] = totals


def _dot_kernel():
    """The dot-product micro-kernel as a Numba intrinsic, tile(a, a_rows, b, b_rows, L, R,
    a_step, b_step, sums): for u < _DOT_ROWS, v < _DOT_COLS, the 16-lane vector
    sum over r < R, q < L (in steps of 16) of a[a_rows[u] + r*a_step + q:][:16] *
    b[b_rows[v] + r*b_step + q:][:16], its lanes then added pairwise into sums[u*_DOT_COLS + v].
    In LLVM IR, as _micro_kernel: the 24 accumulators are vector registers carried around both
    loops; each step loads 4 + 6 vectors and does 24 fused multiply-adds. L and R at least 1."""

    def tile(typingctx, a, a_rows, b, b_rows, L, R, a_step, b_step, sums):
        return types.void(a, a_rows, b, b_rows, L, R, a_step, b_step, sums), codegen

    def codegen(context, builder, signature, args):
        a_arr, a_rows_arr, b_arr, b_rows_arr, L_v, R_v, a_step_v, b_step_v, sums_arr = args
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        vptr = vec.as_pointer()

        def data(value, ty):
            return cgutils.create_struct_proxy(ty)(context, builder, value=value).data

        def rows(arr, ty, base, n):  # pointers to the starts of n rows
            offsets = data(arr, ty)
            return [builder.gep(base, [builder.load(builder.gep(offsets, [ir.Constant(i64, u)]))])
                    for u in range(n)]

        pa = rows(a_rows_arr, signature.args[1], data(a_arr, signature.args[0]), _DOT_ROWS)
        pb = rows(b_rows_arr, signature.args[3], data(b_arr, signature.args[2]), _DOT_COLS)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fma.v{LANES}f32")
        zero = ir.Constant(vec, [0.0] * LANES)
        n_acc = _DOT_ROWS * _DOT_COLS

        entry = builder.block
        outer = builder.append_basic_block("dots_r")
        inner = builder.append_basic_block("dots_q")
        next_run = builder.append_basic_block("dots_next_r")
        done = builder.append_basic_block("dots_done")
        builder.branch(outer)
        builder.position_at_end(outer)
        r = builder.phi(i64)
        acc_r = [builder.phi(vec) for _ in range(n_acc)]
        a_run = [builder.gep(p, [builder.mul(r, a_step_v)]) for p in pa]
        b_run = [builder.gep(p, [builder.mul(r, b_step_v)]) for p in pb]
        builder.branch(inner)
        builder.position_at_end(inner)
        q = builder.phi(i64)
        acc = [builder.phi(vec) for _ in range(n_acc)]

        def load(run):
            return builder.load(builder.bitcast(builder.gep(run, [q]), vptr), align=4)

        a_vec = [load(p) for p in a_run]
        new = list(acc)
        for v, p in enumerate(b_run):
            b_vec = load(p)
            for u in range(_DOT_ROWS):
                n = u * _DOT_COLS + v
                new[n] = builder.call(fma, [a_vec[u], b_vec, acc[n]])
        _close_loop(builder, q, LANES, L_v, outer, inner, zip(acc, acc_r, new), next_run)
        builder.position_at_end(next_run)
        _close_loop(builder, r, 1, R_v, entry, outer, ((phi, zero, v) for phi, v in
                                                       zip(acc_r, new)), done)
        builder.position_at_end(done)
        ps = data(sums_arr, signature.args[8])
        for n, value in enumerate(new):  # each accumulator's lanes added pairwise
            width = LANES
            while width > 1:
                width //= 2
                halves = [builder.shuffle_vector(value, value, ir.Constant(
                    ir.VectorType(i32, width), list(range(h * width, (h + 1) * width))))
                    for h in range(2)]
                value = builder.fadd(*halves)
            builder.store(builder.extract_element(value, ir.Constant(i32, 0)),
                          builder.gep(ps, [ir.Constant(i64, n)]))
        return context.get_dummy_value()

    tile.__name__ = "_dot_tile"
    return intrinsic(tile)


def _close_loop(builder, counter, step: int, bound, entry, header, carried, exit_block) -> None:
    """End the body of a counted loop in LLVM IR, from the block the builder is in: `counter`
    (a phi in `header`) runs 0, step, 2*step, ... while below `bound`; each (phi, initial,
    updated) in `carried` takes `initial` when entered from `entry` and `updated` when the
    loop goes round; then branch back to `header` or on to `exit_block`."""
    latch = builder.block
    following = builder.add(counter, ir.Constant(counter.type, step))
    counter.add_incoming(ir.Constant(counter.type, 0), entry)
    counter.add_incoming(following, latch)
    for phi, initial, updated in carried:
        phi.add_incoming(initial, entry)
        phi.add_incoming(updated, latch)
    builder.cbranch(builder.icmp_signed("<", following, bound), header, exit_block)


def _prefetch_rows(builder, first, ld) -> None:
    """Ask the cache for the MR rows of NR values at `first`, `ld` values apart (a tile of C,
    loaded after the k loop: by then they are there). As BLIS's micro-kernels do; measured
    on an AVX2 host (2026-12-02, one thread, 6 x 16 tiles): 64 x 576 x 1024 16 -> 35
    GFLOP/s, 128 x 1152 x 256 53 -> 70, 512 x 512 x 512 36 -> 41 (not measured with AVX-512)."""
    i8p, i32, i64 = ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(64)
    prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
    write, keep, data = ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)
    for r in range(MR):
        row = builder.gep(first, [builder.mul(ir.Constant(i64, r), ld)])
        for v in range(0, NR, 16):  # one 64-byte line per 16 values
            line = builder.bitcast(builder.gep(row, [ir.Constant(i64, v)]), i8p)
            builder.call(prefetch, [line, write, keep, data])


def _micro_kernel(a_in_place: bool, b_offsets: bool = False):
    """The micro-kernel as a Numba intrinsic, tile(a, a_off, lda, b, b_off, ldb, c, c_off,
    ldc, kc, add): C[r * ldc + q] (+)= sum over k < kc of A(r, k) * b[b_off + k*ldb + q] for
    r < MR, q < NR, where C starts c_off values into c's memory, added to C when `add`, else
    stored. A(r, k) is a[a_off + k*MR + r], a packed MR-row panel (lda unused), or, when
    `a_in_place`, a[a_off + r*lda + k]: MR rows of a read where they lie, a row's k values
    contiguous. When `b_offsets`, ldb is an int64 array and b's row k starts at
    b[b_off + ldb[k]] (offset_matmul: rows anywhere in b). In LLVM IR: the 16 accumulators are
    vector registers carried around the k loop (phi nodes); each step loads b's two vectors,
    broadcasts a's MR values and does 16 fused multiply-adds. kc must be at least 1."""

    def tile(typingctx, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, kc, add):
        return types.void(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, kc, add), codegen

    tile.__name__ = "_tile_offsets" if b_offsets else "_tile_rows" if a_in_place else "_tile"

    def codegen(context, builder, signature, args):
        a_arr, a_off_v, lda_v, b_arr, b_off_v, ldb_v, c_arr, c_off_v, ldc_v, kc_v, add_v = args
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        vptr = vec.as_pointer()
        n_vec = NR // LANES

        def data(value, ty):
            return cgutils.create_struct_proxy(ty)(context, builder, value=value).data

        pa = builder.gep(data(a_arr, signature.args[0]), [a_off_v])
        pb = builder.gep(data(b_arr, signature.args[3]), [b_off_v])
        p_offsets = data(ldb_v, signature.args[5]) if b_offsets else None
        pc = builder.gep(data(c_arr, signature.args[6]), [c_off_v])
        _prefetch_rows(builder, pc, ldc_v)  # C's, so that adding to them does not wait
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fma.v{LANES}f32")
        zero, undef = ir.Constant(vec, [0.0] * LANES), ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

        entry = builder.block
        loop = builder.append_basic_block("tile_k")
        done = builder.append_basic_block("tile_done")
        builder.branch(loop)
        builder.position_at_end(loop)
        k = builder.phi(i64)
        acc = [builder.phi(vec) for _ in range(MR * n_vec)]
        b_row = builder.gep(pb, [builder.load(builder.gep(p_offsets, [k])) if b_offsets
                                 else builder.mul(k, ldb_v)])
        b_vec = [builder.load(builder.bitcast(builder.gep(b_row, [ir.Constant(i64, v * LANES)]),
                                              vptr), align=4) for v in range(n_vec)]
        a_col = builder.gep(pa, [k if a_in_place else builder.mul(k, ir.Constant(i64, MR))])
        new = []
        for r in range(MR):
            step = builder.mul(ir.Constant(i64, r), lda_v) if a_in_place else ir.Constant(i64, r)
            value = builder.load(builder.gep(a_col, [step]))
            broadcast = builder.shuffle_vector(
                builder.insert_element(undef, value, ir.Constant(i32, 0)), undef, splat)
            new += [builder.call(fma, [broadcast, b_vec[v], acc[r * n_vec + v]])
                    for v in range(n_vec)]
        _close_loop(builder, k, 1, kc_v, entry, loop, ((phi, zero, v) for phi, v in
                                                       zip(acc, new)), done)
        builder.position_at_end(done)
        add_flag = builder.icmp_unsigned("!=", add_v, ir.Constant(add_v.type, 0))
        for r in range(MR):
            row = builder.gep(pc, [builder.mul(ir.Constant(i64, r), ldc_v)])
            for v in range(n_vec):
                ptr = builder.bitcast(builder.gep(row, [ir.Constant(i64, v * LANES)]), vptr)
                value = new[r * n_vec + v]
                total = builder.fadd(builder.load(ptr, align=4), value)
                builder.store(builder.select(add_flag, total, value), ptr, align=4)
        return context.get_dummy_value()

    return intrinsic(tile)


@intrinsic
def _copy_row(typingctx, src, src_at, dst, dst_at):
    """dst[dst_at:][:NR] = the NR values at src_at in src's memory (values from its first),
    as NR / LANES vector loads and stores."""
    def codegen(context, builder, signature, args):
        i64, vec = ir.IntType(64), ir.VectorType(ir.FloatType(), LANES)
        src_arr, src_off, dst_arr, dst_off = args

        def at(value, ty, offset):
            data = cgutils.create_struct_proxy(ty)(context, builder, value=value).data
            return builder.gep(data, [offset])

        ps, pd = at(src_arr, signature.args[0], src_off), at(dst_arr, signature.args[2], dst_off)
        for v in range(NR // LANES):
            step = [ir.Constant(i64, v * LANES)]
            value = builder.load(builder.bitcast(builder.gep(ps, step), vec.as_pointer()), align=4)
            builder.store(value, builder.bitcast(builder.gep(pd, step), vec.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.void(src, src_at, dst, dst_at), codegen


@intrinsic
def _transpose_block(typingctx, src, src_at, ld, dst, dst_at, dst_ld):
    """dst[dst_at + k*dst_ld + j] = src[src_at + j*ld + k] for j, k < LANES (offsets in values
    from each array's first): LANES vectors loaded, transposed in registers, stored. The
    transpose swaps the off-diagonal s x s blocks of every 2s x 2s block, for s = LANES / 2,
    ..., 2, 1: two shuffles per pair of rows and s, so 4 * 16 shuffles for 256 values."""
    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), LANES)
        src_arr, src_off, ld_v, dst_arr, dst_off, dst_ld_v = args

        def at(value, ty, offset):
            data = cgutils.create_struct_proxy(ty)(context, builder, value=value).data
            return builder.gep(data, [offset])

        ps, pd = at(src_arr, signature.args[0], src_off), at(dst_arr, signature.args[3], dst_off)
        rows = [builder.load(builder.bitcast(builder.gep(ps, [builder.mul(
            ir.Constant(i64, j), ld_v)]), vec.as_pointer()), align=4) for j in range(LANES)]
        s = LANES // 2
        while s:
            keep = [c if c & s == 0 else LANES + c - s for c in range(LANES)]
            swap = [c + s if c & s == 0 else LANES + c for c in range(LANES)]
            for r in range(LANES):
                if r & s == 0:
                    a, b = rows[r], rows[r + s]
                    rows[r] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(
                        i32, LANES), keep))
                    rows[r + s] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(
                        i32, LANES), swap))
            s //= 2
        for k in range(LANES):
            ptr = builder.gep(pd, [builder.mul(ir.Constant(i64, k), dst_ld_v)])
            builder.store(rows[k], builder.bitcast(ptr, vec.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.void(src, src_at, ld, dst, dst_at, dst_ld), codegen


_tile, _tile_rows = _micro_kernel(False), _micro_kernel(True)  # a packed, a read in place
_tile_offsets = _micro_kernel(False, True)  # a packed, b's rows at offsets
_dot_tile = _dot_kernel()

# _gemm: one compiled version for arrays of any layout, where Numba would compile (and load)
# one per combination of C, F and strided operands, nine for a ResNet-18 step (the same speed
# measured; MLP3's first step then holds ~3 MB less of loaded code). Read-only operands (a
# broadcast, a read-only buffer) do not fit its types: they take a copy compiled on demand.
_gemm = njit("void(float32[:, :], float32[::1], boolean, int64, int64, float32[:, :], "
             "float32[:, :], boolean, boolean)", cache=True, nogil=True)(_gemm_loops)
_gemm_read_only = njit(cache=True, nogil=True)(_gemm_loops)


# (after _gemm: a cfunc is compiled where it is defined)
@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _native_product(args, task):
    """Task `task` of a native product (_split): its run of out (+)= a @ b."""
    fields = carray(ints_at(args), (_HEADER + 2 * task + 2,))
    a, b, out = _view(fields[3:8]), _view(fields[8:13]), _view(fields[13:18])
    start, stop = fields[_HEADER + 2 * task], fields[_HEADER + 2 * task + 1]
    if fields[2]:
        b, out = b[:, start:stop], out[:, start:stop]
    else:
        a, out = a[start:stop], out[start:stop]
    _gemm(a, np.empty(0, np.float32), False, a.shape[0], a.shape[1], b, out, fields[0] != 0,
          fields[1] != 0)


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _native_offset_matmul(args, task):
    """Task `task` of offset_matmul as a native task: its run of (row, panel) pairs. args:
    M, K, R, L, the sizes of a's panels and of b, the addresses of a's panels, b, offsets,
    starts, out and bias, then each task's run (u0, u1)."""
    h = carray(ints_at(args), (14 + 2 * task,))
    M, K, R, L = h[0], h[1], h[2], h[3]
    _offset_loops(carray(floats_at(h[6]), (h[4],)), K, carray(floats_at(h[7]), (h[5],)),
                  carray(ints_at(h[8]), (K,)), carray(ints_at(h[9]), (R,)),
                  carray(floats_at(h[10]), (M, R, L)), carray(floats_at(h[11]), (M,)),
                  h[12 + 2 * task], h[13 + 2 * task])


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _native_offset_dots(args, task):
    """Task `task` of offset_dots as a native task: its tiles of a's rows. args: M, K, L, R,
    a_step, b_step, the sizes of a and b, the lengths of a_rows and b_rows (whole tiles), the
    addresses of a, a_rows, b, b_rows and out, then each task's run of tiles (t0, t1)."""
    h = carray(ints_at(args), (17 + 2 * task,))
    M, K = h[0], h[1]
    i0, i1 = h[15 + 2 * task] * _DOT_ROWS, h[16 + 2 * task] * _DOT_ROWS
    _dots_loops(carray(floats_at(h[10]), (h[6],)), carray(ints_at(h[11]), (h[8],))[i0:i1],
                carray(floats_at(h[12]), (h[7],)), carray(ints_at(h[13]), (h[9],)), h[2], h[3],
                h[4], h[5], carray(floats_at(h[14]), (M, K))[i0:i1])
