"""One trial of a sweep, run by Ray Tune on a worker: an ordinary tg.train.fit run in its own
run directory, which reports to Tune and hands Tune its checkpoint after every epoch.

A trial whose worker or node dies, or which raises, is started again by Tune (up to the
config's max_failures) with the last checkpoint it reported, on any node, and `fit` resumes
from it exactly; so is a trial of a sweep continued with --resume, from the checkpoint fit
left in its run directory if that is further on. A trial whose loss becomes NaN
(TrainingDiverged) ends as "diverged": a retry would diverge again.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import tinygrad_edu as tg
from tinygrad_edu.logging import Logger
from tinygrad_edu.serialization import CheckpointError
from tinygrad_edu.train import History, TrainingDiverged, make_readable

from ..common import UsageError
from ..run_record import drop_points_after_checkpoint, metrics_lock
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


def restore(checkpoint, path: str) -> int | None:
    """Put the checkpoint this attempt continues from at `path`, where `fit` resumes from it,
    and return the epochs it holds (None: start from scratch). That is Tune's latest
    checkpoint of the trial (None: there is none), unless the one fit left at `path` is
    further on: a stop between fit's checkpoint and Tune's copy of it (Ctrl-C, a killed
    worker) must not retrain the epoch."""
    local = _position(path)
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            source = os.path.join(directory, CHECKPOINT)
            tuned = _position(source)
            if tuned is not None and (local is None or tuned > local) and \
                    os.path.abspath(source) != os.path.abspath(path):
                shutil.copyfile(source, path + ".tmp")
                os.replace(path + ".tmp", path)
                local = tuned
    if local is None and os.path.exists(path):
        os.remove(path)  # unreadable: a save that a kill cut short
    return None if local is None else local[1]


def _position(path: str) -> tuple[int, int] | None:
    """(optimizer steps, epochs) of the fit checkpoint at `path`; None if there is none."""
    try:
        state = tg.load(path)
        return int(state["step"]), int(state["epoch"])
    except (OSError, CheckpointError, KeyError, TypeError):
        return None


def train(setup, spec: TrialSpec, run_dir: str, path: str,
          resumed_from: int | None, config: dict) -> None:
    """tg.train.fit with TensorBoard logs in run_dir, reporting to Tune after every epoch;
    metrics.json ends "finished", "stopped_early" (Tune stopped it: ASHA), or "diverged"."""
    from ray import tune

    logger = open_log(run_dir, path, resumed_from, config)
    reporter = Reporter(os.path.dirname(path), resumed_from or 0, spec.metric)
    try:
        tg.train.fit(setup.model, setup.optimizer, setup.train_loader, setup.val_loader,
                     epochs=spec.epochs, loss_fn=setup.loss_fn, scheduler=setup.scheduler,
                     logdir=logger, checkpoint_path=path,
                     resume=path if resumed_from is not None else False,
                     metrics_fn=setup.metrics_fn, progress=False, on_epoch_end=reporter)
        logger.summary["status"] = "finished"
    except TrainingDiverged as e:
        logger.summary.update(status="diverged", error=str(e))
        tune.report(reporter.diverged())
    except SystemExit:  # how tune.report ends a trial that Tune stops (ASHA, also at max_t)
        epochs = reporter.last["epoch"]
        logger.summary["status"] = "finished" if epochs >= spec.epochs else "stopped_early"
        raise
    finally:
        close_log(logger)


def open_log(run_dir: str, path: str, resumed_from: int | None, config: dict) -> Logger:
    """The trial's Logger, its metrics.json as the checkpoint at `path` left it (no points of
    epochs it trains again) and marked running, without the sweep's record of an earlier part."""
    logger = Logger(logdir=run_dir)
    if resumed_from is None:
        logger.history.clear()  # an earlier attempt's points, from before any checkpoint
    else:  # the log may hold epochs after the checkpoint: they are trained and logged again
        drop_points_after_checkpoint(logger, path)
    logger.summary.pop("sweep", None)
    logger.summary.update(status="running", config=config)
    logger.flush()
    return logger


def close_log(logger: Logger) -> None:
    """Close the trial's Logger; if the sweep has meanwhile written its record into
    metrics.json (it ended while this thread still ran: Tune stops a trial at its next report),
    that file stands as the sweep wrote it."""
    with metrics_lock(os.path.dirname(logger.metrics_path)):  # the sweep may be writing it
        try:
            with open(logger.metrics_path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            saved = {}
        if "sweep" in saved.get("summary", {}):
            logger.history, logger.summary = saved.get("scalars", {}), saved["summary"]
            logger.hparam_values = saved.get("hparams", {})
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
