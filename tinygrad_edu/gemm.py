"""Our float32 GEMM, `matmul(a, b, out)`: out = a @ b for 2-D arrays of any strides, used by
the convolutions (ops_cnn, kernels.winograd_conv2d) and the linear layers (ops.Linear) where
it beats numpy's BLAS: `enabled()`.

Why our own: numpy's OpenBLAS may run narrower vector kernels than the CPU has. On the
benchmark machine (an AVX-512 AMD EPYC) the environment sets OPENBLAS_CORETYPE=Haswell, so
OpenBLAS multiplies 8 floats per instruction where the CPU can do 16. Measured there at one
thread (float32, 2026-12-01), the conv GEMMs' shapes: 156-255 GFLOP/s with this kernel, 110-135
with OpenBLAS's Haswell kernels (its AVX-512 "SkylakeX" kernels reach 237-252 where allowed). So
it is used only where it wins: the host has AVX-512, numpy's BLAS is OpenBLAS without it, and
the arrays are float32; everywhere else `matmul` is np.matmul.

How (the blocking of Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
2008, as BLIS and OpenBLAS do it): a block of b (KC x NC values, sized for L2) and a block of a
(MC x KC) are copied ("packed") into panels NR = 32 columns and MR = 8 rows wide, laid out in
the order the micro-kernel reads them. The micro-kernel computes one MR x NR tile of the product
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
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .parallel import chunks, parallel_for, tasks_for

MR, NR = 8, 32  # the micro-kernel's tile: 8 rows x 2 vectors of 16 floats = 16 accumulators
KC, MC, NC = 256, 128, 1024  # blocks: a's MC x KC (128 KB) and b's KC x NC (1 MB) stay in L2
_LANES = 16  # float32 values per AVX-512 register
_PACK_GRAIN = 1 << 16  # a parallel task of pack(): at least 64K values (a copy, ~30 us)
_NUMPY_MACS = 1 << 17  # smaller products go to numpy's GEMM (_small)
_SPLIT_MACS = 1 << 23  # a matmul called outside a task is split from 8M multiply-adds (~40 us)
_BLAS_AVX512 = {"skylakex", "cooperlake", "sapphirerapids"}  # OpenBLAS's AVX-512 kernels


@functools.cache
def _host_has_avx512() -> bool:
    import llvmlite.binding as llvm  # the compiler Numba uses: what it compiles for
    return bool(llvm.get_host_cpu_features().get("avx512f"))


@functools.cache
def _blas_lacks_avx512() -> bool:
    """numpy's BLAS is OpenBLAS running kernels without AVX-512 (threadpoolctl tells which)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return False
    blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return bool(blas) and all(str(i.get("architecture", "")).lower() not in _BLAS_AVX512
                              for i in blas)


_forced: bool | None = None  # set_enabled's choice; None: the rule of enabled()


def enabled(dtype=np.float32) -> bool:
    """Whether matmul runs our kernel for arrays of `dtype` (float32 only) on this machine."""
    if np.dtype(dtype) != np.float32:
        return False
    if _forced is not None:
        return _forced
    return _host_has_avx512() and _blas_lacks_avx512()


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
    rows: faster than packing them once, ResNet-18 at one thread 227.6 -> 221.7 ms). Split
    over the threads in whole panels, as the caller usually waits for it before its own tasks.

        w_t = pack(w.T)                        # (C*KH*KW, OC), columns contiguous
        for band in bands: matmul(w_t, gy[band], out=gcol[band])
    """
    if not enabled(a.dtype) or _rows_contiguous(a):
        return a
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
        if accumulate:
            out += a @ b
        else:
            np.matmul(a, b, out=out)
        return out
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape != (M, N):  # the kernel does not check its bounds
        raise ValueError(f"gemm.matmul: a {a.shape} @ b {b.shape} into out {out.shape}: b needs "
                         f"as many rows as a has columns, and out the shape (a's rows, b's "
                         f"columns)")
    if (not isinstance(a, Packed) and b.strides[0] == 4 != b.strides[1]
            and _rows_contiguous(a) and 2 * (M * N + M * K) < K * N):
        return _transposed_product(a, b, out, accumulate)  # b transposed, a small (x @ w.T)
    parts = tasks_for(M * N * K, _SPLIT_MACS)  # 1 inside a task (a conv's band) or when small
    if parts == 1 or isinstance(a, Packed):
        _product(a, b, out, accumulate)
        return out
    if N >= M:  # split the longer side of out, in whole panels
        runs = [(j0 * NR, min(N, j1 * NR)) for j0, j1 in chunks(-(-N // NR), parts)]
        pieces = [(a, b[:, j0:j1], out[:, j0:j1]) for j0, j1 in runs]
    else:
        runs = [(i0 * MR, min(M, i1 * MR)) for i0, i1 in chunks(-(-M // MR), parts)]
        pieces = [(a[i0:i1], b, out[i0:i1]) for i0, i1 in runs]
    parallel_for(lambda i, worker: _product(*pieces[i], accumulate), len(pieces))
    return out


def _small(a, b) -> bool:
    """Products numpy's GEMM does faster, as ours costs ~3 us to call and computes 32 columns
    at a time: under 128K multiply-adds, or under 16 columns (measured at one thread: 32 x 128
    @ 128 x 10, MLP3's last layer, 5.4 us ours, 2.1 numpy; 128 x 128 @ 128 x 10: 9.0 vs 5.5;
    64 x 64 @ 64 x 64: 4.8 vs 5.6)."""
    return b.shape[1] < _LANES or a.shape[0] * a.shape[1] * b.shape[1] < _NUMPY_MACS


def _transposed_product(a, b, out, accumulate: bool) -> np.ndarray:
    """out (+)= a @ b for a with contiguous rows and b with contiguous columns (a linear layer's
    x @ w.T), where copying a (M x K) and out (M x N) costs less than half of packing b
    (K x N): as out.T = b.T @ a.T, so that b is read in place and only a is packed (packing a
    transposed operand is a scalar copy per value: 32 x 784 @ 784 x 256, 118 -> 68 us at one
    thread); out.T is computed contiguous and then copied, faster than through the tile buffer
    (77 us). Without the rule a conv's weight gradient (gy @ col.T, large out) took this way
    and made ResNet-18's step 25% slower."""
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
    # 128 x 64 x 1024 product at 183 GFLOP/s in place, 223 packed; 64 x 576 x 455: 230 vs 192)
    ldb = b.strides[0] // 4
    b_rows = b.strides[1] == 4 and b.strides[0] % 4 == 0 and ldb % 1024 != 0
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
    zero-padded: b's panels with width NR, and a's with width MR from src = a.T (_pack_a)."""
    for jp in range(-(-nc // width)):
        base = jp * kc * width
        used = min(width, nc - jp * width)
        if src.strides[0] < src.strides[1]:  # src's columns are contiguous (a transposed view)
            for j in range(used):
                column = src[k0:k0 + kc, j0 + jp * width + j]
                for k in range(kc):
                    panels[base + k * width + j] = column[k]
        else:
            for k in range(kc):
                row = src[k0 + k, j0 + jp * width:j0 + jp * width + used]
                for j in range(used):
                    panels[base + k * width + j] = row[j]
        for k in range(kc):
            for j in range(used, width):
                panels[base + k * width + j] = 0


@njit(cache=True, nogil=True, inline="always")
def _pack_b(b, k0, kc, j0, nc, panels):
    """b[k0:k0+kc, j0:j0+nc] -> panels of NR columns, each kc x NR row after row."""
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


def _micro_kernel(a_in_place: bool):
    """The micro-kernel as a Numba intrinsic, tile(a, a_off, lda, b, b_off, ldb, c, c_off,
    ldc, kc, add): C[r * ldc + q] (+)= sum over k < kc of A(r, k) * b[b_off + k*ldb + q] for
    r < MR, q < NR, where C starts c_off values into c's memory, added to C when `add`, else
    stored. A(r, k) is a[a_off + k*MR + r], a packed MR-row panel (lda unused), or, when
    `a_in_place`, a[a_off + r*lda + k]: MR rows of a read where they lie, a row's k values
    contiguous. In LLVM IR: the 16 accumulators are vector registers carried around the k loop
    (phi nodes); each step loads b's two vectors, broadcasts a's MR values and does 16 fused
    multiply-adds. kc must be at least 1."""

    def tile(typingctx, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, kc, add):
        return types.void(a, a_off, lda, b, b_off, ldb, c, c_off, ldc, kc, add), codegen

    tile.__name__ = "_tile_rows" if a_in_place else "_tile"

    def codegen(context, builder, signature, args):
        a_arr, a_off_v, lda_v, b_arr, b_off_v, ldb_v, c_arr, c_off_v, ldc_v, kc_v, add_v = args
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, _LANES)
        vptr = vec.as_pointer()
        n_vec = NR // _LANES

        def data(value, ty):
            return cgutils.create_struct_proxy(ty)(context, builder, value=value).data

        pa = builder.gep(data(a_arr, signature.args[0]), [a_off_v])
        pb = builder.gep(data(b_arr, signature.args[3]), [b_off_v])
        pc = builder.gep(data(c_arr, signature.args[6]), [c_off_v])
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                             f"llvm.fma.v{_LANES}f32")
        zero, undef = ir.Constant(vec, [0.0] * _LANES), ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, _LANES), [0] * _LANES)

        entry = builder.block
        loop = builder.append_basic_block("tile_k")
        done = builder.append_basic_block("tile_done")
        builder.branch(loop)
        builder.position_at_end(loop)
        k = builder.phi(i64)
        acc = [builder.phi(vec) for _ in range(MR * n_vec)]
        b_row = builder.gep(pb, [builder.mul(k, ldb_v)])
        b_vec = [builder.load(builder.bitcast(builder.gep(b_row, [ir.Constant(i64, v * _LANES)]),
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
        k_next = builder.add(k, ir.Constant(i64, 1))
        k.add_incoming(ir.Constant(i64, 0), entry)
        k.add_incoming(k_next, loop)
        for phi, value in zip(acc, new):
            phi.add_incoming(zero, entry)
            phi.add_incoming(value, loop)
        builder.cbranch(builder.icmp_signed("<", k_next, kc_v), loop, done)
        builder.position_at_end(done)
        add_flag = builder.icmp_unsigned("!=", add_v, ir.Constant(add_v.type, 0))
        for r in range(MR):
            row = builder.gep(pc, [builder.mul(ir.Constant(i64, r), ldc_v)])
            for v in range(n_vec):
                ptr = builder.bitcast(builder.gep(row, [ir.Constant(i64, v * _LANES)]), vptr)
                value = new[r * n_vec + v]
                total = builder.fadd(builder.load(ptr, align=4), value)
                builder.store(builder.select(add_flag, total, value), ptr, align=4)
        return context.get_dummy_value()

    return intrinsic(tile)


_tile, _tile_rows = _micro_kernel(False), _micro_kernel(True)  # a packed, a read in place

# _gemm: one compiled version for arrays of any layout, where Numba would compile (and load)
# one per combination of C, F and strided operands, nine for a ResNet-18 step (the same speed
# measured; MLP3's first step then holds ~3 MB less of loaded code). Read-only operands (a
# broadcast, a read-only buffer) do not fit its types: they take a copy compiled on demand.
_gemm = njit("void(float32[:, :], float32[::1], boolean, int64, int64, float32[:, :], "
             "float32[:, :], boolean, boolean)", cache=True, nogil=True)(_gemm_loops)
_gemm_read_only = njit(cache=True, nogil=True)(_gemm_loops)
