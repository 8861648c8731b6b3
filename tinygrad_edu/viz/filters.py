"""What does a filter respond to? Gradient ascent on the input, and the raw first-layer weights.

`visualize_filters` starts from a blank (grey: zero in the network's normalised input space)
or noisy image and climbs the gradient of one channel's activation (Erhan et al. 2009), with the
regularisers of Yosinski et al. 2015 that keep the image natural instead of high-frequency
noise: gradient normalisation, L2 decay, random jitter, periodic Gaussian blur and total
variation. All channels are optimised together, one image per channel in a batch.

The objective is, by default, the channel's activation at the centre of the feature map
("center"): the mean over all positions ("mean") is a linear function of the image for a first
conv layer, so its ascent from a blank image only paints a flat block of the kernel's sign; the
centre unit draws the pattern its receptive field responds to, on every conv layer.

    images, history = visualize_filters(model, "features.conv2", input_shape=(1, 28, 28))
    fig = plot_filters(images, title="conv2")
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..random import get_rng
from .activations import (
    Trace,
    VizError,
    conv_layer_names,
    default_layer,
    feature_layer_output,
    framework_of,
)
from .pictures import plot_filters, plot_weights
from .plotting import to_array


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, round(2 * sigma))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Blur images (N, C, H, W) with a separable Gaussian of std `sigma` (reflected borders)."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(x, pad, mode="reflect")
        size = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(i, i + size), axis=axis) for i, w in enumerate(k))
    return x


def total_variation_grad(x: np.ndarray) -> np.ndarray:
    """Gradient of the squared total variation sum (x[i+1] - x[i])^2 over both image axes."""
    g = np.zeros_like(x)
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W)
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1)
    g[:, :, 1:, :] += 2 * dy
    g[:, :, :-1, :] -= 2 * dy
    g[:, :, :, 1:] += 2 * dx
    g[:, :, :, :-1] -= 2 * dx
    return g


OBJECTIVES = ("center", "mean")


def channel_objective(model, x: np.ndarray, layer: str, channels: np.ndarray,
                      objective: str = "center") -> tuple[np.ndarray, np.ndarray]:
    """(activation of channel channels[k] in image k, its gradient w.r.t. the images): at the
    centre of the feature map, or its mean over all positions."""
    trace = Trace(model, x, retain=[layer])
    acts = feature_layer_output(trace, layer, "visualize_filters")  # (K, C, h, w)
    k = np.arange(len(channels))
    seed = np.zeros_like(acts)
    if objective == "center":
        i, j = acts.shape[2] // 2, acts.shape[3] // 2
        seed[k, channels, i, j] = 1.0  # d A[k, c_k, i, j] / dA
        value = acts[k, channels, i, j]
    else:
        seed[k, channels] = 1.0 / (acts.shape[2] * acts.shape[3])  # d mean(A[k, c_k]) / dA
        value = acts[k, channels].mean((1, 2))
    trace.backward(seed, layer=layer)
    return value, trace.input_grad()


def _start_images(start: str, shape: tuple, noise: float) -> np.ndarray:
    if start == "blank":
        return np.zeros(shape, np.float32)
    if start == "noise":
        return (noise * get_rng().standard_normal(shape)).astype(np.float32)
    raise VizError(f"visualize_filters: start must be 'blank' or 'noise', got {start!r}")


def visualize_filters(model, layer: str | None = None, channels: Sequence[int] | None = None,
                      input_shape: Sequence[int] = (1, 28, 28), steps: int = 100,
                      lr: float = 0.1, start: str = "blank", noise: float = 0.1,
                      objective: str = "center",
                      l2: float = 1e-3, jitter: int | None = None, blur_every: int = 4,
                      blur_sigma: float = 0.5, tv: float = 0.02,
                      value_range: tuple[float, float] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Images (K, C, H, W) that maximise each chosen channel's activation at `layer`.

    `start`: "blank" (a grey image) or "noise" (std `noise`); `objective`: "center" or "mean"
    (see the module's docstring). Each step moves by `lr` times the gradient scaled to unit mean magnitude (so `lr` is in input
    units), computed on a copy jittered by up to `jitter` pixels; then decays by `l2`, blurs every
    `blur_every` steps, subtracts `tv` times the total-variation gradient and clips to
    `value_range`. Returns the images and the activation history (K, steps + 1).
    The jitter follows the image size (default: size // 32 pixels, at least 1; 64x64: 2). Blur
    keeps the patterns smooth at some cost in activation; blur_every=0 reaches larger
    activations with noisier images (total variation `tv` then does the smoothing).
    """
    layer = layer or default_layer(model)
    if objective not in OBJECTIVES:
        raise VizError(f"visualize_filters: objective must be one of {OBJECTIVES}, got "
                       f"{objective!r}")
    jitter = max(1, max(input_shape[-2:]) // 32) if jitter is None else jitter
    probe = Trace(model, np.zeros((1, *input_shape), np.float32), grad=False)
    count = feature_layer_output(probe, layer, "visualize_filters").shape[1]
    channels = np.asarray(list(range(count) if channels is None else channels), np.int64)
    if channels.size == 0 or channels.min() < 0 or channels.max() >= count:
        raise VizError(f"visualize_filters: layer {layer!r} has channels 0..{count - 1}, "
                       f"got {channels.tolist()}")
    rng = get_rng()
    x = _start_images(start, (len(channels), *input_shape), noise)
    history = []
    for step in range(steps):
        shift = tuple(rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        act, g = channel_objective(model, np.roll(x, shift, axis=(2, 3)), layer, channels,
                                   objective)
        history.append(act)
        g = np.roll(g, (-shift[0], -shift[1]), axis=(2, 3))
        g = g / (np.abs(g).mean((1, 2, 3), keepdims=True) + 1e-8)  # unit mean step per image
        if tv:
            g = g - tv * total_variation_grad(x)
        x = (x + lr * g) * (1 - l2)
        if blur_every and (step + 1) % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        if value_range is not None:
            x = np.clip(x, *value_range)
        x = x.astype(np.float32)
    history.append(channel_objective(model, x, layer, channels, objective)[0])
    return x, np.stack(history, 1)  # (K, C, H, W), (K, steps + 1)


def filter_grid(images, nrow: int = 8, title: str = "") -> np.ndarray:
    """`plot_filters` of images from `visualize_filters` as an (H, W, 3) uint8 array."""
    return to_array(plot_filters(images, title, nrow))


def conv_weights(model, layer: str | None = None) -> np.ndarray:
    """The weights (OC, IC, KH, KW) of Conv2d `layer` (default: the first Conv2d)."""
    convs = conv_layer_names(model)
    if not convs:
        raise VizError(f"{type(model).__name__} has no Conv2d layer whose weights to show")
    layer = convs[0] if layer is None else layer
    if layer not in convs:
        raise VizError(f"{layer!r} is not a Conv2d layer of {type(model).__name__}; conv "
                       f"layers: {', '.join(convs)}")
    return framework_of(model).numpy(dict(model.named_modules())[layer].weight)


def weight_grid(weights, title: str = "") -> np.ndarray:
    """`plot_weights` of conv weights (OC, IC, KH, KW) as an (H, W, 3) uint8 array."""
    return to_array(plot_weights(weights, title))
