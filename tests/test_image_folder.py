"""ImageFolder on small generated folders (decoding, split, exclude, bad files, cache, one-hot),
ColorJitter, and a check on a few classes of the real Caltech-101 when it is present."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinygrad_edu as tg
from experiments.caltech_common import DATA_DIR as CALTECH  # the repository's sibling shared/
from tinygrad_edu.data import (
    ColorJitter,
    DataError,
    DataLoader,
    ImageFolder,
    OneHot,
    stratified_split,
)
from tinygrad_edu.data import image_folder as imf
from tinygrad_edu.nn import functional as F


def write_image(path: Path, size=(20, 30), mode="RGB", seed=0) -> np.ndarray:
    """A random image file; returns its pixels as Pillow decodes them, in RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else (4,) if mode == "RGBA" else ())
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    img.save(path)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def folder(tmp_path):
    """cats: 10 images (one greyscale, one RGBA PNG), dogs: 20, BACKGROUND: 3, plus a text file."""
    root = tmp_path / "images"
    for i in range(10):
        mode = "L" if i == 0 else "RGBA" if i == 1 else "RGB"
        write_image(root / "cats" / f"c{i:02d}.{'png' if mode == 'RGBA' else 'jpg'}",
                    mode=mode, seed=i)
    for i in range(20):
        write_image(root / "dogs" / f"d{i:02d}.jpg", seed=100 + i)
    for i in range(3):
        write_image(root / "BACKGROUND" / f"b{i}.jpg", seed=200 + i)
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


def load(root, **kw) -> ImageFolder:
    kw.setdefault("cache_dir", root.parent / "cache")
    return ImageFolder(root, **kw)


def test_classes_shapes_and_rgb(folder):
    ds = load(folder, size=(8, 12))
    assert ds.classes == ["BACKGROUND", "cats", "dogs"]
    assert ds.class_to_idx == {"BACKGROUND": 0, "cats": 1, "dogs": 2}
    assert ds.data.shape == (33, 8, 12, 3) and ds.data.dtype == np.uint8
    assert np.bincount(ds.targets).tolist() == [3, 10, 20]
    grey = ds.data[next(i for i, (p, _) in enumerate(ds.samples) if p.endswith("c00.jpg"))]
    assert np.array_equal(grey[..., 0], grey[..., 1])  # greyscale became RGB, R = G = B
    assert not any(p.endswith(".txt") for p, _ in ds.samples)


def test_resize_matches_pillow(folder):
    ds = load(folder, size=16, exclude=["BACKGROUND", "dogs"])
    path, _ = ds.samples[5]
    expected = np.asarray(Image.open(path).convert("RGB").resize((16, 16), Image.BILINEAR))
    assert np.array_equal(ds.data[5], expected)


def test_split_is_stratified_disjoint_and_deterministic(folder):
    train, val = load(folder, split="train"), load(folder, split="val")
    assert len(train) + len(val) == 33
    assert not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    assert np.bincount(val.targets).tolist() == [1, 1, 2]  # 10% per class, at least one
    again = load(folder, split="val")
    assert [p for p, _ in again.samples] == [p for p, _ in val.samples]
    other = load(folder, split="val", split_seed=1)
    assert [p for p, _ in other.samples] != [p for p, _ in val.samples]


def test_stratified_split_fractions():
    targets = np.repeat(np.arange(4), [2, 10, 31, 800])
    tr, va = stratified_split(targets, 0.1, seed=3)
    assert np.bincount(targets[va]).tolist() == [1, 1, 3, 80]
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(targets)))


def test_exclude(folder):
    ds = load(folder, exclude=["BACKGROUND"])
    assert ds.classes == ["cats", "dogs"] and len(ds) == 30
    with pytest.raises(DataError, match="BACKGROUND_Google"):
        load(folder, exclude=["BACKGROUND_Google"])


def test_unreadable_and_truncated_images_are_skipped_with_a_warning(folder):
    (folder / "cats" / "broken.jpg").write_bytes(b"this is no jpeg")
    whole = (folder / "dogs" / "d00.jpg").read_bytes()
    (folder / "dogs" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.warns(UserWarning, match=r"skipped 2 .*cats/broken\.jpg.*dogs/cut\.jpg"):
        ds = load(folder)
    assert len(ds) == 33 and [p for p, _ in ds.skipped] == ["cats/broken.jpg", "dogs/cut.jpg"]
    with pytest.warns(UserWarning, match="cut.jpg"):  # a cached load warns again
        load(folder)


def test_decompression_bomb_limit_is_kept(folder, monkeypatch):
    assert Image.MAX_IMAGE_PIXELS is not None  # importing the module left Pillow's limit on
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20x30 = 600 pixels > 2 * limit
    with (pytest.warns(UserWarning, match="DecompressionBombError"),
          pytest.raises(DataError, match="no readable images")):
        load(folder, cache_dir="")


def test_cache_is_used_and_invalidated(folder, monkeypatch):
    first = load(folder)
    cache_files = list((folder.parent / "cache").glob("imagefolder-*.npz"))
    assert len(cache_files) == 1

    def fail(*args):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(imf, "decode_image", fail)
    cached = load(folder)
    assert np.array_equal(cached.data, first.data) and cached.samples == first.samples
    monkeypatch.undo()
    new = write_image(folder / "cats" / "c99.jpg", size=(8, 8), seed=7)
    changed = load(folder, size=8)
    assert len(changed) == 34
    i = [p for p, _ in changed.samples].index(str(folder / "cats" / "c99.jpg"))
    assert np.array_equal(changed.data[i], new)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_cache_is_rebuilt_with_a_warning(folder, damage):
    first = load(folder)
    (cache,) = (folder.parent / "cache").glob("imagefolder-*.npz")
    content = cache.read_bytes()
    cache.write_bytes({"truncated": content[:len(content) // 2], "garbage": b"PK\x03\x04 junk",
                       "empty": b""}[damage])
    with pytest.warns(UserWarning, match=f"the cache {cache} is damaged"):
        again = load(folder)
    assert np.array_equal(again.data, first.data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the next load reads it without a word
        assert np.array_equal(load(folder).data, first.data)


def test_16_bit_png_keeps_its_grey_levels(tmp_path):
    levels = np.array([[0, 1000, 30000, 65535]], np.uint16).repeat(4, 0)  # (4, 4)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")  # Pillow reads it as 16-bit
    decoded = imf.decode_image(path, (4, 4))  # (4, 4, 3)
    expected = np.round(levels * (255 / 65535)).astype(np.uint8)  # 0, 4, 117, 255
    np.testing.assert_array_equal(decoded[..., 0], expected)
    assert (decoded[..., 0] == decoded[..., 2]).all()


def test_subset_of_classes_has_its_own_cache(folder):
    load(folder)
    load(folder, exclude=["dogs"])
    assert len(list((folder.parent / "cache").glob("imagefolder-*.npz"))) == 2


def test_one_hot_targets_train_with_cross_entropy(folder):
    from tinygrad_edu.data import transforms as T

    ds = load(folder, size=8, one_hot=True, transform=T.ToTensor())
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and y.dtype == np.float32 and y.tolist() == [1.0, 0.0, 0.0]
    xb, yb = next(iter(DataLoader(ds, batch_size=6)))
    assert xb.shape == (6, 3, 8, 8) and yb.shape == (6, 3)
    logits = tg.randn(6, 3)
    by_index = F.cross_entropy(logits, tg.Tensor(ds.targets[:6]))
    assert np.isclose(F.cross_entropy(logits, yb).item(), by_index.item(), rtol=1e-6)


def test_one_hot_rejects_bad_labels():
    assert OneHot(3).batch(np.array([2, 0])).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="OneHot"):
        OneHot(3)(np.int64(3))


def test_color_jitter_properties():
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.uniform(0.2, 0.8, (5, 1, 4, 4)), 3, axis=1).astype(np.float32)
    assert np.allclose(ColorJitter(saturation=0.9).batch(grey), grey, atol=1e-6)
    flat = np.full((50, 3, 2, 2), 0.5, np.float32)
    assert np.allclose(ColorJitter(contrast=0.9).batch(flat), flat, atol=1e-6)
    scaled = ColorJitter(brightness=0.4).batch(flat) / 0.5  # one factor per image
    assert np.allclose(scaled, scaled[:, :1, :1, :1])
    assert 0.6 <= scaled.min() < 0.8 and 1.2 < scaled.max() <= 1.4
    x = rng.uniform(0, 1, (3, 8, 8)).astype(np.float32)
    out = ColorJitter(0.5, 0.5, 0.5)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and not np.allclose(out, x)
    assert np.array_equal(ColorJitter()(x), x)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=-1)


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class"):
        ImageFolder(tmp_path, cache_dir="")
    with pytest.raises(ValueError, match="split"):
        ImageFolder(tmp_path, split="test")


@pytest.mark.skipif(not CALTECH.is_dir(), reason=f"Caltech-101 not found at {CALTECH}")
def test_real_caltech_classes(tmp_path):
    keep = {"accordion", "camera"}
    exclude = [d for d in os.listdir(CALTECH) if d not in keep]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every image of these classes decodes
        ds = ImageFolder(CALTECH, size=64, exclude=exclude, cache_dir=tmp_path)
    counts = dict(line.split() for line in (CALTECH.parent / "class_counts.txt").read_text()
                  .splitlines())
    assert ds.classes == ["accordion", "camera"]
    assert np.bincount(ds.targets).tolist() == [int(counts["accordion"]), int(counts["camera"])]
    assert ds.data.shape[1:] == (64, 64, 3)
    val = ImageFolder(CALTECH, size=64, exclude=exclude, split="val", cache_dir=tmp_path)
    assert np.bincount(val.targets).tolist() == [6, 5]  # round(55 * 0.1), round(50 * 0.1)
