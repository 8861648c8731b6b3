"""torch.utils.data and torchvision's faces: DataLoader options (real worker processes giving
the batches of num_workers=0), samplers, collation, datasets with Tensors and PIL images,
transforms with torchvision's arithmetic, make_grid / save_image."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import tinygrad_edu as tg
from tinygrad_edu.utils import data
from tinygrad_edu.vision import datasets, transforms, utils


class Squares(data.Dataset):
    """Sample i is (a (2, 2) float image of i, the label i % 3, the worker's pid)."""

    def __init__(self, n: int = 23):
        self.n = n

    def __getitem__(self, i):
        return np.full((2, 2), i, np.float32), i % 3

    def __len__(self):
        return self.n


def _batches(loader):
    return [(x.tolist(), y.tolist()) for x, y in loader]


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 4},
    {"batch_size": 5, "shuffle": True, "drop_last": True},
    {"batch_size": 3, "sampler": data.SubsetRandomSampler(range(0, 23, 2))},
])
def test_workers_give_the_batches_of_the_main_process(kwargs):
    tg.manual_seed(0)
    plain = _batches(data.DataLoader(Squares(), **kwargs))
    tg.manual_seed(0)
    workers = _batches(data.DataLoader(Squares(), num_workers=2, **kwargs))
    assert workers == plain and len(plain) > 2


def test_workers_decode_an_image_folder_in_parallel_with_same_batches(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        os.makedirs(tmp_path / c)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), np.uint8)).save(
                tmp_path / c / f"{i}.png")
    tf = transforms.Compose([transforms.Resize(8), transforms.CenterCrop(8),
                             transforms.ToTensor()])
    folder = datasets.ImageFolder(str(tmp_path), transform=tf)
    assert folder.classes == ["cat", "dog"] and folder.targets == [0] * 6 + [1] * 6
    g = tg.Generator().manual_seed(5)
    a = _batches(data.DataLoader(folder, batch_size=4, shuffle=True, generator=g))
    g.manual_seed(5)
    b = _batches(data.DataLoader(folder, batch_size=4, shuffle=True, generator=g, num_workers=3,
                                 persistent_workers=True, prefetch_factor=1))
    assert a == b
    x, y = folder[7]
    assert x.shape == (3, 8, 8) and y == 1


class Pids(data.Dataset):
    def __getitem__(self, i):
        return os.getpid()

    def __len__(self):
        return 8


def test_persistent_workers_live_across_epochs_and_worker_init_fn_runs_in_them():
    loader = data.DataLoader(Pids(), batch_size=2, num_workers=2, persistent_workers=True)
    first = {int(p) for batch in loader for p in batch.tolist()}
    second = {int(p) for batch in loader for p in batch.tolist()}
    assert first == second and os.getpid() not in first and len(first) == 2
    fresh = data.DataLoader(Pids(), batch_size=2, num_workers=2)
    assert {int(p) for b in fresh for p in b.tolist()}.isdisjoint(
        {int(p) for b in fresh for p in b.tolist()})


def _seed_marker(worker_id):
    np.save(os.environ["MARK_DIR"] + f"/w{worker_id}.npy", tg.get_rng().random(1))


def test_worker_init_fn_and_worker_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("MARK_DIR", str(tmp_path))
    loader = data.DataLoader(Squares(8), batch_size=2, num_workers=2, worker_init_fn=_seed_marker)
    list(loader)
    marks = [np.load(tmp_path / f"w{w}.npy")[0] for w in range(2)]
    assert marks[0] != marks[1]          # each worker has its own random stream


class Failing(Squares):
    def __getitem__(self, i):
        if i == 5:
            raise ValueError("sample 5 is broken")
        return super().__getitem__(i)


def test_an_error_in_a_worker_names_the_worker_and_shows_its_traceback():
    loader = data.DataLoader(Failing(), batch_size=2, num_workers=2)
    with pytest.raises(RuntimeError, match=r"(?s)worker \d failed on batch 2.*sample 5 is broken"):
        list(loader)


def test_batch_sampler_collate_fn_batch_size_none_and_pin_memory():
    loader = data.DataLoader(Squares(7), batch_sampler=[[0, 1], [6, 2, 3]], pin_memory=True)
    assert [y.tolist() for _, y in loader] == [[0, 1], [0, 2, 0]]
    assert len(loader) == 2
    collated = data.DataLoader(Squares(4), batch_size=2, collate_fn=lambda s: [y for _, y in s])
    assert list(collated) == [[0, 1], [2, 0]]
    single = list(data.DataLoader(Squares(3), batch_size=None))
    assert len(single) == 3 and single[2][1].tolist() == 2 and single[2][0].shape == (2, 2)
    sampler = data.BatchSampler(data.SequentialSampler(range(7)), 3, drop_last=True)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5]] and len(sampler) == 2


@pytest.mark.parametrize("kwargs, words", [
    ({"sampler": data.SequentialSampler(range(3)), "shuffle": True}, "mutually exclusive"),
    ({"batch_sampler": [[0]], "batch_size": 4}, "mutually exclusive with batch_size"),
    ({"num_workers": -1}, "non-negative"),
    ({"persistent_workers": True}, "need num_workers > 0"),
    ({"batch_size": 0}, "positive integer"),
])
def test_dataloader_refuses_what_torch_refuses(kwargs, words):
    with pytest.raises(ValueError, match=words):
        data.DataLoader(Squares(3), **kwargs)


def test_samplers_and_random_split_follow_their_generators():
    ds = Squares(20)
    g = tg.Generator().manual_seed(1)
    once = list(data.RandomSampler(ds, generator=g))
    g.manual_seed(1)
    assert list(data.RandomSampler(ds, generator=g)) == once and sorted(once) == list(range(20))
    draws = list(data.RandomSampler(ds, replacement=True, num_samples=50))
    assert len(draws) == 50 and max(draws) < 20
    assert len(list(data.RandomSampler(ds, num_samples=30))) == 30
    weighted = list(data.WeightedRandomSampler([0, 0, 1.0, 0], 10))
    assert weighted == [2] * 10
    parts = data.random_split(ds, [0.5, 0.5], generator=tg.Generator().manual_seed(2))
    again = data.random_split(ds, [10, 10], generator=tg.Generator().manual_seed(2))
    assert [list(p.indices) for p in parts] == [list(p.indices) for p in again]
    both = data.ConcatDataset([Squares(3), Squares(2)])
    assert len(both) == 5 and both[4][1] == 1 and both[-1][1] == 1


def test_collate_handles_dicts_strings_and_tensors():
    class Dicts(data.Dataset):
        def __getitem__(self, i):
            return {"x": tg.full((2,), float(i)), "name": f"item{i}", "y": i}

        def __len__(self):
            return 3

    batch = next(iter(data.DataLoader(Dicts(), batch_size=3)))
    assert batch["x"].shape == (3, 2) and batch["name"] == ["item0", "item1", "item2"]
    assert batch["y"].dtype == np.int64 and batch["y"].tolist() == [0, 1, 2]
    tensors = data.TensorDataset(tg.arange(4), tg.zeros(4, 2))
    assert tg.is_tensor(tensors.tensors[0]) and tensors[3][0] == 3


# ---------------------------------------------------------------- torchvision datasets


@pytest.fixture(scope="module")
def mnist_test():
    try:
        return datasets.MNIST("no/such/folder", train=False)
    except Exception as e:  # noqa: BLE001 (no MNIST in the cache and no network)
        pytest.skip(f"MNIST not available: {e}")


def test_mnist_face_has_tensor_data_and_falls_back_to_the_cache(mnist_test):
    assert tg.is_tensor(mnist_test.data) and mnist_test.data.shape == (10000, 28, 28)
    assert mnist_test.data.dtype == np.uint8 and mnist_test.targets.dtype == np.int64
    img, label = mnist_test[0]
    assert isinstance(img, Image.Image) and img.size == (28, 28) and label == 7
    assert mnist_test.class_to_idx["7 - seven"] == 7 and len(mnist_test.classes) == 10


def test_pil_path_and_array_path_give_the_same_tensors(mnist_test):
    fast = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    slow = transforms.Compose([transforms.Lambda(lambda im: im), transforms.ToTensor(),
                               transforms.Normalize((0.1307,), (0.3081,))])
    a = datasets.MNIST("x", train=False, transform=fast)
    b = datasets.MNIST("x", train=False, transform=slow)
    xa, ya = a[3]
    xb, yb = b[3]
    assert tg.is_tensor(xa) and tg.is_tensor(xb) and ya == yb
    np.testing.assert_allclose(xa.data, xb.data, atol=1e-6)
    ba = next(iter(data.DataLoader(data.Subset(a, range(8)), batch_size=8)))
    bb = next(iter(data.DataLoader(data.Subset(b, range(8)), batch_size=8)))
    np.testing.assert_allclose(ba[0].data, bb[0].data, atol=1e-6)
    assert ba[1].tolist() == bb[1].tolist()


def test_tensor_transforms_after_to_tensor_get_tensors(mnist_test):
    tf = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x.view(-1))])
    ds = datasets.MNIST("x", train=False, transform=tf)
    x, _ = ds[0]
    assert tg.is_tensor(x) and x.shape == (784,)
    batch = next(iter(data.DataLoader(ds, batch_size=5)))
    assert batch[0].shape == (5, 784)


def test_assigning_transform_data_and_targets_takes_effect(mnist_test):
    ds = datasets.MNIST("x", train=False)
    ds.transform = transforms.ToTensor()
    assert ds[0][0].shape == (1, 28, 28)
    ds.data, ds.targets = ds.data[:10], ds.targets[:10]
    assert len(ds) == 10 and len(list(data.DataLoader(ds, batch_size=4))) == 3


# ---------------------------------------------------------------- transforms


def _image(h=6, w=9, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def test_resize_keeps_the_aspect_ratio_like_torchvision():
    assert transforms.Resize(4)(_image(6, 9)).size == (6, 4)       # (W, H): short edge 4
    assert transforms.Resize(4)(_image(9, 6)).size == (4, 6)
    assert transforms.Resize((3, 5))(_image()).size == (5, 3)
    img = _image()
    expected = img.resize((6, 4), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(np.asarray(transforms.Resize(4)(img)), np.asarray(expected))


def test_center_crop_pads_small_images_like_torchvision():
    img = _image(5, 5, "L")
    out = np.asarray(transforms.CenterCrop(8)(img))
    assert out.shape == (8, 8)
    # torchvision pads (8-5)//2 = 1 before and 2 after, then crops at 0
    np.testing.assert_array_equal(out[1:6, 1:6], np.asarray(img))
    assert out[0].sum() == 0 and out[6:].sum() == 0
    crop = np.asarray(transforms.CenterCrop((2, 3))(_image(6, 9, "L")))
    np.testing.assert_array_equal(crop, np.asarray(_image(6, 9, "L"))[2:4, 3:6])
    t = transforms.CenterCrop(2)(tg.arange(16).reshape(1, 4, 4))
    assert t.tolist() == [[[5, 6], [9, 10]]]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_modes(mode):
    img = _image(3, 4, "L")
    out = np.asarray(transforms.Pad((1, 2), fill=7, padding_mode=mode)(img))
    width = ((2, 2), (1, 1))
    extra = {"constant_values": 7} if mode == "constant" else {}
    np.testing.assert_array_equal(out, np.pad(np.asarray(img), width, mode=mode, **extra))


def test_random_crop_with_padding_stays_inside_the_padded_image():
    tg.manual_seed(0)
    img = _image(6, 6, "L")
    padded = np.pad(np.asarray(img), 2)
    for _ in range(10):
        out = np.asarray(transforms.RandomCrop(6, padding=2)(img))
        assert any(np.array_equal(out, padded[i:i + 6, j:j + 6])
                   for i in range(5) for j in range(5))
    assert transforms.RandomCrop(8, pad_if_needed=True)(img).size == (8, 8)
    with pytest.raises(ValueError, match="larger than the input image"):
        transforms.RandomCrop(8)(img)


def test_grayscale_rotation_affine_and_flips():
    img = _image()
    grey = transforms.Grayscale()(img)
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), np.asarray(img.convert("L")))
    assert transforms.Grayscale(3)(img).mode == "RGB"
    square = _image(7, 7)
    rotated = transforms.RandomRotation((90, 90))(square)
    np.testing.assert_array_equal(np.asarray(rotated), np.rot90(np.asarray(square)))
    affine = transforms.RandomAffine((90, 90))(square)   # affine's angle is clockwise
    np.testing.assert_array_equal(np.asarray(affine), np.rot90(np.asarray(square), -1))
    identity = transforms.RandomAffine(0)(square)
    np.testing.assert_array_equal(np.asarray(identity), np.asarray(square))
    shifted = np.asarray(transforms.RandomAffine(0, translate=(0.2, 0))(square))
    assert shifted.shape == (7, 7, 3)
    flip = transforms.RandomHorizontalFlip(1.0)(square)
    np.testing.assert_array_equal(np.asarray(flip), np.asarray(square)[:, ::-1])
    vflip = transforms.RandomVerticalFlip(1.0)(tg.arange(4).reshape(1, 2, 2))
    assert vflip.tolist() == [[[2, 3], [0, 1]]]


@pytest.mark.parametrize("angle, scale, shear", [(30.0, 1.5, 0.0), (0.0, 1.0, 20.0),
                                                  (-50.0, 0.7, 0.0)])
def test_inverse_affine_matrix_undoes_the_forward_map(angle, scale, shear):
    """Pillow's AFFINE data maps output pixels back to input pixels: it must invert
    q = C + T + M (p - C), with M = scale * rotation (shear 0), or the x-shear [[1, -tan], [0, 1]]
    (angle 0), torchvision's conventions."""
    from tinygrad_edu.vision.pil_transforms import inverse_affine_matrix
    center, translate = np.array([2.0, 3.0]), np.array([1.0, -2.0])
    m = inverse_affine_matrix(center, angle, translate, scale, (shear, 0.0))
    r, t = np.radians(angle), np.tan(np.radians(shear))
    forward = scale * np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]) @ \
        np.array([[1.0, -t], [0.0, 1.0]])
    for p in ([0.0, 0.0], [5.0, -1.0], [2.5, 7.0]):
        q = center + translate + forward @ (np.array(p) - center)
        back = np.array([m[0] * q[0] + m[1] * q[1] + m[2], m[3] * q[0] + m[4] * q[1] + m[5]])
        np.testing.assert_allclose(back, p, atol=1e-9)


def test_random_resized_crop_and_tensor_conversions():
    tg.manual_seed(0)
    out = transforms.RandomResizedCrop(5)(_image(20, 30))
    assert out.size == (5, 5)
    t = transforms.PILToTensor()(_image(2, 3))
    assert t.dtype == np.uint8 and t.shape == (3, 2, 3)
    back = transforms.ToPILImage()(t.float() / 255)
    assert back.size == (3, 2)
    x = transforms.ToTensor()(_image(2, 3, "L"))
    assert tg.is_tensor(x) and x.shape == (1, 2, 3) and x.dtype == np.float32
    assert float(x.max()) <= 1.0
    with pytest.raises(TypeError, match="PIL Image or ndarray"):
        transforms.ToTensor()(x)
    with pytest.raises(TypeError, match="before ToTensor"):
        transforms.Resize(3)(x)
    normalised = transforms.Normalize((0.5,), (0.5,))(x)
    assert tg.is_tensor(normalised)
    np.testing.assert_allclose(normalised.numpy(), (x.numpy() - 0.5) / 0.5, rtol=1e-6)


# ---------------------------------------------------------------- make_grid, save_image


def test_make_grid_layout_like_torchvision():
    images = tg.stack([tg.full((1, 2, 2), float(k + 1)) for k in range(3)])
    grid = utils.make_grid(images, nrow=2, padding=1, pad_value=0.5)
    assert grid.shape == (3, 7, 7) and grid.dtype == np.float32
    g = grid.numpy()[0]
    assert g[1, 1] == 1 and g[1, 4] == 2 and g[4, 1] == 3 and g[4, 4] == 0.5 and g[0, 0] == 0.5
    assert np.array_equal(grid.numpy()[0], grid.numpy()[2])          # one channel becomes three
    single = utils.make_grid(tg.rand(1, 3, 4, 4))
    assert single.shape == (3, 4, 4)                            # one image: no padding
    normed = utils.make_grid(images, normalize=True, padding=0)
    assert float(normed.numpy().min()) == 0.0 and float(normed.numpy().max()) == 1.0
    each = utils.make_grid(images, normalize=True, scale_each=True, padding=0)
    assert np.all(each.numpy() == 0.0)                              # constant images: lo == hi
    fixed = utils.make_grid(images, normalize=True, value_range=(0, 4), padding=0)
    assert float(fixed.numpy().max()) == 0.75


def test_save_image_writes_the_grid_as_png(tmp_path):
    images = tg.rand(4, 3, 5, 5)
    utils.save_image(images, tmp_path / "grid.png", nrow=2)
    grid = utils.make_grid(images, nrow=2).numpy()
    expected = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grid.png")), expected)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_color_jitter_takes_pil_images(mode):
    tg.manual_seed(0)
    img = Image.fromarray(np.full((4, 4, 3) if mode == "RGB" else (4, 4), 100, np.uint8))
    out = transforms.ColorJitter(brightness=0.5)(img)
    assert out.mode == mode and out.size == (4, 4)
    values = np.unique(np.asarray(out))
    assert len(values) == 1 and 50 <= values[0] <= 150      # one factor in [0.5, 1.5]
    assert tg.is_tensor(transforms.ColorJitter(contrast=0.5)(tg.rand(3, 4, 4)))


class Counting(data.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter((np.float32(i), i % 2) for i in range(self.n))

    def __len__(self):
        return self.n


def test_iterable_datasets_batch_consecutive_samples():
    loader = data.DataLoader(Counting(7), batch_size=3)
    batches = [(x.tolist(), y.tolist()) for x, y in loader]
    assert batches == [([0.0, 1.0, 2.0], [0, 1, 0]), ([3.0, 4.0, 5.0], [1, 0, 1]), ([6.0], [0])]
    assert len(loader) == 3 and len(data.DataLoader(Counting(7), 3, drop_last=True)) == 2
    assert len(list(data.DataLoader(Counting(7), batch_size=3, drop_last=True))) == 2
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        data.DataLoader(Counting(3), shuffle=True)
    with pytest.raises(NotImplementedError, match="num_workers=0"):
        data.DataLoader(Counting(3), num_workers=2)


class WhoFetches(data.Dataset):
    def __getitem__(self, i):
        info = data.get_worker_info()
        return -1 if info is None else info.id * 100 + info.num_workers

    def __len__(self):
        return 4


def test_get_worker_info_in_workers_and_main_process():
    assert data.get_worker_info() is None
    assert [b.tolist() for b in data.DataLoader(WhoFetches(), batch_size=2)] == [[-1, -1]] * 2
    fetched = [b.tolist() for b in data.DataLoader(WhoFetches(), batch_size=2, num_workers=2)]
    assert fetched == [[2, 2], [102, 102]]            # batch k goes to worker k % 2


def test_an_abandoned_epoch_on_persistent_workers_does_not_leak_into_the_next():
    loader = data.DataLoader(Squares(40), batch_size=4, num_workers=2, persistent_workers=True,
                             prefetch_factor=3)
    first = next(iter(loader))                 # the tutorial's next(iter(loader)), then a loop
    assert first[1].tolist() == [0, 1, 2, 0]
    for _ in loader:
        break                                  # and a break (mnist_main's --dry-run)
    assert _batches(loader) == _batches(data.DataLoader(Squares(40), batch_size=4))


def test_interpolation_modes_random_apply_and_dtype_conversion():
    img = _image(6, 9)
    nearest = transforms.Resize(4, interpolation=transforms.InterpolationMode.NEAREST)(img)
    np.testing.assert_array_equal(np.asarray(nearest),
                                  np.asarray(img.resize((6, 4), Image.Resampling.NEAREST)))
    always = transforms.RandomApply([transforms.RandomHorizontalFlip(1.0)], p=1.0)(img)
    never = transforms.RandomApply([transforms.RandomHorizontalFlip(1.0)], p=0.0)(img)
    assert np.array_equal(np.asarray(always), np.asarray(img)[:, ::-1]) and never is img
    as_float = transforms.ConvertImageDtype(tg.float32)(tg.tensor([[0, 255]], dtype=tg.uint8))
    assert as_float.tolist() == [[0.0, 1.0]]
    as_bytes = transforms.ConvertImageDtype(tg.uint8)(tg.tensor([[0.0, 0.5, 1.0]]))
    assert as_bytes.tolist() == [[0, 127, 255]]          # torchvision: x * 255.999, truncated
