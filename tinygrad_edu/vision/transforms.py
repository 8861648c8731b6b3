"""`torchvision.transforms`'s face: transforms that take PIL images or Tensors, as torchvision's.

ToTensor turns a PIL image (or uint8 array) into a float (C, H, W) Tensor in [0, 1]; the array
transforms of `tinygrad_edu.data.transforms` (Normalize, RandomHorizontalFlip, ColorJitter...)
then work on Tensors, and the geometric ones (Resize, CenterCrop, RandomCrop, Pad, Grayscale,
RandomRotation, RandomAffine, RandomResizedCrop) on PIL images, with Pillow's resampling as
torchvision's PIL backend does. Random parameters come from tinygrad_edu's generator
(`tg.manual_seed`), so they are repeatable but not the draws torch would make.

    from tinygrad_edu.vision import transforms
    tf = transforms.Compose([transforms.RandomCrop(28, padding=2), transforms.ToTensor()])
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from ..data import transforms as T
from ..missing import module_getattr
from ..random import get_rng
from ..tensor import Tensor
from .pil_transforms import (
    CenterCrop,
    Grayscale,
    InterpolationMode,
    Pad,
    RandomAffine,
    RandomCrop,
    RandomResizedCrop,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)

__all__ = [
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "ConvertImageDtype",
    "Grayscale",
    "InterpolationMode",
    "Lambda",
    "Normalize",
    "PILToTensor",
    "Pad",
    "RandomAffine",
    "RandomApply",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomVerticalFlip",
    "Resize",
    "ToPILImage",
    "ToTensor",
]

Compose = T.Compose


def on_tensor(fn: Callable, x, name: str):
    """Apply an array function to a Tensor (giving a Tensor) or to an array (giving an array)."""
    if isinstance(x, Tensor):
        return Tensor._wrap(np.ascontiguousarray(fn(x.array)))
    if isinstance(x, Image.Image):
        raise TypeError(f"{name}: expected a Tensor, got a PIL image; put ToTensor() before it "
                        f"in Compose")
    return fn(x)


class ToTensor(T.ToTensor):
    """PIL image or (H, W[, C]) array -> float32 (C, H, W) Tensor, uint8 scaled to [0, 1]."""

    def __call__(self, pic) -> Tensor:
        if isinstance(pic, Tensor):
            raise TypeError("ToTensor: pic should be a PIL Image or ndarray, got a Tensor")
        return Tensor._wrap(super().__call__(np.asarray(pic)))


class Normalize(T.Normalize):
    """(x - mean) / std per channel of a (C, H, W) Tensor."""

    def __call__(self, x):
        return on_tensor(super().__call__, x, "Normalize")


class RandomHorizontalFlip(T.RandomHorizontalFlip):
    """Mirror left-right with probability p: PIL images or (..., H, W) Tensors."""

    def __call__(self, x):
        if isinstance(x, Image.Image):
            flip = get_rng().random() < self.p
            return x.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else x
        return on_tensor(super().__call__, x, "RandomHorizontalFlip")


class ColorJitter(T.ColorJitter):
    """Random brightness / contrast / saturation of a (3, H, W) Tensor (hue is not supported);
    PIL images are converted to a Tensor and back."""

    def __call__(self, x):
        if isinstance(x, Image.Image):
            pixels = np.asarray(x, np.float32) / 255
            chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
            out = np.clip(super().__call__(chw) * 255 + 0.5, 0, 255).astype(np.uint8)
            return Image.fromarray(out[0] if pixels.ndim == 2 else out.transpose(1, 2, 0))
        return on_tensor(super().__call__, x, "ColorJitter")


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, lambd: Callable):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, x):
        return self.lambd(x)

    def __repr__(self) -> str:
        return "Lambda()"


class RandomApply:
    """Apply the list of transforms with probability p."""

    def __init__(self, transforms, p: float = 0.5):
        self.transforms, self.p = list(transforms), p

    def __call__(self, x):
        if get_rng().random() >= self.p:
            return x
        for t in self.transforms:
            x = t(x)
        return x


class PILToTensor:
    """PIL image -> uint8 (C, H, W) Tensor, unscaled."""

    def __call__(self, pic: Image.Image) -> Tensor:
        x = np.asarray(pic)
        return Tensor._wrap(np.ascontiguousarray(x[None] if x.ndim == 2 else
                                                 x.transpose(2, 0, 1)))


class ToPILImage:
    """(C, H, W) Tensor (floats in [0, 1] scaled by 255) or (H, W[, C]) array -> PIL image."""

    def __init__(self, mode: str | None = None):
        self.mode = mode

    def __call__(self, pic) -> Image.Image:
        if isinstance(pic, Tensor):
            x = pic.array
            x = x[0] if x.ndim == 3 and x.shape[0] == 1 else x.transpose(1, 2, 0) if \
                x.ndim == 3 else x
        else:
            x = np.asarray(pic)
            x = x[..., 0] if x.ndim == 3 and x.shape[2] == 1 else x
        if x.dtype.kind == "f":
            x = (x * 255).astype(np.uint8)  # torchvision's mul(255).byte(): truncation
        img = Image.fromarray(x)
        return img if self.mode is None else img.convert(self.mode)


class ConvertImageDtype:
    """Convert a Tensor image's dtype, rescaling uint8 <-> float as torchvision does."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, x: Tensor) -> Tensor:
        d = x.array
        if d.dtype == np.uint8 and self.dtype.kind == "f":
            return Tensor._wrap((d / 255).astype(self.dtype))
        if d.dtype.kind == "f" and self.dtype == np.uint8:
            return Tensor._wrap((d * 255.999).astype(np.uint8))
        return x.to(self.dtype)


__getattr__ = module_getattr(__name__)
