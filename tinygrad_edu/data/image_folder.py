"""ImageFolder: one sub-folder of images per class (Caltech-101's layout), decoded once and cached.

    root/accordion/image_0001.jpg, root/accordion/image_0002.jpg, ..., root/camera/...

Images are decoded with Pillow, converted to RGB and resized to `size`; the uint8 arrays of the
whole folder are cached in one .npz file (rebuilt when a file in the folder is added, removed or
changed), so later loads take a second instead of a minute. Unreadable or truncated images are
skipped with a warning that names them. Pillow's decompression-bomb limit stays in force.

    train = ImageFolder(root, size=64, split="train", exclude=["BACKGROUND_Google"],
                        transform=Compose([ToTensor(), Normalize(mean, std)]))
    x, y = train[0]                     # (3, 64, 64) float32, class index
    train.classes[y]                    # 'accordion'
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import ArrayDataset
from .errors import DataError
from .mnist import data_root
from .transforms import Compose, OneHot

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp",
                  ".gif")
SPLITS = ("train", "val", "all")
CACHE_VERSION = 1  # bump when the cache file's layout or the decoding changes


class ImageFolder(ArrayDataset):
    """Images in `root/<class>/<file>` as one (N, H, W, 3) uint8 array, with a stratified split.

    size: (H, W) or one int for squares. split: "train", "val" or "all"; the validation part
    holds `val_fraction` of each class's images (at least one), drawn with `split_seed`, so it is
    the same on every machine. exclude: class folders to leave out. one_hot: targets become
    float (num_classes,) one-hot vectors instead of class indices (`targets` stays indices).
    cache_dir: where the decoded arrays go (default <data root>/cache, data_root() being
    $TINYGRAD_EDU_DATA or ~/.cache/tinygrad_edu); "" turns the cache off.

    Attributes: `classes` (sorted folder names), `class_to_idx`, `samples` [(path, index)],
    `data` (N, H, W, 3) uint8, `targets` (N,) int64, `skipped` [(path, reason)].
    """

    def __init__(self, root: str | os.PathLike, size: int | tuple[int, int] = 64,
                 split: str = "all", val_fraction: float = 0.1, split_seed: int = 0,
                 exclude: Iterable[str] = (), transform: Callable | None = None,
                 target_transform: Callable | None = None, one_hot: bool = False,
                 cache_dir: str | os.PathLike | None = None):
        if split not in SPLITS:
            raise ValueError(f"ImageFolder: split must be one of {SPLITS}, got {split!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"ImageFolder: val_fraction must be between 0 and 1, got "
                             f"{val_fraction}")
        self.root = Path(root).expanduser()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.split, self.val_fraction, self.split_seed = split, val_fraction, split_seed
        self.classes, files = scan_folder(self.root, set(exclude))
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        data, targets, paths, self.skipped = _load(self.root, self.classes, files, self.size,
                                                   cache_dir)
        _warn_skipped(self.root, self.skipped)
        _check_every_class_has_images(self.root, self.classes, targets)
        if split != "all":
            train_idx, val_idx = stratified_split(targets, val_fraction, split_seed)
            keep = train_idx if split == "train" else val_idx
            data, targets, paths = data[keep], targets[keep], [paths[i] for i in keep]
        self.samples = [(str(self.root / p), int(t)) for p, t in zip(paths, targets)]
        if one_hot:
            target_transform = _then(target_transform, OneHot(len(self.classes)))
        super().__init__(data, targets, transform, target_transform)

    def __repr__(self) -> str:
        return (f"ImageFolder({str(self.root)!r}, split={self.split!r}, {len(self)} images of "
                f"{self.size[0]}x{self.size[1]}, {len(self.classes)} classes)")


def scan_folder(root: Path, exclude: set[str]) -> tuple[list[str], list[tuple[str, int]]]:
    """Sorted class names and [(path relative to root, class index)] of the image files."""
    if not root.is_dir():
        raise DataError(f"ImageFolder: {root} is not a directory; pass the folder that holds "
                        f"one sub-folder per class")
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    unknown = sorted(exclude - set(folders))
    if unknown:
        raise DataError(f"ImageFolder: exclude names {unknown}, which are not class folders of "
                        f"{root}; the folders are {folders[:8]}{' ...' if len(folders) > 8 else ''}")
    classes = [f for f in folders if f not in exclude]
    if not classes:
        raise DataError(f"ImageFolder: no class folders in {root}; expected root/<class>/<image>")
    files = []
    for index, name in enumerate(classes):
        found = sorted(e.name for e in os.scandir(root / name)
                       if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)
                       and not e.name.startswith("."))
        files += [(f"{name}/{f}", index) for f in found]
    return classes, files


def stratified_split(targets: np.ndarray, val_fraction: float = 0.1, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), sorted: each class gives round(n * val_fraction) of its n
    samples (at least one when n >= 2) to validation, chosen by a generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        k = round(len(members) * val_fraction)
        k = min(max(k, 1), len(members) - 1) if len(members) >= 2 else 0
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train_mask = np.ones(len(targets), bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx


def decode_image(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """One image file -> (H, W, 3) uint8, converted to RGB and resized (bilinear, antialiased).

    Raises OSError (unreadable or truncated file) or Image.DecompressionBombError (a file larger
    than Pillow's MAX_IMAGE_PIXELS limit, which is left in force on purpose).
    """
    with Image.open(path) as img:
        img = eight_bit(img).convert("RGB")  # decodes the whole file: truncation shows here
        h, w = size
        return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def eight_bit(img: Image.Image) -> Image.Image:
    """A 16-bit grey image (Pillow's mode "I;16*", or "I" holding 16-bit values) as 8-bit "L",
    scaled by 255/65535: Pillow's own convert() clips every value above 255 to white."""
    if not img.mode.startswith("I"):
        return img
    a = np.asarray(img, np.float64)
    top = 65535 if img.mode.startswith("I;16") or a.max() > 255 else 255
    return Image.fromarray(np.clip(np.round(a * (255 / top)), 0, 255).astype(np.uint8), "L")


# ---- the cache -------------------------------------------------------------------------------

def _load(root: Path, classes: list[str], files: list[tuple[str, int]], size: tuple[int, int],
          cache_dir) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """Decoded images, targets, relative paths and skipped files, from the cache when valid."""
    key = _fingerprint(root, files, size)
    cache = _cache_path(root, classes, size, cache_dir)
    if cache is not None and cache.exists():
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached
    result = _decode_all(root, files, size)
    if cache is not None:
        _write_cache(cache, key, *result)
    return result


def _fingerprint(root: Path, files: list[tuple[str, int]], size: tuple[int, int]) -> str:
    """A hash of every file's name, class, size and modification time, and of the image size:
    any change to the folder (or to the decoding) gives a new fingerprint."""
    h = hashlib.sha256(f"v{CACHE_VERSION} {size}".encode())
    for rel, index in files:
        st = os.stat(root / rel)
        h.update(f"{rel}\0{index}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cache_path(root: Path, classes: list[str], size: tuple[int, int], cache_dir) -> Path | None:
    """One file per folder, choice of classes and size, so that a run on a few classes does
    not overwrite the cache of the whole folder."""
    if cache_dir == "":
        return None
    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_root() / "cache"
    tag = hashlib.sha256("\0".join([str(root.resolve()), *classes]).encode()).hexdigest()[:12]
    return folder / f"imagefolder-{root.name}-{tag}-{size[0]}x{size[1]}.npz"


def _read_cache(path: Path, key: str):
    """The cached arrays if the file is readable and its fingerprint matches, else None (the
    folder changed: decode again); a damaged cache is rebuilt with a warning."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != key:
                return None
            skipped = [tuple(pair) for pair in z["skipped"].tolist()]
            return z["data"], z["targets"], z["paths"].tolist(), skipped
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"ImageFolder: the cache {path} is damaged ({type(e).__name__}: {e}); "
                      f"decoding the images again and rebuilding it", stacklevel=4)
        return None


def _write_cache(path: Path, key: str, data, targets, paths, skipped) -> None:
    """Write atomically (tmp file + os.replace); a cache that cannot be written only warns."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, fingerprint=np.array(key), data=data, targets=targets,
                     paths=np.array(paths, dtype=str),
                     skipped=np.array(skipped, dtype=str).reshape(-1, 2))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"ImageFolder: could not write the cache {path} ({e}); the images will be "
                      f"decoded again next time", stacklevel=3)


def _decode_all(root: Path, files: list[tuple[str, int]], size: tuple[int, int]):
    h, w = size
    data = np.empty((len(files), h, w, 3), np.uint8)  # (N, H, W, 3)
    targets, paths, skipped = [], [], []
    for rel, index in files:
        try:
            data[len(paths)] = decode_image(root / rel, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            skipped.append((rel, f"{type(e).__name__}: {e}"))
            continue
        targets.append(index)
        paths.append(rel)
    return data[:len(paths)].copy(), np.array(targets, np.int64), paths, skipped


# ---- checks ----------------------------------------------------------------------------------

def _warn_skipped(root: Path, skipped: list[tuple[str, str]]) -> None:
    if skipped:
        names = "; ".join(f"{rel} ({reason})" for rel, reason in skipped)
        warnings.warn(f"ImageFolder: skipped {len(skipped)} unreadable image(s) in {root}: "
                      f"{names}", stacklevel=3)


def _check_every_class_has_images(root: Path, classes: list[str], targets: np.ndarray) -> None:
    empty = [c for i, c in enumerate(classes) if not np.any(targets == i)]
    if empty:
        raise DataError(f"ImageFolder: no readable images for class(es) {empty} in {root}; add "
                        f"images ({', '.join(IMG_EXTENSIONS)}) or pass exclude={empty}")


def _then(first: Callable | None, second: Callable) -> Callable:
    return second if first is None else Compose([first, second])
