"""The line dataset: 96 classes of anti-aliased coloured line segments, 28x28 RGB on black.

A class is one combination of four attributes, 2 x 2 x 2 x 12 = 96:

    length  7 or 15 px        width  1 or 3 px        colour  blue or red
    angle   0, 15, ..., 165 degrees, counter-clockwise from the horizontal (as seen on screen)

Each image holds one segment at a random sub-pixel position (the whole segment stays inside the
image), so a network must recognise the line rather than memorise pixels. Class index
c = ((length * 2 + width) * 2 + colour) * 12 + angle, each attribute taken as its index in the
lists above; the class folders' names sort in the same order.

    python -m tinygrad_edu.data.lines --out DIR [--per-class 1000] [--seed 0]

writes DIR/lines_p1000_s0.npz (the arrays) and DIR/lines_p1000_s0/<class>/<n>.png (the image
folder). In Python:

    ds = LineDataset(per_class=1000, transform=ToTensor())    # generated and cached on first use
    x, y = ds[0]                                               # (3, 28, 28) float32, class 0
    ds = LineDataset(target_type="attributes")                 # y = [length, width, colour, angle]

The same seed gives byte-identical files on every run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import ArrayDataset
from .errors import DataError
from .mnist import data_root

LENGTHS = (7, 15)
WIDTHS = (1, 3)
COLOURS = ("blue", "red")  # alphabetical, so that sorted folder names follow the class index
ANGLES = tuple(range(0, 180, 15))
ATTRIBUTES = {"length": LENGTHS, "width": WIDTHS, "colour": COLOURS, "angle": ANGLES}
ATTRIBUTE_SIZES = tuple(len(v) for v in ATTRIBUTES.values())  # (2, 2, 2, 12)
NUM_CLASSES = int(np.prod(ATTRIBUTE_SIZES))  # 96
IMAGE_SIZE = 28
CHANNEL = {"blue": 2, "red": 0}  # the RGB channel each colour lights up
TARGET_TYPES = ("class", "attributes")
FORMAT_VERSION = 1


# ---- classes and attributes ------------------------------------------------------------------

def class_index(length: int, width: int, colour: str, angle: int) -> int:
    """The class (0..95) of a line with these attribute values, e.g. class_index(15, 3, 'red', 90)."""
    given = {"length": length, "width": width, "colour": colour, "angle": angle}
    for name, value in given.items():
        if value not in ATTRIBUTES[name]:
            raise ValueError(f"lines: {name}={value!r} is not one of the line dataset's values "
                             f"{ATTRIBUTES[name]}")
    indices = [ATTRIBUTES[name].index(value) for name, value in given.items()]
    return int(np.ravel_multi_index(indices, ATTRIBUTE_SIZES))


def attribute_labels(labels) -> np.ndarray:
    """Class indices (N,) -> attribute indices (N, 4): [length, width, colour, angle] columns."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"lines: class indices must be in 0..{NUM_CLASSES - 1}, got values in "
                         f"{labels.min()}..{labels.max()}")
    return np.stack(np.unravel_index(labels, ATTRIBUTE_SIZES), axis=-1).astype(np.int64)


def class_attributes(label: int) -> dict:
    """The attribute values of a class: {'length': 7, 'width': 1, 'colour': 'blue', 'angle': 0}."""
    indices = attribute_labels(np.array([label]))[0]
    return {name: values[i] for (name, values), i in zip(ATTRIBUTES.items(), indices)}


def class_name(label: int) -> str:
    """The folder name of a class, e.g. 'length15_width3_red_angle090'."""
    a = class_attributes(label)
    return f"length{a['length']:02d}_width{a['width']}_{a['colour']}_angle{a['angle']:03d}"


CLASS_NAMES = tuple(class_name(c) for c in range(NUM_CLASSES))


# ---- drawing ---------------------------------------------------------------------------------

def render(attributes: np.ndarray, centres: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw one line per row of `attributes` (N, 4) indices, centred at `centres` (N, 2) (x, y)
    in pixels (pixel (i, j) covers [j, j+1] x [i, i+1]); returns (N, size, size, 3) uint8.

    Anti-aliasing: each pixel is split into 2x2 sub-pixels, and each sub-pixel counts the part
    of a 0.5 x 0.5 box around its centre, taken in the line's own frame, that the line covers;
    the pixel's brightness is their mean. For axis-aligned lines this is the exact area of the
    pixel that the line covers; at other angles each line's total brightness stays within about
    3% of length x width.
    """
    attributes, centres = np.asarray(attributes), np.asarray(centres, np.float64)
    n = len(attributes)
    if attributes.shape != (n, 4) or centres.shape != (n, 2):
        raise ValueError(f"lines.render: expected attributes (N, 4) and centres (N, 2), got "
                         f"{attributes.shape} and {centres.shape}")
    for k, (name, values) in enumerate(ATTRIBUTES.items()):
        col = attributes[:, k]
        if n and (col.min() < 0 or col.max() >= len(values)):
            raise ValueError(f"lines.render: {name} indices must be in 0..{len(values) - 1} "
                             f"(for {values}), got values in {col.min()}..{col.max()}")
    f32 = np.float32  # twice as fast as float64, and 255 levels need no more precision
    # half extents of the line grown by the half sub-box (0.25), in sub-box units (x2)
    half_length = (np.take(LENGTHS, attributes[:, 0]) + 0.5).astype(f32)[:, None, None]
    half_width = (np.take(WIDTHS, attributes[:, 1]) + 0.5).astype(f32)[:, None, None]
    theta = np.deg2rad(np.take(ANGLES, attributes[:, 3]))[:, None, None]  # (N, 1, 1)
    grid = np.arange(size) + 0.5  # pixel centres
    dx = (grid[None, None, :] - centres[:, 0, None, None]).astype(f32)  # (N, 1, size)
    dy = (grid[None, :, None] - centres[:, 1, None, None]).astype(f32)  # (N, size, 1)
    cos, sin = np.cos(theta).astype(f32), np.sin(theta).astype(f32)
    # y points down in an image, so the direction at angle theta is (cos, -sin); x2: sub-boxes
    along = 2 * (dx * cos - dy * sin)  # (N, size, size)
    across = 2 * (dx * sin + dy * cos)
    coverage = np.zeros(along.shape, f32)
    for ox, oy in ((-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)):  # sub-pixel centres, x2
        coverage += (np.clip(half_length - np.abs(along + (ox * cos - oy * sin)), 0, 1)
                     * np.clip(half_width - np.abs(across + (ox * sin + oy * cos)), 0, 1))
    coverage /= 4
    images = np.zeros((n, size, size, 3), np.uint8)
    channels = np.take([CHANNEL[c] for c in COLOURS], attributes[:, 2])  # (N,)
    images[np.arange(n), :, :, channels] = np.rint(255 * coverage).astype(np.uint8)
    return images


def random_centres(attributes: np.ndarray, rng: np.random.Generator,
                   size: int = IMAGE_SIZE) -> np.ndarray:
    """Uniform random centres (N, 2) that keep each line, with its anti-aliased rim (at most
    0.6 px wide), off the outermost pixel rows and columns."""
    half_length = np.take(LENGTHS, attributes[:, 0]) / 2
    half_width = np.take(WIDTHS, attributes[:, 1]) / 2
    theta = np.deg2rad(np.take(ANGLES, attributes[:, 3]))
    cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    extent = np.stack([cos * half_length + sin * half_width,
                       sin * half_length + cos * half_width], axis=1) + 1.25  # (N, 2) (x, y)
    return extent + rng.random((len(attributes), 2)) * (size - 2 * extent)


def generate(per_class: int = 1000, seed: int = 0, chunk: int = 4096
             ) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class: (images (N, 28, 28, 3) uint8, labels (N,) int64),
    sorted by class; the same seed gives the same arrays."""
    check_per_class(per_class)
    labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int64), per_class)
    attributes = attribute_labels(labels)
    centres = random_centres(attributes, np.random.default_rng(seed))
    images = np.empty((len(labels), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for start in range(0, len(labels), chunk):  # chunks keep the float temporaries small
        part = slice(start, start + chunk)
        images[part] = render(attributes[part], centres[part])
    return images, labels


def check_per_class(per_class) -> None:
    if isinstance(per_class, bool) or int(per_class) != per_class or per_class < 1:
        raise ValueError(f"lines: the number of images per class must be a positive integer, "
                         f"got {per_class!r}")


# ---- files -----------------------------------------------------------------------------------

def stem(per_class: int, seed: int) -> str:
    """The base name of a generated set's files: 'lines_p1000_s0'."""
    return f"lines_p{per_class}_s{seed}"


def save_arrays(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images and labels as a compressed .npz, atomically and byte-for-byte reproducibly
    (np.savez stamps members with the current time; here every member has a fixed date)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    arrays = {"images": images, "labels": labels,
              "version": np.array([FORMAT_VERSION], np.int64)}
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array),
                                              allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_arrays(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from a file written by `save_arrays`; a damaged file is a DataError."""
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels, version = f["images"], f["labels"], f["version"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"LineDataset: {path} is not a readable line-dataset file ({e}); delete "
                        f"it and it will be generated again") from None
    n = len(labels)
    if (version.tolist() != [FORMAT_VERSION] or images.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3)
            or images.dtype != np.uint8 or labels.ndim != 1 or labels.dtype.kind not in "iu"
            or (n and (labels.min() < 0 or labels.max() >= NUM_CLASSES))):
        raise DataError(f"LineDataset: {path} holds images {images.shape} {images.dtype} and "
                        f"labels {labels.shape} (format {version.tolist()}); expected "
                        f"(N, 28, 28, 3) uint8 and N classes in 0..95, format {FORMAT_VERSION}. "
                        f"Delete it and it will be generated again.")
    return images, labels.astype(np.int64)


def save_image_folder(folder: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """One PNG per image in folder/<class name>/<n>.png, written beside and then renamed into
    place, so an interrupted run never leaves a half-written folder under the final name."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    try:
        for c in range(NUM_CLASSES):
            (tmp / CLASS_NAMES[c]).mkdir(parents=True)
        counts = np.zeros(NUM_CLASSES, np.int64)
        for image, c in zip(images, labels):
            Image.fromarray(image).save(tmp / CLASS_NAMES[c] / f"{counts[c]:05d}.png")
            counts[c] += 1
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


def write(out: str | os.PathLike, per_class: int = 1000, seed: int = 0,
          image_folder: bool = True) -> Path:
    """Generate the data set and write out/<stem>.npz and (with image_folder) out/<stem>/;
    returns the .npz path. `out` is created if needed."""
    check_per_class(per_class)
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"lines: the output directory {out} is a file; pass a directory (it is "
                        f"created if it does not exist)")
    out.mkdir(parents=True, exist_ok=True)
    images, labels = generate(per_class, seed)
    path = out / f"{stem(per_class, seed)}.npz"
    save_arrays(path, images, labels)
    if image_folder:
        save_image_folder(out / stem(per_class, seed), images, labels)
    return path


# ---- the dataset -----------------------------------------------------------------------------

class LineDataset(ArrayDataset):
    """The line dataset as arrays: `data` (N, 28, 28, 3) uint8 sorted by class, `targets` (N,)
    class indices or (N, 4) attribute indices [length, width, colour, angle].

    root: the folder of the cached .npz (default <data root>/lines); a missing file is
    generated there (seconds to tens of seconds for 96,000 images) unless generate=False.
    target_type: "class" (0..95) or "attributes". `labels` always holds the class indices.
    """

    classes = CLASS_NAMES

    def __init__(self, root: str | os.PathLike | None = None, per_class: int = 1000,
                 seed: int = 0, target_type: str = "class", transform: Callable | None = None,
                 target_transform: Callable | None = None, generate: bool = True):
        if target_type not in TARGET_TYPES:
            raise ValueError(f"LineDataset: target_type must be one of {TARGET_TYPES}, got "
                             f"{target_type!r}")
        check_per_class(per_class)
        self.root = Path(root).expanduser() if root is not None else data_root() / "lines"
        self.path = self.root / f"{stem(per_class, seed)}.npz"
        if not self.path.exists():
            if not generate:
                raise DataError(f"LineDataset: {self.path} does not exist; pass generate=True or "
                                f"run python -m tinygrad_edu.data.lines --out {self.root} "
                                f"--per-class {per_class} --seed {seed}")
            write(self.root, per_class, seed, image_folder=False)
        images, self.labels = load_arrays(self.path)
        self.target_type = target_type
        targets = self.labels if target_type == "class" else attribute_labels(self.labels)
        super().__init__(images, targets, transform, target_transform)

    def __repr__(self) -> str:
        return (f"LineDataset({str(self.path)!r}, {len(self)} images, "
                f"target_type={self.target_type!r})")


# ---- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinygrad_edu.data.lines",
                                     description="Generate the line dataset (96 classes).")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--per-class", type=int, default=1000, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-images", dest="images", action="store_false",
                        help="write only the .npz, not the PNG image folder")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        path = write(args.out, args.per_class, args.seed, image_folder=args.images)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    folder = f" and {path.with_suffix('')}{os.sep}" if args.images else ""
    print(f"lines: {NUM_CLASSES * args.per_class} images ({args.per_class} per class) in {path}"
          f"{folder} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
