"""One trial of a sweep, run by Ray Tune on a worker: an ordinary tg.train.fit run in its own
run directory, which reports to Tune and hands Tune its checkpoint after every epoch.

A trial whose worker or node dies, or which raises, is started again by Tune (up to the
config's max_failures) with the last checkpoint it reported, on any node, and `fit` resumes
from it exactly. A trial whose loss becomes NaN (TrainingDiverged) ends as "diverged": a
retry would diverge again.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import tinygrad_edu as tg
from tinygrad_edu.logging import Logger
from tinygrad_edu.train import History, TrainingDiverged, make_readable

from ..common import UsageError
from ..run_record import drop_points_after_checkpoint
from .config import trial_params
from .setups import find_experiment, make_setup

CHECKPOINT = "checkpoint.npz"  # in <run dir>/checkpoint/, the directory handed to Tune


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares; sent to the workers with the trainable."""

    experiment: str | Callable
    epochs: int  # the budget
    metric: str
    variants: dict
    trials_dir: str  # absolute; a trial's run directory is <trials_dir>/<trial name>
    cpus: int  # the trial's CPU share, and so its BLAS and Numba threads
    cwd: str  # the driver's working directory: relative paths mean the same in a trial


def run_trial(config: dict, spec: TrialSpec) -> None:
    """The Tune trainable: train one configuration for up to spec.epochs epochs."""
    from ray import tune

    if os.path.isdir(spec.cwd):
        os.chdir(spec.cwd)  # Tune starts trials in a directory of its own
    with limit_threads(spec.cpus):
        run_dir = os.path.join(spec.trials_dir, tune.get_context().get_trial_name())
        checkpoint_dir = os.path.join(run_dir, "checkpoint")
        os.makedirs(checkpoint_dir, exist_ok=True)
        path = os.path.join(checkpoint_dir, CHECKPOINT)
        resumed_from = restore(tune.get_checkpoint(), path)
        setup = make_setup(find_experiment(spec.experiment),
                           trial_params(config, spec.variants), spec.epochs)
        if setup.val_loader is None:
            raise UsageError("a sweep's trials need a validation loader: they report its loss "
                             "and accuracy every epoch")
        train(setup, spec, run_dir, path, resumed_from, config)


@contextmanager
def limit_threads(n: int):
    """At most n threads of tinygrad_edu's pool inside the block (the trial's CPU share), so
    that concurrent trials do not fight for the cores; BLAS stays at one thread per worker, as
    the pool keeps it, and Numba's own limit (for the calling thread) follows."""
    import numba
    from threadpoolctl import threadpool_limits

    previous = tg.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    tg.set_num_threads(n)
    try:
        with threadpool_limits(limits=1, user_api="blas"), \
                threadpool_limits(limits=n, user_api="openmp"):
            yield
    finally:
        tg.set_num_threads(previous)


def restore(checkpoint, path: str) -> int:
    """Put Tune's latest checkpoint of this trial (None: there is none) at `path`, where `fit`
    resumes from it; return the epochs it holds (0: start from scratch)."""
    if checkpoint is None:
        if os.path.exists(path):
            os.remove(path)  # from an attempt that died before it reported
        return 0
    with checkpoint.as_directory() as directory:
        source = os.path.join(directory, CHECKPOINT)
        if os.path.abspath(source) != os.path.abspath(path):
            shutil.copyfile(source, path + ".tmp")
            os.replace(path + ".tmp", path)
    return int(tg.load(path)["epoch"])


def train(setup, spec: TrialSpec, run_dir: str, path: str, resumed_from: int,
          config: dict) -> None:
    """tg.train.fit with TensorBoard logs in run_dir, reporting to Tune after every epoch."""
    from ray import tune

    logger = Logger(logdir=run_dir)
    if resumed_from:  # Tune's checkpoint may be older than the epochs the log holds
        drop_points_after_checkpoint(logger, path)
    logger.summary.update(status="running", config=config)
    reporter = Reporter(os.path.dirname(path), resumed_from, spec.metric)
    try:
        tg.train.fit(setup.model, setup.optimizer, setup.train_loader, setup.val_loader,
                     epochs=spec.epochs, loss_fn=setup.loss_fn, scheduler=setup.scheduler,
                     logdir=logger, checkpoint_path=path, resume=path if resumed_from else False,
                     metrics_fn=setup.metrics_fn, progress=False, on_epoch_end=reporter)
        logger.summary["status"] = "finished"
    except TrainingDiverged as e:
        logger.summary.update(status="diverged", error=str(e))
        tune.report(reporter.diverged())
    finally:
        logger.close()
        make_readable(logger.metrics_path)


class Reporter:
    """fit's on_epoch_end: report the epoch's metrics to Tune, with the checkpoint that fit
    has just written (Tune copies it to the sweep's storage)."""

    def __init__(self, checkpoint_dir: str, resumed_from: int, metric: str):
        self.checkpoint_dir, self.metric = checkpoint_dir, metric
        self.last = {"epoch": resumed_from, "resumed_from_epoch": resumed_from}

    def __call__(self, history: History) -> None:
        from ray import tune

        self.last = self.last | epoch_metrics(history) | {"diverged": False}
        tune.report(self.last, checkpoint=tune.Checkpoint.from_directory(self.checkpoint_dir))

    def diverged(self) -> dict:
        """The last report again, flagged diverged, with NaN validation metrics."""
        return self.last | {"val_loss": math.nan, "val_acc": math.nan, self.metric: math.nan,
                            "diverged": True}


def epoch_metrics(history: History) -> dict:
    """The last epoch of a fit History as flat numbers: epoch and training time, and the
    metrics, all named train_* or val_* (a metrics_fn value `f1` becomes val_f1)."""
    return {"epoch": len(history.train_loss), "epoch_seconds": history.epoch_time[-1],
            "train_loss": history.train_loss[-1], "train_acc": history.train_acc[-1],
            "val_loss": history.val_loss[-1], "val_acc": history.val_acc[-1],
            **{f"val_{k}": v for k, v in history.val_metrics[-1].items()}}
