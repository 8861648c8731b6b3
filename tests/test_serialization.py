"""tg.save / tg.load: round trips, refusing pickles, atomic writes, damaged files."""
import io
import math
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict, namedtuple
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.serialization import STRUCTURE_KEY, CheckpointError, load, save

REPO = Path(__file__).resolve().parents[1]


def nested_state():
    """A checkpoint-like structure using every kind of value the format supports."""
    tg.manual_seed(0)
    tg.get_rng().random(5)  # move the generator off its seeded state
    return {
        "model": OrderedDict([("fc.weight", tg.randn(3, 4)), ("fc.bias", tg.zeros(3))]),
        "optimizer": {"state": {0: {"step": 7, "exp_avg": np.arange(12.0).reshape(3, 4)},
                                1: {"step": 7, "exp_avg": np.ones(3, np.float32)}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                                        "amsgrad": False, "name": None}]},
        "scheduler": {"best": math.inf, "worst": -math.inf, "last_epoch": 3,
                      "milestones": {30: 1, 80: 2}, "_last_lr": [0.1]},
        "epoch": 3,
        "rng": tg.get_rng_state(),
        "huge": [2**70, -(2**64), 2**63 - 1, -(2**63)],
        "scalars": [np.float32(1.5), np.int64(-2), np.bool_(True)],
        "ints": np.arange(5, dtype=np.int64),
        "half": np.full((2, 2), 0.1, np.float16),
        "empty": {"list": [], "dict": {}, "tuple": (), "array": np.zeros((0, 3))},
        "text": "a/b \u00e9",
    }


def assert_same(a, b, where="root"):
    """Equal values of equal types, recursively (arrays: dtype, shape and bits)."""
    assert type(a) is type(b) or (isinstance(a, dict) and type(b) is dict), (where, a, b)
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, (tg.Tensor, np.ndarray, np.generic)):
        x, y = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
        assert x.dtype == y.dtype and x.shape == y.shape, where
        np.testing.assert_array_equal(x, y, err_msg=where)
    else:
        assert a == b, (where, a, b)


def test_round_trip_keeps_structure_types_and_bits(tmp_path):
    state = nested_state()
    save(state, tmp_path / "ckpt.npz")
    assert_same(state, load(tmp_path / "ckpt.npz"))


def test_round_trip_of_nan_and_of_a_bare_array(tmp_path):
    save({"loss": math.nan}, tmp_path / "a.npz")
    assert math.isnan(load(tmp_path / "a.npz")["loss"])
    save(np.eye(3), tmp_path / "b.npz")
    np.testing.assert_array_equal(load(tmp_path / "b.npz"), np.eye(3))


def test_rng_state_round_trip_continues_the_same_random_stream(tmp_path):
    tg.manual_seed(123)
    tg.get_rng().random(10)
    save({"rng": tg.get_rng_state()}, tmp_path / "rng.npz")
    expected = tg.get_rng().random(4)
    tg.manual_seed(999)
    tg.set_rng_state(load(tmp_path / "rng.npz")["rng"])
    np.testing.assert_array_equal(tg.get_rng().random(4), expected)


def test_file_is_a_plain_npz_with_readable_keys(tmp_path):
    save(nested_state(), tmp_path / "ckpt.npz")
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as npz:
        assert STRUCTURE_KEY in npz.files
        assert "model/fc.weight" in npz.files and "optimizer/state/0/exp_avg" in npz.files
        assert npz[STRUCTURE_KEY].dtype == np.uint8


def test_colliding_flattened_keys_are_kept_apart(tmp_path):
    state = {"a/b": np.zeros(2), "a": {"b": np.ones(2)}}
    save(state, tmp_path / "c.npz")
    assert_same(state, load(tmp_path / "c.npz"))


@pytest.mark.parametrize("bad, words", [
    ({"x": object()}, "cannot store a object at 'x'"),
    ({"x": np.array([1, "a", None], dtype=object)}, "dtype object"),
    ({(1, 2): 3}, "dict key (1, 2)"),
    ({"p": namedtuple("Phase", "end start")(1, 2)}, "namedtuple Phase"),
])
def test_save_refuses_what_it_cannot_store_faithfully(tmp_path, bad, words):
    with pytest.raises(TypeError) as info:
        save(bad, tmp_path / "x.npz")
    assert words in str(info.value)
    assert not os.path.exists(tmp_path / "x.npz")


class _Evil:
    """Unpickling this creates a file: the proof that code ran."""
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_object_array_in_npz_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.npz"
    np.savez(path, **{STRUCTURE_KEY: np.frombuffer(b"{}", np.uint8),
                      "x": np.array([_Evil(str(marker))], dtype=object)})
    with pytest.raises(CheckpointError, match="refusing .*evil.npz.*pickled"):
        load(path)
    assert not marker.exists()


def test_pickle_file_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": _Evil(str(marker))}))
    with pytest.raises(CheckpointError, match="refusing .*evil.pt.*pickled"):
        load(path)
    assert not marker.exists()


def test_exception_during_save_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save({"w": np.zeros(3)}, path)
    calls = []

    def failing_write(f, array, allow_pickle):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        real_write(f, array, allow_pickle=allow_pickle)

    real_write = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="simulated"):
        save({"w": np.ones(3), "v": np.ones(3)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path)["w"], np.zeros(3))
    assert os.listdir(tmp_path) == ["ckpt.npz"]


KILLED_WRITER = """
import sys, time
import numpy as np
from tinygrad_edu.serialization import save
real_write = np.lib.format.write_array
def slow_write(f, array, allow_pickle):
    real_write(f, array, allow_pickle=allow_pickle)
    if array.size > 1000:                      # half of the big checkpoint is on disk
        print("writing", flush=True)
        time.sleep(60)
np.lib.format.write_array = slow_write
save({"a": np.ones(100_000), "b": np.ones(100_000)}, sys.argv[1])
"""


def test_kill_during_save_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1, "w": np.zeros(3)}, path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"   # killed in the middle of the write
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    leftovers = [name for name in os.listdir(tmp_path) if name != "ckpt.npz"]
    assert leftovers and all(name.startswith(".ckpt.npz.") for name in leftovers)
    assert_same(load(path), {"epoch": 1, "w": np.zeros(3)})


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_file_raises_naming_the_file_and_what_to_do(tmp_path, damage):
    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF    # inside the array's bytes: the zip CRC catches it
    elif damage == "garbage":
        data = bytearray(b"not a checkpoint at all")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="ckpt.npz is corrupt or truncated.*earlier"):
        load(path)


def test_plain_npz_is_not_taken_for_a_checkpoint(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.ones(2))
    with pytest.raises(CheckpointError, match="plain.npz .* not a tinygrad_edu checkpoint"):
        load(tmp_path / "plain.npz")


def test_damaged_structure_is_reported(tmp_path):
    path = tmp_path / "ckpt.npz"
    np.savez(path, **{STRUCTURE_KEY: np.frombuffer(b'{"format": "tinygrad_edu.checkpoint", '
                                                   b'"version": 1, "root": {"array": "gone"}}',
                                                   np.uint8)})
    with pytest.raises(CheckpointError, match="structure description in .*ckpt.npz is damaged"):
        load(path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load(tmp_path / "nothing.npz")


def test_model_state_round_trip_and_wrong_shape_names_the_key(tmp_path):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    save(model.state_dict(), tmp_path / "model.npz")
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    other.load_state_dict(load(tmp_path / "model.npz"))
    for (name, p), q in zip(model.named_parameters(), other.parameters(),
                            strict=True):
        np.testing.assert_array_equal(p.array, q.array, err_msg=name)
    wider = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(RuntimeError, match=r"0\.weight: checkpoint \(8, 4\), model \(16, 4\)"):
        wider.load_state_dict(load(tmp_path / "model.npz"))


def test_public_names():
    assert tg.save is save and tg.load is load


# ---------------------------------------------------------------- torch's signature and formats


def test_file_objects_and_torch_keyword_arguments(tmp_path):
    buffer = io.BytesIO()
    save({"w": tg.ones(2, 3), "epoch": 2}, buffer, pickle_protocol=4)
    buffer.seek(0)
    out = load(buffer, map_location="cpu", weights_only=True)
    assert out["epoch"] == 2 and out["w"].tolist() == [[1.0] * 3] * 2
    save({"w": tg.zeros(1)}, tmp_path / "a.pt")
    assert load(tmp_path / "a.pt", map_location=tg.device("cpu"))["w"].tolist() == [0.0]
    assert load(tmp_path / "a.pt", map_location={"cuda:0": "cpu"})["w"].shape == (1,)
    assert load(tmp_path / "a.pt", map_location=lambda storage, loc: storage)["w"].shape == (1,)
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        load(tmp_path / "a.pt", map_location="cuda")


def test_safetensors_round_trip_any_state_dict(tmp_path):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    path = tmp_path / "model.safetensors"
    save(model.state_dict(), path)
    loaded = load(path)
    assert set(loaded) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert loaded[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded[k].array, v.array, err_msg=k)
    safetensors = pytest.importorskip("safetensors.numpy")
    assert set(safetensors.load_file(str(path))) == set(model.state_dict())   # a real file
    with pytest.raises(TypeError, match="flat dict of tensors"):
        save({"model": model.state_dict()}, tmp_path / "nested.safetensors")


def test_damaged_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    save({"w": tg.ones(4)}, path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="safetensors file is damaged"):
        load(path)


PT_READER = """
import sys
import zipfile
sys.modules["torch"] = None      # no PyTorch in this process: importing it fails
import numpy as np
import tinygrad_edu as tg
state = tg.load(sys.argv[1])
expected = np.load(sys.argv[2])
for k in expected.files:
    assert np.array_equal(state["model"][k].array, expected[k]), k
assert state["epoch"] == 3 and state["names"] == ["a", "b"] and state["lr"] == 0.5
print("ok", len(expected.files))
"""


def test_reads_a_real_pytorch_file_without_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(2, 3))
    net(torch.randn(4, 1, 3, 3))                 # running statistics and num_batches_tracked
    state = net.state_dict()
    state["extra.strided"] = torch.arange(12.0).reshape(3, 4).t()[1:]   # offset and strides
    state["extra.half"] = torch.tensor([0.5, -2.0], dtype=torch.float16)
    state["extra.bf16"] = torch.tensor([1.5, -3.0], dtype=torch.bfloat16)
    torch.save({"model": state, "epoch": 3, "names": ["a", "b"], "lr": 0.5}, tmp_path / "m.pt")
    np.savez(tmp_path / "expected.npz", **{k: v.float().numpy() if v.dtype == torch.bfloat16
                                           else v.numpy() for k, v in state.items()})
    done = subprocess.run([sys.executable, "-c", PT_READER, str(tmp_path / "m.pt"),
                           str(tmp_path / "expected.npz")], check=False, capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", str(len(state))]


def test_pytorch_weights_load_into_the_twin():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(3 * 4 * 4, 5))
    buffer = io.BytesIO()
    torch.save(theirs.state_dict(), buffer)
    buffer.seek(0)
    ours = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    ours.load_state_dict(load(buffer))
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(tg.tensor(x)).array, theirs(torch.from_numpy(x)).detach(),
                               atol=1e-5)


def _torch_zip(tmp_path, payload: bytes) -> Path:
    """A file laid out like torch.save's zip, with `payload` as its data.pkl."""
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", payload)
        zf.writestr("evil/byteorder", "little")
        zf.writestr("evil/version", "3\n")
    return path


@pytest.mark.parametrize("weights_only", [True, False])
def test_pytorch_file_with_code_is_refused_without_running_it(tmp_path, weights_only):
    marker = tmp_path / "code_ran"
    path = _torch_zip(tmp_path, pickle.dumps({"w": _Evil(str(marker))}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing .*evil.pt: it holds .*only running code"):
        load(path, weights_only=weights_only)
    assert not marker.exists()


def test_whole_pickled_torch_model_is_refused_with_advice(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="holds torch.nn.modules.linear.Linear.*state_dict"):
        load(tmp_path / "model.pt")
