"""Numba kernels for convolution, pooling and batch norm: numpy arrays in, numpy arrays out, plain
loops.

Notation (Chainer's `utils/conv.py`, DeZero's im2col):
    N batch, C channels, H, W input height/width, K kernel (KH, KW), S stride, P padding on the
    top/left (the bottom/right padding follows from the output size O = (OH, OW)), D dilation.
    Output row oh reads input rows ih = oh*SH - PH + kh*DH; rows outside [0, H) are padding.

Memory layout: batch-minor, (C, H, W, N) in memory, as in Krizhevsky's cuda-convnet. Every public
function takes (N, C, H, W)-shaped arrays of any strides and returns (N, C, H, W)-shaped views of
(C, H, W, N) buffers (`batch_minor`). Why: with the batch innermost, the N values of one pixel are
adjacent, so im2col copies whole runs of OW*N floats instead of OW-long scraps, pooling and
col2im work on N-long vectors, and the convolution's GEMM, weight (OC, C*KH*KW) @ col, writes
(OC, OH, OW, N): the next layer's input, already in this layout, with no transpose copied.
The jitted loops (names starting with `_`) take C-contiguous (C, H, W, N) arrays.

Conventions:
- float32 or float64; results have the input's dtype.
- Output sizes are computed by the caller (`tinygrad_edu.ops_cnn`) and passed in, which is how
  ceil_mode and the asymmetric padding of `padding='same'` reach the loops without special cases.
- `rows=(oh0, oh1)` restricts im2col/col2im to a band of output rows, so that a convolution can
  stream its columns through a cache-sized workspace (see ops_cnn.Conv2d).
- Each jitted loop is single-threaded and `nogil`; the wrappers split it over channels (or
  rows) with `tinygrad_edu.parallel`, whose workers sleep rather than spin. Not Numba's
  `parallel=True`: measured on the 2-core machine under load, it made a CNN3 step 5x slower
  (OpenMP's workers spin between loops and fight OpenBLAS's for the two cores: 190 ms of CPU
  per step instead of 12). Each loop writes whole channels or rows of its output, so the
  pieces never race.
- `cache=True` stores the compiled machine code next to this file (or in NUMBA_CACHE_DIR), so only
  the first import on a machine pays the compile time.
- Set NUMBA_DISABLE_JIT=1 to run these as plain Python and step through them in a debugger.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numba import carray, cfunc, njit

from . import gemm
from .parallel import chunks, native_for, parallel_for, tasks_for
from .spin import TASK_SIGNATURE, bytes_at, float_from_bits, floats_at, ints_at, task_run

# a parallel task of pooling or batch norm: at least 512K elements (~120 us). A task must pay
# for a worker's start (~40 us here: it sees the job at once, then waits for the GIL) and for
# the GIL waits of two threads calling kernels at once (each a sleep of ~25 us). Measured at
# two threads, 2026-12-02: batch norm forward of 524K values 124 us in one task, 142 in two,
# 192-203 in four (64K); CNN3 b32's step 14.2 -> 2.8 voluntary context switches; alternating,
# medians: CNN3 b32 5.99 -> 5.52 ms, CNN2 b32 7.83 -> 7.48, the VGG block and ResNet-18 equal
# (55 and 177 ms: their 2M-value layers still split)
_TASK_ELEMENTS = 1 << 19
_TASK_MACS = 1 << 22  # a parallel task of a Winograd conv: at least ~4M multiply-adds
# a parallel task of winograd_filter: at least 64K weights (~0.1 ms: its strided reads and 16
# writes per 9 values cost ~7x a batch-norm element). At _TASK_ELEMENTS every filter of
# ResNet-18 ran in one task: 11.5 ms of its two-thread step in one thread
_FILTER_GRAIN = 1 << 16
# a parallel task of elementwise(): at least 1M values. At 64K, CNN3 b32's ReLUs (400K values)
# were split too: its step 3.47 -> 3.54 ms (median) idle, 4.40 -> 4.68 with a busy process
_ELEMENTWISE_GRAIN = 1 << 20


def over_channels(kernel, *args, work: int) -> None:
    """kernel(*args) split over the channels, the first axis of every array argument (the
    loops below each write whole channels, so the tasks never race); `work` counts elements."""
    C = next(a for a in args if isinstance(a, np.ndarray)).shape[0]
    parts = chunks(C, tasks_for(work, _TASK_ELEMENTS))

    def task(i: int, worker: int) -> None:
        c0, c1 = parts[i]
        kernel(*(a[c0:c1] if isinstance(a, np.ndarray) else a for a in args))

    parallel_for(task, len(parts))


# Native tasks (parallel.native_for) need no GIL, so they pay from far fewer elements than
# _TASK_ELEMENTS and _ELEMENTWISE_GRAIN, which a task must carry to pay for the GIL waits:
# ResNet-18's batch norms of 524K values and under, and its ReLUs under 1M, ran in one thread.
# Alternating, two threads, 2026-12-04 (an AVX-512 Xeon), medians: batch norm native from 64K
# values, ResNet-18 187.8 -> 184.7 ms, the VGG block 62.6 -> 62.1; ReLU's forward and backward
# native from 64K, ResNet-18 186.2 -> 182.3, but CNN3 b32 4.48 -> 4.63 (its 400K-value ReLUs
# split in four; from 64K, 256K and 512K then: CNN3 4.31, 4.29, 4.28 ms, ResNet-18 178.9,
# 178.3, 179.7: within the noise)
_NATIVE_ELEMENTS = 1 << 16  # batch norm's channels
_NATIVE_RUN_ELEMENTS = 1 << 18  # ReLU's runs


def native_over_channels(task, eps: float, *arrays: np.ndarray) -> bool:
    """The native task `task` (a cfunc below) over the channels (first axis) of `arrays`, the
    first (C, M), the others (C, M) or (C,), all float32 and C-contiguous; its args are C, M,
    the task count, eps's bits and the arrays' addresses. False, with nothing done, when an
    array does not qualify (the caller then runs the Numba kernel through over_channels)."""
    if not all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
               for a in arrays):
        return False
    C, M = arrays[0].shape
    n_tasks = min(C, tasks_for(arrays[0].size, _NATIVE_ELEMENTS))
    args = [C, M, n_tasks, int(np.float64(eps).view(np.int64))]
    native_for(task.address, np.array(args + [a.ctypes.data for a in arrays], np.int64),
               n_tasks)
    return True


@njit(cache=True, nogil=True, inline="always")
def _channel_task(args, task, n_arrays):
    """(header, channels c0, c1) of a native_over_channels task."""
    header = carray(ints_at(args), (4 + n_arrays,))
    c0, c1 = task_run(header[0], header[2], task)
    return header, c0, c1


@njit(cache=True, nogil=True, inline="always")
def _rows_at(header, i, c0, c1):
    return carray(floats_at(header[4 + i]), (header[0], header[1]))[c0:c1]


@njit(cache=True, nogil=True, inline="always")
def _vector_at(header, i, c0, c1):
    return carray(floats_at(header[4 + i]), (header[0],))[c0:c1]


def elementwise(ufunc, *args) -> np.ndarray:
    """ufunc(*args) for arrays of one shape and layout (a conv's batch-minor activations, or
    C-contiguous ones; scalars are broadcast), split over the threads in runs of memory, so
    the result has the same layout; anything else is one plain call. numpy's and Numba's
    ufunc loops release the GIL, so the runs go at once (ReLU's forward and backward took
    ~4 ms of a ResNet-18 step in one thread).

        y = elementwise(np.maximum, x, 0)
    """
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    first = arrays[0]
    parts = tasks_for(first.size, _ELEMENTWISE_GRAIN)
    if parts == 1 or any(a.shape != first.shape or a.strides != first.strides for a in arrays):
        return ufunc(*args)  # small (most calls: checked first), or layouts that differ
    flats = [a.ravel("K") for a in arrays]
    if not all(np.shares_memory(f, a) for f, a in zip(flats, arrays)):
        return ufunc(*args)
    out = np.empty_like(first)

    def run(*parts: np.ndarray) -> None:  # the runs of the arrays, then of out
        runs = iter(parts[:-1])
        ufunc(*(next(runs) if isinstance(a, np.ndarray) else a for a in args), out=parts[-1])

    _over_runs(run, *flats, out.ravel("K"))
    return out


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0) as PyTorch's relu (clamp_min) computes it: 0 where x < 0, else x, so NaN and
    -0.0 pass. float32/float64 in x's own layout in one pass, split over the threads like
    `elementwise`: four times faster than np.maximum here (400K values: 32 vs 139 us), which
    also turned -0.0 into 0.0. Other dtypes and strided views: numpy."""
    flat = x.ravel("K")
    if x.dtype.char not in "fd" or not np.shares_memory(flat, x):
        return np.where(x < 0, x.dtype.type(0), x)
    out = np.empty_like(x)  # x's layout: x is one run of memory in some axis order
    if out.strides != x.strides:  # not expected; the runs of the two must match
        return np.where(x < 0, x.dtype.type(0), x)
    if not _native_over_runs(_relu_task, flat, out.ravel("K")):
        _over_runs(_relu, flat, out.ravel("K"))
    return out


@njit(cache=True, nogil=True)
def _relu(x, out):
    """A select, vectorised; njit checks no floating-point flags, so a NaN does not warn as in
    a numpy ufunc. Not max(x, 0): that drops NaN and -0.0."""
    for i in range(x.size):
        out[i] = 0 if x[i] < 0 else x[i]  # noqa: FURB136 (see the docstring)


def relu_backward_in_place(grad: np.ndarray, out: np.ndarray) -> bool:
    """grad = 0 where ReLU's output out <= 0, in place (PyTorch's threshold_backward: a NaN
    output passes its gradient), so that backward needs no second activation-sized array
    (LeNet-5's peak memory). False, with nothing done, unless both are float32 or float64
    arrays laid out alike in one run of memory; split over the threads like `elementwise`."""
    if (grad.dtype != out.dtype or grad.dtype.char not in "fd" or grad.shape != out.shape
            or grad.strides != out.strides):
        return False
    flat, flat_out = grad.ravel("K"), out.ravel("K")
    if not (np.shares_memory(flat, grad) and np.shares_memory(flat_out, out)):
        return False
    if not _native_over_runs(_zero_where_not_positive_task, flat, flat_out):
        _over_runs(_zero_where_not_positive, flat, flat_out)
    return True


@njit(cache=True, nogil=True)
def _zero_where_not_positive(grad, out):
    for i in range(grad.size):  # a select, vectorised (a loop from lo to hi was not: 40x slower)
        grad[i] = 0 if out[i] <= 0 else grad[i]


def _native_over_runs(task, x: np.ndarray, out: np.ndarray) -> bool:
    """The native task `task` (x's run, out's run) over runs of the flat float32 arrays x and
    out, as _over_runs does with a Numba kernel; its args are the size, the task count and the
    two addresses. False, with nothing done, unless both are float32 and writeable."""
    n_tasks = tasks_for(x.size, _NATIVE_RUN_ELEMENTS)
    if n_tasks == 1 or not (x.dtype == out.dtype == np.float32 and x.flags.writeable
                            and out.flags.writeable):
        return False  # one run (most calls: checked first): the kernel itself
    native_for(task.address, np.array([x.size, n_tasks, x.ctypes.data, out.ctypes.data],
                                      np.int64), n_tasks)
    return True


@njit(cache=True, nogil=True, inline="always")
def _run_task(args, task):
    """(x's run, out's run) of a _native_over_runs task."""
    header = carray(ints_at(args), (4,))
    size = header[0]
    lo, hi = task_run(size, header[1], task)
    x, out = carray(floats_at(header[2]), (size,)), carray(floats_at(header[3]), (size,))
    return x[lo:hi], out[lo:hi]


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _relu_task(args, task):
    _relu(*_run_task(args, task))


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _zero_where_not_positive_task(args, task):
    _zero_where_not_positive(*_run_task(args, task))


def _over_runs(kernel, *flats: np.ndarray) -> None:
    """kernel(*(f[lo:hi] for f in flats)) for runs [lo, hi) covering the flat arrays, one task
    each (as many as `elementwise` would make). Slices, not (lo, hi) bounds: Numba loops from
    lo to hi did not vectorise."""
    parts = tasks_for(flats[0].size, _ELEMENTWISE_GRAIN)
    if parts == 1:  # most calls: no closure, no task machinery
        kernel(*flats)
        return
    runs = chunks(flats[0].size, parts)

    def task(i: int, worker: int) -> None:
        lo, hi = runs[i]
        kernel(*(f[lo:hi] for f in flats))

    parallel_for(task, len(runs))


def log_softmax_nll(z: np.ndarray, target: np.ndarray, ignore_index: int) -> tuple:
    """(logp, losses, count) for logits z (M, C) and class indices target (M,): logp =
    log_softmax(z) over each row, losses[i] = -logp[i, target[i]] (0 where target[i] is
    ignore_index), count the rows not ignored. One pass where numpy's formulas (the reference
    in ops.CrossEntropy, tests/test_kernels.py) make a dozen calls: MLP3's loss (batch 32)
    35 -> 21 us with its Function's overhead. Targets outside [0, C) give a NaN loss."""
    logp = np.empty(z.shape, z.dtype)
    losses = np.empty(z.shape[0], z.dtype)
    return logp, losses, _log_softmax_nll(z, target, ignore_index, logp, losses)


@njit(cache=True, nogil=True, error_model="numpy")
def _log_softmax_nll(z, target, ignore_index, logp, losses):
    count = 0
    for i in range(z.shape[0]):
        row = z[i]
        top = row[0]
        for v in row:
            top = max(top, v)
        total = row[0] * 0  # in z's dtype; a NaN logit makes it NaN, as in numpy
        for v in row:
            total += np.exp(v - top)
        lse = np.log(total)
        for c in range(row.size):
            logp[i, c] = (row[c] - top) - lse
        t = target[i]
        if t == ignore_index:
            losses[i] = 0
        else:
            losses[i] = -logp[i, t] if 0 <= t < row.size else np.nan
            count += 1
    return count


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_minus_one_hot(logp, target, ignore_index, scale):
    """g[i] = (exp(logp[i]) - one_hot(target[i])) * scale[i], and 0 for ignored rows: the
    gradient of log_softmax_nll's losses (scale: the upstream gradient of each row, stride 0
    for one shared value)."""
    g = np.zeros(logp.shape, logp.dtype)
    for i in range(logp.shape[0]):
        t = target[i]
        if t == ignore_index:
            continue
        for c in range(logp.shape[1]):
            g[i, c] = np.exp(logp[i, c]) * scale[i]
        if 0 <= t < logp.shape[1]:
            g[i, t] = (np.exp(logp[i, t]) - 1) * scale[i]
    return g


def batch_minor(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised (N, C, H, W) array whose memory is laid out as (C, H, W, N)."""
    N, C, H, W = shape
    return np.empty((C, H, W, N), dtype).transpose(3, 0, 1, 2)


def to_batch_minor(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) array -> the same values as a C-contiguous (C, H, W, N) array: a view when x
    is already batch-minor (any output of these kernels), else one copy."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0))


@njit(cache=True, inline="always")
def _valid_range(S, P, k, D, size, O):
    """Outputs o in [lo, hi) whose input index o*S - P + k*D lies inside [0, size)."""
    off = P - k * D  # input = o*S - off
    lo = max(0, (off + S - 1) // S) if off > 0 else 0
    hi = min(O, (size - 1 + off) // S + 1) if size - 1 + off >= 0 else 0
    return lo, max(lo, hi)


# ------------------------------------------------------------------ im2col / col2im
def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, rows=None, out=None):
    """(N, C, H, W) -> col (C*KH*KW, R*OW*N) for the output rows oh in [oh0, oh1) = `rows`
    (default all, R = OH): column ((oh - oh0)*OW + ow)*N + n holds the receptive field of output
    pixel (n, oh, ow), zero where it reads padding. `out` may be a reused workspace.

    Then conv2d is one GEMM, weight (OC, C*KH*KW) @ col -> (OC, OH, OW, N), batch-minor.
    """
    xb = to_batch_minor(x)
    C, N = xb.shape[0], xb.shape[3]
    oh0, oh1 = (0, OH) if rows is None else rows
    if out is None:
        out = np.empty((C * KH * KW, (oh1 - oh0) * OW * N), x.dtype)
    _im2col(xb, out, oh0, oh1, KH, KW, SH, SW, PH, PW, DH, DW, OW)
    return out


@njit(cache=True, nogil=True)
def _im2col(x, col, oh0, oh1, KH, KW, SH, SW, PH, PW, DH, DW, OW):
    """x (C, H, W, N) -> col, one row (c*KH + kh)*KW + kw at a time."""
    C, H, W, N = x.shape
    for row in range(C * KH * KW):
        c, kh, kw = row // (KH * KW), (row // KW) % KH, row % KW
        ow_lo, ow_hi = _valid_range(SW, PW, kw, DW, W, OW)
        out = col[row]
        for oh in range(oh0, oh1):
            o = (oh - oh0) * OW * N  # first column of this output row
            ih = oh * SH - PH + kh * DH
            if ih < 0 or ih >= H:
                out[o:o + OW * N] = 0
                continue
            out[o:o + ow_lo * N] = 0
            src = x[c, ih]  # (W, N)
            if SW == 1:  # the whole valid run is contiguous in both arrays
                iw = ow_lo - PW + kw * DW
                n_run = (ow_hi - ow_lo) * N
                out[o + ow_lo * N:o + ow_lo * N + n_run] = src.reshape(W * N)[iw * N:iw * N + n_run]
            else:
                for ow in range(ow_lo, ow_hi):
                    out[o + ow * N:o + (ow + 1) * N] = src[ow * SW - PW + kw * DW]
            out[o + ow_hi * N:o + OW * N] = 0


def col2im(col, N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, rows=None, out=None):
    """col (C*KH*KW, R*OW*N) of the output rows `rows` (default all) -> (N, C, H, W): the adjoint
    of im2col, adding every column entry onto the input pixel it was read from (overlapping
    windows sum; padding is dropped). Adds into `out` (batch-minor) when given, else into zeros."""
    if out is None:
        out = batch_minor((N, C, H, W), col.dtype)
        out[...] = 0
    oh0, oh1 = (0, OH) if rows is None else rows
    _col2im(col, out.transpose(1, 2, 3, 0), oh0, oh1, KH, KW, SH, SW, PH, PW, DH, DW, OW)
    return out


@njit(cache=True, nogil=True)
def _col2im(col, x, oh0, oh1, KH, KW, SH, SW, PH, PW, DH, DW, OW):
    """col -> x (C, H, W, N) += ..., one channel at a time."""
    C, H, W, N = x.shape
    for c in range(C):
        xc = x[c].reshape(H * W * N)
        for kh in range(KH):
            for kw in range(KW):
                ow_lo, ow_hi = _valid_range(SW, PW, kw, DW, W, OW)
                src = col[(c * KH + kh) * KW + kw]
                for oh in range(oh0, oh1):
                    ih = oh * SH - PH + kh * DH
                    if ih < 0 or ih >= H:
                        continue
                    o = (oh - oh0) * OW * N  # first column of this output row
                    if SW == 1:  # one contiguous run, as in im2col
                        d = (ih * W + ow_lo - PW + kw * DW) * N
                        run = (ow_hi - ow_lo) * N
                        xc[d:d + run] += src[o + ow_lo * N:o + ow_lo * N + run]
                        continue
                    for ow in range(ow_lo, ow_hi):
                        d = (ih * W + ow * SW - PW + kw * DW) * N
                        xc[d:d + N] += src[o + ow * N:o + (ow + 1) * N]


# ------------------------------------------------------------------ max pooling
def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """(N, C, H, W) -> (y, window), both (N, C, OH, OW) and batch-minor. window is the position
    kh*KW + kw of each maximum inside its window (int8 for windows up to 127 taps, else int32);
    `window_to_flat` turns it into PyTorch's `return_indices` (ih*W + iw).

    Padding acts as -inf (it is skipped). Ties go to the FIRST maximum in row-major window order
    and NaN wins (PyTorch's rule), so the backward routes each window's gradient to one pixel.
    """
    N, C = x.shape[:2]
    y = batch_minor((N, C, OH, OW), x.dtype)
    window = batch_minor((N, C, OH, OW), np.int8 if KH * KW <= 127 else np.int32)
    kernel, windows = (_max_pool2x2, ()) if (KH, KW) == (2, 2) else (_max_pool2d, (0, OH, 0, OW))
    arrays = (to_batch_minor(x), y.transpose(1, 2, 3, 0), window.transpose(1, 2, 3, 0))
    taps = (KH, KW, SH, SW, PH, PW, DH, DW)
    if not _native_pool(_POOL_KINDS.index(kernel), *arrays, taps):
        over_channels(kernel, *arrays, *taps, *windows, work=x.size)
    return y, window


@njit(cache=True, nogil=True)
def _max_pool2d(x, y, window, KH, KW, SH, SW, PH, PW, DH, DW, oh0, oh1, ow0, ow1):
    """x (C, H, W, N) -> y, window (C, OH, OW, N) for the windows oh0 <= oh < oh1, ow0 <= ow <
    ow1, one channel at a time. The first tap inside the input starts each window, later taps
    replace it where larger (or NaN): a select over N that vectorises, written so that it does
    (every operand loaded, no branch, the window's position of its own type: LeNet-5's 4x4
    pool of 32 x 32 x 64 x 64 at one thread 13.4-16.2 -> 3.4-4.1 ms)."""
    C, H, W, N = x.shape
    tap = np.empty(1, window.dtype)
    for c in range(C):
        for oh in range(oh0, oh1):
            kh_lo, kh_hi = _tap_range(oh, SH, PH, DH, KH, H)
            for ow in range(ow0, ow1):
                kw_lo, kw_hi = _tap_range(ow, SW, PW, DW, KW, W)
                if kh_lo == kh_hi or kw_lo == kw_hi:  # the window lies entirely in the padding
                    for n in range(N):
                        y[c, oh, ow, n] = -np.inf
                        window[c, oh, ow, n] = -1
                    continue
                ih0, iw0 = oh * SH - PH + kh_lo * DH, ow * SW - PW + kw_lo * DW
                yo, wo, first = y[c, oh, ow], window[c, oh, ow], x[c, ih0, iw0]
                for n in range(N):
                    yo[n] = first[n]
                    wo[n] = kh_lo * KW + kw_lo
                for kh in range(kh_lo, kh_hi):
                    ih = oh * SH - PH + kh * DH
                    for kw in range(kw_lo, kw_hi):
                        if kh == kh_lo and kw == kw_lo:
                            continue
                        tap[0] = kh * KW + kw  # (of window's type: an int64 is slower)
                        xs, k = x[c, ih, ow * SW - PW + kw * DW], tap[0]
                        for n in range(N):
                            v, best, at = xs[n], yo[n], wo[n]
                            # NaN wins; v != v is isnan, which stops the vectoriser
                            better = (v > best) | (v != v)  # noqa: PLR0124
                            yo[n] = v if better else best
                            wo[n] = k if better else at


@njit(cache=True, nogil=True)
def _max_pool2x2(x, y, window, KH, KW, SH, SW, PH, PW, DH, DW):
    """_max_pool2d of 2x2 windows: those inside the input keep their running maximum and
    position in registers over the four taps, where _max_pool2d loads and stores them once
    per tap (CNN3 b32, one thread, alternating with those loops: its first pool, 16 x 28 x
    28, 122 -> 65 us; its second 65 -> 36); the strips of windows that reach into the
    padding go to _max_pool2d. KH and KW (both 2) keep _max_pool2d's arguments."""
    C, H, W, N = x.shape
    OH, OW = y.shape[1:3]
    oh_lo, oh_hi = _windows_inside(OH, SH, PH, DH, H)
    ow_lo, ow_hi = _windows_inside(OW, SW, PW, DW, W)
    for c in range(C):
        for oh in range(oh_lo, oh_hi):
            ih = oh * SH - PH
            for ow in range(ow_lo, ow_hi):
                iw = ow * SW - PW
                r0, r1 = x[c, ih, iw], x[c, ih, iw + DW]
                r2, r3 = x[c, ih + DH, iw], x[c, ih + DH, iw + DW]
                yo, wo = y[c, oh, ow], window[c, oh, ow]
                for n in range(N):
                    best, k = r0[n], 0
                    v = r1[n]
                    if (v > best) | np.isnan(v):  # NaN wins
                        best, k = v, 1
                    v = r2[n]
                    if (v > best) | np.isnan(v):
                        best, k = v, 2
                    v = r3[n]
                    if (v > best) | np.isnan(v):
                        best, k = v, 3
                    yo[n] = best
                    wo[n] = k
    for oh0, oh1, ow0, ow1 in _border_strips(OH, OW, oh_lo, oh_hi, ow_lo, ow_hi):
        _max_pool2d(x, y, window, 2, 2, SH, SW, PH, PW, DH, DW, oh0, oh1, ow0, ow1)


@njit(cache=True)
def _border_strips(OH, OW, oh_lo, oh_hi, ow_lo, ow_hi):
    """The windows of an (OH, OW) grid outside the block [oh_lo, oh_hi) x [ow_lo, ow_hi), as
    four rectangles (oh0, oh1, ow0, ow1): the rows above and below it, then left and right."""
    return ((0, oh_lo, 0, OW), (oh_hi, OH, 0, OW), (oh_lo, oh_hi, 0, ow_lo),
            (oh_lo, oh_hi, ow_hi, OW))


@njit(cache=True)
def _windows_inside(O, S, P, D, size):
    """(lo, hi): the windows o in [lo, hi) of two taps (o*S - P and o*S - P + D) along an axis
    of `size` whose taps both lie inside it (lo = hi when none does)."""
    lo = min(O, -(-P // S))
    hi = (size - 1 - D + P) // S + 1 if size - 1 - D + P >= 0 else 0
    return lo, max(lo, min(O, hi))


@njit(cache=True, inline="always")
def _tap_range(o, S, P, D, K, size):
    """Taps k in [lo, hi) of window `o` whose input index o*S - P + k*D lies inside [0, size)."""
    start = o * S - P
    lo = 0 if start >= 0 else (-start + D - 1) // D
    hi = min(K, (size - 1 - start) // D + 1) if size - 1 - start >= 0 else 0
    return lo, max(lo, hi)


def window_to_flat(window, H, W, KW, SH, SW, PH, PW, DH, DW):
    """Window positions from max_pool2d_forward -> flat indices ih*W + iw into each (H, W) plane
    (int64, -1 where a window saw only padding), as PyTorch's `return_indices`."""
    OH, OW = window.shape[2:]
    k = window.astype(np.int64)
    ih = np.arange(OH)[:, None] * SH - PH + (k // KW) * DH
    iw = np.arange(OW)[None, :] * SW - PW + (k % KW) * DW
    return np.where(k >= 0, ih * W + iw, -1)


def max_pool2d_backward(gy, window, H, W, KH, KW, SH, SW, PH, PW, DH, DW):
    """gy (N, C, OH, OW) and the window positions from max_pool2d_forward -> gx (N, C, H, W),
    batch-minor: each window's gradient goes to exactly the one pixel its maximum came from
    (overlapping windows add)."""
    N, C = gy.shape[:2]
    OH, OW = gy.shape[2:]
    gx = batch_minor((N, C, H, W), gy.dtype)
    if (SH, SW, DH, DW, PH, PW) == (KH, KW, 1, 1, 0, 0) and OH * KH <= H and OW * KW <= W:
        kernel = _max_pool_tiles_backward  # windows side by side, inside: the common case
    elif (KH, KW) == (2, 2):
        kernel = _max_pool2x2_backward
    else:
        kernel = _max_pool2d_backward
    taps = (KH, KW, SH, SW, PH, PW, DH, DW)
    big, small, window = gx.transpose(1, 2, 3, 0), to_batch_minor(gy), to_batch_minor(window)
    if not _native_pool(_POOL_KINDS.index(kernel), big, small, window, taps):
        over_channels(kernel, small, window, big, *taps, work=gx.size)
    return gx


@njit(cache=True, nogil=True)
def _max_pool2d_backward(gy, window, gx, KH, KW, SH, SW, PH, PW, DH, DW):
    """gy, window (C, OH, OW, N) -> gx (C, H, W, N), one channel at a time. Each tap of a window
    adds gy where the window's maximum was that tap: a masked add over N, which vectorises,
    where a scatter to computed addresses would not."""
    C, OH, OW = gy.shape[:3]
    for c in range(C):  # each channel cleared just before its sums, while it is in cache
        gx[c] = 0
        _max_pool2d_add(gy[c:c + 1], window[c:c + 1], gx[c:c + 1], KH, KW, SH, SW, PH, PW,
                        DH, DW, 0, OH, 0, OW)


@njit(cache=True, nogil=True)
def _max_pool_tiles_backward(gy, window, gx, KH, KW, SH, SW, PH, PW, DH, DW):
    """_max_pool2d_backward of windows that tile the input (stride = kernel, no padding or
    dilation, all inside): each pixel lies in one window at most, so its gradient is written
    once, gy or 0, where the other kernels clear gx and then add into it; only the rows and
    columns no window covers are cleared. The same arguments as _max_pool2d_backward.
    Measured with its output (AVX2 host, 2026-12-02), against the kernels it replaces: CNN3's
    first pool (2x2, 16 x 28 x 28, batch 32) 208 -> 96 us at one thread, the VGG block's (64 x
    32 x 32) 1222 -> 844 us, at two 563 -> 288, LeNet-5's 4x4 of 32 x 64 x 64 3549 -> 1386 and
    1516 -> 584; steps at two threads, alternating: LeNet-5 62.2 -> 60.3 ms, CNN3 b128 24.3 ->
    23.6, CNN3 b32 and CNN2 b32 equal (8.00 / 8.08, 11.43 / 11.37)."""
    C, OH, OW, N = gy.shape
    H, W = gx.shape[1:3]
    tap = np.empty(1, window.dtype)
    for c in range(C):
        for oh in range(OH):
            for ow in range(OW):
                go, wo = gy[c, oh, ow], window[c, oh, ow]
                for kh in range(KH):
                    for kw in range(KW):
                        tap[0] = kh * KW + kw
                        gs, k = gx[c, oh * KH + kh, ow * KW + kw], tap[0]
                        for n in range(N):  # a select, vectorised
                            gs[n] = go[n] if wo[n] == k else 0
            for ih in range(oh * KH, oh * KH + KH):  # the columns right of the last window
                for iw in range(OW * KW, W):
                    gx[c, ih, iw] = 0
        for ih in range(OH * KH, H):  # the rows below the last window
            gx[c, ih] = 0


@njit(cache=True, nogil=True)
def _max_pool2x2_backward(gy, window, gx, KH, KW, SH, SW, PH, PW, DH, DW):
    """_max_pool2d_backward of 2x2 windows: a window inside the input loads its gradient and
    positions once for its four taps (CNN3 b32 one thread: 127 -> 86 us, 64 -> 50); the
    strips of windows that reach into the padding go to _max_pool2d_add. KH and KW (both 2)
    keep _max_pool2d_backward's arguments."""
    C, OH, OW, N = gy.shape
    H, W = gx.shape[1:3]
    oh_lo, oh_hi = _windows_inside(OH, SH, PH, DH, H)
    ow_lo, ow_hi = _windows_inside(OW, SW, PW, DW, W)
    for c in range(C):
        gx[c] = 0
        for oh in range(oh_lo, oh_hi):
            ih = oh * SH - PH
            for ow in range(ow_lo, ow_hi):
                iw = ow * SW - PW
                g0, g1 = gx[c, ih, iw], gx[c, ih, iw + DW]
                g2, g3 = gx[c, ih + DH, iw], gx[c, ih + DH, iw + DW]
                go, wo = gy[c, oh, ow], window[c, oh, ow]
                for n in range(N):
                    g, at = go[n], wo[n]
                    g0[n] += g if at == 0 else 0
                    g1[n] += g if at == 1 else 0
                    g2[n] += g if at == 2 else 0
                    g3[n] += g if at == 3 else 0
    for oh0, oh1, ow0, ow1 in _border_strips(OH, OW, oh_lo, oh_hi, ow_lo, ow_hi):
        _max_pool2d_add(gy, window, gx, 2, 2, SH, SW, PH, PW, DH, DW, oh0, oh1, ow0, ow1)


@njit(cache=True, nogil=True)
def _max_pool2d_add(gy, window, gx, KH, KW, SH, SW, PH, PW, DH, DW, oh0, oh1, ow0, ow1):
    """gx += the gradient of the windows oh0 <= oh < oh1, ow0 <= ow < ow1, routed to their
    maxima (_max_pool2d_backward, without clearing gx). As _max_pool2d, a select that
    vectorises (LeNet-5's 4x4 pool's gradient at one thread, with its output: 7.5 -> 3.9-5.0
    ms)."""
    C, N = gy.shape[0], gy.shape[3]
    H, W = gx.shape[1:3]
    tap = np.empty(1, window.dtype)
    for c in range(C):
        for oh in range(oh0, oh1):
            kh_lo, kh_hi = _tap_range(oh, SH, PH, DH, KH, H)
            for ow in range(ow0, ow1):
                kw_lo, kw_hi = _tap_range(ow, SW, PW, DW, KW, W)
                go, wo = gy[c, oh, ow], window[c, oh, ow]
                for kh in range(kh_lo, kh_hi):
                    ih = oh * SH - PH + kh * DH
                    for kw in range(kw_lo, kw_hi):
                        tap[0] = kh * KW + kw
                        gs, k = gx[c, ih, ow * SW - PW + kw * DW], tap[0]
                        for n in range(N):  # a select, not a branch: it vectorises
                            gs[n] += go[n] if wo[n] == k else 0


# ------------------------------------------------------------------ average pooling
@njit(cache=True)
def _avg_window(o, S, P, K, size):
    """Window `o` along one axis -> (first, last+1) input index inside [0, size), and the count
    PyTorch divides by with count_include_pad: the window clipped to the padded input."""
    start = o * S - P
    end = min(start + K, size + P)
    padded_count = end - start
    return max(start, 0), min(end, size), padded_count


# Max pooling's kernels by the number a native task knows them by (_pool_task)
_POOL_KINDS = [_max_pool2d, _max_pool2x2, _max_pool2d_backward, _max_pool_tiles_backward,
               _max_pool2x2_backward]


def _native_pool(kind: int, big: np.ndarray, small: np.ndarray, window: np.ndarray,
                 taps: tuple) -> bool:
    """Max pooling kernel _POOL_KINDS[kind] over the channels in native tasks (no GIL: they
    pay from _NATIVE_ELEMENTS, where Python tasks needed _TASK_ELEMENTS, so CNN3's pools of
    800K values and under ran in one thread): big is the (C, H, W, N) input (forward) or its
    gradient (backward), small the (C, OH, OW, N) output or its gradient, window the maxima's
    int8 positions. False, with nothing done, when the job is one task or an array does not
    qualify (float32 and int8, C-contiguous, writeable)."""
    C = big.shape[0]
    n_tasks = min(C, tasks_for(big.size, _NATIVE_ELEMENTS))
    if n_tasks == 1 or not (big.dtype == small.dtype == np.float32 and window.dtype == np.int8
                            and all(a.flags.c_contiguous and a.flags.writeable
                                    for a in (big, small, window))):
        return False
    args = [kind, n_tasks, *big.shape, *small.shape[1:3], *taps,
            big.ctypes.data, small.ctypes.data, window.ctypes.data]
    native_for(_pool_task.address, np.array(args, np.int64), n_tasks)
    return True


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _pool_task(args, task):
    """Task `task` of _native_pool: its run of channels. args: the kernel's number, the task
    count, C, H, W, N, OH, OW, the eight window sizes, then the addresses of big, small and
    window."""
    h = carray(ints_at(args), (19,))
    kind, C, H, W, N, OH, OW = h[0], h[2], h[3], h[4], h[5], h[6], h[7]
    KH, KW, SH, SW, PH, PW, DH, DW = h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]
    c0, c1 = task_run(C, h[1], task)
    big = carray(floats_at(h[16]), (C, H, W, N))[c0:c1]
    small = carray(floats_at(h[17]), (C, OH, OW, N))[c0:c1]
    window = carray(bytes_at(h[18]), (C, OH, OW, N))[c0:c1]
    if kind == 0:
        _max_pool2d(big, small, window, KH, KW, SH, SW, PH, PW, DH, DW, 0, OH, 0, OW)
    elif kind == 1:
        _max_pool2x2(big, small, window, KH, KW, SH, SW, PH, PW, DH, DW)
    elif kind == 2:
        _max_pool2d_backward(small, window, big, KH, KW, SH, SW, PH, PW, DH, DW)
    elif kind == 3:
        _max_pool_tiles_backward(small, window, big, KH, KW, SH, SW, PH, PW, DH, DW)
    else:
        _max_pool2x2_backward(small, window, big, KH, KW, SH, SW, PH, PW, DH, DW)


@njit(cache=True)
def avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad):
    """(N, C, H, W) -> (N, C, OH, OW) window means. With count_include_pad the divisor counts the
    padding (PyTorch's default) but never the part of a ceil_mode window beyond it."""
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW), x.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h0, h1, hcount = _avg_window(oh, SH, PH, KH, H)
                for ow in range(OW):
                    w0, w1, wcount = _avg_window(ow, SW, PW, KW, W)
                    total = 0.0
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            total += x[n, c, ih, iw]
                    divisor = hcount * wcount if count_include_pad else (h1 - h0) * (w1 - w0)
                    y[n, c, oh, ow] = total / divisor
    return y


@njit(cache=True)
def avg_pool2d_backward(gy, H, W, KH, KW, SH, SW, PH, PW, count_include_pad):
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each window spreads gy / divisor over its pixels."""
    N, C, OH, OW = gy.shape
    gx = np.zeros((N, C, H, W), gy.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h0, h1, hcount = _avg_window(oh, SH, PH, KH, H)
                for ow in range(OW):
                    w0, w1, wcount = _avg_window(ow, SW, PW, KW, W)
                    divisor = hcount * wcount if count_include_pad else (h1 - h0) * (w1 - w0)
                    g = gy[n, c, oh, ow] / divisor
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            gx[n, c, ih, iw] += g
    return gx


# ------------------------------------------------------------------ batch norm (training)
def channel_rows(x: np.ndarray) -> np.ndarray | None:
    """(N, C, H, W) batch-minor x -> its (C, H*W*N) view, one contiguous row per channel (what
    the batch-norm loops take); None for any other layout (ops.BatchNorm then uses numpy)."""
    if x.ndim != 4:
        return None
    xb = x.transpose(1, 2, 3, 0)
    return xb.reshape(xb.shape[0], -1) if xb.flags.c_contiguous else None


def batch_norm_forward(x, weight, bias, eps: float):
    """Batch-minor (N, C, H, W) x -> (y batch-minor, mean (C,), biased var (C,), inv_std (C,)):
    y = (x - mean) * inv_std * weight + bias, in two reading passes and one writing pass."""
    rows = channel_rows(x)
    C = rows.shape[0]
    y = batch_minor(x.shape, x.dtype)
    mean, var, inv_std = (np.empty(C, x.dtype) for _ in range(3))
    arrays = (rows, weight, bias, channel_rows(y), mean, var, inv_std)
    if not native_over_channels(_batch_norm_forward_task, eps, *arrays):
        over_channels(_batch_norm_forward, *arrays[:3], eps, *arrays[3:], work=x.size)
    return y, mean, var, inv_std


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _batch_norm_forward(x, weight, bias, eps, y, mean, var, inv_std):
    """Per channel row: float64 sums (reassociated so that they vectorise), then one pass."""
    C, M = x.shape
    for c in range(C):
        row, total = x[c], 0.0
        for i in range(M):
            total += row[i]
        mu = total / M
        squares = 0.0
        for i in range(M):
            d = row[i] - mu
            squares += d * d
        r = 1.0 / np.sqrt(squares / M + eps)
        mean[c], var[c], inv_std[c] = mu, squares / M, r
        scale = weight[c] * r
        shift = bias[c] - mu * scale
        out = y[c]
        for i in range(M):
            out[i] = row[i] * scale + shift


def batch_norm_backward(grad, x, mean, inv_std, weight):
    """(gx batch-minor, gweight, gbias) of batch_norm_forward, recomputing x_hat from x; grad
    in any layout (copied to batch-minor when it is not)."""
    g = channel_rows(grad)
    if g is None:
        g = channel_rows(to_batch_minor(grad).transpose(3, 0, 1, 2))
    gx = batch_minor(x.shape, x.dtype)
    gw, gb = np.empty_like(weight), np.empty_like(weight)
    arrays = (g, channel_rows(x), mean, inv_std, weight, channel_rows(gx), gw, gb)
    if not native_over_channels(_batch_norm_backward_task, 0.0, *arrays):
        over_channels(_batch_norm_backward, *arrays, work=x.size)
    return gx, gw, gb


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _batch_norm_backward(g, x, mean, inv_std, weight, gx, gw, gb):
    """gx = weight * inv_std / M * (M * g - sum(g) - x_hat * sum(g * x_hat)), per channel."""
    C, M = x.shape
    for c in range(C):
        mu, r = mean[c], inv_std[c]
        sum_g, sum_gx = 0.0, 0.0
        for i in range(M):
            sum_g += g[c, i]
            sum_gx += g[c, i] * ((x[c, i] - mu) * r)
        gb[c], gw[c] = sum_g, sum_gx
        k = weight[c] * r / M
        for i in range(M):
            gx[c, i] = k * (M * g[c, i] - sum_g - (x[c, i] - mu) * r * sum_gx)


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _batch_norm_forward_task(args, task):
    h, c0, c1 = _channel_task(args, task, 7)
    _batch_norm_forward(_rows_at(h, 0, c0, c1), _vector_at(h, 1, c0, c1),
                        _vector_at(h, 2, c0, c1), float_from_bits(h[3]), _rows_at(h, 3, c0, c1),
                        _vector_at(h, 4, c0, c1), _vector_at(h, 5, c0, c1),
                        _vector_at(h, 6, c0, c1))


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _batch_norm_backward_task(args, task):
    h, c0, c1 = _channel_task(args, task, 8)
    _batch_norm_backward(_rows_at(h, 0, c0, c1), _rows_at(h, 1, c0, c1),
                         _vector_at(h, 2, c0, c1), _vector_at(h, 3, c0, c1),
                         _vector_at(h, 4, c0, c1), _rows_at(h, 5, c0, c1),
                         _vector_at(h, 6, c0, c1), _vector_at(h, 7, c0, c1))


# ------------------------------------------------------------------ direct convolution
# A conv with few input channels (an image's 3, MNIST's 1) has a thin im2col: LeNet-5's 3 -> 32
# 5x5 conv at 64x64 copies every input pixel 25 times into 39 MB of columns per pass, for a GEMM
# with only K = 75. The direct convolution reads the input rows themselves. In the batch-minor
# layout one output row (oh, every ow, every n) of a channel is a contiguous run of OW*N values,
# and what tap (c, kh, kw) adds to it is the contiguous run of padded input row oh + kh that
# starts at kw*N. So the forward is axpys of whole rows, y[oc, oh] += w[oc, c, kh, kw] *
# xp[c, oh + kh, kw*N:], and the weight gradient dot products of the same rows. Four output
# channels per pass, and three taps (_axpy3) or, for 5-wide kernels, a whole row of five
# (_axpy5): each input value loaded serves 12-20 multiply-adds, each output value is loaded and
# stored once per pass (a one-tap pass is store-bound). Measured at one thread (CPU time, load
# 2-5), LeNet-5's first conv at batch 32: forward 4.2-4.9 ms vs 9.7 ms by banded im2col + GEMM,
# weight gradient 4.2-4.8 ms vs 12.8 ms; ops_cnn._direct_fits and _direct_weight_grad_fits say
# where the direct kernels are used, with their measurements. Numba compiles these loops for
# the host's vector units (AVX-512 on the benchmark machine), while numpy's OpenBLAS there runs
# its AVX2 kernels (OPENBLAS_CORETYPE=Haswell is set). On an AVX2-only CPU (a Zen 3 EPYC,
# 2026-12-02, two threads, alternating) they still lead: with LeNet-5's and CNN2's 32- and
# 64-channel convs on im2col + OpenBLAS instead, LeNet-5 66.7 -> 69.4 ms, CNN2 b32 16.0 -> 17.2;
# with every weight gradient on im2col, LeNet-5 70.6 -> 71.5, CNN3 b32 10.3 -> 11.3.
DIRECT_BLOCK = 4  # output channels per pass of the direct loops
_OFFSET_MIN_TAPS = 48  # fewer taps (C*KH*KW): the direct loops, not our GEMM (_offset_conv2d)


def direct_conv2d(x, w, bias, pads) -> np.ndarray:
    """Stride-1 convolution of (N, C, H, W) x with (OC, C, KH, KW) w (+ bias (OC,)), zero
    padding pads = (top, bottom, left, right), computed directly (no im2col) -> batch-minor
    (N, OC, OH, OW). Split over blocks of output channels (parallel.py).

        y = direct_conv2d(x, w, b, (2, 2, 2, 2))   # (32, 3, 64, 64) * (32, 3, 5, 5)
    """
    OC, C, KH, KW = w.shape
    N = x.shape[0]
    if direct_on_gemm(x.dtype, C, KH, KW):
        return _offset_conv2d(x, w, bias, pads)
    xp = _padded_batch_minor(x, pads)  # (C, HP, WP, N)
    OH, OW = xp.shape[1] - KH + 1, xp.shape[2] - KW + 1
    if KW == 4:  # a zero fifth tap and column: one pass per row, not 3 + 1 (7.3 vs 10.7 ms)
        xp = np.concatenate([xp, np.zeros(xp.shape[:2] + (1, N), xp.dtype)], axis=2)
        KW = 5
    OCB = -(-OC // DIRECT_BLOCK) * DIRECT_BLOCK  # whole blocks: extra channels, zero weights
    wb = np.zeros((OCB, C, KH, KW), x.dtype)
    wb[:OC, :, :, :w.shape[3]] = w
    bb = np.zeros(OCB, x.dtype)
    if bias is not None:
        bb[:OC] = bias
    y = np.empty((OCB, OH, OW, N), x.dtype)
    _over_blocks(_direct_conv5 if KW == 5 else _direct_conv, OCB, OC * C * KH * KW * OH * OW * N,
                 xp.reshape(C, xp.shape[1], -1), wb, bb, y.reshape(OCB, OH, OW * N), N)
    return y[:OC].transpose(3, 0, 1, 2)  # (N, OC, OH, OW) view of whole channels


def direct_on_gemm(dtype, C: int, KH: int, KW: int) -> bool:
    """Whether direct_conv2d of C input channels with KH x KW kernels runs on our GEMM
    (_offset_conv2d) rather than on the loops below: float32 where gemm.enabled(), with at
    least _OFFSET_MIN_TAPS taps."""
    return gemm.enabled(dtype) and C * KH * KW >= _OFFSET_MIN_TAPS


def _offset_conv2d(x, w, bias, pads) -> np.ndarray:
    """direct_conv2d by our GEMM reading the padded input's rows in place (gemm.offset_matmul,
    which splits it over output rows: output row oh of channel oc is w[oc] (C*KH*KW) @ the
    C*KH*KW input rows its taps read). Its micro-kernel keeps an 8 x 32 tile of outputs in
    registers over all the taps, where the loops below load and store each output once per row
    of taps: measured at one thread, LeNet-5's 32 -> 64 5x5 conv at batch 32 4.1 vs 6.1 ms, its
    input gradient (64 -> 32) 4.7 vs 6.4, CNN3's 16 -> 32 3x3 0.35 vs 0.45, LeNet-5's first
    conv (3 -> 32, 75 taps) 4.4 vs 4.7-5.9; with fewer taps than _OFFSET_MIN_TAPS the tile's
    loads and stores cost more than they save (1 -> 16 3x3: 0.14 vs 0.08 ms)."""
    OC, C, KH, KW = w.shape
    flat, (C, HP, WP, N) = _padded_rows(x, pads, gemm.NR)
    OH, OW = HP - KH + 1, WP - KW + 1
    offsets = _tap_offsets(C, HP, WP, N, KH, KW)
    starts = np.arange(OH) * (WP * N)
    y = np.empty((OC, OH, OW * N), np.float32)
    gemm.offset_matmul(gemm.pack_panels(w.reshape(OC, C * KH * KW)), flat, offsets, starts, y,
                       bias)  # split over output rows
    return y.reshape(OC, OH, OW, N).transpose(3, 0, 1, 2)


def direct_conv2d_weight_grad(x, gy, KH: int, KW: int, pads) -> tuple:
    """(gw (OC, C, KH, KW), gb (OC,)) of direct_conv2d from its input x (N, C, H, W) and its
    output gradient gy (N, OC, OH, OW), any strides: gw[oc, c, kh, kw] is the dot product of
    gy's rows with the input rows that tap reads, summed in float32 along each row and in
    float64 over the rows; on our dot kernel (float32 where gemm.enabled(), rows of OW*N
    values filling whole vectors: _offset_weight_grad) in float32 over up to 4K values of each
    row, then in float64."""
    N, C = x.shape[:2]
    OC, OH, OW = gy.shape[1:]
    if gemm.enabled(x.dtype) and (OW * N) % gemm.LANES == 0:
        return _offset_weight_grad(x, gy, KH, KW, pads)
    xp = _padded_batch_minor(x, pads)  # (C, HP, WP, N)
    gyb = to_batch_minor(gy)  # (OC, OH, OW, N)
    OCB = -(-OC // DIRECT_BLOCK) * DIRECT_BLOCK
    if OCB != OC:  # whole blocks: zero gradient rows for the extra channels
        gyb = np.concatenate([gyb, np.zeros((OCB - OC,) + gyb.shape[1:], gyb.dtype)])
    gw = np.empty((OCB, C, KH, KW), x.dtype)
    gb = np.empty(OCB, x.dtype)
    _over_blocks(_direct_weight_grad, OCB, OC * C * KH * KW * OH * OW * N,
                 xp.reshape(C, xp.shape[1], -1), gyb.reshape(OCB, OH, OW * N), gw, gb, N)
    return (gw, gb) if OCB == OC else (gw[:OC], gb[:OC])  # arrays, not views, when they can


def _offset_weight_grad(x, gy, KH: int, KW: int, pads) -> tuple:
    """direct_conv2d_weight_grad by our dot-product kernel on rows read in place
    (gemm.offset_dots: gw[oc, tap] is the dot product of gy's rows of channel oc with the input
    rows that tap reads, over all output rows), split over output channels. The bias gradient
    is one more "tap": a run of ones after the padded input. Its micro-kernel keeps 24 dot
    products in registers over whole rows, where the loops below sum 12 per row and reduce
    them row after row. Measured at one thread, batch 32 (the old loops in brackets):
    LeNet-5's 3 -> 32 5x5 conv 3.7 (4.9-5.3) ms, its 32 -> 64 4.0-4.5 (6.4-6.7), the VGG block's
    64 -> 64 3x3 at 32x32 13.1 (15.7-16.1), ResNet-18's 128 -> 128 at 8x8 3.0 (4.1-4.3),
    CNN3's 16 -> 32 at 14x14 0.32-0.34 (0.31-0.36); LeNet-5's step 36.3 -> 33.2 ms."""
    N, C, H, W = x.shape
    OC, OH, OW = gy.shape[1:]
    PT, PB, PL, PR = pads
    channel = (PT + H + PB) * (PL + W + PR) * N  # values per channel of the padded input
    flat, (C, HP, WP, N) = _padded_rows(x, pads, channel)
    flat[C * channel:] = 1  # the bias "tap": ones wherever a row reads
    taps = _tap_offsets(C, HP, WP, N, KH, KW)
    L = OW * N
    gyf = np.ascontiguousarray(to_batch_minor(gy)).reshape(-1)  # (OC, OH, OW, N)
    g = gemm.offset_dots(gyf, np.arange(OC) * (OH * L), flat, np.append(taps, C * channel), L,
                         OH, L, WP * N)  # split over output channels
    return np.ascontiguousarray(g[:, :-1]).reshape(OC, C, KH, KW), g[:, -1].copy()


def _tap_offsets(C: int, HP: int, WP: int, N: int, KH: int, KW: int) -> np.ndarray:
    """Where each tap (c, kh, kw) of output row 0 starts in a padded batch-minor input
    (C, HP, WP, N): ((c*HP + kh)*WP + kw)*N, in the order of w.reshape(OC, C*KH*KW). A copy
    of the remembered array (its five numpy calls were ~20 us of each CNN3 conv pass)."""
    return _remembered_tap_offsets(C, HP, WP, N, KH, KW).copy()


@functools.lru_cache(maxsize=64)
def _remembered_tap_offsets(C: int, HP: int, WP: int, N: int, KH: int, KW: int) -> np.ndarray:
    rows = np.arange(C)[:, None, None] * HP + np.arange(KH)[:, None]  # (C, KH, 1)
    return ((rows * WP + np.arange(KW)) * N).reshape(-1)


def stride2_phases(x, pads, OH: int, OW: int, KH: int, KW: int) -> np.ndarray:
    """The four phases of padded x (N, C, H, W), xp[:, :, a::2, b::2], as the channels
    (2a + b)*C + c of a batch-minor (N, 4C, OH + KH2 - 1, OW + KW2 - 1) array, KH2 = ceil(KH/2):
    a stride-2 conv of x with w is the stride-1 conv of these phases with stride2_weights(w).
    Why: stride-1 rows are what the direct kernels stream (ResNet-18's 3 -> 64 7x7 stride-2
    conv's weight gradient as a 12 -> 64 4x4 one: 4.1-4.9 vs 9.3-10.2 ms by im2col + GEMM,
    one thread, CPU time)."""
    N, C = x.shape[:2]
    KH2, KW2 = -(-KH // 2), -(-KW // 2)
    xp = _padded_batch_minor(x, pads)  # (C, HP, WP, N)
    H2, W2 = OH + KH2 - 1, OW + KW2 - 1
    out = np.zeros((4, C, H2, W2, N), x.dtype)
    for a in range(2):
        for b in range(2):
            phase = xp[:, a::2, b::2][:, :H2, :W2]
            out[2 * a + b, :, :phase.shape[1], :phase.shape[2]] = phase
    return out.reshape(4 * C, H2, W2, N).transpose(3, 0, 1, 2)


def stride2_weights(w: np.ndarray) -> np.ndarray:
    """(OC, C, KH, KW) -> the phases' kernels (OC, 4C, KH2, KW2): channel (2a + b)*C + c, tap
    (i, j) holds w[:, c, 2i + a, 2j + b], zero where that lies outside the kernel."""
    OC, C, KH, KW = w.shape
    wp = np.zeros((OC, C, 2 * -(-KH // 2), 2 * -(-KW // 2)), w.dtype)
    wp[:, :, :KH, :KW] = w
    phases = wp.reshape(OC, C, -1, 2, wp.shape[3] // 2, 2)  # (OC, C, i, a, j, b)
    return np.ascontiguousarray(phases.transpose(0, 3, 5, 1, 2, 4)).reshape(
        OC, 4 * C, wp.shape[2] // 2, wp.shape[3] // 2)


def stride2_weights_grad(g2: np.ndarray, KH: int, KW: int) -> np.ndarray:
    """The adjoint of stride2_weights: the phases' kernel gradient (OC, 4C, KH2, KW2) ->
    (OC, C, KH, KW) (the taps outside the kernel dropped)."""
    OC, C4, KH2, KW2 = g2.shape
    phases = g2.reshape(OC, 2, 2, C4 // 4, KH2, KW2).transpose(0, 3, 4, 1, 5, 2)
    return np.ascontiguousarray(phases.reshape(OC, C4 // 4, 2 * KH2, 2 * KW2)[:, :, :KH, :KW])


def _padded_batch_minor(x, pads) -> np.ndarray:
    """(N, C, H, W) x of any strides -> zero-padded copy (C, PT + H + PB, PL + W + PR, N)."""
    flat, shape = _padded_rows(x, pads, 0)
    return flat.reshape(shape)


def _padded_rows(x, pads, slack: int) -> tuple:
    """_padded_batch_minor's copy as one flat array with `slack` zeros after it, and its shape
    (C, HP, WP, N): for reads that run past the last row (gemm.offset_matmul)."""
    N, C, H, W = x.shape
    PT, PB, PL, PR = pads
    shape = (C, PT + H + PB, PL + W + PR, N)
    flat = np.zeros(math.prod(shape) + slack, x.dtype)
    flat[:flat.size - slack].reshape(shape)[:, PT:PT + H, PL:PL + W] = x.transpose(1, 2, 3, 0)
    return flat, shape


def _over_blocks(kernel, OCB: int, macs: int, *args) -> None:
    """kernel(oc_lo, oc_hi, *args) over runs of whole blocks of output channels, as tasks."""
    runs = chunks(OCB // DIRECT_BLOCK, tasks_for(macs, _TASK_MACS))

    def task(i: int, worker: int) -> None:
        b0, b1 = runs[i]
        kernel(b0 * DIRECT_BLOCK, b1 * DIRECT_BLOCK, *args)

    parallel_for(task, len(runs))


@njit(cache=True, nogil=True, fastmath={"contract"})
def _direct_conv(oc_lo, oc_hi, xp, w, bias, y, N):
    """Padded xp (C, HP, WP*N), w (OCB, C, KH, KW) -> y (OCB, OH, OW*N) for the output
    channels [oc_lo, oc_hi): each output row of four channels starts at the bias and adds the
    C*KH*KW input rows its taps read, three taps per pass."""
    C, KH, KW = xp.shape[0], w.shape[2], w.shape[3]
    OH, L = y.shape[1], y.shape[2]
    for oc in range(oc_lo, oc_hi, DIRECT_BLOCK):
        for oh in range(OH):
            for j in range(DIRECT_BLOCK):
                y[oc + j, oh] = bias[oc + j]
            for c in range(C):
                for kh in range(KH):
                    row, taps = xp[c, oh + kh], w[oc:oc + DIRECT_BLOCK, c, kh]  # (WP*N,) (4, KW)
                    for kw in range(0, KW - KW % 3, 3):
                        _axpy3(y, oc, oh, row[kw * N:kw * N + L],
                               row[(kw + 1) * N:(kw + 1) * N + L],
                               row[(kw + 2) * N:(kw + 2) * N + L], taps, kw)
                    for kw in range(KW - KW % 3, KW):
                        _axpy1(y, oc, oh, row[kw * N:kw * N + L], taps, kw)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _direct_conv5(oc_lo, oc_hi, xp, w, bias, y, N):
    """_direct_conv for 5-wide kernels, a whole row of taps per pass. Its own function: with
    the 5-tap pass as a branch of _direct_conv, LeNet-5's 32 -> 64 conv took 9.9 ms instead of
    6.7-7.0 (one thread, CPU time)."""
    C, KH = xp.shape[0], w.shape[2]
    OH, L = y.shape[1], y.shape[2]
    for oc in range(oc_lo, oc_hi, DIRECT_BLOCK):
        for oh in range(OH):
            for j in range(DIRECT_BLOCK):
                y[oc + j, oh] = bias[oc + j]
            for c in range(C):
                for kh in range(KH):
                    row = xp[c, oh + kh]  # (WP*N,)
                    _axpy5(y, oc, oh, row[:L], row[N:N + L], row[2 * N:2 * N + L],
                           row[3 * N:3 * N + L], row[4 * N:4 * N + L],
                           w[oc:oc + DIRECT_BLOCK, c, kh])


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _axpy3(y, oc, oh, xa, xb, xc, taps, kw):
    """y[oc + j, oh] += taps[j, kw] * xa + taps[j, kw + 1] * xb + taps[j, kw + 2] * xc, j < 4.
    Rows are taken one by one (y[oc + j, oh]), not as a (4, L) slice: a slice is strided for
    Numba, and its loop would not vectorise (6x slower)."""
    o0, o1, o2, o3 = y[oc, oh], y[oc + 1, oh], y[oc + 2, oh], y[oc + 3, oh]
    a0, a1, a2, a3 = taps[0, kw], taps[1, kw], taps[2, kw], taps[3, kw]
    b0, b1, b2, b3 = taps[0, kw + 1], taps[1, kw + 1], taps[2, kw + 1], taps[3, kw + 1]
    c0, c1, c2, c3 = taps[0, kw + 2], taps[1, kw + 2], taps[2, kw + 2], taps[3, kw + 2]
    for q in range(o0.size):
        u, v, s = xa[q], xb[q], xc[q]
        o0[q] += a0 * u + b0 * v + c0 * s
        o1[q] += a1 * u + b1 * v + c1 * s
        o2[q] += a2 * u + b2 * v + c2 * s
        o3[q] += a3 * u + b3 * v + c3 * s


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _axpy5(y, oc, oh, xa, xb, xc, xd, xe, taps):
    """y[oc + j, oh] += sum_k taps[j, k] * (xa, xb, xc, xd, xe)[k], j < 4: a 5-tap row, each
    output value loaded and stored once (with 3 + 1 + 1 taps, 3 times: 6.0-7.0 vs 11.1-11.8
    ms for LeNet-5's 32 -> 64 conv, one thread, CPU time)."""
    o0, o1, o2, o3 = y[oc, oh], y[oc + 1, oh], y[oc + 2, oh], y[oc + 3, oh]
    a0, a1, a2, a3 = taps[0, 0], taps[1, 0], taps[2, 0], taps[3, 0]
    b0, b1, b2, b3 = taps[0, 1], taps[1, 1], taps[2, 1], taps[3, 1]
    c0, c1, c2, c3 = taps[0, 2], taps[1, 2], taps[2, 2], taps[3, 2]
    d0, d1, d2, d3 = taps[0, 3], taps[1, 3], taps[2, 3], taps[3, 3]
    e0, e1, e2, e3 = taps[0, 4], taps[1, 4], taps[2, 4], taps[3, 4]
    for q in range(o0.size):
        u, v, s, t, r = xa[q], xb[q], xc[q], xd[q], xe[q]
        o0[q] += a0 * u + b0 * v + c0 * s + d0 * t + e0 * r
        o1[q] += a1 * u + b1 * v + c1 * s + d1 * t + e1 * r
        o2[q] += a2 * u + b2 * v + c2 * s + d2 * t + e2 * r
        o3[q] += a3 * u + b3 * v + c3 * s + d3 * t + e3 * r


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _axpy1(y, oc, oh, xa, taps, kw):
    """y[oc + j, oh] += taps[j, kw] * xa, j < 4: the taps left over after the triples."""
    o0, o1, o2, o3 = y[oc, oh], y[oc + 1, oh], y[oc + 2, oh], y[oc + 3, oh]
    a0, a1, a2, a3 = taps[0, kw], taps[1, kw], taps[2, kw], taps[3, kw]
    for q in range(o0.size):
        u = xa[q]
        o0[q] += a0 * u
        o1[q] += a1 * u
        o2[q] += a2 * u
        o3[q] += a3 * u


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
def _direct_weight_grad(oc_lo, oc_hi, xp, gy, gw, gb, N):
    """Padded xp (C, HP, WP*N), gy (OCB, OH, OW*N) -> gw (OCB, C, KH, KW), gb (OCB,) for the
    output channels [oc_lo, oc_hi): per output row, the dot products of four gradient rows with
    the input rows of three taps at a time (reassociated so that they vectorise), added into
    float64 totals."""
    C = xp.shape[0]
    KH, KW = gw.shape[2], gw.shape[3]
    OH, L = gy.shape[1], gy.shape[2]
    total = np.zeros((DIRECT_BLOCK, C, KH, KW))  # float64
    bias_total = np.zeros(DIRECT_BLOCK)
    for oc in range(oc_lo, oc_hi, DIRECT_BLOCK):
        total[...] = 0
        bias_total[:] = 0
        for oh in range(OH):
            _row_sums(gy, oc, oh, bias_total)
            for c in range(C):
                for kh in range(KH):
                    row, acc = xp[c, oh + kh], total[:, c, kh]  # (WP*N,), (4, KW)
                    for kw in range(0, KW - KW % 3, 3):
                        _dots3(gy, oc, oh, row[kw * N:kw * N + L],
                               row[(kw + 1) * N:(kw + 1) * N + L],
                               row[(kw + 2) * N:(kw + 2) * N + L], acc, kw)
                    for kw in range(KW - KW % 3, KW):
                        _dots1(gy, oc, oh, row[kw * N:kw * N + L], acc, kw)
        for j in range(DIRECT_BLOCK):
            gb[oc + j] = bias_total[j]
            for c in range(C):
                for kh in range(KH):
                    for kw in range(KW):
                        gw[oc + j, c, kh, kw] = total[j, c, kh, kw]


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, inline="always")
def _dots3(gy, oc, oh, xa, xb, xc, acc, kw):
    """acc[j, kw + k] += <gy[oc + j, oh], (xa, xb, xc)[k]>, j < 4, k < 3: twelve dot
    products."""
    g0, g1, g2, g3 = gy[oc, oh], gy[oc + 1, oh], gy[oc + 2, oh], gy[oc + 3, oh]
    zero = gy.dtype.type(0)
    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = a30 = a31 = a32 = zero
    for q in range(g0.size):
        u, v, s = xa[q], xb[q], xc[q]
        e0, e1, e2, e3 = g0[q], g1[q], g2[q], g3[q]
        a00 += e0 * u
        a01 += e0 * v
        a02 += e0 * s
        a10 += e1 * u
        a11 += e1 * v
        a12 += e1 * s
        a20 += e2 * u
        a21 += e2 * v
        a22 += e2 * s
        a30 += e3 * u
        a31 += e3 * v
        a32 += e3 * s
    acc[0, kw] += a00
    acc[0, kw + 1] += a01
    acc[0, kw + 2] += a02
    acc[1, kw] += a10
    acc[1, kw + 1] += a11
    acc[1, kw + 2] += a12
    acc[2, kw] += a20
    acc[2, kw + 1] += a21
    acc[2, kw + 2] += a22
    acc[3, kw] += a30
    acc[3, kw + 1] += a31
    acc[3, kw + 2] += a32


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, inline="always")
def _dots1(gy, oc, oh, xa, acc, kw):
    """acc[j, kw] += <gy[oc + j, oh], xa>, j < 4: the taps left over after the triples."""
    g0, g1, g2, g3 = gy[oc, oh], gy[oc + 1, oh], gy[oc + 2, oh], gy[oc + 3, oh]
    a0 = a1 = a2 = a3 = gy.dtype.type(0)
    for q in range(g0.size):
        u = xa[q]
        a0 += g0[q] * u
        a1 += g1[q] * u
        a2 += g2[q] * u
        a3 += g3[q] * u
    acc[0, kw] += a0
    acc[1, kw] += a1
    acc[2, kw] += a2
    acc[3, kw] += a3


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, inline="always")
def _row_sums(gy, oc, oh, totals):
    """totals[j] += sum(gy[oc + j, oh]), j < 4: the bias gradient, while the rows are in
    cache."""
    g0, g1, g2, g3 = gy[oc, oh], gy[oc + 1, oh], gy[oc + 2, oh], gy[oc + 3, oh]
    s0 = s1 = s2 = s3 = gy.dtype.type(0)
    for q in range(g0.size):
        s0 += g0[q]
        s1 += g1[q]
        s2 += g2[q]
        s3 += g3[q]
    totals[0] += s0
    totals[1] += s1
    totals[2] += s2
    totals[3] += s3


# ------------------------------------------------------------------ Winograd F(2x2, 3x3)
# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016): a 3x3 stride-1
# convolution computed on 4x4 input tiles d (stride 2), each giving a 2x2 output tile, as
# Y = A^T [(G g G^T) * (B^T d B)] A. Summed over input channels, the elementwise product is 16
# GEMMs (OC, C) @ (C, tiles*N): 16 multiplies per 4 outputs instead of 36, 2.25x fewer.
# Measured at one thread (load ~4): ResNet's 64->64 16x16 conv 4.4 ms vs 6.2 ms with im2col,
# VGG's 64->128 16x16 7.4 vs 10.9 ms; slower where the weights outweigh the activations
# (512->512 at 2x2: transforming 2.4M weights costs more than it saves), see ops_cnn.
WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def winograd_filter(w: np.ndarray) -> np.ndarray:
    """Weights (OC, C, 3, 3) of any strides -> U = G w G^T as (16, OC, C): one GEMM operand per
    tile position, split over the output channels. (With numpy's matmuls and transposes this
    took 0.36 ms per ResNet-18 conv, 5 ms of a step, all in one thread.)"""
    OC, C = w.shape[:2]
    U = np.empty((16, OC, C), w.dtype)
    parts = chunks(OC, tasks_for(w.size, _FILTER_GRAIN))
    parallel_for(lambda i, worker: _winograd_filter(w, U, *parts[i]), len(parts))
    return U


@njit(cache=True, nogil=True)
def _winograd_filter(w, U, oc0, oc1):
    """w (OC, C, 3, 3) -> U (16, OC, C) for oc0 <= oc < oc1, U[4i + j, oc, c] = (G w[oc, c]
    G^T)[i, j], with G's rows (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1) written
    out (WINOGRAD_G). One output channel at a time: its 9 taps copied to rows of C, then a
    loop over c that vectorises into 16 rows of C, then copied out (one thread, 256 x 256:
    2.27 ms writing a value at a time, 0.86 by array assignments, 0.49 now; 128 x 128: 0.51,
    0.27, 0.12)."""
    C = w.shape[1]
    taps = np.empty((9, C), w.dtype)
    rows = np.empty((16, C), w.dtype)
    half = np.full(1, 0.5, w.dtype)[0]  # in w's dtype: a float64 0.5 halves the vector width
    for oc in range(oc0, oc1):
        for c in range(C):
            for k in range(9):
                taps[k, c] = w[oc, c, k // 3, k % 3]
        for c in range(C):  # t = G g, by rows of the kernel (taps 3i .. 3i + 2), then U = t G^T
            g0, g1, g2, g3, g4 = taps[0, c], taps[1, c], taps[2, c], taps[3, c], taps[4, c]
            g5, g6, g7, g8 = taps[5, c], taps[6, c], taps[7, c], taps[8, c]
            s0, s1, s2 = (g0 + g6) * half, (g1 + g7) * half, (g2 + g8) * half
            h0, h1, h2 = g3 * half, g4 * half, g5 * half
            _winograd_row(rows, 0, c, g0, g1, g2, half)
            _winograd_row(rows, 4, c, s0 + h0, s1 + h1, s2 + h2, half)
            _winograd_row(rows, 8, c, s0 - h0, s1 - h1, s2 - h2, half)
            _winograd_row(rows, 12, c, g6, g7, g8, half)
        for k in range(16):  # a loop: an array assignment U[k, oc] = rows[k] cost 0.13 us each
            for c in range(C):
                U[k, oc, c] = rows[k, c]


@njit(cache=True, nogil=True, inline="always")
def _winograd_row(rows, k, c, a, b, d, half):
    """rows[k .. k + 3, c] = G @ (a, b, d), G = WINOGRAD_G."""
    rows[k, c], rows[k + 1, c] = a, (a + b + d) * half
    rows[k + 2, c], rows[k + 3, c] = (a - b + d) * half, d


def winograd_conv2d(x, w, bias, P: int, band_bytes: int = 1 << 20, scratch=None) -> np.ndarray:
    """3x3, stride-1 convolution of (N, C, H, W) x with (OC, C, 3, 3) w (+ bias), zero padding
    P on every side, by Winograd F(2x2, 3x3) -> batch-minor (N, OC, H + 2P - 2, W + 2P - 2).

    Streams bands of tile rows, each a parallel task: transform its input tiles into V, 16
    GEMMs M[k] = U[k] @ V[k], transform M into its output rows; V and M of a band take about
    `band_bytes`, from `scratch(shape, dtype)` (default np.empty; ops_cnn passes its per-thread
    workspace), so no array 4x the size of x or y is ever made.
    """
    N, C, H, W = x.shape
    OC = w.shape[0]
    OH, OW = H + 2 * P - 2, W + 2 * P - 2
    TH, TW = (OH + 1) // 2, (OW + 1) // 2  # 2x2 output tiles; odd sizes: the last sticks out
    xb = to_batch_minor(x)  # (C, H, W, N), a view when x is batch-minor; read with its padding
    U = winograd_filter(w.astype(x.dtype, copy=False))
    b = np.zeros(OC, x.dtype) if bias is None else bias.astype(x.dtype, copy=False)
    y = batch_minor((N, OC, 2 * TH, 2 * TW), x.dtype)
    yb = y.transpose(1, 2, 3, 0)  # (OC, 2TH, 2TW, N)
    row_bytes = 16 * (C + OC) * TW * N * x.dtype.itemsize  # V and M of one tile row
    tasks = tasks_for(16 * C * OC * TH * TW * N, _TASK_MACS)  # the GEMMs' multiply-adds
    step = max(1, min(band_bytes // row_bytes, -(-TH // tasks)))
    bands = [(th0, min(TH, th0 + step)) for th0 in range(0, TH, step)]
    scratch = scratch or np.empty

    def band(i: int, worker: int) -> None:
        th0, th1 = bands[i]
        cols = (th1 - th0) * TW * N
        buf = scratch((16 * (C + OC) * cols,), x.dtype)
        V = buf[:16 * C * cols].reshape(16, C, cols)  # B^T d B, column (th*TW + tw)*N + n
        M = buf[16 * C * cols:].reshape(16, OC, cols)
        _winograd_input(xb, V, th0, P, TW)
        gemm.batched_matmul(U, V, out=M)  # M[k] = U[k] @ V[k]: (OC, C) @ (C, cols)
        _winograd_output(M, b, yb, th0)

    parallel_for(band, len(bands))
    if (2 * TH, 2 * TW) == (OH, OW):
        return y
    out = batch_minor((N, OC, OH, OW), x.dtype)  # odd sizes: drop the row / column outside
    out[...] = y[:, :, :OH, :OW]
    return out


@njit(cache=True, nogil=True)
def _winograd_input(x, V, th0, P, TW):
    """x (C, H, W, N), C-contiguous -> V (16, C, R*TW*N) for the tile rows th0 .. th0+R-1 of x
    padded by P (and by the rows and columns the last tiles stick out): the column transform
    t = B^T d on whole input rows (long loops), then the row transform t B writing runs of N;
    every inner loop runs over n, contiguous, so it vectorises. The padding is never copied:
    rows outside x read a row of zeros, and T's columns outside x stay zero. The padded copy
    it replaces was made before the parallel bands, in one thread: 0.4-0.6 of ResNet-18's
    4.3 ms 64-channel 16x16 conv at two threads; alternating, two threads, ResNet-18's step
    215 -> 204 ms, the VGG block's 76.0 -> 66.9 (medians)."""
    C, H, W, N = x.shape
    WP = 2 * TW + 2
    R = V.shape[2] // (TW * N)
    T = np.zeros((4, WP * N), x.dtype)  # only columns P .. P+W-1 are ever written
    t0, t1, t2, t3 = T[0, P * N:], T[1, P * N:], T[2, P * N:], T[3, P * N:]
    zero = np.zeros(W * N, x.dtype)
    for c in range(C):
        for r in range(R):
            h = 2 * (th0 + r) - P
            r0 = x[c, h].reshape(W * N) if 0 <= h < H else zero
            r1 = x[c, h + 1].reshape(W * N) if 0 <= h + 1 < H else zero
            r2 = x[c, h + 2].reshape(W * N) if 0 <= h + 2 < H else zero
            r3 = x[c, h + 3].reshape(W * N) if 0 <= h + 3 < H else zero
            for q in range(W * N):
                t0[q] = r0[q] - r2[q]
                t1[q] = r1[q] + r2[q]
                t2[q] = r2[q] - r1[q]
                t3[q] = r1[q] - r3[q]
            for i in range(4):
                v0, v1, v2, v3 = V[4 * i, c], V[4 * i + 1, c], V[4 * i + 2, c], V[4 * i + 3, c]
                t = T[i]
                for tw in range(TW):
                    s, o = 2 * tw * N, (r * TW + tw) * N
                    for n in range(N):
                        a, b, cc, d = t[s + n], t[s + N + n], t[s + 2 * N + n], t[s + 3 * N + n]
                        v0[o + n] = a - cc
                        v1[o + n] = b + cc
                        v2[o + n] = cc - b
                        v3[o + n] = b - d


@njit(cache=True, nogil=True)
def _winograd_output(M, bias, y, th0):
    """M (16, OC, R*TW*N) of the tile rows th0 .. th0+R-1 -> their output rows of
    y (OC, 2TH, 2TW, N): s = A^T m, then y = s A + bias, in registers, vectorised over n (M
    indexed whole: through a view M[:, oc], of unknown strides, it did not vectorise: 3x slower)."""
    OC, W2, N = y.shape[0], y.shape[2], y.shape[3]
    TW = W2 // 2
    R = M.shape[2] // (TW * N)
    for oc in range(OC):
        b = bias[oc]
        for r in range(R):
            th = th0 + r
            y0, y1 = y[oc, 2 * th].reshape(W2 * N), y[oc, 2 * th + 1].reshape(W2 * N)
            for tw in range(TW):
                o, s = (r * TW + tw) * N, 2 * tw * N
                for n in range(N):
                    q = o + n
                    s00 = M[0, oc, q] + M[4, oc, q] + M[8, oc, q]
                    s01 = M[1, oc, q] + M[5, oc, q] + M[9, oc, q]
                    s02 = M[2, oc, q] + M[6, oc, q] + M[10, oc, q]
                    s03 = M[3, oc, q] + M[7, oc, q] + M[11, oc, q]
                    s10 = M[4, oc, q] - M[8, oc, q] - M[12, oc, q]
                    s11 = M[5, oc, q] - M[9, oc, q] - M[13, oc, q]
                    s12 = M[6, oc, q] - M[10, oc, q] - M[14, oc, q]
                    s13 = M[7, oc, q] - M[11, oc, q] - M[15, oc, q]
                    y0[s + n] = s00 + s01 + s02 + b
                    y0[s + N + n] = s01 - s02 - s03 + b
                    y1[s + n] = s10 + s11 + s12 + b
                    y1[s + N + n] = s11 - s12 - s13 + b
