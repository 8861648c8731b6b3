"""Stateless neural-network functions, named and behaving like `torch.nn.functional`."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ops_cnn import avg_pool2d, conv2d, max_pool2d
from ..random import get_rng
from ..tensor import Tensor, _const, stack

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "gelu",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]

_REDUCTIONS = ("mean", "sum", "none")


def relu(x: Tensor) -> Tensor:
    return x.relu()


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return x.leaky_relu(negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def gelu(x: Tensor) -> Tensor:
    return x.gelu()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return x.softplus(beta, threshold)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)


def pad(x: Tensor, pad: tuple, mode: str = "constant", value: float = 0.0) -> Tensor:
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is supported, got {mode!r}")
    return x.pad(pad, value)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear({weight.shape[1]}->{weight.shape[0]}): expected input "
                           f"(..., {weight.shape[1]}), got {x.shape}")
    if bias is None:
        return ops.Linear.apply(x, weight)
    return ops.Linear.apply(x, weight, bias)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p); identity in eval."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, got {p}")
    if not training or p == 0:
        return x
    keep = get_rng().random(x.shape) >= p
    mask = (keep / (1 - p) if p < 1 else keep * 0).astype(x.dtype)
    return ops.Dropout.apply(x, mask=mask)


def adaptive_avg_pool2d(x: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed (OH, OW); (1, 1) is global average pooling."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    if x.ndim != 4:
        raise RuntimeError(f"adaptive_avg_pool2d: expected input (N, C, H, W), got {x.shape}")
    N, C, H, W = x.shape
    oh, ow = oh or H, ow or W
    if (oh, ow) == (1, 1):
        return x.mean((2, 3), keepdim=True)
    if H % oh == 0 and W % ow == 0:
        return x.reshape(N, C, oh, H // oh, ow, W // ow).mean((3, 5))
    rows = []
    for i in range(oh):  # PyTorch's bins: [floor(i*H/oh), ceil((i+1)*H/oh))
        h0, h1 = (i * H) // oh, -((-(i + 1) * H) // oh)
        row = [x[:, :, h0:h1, (j * W) // ow:-((-(j + 1) * W) // ow)].mean((2, 3))
               for j in range(ow)]
        rows.append(stack(row, -1))
    return stack(rows, -2)


def batch_norm(x: Tensor, running_mean: np.ndarray | None, running_var: np.ndarray | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch statistics in training (updating the running ones in place), running ones in eval.

    x is (N, C) or (N, C, ...); running_mean / running_var: (C,) arrays or Tensors, or None.
    """
    if isinstance(running_mean, Tensor):  # torch-style buffers: update their arrays in place
        running_mean, running_var = running_mean.data, running_var.data
    C = x.shape[1]
    weight = weight if weight is not None else Tensor._wrap(np.ones(C, x.dtype))
    bias = bias if bias is not None else Tensor._wrap(np.zeros(C, x.dtype))
    if training or running_mean is None:
        return ops.BatchNorm.apply(x, weight, bias, eps=eps, running_mean=running_mean,
                                   running_var=running_var, momentum=momentum)
    bshape = (1, C) + (1,) * (x.ndim - 2)
    scale = weight / Tensor._wrap(np.sqrt(running_var + eps).astype(x.dtype).reshape(C))
    shift = bias - scale * Tensor._wrap(running_mean.astype(x.dtype))
    return x * scale.reshape(bshape) + shift.reshape(bshape)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise RuntimeError(f"layer_norm: expected input (..., {', '.join(map(str, shape))}), "
                           f"got {x.shape}")
    weight = weight if weight is not None else Tensor._wrap(np.ones(shape, x.dtype))
    bias = bias if bias is not None else Tensor._wrap(np.zeros(shape, x.dtype))
    return ops.LayerNorm.apply(x, weight, bias, ndim=len(shape), eps=eps)


def one_hot(target: Tensor, num_classes: int = -1) -> Tensor:
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    n = int(t.max()) + 1 if num_classes < 0 else num_classes
    return Tensor._wrap(np.eye(n, dtype=np.int64)[t])


# ---------------------------------------------------------------- losses


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def cross_entropy(input: Tensor, target, reduction: str = "mean", label_smoothing: float = 0.0,
                  ignore_index: int = -100) -> Tensor:
    """Softmax cross-entropy of (N, C, ...) logits against class indices (N, ...) or class
    probabilities / one-hot targets shaped like the logits (fused and stable)."""
    _check_reduction("cross_entropy", reduction)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if input.ndim < 2:
        raise RuntimeError(f"cross_entropy: expected logits (N, C, ...), got {input.shape}")
    if t.dtype.kind in "iu":
        if t.shape != (input.shape[0],) + input.shape[2:]:
            raise RuntimeError(f"cross_entropy: class-index target of shape {t.shape} does not "
                               f"match logits {input.shape} (expected "
                               f"{(input.shape[0],) + input.shape[2:]})")
        bad = (t != ignore_index) & ((t < 0) | (t >= input.shape[1]))
        if bad.any():
            raise IndexError(f"cross_entropy: target {t[bad][0]} is out of range for "
                             f"{input.shape[1]} classes")
    elif t.shape != input.shape:
        raise RuntimeError(f"cross_entropy: probability target of shape {t.shape} must match "
                           f"logits {input.shape}")
    return ops.CrossEntropy.apply(input, target=t, reduction=reduction,
                                  label_smoothing=label_smoothing, ignore_index=ignore_index)


def nll_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of (N, C) log-probabilities at the target indices."""
    _check_reduction("nll_loss", reduction)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    picked = input[np.arange(input.shape[0]), t]
    return _reduce(-picked, reduction)


def binary_cross_entropy(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """-(y log p + (1-y) log(1-p)) with the logs clamped at -100, as PyTorch does."""
    _check_reduction("binary_cross_entropy", reduction)
    p = input.data
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("binary_cross_entropy: input must be probabilities in [0, 1]; "
                         "for logits use binary_cross_entropy_with_logits")
    y = _const(target, input)
    if y.shape != input.shape:
        raise ValueError(f"binary_cross_entropy: target shape {y.shape} must match input shape "
                         f"{input.shape}")
    return _reduce(ops.BinaryCrossEntropy.apply(input, y), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    y = _const(target, input)
    if y.shape != input.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {y.shape} must match "
                         f"input shape {input.shape}")
    return _reduce(ops.BCEWithLogits.apply(input, y), reduction)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    _check_reduction("mse_loss", reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    _check_reduction("l1_loss", reduction)
    return _reduce((input - target).abs(), reduction)
