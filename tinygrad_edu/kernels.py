"""Numba kernels for convolution and pooling: numpy arrays in, numpy arrays out, plain loops.

Notation (Chainer's `utils/conv.py`, DeZero's im2col):
    N batch, C channels, H, W input height/width, K kernel (KH, KW), S stride, P padding on the
    top/left (the bottom/right padding follows from the output size O = (OH, OW)), D dilation.
    Output row oh reads input rows ih = oh*SH - PH + kh*DH; rows outside [0, H) are padding.

Conventions:
- Every kernel takes C-contiguous arrays (callers use `np.ascontiguousarray`), float32 or float64,
  and allocates its result in the input's dtype; sums inside a window accumulate in float64.
- Output sizes are computed by the caller (`tinygrad_edu.ops_cnn`) and passed in, which is how
  ceil_mode and the asymmetric padding of `padding='same'` reach the loops without special cases.
- Single-threaded on purpose: on a 2-core machine `parallel=True` loops fight OpenBLAS's threads
  for the same cores (a 3-layer CNN step measured several times slower; see benchmarks/kernels.py).
- `cache=True` stores the compiled machine code next to this file (or in NUMBA_CACHE_DIR), so only
  the first import on a machine pays the compile time.
- Set NUMBA_DISABLE_JIT=1 to run these as plain Python and step through them in a debugger.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """(N, C, H, W) -> col (C*KH*KW, N*OH*OW): column n*OH*OW + oh*OW + ow holds the receptive
    field of output pixel (n, oh, ow), zero where it reads padding.

    With this layout conv2d is one GEMM, weight (OC, C*KH*KW) @ col -> (OC, N*OH*OW), and the
    innermost loop writes contiguous memory.
    """
    N, C, H, W = x.shape
    col = np.empty((C * KH * KW, N * OH * OW), x.dtype)
    for n in range(N):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    row = (c * KH + kh) * KW + kw
                    for oh in range(OH):
                        ih = oh * SH - PH + kh * DH
                        start = (n * OH + oh) * OW
                        if ih < 0 or ih >= H:
                            for ow in range(OW):
                                col[row, start + ow] = 0
                            continue
                        for ow in range(OW):
                            iw = ow * SW - PW + kw * DW
                            if 0 <= iw < W:
                                col[row, start + ow] = x[n, c, ih, iw]
                            else:
                                col[row, start + ow] = 0
    return col


@njit(cache=True)
def col2im(col, N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """col (C*KH*KW, N*OH*OW) -> (N, C, H, W): the adjoint of im2col, adding every column entry
    back onto the input pixel it was read from (overlapping windows sum; padding is dropped)."""
    x = np.zeros((N, C, H, W), col.dtype)
    for n in range(N):
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    row = (c * KH + kh) * KW + kw
                    for oh in range(OH):
                        ih = oh * SH - PH + kh * DH
                        if ih < 0 or ih >= H:
                            continue
                        start = (n * OH + oh) * OW
                        for ow in range(OW):
                            iw = ow * SW - PW + kw * DW
                            if 0 <= iw < W:
                                x[n, c, ih, iw] += col[row, start + ow]
    return x


@njit(cache=True)
def max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """(N, C, H, W) -> (y, indices), both (N, C, OH, OW). indices[n, c, oh, ow] is the flat index
    ih*W + iw of the chosen element in its (H, W) plane, as PyTorch's `return_indices`.

    Padding acts as -inf (it is skipped). Ties go to the FIRST maximum in row-major window order
    and NaN wins (PyTorch's rule), so the backward routes each window's gradient to one pixel.
    """
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW), x.dtype)
    indices = np.empty((N, C, OH, OW), np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best = -np.inf
                    arg = -1  # stays -1 only if the window lies entirely in the padding
                    for kh in range(KH):
                        ih = oh * SH - PH + kh * DH
                        if ih < 0 or ih >= H:
                            continue
                        for kw in range(KW):
                            iw = ow * SW - PW + kw * DW
                            if iw < 0 or iw >= W:
                                continue
                            v = x[n, c, ih, iw]
                            if arg < 0 or v > best or np.isnan(v):
                                best = v
                                arg = ih * W + iw
                    y[n, c, oh, ow] = best
                    indices[n, c, oh, ow] = arg
    return y, indices


@njit(cache=True)
def max_pool2d_backward(gy, indices, H, W):
    """gy (N, C, OH, OW), indices from max_pool2d_forward -> gx (N, C, H, W): each window's
    gradient goes to exactly the one pixel its maximum came from (overlapping windows add)."""
    N, C, OH, OW = gy.shape
    gx = np.zeros((N, C, H * W), gy.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    j = indices[n, c, oh, ow]
                    if j >= 0:
                        gx[n, c, j] += gy[n, c, oh, ow]
    return gx.reshape(N, C, H, W)


@njit(cache=True)
def _avg_window(o, S, P, K, size):
    """Window `o` along one axis -> (first, last+1) input index inside [0, size), and the count
    PyTorch divides by with count_include_pad: the window clipped to the padded input."""
    start = o * S - P
    end = min(start + K, size + P)
    padded_count = end - start
    return max(start, 0), min(end, size), padded_count


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
