"""Convolution and pooling: autograd Functions over the Numba kernels, and the checked functional
wrappers (`conv2d`, `max_pool2d`, `avg_pool2d`) that `tinygrad_edu.nn.functional` re-exports.

Shapes: N batch, C input channels, OC output channels, K kernel, O output, L = OH*OW.
"""
from __future__ import annotations

import numpy as np

from . import kernels
from .autograd import Function
from .tensor import Tensor


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


# ------------------------------------------------------------------ Functions
class Conv2d(Function):
    """y = conv(x, w) + b as im2col + one GEMM per group (one GEMM when groups=1).

    Conv2d.apply(x, w, b, stride=1, padding=0, dilation=1, groups=1), or without b.
    """

    def forward(self, x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
        x = np.ascontiguousarray(x)
        w = w.astype(x.dtype, copy=False)
        N, C, H, W = x.shape
        OC, Cg, KH, KW = w.shape
        SH, SW = _pair(stride, "stride", "conv2d")
        DH, DW = _pair(dilation, "dilation", "conv2d")
        PT, PB, PL, PR = _conv_padding(padding, (KH, KW), (DH, DW))
        OH, OW = _conv_out(H, PT + PB, KH, SH, DH), _conv_out(W, PL + PR, KW, SW, DW)

        col = kernels.im2col(x, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)  # (C*KH*KW, N*L)
        wg = w.reshape(groups, OC // groups, Cg * KH * KW)  # (G, OC/G, C/G*KH*KW)
        y2 = np.empty((OC, N * OH * OW), x.dtype)
        for g, rows, out_rows in self._group_slices(groups, Cg * KH * KW, OC // groups):
            np.matmul(wg[g], col[rows], out=y2[out_rows])  # (OC/G, N*L)
        y2 = y2.reshape(OC, N, OH * OW).transpose(1, 0, 2)  # (N, OC, L), a view
        y = np.empty((N, OC, OH * OW), x.dtype)
        if b is None:
            np.copyto(y, y2)
        else:
            np.add(y2, b.astype(x.dtype, copy=False)[:, None], out=y)  # bias fused into the copy
        self.save_for_backward(col, wg)
        self.geometry = (N, C, H, W, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)
        self.has_bias = b is not None
        return y.reshape(N, OC, OH, OW)

    @staticmethod
    def _group_slices(groups: int, col_rows: int, out_rows: int):
        """(g, rows of col, rows of the output) for each group."""
        for g in range(groups):
            yield g, slice(g * col_rows, (g + 1) * col_rows), slice(g * out_rows, (g + 1) * out_rows)

    def backward(self, grad):
        col, wg = self.saved
        N, C, H, W, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW = self.geometry
        G, OCg, CKg = wg.shape
        gy = grad.astype(col.dtype, copy=False).reshape(N, G * OCg, OH * OW)
        gy2 = np.ascontiguousarray(gy.transpose(1, 0, 2)).reshape(G * OCg, N * OH * OW)
        gx = gw = gb = None
        slices = list(self._group_slices(G, CKg, OCg))
        if self.needs_input_grad[1]:
            gw = np.empty_like(wg)
            for g, rows, out_rows in slices:
                np.matmul(gy2[out_rows], col[rows].T, out=gw[g])  # (OC/G, C/G*KH*KW)
            gw = gw.reshape(G * OCg, CKg // (KH * KW), KH, KW)
        if self.has_bias and self.needs_input_grad[2]:
            gb = gy2.sum(axis=1)
        if self.needs_input_grad[0]:
            gcol = np.empty_like(col)
            for g, rows, out_rows in slices:
                np.matmul(wg[g].T, gy2[out_rows], out=gcol[rows])  # (C/G*KH*KW, N*L)
            gx = kernels.col2im(gcol, N, C, H, W, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)
        return (gx, gw, gb) if self.has_bias else (gx, gw)


class MaxPool2d(Function):
    """Max pooling; `self.indices` (N, C, OH, OW) are flat indices into each (H*W) plane."""

    def forward(self, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        x = np.ascontiguousarray(x)
        H, W = x.shape[2:]
        (KH, KW), (SH, SW), (PH, PW), (DH, DW) = _pool_args(
            "max_pool2d", kernel_size, stride, padding, dilation)
        OH = _pool_out(H, KH, SH, PH, DH, ceil_mode)
        OW = _pool_out(W, KW, SW, PW, DW, ceil_mode)
        y, self.indices = kernels.max_pool2d_forward(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
        self.save_for_backward(self.indices)
        self.input_hw = (H, W)
        return y

    def backward(self, grad):
        (indices,) = self.saved
        return kernels.max_pool2d_backward(np.ascontiguousarray(grad), indices, *self.input_hw)


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
        return kernels.avg_pool2d_forward(x, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad)

    def backward(self, grad):
        return kernels.avg_pool2d_backward(np.ascontiguousarray(grad), *self.args)


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
        pool.forward(x.data, **opts)
    return y, Tensor(pool.indices)


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


__all__ = ["AvgPool2d", "Conv2d", "MaxPool2d", "avg_pool2d", "conv2d", "max_pool2d"]
