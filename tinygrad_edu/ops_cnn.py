"""Convolution and pooling: autograd Functions over the Numba kernels, and the checked functional
wrappers (`conv2d`, `max_pool2d`, `avg_pool2d`) that `tinygrad_edu.nn.functional` re-exports.

Shapes: N batch, C input channels, OC output channels, K kernel, O output, L = OH*OW.
"""
from __future__ import annotations

import ctypes
import math
import threading
from typing import NamedTuple

import numpy as np

from . import gemm, kernels, parallel
from .autograd import Function, is_grad_enabled
from .ops import GraphRule
from .tensor import Tensor, check_float_input


def _pair(value, name: str, op: str) -> tuple[int, int]:
    """An int or a pair of ints -> (h, w)."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


# ------------------------------------------------------------------ output sizes
def _conv_padding(padding, kernel: tuple, dilation: tuple) -> tuple[int, int, int, int]:
    """int, pair, 'valid' or 'same' -> (top, bottom, left, right). 'same' puts an odd total pad's
    extra row/column at the bottom/right, as PyTorch does."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(padding, "padding", "conv2d")
    return ph, ph, pw, pw


def _conv_out(size: int, pad_total: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _pool_out(size: int, kernel: int, stride: int, padding: int, dilation: int,
              ceil_mode: bool) -> int:
    """Windows along one axis. ceil_mode keeps a partial last window only if it starts inside the
    input or the left padding (PyTorch's rule)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


# ------------------------------------------------------------------ memory
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed arrays in the process instead of returning them to the OS.

    A training step frees and re-allocates the same activations every iteration. By default
    glibc unmaps or trims that memory as soon as it is freed, so every step page-faults it back
    in: measured 1700 page faults and 3-4 ms of system time per CNN3 step (batch 32) out of
    ~15 ms, where PyTorch has none. Arrays up to 32 MB now come from the heap and stay there.
    Called once at import; returns False where there is no glibc (macOS, Windows).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, TypeError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20) and mallopt(m_trim_threshold, 1 << 30))


keep_freed_memory()
_scratch = threading.local()
_BAND_BYTES = 1 << 20  # im2col columns per GEMM: half of a 2 MB L2, so they stay in cache
_KEEP_BYTES = 4 << 20  # a conv whose whole im2col is at most this keeps it for backward
_DIRECT_MAX_CHANNELS = 4  # more input channels: im2col + GEMM is faster (kernels.py)
_DIRECT_MAX_CHANNELS_WIDE = 64  # the same for kernels 3, 5, 6, 9 ... wide (no one-tap passes)
_DIRECT_MIN_ROW = 192  # shorter output rows (OW*N): the GEMM's weight gradient is as fast
_WINOGRAD_MIN_CHANNELS = 64  # fewer channels: GEMMs too thin (CNN3 b128 +14% CPU)
_WINOGRAD_MIN_RATIO = 0.2  # Winograd only when the input has a fifth of the weights' values
_TASK_MACS = 1 << 22  # a parallel task of a conv: at least ~4M multiply-adds (~50 us)
_SUM_VALUES = 1 << 17  # a parallel task of _sum_in_order: at least 128K values per part


def _workspace(shape: tuple, dtype) -> np.ndarray:
    """A scratch array reused by every conv call in this thread (im2col's columns): one small
    allocation for the whole run instead of a fresh one per layer and step. Only valid until
    the next call: nothing that is returned or saved may point into it."""
    size = math.prod(shape)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buf = buffers.get(np.dtype(dtype))
    if buf is None or buf.size < size:
        buf = buffers[np.dtype(dtype)] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


# ------------------------------------------------------------------ Functions
class ConvGeometry(NamedTuple):
    """Sizes of one convolution (notation of kernels.py)."""
    N: int
    C: int
    H: int
    W: int
    KH: int
    KW: int
    SH: int
    SW: int
    PT: int
    PL: int
    DH: int
    DW: int
    OH: int
    OW: int

    @property
    def window(self) -> tuple:
        """The arguments im2col and col2im take after the array: KH ... OW."""
        return self[4:]


class Conv2d(Function):
    """y = conv(x, w) + b as im2col + one GEMM per group (one GEMM when groups=1).

    Conv2d.apply(x, w, b, stride=1, padding=0, dilation=1, groups=1), or without b.

    Layout (see kernels.py): x is read as (C, H, W, N), and weight (OC, C*KH*KW) @ col yields
    (OC, OH, OW, N), returned as its (N, OC, OH, OW) view, so no transpose is ever copied.
    The columns are built band by band (a few output rows at a time) in a cache-sized
    workspace and consumed by the GEMM while still in cache; backward rebuilds them from the
    saved x rather than keeping them, so a conv layer saves only its input, as in PyTorch;
    except a small conv (<= 4 MB of columns), which keeps them: cheaper than building twice.
    A 3x3 stride-1 conv with enough channels (`_winograd_fits`) computes its output and input
    gradient by Winograd F(2x2, 3x3) instead (kernels.winograd_conv2d), its weight gradient
    as above. A stride-1 conv with few input channels (`_direct_fits`, e.g. on an image)
    computes its output directly, without columns (kernels.direct_conv2d), and so its input
    gradient when that conv fits too; most stride-1 convs compute their weight gradient
    directly (`_direct_weight_grad_fits`), and a stride-2 conv with few input channels computes
    its weight gradient (and, on our GEMM, its output) as that of the stride-1 direct conv of
    its input's four phases (`_stride2_fits`, kernels.stride2_phases: ResNet-18's first
    conv). Stride-1 direct convs run on our GEMM where it is enabled (float32 on AVX-512:
    kernels.direct_on_gemm, gemm.offset_matmul and offset_dots), else on Numba loops. Bands,
    channel groups and GEMMs are tasks for the worker threads (parallel.py).
    Double backward (backward_graph) computes the gradients as ops, ConvInputGrad and
    ConvWeightGrad, with these same helpers on the im2col paths.
    """

    def forward(self, x, w_in, b=None, *, stride=1, padding=0, dilation=1, groups=1):
        w = w_in.astype(x.dtype, copy=False)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = w.shape
        SH, SW = _pair(stride, "stride", "conv2d")
        DH, DW = _pair(dilation, "dilation", "conv2d")
        PT, PB, PL, PR = _conv_padding(padding, (KH, KW), (DH, DW))
        OH, OW = _conv_out(H, PT + PB, KH, SH, DH), _conv_out(W, PL + PR, KW, SW, DW)
        self.geo = ConvGeometry(N, C, H, W, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)
        self.pointwise = (KH, KW, SH, SW, PT + PB + PL + PR) == (1, 1, 1, 1, 0)
        self.pads = (PT, PB, PL, PR)
        self.winograd = _winograd_fits(x.shape, w.shape, (SH, SW, DH, DW), self.pads, groups)
        self.direct = _direct_fits(w.shape, (SH, SW, DH, DW), self.pads, groups)
        self.direct_input_grad = _direct_fits((C, OC, KH, KW), (SH, SW, DH, DW),
                                              _full_pads(self.pads, KH, KW), groups)
        self.direct_weight_grad = _direct_weight_grad_fits(w.shape, (SH, SW, DH, DW), self.pads,
                                                           groups, OW * N)
        self.stride2 = _stride2_fits(w.shape, (SH, SW, DH, DW), groups)
        self.weight_size = w.size
        self.has_bias = b is not None
        self.opts = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        col_bytes = C * KH * KW * OH * OW * N * x.dtype.itemsize
        self.keep = (not (self.pointwise or self.winograd or self.direct
                          or self.direct_weight_grad or self.stride2)
                     and col_bytes <= _KEEP_BYTES and is_grad_enabled())
        self.macs = OC * Cg * KH * KW * OH * OW * N  # multiply-adds of the forward GEMM
        # the whole im2col, when kept for backward (filled band by band below)
        self.col = np.empty((C * KH * KW, OH * OW * N), x.dtype) if self.keep else None

        xb = kernels.to_batch_minor(x)  # (C, H, W, N): a view if x came from a conv or pool
        wg = w.reshape(groups, OC // groups, Cg * KH * KW)  # (G, OC/G, C/G*KH*KW)
        self.wg_shape = wg.shape
        self.save_for_backward(xb, wg, x, w_in)  # x and w themselves for double backward
        if self.winograd:
            return kernels.winograd_conv2d(x, w, b, PT, _BAND_BYTES, _workspace)
        if self.direct:
            return kernels.direct_conv2d(xb.transpose(3, 0, 1, 2), w, b, self.pads)
        if self.stride2 and kernels.direct_on_gemm(x.dtype, 4 * C, -(-KH // 2), -(-KW // 2)):
            return kernels.direct_conv2d(self._phases(xb), kernels.stride2_weights(w), b,
                                         (0, 0, 0, 0))
        y = np.empty((OC, OH * OW * N), x.dtype)  # (OC, OH, OW, N)
        bias = None if b is None else b.astype(x.dtype, copy=False)[:, None]
        bands = list(self._bands(x.dtype))

        def band(i: int, worker: int) -> None:  # one band: its im2col, GEMMs and bias
            cols, rows = bands[i]
            col = self._columns(xb, rows, build=True)  # (C*KH*KW, R*OW*N)
            for g, in_rows, out_rows in _group_slices(wg.shape):
                gemm.matmul(wg[g], col[in_rows], out=y[out_rows, cols])  # (OC/G, R*OW*N)
            if bias is not None:
                y[:, cols] += bias  # while the band is in cache

        parallel.parallel_for(band, len(bands))  # bands write disjoint columns of y
        return y.reshape(OC, OH, OW, N).transpose(3, 0, 1, 2)  # (N, OC, OH, OW) view

    def _bands(self, dtype):
        """(columns of the output, output rows) of each band of rows that fits _BAND_BYTES, or
        the weights' size when larger: the GEMM streams those anyway, and splitting its columns
        further would only make it re-read them (ResNet's last layers)."""
        g = self.geo
        itemsize = np.dtype(dtype).itemsize
        row_bytes = g.C * g.KH * g.KW * g.OW * g.N * itemsize
        budget = max(_BAND_BYTES, self.weight_size * itemsize)
        step = g.OH if self.pointwise or self.keep else max(1, budget // row_bytes)
        step = min(step, -(-g.OH // parallel.tasks_for(self.macs, _TASK_MACS)))  # ceil
        for oh0 in range(0, g.OH, step):
            oh1 = min(g.OH, oh0 + step)
            yield slice(oh0 * g.OW * g.N, oh1 * g.OW * g.N), (oh0, oh1)

    def _columns(self, xb, rows, build: bool = False) -> np.ndarray:
        """im2col of one band into this thread's workspace; a 1x1, stride-1 conv reads x
        itself. A small conv (<= 4 MB of columns, e.g. CNN3's at batch 32) keeps its columns
        for the weight gradient (cheaper than rebuilding them in backward): forward `build`s
        each band into self.col, backward reads it."""
        g = self.geo
        cols = slice(rows[0] * g.OW * g.N, rows[1] * g.OW * g.N)
        if self.pointwise:
            return xb.reshape(g.C, g.H * g.W * g.N)[:, cols]
        if self.col is not None:
            if build:
                kernels.im2col(xb.transpose(3, 0, 1, 2), *g.window, rows=rows,
                               out=self.col[:, cols])
            return self.col[:, cols]
        col = _workspace((g.C * g.KH * g.KW, cols.stop - cols.start), xb.dtype)
        return kernels.im2col(xb.transpose(3, 0, 1, 2), *g.window, rows=rows, out=col)

    def backward(self, grad):
        xb, wg = self.saved[:2]
        gy = _output_rows(grad, xb.dtype)  # (OC, OH*OW*N)
        need_b = self.has_bias and self.needs_input_grad[2]
        gx, gw, gb = self._grads(gy, xb, wg, *self.needs_input_grad[:2], need_b)
        return (gx, gw, gb) if self.has_bias else (gx, gw)

    def backward_graph(self, grad):
        """The gradients as ops that are convolutions themselves (ConvInputGrad, ConvWeightGrad),
        so they can be differentiated again."""
        x, w = self.saved_tensors()[2:]
        self.col = None  # columns kept by forward: ConvWeightGrad builds its own
        gx = ConvInputGrad.apply(grad, w, conv=self) if self.needs_input_grad[0] else None
        gw = ConvWeightGrad.apply(x, grad, conv=self) if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, grad.sum((0, 2, 3)) if self.needs_input_grad[2] else None

    def _grads(self, gy, xb, wg, need_x: bool, need_w: bool, need_b: bool = False) -> tuple:
        """(gx, gw, gb) from gy (OC, OH*OW*N): gw = gy @ col^T (col built from xb) or directly
        (whose kernel sums gb on the way), gx = col2im(w^T @ gy) or by Winograd or directly.
        xb is read only for gw and wg only for gx; each result is None when not needed."""
        bands = list(self._bands(gy.dtype))
        gw = gb = gx = None
        if need_w and self.direct_weight_grad:
            gw, gb = self._direct_weight_grad(xb, gy)
        elif need_w and self.stride2:
            gw, gb = self._stride2_weight_grad(xb, gy)
        elif need_w:
            gw = self._weight_grad(xb, gy, bands)
        if need_x and self.winograd:
            gx = self._winograd_input_grad(wg, gy)
        elif need_x and self.direct_input_grad:
            gx = self._direct_input_grad(wg, gy)
        elif need_x:
            gx = self._input_grad(wg, gy, bands)
        self.col = None  # the kept columns have served
        if need_b and gb is None:
            gb = gy.sum(axis=1)
        return gx, gw, gb if need_b else None

    def _direct_weight_grad(self, xb, gy) -> tuple:
        """(gw, gb) by kernels.direct_conv2d_weight_grad: no columns."""
        g = self.geo
        gy4 = gy.reshape(-1, g.OH, g.OW, g.N).transpose(3, 0, 1, 2)  # (N, OC, OH, OW) view
        return kernels.direct_conv2d_weight_grad(xb.transpose(3, 0, 1, 2), gy4, g.KH, g.KW,
                                                 self.pads)

    def _phases(self, xb) -> np.ndarray:
        """The four phases of a stride-2 conv's input as channels (kernels.stride2_phases)."""
        g = self.geo
        return kernels.stride2_phases(xb.transpose(3, 0, 1, 2), self.pads, g.OH, g.OW, g.KH,
                                      g.KW)

    def _stride2_weight_grad(self, xb, gy) -> tuple:
        """(gw, gb) of a stride-2 conv: the direct weight gradient over its input's phases."""
        g = self.geo
        gy4 = gy.reshape(-1, g.OH, g.OW, g.N).transpose(3, 0, 1, 2)  # (N, OC, OH, OW) view
        KH2, KW2 = -(-g.KH // 2), -(-g.KW // 2)
        g2, gb = kernels.direct_conv2d_weight_grad(self._phases(xb), gy4, KH2, KW2, (0, 0, 0, 0))
        return kernels.stride2_weights_grad(g2, g.KH, g.KW), gb

    def _direct_input_grad(self, wg, gy) -> np.ndarray:
        """gx, directly: the full correlation of gy with the flipped weights, channels swapped,
        i.e. a stride-1 conv with padding K - 1 - P (`_full_pads`)."""
        g = self.geo
        gy4 = gy.reshape(-1, g.OH, g.OW, g.N).transpose(3, 0, 1, 2)  # (N, OC, OH, OW) view
        w = wg.reshape(-1, g.C, g.KH, g.KW)  # (OC, C, KH, KW)
        return kernels.direct_conv2d(gy4, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), None,
                                     _full_pads(self.pads, g.KH, g.KW))

    def _weight_grad(self, xb, gy, bands) -> np.ndarray:
        """gw (OC, C/G, KH, KW) = gy @ col^T. Columns kept by forward make one product, which
        matmul splits over gw's columns (ResNet-18's 512-channel 3x3 conv, two threads: 4.89
        -> 4.00 ms, against two bands each summing a whole gw). Else the product is summed
        over the bands: cut into one contiguous run per worker, each summed in order into its
        own array, and the runs are added in order. Either way every sum runs in the same
        order whichever thread takes which part, so the result is bit-identical from run to
        run (a resumed training equals an unbroken one)."""
        g = self.geo
        G, OCg, CKg = self.wg_shape
        gw = np.empty((G * OCg, CKg // (g.KH * g.KW), g.KH, g.KW), gy.dtype)
        if self.col is not None:  # all the columns, kept by forward: one product, split by
            for k, in_rows, out_rows in _group_slices(self.wg_shape):  # matmul over gw itself
                gemm.matmul(gy[out_rows], self.col[in_rows].T, out=gw.reshape(self.wg_shape)[k])
            return gw
        runs = parallel.chunks(len(bands), parallel.worker_count())
        # the first run sums into gw itself: an array that owns its memory becomes the
        # weight's .grad as is, where a view of one would be copied (ResNet-18: 19 of its 62
        # gradients, 2.4 ms per step)
        sums = [gw.reshape(self.wg_shape)] + [np.empty(self.wg_shape, gy.dtype) for _ in runs[1:]]

        def run(r: int, worker: int) -> None:
            for i in range(*runs[r]):
                cols, rows = bands[i]
                col = self._columns(xb, rows)
                for k, in_rows, out_rows in _group_slices(self.wg_shape):  # (OC/G, C/G*KH*KW)
                    gemm.matmul(gy[out_rows, cols], col[in_rows].T, out=sums[r][k],
                                accumulate=i != runs[r][0])

        parallel.parallel_for(run, len(runs))
        _sum_in_order(sums)
        return gw

    def _input_grad(self, wg, gy, bands) -> np.ndarray:
        """gx, batch-minor: per band gcol = w^T @ gy, then col2im. Split over input channels
        (col2im writes whole channels of gx, so the tasks never race), each task doing every
        band of its channels."""
        g = self.geo
        gx = kernels.batch_minor((g.N, g.C, g.H, g.W), gy.dtype)
        G = wg.shape[0]
        Cg, KK = g.C // G, g.KH * g.KW
        per_group = max(1, parallel.tasks_for(self.macs, _TASK_MACS) // G)
        tasks = [(k, c0, c1) for k in range(G) for c0, c1 in parallel.chunks(Cg, per_group)]

        def channels(i: int, worker: int) -> None:
            k, c0, c1 = tasks[i]
            w_t = _shared_operand(wg[k][:, c0 * KK:c1 * KK].T,  # (c*KH*KW, OC/G)
                                  1 if self.pointwise else len(bands))
            gy_k = gy[k * wg.shape[1]:(k + 1) * wg.shape[1]]
            gx_c = gx[:, k * Cg + c0:k * Cg + c1]  # (N, c, H, W) view
            if self.pointwise:  # col is x itself, so gcol is gx
                gemm.matmul(w_t, gy_k, out=gx_c.transpose(1, 2, 3, 0).reshape(c1 - c0, -1))
                return
            gx_c[...] = 0
            for cols, rows in bands:
                gcol = _workspace((w_t.shape[0], cols.stop - cols.start), gx.dtype)
                gemm.matmul(w_t, gy_k[:, cols], out=gcol)  # (c*KH*KW, R*OW*N)
                kernels.col2im(gcol, g.N, c1 - c0, g.H, g.W, *g.window, rows=rows, out=gx_c)

        parallel.parallel_for(channels, len(tasks))
        return gx

    def _winograd_input_grad(self, wg, gy) -> np.ndarray:
        """gx of a Winograd conv: the full correlation of gy with the flipped weights, channels
        swapped, i.e. a 3x3 stride-1 conv with padding 2 - P, by Winograd again."""
        g = self.geo
        w = wg.reshape(-1, g.C, 3, 3)  # (OC, C, 3, 3)
        gy4 = gy.reshape(-1, g.OH, g.OW, g.N).transpose(3, 0, 1, 2)  # (N, OC, OH, OW) view
        return kernels.winograd_conv2d(gy4, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), None,
                                       2 - g.PT, _BAND_BYTES, _workspace)

    def _take_geometry(self, conv: Conv2d) -> None:
        """Use the sizes of `conv`: what ConvInputGrad and ConvWeightGrad compute is one of its
        gradients. They take the im2col paths, which fit every geometry, even where conv took
        Winograd's."""
        self.geo, self.pointwise, self.opts = conv.geo, conv.pointwise, conv.opts
        self.weight_size, self.wg_shape, self.macs = conv.weight_size, conv.wg_shape, conv.macs
        self.winograd, self.direct, self.keep, self.col = False, False, False, None
        self.direct_input_grad = self.direct_weight_grad = self.has_bias = False
        self.stride2 = False


def _sum_in_order(parts: list) -> np.ndarray:
    """parts[0] += parts[1] + ... in that order, split over the threads in runs of values (the
    same sums whichever thread takes a run). One thread added ResNet-18's 512-channel weight
    gradients, 2.4M values each, while the other waited."""
    total = parts[0]
    if len(parts) == 1:
        return total
    flats = [p.reshape(-1) for p in parts]
    runs = parallel.chunks(total.size, parallel.tasks_for(total.size, _SUM_VALUES))

    def run(i: int, worker: int) -> None:
        lo, hi = runs[i]
        for part in flats[1:]:
            flats[0][lo:hi] += part[lo:hi]

    parallel.parallel_for(run, len(runs))
    return total


def _shared_operand(a: np.ndarray, uses: int):
    """a packed once for gemm.matmul when `uses` products share it (a conv's bands), else a
    itself: packing writes a whole copy of a, which a single product, packing block by block
    in cache, does not (ResNet-18's 512-channel input gradient, one band: 1.97 ms packing +
    2.64 ms product, against 3.87 ms unpacked)."""
    return gemm.pack(a) if uses > 1 else a


def _output_rows(grad: np.ndarray, dtype) -> np.ndarray:
    """A conv output's gradient (N, OC, OH, OW) as (OC, OH*OW*N), a view when it is
    batch-minor."""
    gy = kernels.to_batch_minor(grad.astype(dtype, copy=False))  # (OC, OH, OW, N)
    return gy.reshape(gy.shape[0], -1)


def _winograd_fits(x_shape, w_shape, strides, pads, groups) -> bool:
    """Whether Winograd F(2x2, 3x3) is used (kernels.py): a 3x3 conv with stride 1, dilation 1,
    one group, the same padding P <= 2 on every side, and enough channels and activations
    for its 16 GEMMs and transforms to pay (measured: ResNet-18's 64-, 128- and 256-channel
    convs, the VGG block's 64-channel ones; not the 512-channel ones at 2x2, where
    transforming the weights costs more than the 2.25x fewer multiplies save: ResNet-18 at two
    threads 119.4 -> 129.9 ms with them. Taking the 256-channel ones at 4x4 too: 173.2 ->
    167.9 ms at one thread, 114.0 -> 113.1 at two)."""
    OC, Cg, KH, KW = w_shape
    return ((KH, KW, groups) == (3, 3, 1) and strides == (1, 1, 1, 1) and len(set(pads)) == 1
            and pads[0] <= 2 and min(OC, Cg) >= _WINOGRAD_MIN_CHANNELS
            and math.prod(x_shape) >= _WINOGRAD_MIN_RATIO * math.prod(w_shape))


def _direct_fits(w_shape, strides, pads, groups) -> bool:
    """Whether a conv (OC, C, KH, KW) is computed directly (kernels.py): `_direct_geometry`,
    and at most _DIRECT_MAX_CHANNELS input channels (an image's), or _DIRECT_MAX_CHANNELS_WIDE
    for kernels whose rows need no one-tap pass (store-bound): 5 wide, or a multiple of 3.
    Winograd, where it fits, goes first. Measured at one thread against im2col + GEMM (CPU
    time, load 2-5): forward of LeNet-5's 3 -> 32 5x5 conv 4.2-4.9 vs 9.7 ms, of its 32 -> 64
    at 16x16 4.9 vs 9.1 ms; 3x3 forward 16 -> 32 at 14x14 0.42 vs 0.77 ms, 32 -> 64 at 7x7
    0.48 vs 0.65 ms; input gradients with 64 channels in (CNN2's, LeNet-5's second conv)
    1.6 vs 2.5 ms (3x3, 14x14) and 6.7 vs 9.0 ms (5x5, 16x16)."""
    C, KW = w_shape[1], w_shape[3]
    wide = KW == 5 or KW % 3 == 0
    limit = _DIRECT_MAX_CHANNELS_WIDE if wide else _DIRECT_MAX_CHANNELS
    return C <= limit and _direct_geometry(w_shape, strides, pads, groups)


def _direct_weight_grad_fits(w_shape, strides, pads, groups, row: int) -> bool:
    """Whether a conv's weight gradient is direct: `_direct_geometry`, and either few input
    channels or a kernel larger than 1x1 with output rows (OW*N values) of at least
    _DIRECT_MIN_ROW. Measured at one thread against im2col + GEMM (load 4.5-5.6): 1.4-3.1x
    faster for LeNet-5's, CNN3's, ResNet-18's 16x16 and 8x8 and the VGG block's convs, 1.3x at
    rows of 192 (128 channels at 6x6, batch 32) and 1.6x at 224 (CNN3's last conv), equal at
    128 (ResNet's 256 channels at 4x4), 0.6x at 64 (512 channels at 2x2)."""
    KH, KW = w_shape[2:]
    few_channels = w_shape[1] <= _DIRECT_MAX_CHANNELS
    return _direct_geometry(w_shape, strides, pads, groups) and (
        few_channels or (KH * KW > 1 and row >= _DIRECT_MIN_ROW))


def _stride2_fits(w_shape, strides, groups) -> bool:
    """Whether a stride-2 conv's weight gradient is direct over its input's phases
    (kernels.stride2_phases): dilation 1, one group, at most _DIRECT_MAX_CHANNELS input
    channels (4x as many phase channels), a whole block of outputs, a kernel larger than 1x1.
    Measured on ResNet-18's 3 -> 64 7x7 conv at batch 32 (one thread, CPU time, load 5):
    weight gradient 4.9 vs 9.3 ms by im2col + GEMM. Its forward over the phases pays where
    the direct conv runs on our GEMM (kernels.direct_on_gemm): 4.7 vs 8.0 ms at one thread,
    2.9 vs 4.3 at two; on the direct loops it was no faster (8.5-9.6 vs 9.3 ms), so there the
    forward stays on im2col + GEMM."""
    OC, Cg, KH, KW = w_shape
    return (strides == (2, 2, 1, 1) and groups == 1 and Cg <= _DIRECT_MAX_CHANNELS
            and OC >= kernels.DIRECT_BLOCK and KH * KW > 1)


def _full_pads(pads, KH: int, KW: int) -> tuple:
    """The padding of the input gradient of a stride-1 conv padded by `pads`, as a conv."""
    PT, PB, PL, PR = pads
    return KH - 1 - PT, KH - 1 - PB, KW - 1 - PL, KW - 1 - PR


def _direct_geometry(w_shape, strides, pads, groups) -> bool:
    """What the direct kernels take: stride 1, dilation 1, one group, at least one whole block
    of output channels, and padding below the kernel size (so that the input gradient is a
    stride-1 conv too)."""
    OC, _, KH, KW = w_shape
    return (strides == (1, 1, 1, 1) and groups == 1 and OC >= kernels.DIRECT_BLOCK
            and 0 <= min(pads) and max(pads[:2]) < KH and max(pads[2:]) < KW)


def _group_slices(wg_shape: tuple):
    """(g, rows of col, rows of the output) for each group of weights (G, OC/G, C/G*KH*KW)."""
    G, OCg, CKg = wg_shape
    for g in range(G):
        yield g, slice(g * CKg, (g + 1) * CKg), slice(g * OCg, (g + 1) * OCg)


class ConvInputGrad(GraphRule, Conv2d):
    """A convolution's input gradient as an op: the transposed convolution of grad
    (N, OC, OH, OW) with w, w^T @ grad then col2im, -> (N, C, H, W). Linear in both, so its own
    gradients are a convolution (for grad) and a weight gradient (for w), to any order.

        gx = ConvInputGrad.apply(grad, w, conv=node)   # node: the Conv2d whose geometry it uses
    """

    def forward(self, grad, w, *, conv):
        self._take_geometry(conv)
        self.save_for_backward(grad, w)
        wg = w.astype(grad.dtype, copy=False).reshape(self.wg_shape)
        return self._grads(_output_rows(grad, grad.dtype), None, wg, True, False)[0]

    def backward_graph(self, grad):  # grad: (N, C, H, W)
        gy, w = self.saved_tensors()
        g_gy = Conv2d.apply(grad, w, **self.opts) if self.needs_input_grad[0] else None
        g_w = ConvWeightGrad.apply(grad, gy, conv=self) if self.needs_input_grad[1] else None
        return g_gy, g_w


class ConvWeightGrad(GraphRule, Conv2d):
    """A convolution's weight gradient as an op: grad (N, OC, OH, OW) @ im2col(x)^T ->
    (OC, C/G, KH, KW). Linear in both, so its own gradients are a transposed convolution (for
    x) and a convolution (for grad), to any order.

        gw = ConvWeightGrad.apply(x, grad, conv=node)
    """

    def forward(self, x, grad, *, conv):
        self._take_geometry(conv)
        self.save_for_backward(x, grad)
        xb = kernels.to_batch_minor(x)
        return self._grads(_output_rows(grad, x.dtype), xb, None, False, True)[1]

    def backward_graph(self, grad):  # grad: like the weight
        x, gy = self.saved_tensors()
        g_x = ConvInputGrad.apply(gy, grad, conv=self) if self.needs_input_grad[0] else None
        g_gy = Conv2d.apply(x, grad, **self.opts) if self.needs_input_grad[1] else None
        return g_x, g_gy


class MaxPool2d(Function):
    """Max pooling; saves only the position of each window's maximum (int8 for small windows)."""

    def forward(self, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        H, W = x.shape[2:]
        (KH, KW), (SH, SW), (PH, PW), (DH, DW) = _pool_args(
            "max_pool2d", kernel_size, stride, padding, dilation)
        OH = _pool_out(H, KH, SH, PH, DH, ceil_mode)
        OW = _pool_out(W, KW, SW, PW, DW, ceil_mode)
        y, window = kernels.max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
        self.save_for_backward(window)
        self.geometry = (H, W, KH, KW, SH, SW, PH, PW, DH, DW)
        return y

    def backward(self, grad):
        (window,) = self.saved
        return kernels.max_pool2d_backward(grad, window, *self.geometry)

    def backward_graph(self, grad):
        return MaxPoolBackward.apply(grad, window=self.saved[0], geometry=self.geometry)

    def indices(self) -> np.ndarray:
        """PyTorch's `return_indices`: flat ih*W + iw of each maximum, (N, C, OH, OW) int64."""
        H, W, _, KW, SH, SW, PH, PW, DH, DW = self.geometry
        return kernels.window_to_flat(self.saved[0], H, W, KW, SH, SW, PH, PW, DH, DW)


class MaxPoolBackward(GraphRule):
    """Max pooling's input gradient as an op: each window's grad goes to the pixel its maximum
    came from (the saved window positions). Linear in grad, so its own gradient is the gather
    at those positions (MaxPoolGather)."""

    def forward(self, grad, *, window, geometry):
        self.window, self.geometry = window, geometry
        return kernels.max_pool2d_backward(grad, window, *geometry)

    def backward_graph(self, grad):  # grad: (N, C, H, W)
        return MaxPoolGather.apply(grad, window=self.window, geometry=self.geometry)


class MaxPoolGather(GraphRule):
    """(N, C, H, W) -> (N, C, OH, OW): each window reads its input at the position of its
    maximum (0 for a window that saw only padding). The adjoint of MaxPoolBackward, so each
    is the other's gradient."""

    def forward(self, x, *, window, geometry):
        self.window, self.geometry = window, geometry
        H, W, _, KW, SH, SW, PH, PW, DH, DW = geometry
        flat = kernels.window_to_flat(window, H, W, KW, SH, SW, PH, PW, DH, DW)  # (N, C, OH, OW)
        N, C = flat.shape[:2]
        taken = np.take_along_axis(x.reshape(N, C, H * W), np.maximum(flat, 0).reshape(N, C, -1),
                                   axis=2)
        return np.where(flat >= 0, taken.reshape(flat.shape), 0).astype(x.dtype, copy=False)

    def backward_graph(self, grad):  # grad: (N, C, OH, OW)
        return MaxPoolBackward.apply(grad, window=self.window, geometry=self.geometry)


class AvgPool2d(Function):
    """Average pooling (count_include_pad as PyTorch's default, ceil_mode)."""

    def forward(self, x, *, kernel_size, stride=None, padding=0, ceil_mode=False,
                count_include_pad=True):
        x = np.ascontiguousarray(x)
        H, W = x.shape[2:]
        (KH, KW), (SH, SW), (PH, PW), _ = _pool_args("avg_pool2d", kernel_size, stride, padding, 1)
        OH = _pool_out(H, KH, SH, PH, 1, ceil_mode)
        OW = _pool_out(W, KW, SW, PW, 1, ceil_mode)
        self.args = (H, W, KH, KW, SH, SW, PH, PW, count_include_pad)
        self.opts = {"kernel_size": kernel_size, "stride": stride, "padding": padding,
                     "ceil_mode": ceil_mode, "count_include_pad": count_include_pad}
        return kernels.avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad)

    def backward(self, grad):
        return kernels.avg_pool2d_backward(np.ascontiguousarray(grad), *self.args)

    def backward_graph(self, grad):
        return AvgPoolBackward.apply(grad, args=self.args, opts=self.opts)


class AvgPoolBackward(GraphRule):
    """Average pooling's input gradient as an op (each window spreads grad / its divisor over
    its pixels): linear, and its adjoint is average pooling, which is then its gradient."""

    def forward(self, grad, *, args, opts):
        self.opts = opts
        return kernels.avg_pool2d_backward(np.ascontiguousarray(grad), *args)

    def backward_graph(self, grad):  # grad: (N, C, H, W)
        return AvgPool2d.apply(grad, **self.opts)


def _pool_args(op: str, kernel_size, stride, padding, dilation):
    """Normalise pooling arguments to pairs; stride defaults to kernel_size like PyTorch."""
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair(stride, "stride", op)
    return kernel, stride, _pair(padding, "padding", op), _pair(dilation, "dilation", op)


# ------------------------------------------------------------------ public wrappers
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) like `torch.nn.functional.conv2d`.

    x (N, C, H, W), weight (OC, C/groups, KH, KW), bias (OC,) -> (N, OC, OH, OW).
    padding: int, (ph, pw), 'valid' or 'same' (stride 1 only).

        y = conv2d(x, w, b, padding=1)   # (32, 1, 28, 28) * (8, 1, 3, 3) -> (32, 8, 28, 28)
    """
    _check_conv2d(x, weight, bias, stride, padding, dilation, groups)
    opts = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if bias is None:
        return Conv2d.apply(x, weight, **opts)
    return Conv2d.apply(x, weight, bias, **opts)


def _check_conv2d(x, weight, bias, stride, padding, dilation, groups) -> None:
    """Raise a message naming conv2d and the shapes for every argument PyTorch would refuse."""
    if x.ndim != 4:
        raise RuntimeError(f"conv2d: expected input (N, C, H, W), got {x.shape}")
    if weight.ndim != 4:
        raise RuntimeError(f"conv2d: expected weight (out_channels, in_channels/groups, kH, kW), "
                           f"got {weight.shape}")
    check_float_input("conv2d", x, weight)
    C, H, W = x.shape[1:]
    OC, Cg, KH, KW = weight.shape
    if groups < 1 or C % groups or OC % groups:
        raise RuntimeError(f"conv2d: groups={groups} must be positive and divide both the input "
                           f"channels ({C}) and the output channels ({OC})")
    if C != Cg * groups:
        raise RuntimeError(f"conv2d: input {x.shape} has {C} channels, but weight {weight.shape} "
                           f"with groups={groups} expects {Cg * groups}")
    if bias is not None and bias.shape != (OC,):
        raise RuntimeError(f"conv2d: expected bias of shape ({OC},) for weight {weight.shape}, "
                           f"got {bias.shape}")
    SH, SW = _pair(stride, "stride", "conv2d")
    DH, DW = _pair(dilation, "dilation", "conv2d")
    if min(SH, SW, DH, DW) < 1:
        raise RuntimeError(f"conv2d: stride {(SH, SW)} and dilation {(DH, DW)} must be positive")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise RuntimeError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', "
                               f"got {padding!r}")
        if padding == "same" and (SH, SW) != (1, 1):
            raise RuntimeError(f"conv2d: padding='same' needs stride 1, got {(SH, SW)}")
    PT, PB, PL, PR = _conv_padding(padding, (KH, KW), (DH, DW))
    if min(PT, PL) < 0:
        raise RuntimeError(f"conv2d: padding must be non-negative, got {padding}")
    reach = (DH * (KH - 1) + 1, DW * (KW - 1) + 1)
    if reach[0] > H + PT + PB or reach[1] > W + PL + PR:
        raise RuntimeError(
            f"conv2d: kernel {KH}x{KW} (dilation {(DH, DW)}, reach {reach[0]}x{reach[1]}) is larger "
            f"than the padded input {H + PT + PB}x{W + PL + PR} (input {x.shape}, padding "
            f"{padding}); use a smaller kernel or more padding")


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """2-D max pooling like `torch.nn.functional.max_pool2d`; (N, C, H, W) -> (N, C, OH, OW).

    With return_indices, also the flat index into each (H*W) plane of every maximum.

        y = max_pool2d(x, 2)             # (32, 8, 28, 28) -> (32, 8, 14, 14)
    """
    _check_pool("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    opts = {"kernel_size": kernel_size, "stride": stride, "padding": padding,
            "dilation": dilation, "ceil_mode": ceil_mode}
    y = MaxPool2d.apply(x, **opts)
    if not return_indices:
        return y
    pool = y._ctx
    if pool is None:  # no graph was recorded (no_grad, or x needs no grad): rerun the kernel
        pool = MaxPool2d()
        pool.forward(x.array, **opts)
    return y, Tensor(pool.indices())


def avg_pool2d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """2-D average pooling like `torch.nn.functional.avg_pool2d`; (N, C, H, W) -> (N, C, OH, OW).

        y = avg_pool2d(x, 2)             # (32, 8, 28, 28) -> (32, 8, 14, 14)
    """
    _check_pool("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding,
                           ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def _check_pool(op: str, x, kernel_size, stride, padding, dilation, ceil_mode) -> None:
    """Raise a message naming the op and the shapes for every argument PyTorch would refuse."""
    if x.ndim != 4:
        raise RuntimeError(f"{op}: expected input (N, C, H, W), got {x.shape}")
    kernel, stride, pad, dil = _pool_args(op, kernel_size, stride, padding, dilation)
    if min(kernel + stride + dil) < 1 or min(pad) < 0:
        raise RuntimeError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dil} must "
                           f"be positive and padding {pad} non-negative")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise RuntimeError(f"{op}: padding {pad} should be at most half of kernel_size {kernel}")
    H, W = x.shape[2:]
    out = (_pool_out(H, kernel[0], stride[0], pad[0], dil[0], ceil_mode),
           _pool_out(W, kernel[1], stride[1], pad[1], dil[1], ceil_mode))
    if min(out) < 1:
        raise RuntimeError(f"{op}: input {x.shape} is too small for kernel_size {kernel} with "
                           f"padding {pad} and dilation {dil}: the output would be {out}")


__all__ = ["AvgPool2d", "AvgPoolBackward", "Conv2d", "ConvInputGrad", "ConvWeightGrad",
           "MaxPool2d", "MaxPoolBackward", "MaxPoolGather", "avg_pool2d", "conv2d", "max_pool2d"]
