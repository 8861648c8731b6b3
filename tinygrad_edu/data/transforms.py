"""Image transforms like torchvision's, on numpy arrays: one image, or a whole batch at once.

`t(image)` transforms one image; `t.batch(images)` transforms an array of images (N, ...) in one
vectorised call, which is how the DataLoader's fast path and `ArrayDataset` use them. Random
transforms draw from `tinygrad_edu.random.get_rng()`, so `manual_seed` makes them repeatable.

    transform = Compose([ToTensor(), Normalize((0.1307,), (0.3081,))])
    x = transform(image_uint8_28x28)       # (1, 28, 28) float32
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..random import get_rng


class Transform:
    """Base class: `__call__` maps one image, `batch` maps (N, ...) images the same way.

    `random` says whether the result changes from call to call; deterministic transforms can be
    applied once to a whole data set (see `split_static`).
    """
    random = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def batch(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define batch")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order; any callable may take part, but only Transforms batch."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    @property
    def random(self) -> bool:
        """Plain callables count as random: nothing says they are not."""
        return any(getattr(t, "random", True) for t in self.transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def batch(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            if not can_batch(t):
                raise TypeError(f"Compose.batch: {t!r} is not a Transform, so it cannot transform "
                                "a batch; apply it per image or write it as a Transform")
            x = t.batch(x)
        return x


class ToTensor(Transform):
    """uint8 (H, W) or (H, W, C) image -> float32 (C, H, W) in [0, 1]; batches (N, H, W[, C]).

    PIL images are accepted too. Other dtypes are converted to float32 without scaling.
    """

    def __call__(self, img) -> np.ndarray:
        x = np.asarray(img)
        if x.ndim == 2:
            x = x[None]                                 # (1, H, W)
        elif x.ndim == 3:
            x = x.transpose(2, 0, 1)                    # (H, W, C) -> (C, H, W)
        else:
            raise ValueError(f"ToTensor: expected one image (H, W) or (H, W, C), got shape "
                             f"{x.shape}; use ToTensor().batch for (N, H, W[, C]) batches")
        return _to_float(x)

    def batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[:, None]                              # (N, 1, H, W)
        elif x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)                 # (N, H, W, C) -> (N, C, H, W)
        else:
            raise ValueError(f"ToTensor.batch: expected images (N, H, W) or (N, H, W, C), got "
                             f"shape {x.shape}")
        return _to_float(x)


class Normalize(Transform):
    """(x - mean) / std per channel, on (C, H, W) images or (N, C, H, W) batches."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(mean), tuple(std)
        if len(self.mean) != len(self.std) or not all(s != 0 for s in self.std):
            raise ValueError(f"Normalize: need one mean and one non-zero std per channel, got "
                             f"mean={self.mean}, std={self.std}")
        self._mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)     # (C, 1, 1)
        self._inv_std = 1 / np.asarray(self.std, np.float32).reshape(-1, 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _check_array(x, self)
        channels = x.shape[-3] if x.ndim >= 3 else None
        if len(self.mean) not in (1, channels):
            raise ValueError(f"Normalize({len(self.mean)} channels): expected (C, H, W) or "
                             f"(N, C, H, W) with C={len(self.mean)}, got shape {x.shape}")
        out = np.subtract(x, self._mean, dtype=np.float32)
        return np.multiply(out, self._inv_std, out=out)    # in place: one pass less, one copy less

    batch = __call__


class RandomCrop(Transform):
    """Crop a random (size x size) window after zero-padding each side by `padding` pixels.

    Works on the last two axes: (C, H, W) images, or (N, C, H, W) batches with one window per image.
    """
    random = True

    def __init__(self, size: int | tuple[int, int], padding: int = 0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = self._pad(x)
        h, w = self.size
        i, j = get_rng().integers(0, x.shape[-2] - h + 1), get_rng().integers(0, x.shape[-1] - w + 1)
        return x[..., i:i + h, j:j + w].copy()

    def batch(self, x: np.ndarray) -> np.ndarray:
        x = self._pad(x)
        (h, w), n = self.size, len(x)
        i = get_rng().integers(0, x.shape[-2] - h + 1, size=n)
        j = get_rng().integers(0, x.shape[-1] - w + 1, size=n)
        windows = sliding_window_view(x, (h, w), axis=(-2, -1))  # (N, ..., H-h+1, W-w+1, h, w)
        return windows[np.arange(n), ..., i, j, :, :]            # (N, ..., h, w)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        _check_array(x, self)
        p = self.padding
        if p:
            x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])
        if x.shape[-2] < self.size[0] or x.shape[-1] < self.size[1]:
            raise ValueError(f"RandomCrop{self.size}: the padded image (..., {x.shape[-2]}, "
                             f"{x.shape[-1]}) is smaller than the crop")
        return x


class RandomHorizontalFlip(Transform):
    """Mirror the image left-right with probability `p` (each image of a batch on its own)."""
    random = True

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _check_array(x, self)
        return x[..., ::-1].copy() if get_rng().random() < self.p else x

    def batch(self, x: np.ndarray) -> np.ndarray:
        _check_array(x, self)
        flip = get_rng().random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, like torchvision's (without hue), on float
    RGB images in [0, 1]: put it after ToTensor and before Normalize.

    Each factor is drawn uniformly from [max(0, 1 - v), 1 + v] per image, and applied in the
    fixed order brightness, contrast, saturation (torchvision shuffles the order); results are
    clipped to [0, 1]. (C, H, W) images or (N, C, H, W) batches; saturation needs C = 3.
    """
    random = True
    GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as in PIL's "L" mode

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0):
        for name, v in (("brightness", brightness), ("contrast", contrast),
                        ("saturation", saturation)):
            if v < 0:
                raise ValueError(f"ColorJitter: {name} must be >= 0, got {v}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.batch(x[None])[0]

    def batch(self, x: np.ndarray) -> np.ndarray:
        _check_array(x, self)
        if x.ndim != 4 or (self.saturation and x.shape[1] != 3):
            raise ValueError(f"{self!r}: expected RGB images (N, 3, H, W) or (3, H, W), got "
                             f"shape {x.shape}")
        out = np.array(x, dtype=np.float32)
        if self.brightness:
            out *= self._factors(self.brightness, len(x))
        if self.contrast:
            mean = self._grey(out).mean(axis=(1, 2, 3), keepdims=True)   # (N, 1, 1, 1)
            out = _blend(out, mean, self._factors(self.contrast, len(x)))
        if self.saturation:
            out = _blend(out, self._grey(out), self._factors(self.saturation, len(x)))
        return np.clip(out, 0.0, 1.0, out=out)

    def _factors(self, v: float, n: int) -> np.ndarray:
        return get_rng().uniform(max(0.0, 1 - v), 1 + v, size=(n, 1, 1, 1)).astype(np.float32)

    def _grey(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, 1, H, W) luma (a one-channel image is its own grey)."""
        if x.shape[1] == 1:
            return x
        return np.einsum("nchw,c->nhw", x, self.GREY)[:, None]


class OneHot(Transform):
    """Class index -> one-hot float32 vector (num_classes,); a batch (N,) -> (N, num_classes).

    For `target_transform`: cross-entropy accepts these targets as well as class indices.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self._eye = np.eye(num_classes, dtype=np.float32)

    def __call__(self, y) -> np.ndarray:
        return self.batch(np.asarray(y))

    def batch(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= self.num_classes)):
            raise ValueError(f"OneHot({self.num_classes}): expected class indices in 0.."
                             f"{self.num_classes - 1}, got {y.dtype} values {np.unique(y)[:5]}")
        return self._eye[y]


def _blend(x: np.ndarray, other: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """factor * x + (1 - factor) * other: factor 0 gives `other`, 1 keeps x."""
    return factor * x + (1 - factor) * other


def can_batch(transform: Callable | None) -> bool:
    """True when `transform` (None counts) can transform a whole batch array at once."""
    if transform is None:
        return True
    if isinstance(transform, Compose):
        return all(can_batch(t) for t in transform.transforms)
    return isinstance(transform, Transform)


def split_static(transform: Callable | None) -> tuple[Transform | None, Callable | None]:
    """Split into (deterministic Transforms at the front, the rest), either may be None.

    The first part can be applied once to a whole data set; the rest must run on every access.
    """
    parts = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    parts = [t for t in parts if t is not None]
    k = 0
    while k < len(parts) and isinstance(parts[k], Transform) and not parts[k].random:
        k += 1
    return _compose(parts[:k]), _compose(parts[k:])


def _compose(parts: list) -> Callable | None:
    return None if not parts else parts[0] if len(parts) == 1 else Compose(parts)


def _check_array(x, transform: Transform) -> None:
    """Array transforms come after ToTensor (torchvision also lets them take PIL images)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{transform!r}: expected a numpy array (C, H, W) or (N, C, H, W), got "
                        f"{type(x).__name__}; put ToTensor() before it in Compose")


def _to_float(x: np.ndarray) -> np.ndarray:
    """float32, contiguous; uint8 is scaled to [0, 1] like torchvision's ToTensor."""
    if x.dtype == np.uint8:
        return np.divide(x, 255, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)
