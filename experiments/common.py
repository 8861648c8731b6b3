"""Experiment configuration: one dataclass per experiment, whose fields are its flags, and the
one parser that turns a command line (and, with --resume, the run's saved config) into it."""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass, fields

from .errors import UsageError, exit_on_usage_error

__all__ = ["Config", "UsageError", "exit_on_usage_error", "parse_config", "saved_config"]

FRAMEWORKS = ("tinygrad_edu", "torch")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "none")
POSITIVE = ("epochs", "batch_size", "lr", "subset", "val_size", "per_class")  # > 0 and finite
NON_NEGATIVE = ("weight_decay", "momentum")
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
    for name, key in (("run.json", ("config",)), ("metrics.json", ("summary", "config"))):
        path = os.path.join(run_dir, name)
        try:
            with open(path) as f:
                value = json.load(f)
            for k in key:
                value = value[k]
            return value
        except (OSError, ValueError, KeyError, TypeError):
            continue
    raise UsageError(f"--resume {run_dir}: the directory holds no run.json or metrics.json with "
                     f"the run's config; was it written by an experiment?")


def check_experiment(run_dir: str, experiment: str | None) -> None:
    """A run is resumed by the experiment that started it (run.json says which)."""
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            started_by = json.load(f).get("experiment")
    except (OSError, ValueError, AttributeError):
        return  # an older run: saved_config says what it can
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
