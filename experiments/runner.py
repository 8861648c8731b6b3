"""The one runner: what every training experiment does the same way. An experiment module gives
its config, its `build(cfg) -> Setup` and its `finish(cfg, setup, result, logger) -> Report`;
the runner parses the flags, seeds before building anything, opens the run directory (run.json,
metrics.json's status, TensorBoard), trains with tinygrad_edu's fit or the PyTorch twin's,
checkpoints (last.npz every epoch, checkpoint.npz at the end), resumes, writes report.html and
turns every expected failure into one sentence. `run_parts` trains several runs as one
(compare, lines_variations): one directory, resumed as a whole.

    main = runner.main_for(MNISTConfig(model="cnn3"), mnist_common.build, mnist_common.finish,
                           "mnist_cnn3", "Train CNN3 on MNIST.")
    summary = runner.run(cfg, build, finish, "mnist_cnn3")   # the same, from Python
    entries, run_dir = runner.run_parts(cfg, "compare", {"cnn2-torch": train, ...}, write_table)
"""
from __future__ import annotations

import dataclasses
import glob
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
    start_running(cfg, logger)
    report.write_text_atomic(os.path.join(run_dir, RUN_FILE), record_json(record))
    if cfg.resume:
        drop_points_after_checkpoint(logger, os.path.join(run_dir, LAST))
    if getattr(cfg, "overridden", None):
        logger.summary.setdefault("overrides", []).append(cfg.overridden)
    logger.flush()
    try:
        return body(logger)
    except KeyboardInterrupt:
        logger.summary["status"] = "interrupted"
        raise interrupted(record.experiment, run_dir) from None
    except BaseException:
        logger.summary["status"] = "failed"
        raise
    finally:
        logger.close()
        make_readable(logger.metrics_path)  # written through a private (0600) temporary


def start_running(cfg: Config, logger: Logger) -> None:
    """Mark the run in logger's directory running (config, process, host); a run resumed
    while its process still runs is a UsageError."""
    if cfg.resume and run_status(logger.summary) == "running":
        logger.close()
        raise UsageError(f"--resume {logger.logdir}: the run is still running (process "
                         f"{logger.summary.get('pid')}); stop it first (Ctrl-C saves a checkpoint)")
    logger.summary.update(status="running", config=cfg.to_dict(), pid=os.getpid(),
                          host=socket.gethostname())


def interrupted(experiment: str, run_dir: str, resume_dir: str | None = None) -> RunInterrupted:
    """What Ctrl-C in the run in run_dir says: its checkpoint and the command that continues
    it, or the run of several (run_parts) in resume_dir; a run stopped before its first
    checkpoint cannot be resumed and must start again."""
    last = os.path.join(run_dir, LAST)
    command = f"python -m experiments.{experiment} --resume {resume_dir or run_dir}"
    if os.path.isfile(last):
        return RunInterrupted(f"interrupted; the checkpoint is {last}: continue with {command}",
                              run_dir)
    if resume_dir:
        return RunInterrupted(f"interrupted before the first checkpoint of {run_dir}: continue "
                              f"with {command}, which starts that run again", run_dir)
    return RunInterrupted(f"interrupted before the run's first checkpoint, so {run_dir} cannot "
                          f"be resumed: start python -m experiments.{experiment} again", run_dir)


def run_parts(cfg: Config, experiment: str, parts: dict[str, Callable[[Config], dict]],
              after_each: Callable[[dict, str], object]) -> tuple[dict, str]:
    """Several runs as one (compare, lines_variations): train(part_cfg) of each part trains it
    as its own run <name>-<time> in one directory (cfg.resume's, else a new <logdir>/<cfg.name
    or experiment>-<time>) and returns its entry, which that directory's metrics.json keeps;
    after_each(entries, directory) once a part is done (a partial table survives). With
    --resume DIR the finished parts are kept, the interrupted one continues from its last.npz
    and the rest are trained; Ctrl-C names the command that continues them all. Returns the
    entries (by part name) and the directory."""
    if cfg.resume and os.path.isfile(os.path.join(cfg.resume, RUN_FILE)):
        parent = os.path.dirname(os.path.abspath(cfg.resume))
        raise UsageError(f"--resume {cfg.resume} is one of the runs in {parent}; continue them "
                         f"all with python -m experiments.{experiment} --resume {parent}")
    if getattr(cfg, "overridden", None):
        raise UsageError(f"--resume {cfg.resume}: the finished runs were trained with its flags; "
                         f"leave out --override, or start python -m experiments.{experiment} "
                         f"again")
    if cfg.resume:
        remove_stray_temporaries(cfg.resume)
    with open_logger(cfg, experiment) as logger:
        where = logger.logdir
        start_running(cfg, logger)
        logger.summary["experiment"] = experiment  # which command --resume continues it with
        entries = dict(logger.summary.get("results", {})) if cfg.resume else {}
        try:
            for name, train in parts.items():
                if name not in entries:
                    entries[name] = train(part_config(cfg, where, name))
                logger.summary["results"] = entries
                after_each(entries, where)
                logger.flush()
        except RunInterrupted as e:  # in a part's run: its checkpoint, the command for all
            logger.summary["status"] = "interrupted"
            raise interrupted(experiment, e.run_dir, where) from None
        except KeyboardInterrupt:  # before a part's run began
            logger.summary["status"] = "interrupted"
            raise RunInterrupted(f"interrupted: continue with python -m experiments."
                                 f"{experiment} --resume {where}", where) from None
        except BaseException:
            logger.summary["status"] = "failed"
            raise
        logger.summary["status"] = "finished"
    return entries, where


def part_config(cfg: Config, where: str, name: str) -> Config:
    """The config of part `name` of run_parts: its run goes in `where`, named after it, and
    continues the run a stop left there with a last.npz, if there is one."""
    runs = sorted(glob.glob(os.path.join(glob.escape(where), f"{name}-*", LAST)))
    return dataclasses.replace(cfg, logdir=where, name=name, override=False,
                               resume=os.path.dirname(runs[-1]) if runs else None)


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

