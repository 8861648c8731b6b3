"""Shared experiment configuration: a dataclass, its command line, and user-facing failures."""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, fields

FRAMEWORKS = ("tinygrad_edu", "torch")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "none")


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
    schedule: str = "cosine"  # lr per epoch: cosine to ~0 over the run, step (x0.1 at 2/3), none
    seed: int = 0
    data_dir: str | None = None
    logdir: str = "runs"
    subset: int | None = None
    name: str | None = None
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class UsageError(Exception):
    """A problem with the user's input: printed as one sentence, exit code 2."""


def parse_config(defaults: Config, argv=None, description: str = "") -> Config:
    """Build a config of `defaults`' class from the command line; `defaults` sets each
    experiment's defaults. Subclasses of Config add flags by adding fields; a bool field is
    a --flag / --no-flag pair, and a field named in CHOICES takes one of its values."""
    cls = type(defaults)
    choices = {"framework": FRAMEWORKS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES} | getattr(
        cls, "CHOICES", {})
    parser = argparse.ArgumentParser(description=description)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "progress":
            parser.add_argument("--no-progress", dest="progress", action="store_false",
                                help="no progress bar (for logs)")
        elif isinstance(default, bool):
            parser.add_argument(flag, default=default, action=argparse.BooleanOptionalAction)
        elif f.name in choices:
            parser.add_argument(flag, default=default, choices=choices[f.name])
        else:
            parser.add_argument(flag, type=_field_type(f), default=default)
    args = parser.parse_args(argv)
    return cls(**vars(args))


def _field_type(f) -> type:
    """int, float or str, from the field's annotation ('int | None' -> int)."""
    return {"int": int, "float": float}.get(str(f.type).split("|")[0].strip(), str)


def exit_on_usage_error(fn):
    """Run `fn()`; a UsageError becomes one line on stderr and exit code 2, no traceback."""
    try:
        return fn()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
