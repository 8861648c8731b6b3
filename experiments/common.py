"""The experiment contract. An experiment is a config (a dataclass whose fields are its flags,
parsed here) and a `build(cfg) -> Setup` (everything one run needs); the runner does the rest.
Here too: how every CLI fails (one sentence, exit code 2) and what the shared flags make (the
optimizer, the lr schedule, the --subset of a data set).

    cfg = parse_config(MNISTConfig(model="cnn3"), argv)   # flags -> config (--resume too)
    cfg.seed_generators()                                 # before anything is built
    setup = build(cfg)                                    # model, optimizer, loaders, ...
"""
from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np

import models
import tinygrad_edu as tg
from tinygrad_edu.data import DataError, Subset
from tinygrad_edu.serialization import CheckpointError
from tinygrad_edu.train import ResumeError, TrainingDiverged

from . import UsageError

__all__ = ["Config", "Report", "Result", "Setup", "UsageError", "exit_on_usage_error", "parse_config",
           "saved_config"]

FRAMEWORKS = ("tinygrad_edu", "torch")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "none")
POSITIVE = ("epochs", "batch_size", "lr", "subset", "val_size", "per_class", "kernel_size",
            "hidden")  # > 0 and finite
NON_NEGATIVE = ("weight_decay", "momentum", "padding")
# flags that say how to run, not what: they may differ between a run and its resumption
NOT_COMPARED = ("resume", "override", "progress", "logdir")


@dataclass
class Config:
    """One training run; every field is also a command-line flag (`--batch-size` etc.)."""

    model: str = "cnn3"
    framework: str = "tinygrad_edu"
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.0  # SGD's momentum (PyTorch's default: none)
    schedule: str = "cosine"  # lr per epoch: cosine to ~0 over the run, step (x0.1 at 2/3), none
    seed: int = 0
    data_dir: str | None = None
    logdir: str = "runs"
    subset: int | None = None
    name: str | None = None
    progress: bool = True
    resume: str | None = None  # a run directory: continue it from its last checkpoint
    override: bool = False  # with --resume: apply flags that differ from the run's (recorded)

    def to_dict(self) -> dict:
        return asdict(self)

    def seed_generators(self) -> None:
        """Seed tinygrad_edu's and numpy's generators (and torch's, for --framework torch:
        dropout in the twin) with --seed. Called before anything is built (weights, splits,
        shuffling), so the same command gives the same numbers."""
        tg.manual_seed(self.seed)
        np.random.seed(self.seed)
        if getattr(self, "framework", "tinygrad_edu") == "torch":
            import torch
            torch.manual_seed(self.seed)


def parse_config(defaults: Config, argv=None, description: str = "",
                 experiment: str | None = None) -> Config:
    """A config of `defaults`' class from the command line; `defaults` sets each experiment's
    defaults. A bool field is a --flag / --no-flag pair, and a field named in the class's
    CHOICES takes one of its values. With --resume RUN_DIR the run's saved config is the
    default, and a flag given with another value is refused unless --override is given; the
    run must be one of `experiment` (the module name) if given. Bad values are UsageErrors."""
    cls = type(defaults)
    parser = _parser(cls, defaults, description)
    values = vars(parser.parse_args(argv))
    values.pop("debug", None)  # read by errors.exit_on_usage_error
    cfg = cls(**values)
    if cfg.resume is not None:
        given = _parser(cls, defaults, description, argparse.SUPPRESS).parse_args(argv)
        check_experiment(cfg.resume, experiment)
        cfg = _resumed(cls, cfg.resume, vars(given), cfg.override)
    check_values(cfg)
    return cfg


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is a UsageError (one sentence, exit code 2) like every other
    mistake, not a usage block."""

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


def _parser(cls, defaults: Config, description: str, default_of=None):
    """The parser of `cls`' fields; default_of=SUPPRESS leaves out every flag not given."""
    choices = {"framework": FRAMEWORKS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES} | getattr(
        cls, "CHOICES", {})
    parser = ArgumentParser(description=description, argument_default=default_of)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error (also TINYGRAD_EDU_DEBUG=1)")
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name) if default_of is None else default_of
        if f.name == "progress":
            parser.add_argument("--no-progress", dest="progress", action="store_false",
                                default=default, help="no progress bar (for logs)")
        elif isinstance(getattr(defaults, f.name), bool):
            parser.add_argument(flag, default=default, action=argparse.BooleanOptionalAction)
        elif f.name in choices:
            parser.add_argument(flag, default=default, choices=choices[f.name])
        else:
            parser.add_argument(flag, type=_field_type(f), default=default)
    return parser


def _field_type(f) -> type:
    """int, float or str, from the field's annotation ('int | None' -> int)."""
    return {"int": int, "float": float}.get(str(f.type).split("|")[0].strip(), str)


def saved_config(run_dir: str) -> dict:
    """The flags a run directory was started with (run.json, else metrics.json's summary)."""
    if not os.path.isdir(run_dir):
        raise UsageError(f"--resume {run_dir} is not a run directory")
    config = recorded(run_dir, "config")
    if config is not None:
        return config
    raise UsageError(f"--resume {run_dir}: the directory holds no run.json or metrics.json with "
                     f"the run's config; was it written by an experiment?")


def recorded(run_dir: str, key: str):
    """What a run directory records under `key`: run.json's, else metrics.json's summary's
    (a directory of several runs, runner.run_parts, has only the latter); None if neither."""
    for name, keys in (("run.json", (key,)), ("metrics.json", ("summary", key))):
        try:
            with open(os.path.join(run_dir, name)) as f:
                value = json.load(f)
            for k in keys:
                value = value[k]
            return value
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def check_experiment(run_dir: str, experiment: str | None) -> None:
    """A run is resumed by the experiment that started it (run.json or, for several runs as
    one, metrics.json says which; an older run may say nothing)."""
    started_by = recorded(run_dir, "experiment")
    if experiment is not None and started_by not in (None, experiment):
        raise UsageError(f"--resume {run_dir}: that is a {started_by} run; continue it with "
                         f"python -m experiments.{started_by} --resume {run_dir}")


def _resumed(cls, run_dir: str, given: dict, override: bool) -> Config:
    """The saved config of run_dir with the flags in `given`, checked for changes."""
    given.pop("debug", None)
    saved = {k: v for k, v in saved_config(run_dir).items() if k in {f.name for f in fields(cls)}}
    changed = {k: v for k, v in given.items()
               if k not in NOT_COMPARED and k in saved and _differs(saved[k], v)}
    if changed and not override:
        k, v = next(iter(changed.items()))
        raise UsageError(f"--resume {run_dir}: --{k.replace('_', '-')} {v} differs from the "
                         f"run's {saved[k]}; leave it out to continue the run as it was, or add "
                         f"--override to apply it")
    cfg = cls(**(saved | given | {"resume": run_dir, "override": override}))
    cfg.overridden = {k: [saved[k], v] for k, v in changed.items()}
    return cfg


def _differs(saved, given) -> bool:
    if isinstance(saved, list):
        saved = tuple(saved)
    return saved != given


def check_values(cfg: Config) -> None:
    """UsageErrors for counts and rates that are not positive and finite."""
    for name in POSITIVE + NON_NEGATIVE:
        value = getattr(cfg, name, None)
        if value is None or isinstance(value, bool):
            continue
        low_ok = value >= 0 if name in NON_NEGATIVE else value > 0
        if not (math.isfinite(value) and low_ok):
            need = "zero or more" if name in NON_NEGATIVE else "a positive number"
            raise UsageError(f"--{name.replace('_', '-')} must be {need}, got {value}")


def check_framework(cfg: Config) -> None:
    """--framework torch needs PyTorch installed; a UsageError says how to get it."""
    if cfg.framework == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError("--framework torch needs PyTorch: pip install torch==2.13.0 "
                             "(the CPU build), or run with --framework tinygrad_edu") from None


# ---- what build returns ----------------------------------------------------------------------

@dataclass
class Setup:
    """Everything one run needs, as an experiment's build(cfg) returns it: what the training
    loop takes (model, optimizer, loaders, loss, scheduler, metrics_fn), then what run.json
    records (the network's registry name and config, the data set, its preprocessing, class
    and head names), the run directory's default name and what the report needs besides."""

    model: object  # what is trained: a tinygrad_edu Module, or its twin for --framework torch
    optimizer: object
    train_loader: object
    val_loader: object  # validated after every epoch: the test split of most experiments
    model_name: str  # a models.MODELS name: models.get_model(model_name, **model_config)
    model_config: dict
    dataset: str
    preprocessing: object  # run_record.Preprocessing: an image in [0, 1] -> the model's input
    class_names: list[str]
    name: str  # the run directory's default name (--name replaces it)
    loss_fn: Callable | None = None  # None: cross-entropy
    scheduler: object = None
    metrics_fn: Callable | None = None  # (outputs, targets) -> {name: value}, every epoch
    heads: dict[str, list[str]] = field(default_factory=dict)  # head -> value names
    network: object = None  # the network saved, if `model` wraps it for training
    data: object = None  # what the experiment's report reads besides (e.g. the test images)

    @property
    def saved(self):
        """The network whose weights checkpoint.npz holds."""
        return self.model if self.network is None else self.network


@dataclass
class Result:
    """What training gave, for the experiment's finish: the history (per-epoch curves, as
    tg.train.fit's History.as_dict), the wall time, and `evaluate(loader=None)`: (loss,
    accuracy, outputs, targets) of the trained model on a loader (default: validation)."""

    history: dict
    wall_seconds: float
    evaluate: Callable
    parameters: int

    def timing(self) -> dict:
        """Wall time, mean seconds per epoch and median ms per iteration."""
        return {"wall_seconds": self.wall_seconds,
                "seconds_per_epoch": float(np.mean(self.history["epoch_time"])),
                "ms_per_iter": float(np.median(self.history["ms_per_iter"]))}


@dataclass
class Report:
    """What an experiment's finish returns: the summary entries of metrics.json (besides the
    runner's: parameters, times, history, config, status), report.html's title and sections,
    the metrics of TensorBoard's HPARAMS tab and the line printed at the end."""

    summary: dict
    title: str
    sections: list
    hparam_metrics: dict
    line: str


def trainable(cfg: Config, model, scheduler_fn: Callable | None = None) -> tuple:
    """(model, optimizer, scheduler) in cfg.framework: the model itself or its PyTorch twin
    (same initial weights), cfg's optimizer over its parameters, and scheduler_fn(optimizer)
    (default: cfg.schedule stepped once per epoch; None for 'none')."""
    if cfg.framework == "torch":
        model = models.to_torch(model)
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = (scheduler_fn or epoch_scheduler(cfg))(optimizer)
    return model, optimizer, scheduler


def make_optimizer(cfg: Config, params):
    """cfg.optimizer over `params` with cfg.lr and cfg.weight_decay (and cfg.momentum for
    SGD), from torch.optim for --framework torch (the same names and arguments)."""
    optim = tg.optim
    if getattr(cfg, "framework", "tinygrad_edu") == "torch":
        import torch
        optim = torch.optim
    opt = {"adam": optim.Adam, "sgd": optim.SGD, "adamw": optim.AdamW,
           "rmsprop": optim.RMSprop}[cfg.optimizer]
    kwargs = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    return opt(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs)


def epoch_scheduler(cfg: Config) -> Callable:
    """`optimizer -> scheduler` for cfg.schedule in the run's framework, stepped once per
    epoch: cosine to ~0 over the run, step (x0.1 at 2/3 of it); None for 'none'."""
    def make(optimizer):
        if cfg.schedule == "none":
            return None
        if cfg.framework == "torch":
            from torch.optim import lr_scheduler
        else:
            from tinygrad_edu.optim import lr_scheduler
        if cfg.schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        return lr_scheduler.StepLR(optimizer, step_size=max(1, 2 * cfg.epochs // 3), gamma=0.1)
    return make


def subset(dataset, n: int | None, seed: int):
    """The first `n` samples of a seeded permutation (all of them when n is None)."""
    if n is None:
        return dataset
    if not 0 < n <= len(dataset):
        raise UsageError(f"--subset {n} must be between 1 and the {len(dataset)} training "
                         f"images")
    return Subset(dataset, np.random.default_rng(seed).permutation(len(dataset))[:n])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ---- how a CLI fails -------------------------------------------------------------------------
# One sentence on stderr and exit code 2 for anything the user can fix (bad flags, missing or
# wrong data, a diverging run, a full disk), a traceback only with --debug or
# TINYGRAD_EDU_DEBUG=1:  def main(argv=None): return exit_on_usage_error(lambda: run(...), argv)

DEBUG_ENV = "TINYGRAD_EDU_DEBUG"
NUMERIC_WARNINGS = "(overflow|invalid value|divide by zero) encountered"
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
               errno.EPERM: "permission denied"}


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the run in run_dir: exit code 130 and the message, the
    runner's one sentence (runner.interrupted: the checkpoint and the resume command, or that
    the run stopped before its first checkpoint)."""

    def __init__(self, message: str, run_dir: str):
        self.run_dir = run_dir
        super().__init__(message)


def debug_requested(argv: list[str] | None = None) -> bool:
    """--debug on the command line, or TINYGRAD_EDU_DEBUG=1 in the environment."""
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_sentence(e: BaseException) -> str | None:
    """The user-facing sentence for an expected failure, or None for a bug."""
    if isinstance(e, (UsageError, DataError, CheckpointError)):
        return " ".join(str(e).split())
    if isinstance(e, (TrainingDiverged, ResumeError)):
        return " ".join(str(e).removeprefix("fit: ").split())
    if isinstance(e, OSError) and e.errno in DISK_ERRORS:
        where = e.filename or "the run directory"
        return (f"cannot write {where}: {DISK_ERRORS[e.errno]}; the previous checkpoint (if "
                f"any) is kept: free space or pass another --logdir")
    return None


def exit_on_usage_error(fn, argv: list[str] | None = None):
    """Run `fn()`; an expected failure becomes one line on stderr and exit code 2, no
    traceback (unless debug_requested)."""
    try:
        with warnings.catch_warnings():
            # numpy's overflow warnings as a run diverges: fit says what happened, in words
            warnings.filterwarnings("ignore", NUMERIC_WARNINGS, RuntimeWarning)
            return fn()
    except RunInterrupted as e:
        print(str(e), file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:  # outside a run (loading data, building): nothing to resume
        if debug_requested(argv):
            raise
        print("interrupted (Ctrl-C) before anything was saved: run the command again",
              file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        message = one_sentence(e)
        if message is None or debug_requested(argv):
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
