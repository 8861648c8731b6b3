"""The one runner: what every training experiment does the same way. An experiment module gives
its config, its `build(cfg) -> Setup` and its `finish(cfg, setup, result, logger) -> Report`;
the runner parses the flags, seeds before building anything, opens the run directory (run.json,
metrics.json's status, TensorBoard), trains with tinygrad_edu's fit or the PyTorch twin's,
checkpoints (last.npz every epoch, checkpoint.npz at the end), resumes, writes report.html and
turns every expected failure into one sentence.

    main = runner.main_for(MNISTConfig(model="cnn3"), mnist_common.build, mnist_common.finish,
                           "mnist_cnn3", "Train CNN3 on MNIST.")
    summary = runner.run(cfg, build, finish, "mnist_cnn3")   # the same, from Python
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import tinygrad_edu as tg
from tinygrad_edu.logging import Logger
from tinygrad_edu.train import make_readable

from . import UsageError, report, torch_backend
from .common import (
    Config,
    Result,
    RunInterrupted,
    Setup,
    check_framework,
    exit_on_usage_error,
    parse_config,
)
from .run_record import (
    CHECKPOINT,
    LAST,
    RUN_FILE,
    RunRecord,
    checkpoint_payload,
    drop_points_after_checkpoint,
    read_checkpoint,
    record_json,
    remove_stray_temporaries,
    run_status,
)

NOT_HPARAMS = ("progress", "logdir", "data_dir", "name", "resume", "override")


def main_for(defaults: Config, build: Callable, finish: Callable, experiment: str,
             description: str) -> Callable:
    """The `main(argv=None)` of an experiment: flags (defaults: `defaults`) -> run."""
    def main(argv=None) -> dict:
        return exit_on_usage_error(lambda: run(parse_config(
            defaults, argv, description=description, experiment=experiment), build, finish,
            experiment), argv)
    return main


def run(cfg: Config, build: Callable, finish: Callable, experiment: str) -> dict:
    """Seed, build(cfg), train and report one run; return its summary and run_dir."""
    check_framework(cfg)
    cfg.seed_generators()
    setup = build(cfg)
    record = RunRecord(experiment=experiment, model_name=setup.model_name,
                       model_config=setup.model_config, framework=cfg.framework,
                       dataset=setup.dataset, preprocessing=setup.preprocessing,
                       class_names=list(setup.class_names), config=cfg.to_dict(),
                       heads=setup.heads)
    return logged_run(cfg, record, setup.name,
                      lambda logger: train_and_report(cfg, setup, record, finish, logger))


def logged_run(cfg: Config, record: RunRecord, default_name: str, body) -> dict:
    """body(logger) with a Logger on the run directory (cfg.resume's, else a new one named
    cfg.name or default_name), whose run.json describes the run and whose metrics.json says
    running, then finished (body sets it), interrupted (Ctrl-C or SIGTERM: the resume command
    is printed) or failed; the logger is closed either way."""
    if cfg.resume:
        remove_stray_temporaries(cfg.resume)
    logger = open_logger(cfg, default_name)
    run_dir = logger.logdir
    if cfg.resume and run_status(logger.summary) == "running":
        logger.close()
        raise UsageError(f"--resume {run_dir}: the run is still running (process "
                         f"{logger.summary.get('pid')}); stop it first (Ctrl-C saves a checkpoint)")
    report.write_text_atomic(os.path.join(run_dir, RUN_FILE), record_json(record))
    if cfg.resume:
        drop_points_after_checkpoint(logger, os.path.join(run_dir, LAST))
    logger.summary.update(status="running", config=cfg.to_dict(), pid=os.getpid(),
                          host=socket.gethostname())
    if getattr(cfg, "overridden", None):
        logger.summary.setdefault("overrides", []).append(cfg.overridden)
    logger.flush()
    try:
        return body(logger)
    except KeyboardInterrupt:
        logger.summary["status"] = "interrupted"
        raise RunInterrupted(os.path.join(run_dir, LAST), record.experiment, run_dir) from None
    except BaseException:
        logger.summary["status"] = "failed"
        raise
    finally:
        logger.close()
        make_readable(logger.metrics_path)  # written through a private (0600) temporary


def open_logger(cfg: Config, default_name: str) -> Logger:
    """The Logger of cfg.resume's run directory, else of a new <logdir>/<name>-<time>; a
    directory that cannot be written is a UsageError."""
    try:
        if cfg.resume:
            return Logger(logdir=cfg.resume)
        return Logger(name=cfg.name or default_name, root=cfg.logdir)
    except OSError as e:
        where = e.filename or cfg.resume or cfg.logdir
        raise UsageError(f"cannot write the run directory {where} ({e.strerror or e}); pass "
                         f"a --logdir you can write to") from None


def train_and_report(cfg: Config, setup: Setup, record: RunRecord, finish: Callable,
                     logger: Logger) -> dict:
    """Train, let the experiment report (finish), save the weights, metrics.json, report.html."""
    start = time.perf_counter()
    history = fit(cfg, setup, logger)
    result = Result(history, time.perf_counter() - start,
                    lambda loader=None: evaluate(setup, loader), num_parameters(setup.saved))
    out = finish(cfg, setup, result, logger)
    logger.hparams(hparams(cfg), out.hparam_metrics)
    save_checkpoint(state_dict(setup.saved), record, logger.logdir)
    summary = out.summary | result.timing() | {"parameters": result.parameters,
                                              "history": history, "config": cfg.to_dict()}
    logger.summary.update(summary, status="finished")
    logger.flush()
    report.write_text_atomic(os.path.join(logger.logdir, "report.html"),
                             report.page(out.title, out.sections))
    print(f"{out.line}; run in {logger.logdir}")
    return summary | {"run_dir": logger.logdir}


def hparams(cfg: Config) -> dict:
    """The flags worth comparing runs by (TensorBoard's HPARAMS tab)."""
    return {k: v for k, v in cfg.to_dict().items() if v is not None and k not in NOT_HPARAMS}


# ---- the two training loops ------------------------------------------------------------------

def fit(cfg: Config, setup: Setup, logger: Logger) -> dict:
    """Train setup.model for cfg.epochs with tg.train.fit, or with the PyTorch twin's loop for
    --framework torch; last.npz is the resumable checkpoint (with cfg.resume, fit continues
    from it). Returns the history as a dict of per-epoch lists."""
    last = os.path.join(logger.logdir, LAST)
    if cfg.resume and not os.path.isfile(last):
        raise UsageError(f"--resume {cfg.resume}: the run has no {LAST} to continue from (it "
                         f"stopped before its first checkpoint); start it again")
    if cfg.resume:
        check_fits(read_checkpoint(last), setup.model, last)
    if cfg.framework == "torch":
        return torch_fit(cfg, setup, logger, last)
    history = tg.train.fit(setup.model, setup.optimizer, setup.train_loader, setup.val_loader,
                           epochs=cfg.epochs, logdir=logger, progress=cfg.progress,
                           checkpoint_path=last, resume=bool(cfg.resume),
                           loss_fn=setup.loss_fn, scheduler=setup.scheduler,
                           metrics_fn=setup.metrics_fn)
    return history.as_dict()


def torch_fit(cfg: Config, setup: Setup, logger: Logger, last: str) -> dict:
    if setup.metrics_fn is not None:
        raise UsageError("this experiment trains with tinygrad_edu only")
    return torch_backend.fit(setup.model, setup.optimizer, setup.train_loader,
                             setup.val_loader, cfg.epochs, logger, progress=cfg.progress,
                             loss_fn=setup.loss_fn, scheduler=setup.scheduler,
                             checkpoint_path=last, resume=bool(cfg.resume))


def is_torch(model) -> bool:
    return not isinstance(model, tg.nn.Module)


def evaluate(setup: Setup, loader=None):
    """(loss, accuracy, outputs, targets) of the trained model on `loader` (default: the
    validation loader)."""
    loader = setup.val_loader if loader is None else loader
    if is_torch(setup.model):
        return torch_backend.evaluate(setup.model, loader)
    return tg.train.evaluate(setup.model, loader, setup.loss_fn)


def num_parameters(model) -> int:
    if is_torch(model):
        return sum(p.numel() for p in model.parameters())
    return model.num_parameters()


def state_dict(model) -> dict:
    """The weights as numpy arrays (the twins use the scratch models' names)."""
    if is_torch(model):
        return torch_backend.state_dict_numpy(model)
    return model.state_dict()


def check_fits(ckpt, model, path: str) -> None:
    """A checkpoint (NaN weights are refused by read_checkpoint) whose tensors have the shapes
    of `model`'s, else a UsageError naming the first that differs."""
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ckpt.state.items()}
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) != theirs.get(name):
            raise UsageError(f"{path} holds another architecture ({name}: {theirs.get(name)} in "
                             f"the checkpoint, {mine.get(name)} in the model); resume without "
                             f"changing the network's flags")


def save_checkpoint(state: dict, record: RunRecord, run_dir: str) -> None:
    """checkpoint.npz: the weights and the model that holds them (the one payload), readable
    like the run's other files."""
    path = os.path.join(run_dir, CHECKPOINT)
    tg.save(checkpoint_payload(state, record), path)
    make_readable(path)

