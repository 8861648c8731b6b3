"""Shared experiment configuration: a dataclass, its command line, and user-facing failures."""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, fields

FRAMEWORKS = ("tinygrad_edu", "torch")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")


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
    """Build a Config from the command line; `defaults` sets each experiment's defaults."""
    parser = argparse.ArgumentParser(description=description)
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "progress":
            parser.add_argument("--no-progress", dest="progress", action="store_false",
                                help="no progress bar (for logs)")
        elif f.name == "framework":
            parser.add_argument(flag, default=default, choices=FRAMEWORKS)
        elif f.name == "optimizer":
            parser.add_argument(flag, default=default, choices=OPTIMIZERS)
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if f.name in ("subset", "data_dir", "name"):
                kind = int if f.name == "subset" else str
            parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args(argv)
    return Config(**vars(args))


def exit_on_usage_error(fn):
    """Run `fn()`; a UsageError becomes one line on stderr and exit code 2, no traceback."""
    try:
        return fn()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
