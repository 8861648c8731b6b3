"""Stateless neural-network functions, named and behaving like `torch.nn.functional`."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..functions import norm
from ..missing import module_getattr
from ..ops_cnn import avg_pool2d, conv2d, max_pool2d
from ..random import get_rng
from ..tensor import Tensor, _const, stack, where

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "celu",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "cosine_similarity",
    "cross_entropy",
    "dropout",
    "dropout2d",
    "elu",
    "embedding",
    "gelu",
    "glu",
    "group_norm",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "huber_loss",
    "interpolate",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "logsigmoid",
    "max_pool2d",
    "mish",
    "mse_loss",
    "nll_loss",
    "normalize",
    "one_hot",
    "pad",
    "prelu",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "softsign",
    "tanh",
    "upsample",
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
        running_mean, running_var = running_mean.array, running_var.array
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
    t = np.asarray(target.array if isinstance(target, Tensor) else target)
    n = int(t.max()) + 1 if num_classes < 0 else num_classes
    return Tensor._wrap(np.eye(n, dtype=np.int64)[t])


# ---------------------------------------------------------------- losses


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def legacy_reduction(size_average, reduce, reduction: str) -> str:
    """torch's deprecated size_average / reduce arguments, mapped as torch maps them."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def cross_entropy(input: Tensor, target, weight: Tensor | None = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of (N, C, ...) logits against class indices (N, ...) or class
    probabilities / one-hot targets shaped like the logits (fused and stable); torch's
    arguments, in its order (`size_average` / `reduce` are its deprecated spellings of
    `reduction`). Class `weight`s go through nll_loss (torch's weighted mean)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("cross_entropy", reduction)
    if weight is not None:
        if label_smoothing:
            raise NotImplementedError("cross_entropy: weight together with label_smoothing is "
                                      "not supported by tinygrad_edu")
        return nll_loss(input.log_softmax(1), target, weight, ignore_index=ignore_index,
                        reduction=reduction)
    t = np.asarray(target.array if isinstance(target, Tensor) else target)
    if input.ndim < 2:
        raise RuntimeError(f"cross_entropy: expected logits (N, C, ...), got {input.shape}")
    if t.dtype.kind in "iu":
        if t.shape != (input.shape[0],) + input.shape[2:]:
            raise RuntimeError(f"cross_entropy: class-index target of shape {t.shape} does not "
                               f"match logits {input.shape} (expected "
                               f"{(input.shape[0],) + input.shape[2:]})")
        bad = t.size and (t.min() < 0 or t.max() >= input.shape[1]) and (  # (two reductions
            (t != ignore_index) & ((t < 0) | (t >= input.shape[1])))  # first: the common case)
        if np.any(bad):
            raise IndexError(f"cross_entropy: target {t[bad][0]} is out of range for "
                             f"{input.shape[1]} classes")
    elif t.shape != input.shape:
        raise RuntimeError(f"cross_entropy: probability target of shape {t.shape} must match "
                           f"logits {input.shape}")
    elif isinstance(target, Tensor) and target.requires_grad:  # the fused op treats q as data
        q = target * (1 - label_smoothing) + label_smoothing / input.shape[1]
        losses = -(q * input.log_softmax(1)).sum(1)
        return losses if reduction == "none" else getattr(losses, reduction)()
    return ops.CrossEntropy.apply(input, target=t, reduction=reduction,
                                  label_smoothing=label_smoothing, ignore_index=ignore_index)


def nll_loss(input: Tensor, target, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of (N, C) or (N, C, ...) log-probabilities at the target indices.

    With class `weight`s the mean divides by the summed weights of the targets, as in torch;
    targets equal to `ignore_index` count for nothing.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("nll_loss", reduction)
    t = np.asarray(target.array if isinstance(target, Tensor) else target)
    if input.ndim > 2:  # (N, C, d1, ...) -> (N * d1 * ..., C)
        input = input.permute(0, *range(2, input.ndim), 1).reshape(-1, input.shape[1])
        t = t.reshape(-1)
    if t.shape != input.shape[:1] or t.dtype.kind not in "iu":
        raise RuntimeError(f"nll_loss: expected class indices of shape {input.shape[:1]}, got "
                           f"{t.dtype} {t.shape}")
    keep = t != ignore_index
    if ((t[keep] < 0) | (t[keep] >= input.shape[1])).any():
        raise IndexError(f"nll_loss: target {t[keep].max()} is out of range for "
                         f"{input.shape[1]} classes")
    safe = np.where(keep, t, 0)
    w = np.ones(input.shape[1], input.dtype) if weight is None else np.asarray(weight.array)
    w_t = Tensor._wrap((w[safe] * keep).astype(input.dtype))                   # (N,)
    picked = -input[np.arange(input.shape[0]), safe] * w_t
    if reduction == "mean":
        return picked.sum() / w_t.sum()
    return _reduce(picked, reduction)


def binary_cross_entropy(input: Tensor, target, weight: Tensor | None = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """-(y log p + (1-y) log(1-p)) with the logs clamped at -100, as PyTorch does; `weight`
    (broadcast to the input) rescales each element's loss."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy", reduction)
    p = input.array
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("binary_cross_entropy: input must be probabilities in [0, 1]; "
                         "for logits use binary_cross_entropy_with_logits")
    y = _const(target, input)
    if y.shape != input.shape:
        raise ValueError(f"binary_cross_entropy: target shape {y.shape} must match input shape "
                         f"{input.shape}")
    loss = ops.BinaryCrossEntropy.apply(input, y)
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight: Tensor | None = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op; `pos_weight` weighs the positive term
    (per class, broadcast over the last dim) and `weight` each element, as in torch."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    y = _const(target, input)
    if y.shape != input.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {y.shape} must match "
                         f"input shape {input.shape}")
    if pos_weight is None:
        loss = ops.BCEWithLogits.apply(input, y)
    else:  # pos_weight * y * -log sigmoid(x) + (1 - y) * -log(1 - sigmoid(x))
        loss = pos_weight * y * (-input).softplus() + (1 - y) * input.softplus()
    return _reduce(loss if weight is None else loss * weight, reduction)


def mse_loss(input: Tensor, target, size_average=None, reduce=None,
             reduction: str = "mean") -> Tensor:
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("mse_loss", reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, size_average=None, reduce=None,
            reduction: str = "mean") -> Tensor:
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("l1_loss", reduction)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target, size_average=None, reduce=None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (Huber loss divided by beta)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction("smooth_l1_loss", reduction)
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    quadratic = d.array < beta
    return _reduce(where(quadratic, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): smooth_l1 scaled by delta."""
    _check_reduction("huber_loss", reduction)
    return _reduce(smooth_l1_loss(input, target, reduction="none", beta=delta) * delta,
                   reduction)


def kl_div(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise: target * (log target - input); 'batchmean' divides
    the sum by the batch size (the mathematically right mean, as torch recommends)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"kl_div: reduction must be one of {_REDUCTIONS + ('batchmean',)}, got "
                         f"{reduction!r}")
    t = _const(target, input)
    if log_target:
        loss = t.exp() * (t - input)
    else:
        positive = t.array > 0
        loss = where(positive, t * (where(positive, t, 1.0).log() - input), 0.0)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    return _reduce(loss, reduction)


# ---------------------------------------------------------------- more activations


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (swish)."""
    return x * x.sigmoid()


def mish(x: Tensor) -> Tensor:
    """x * tanh(softplus(x))."""
    return x * x.softplus().tanh()


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    positive = x.array > 0
    return where(positive, x, alpha * (where(positive, 0.0, x).exp() - 1))


def selu(x: Tensor) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al."""
    return 1.0507009873554804934193349852946 * elu(x, 1.6732632423543772848170429916717)


def celu(x: Tensor, alpha: float = 1.0) -> Tensor:
    positive = x.array > 0
    return where(positive, x, alpha * ((where(positive, 0.0, x) / alpha).exp() - 1))


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return x.clamp(min_val, max_val)


def relu6(x: Tensor) -> Tensor:
    return x.clamp(0.0, 6.0)


def hardsigmoid(x: Tensor) -> Tensor:
    """relu6(x + 3) / 6; its gradient is 1/6 strictly inside (-3, 3) and 0 elsewhere, as torch's."""
    inside = (x.array > -3) & (x.array < 3)
    return where(inside, (x + 3) / 6, Tensor._wrap((x.array >= 3).astype(x.dtype)))


def hardswish(x: Tensor) -> Tensor:
    """x * relu6(x + 3) / 6."""
    return x * hardsigmoid(x)


def logsigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -(-x).softplus()


def softsign(x: Tensor) -> Tensor:
    return x / (1 + x.abs())


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """x where x >= 0, else weight * x; weight has 1 or C (dim 1) entries."""
    shape = (1, -1) + (1,) * (x.ndim - 2) if weight.numel() > 1 else (1,) * x.ndim
    return where(x.array >= 0, x, weight.reshape(shape) * x)


def glu(x: Tensor, dim: int = -1) -> Tensor:
    a, b = x.chunk(2, dim)
    return a * b.sigmoid()


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along `dim`."""
    return x / norm(x, p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    n1 = norm(x1, 2, dim).clamp(min=eps)
    n2 = norm(x2, 2, dim).clamp(min=eps)
    return (x1 * x2).sum(dim) / (n1 * n2)


# ---------------------------------------------------------------- dropout variants


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero whole channels of (N, C, H, W) (or (C, H, W)) with probability p, scale the rest."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout2d: probability has to be between 0 and 1, got {p}")
    if x.ndim not in (3, 4):
        raise RuntimeError(f"dropout2d: expected (N, C, H, W) or (C, H, W), got {x.shape}")
    if not training or p == 0:
        return x
    keep = get_rng().random(x.shape[:-2] + (1, 1)) >= p                      # (N, C, 1, 1)
    mask = (keep / (1 - p) if p < 1 else keep * 0).astype(x.dtype)
    return ops.Dropout.apply(x, mask=mask)


# ---------------------------------------------------------------- conv variants, embedding


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D convolution (N, C, L) * (OC, C/groups, K) -> (N, OC, OL): conv2d with height 1."""
    if x.ndim != 3 or weight.ndim != 3:
        raise RuntimeError(f"conv1d: expected input (N, C, L) and weight (OC, C, K), got "
                           f"{x.shape} and {weight.shape}")
    pad = padding if isinstance(padding, str) else (0, _single(padding))
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _single(stride)), pad,
                 (1, _single(dilation)), groups)
    return out.squeeze(2)


def _single(v) -> int:
    """An int from an int or a one-element tuple (Conv1d's kernel_size=(3,))."""
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed convolution (the gradient of conv2d w.r.t. its input), like torch's.

    x (N, C, H, W), weight (C, OC, KH, KW) -> (N, OC, OH, OW) with
    OH = (H - 1) * stride - 2 * padding + dilation * (KH - 1) + output_padding + 1.
    Computed as a stride-1 conv2d of x with zeros inserted between pixels, and the flipped kernel.
    """
    if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[0]:
        raise RuntimeError(f"conv_transpose2d: expected input (N, C, H, W) and weight "
                           f"(C, OC/groups, KH, KW) with the same C, got {x.shape} and "
                           f"{weight.shape}")
    if groups != 1:
        raise NotImplementedError("conv_transpose2d: groups > 1 is not supported by tinygrad_edu")
    (sh, sw), (ph, pw) = _pair2(stride), _pair2(padding)
    (oph, opw), (dh, dw) = _pair2(output_padding), _pair2(dilation)
    kh, kw = weight.shape[2:]
    N, C, H, W = x.shape
    if sh > 1 or sw > 1:  # zeros between the pixels: (N, C, H, 1, W, 1) padded to strides
        x = x.reshape(N, C, H, 1, W, 1).pad((0, sw - 1, 0, 0, 0, sh - 1))
        x = x.reshape(N, C, H * sh, W * sw)[:, :, :(H - 1) * sh + 1, :(W - 1) * sw + 1]
    eh, ew = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if eh < 0 or ew < 0:
        raise NotImplementedError(f"conv_transpose2d: padding {(ph, pw)} larger than "
                                  f"dilation * (kernel - 1) is not supported by tinygrad_edu")
    x = x.pad((ew, ew + opw, eh, eh + oph))
    w = weight.permute(1, 0, 2, 3)[:, :, ::-1, ::-1]                         # (OC, C, KH, KW)
    return conv2d(x, w, bias, 1, 0, (dh, dw))


def _pair2(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) at the integer `input` indices; the row at
    `padding_idx` gets no gradient."""
    idx = np.asarray(input.array if isinstance(input, Tensor) else input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: expected integer indices, got dtype {idx.dtype}")
    if idx.size and (idx.min() < -weight.shape[0] or idx.max() >= weight.shape[0]):
        raise IndexError(f"embedding: index {idx.max()} is out of range for "
                         f"{weight.shape[0]} embeddings")
    rows = weight[idx]
    if padding_idx is None:
        return rows
    pad = (idx == padding_idx % weight.shape[0])[..., None]
    return where(np.broadcast_to(pad, rows.shape), rows.detach(), rows)


# ---------------------------------------------------------------- normalisation, resampling


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise (N, C, ...) over each group of C / num_groups channels and the spatial dims."""
    N, C = x.shape[:2]
    if C % num_groups:
        raise RuntimeError(f"group_norm: {C} channels do not divide into {num_groups} groups")
    g = x.reshape(N, num_groups, -1)
    mean = g.mean(2, keepdim=True)
    var = g.var(2, keepdim=True, correction=0)
    out = ((g - mean) / (var + eps).sqrt()).reshape(x.shape)
    shape = (1, C) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None) -> Tensor:
    """Resize the spatial dims of (N, C, L), (N, C, H, W), ...: 'nearest', 'linear' or
    'bilinear' (separable; align_corners as in torch), 'area' for (N, C, H, W)."""
    spatial = x.shape[2:]
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        out = (size,) * len(spatial) if isinstance(size, int) else tuple(size)
        scales = [None] * len(spatial)
    else:
        factors = (scale_factor,) * len(spatial) if isinstance(scale_factor, (int, float)) \
            else tuple(scale_factor)
        out = tuple(int(np.floor(n * f)) for n, f in zip(spatial, factors))
        scales = list(factors)
    if mode == "area" and x.ndim == 4:  # torch's 'area' is adaptive average pooling
        return adaptive_avg_pool2d(x, out)
    if mode not in ("nearest", "linear", "bilinear"):
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; use 'nearest', "
                                  f"'linear', 'bilinear' or (for (N, C, H, W)) 'area'")
    if (mode, x.ndim) in (("linear", 4), ("bilinear", 3)) or (mode != "nearest" and x.ndim > 4):
        raise NotImplementedError(f"interpolate: mode {mode!r} does not take a {x.ndim}-D "
                                  f"input; 'linear' is for (N, C, L), 'bilinear' for (N, C, H, W)")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only goes with the linear modes")
    for axis, (n_in, n_out, scale) in enumerate(zip(spatial, out, scales), start=2):
        if mode == "nearest":
            step = n_in / n_out if scale is None else 1 / scale
            src = np.minimum(np.floor(np.arange(n_out) * step).astype(np.int64), n_in - 1)
            x = x[(slice(None),) * axis + (src,)]
        else:
            x = _linear_axis(x, axis, n_in, n_out, scale, bool(align_corners))
    return x


def _linear_axis(x: Tensor, axis: int, n_in: int, n_out: int, scale, align_corners: bool):
    """Linear interpolation along one axis: a weighted sum of two gathered slices."""
    if align_corners:
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        step = n_in / n_out if scale is None else 1 / scale
        pos = np.maximum((np.arange(n_out) + 0.5) * step - 0.5, 0)
    lo = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    head = (slice(None),) * axis
    a, b = x[head + (lo,)], x[head + (hi,)]
    return a + (b - a) * Tensor._wrap(frac)


def upsample(x: Tensor, size=None, scale_factor=None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    return interpolate(x, size, scale_factor, mode, align_corners)


__getattr__ = module_getattr(__name__)
