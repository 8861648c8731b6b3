"""Image helpers on numpy arrays: uint8 conversion, colour maps, overlays, grids, heat maps, PNG.

Everything returns (H, W, 3) uint8 RGB arrays, the format TensorBoard and PNG files want. Images
may be HW (grayscale), CHW or HWC with 1 or 3 channels, uint8 in [0, 255] or float in [0, 1].
Text is drawn with Pillow's default font, so no font files or matplotlib are needed.
"""
from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

Colormap = Callable[[np.ndarray], np.ndarray]


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

def _colormap(x, positions: Sequence[float], colors: Sequence[Sequence[float]]) -> np.ndarray:
    """Piecewise-linear colour map through ``colors`` (RGB in [0, 1]) placed at ``positions``."""
    x = _array(x).astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("colour map: input has NaN or inf values; a colour map needs finite "
                         "values in [0, 1] (check the heat map for a division by zero)")
    x = np.clip(x, 0.0, 1.0)
    colors = np.asarray(colors, dtype=np.float64)  # (stops, 3)
    rgb = np.stack([np.interp(x, positions, colors[:, i]) for i in range(3)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)  # (..., 3)


def jet(x) -> np.ndarray:
    """The 'jet' colour map (dark blue -> cyan -> yellow -> dark red): (...) -> (..., 3) uint8.

    Values are clipped to [0, 1]; NaN or inf raise.
    """
    return _colormap(x, (0.0, 0.11, 0.34, 0.65, 0.89, 1.0),
                     ((0, 0, 0.5), (0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0), (0.5, 0, 0)))


def blues(x) -> np.ndarray:
    """A white -> dark blue colour map for heat maps with printed values: (...) -> (..., 3)."""
    return _colormap(x, (0.0, 0.5, 1.0),
                     ((0.97, 0.98, 1.0), (0.42, 0.68, 0.84), (0.03, 0.19, 0.42)))


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


# ---- text -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font: 12 px if Pillow has FreeType (size 10 hides spaces), else bitmap."""
    return ImageFont.load_default(size=12) if features.check("freetype2") else ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    """(width, height) of ``text`` in the default font."""
    left, top, right, bottom = _font().getbbox(text)
    return right - left, bottom - top


def _draw_text(draw: ImageDraw.ImageDraw, center: tuple[float, float], text: str,
               fill: tuple[int, int, int]) -> None:
    """Draw ``text`` centred on ``center``."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=_font())
    xy = (center[0] - (left + right) / 2, center[1] - (top + bottom) / 2)
    draw.text(xy, text, font=_font(), fill=fill)


def _draw_vertical_text(img: Image.Image, center: tuple[float, float], text: str,
                        fill: tuple[int, int, int]) -> None:
    """Draw ``text`` rotated 90 degrees (reading bottom to top) centred on ``center``."""
    w, h = _text_size(text)
    mask = Image.new("L", (w + 4, h + 4))
    _draw_text(ImageDraw.Draw(mask), ((w + 4) / 2, (h + 4) / 2), text, fill=255)
    mask = mask.rotate(90, expand=True)
    xy = (round(center[0] - mask.width / 2), round(center[1] - mask.height / 2))
    img.paste(Image.new("RGB", mask.size, fill), xy, mask)


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

    ``captions`` (one string per image) are drawn below each image; ``normalize`` min-max scales
    each image on its own; ``scale`` enlarges images by an integer factor (nearest neighbour).
    >>> make_grid(np.random.rand(16, 1, 28, 28), nrow=4).shape
    (122, 122, 3)
    """
    tiles = _as_image_list(images, normalize)
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"make_grid: got {len(captions)} captions for {len(tiles)} images")
    if scale != 1:
        tiles = [t.repeat(scale, axis=0).repeat(scale, axis=1) for t in tiles]
    h, w = tiles[0].shape[:2]
    caption_h = 0 if captions is None else max(_text_size(c)[1] for c in captions) + 4
    cell_w = w if captions is None else max(w, max(_text_size(c)[0] for c in captions) + 2)
    cols = min(nrow, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    grid = Image.new("RGB", (padding + cols * (cell_w + padding),
                             padding + rows * (h + caption_h + padding)), (pad_value,) * 3)
    draw = ImageDraw.Draw(grid)
    text_fill = (255, 255, 255) if pad_value < 128 else (0, 0, 0)
    for i, tile in enumerate(tiles):
        x = padding + (i % cols) * (cell_w + padding)
        y = padding + (i // cols) * (h + caption_h + padding)
        grid.paste(Image.fromarray(tile), (x + (cell_w - w) // 2, y))
        if captions is not None:
            _draw_text(draw, (x + cell_w / 2, y + h + caption_h / 2), captions[i], text_fill)
    return np.asarray(grid)


def _format(value: float, fmt: str) -> str:
    """Format one cell value; integer formats ('d') accept float counts."""
    return format(round(value) if fmt.endswith("d") else value, fmt)


def heatmap_image(matrix, labels: Sequence[str] | None = None, title: str = "",
                  fmt: str = ".2f", xlabel: str = "predicted", ylabel: str = "true",
                  cmap: Colormap = blues, vmin: float | None = None,
                  vmax: float | None = None) -> np.ndarray:
    """Render a 2-D matrix as an annotated heat map: (H, W, 3) uint8, value printed in each cell.

    Made for confusion matrices: rows are labelled ``ylabel`` ("true"), columns ``xlabel``
    ("predicted"). ``labels`` name both the rows and the columns (default: indices). Colours span
    [vmin, vmax], by default the matrix's own range.
    >>> heatmap_image(cm_probs, labels=class_names, title="test", vmin=0, vmax=1)
    """
    m = _array(matrix).astype(np.float64)
    if m.ndim != 2:
        raise ValueError(f"heatmap_image: expected a 2-D matrix, got shape {m.shape}")
    rows, cols = m.shape
    if labels is None:
        row_labels, col_labels = [str(i) for i in range(rows)], [str(j) for j in range(cols)]
    elif len(labels) == rows == cols:
        row_labels = col_labels = [str(s) for s in labels]
    else:
        raise ValueError(f"heatmap_image: {len(labels)} labels for a {rows}x{cols} matrix; "
                         f"labels name both axes, so the matrix must be square with one per row")
    vmin = m.min() if vmin is None else vmin
    vmax = m.max() if vmax is None else vmax
    colors = cmap((m - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(m))  # (R, C, 3)
    texts = [[_format(v, fmt) for v in row] for row in m]

    # Layout: sizes of the parts, then their positions.
    pad = 6
    text_h = _text_size("0123456789Ag")[1]
    cell = max(24, text_h + 2 * pad, max(_text_size(t)[0] for r in texts for t in r) + 2 * pad)
    row_label_w = max(_text_size(s)[0] for s in row_labels)
    col_label_len = max(_text_size(s)[0] for s in col_labels)
    vertical_cols = col_label_len > cell - 4
    col_label_h = col_label_len if vertical_cols else text_h
    grid_x = pad + text_h + pad + row_label_w + pad
    grid_y = pad + (text_h + pad if title else 0)
    width = max(grid_x + cols * cell + pad, _text_size(title)[0] + 2 * pad)
    height = grid_y + rows * cell + pad + col_label_h + pad + text_h + pad

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    black = (0, 0, 0)
    if title:  # centred over the grid, but kept inside the image
        half = _text_size(title)[0] / 2 + pad
        center_x = min(max(grid_x + cols * cell / 2, half), width - half)
        _draw_text(draw, (center_x, pad + text_h / 2), title, black)
    for i in range(rows):
        for j in range(cols):
            x, y = grid_x + j * cell, grid_y + i * cell
            rgb = tuple(int(c) for c in colors[i, j])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=rgb)
            luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
            ink = black if luminance > 140 else (255, 255, 255)
            _draw_text(draw, (x + cell / 2, y + cell / 2), texts[i][j], ink)
    for i, s in enumerate(row_labels):
        x = grid_x - pad - _text_size(s)[0] / 2
        _draw_text(draw, (x, grid_y + (i + 0.5) * cell), s, black)
    labels_y = grid_y + rows * cell + pad + col_label_h / 2
    for j, s in enumerate(col_labels):
        center = (grid_x + (j + 0.5) * cell, labels_y)
        if vertical_cols:
            _draw_vertical_text(img, center, s, black)
        else:
            _draw_text(draw, center, s, black)
    _draw_text(draw, (grid_x + cols * cell / 2, height - pad - text_h / 2), xlabel, black)
    _draw_vertical_text(img, (pad + text_h / 2, grid_y + rows * cell / 2), ylabel, black)
    return np.asarray(img)


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
