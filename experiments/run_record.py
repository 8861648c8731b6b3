"""What a run directory says about itself: run.json (which model, trained on what, fed how) and
the one checkpoint payload. Everything that reads a finished run (visualize, the activations
figure, resume) reads these instead of guessing.

    write_text_atomic(path, record_json(RunRecord(experiment="mnist_cnn3", ...)))  # run.json
    record = read_record(run_dir)              # None for a run written before run.json existed
    x = record.preprocessing.apply(pictures)   # (N, C, H, W) in [0, 1] -> the model's input
"""
from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import models
import tinygrad_edu as tg
from tinygrad_edu.data import transforms as T
from tinygrad_edu.data.mnist import DATASETS
from tinygrad_edu.serialization import CheckpointError

from . import UsageError

RUN_FILE = "run.json"
CHECKPOINT = "checkpoint.npz"  # the finished run's weights
LAST = "last.npz"  # fit's resumable checkpoint, written every epoch and on Ctrl-C


@dataclass
class Preprocessing:
    """How an image in [0, 1] becomes the model's input: (x - mean) / std per channel, at
    size x size with `channels` channels. dark_background: the data set draws bright things on
    black (MNIST, lines), so a picture with a light background is inverted before it is fed."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int
    channels: int
    dark_background: bool

    def apply(self, pictures: np.ndarray) -> np.ndarray:
        """(N, C, H, W) pictures in [0, 1] -> normalised float32 input."""
        return ((pictures - self._column(self.mean)) / self._column(self.std)).astype(np.float32)

    def undo(self, x: np.ndarray) -> np.ndarray:
        """The model's input -> pictures in [0, 1] (what people see)."""
        return np.clip(x * self._column(self.std) + self._column(self.mean), 0, 1)

    def transform(self):
        """The data-set transform that feeds the model so: pictures -> normalised tensors."""
        return T.Compose([T.ToTensor(), T.Normalize(self.mean, self.std)])

    def _column(self, values) -> np.ndarray:
        v = np.asarray(values, np.float32)
        return np.broadcast_to(v, (self.channels,)).reshape(1, self.channels, 1, 1)


@dataclass
class RunRecord:
    """run.json: enough to rebuild the trained model and feed it as it was fed.

    heads maps each output head of a multi-head network to its value names (empty for a
    network with one output, whose classes are class_names)."""

    experiment: str
    model_name: str  # a models.MODELS name
    model_config: dict  # the model's `config`: models.get_model(model_name, **model_config)
    framework: str
    dataset: str
    preprocessing: Preprocessing
    class_names: list[str]
    config: dict  # every flag of the run
    heads: dict[str, list[str]] = field(default_factory=dict)
    code_version: str = field(default_factory=lambda: code_version())


def code_version() -> str:
    """`git describe --always --dirty` of the source tree, or 'unknown' outside a checkout."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              check=False, text=True, timeout=10, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def record_json(record: RunRecord) -> str:
    """The text of run.json (the runner writes it with report.write_text_atomic)."""
    return json.dumps(asdict(record), indent=1, default=_json_default) + "\n"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"run.json: cannot store a {type(value).__name__}")


def read_record(run_dir: str) -> RunRecord | None:
    """The RunRecord of a run directory; None when it has no run.json (an older run)."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
        data["preprocessing"] = Preprocessing(**data["preprocessing"])
        return RunRecord(**data)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{path} is damaged ({e}); the run cannot be read") from None


def run_status(summary: dict) -> str:
    """A run's status as metrics.json says it, except that a run still marked "running" whose
    process is gone (killed with -9, or its machine rebooted) is "interrupted"."""
    status = summary.get("status", "?")
    if status != "running" or summary.get("host") != socket.gethostname():
        return status
    pid = summary.get("pid")
    try:
        os.kill(int(pid), 0)  # signal 0: does the process exist?
    except ProcessLookupError:
        return "interrupted"
    except (TypeError, ValueError, PermissionError):
        return status  # no pid recorded, or someone else's live process
    return status


@contextmanager
def metrics_lock(run_dir: str):
    """An exclusive lock on run_dir (flock on the directory itself) for a read-modify-write of
    its metrics.json: a sweep's driver writing a trial's final status and the trial it has
    just stopped may rewrite the file at the same moment (the trial's "stopped_early" was seen
    to overwrite the driver's "interrupted"). Without fcntl (Windows): no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def drop_points_after_checkpoint(logger, path: str) -> None:
    """Forget the curve points a run logged after its checkpoint `path` (a kill -9 between an
    epoch's log and its checkpoint): the resumed run logs them again, so metrics.json never
    lists an epoch twice. Per-iteration tags (..._iter) count optimizer steps, the rest epochs."""
    if not os.path.isfile(path):
        return
    state = tg.load(path)
    for tag, points in logger.history.items():
        limit = state["step"] if tag.endswith("_iter") else state["epoch"]
        logger.history[tag] = [p for p in points if p[0] <= limit]


def remove_stray_temporaries(run_dir: str) -> None:
    """Delete the temporary files of a save that a kill interrupted (.name.XXXX.tmp)."""
    for name in os.listdir(run_dir):
        if name.startswith(".") and name.endswith(".tmp"):
            os.remove(os.path.join(run_dir, name))


def checkpoint_payload(state: dict, record: RunRecord) -> dict:
    """The one checkpoint.npz payload: weights plus the model that holds them."""
    return {"model": state, "model_name": record.model_name, "model_config": record.model_config}


# ---- reading a trained model back ----------------------------------------------------------

# MNIST's and Fashion-MNIST's pixel mean and std of the training images (the published values)
NORMALISATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}


def mnist_preprocessing(dataset: str) -> Preprocessing:
    """How MNIST or Fashion-MNIST (`dataset`) is fed: 28x28 gray, normalised, dark background."""
    mean, std = NORMALISATION[dataset]
    return Preprocessing(mean=(mean,), std=(std,), size=28, channels=1, dark_background=True)


def mnist_class_names(dataset: str) -> list[str]:
    """The digits '0'..'9' for MNIST, the clothing names for Fashion-MNIST."""
    if dataset == "mnist":
        return [str(d) for d in range(10)]
    return list(DATASETS[dataset].classes)


MNIST_INPUT = mnist_preprocessing("mnist")  # runs from before run.json: all MNIST


@dataclass
class Trained:
    """A trained model ready to use, and what its run recorded (None for a bare checkpoint)."""

    model: object
    name: str
    framework: str  # "tinygrad_edu", or "torch" for the PyTorch twin
    record: RunRecord | None

    @property
    def label(self) -> str:
        return f"{self.name} {'torch' if self.framework == 'torch' else 'scratch'}"

    @property
    def preprocessing(self) -> Preprocessing:
        if self.record is not None:
            return self.record.preprocessing
        config = getattr(self.model, "config", {})
        return Preprocessing(MNIST_INPUT.mean, MNIST_INPUT.std, config.get("image_size", 28),
                             config.get("in_channels", 1), True)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        p = self.preprocessing
        return p.channels, p.size, p.size

    @property
    def heads(self) -> dict[str, list[str]]:
        return self.record.heads if self.record is not None else {}

    @property
    def class_names(self) -> list[str] | None:
        return self.record.class_names if self.record is not None else None


def checkpoint_file(path: str) -> str:
    """The weights of a run directory (checkpoint.npz, else last.npz) or the file itself."""
    if os.path.isdir(path):
        for name in (CHECKPOINT, LAST):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise UsageError(f"run directory {path} holds no {CHECKPOINT} or {LAST}; was the run "
                         f"started?")
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path} does not exist")
    return path


@dataclass
class Checkpoint:
    state: dict  # name -> numpy array
    model_name: str | None  # the registry name, if the checkpoint records it
    model_config: dict  # keyword arguments of the model (empty: its defaults)


def _load_torch_file(file: str):
    """A torch.save'd state dict (.pt/.pth), read without running code (weights_only)."""
    try:
        import torch
    except ImportError:
        raise UsageError(f"{file} is a PyTorch file; reading it needs torch "
                         f"(pip install torch==2.13.0)") from None
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot read checkpoint {file}: {reason}") from None
    return {k: v.detach().numpy() if hasattr(v, "detach") else v for k, v in obj.items()} \
        if isinstance(obj, dict) else obj


def read_checkpoint(file: str) -> Checkpoint:
    """The weights in a checkpoint file and what it records about the model; a weight that
    is NaN or infinite is a UsageError naming it."""
    try:
        obj = _load_torch_file(file) if file.endswith((".pt", ".pth")) else tg.load(file)
    except (CheckpointError, OSError, ValueError) as e:
        raise UsageError(f"cannot read checkpoint {file}: {e}") from None
    if not isinstance(obj, dict):
        raise UsageError(f"checkpoint {file} holds a {type(obj).__name__}, not a state dict")
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise UsageError(f"checkpoint {file} holds no state dict (a dict of arrays, or one "
                         f"under the key 'model')")
    state = {k: np.asarray(getattr(v, "data", v)) for k, v in state.items()}
    for k, v in state.items():
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            raise UsageError(f"checkpoint {file}: tensor {k!r} holds NaN or infinite values "
                             f"(the run diverged); use an earlier checkpoint")
    name = obj.get("model_name") if isinstance(obj.get("model_name"), str) else None
    config = obj.get("model_config") if isinstance(obj.get("model_config"), dict) else {}
    return Checkpoint(state, name, config)


def _metrics_framework(run_dir: str) -> str:
    """The framework recorded in an older run's metrics.json, if any."""
    try:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            summary = json.load(f).get("summary", {})
    except (OSError, ValueError):
        return "tinygrad_edu"
    return summary.get("framework") or summary.get("config", {}).get("framework", "tinygrad_edu")


def build_model(name: str, framework: str, config: dict | None = None, state: dict | None = None):
    """models' `name` (or its PyTorch twin) built with `config`, with `state` loaded if given;
    a state of another architecture is a UsageError."""
    if name not in models.MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(models.MODELS)}")
    try:
        if framework == "torch":
            import torch
            model = models.get_torch_model(name, **(config or {}))
            state = None if state is None else {k: torch.from_numpy(v) for k, v in state.items()}
        else:
            model = models.get_model(name, **(config or {}))
    except ImportError:
        raise UsageError("the run was trained with PyTorch; showing it needs torch "
                         "(pip install torch==2.13.0)") from None
    except (TypeError, ValueError) as e:
        raise UsageError(f"cannot build model {name!r} with {config}: {e}") from None
    if state is not None:
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as e:
            reason = " ".join(str(e).split())  # torch's message spans several lines
            raise UsageError(f"the checkpoint does not fit model {name!r} ({reason}); it holds "
                             f"another architecture: pass the right --model") from None
    return model


def load_trained(path: str, model_name: str | None = None) -> Trained:
    """The model of a run directory or checkpoint file, as its run trained it (run.json:
    name, constructor config, framework); model_name overrides the recorded name."""
    file = checkpoint_file(path)
    run_dir = os.path.dirname(file)
    record = read_record(run_dir)
    ckpt = read_checkpoint(file)
    recorded = ckpt.model_name or (record.model_name if record else None)
    name = model_name or recorded
    if name is None:
        raise UsageError(f"checkpoint {path} does not record its model; pass --model "
                         f"({', '.join(models.MODELS)})")
    config = (ckpt.model_config or (record.model_config if record else {})) \
        if name == recorded else {}
    if file.endswith((".pt", ".pth")):
        framework = "torch"
    else:
        framework = record.framework if record else _metrics_framework(run_dir)
    model = build_model(name, framework, config, ckpt.state)
    return Trained(model, name, framework, record)
