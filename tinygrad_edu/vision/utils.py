"""`torchvision.utils`' face: make_grid and save_image with torchvision's arguments and values.

    grid = make_grid(images, nrow=8, normalize=True)   # (3, H', W') float Tensor
    save_image(reconstructions, "sample.png")
"""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from ..missing import module_getattr
from ..tensor import Tensor

__all__ = ["make_grid", "save_image"]


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0) -> Tensor:
    """Tile (B, C, H, W) images (or a list of (C, H, W)) into one (C, H', W') float Tensor,
    `nrow` per row; one-channel images become three. `normalize` min-max scales to [0, 1]
    (over all images, or each on its own with `scale_each`; `value_range` fixes the bounds)."""
    x = _batch(tensor)
    if normalize:
        x = x.copy()
        for img in (x if scale_each else [x]):
            lo, hi = value_range if value_range is not None else (img.min(), img.max())
            np.clip(img, lo, hi, out=img)
            img -= lo
            img /= max(hi - lo, 1e-5)
    if x.shape[0] == 1:
        return Tensor._wrap(np.ascontiguousarray(x[0]))
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    step_h, step_w = h + padding, w + padding
    grid = np.full((c, rows * step_h + padding, cols * step_w + padding), pad_value, x.dtype)
    for k in range(n):
        top, left = (k // cols) * step_h + padding, (k % cols) * step_w + padding
        grid[:, top:top + h, left:left + w] = x[k]
    return Tensor._wrap(grid)


def _batch(tensor) -> np.ndarray:
    """(B, 3 or C, H, W) float array from a Tensor, array or list of (C, H, W)."""
    if isinstance(tensor, (list, tuple)):
        x = np.stack([np.asarray(getattr(t, "data", t)) for t in tensor])
    else:
        x = np.asarray(getattr(tensor, "data", tensor))
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[:, None] if x.shape[0] != 1 and x.shape[0] != 3 else x[None]
    if x.ndim != 4:
        raise ValueError(f"make_grid: expected images (B, C, H, W), (C, H, W) or (H, W), got "
                         f"shape {x.shape}")
    if x.shape[1] == 1:
        x = np.concatenate([x, x, x], axis=1)
    return x.astype(np.float32) if x.dtype.kind != "f" else x


def save_image(tensor, fp, format: str | None = None, **grid_kwargs) -> None:
    """Write images (a batch is tiled by make_grid) to a PNG / JPEG file; values in [0, 1]."""
    grid = make_grid(tensor, **grid_kwargs).array
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    Image.fromarray(pixels).save(os.fspath(fp) if isinstance(fp, os.PathLike) else fp,
                                 format=format)


__getattr__ = module_getattr(__name__)
