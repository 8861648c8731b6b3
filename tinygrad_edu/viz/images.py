"""Image helpers on numpy arrays: uint8 conversion, colour maps, overlays, grids, PNG files.

Everything returns (H, W, 3) uint8 RGB arrays, the format TensorBoard and PNG files want. Images
may be HW (grayscale), CHW or HWC with 1 or 3 channels, uint8 in [0, 255] or float in [0, 1].
Colour maps are matplotlib's; captioned grids and heat maps are matplotlib figures
(`viz.plot_images`, `viz.plot_confusion_matrix`) rendered to arrays. matplotlib is imported
only by the functions that draw, so `import tinygrad_edu` stays fast.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image


def _array(x) -> np.ndarray:
    """The numpy array behind a Tensor, list or array."""
    return np.asarray(getattr(x, "data", x))


def to_uint8(image, normalize: bool = False) -> np.ndarray:
    """Convert to uint8: floats in [0, 1] are scaled by 255 and clipped, uint8 is kept.

    ``normalize=True`` first min-max scales the array to [0, 1] (for normalised network inputs).
    """
    a = _array(image)
    if normalize:
        a = a.astype(np.float64)
        lo, hi = a.min(), a.max()
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    return np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)


def to_rgb(image, normalize: bool = False) -> np.ndarray:
    """One HW, CHW or HWC image (1 or 3 channels) -> (H, W, 3) uint8.

    A 3-D array with 1 or 3 leading channels is read as CHW, otherwise as HWC.
    """
    a = to_uint8(image, normalize)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if a.ndim == 2:
        a = a[:, :, None]  # (H, W) -> (H, W, 1)
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"to_rgb: expected an image of shape (H, W), (C, H, W) or (H, W, C) "
                         f"with C in (1, 3), got {a.shape}")
    return np.ascontiguousarray(np.broadcast_to(a, a.shape[:2] + (3,)))


# ---- colour maps: values in [0, 1] -> (..., 3) uint8 ------------------------------------------

def colormap(x, name: str) -> np.ndarray:
    """matplotlib's colour map `name` on values clipped to [0, 1]: (...) -> (..., 3) uint8.

    NaN or inf raise: a heat map with them hides a division by zero.
    """
    from matplotlib import colormaps

    x = _array(x).astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("colour map: input has NaN or inf values; a colour map needs finite "
                         "values in [0, 1] (check the heat map for a division by zero)")
    rgba = np.asarray(colormaps[name](np.clip(x, 0.0, 1.0), bytes=True))  # (..., 4) uint8
    return np.ascontiguousarray(rgba[..., :3])


def jet(x) -> np.ndarray:
    """The 'jet' colour map (dark blue -> cyan -> yellow -> dark red): (...) -> (..., 3) uint8."""
    return colormap(x, "jet")


def blues(x) -> np.ndarray:
    """matplotlib's 'Blues' (white -> dark blue), for confusion matrices: (...) -> (..., 3)."""
    return colormap(x, "Blues")


def overlay(image, heat, alpha: float = 0.5) -> np.ndarray:
    """Blend ``jet(heat)`` over an image, e.g. a CAM over its input: returns (H, W, 3) uint8.

    ``heat``: 2-D values in [0, 1]; resized bilinearly to the image size if needed.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    rgb = to_rgb(image)
    heat = _array(heat).astype(np.float32)
    if heat.ndim != 2:
        raise ValueError(f"overlay: expected a 2-D heat map (H, W), got shape {heat.shape}")
    h, w = rgb.shape[:2]
    if heat.shape != (h, w):
        heat = np.asarray(Image.fromarray(heat).resize((w, h), Image.Resampling.BILINEAR))
    blended = (1 - alpha) * rgb + alpha * jet(heat)
    return np.round(blended).astype(np.uint8)


# ---- grids and heat maps --------------------------------------------------------------------

def _as_image_list(images, normalize: bool) -> list[np.ndarray]:
    """A batch (B, H, W) / (B, C, H, W) / (B, H, W, C) or a list of images -> list of HxWx3."""
    if not isinstance(images, (list, tuple)):
        images = _array(images)
        if images.ndim not in (3, 4):
            raise ValueError(f"make_grid: expected a batch of shape (B, H, W), (B, C, H, W) or "
                             f"(B, H, W, C), or a list of images, got shape {images.shape}")
    rgb = [to_rgb(im, normalize) for im in images]
    if not rgb:
        raise ValueError("make_grid: got no images")
    if len({im.shape for im in rgb}) > 1:
        raise ValueError(f"make_grid: all images must have the same size, got "
                         f"{sorted({im.shape[:2] for im in rgb})}")
    return rgb


def make_grid(images, nrow: int = 8, padding: int = 2, captions: Sequence[str] | None = None,
              normalize: bool = False, scale: int = 1, pad_value: int = 0) -> np.ndarray:
    """Tile images into one (H, W, 3) uint8 picture, ``nrow`` images per row, like torchvision's.

    ``normalize`` min-max scales each image on its own; ``scale`` enlarges images by an integer
    factor (nearest neighbour). With ``captions`` (one string per image) the grid is drawn by
    matplotlib (`viz.plot_images`, a caption above each image) and rendered to an array.
    >>> make_grid(np.random.rand(16, 1, 28, 28), nrow=4).shape
    (122, 122, 3)
    """
    tiles = _as_image_list(images, normalize)
    if captions is not None:
        if len(captions) != len(tiles):
            raise ValueError(f"make_grid: got {len(captions)} captions for {len(tiles)} images")
        from .pictures import plot_images
        from .plotting import to_array
        return to_array(plot_images(tiles, captions, ncols=nrow, normalize=False))
    if scale != 1:
        tiles = [t.repeat(scale, axis=0).repeat(scale, axis=1) for t in tiles]
    h, w = tiles[0].shape[:2]
    cols = min(nrow, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((padding + rows * (h + padding), padding + cols * (w + padding), 3), pad_value,
                   np.uint8)
    for i, tile in enumerate(tiles):
        y, x = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[y:y + h, x:x + w] = tile
    return grid


def heatmap_image(matrix, labels: Sequence[str] | None = None, title: str = "",
                  fmt: str = ".2f", xlabel: str = "predicted", ylabel: str = "true",
                  cmap: str = "Blues", vmin: float | None = None,
                  vmax: float | None = None) -> np.ndarray:
    """A confusion matrix drawn by `viz.plot_confusion_matrix`, as an (H, W, 3) uint8 array.

    Rows are labelled ``ylabel`` ("true"), columns ``xlabel`` ("predicted"); ``labels`` name
    both (default: indices). Colours span [vmin, vmax], by default the matrix's own range.
    >>> heatmap_image(cm_probs, labels=class_names, title="test", vmin=0, vmax=1)
    """
    from .figures import plot_confusion_matrix
    from .plotting import to_array

    m = _array(matrix).astype(np.float64)
    if m.ndim != 2:
        raise ValueError(f"heatmap_image: expected a 2-D matrix, got shape {m.shape}")
    if labels is not None and not len(labels) == m.shape[0] == m.shape[1]:
        raise ValueError(f"heatmap_image: {len(labels)} labels for a {m.shape[0]}x{m.shape[1]} "
                         f"matrix; labels name both axes, so the matrix must be square with one "
                         f"per row")
    return to_array(plot_confusion_matrix(m, labels, title, fmt, xlabel, ylabel, cmap,
                                          m.min() if vmin is None else vmin,
                                          m.max() if vmax is None else vmax))


def save_png(path: str | os.PathLike, image) -> None:
    """Write an image (any layout ``to_rgb`` accepts) to a PNG file atomically."""
    rgb = to_rgb(image)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".png.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(rgb).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
