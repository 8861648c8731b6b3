"""Geometric transforms on PIL images, with torchvision's parameters and arithmetic (its PIL
backend: the same crop boxes, rounding, inverse affine matrix and Pillow resampling).

Crops, pads and flips also take (..., H, W) Tensors; resizing, rotation, affine warps and
Grayscale need a PIL image (put them before ToTensor(), as torchvision scripts usually do).
"""
from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from ..random import get_rng
from ..tensor import Tensor


class InterpolationMode(enum.Enum):
    """torchvision's names for Pillow's resampling filters."""
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_MODES = {InterpolationMode.NEAREST: Image.Resampling.NEAREST,
              InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
              InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
              InterpolationMode.BOX: Image.Resampling.BOX,
              InterpolationMode.HAMMING: Image.Resampling.HAMMING,
              InterpolationMode.LANCZOS: Image.Resampling.LANCZOS}


def _resample(mode) -> int:
    return _PIL_MODES[mode] if isinstance(mode, InterpolationMode) else int(mode)


def _size2(size) -> tuple[int, int]:
    """(h, w) from an int or a sequence of one or two ints."""
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    size = tuple(size)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def _hw(img) -> tuple[int, int]:
    if isinstance(img, Image.Image):
        return img.height, img.width
    return tuple(np.shape(img)[-2:])


def _pil_only(img, name: str) -> Image.Image:
    if not isinstance(img, Image.Image):
        raise TypeError(f"{name}: tinygrad_edu applies it to PIL images only; put it before "
                        f"ToTensor() in Compose")
    return img


def crop(img, top: int, left: int, height: int, width: int):
    """The (height, width) window at (top, left) of a PIL image or (..., H, W) Tensor."""
    if isinstance(img, Image.Image):
        return img.crop((left, top, left + width, top + height))
    return Tensor._wrap(np.ascontiguousarray(
        img.array[..., top:top + height, left:left + width]))


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad (left, top, right, bottom) pixels; `padding` is one int, (lr, tb) or four ints."""
    p = [padding] * 4 if isinstance(padding, int) else list(padding)
    if len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    left, top, right, bottom = p
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError(f"Pad: padding_mode must be constant, edge, reflect or symmetric, got "
                         f"{padding_mode!r}")
    if isinstance(img, Image.Image):
        if padding_mode == "constant":
            return ImageOps.expand(img, border=(left, top, right, bottom), fill=fill)
        x = np.asarray(img)
        width = ((top, bottom), (left, right)) + ((0, 0),) * (x.ndim - 2)
        return Image.fromarray(np.pad(x, width, mode=padding_mode))
    x = img.array
    width = ((0, 0),) * (x.ndim - 2) + ((top, bottom), (left, right))
    extra = {"constant_values": fill} if padding_mode == "constant" else {}
    return Tensor._wrap(np.pad(x, width, mode=padding_mode, **extra))


class Resize:
    """Resize to (h, w), or the smaller edge to `size` keeping the aspect ratio."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias=True):
        self.size, self.interpolation, self.max_size = size, interpolation, max_size

    def __call__(self, img):
        img = _pil_only(img, "Resize")
        h, w = img.height, img.width
        if isinstance(self.size, int) or len(self.size) == 1:
            short = self.size if isinstance(self.size, int) else self.size[0]
            small, large = (w, h) if w <= h else (h, w)
            new_small, new_large = short, int(short * large / small)
            if self.max_size is not None and new_large > self.max_size:
                new_small, new_large = int(self.max_size * new_small / new_large), self.max_size
            new_w, new_h = (new_small, new_large) if w <= h else (new_large, new_small)
        else:
            new_h, new_w = self.size
        if (new_h, new_w) == (h, w):
            return img
        return img.resize((new_w, new_h), _resample(self.interpolation))


class CenterCrop:
    """The central (h, w) window; an image smaller than that is zero-padded first."""

    def __init__(self, size):
        self.size = _size2(size)

    def __call__(self, img):
        th, tw = self.size
        h, w = _hw(img)
        if th > h or tw > w:
            img = pad(img, [(tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                            (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0])
            h, w = _hw(img)
        return crop(img, round((h - th) / 2.0), round((w - tw) / 2.0), th, tw)


class Pad:
    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return pad(img, self.padding, self.fill, self.padding_mode)


class RandomCrop:
    """A random (h, w) window, after optional padding (torchvision's arguments)."""

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant"):
        self.size, self.padding, self.pad_if_needed = _size2(size), padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    def __call__(self, img):
        if self.padding is not None:
            img = pad(img, self.padding, self.fill, self.padding_mode)
        th, tw = self.size
        h, w = _hw(img)
        if self.pad_if_needed and (w < tw or h < th):
            img = pad(img, [max(tw - w, 0), max(th - h, 0)], self.fill, self.padding_mode)
            h, w = _hw(img)
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the "
                             f"input image size {(h, w)}")
        rng = get_rng()
        return crop(img, int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1)),
                    th, tw)


class RandomVerticalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        if get_rng().random() >= self.p:
            return img
        if isinstance(img, Image.Image):
            return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return Tensor._wrap(np.ascontiguousarray(img.array[..., ::-1, :]))


class Grayscale:
    """RGB -> luma (ITU-R 601-2, Pillow's 'L'), with 1 or 3 output channels."""

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError("Grayscale: num_output_channels should be either 1 or 3")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        grey = _pil_only(img, "Grayscale").convert("L")
        if self.num_output_channels == 1:
            return grey
        return Image.merge("RGB", (grey, grey, grey))


def _range(value, name: str) -> tuple[float, float]:
    """(-v, v) from a number, or the two given bounds."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"{name}: if it is a single number, it must be positive")
        return -float(value), float(value)
    lo, hi = value
    return float(lo), float(hi)


class RandomRotation:
    """Rotate by an angle drawn uniformly from `degrees` (counter-clockwise, as torchvision)."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand: bool = False,
                 center=None, fill=0):
        self.degrees = _range(degrees, "RandomRotation degrees")
        self.interpolation, self.expand, self.center, self.fill = interpolation, expand, \
            center, fill

    def __call__(self, img):
        img = _pil_only(img, "RandomRotation")
        angle = float(get_rng().uniform(*self.degrees))
        return img.rotate(angle, _resample(self.interpolation), self.expand, self.center,
                          fillcolor=_fill(self.fill, img))


def _fill(fill, img: Image.Image):
    """Pillow's fillcolor for an image's band count, from a number or a sequence."""
    if isinstance(fill, numbers.Number):
        return fill if len(img.getbands()) == 1 else (int(fill),) * len(img.getbands())
    return tuple(int(f) for f in fill)


class RandomAffine:
    """A random rotation, translation, scale and shear, applied as one inverse affine warp."""

    def __init__(self, degrees, translate: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, shear=None,
                 interpolation=InterpolationMode.NEAREST, fill=0, center=None):
        self.degrees = _range(degrees, "RandomAffine degrees")
        self.translate, self.scale = translate, scale
        self.shear = None if shear is None else (
            _range(shear, "RandomAffine shear") + (0.0, 0.0) if isinstance(shear, numbers.Number)
            or len(shear) == 2 else tuple(float(s) for s in shear))
        self.interpolation, self.fill, self.center = interpolation, fill, center

    def params(self, width: int, height: int):
        """(angle, (tx, ty), scale, (shear_x, shear_y)) drawn as torchvision's get_params."""
        rng = get_rng()
        angle = float(rng.uniform(*self.degrees))
        tx = ty = 0
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * width, self.translate[1] * height
            tx = round(rng.uniform(-max_dx, max_dx))
            ty = round(rng.uniform(-max_dy, max_dy))
        scale = 1.0 if self.scale is None else float(rng.uniform(*self.scale))
        shear = (0.0, 0.0)
        if self.shear is not None:
            shear = (float(rng.uniform(self.shear[0], self.shear[1])),
                     float(rng.uniform(self.shear[2], self.shear[3])) if self.shear[2:] != (0, 0)
                     else 0.0)
        return angle, (tx, ty), scale, shear

    def __call__(self, img):
        img = _pil_only(img, "RandomAffine")
        angle, translate, scale, shear = self.params(img.width, img.height)
        center = self.center or (img.width * 0.5, img.height * 0.5)
        matrix = inverse_affine_matrix(center, angle, translate, scale, shear)
        return img.transform(img.size, Image.Transform.AFFINE, matrix,
                             _resample(self.interpolation), fillcolor=_fill(self.fill, img))


def inverse_affine_matrix(center, angle: float, translate, scale: float, shear) -> list[float]:
    """The output-to-input pixel map (Pillow's AFFINE data) of rotate-scale-shear about `center`
    followed by `translate`: (C T R S Sh C^-1)^-1, torchvision's formula."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [v / scale for v in (d, -b, 0.0, -c, a, 0.0)]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


class RandomResizedCrop:
    """A random crop of random area and aspect ratio, resized to `size` (Inception-style)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        self.size, self.scale, self.ratio = _size2(size), scale, ratio
        self.interpolation = interpolation

    def params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w): ten tries at a random box, then the central crop (torchvision)."""
        rng, area = get_rng(), height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), \
                    h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif in_ratio > max(self.ratio):
            h, w = height, round(height * max(self.ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        img = _pil_only(img, "RandomResizedCrop")
        top, left, h, w = self.params(img.height, img.width)
        box = img.crop((left, top, left + w, top + h))
        return box.resize((self.size[1], self.size[0]), _resample(self.interpolation))
