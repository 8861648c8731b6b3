"""Figures of images: captioned grids, CAM overlays, activation maps, filters and weights.

Each function returns a matplotlib Figure (see `viz.plotting`). Tiles are drawn at a fixed size
in inches whatever the map's resolution, so a 4x4 activation map is as large as a 28x28 one,
and each tile carries its caption (channel number, class, method) in a legible font.

    fig = viz.plot_activations(viz.layer_activations(model, x, "features.conv2")[0],
                               title="conv2 of image 0")
    fig = viz.plot_cam(x, viz.grad_cam(model, x), captions=["7", "2", "1"])
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .cam import normalize as normalize_maps
from .images import to_rgb
from .plotting import new_figure, to_array

TILE = 1.3  # inches per image tile


def draw_image(ax, image, normalize: bool = True, cmap: str = "gray") -> None:
    """Show one HW, CHW or HWC image on `ax` without ticks; floats are min-max scaled."""
    a = np.asarray(getattr(image, "data", image))
    if a.dtype != np.uint8 and normalize:
        a = a.astype(np.float64)
        lo, hi = a.min(), a.max()
        a = (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)
    rgb = to_rgb(a)
    if a.ndim == 2 or (a.ndim == 3 and 1 in (a.shape[0], a.shape[-1])):
        ax.imshow(rgb[:, :, 0], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(count: int, ncols: int, tile: float, caption_lines: int, title: bool):
    """A figure with `count` image axes, `ncols` per row; unused cells are hidden."""
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    fig = new_figure(ncols * tile + 0.3, nrows * (tile + 0.17 * caption_lines) + 0.3 + 0.4 * title)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def plot_images(images, captions: Sequence[str] | None = None, ncols: int = 8,
                title: str = "", normalize: bool = True, cmap: str = "gray",
                tile: float = TILE) -> Figure:
    """A grid of images (a batch (B, ...) or a list), each with its caption above it."""
    images = list(images)
    if not images:
        raise ValueError("plot_images: got no images")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"plot_images: got {len(captions)} captions for {len(images)} images")
    if captions is not None:  # wrapped to the tile's width: 8 pt fits ~15 characters an inch
        captions = ["\n".join(textwrap.fill(line, max(8, int(tile * 15)))
                              for line in str(c).split("\n")) for c in captions]
    lines = 0 if captions is None else max(c.count("\n") + 1 for c in captions)
    fig, axes = _grid(len(images), ncols, tile, lines, bool(title))
    for i, (ax, image) in enumerate(zip(axes, images)):
        draw_image(ax, image, normalize, cmap)
        if captions is not None:
            ax.set_title(str(captions[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def _overlay_axes(ax, heat: np.ndarray, alpha: float) -> None:
    """The normalised map in jet over the image already drawn on `ax`, stretched to its size."""
    h, w = ax.images[0].get_array().shape[:2]
    ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
              interpolation="bilinear")


def plot_cam(images, maps, captions: Sequence[str] | None = None, alpha: float = 0.5,
             title: str = "", ncols: int = 8) -> Figure:
    """Each image with its map (CAM, Grad-CAM, saliency...) in jet over it, and a colour bar.

    `images` (N, C, H, W) or (N, H, W); `maps` (N, h, w), each scaled to [0, 1] on its own and
    stretched over its image.
    """
    images, maps = list(images), normalize_maps(maps)
    if len(maps) != len(images):
        raise ValueError(f"plot_cam: {len(maps)} maps for {len(images)} images")
    fig = plot_images(images, captions, ncols=ncols, title=title)
    for ax, heat in zip(fig.axes, maps):
        _overlay_axes(ax, heat, alpha)
    _colorbar(fig, "relative importance (per image)")
    return fig


def plot_cam_comparison(images, maps: Mapping[str, np.ndarray],
                        captions: Sequence[str] | None = None, alpha: float = 0.5,
                        title: str = "") -> Figure:
    """Rows: the input, then one row per method (e.g. {"CAM": ..., "Grad-CAM": ...});
    columns: images. The input row carries `captions`, the others their method's name."""
    images = list(images)
    tiles, names = list(images), list(captions or [""] * len(images))
    for method in maps:
        tiles += images
        names += [method] * len(images)
    fig = plot_images(tiles, names, ncols=len(images), title=title)
    heat = [h for m in maps.values() for h in normalize_maps(m)]  # methods' sizes may differ
    for ax, h in zip(fig.axes[len(images):], heat):
        _overlay_axes(ax, h, alpha)
    _colorbar(fig, "relative importance (per image)")
    return fig


def _colorbar(fig: Figure, label: str, mappable=None) -> None:
    """A colour bar beside all of `fig`'s axes (jet on [0, 1] by default), the figure widened
    by an inch to hold it: the tiles keep their size."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    fig.set_figwidth(fig.get_figwidth() + 1.0)
    mappable = mappable or ScalarMappable(Normalize(0, 1), "jet")
    fig.colorbar(mappable, ax=fig.axes, shrink=0.6, label=label)


def plot_activations(activations, title: str = "", ncols: int = 8, per_channel: bool = True,
                     cmap: str = "viridis") -> Figure:
    """Every channel of one image's activations (C, H, W), captioned with its number.

    `per_channel` scales each channel to its own range (every pattern shows); otherwise one
    scale for the whole layer (which channels fire most), with a colour bar.
    """
    a = np.asarray(getattr(activations, "data", activations), np.float64)
    if a.ndim != 3:
        raise ValueError(f"plot_activations: expected one image's activations (C, H, W), got "
                         f"shape {a.shape}; index the batch first, e.g. acts[0]")
    captions = [f"ch {c}" for c in range(len(a))]
    fig = plot_images(list(a), captions, ncols=ncols, title=title, normalize=per_channel,
                      cmap=cmap, tile=1.1)
    if not per_channel:
        lo, hi = a.min(), a.max()
        for ax, channel in zip(fig.axes, a):
            ax.images[0].set_data(channel)
            ax.images[0].set_clim(lo, hi)
        _colorbar(fig, "activation", fig.axes[0].images[0])
    return fig


def plot_filters(images, title: str = "", ncols: int = 8, captions=None,
                 weights=None, crop: bool = True) -> Figure:
    """Images from `visualize_filters` (K, C, H, W), captioned with their channel numbers.

    Each is scaled by its own largest |value| around zero, so the blank start (zero: the mean
    input) is the same mid grey in every tile and only what the ascent drew stands out.
    `crop` cuts away the border that stayed blank in every image (outside the units' receptive
    field: a first 7x7 conv draws on 9x9 pixels of a 28x28 image). For a first conv layer pass
    its `weights` (K, C, KH, KW): each image then has its filter beside it (`ncols` pairs a row).
    """
    images = np.asarray(images, np.float64)
    if crop:
        images = images[(..., *_drawn_box(images))]
    captions = list(captions or [f"ch {k}" for k in range(len(images))])
    tiles = [_around_zero(im) for im in images]
    if weights is not None:
        weights = np.asarray(weights, np.float64)
        if len(weights) != len(images) or weights.shape[1] != images.shape[1]:
            raise ValueError(f"plot_filters: weights {weights.shape} do not match the images "
                             f"{images.shape} (one filter per image, same input channels)")
        tiles = [t for pair in zip(tiles, map(_around_zero, weights)) for t in pair]
        captions = [c for pair in zip(captions, [f"w {k}" for k in range(len(images))])
                    for c in pair]
        ncols *= 2
    return plot_images(tiles, captions, ncols=ncols, title=title, normalize=False)


def _drawn_box(images: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns where some image of (K, C, H, W) is more than 10% of its largest |value|
    away from zero, plus a pixel of margin; everything when nothing was drawn."""
    limit = np.abs(images).max(axis=(1, 2, 3), keepdims=True)
    drawn = (np.abs(images) > 0.1 * np.where(limit > 0, limit, np.inf)).any(axis=(0, 1))
    if not drawn.any():
        return slice(None), slice(None)
    rows, cols = np.where(drawn.any(1))[0], np.where(drawn.any(0))[0]
    h, w = drawn.shape
    return (slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)),
            slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w)))


def _around_zero(a: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] with zero at 0.5, by the largest |value| (a zero array stays grey)."""
    limit = np.abs(a).max()
    return 0.5 + a / (2 * limit) if limit > 0 else np.full_like(a, 0.5)


def plot_weights(weights, title: str = "") -> Figure:
    """Conv weights (OC, IC, KH, KW): one tile per filter for 1 or 3 input channels (RGB), else
    one row per filter with a tile per input channel; blue negative, red positive."""
    w = np.asarray(weights, np.float64)
    if w.ndim != 4:
        raise ValueError(f"plot_weights: expected conv weights (OC, IC, KH, KW), got {w.shape}")
    oc, ic = w.shape[:2]
    if ic == 3:
        return plot_images(list(w), [f"filter {o}" for o in range(oc)], title=title, tile=1.0)
    tiles = w.reshape(oc * ic, *w.shape[2:])  # (OC, IC, KH, KW) -> (OC*IC, KH, KW)
    captions = [f"f{o}" + (f" in {i}" if ic > 1 else "") for o in range(oc) for i in range(ic)]
    fig = plot_images(list(tiles), captions, ncols=8 if ic == 1 else ic, title=title, tile=0.9)
    limit = np.abs(w).max() or 1.0
    for ax, tile in zip(fig.axes, tiles):
        ax.images[0].set_data(tile)
        ax.images[0].set(cmap="RdBu_r", clim=(-limit, limit))
    _colorbar(fig, "weight", fig.axes[0].images[0])
    return fig


# ---- the same figures as (H, W, 3) uint8 arrays, for TensorBoard and PNG files -----------------

def activation_grid(activations, nrow: int = 8, per_channel: bool = True,
                    title: str = "") -> np.ndarray:
    """`plot_activations` rendered to an (H, W, 3) uint8 array."""
    return to_array(plot_activations(activations, title, nrow, per_channel))
