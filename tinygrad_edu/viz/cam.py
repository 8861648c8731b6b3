"""Where does the model look? Class activation maps, Grad-CAM(++), saliency and SmoothGrad.

Every function takes a model (tinygrad_edu, or its PyTorch twin) and images x (N, C, H, W) and
returns one map per image, for the predicted class unless `target` (an int or N ints) says
otherwise. `output` picks the head of a model that returns a tuple or a dict.

    maps = grad_cam(model, x)                     # (N, h, w) at the last conv layer
    pictures = overlay_maps(x, maps)              # N images (H, W, 3) uint8, jet over the input

References: CAM, Zhou et al. 2016 "Learning Deep Features for Discriminative Localization";
Grad-CAM, Selvaraju et al. 2017; Grad-CAM++, Chattopadhay et al. 2018; saliency, Simonyan et al.
2014 "Deep Inside Convolutional Networks"; SmoothGrad, Smilkov et al. 2017.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..random import get_rng
from .activations import (
    Trace,
    VizError,
    as_batch,
    default_layer,
    feature_layer_output,
    predict,
    resolve_targets,
)
from .images import overlay, to_uint8

# ---- CAM -------------------------------------------------------------------------------------


def _head_linear(trace: Trace) -> str:
    """The Linear that produces the selected output, else the last Linear called."""
    head = trace.head()
    linears = [n for n in trace.order if isinstance(trace.modules[n], trace.fw.linear)]
    if not linears:
        raise VizError(f"cam: {type(trace.model).__name__} has no Linear layer; CAM explains "
                       f"the logits of a final Linear classifier (use grad_cam instead)")
    exact = [n for n in linears if trace.calls[n][1] is head]
    return exact[-1] if exact else linears[-1]


def _feature_maps_before(trace: Trace, head: str) -> list[np.ndarray]:
    """Every 4-D input or output seen by the hooks before the head ran, latest first."""
    seen = []
    for name in trace.order[:trace.order.index(head)]:
        inputs, out = trace.calls[name]
        for t in (out, inputs[0] if inputs else None):
            if trace.fw.is_tensor(t) and t.ndim == 4:
                seen.append(trace.fw.numpy(t))
    return seen[::-1]


def _head_features(trace: Trace, head: str) -> tuple[np.ndarray, str]:
    """The feature maps A (N, C, h, w) that the head Linear sees, and how: 'gap' or 'flatten'."""
    z = trace.input(head)  # (N, D): what the Linear multiplies
    n, d = z.shape
    maps = [a for a in _feature_maps_before(trace, head) if a.shape[2] * a.shape[3] > 1]
    for a in maps:
        if a.shape[1] == d and np.allclose(a.mean((2, 3)), z, rtol=1e-4, atol=1e-5):
            return a, "gap"
    for a in maps:
        _, c, h, w = a.shape
        if c * h * w == d:  # flatten: reshape what the Linear saw, so the sum is exact
            return z.reshape(n, c, h, w), "flatten"
    raise VizError(f"cam: the classifier {head!r} takes a {d}-vector that is neither the global "
                   f"average nor the flattening of a feature map (C, H, W) seen by the layer "
                   f"hooks; CAM needs such a head, Grad-CAM works for any conv layer")


def cam(model, x, target=None, output: int | str | None = None) -> np.ndarray:
    """Class activation maps (N, h, w): each location's contribution to the target's logit.

    With a global-average-pooling head (Zhou et al.) the map is W[t] . A[:, i, j] / (h w); with a
    flatten-then-Linear head it is sum_c W[t, (c, i, j)] A[c, i, j]. Either way it sums to the
    logit minus the bias. (Zhou's CAM is h*w times the GAP map: the same picture.)
    """
    trace = Trace(model, x, output=output, grad=False)
    head = _head_linear(trace)
    a, kind = _head_features(trace, head)  # (N, C, h, w)
    n, c, h, w = a.shape
    weight = trace.fw.numpy(trace.modules[head].weight)  # (classes, D)
    targets = resolve_targets(target, trace.logits())
    if kind == "gap":
        wt = weight[targets] / (h * w)  # (N, C): the mean over h*w spreads each weight
        return np.einsum("nc,nchw->nhw", wt, a)
    wt = weight[targets].reshape(n, c, h, w)  # (N, C*h*w) -> (N, C, h, w)
    return (wt * a).sum(1)


# ---- gradient methods ------------------------------------------------------------------------

def layer_gradients(model, x, layer: str | None = None, target=None,
                    output: int | str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations, gradients, targets): layer output A (N, C, h, w), d logit[t] / dA, classes."""
    layer = layer or default_layer(model)
    trace = Trace(model, x, retain=[layer], output=output)
    acts = feature_layer_output(trace, layer, "grad_cam")
    targets = trace.backward_from_targets(target)
    return acts, trace.grad(layer), targets


def grad_cam(model, x, target=None, layer: str | None = None, output: int | str | None = None,
             relu: bool = True) -> np.ndarray:
    """Grad-CAM maps (N, h, w) at `layer` (default: the last Conv2d).

    Each channel is weighted by its mean gradient: map = ReLU(sum_c mean_ij(dy/dA_c) A_c).
    For a GAP + Linear head at the pooled layer this is exactly the CAM (with relu=False).
    """
    acts, grads, _ = layer_gradients(model, x, layer, target, output)
    weights = grads.mean((2, 3))  # (N, C)
    maps = np.einsum("nc,nchw->nhw", weights, acts)
    return np.maximum(maps, 0) if relu else maps


def grad_cam_pp(model, x, target=None, layer: str | None = None,
                output: int | str | None = None) -> np.ndarray:
    """Grad-CAM++ maps (N, h, w): channel weights sum_ij alpha_ij ReLU(dy/dA_ij), with the
    closed-form alpha of Chattopadhay et al. (exp score), which favours several object parts."""
    acts, grads, _ = layer_gradients(model, x, layer, target, output)
    g2, g3 = grads ** 2, grads ** 3
    sum_a = acts.sum((2, 3), keepdims=True)  # (N, C, 1, 1)
    denom = 2 * g2 + sum_a * g3
    alpha = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
    weights = (alpha * np.maximum(grads, 0)).sum((2, 3))  # (N, C)
    return np.maximum(np.einsum("nc,nchw->nhw", weights, acts), 0)


def input_gradients(model, x, target=None, output: int | str | None = None):
    """(d logit[t] / dx (N, C, H, W), targets) for images x."""
    trace = Trace(model, x, output=output)
    targets = trace.backward_from_targets(target)
    return trace.input_grad(), targets


def saliency(model, x, target=None, output: int | str | None = None) -> np.ndarray:
    """Saliency maps (N, H, W): |d logit[t] / dx|, the largest over colour channels."""
    grads, _ = input_gradients(model, x, target, output)
    return np.abs(grads).max(1)


def smooth_grad(model, x, target=None, output: int | str | None = None, samples: int = 25,
                noise: float = 0.15) -> np.ndarray:
    """SmoothGrad maps (N, H, W): saliency averaged over `samples` noisy copies of each image.

    The noise std is `noise` times each image's value range; the target is fixed by the clean
    image, so noise cannot switch the explained class. Uses tinygrad_edu.random's generator.
    """
    x = as_batch(x)
    if target is None:
        target = predict(model, x, output).argmax(1)
    sigma = noise * (x.max((1, 2, 3)) - x.min((1, 2, 3)))[:, None, None, None]  # (N, 1, 1, 1)
    total = np.zeros(x.shape, np.float64)
    for _ in range(samples):
        noisy = x + sigma * get_rng().standard_normal(x.shape).astype(np.float32)
        grads, _ = input_gradients(model, noisy, target, output)
        total += grads
    return np.abs(total / samples).max(1)


# ---- from maps to pictures -------------------------------------------------------------------

def normalize(maps, eps: float = 1e-8) -> np.ndarray:
    """Scale each map (..., H, W) to [0, 1] by its own min and max; a constant map gives zeros."""
    m = np.asarray(maps, np.float64)
    lo = m.min((-2, -1), keepdims=True)
    hi = m.max((-2, -1), keepdims=True)
    return (m - lo) / (hi - lo + eps)


def upsample(maps, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of maps (N, h, w) to (N, H, W), e.g. a 7x7 Grad-CAM to the 28x28 input."""
    height, width = size
    return np.stack([np.asarray(Image.fromarray(np.asarray(m, np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR)) for m in maps])


def overlay_maps(x, maps, alpha: float = 0.5) -> list[np.ndarray]:
    """One (H, W, 3) uint8 picture per image: the normalised map in jet over the image."""
    x = as_batch(x)
    if len(maps) != len(x):
        raise VizError(f"overlay_maps: {len(maps)} maps for {len(x)} images")
    heat = upsample(normalize(maps), x.shape[2:])
    return [overlay(to_uint8(img, normalize=True), h, alpha) for img, h in zip(x, heat)]


def heat_images(maps, size: tuple[int, int]) -> np.ndarray:
    """The maps alone, normalised and upsampled to `size`: (N, H, W) floats in [0, 1]."""
    return np.clip(upsample(normalize(maps), size), 0.0, 1.0)


METHODS = {
    "cam": cam,
    "gradcam": grad_cam,
    "gradcam++": grad_cam_pp,
    "saliency": saliency,
    "smoothgrad": smooth_grad,
}
