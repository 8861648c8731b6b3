"""How every experiment CLI fails: one sentence on stderr and exit code 2 for anything the user
can fix (bad flags, missing or wrong data, a diverging run, a full disk), a traceback only with
--debug or TINYGRAD_EDU_DEBUG=1.

    def main(argv=None):
        return exit_on_usage_error(lambda: run(parse(argv)))
"""
from __future__ import annotations

import errno
import os
import sys
import warnings

from tinygrad_edu.data import DataError
from tinygrad_edu.serialization import CheckpointError
from tinygrad_edu.train import ResumeError, TrainingDiverged

DEBUG_ENV = "TINYGRAD_EDU_DEBUG"
NUMERIC_WARNINGS = "(overflow|invalid value|divide by zero) encountered"
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
               errno.EPERM: "permission denied"}


class UsageError(Exception):
    """A problem with the user's input: printed as one sentence, exit code 2."""


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped a run after its checkpoint was saved: exit code 130."""

    def __init__(self, checkpoint: str, experiment: str, run_dir: str):
        super().__init__(f"interrupted; the checkpoint is {checkpoint}: continue with "
                         f"python -m experiments.{experiment} --resume {run_dir}")


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
    except Exception as e:
        message = one_sentence(e)
        if message is None or debug_requested(argv):
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
