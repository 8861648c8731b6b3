"""The shared MNIST / Fashion-MNIST experiment: data, model, training in either framework,
evaluation, figures, TensorBoard, metrics.json, run.json, checkpoint and report.html. The
`mnist_*` scripts are thin over it."""
from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import models
import tinygrad_edu as tg
from tinygrad_edu import metrics, viz
from tinygrad_edu.data import DataError, DataLoader, Subset
from tinygrad_edu.data import transforms as T
from tinygrad_edu.data.mnist import DATASETS
from tinygrad_edu.logging import Logger
from tinygrad_edu.train import make_readable

from . import report
from .common import Config, parse_config
from .errors import RunInterrupted, UsageError, exit_on_usage_error
from .run_record import (
    CHECKPOINT,
    LAST,
    Preprocessing,
    RunRecord,
    checkpoint_payload,
    read_checkpoint,
    run_status,
    write_record,
)

# per-dataset pixel mean and std of the training images (the usual published values)
NORMALISATION = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
MNIST_MEAN, MNIST_STD = NORMALISATION["mnist"]
CLASS_NAMES = [str(d) for d in range(10)]


@dataclass
class MNISTConfig(Config):
    """Config plus the data set: MNIST's digits or Fashion-MNIST's clothes (same format)."""

    CHOICES: ClassVar[dict] = {"dataset": tuple(NORMALISATION)}
    dataset: str = "mnist"


def class_names(dataset: str) -> list[str]:
    """The digits '0'..'9' for MNIST, the clothing names for Fashion-MNIST."""
    if dataset == "mnist":
        return list(CLASS_NAMES)
    return list(DATASETS[dataset].classes)


def preprocessing(dataset: str) -> Preprocessing:
    mean, std = NORMALISATION[dataset]
    return Preprocessing(mean=(mean,), std=(std,), size=28, channels=1, dark_background=True)


def load_mnist(cfg: MNISTConfig) -> tuple:
    """Train and test splits of cfg.dataset, normalised; a missing, corrupt or wrong data set
    is a UsageError."""
    mean, std = NORMALISATION[cfg.dataset]
    transform = T.Compose([T.ToTensor(), T.Normalize((mean,), (std,))])
    if cfg.data_dir is not None and not os.path.isdir(cfg.data_dir):
        raise UsageError(f"--data-dir {cfg.data_dir} is not a directory; point it at the folder "
                         f"holding the {cfg.dataset} files, or leave it out to download them")
    dataset = DATASETS[cfg.dataset]
    try:
        train = dataset(cfg.data_dir, train=True, transform=transform)
        test = dataset(cfg.data_dir, train=False, transform=transform)
    except DataError as e:
        raise UsageError(str(e)) from None
    return train, test


def check_framework(cfg: Config) -> None:
    if cfg.framework == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UsageError("--framework torch needs PyTorch: pip install torch==2.13.0 "
                             "(the CPU build), or run with --framework tinygrad_edu") from None


def subset(dataset, n: int | None, seed: int):
    """The first `n` samples of a seeded permutation (all of them when n is None)."""
    if n is None:
        return dataset
    if not 0 < n <= len(dataset):
        raise UsageError(f"--subset {n} must be between 1 and the {len(dataset)} training "
                         f"images")
    return Subset(dataset, np.random.default_rng(seed).permutation(len(dataset))[:n])


def check_model_and_framework(cfg: Config) -> None:
    """UsageErrors for an unknown --model or a --framework that is not installed."""
    check_framework(cfg)
    if cfg.model not in models.MODELS:
        raise UsageError(f"unknown model {cfg.model!r}; choose one of {', '.join(models.MODELS)}")


def run(cfg: MNISTConfig) -> dict:
    """Train and evaluate one network; return the run's summary (also in metrics.json)."""
    check_model_and_framework(cfg)
    train_set, test_set = load_mnist(cfg)
    train_set = subset(train_set, cfg.subset, cfg.seed)
    tg.manual_seed(cfg.seed)
    train_loader = DataLoader(train_set, cfg.batch_size, shuffle=True)  # tg.manual_seed above
    test_loader = DataLoader(test_set, 1000)
    backend = backend_for(cfg, make_scheduler=scheduler_factory(cfg))
    names = class_names(cfg.dataset)
    record = RunRecord(experiment=f"mnist_{cfg.model}", model_name=cfg.model,
                       model_config=backend.model.config, framework=cfg.framework,
                       dataset=cfg.dataset, preprocessing=preprocessing(cfg.dataset),
                       class_names=names, config=cfg.to_dict())
    default_name = f"mnist_{cfg.model}-{cfg.framework}" if cfg.dataset == "mnist" else \
        f"{cfg.dataset}_{cfg.model}-{cfg.framework}"
    return logged_run(cfg, record, default_name, lambda logger: _train_and_report(
        cfg, backend, record, train_loader, test_loader, test_set, logger))


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
    write_record(run_dir, record)
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


def drop_points_after_checkpoint(logger: Logger, path: str) -> None:
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


def _train_and_report(cfg, backend, record, train_loader, test_loader, test_set, logger) -> dict:
    t0 = time.perf_counter()
    history = backend.fit(train_loader, test_loader, logger)
    wall = time.perf_counter() - t0
    loss, acc, logits, targets = backend.evaluate(test_loader)
    probs = softmax(logits)
    pred = probs.argmax(1)
    names = record.class_names
    cm = metrics.confusion_matrix(pred, targets, 10, normalize="true")
    scores = metrics.precision_recall_f1(pred, targets, 10)
    top_idx, top_p = metrics.topk_per_class(probs, k=3)
    images = test_set.data[top_idx]  # (10, 3, 28, 28) uint8
    step = cfg.epochs
    logger.confusion_matrix("test/confusion_matrix", cm, names, step)
    logger.topk_grid("test/top3_per_class", images, top_p, names, step, targets[top_idx])
    for c in range(10):
        logger.scalar(f"test/f1/class_{c}", scores["f1"][c], step)
    logger.scalar("test/f1_macro", scores["macro"]["f1"], step)
    logger.text("test/f_scores", report.table_markdown(*f_table(scores, names)), step)
    summary = {
        "model": cfg.model, "framework": cfg.framework, "dataset": cfg.dataset,
        "epochs": cfg.epochs, "parameters": backend.num_parameters(), "test_loss": loss,
        "test_accuracy": acc, "macro_f1": float(scores["macro"]["f1"]), "wall_seconds": wall,
        "seconds_per_epoch": float(np.mean(history["epoch_time"])),
        "ms_per_iter": float(np.median(history["ms_per_iter"])),
        "history": history, "confusion_matrix": cm.tolist(),
        "f1_per_class": [float(v) for v in scores["f1"]], "config": cfg.to_dict(),
    }
    logger.hparams(hparams(cfg), {"hparam/test_accuracy": acc, "hparam/test_loss": loss})
    save_checkpoint(backend.state_dict(), record, logger.logdir)
    logger.summary.update(summary)
    logger.summary["status"] = "finished"
    logger.flush()
    html = _report_html(cfg, summary, cm, (images, top_p, targets[top_idx]), scores, names)
    report.write_text_atomic(os.path.join(logger.logdir, "report.html"), html)
    print(f"{cfg.model} on {cfg.dataset} ({cfg.framework}): test accuracy {acc:.4f}, loss "
          f"{loss:.4f}, macro F1 {summary['macro_f1']:.4f}, {wall:.1f} s; run in {logger.logdir}")
    return summary | {"run_dir": logger.logdir}


def hparams(cfg: Config) -> dict:
    """The flags worth comparing runs by (TensorBoard's HPARAMS tab)."""
    return {k: v for k, v in cfg.to_dict().items()
            if v is not None and k not in ("progress", "logdir", "data_dir", "name", "resume",
                                           "override")}


def save_checkpoint(state: dict, record: RunRecord, run_dir: str) -> None:
    """checkpoint.npz: the weights and the model that holds them (the one payload), readable
    like the run's other files."""
    path = os.path.join(run_dir, CHECKPOINT)
    tg.save(checkpoint_payload(state, record), path)
    make_readable(path)


def scheduler_factory(cfg: Config):
    """`optimizer -> scheduler` for cfg.schedule, in the run's framework (same names in both),
    stepped once per epoch; None for 'none'."""
    if getattr(cfg, "schedule", "none") == "none":
        return None

    def make(optimizer):
        if cfg.framework == "torch":
            from torch.optim import lr_scheduler
        else:
            from tinygrad_edu.optim import lr_scheduler
        if cfg.schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        return lr_scheduler.StepLR(optimizer, step_size=max(1, 2 * cfg.epochs // 3), gamma=0.1)
    return make


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def f_table(scores: dict, names: list[str]) -> tuple[list, list]:
    """Precision, recall, F1 and support per class, then the macro and weighted averages."""
    header = ["class", "precision", "recall", "F1", "support"]
    rows = [[names[c], float(scores["precision"][c]), float(scores["recall"][c]),
             float(scores["f1"][c]), int(scores["support"][c])] for c in range(len(names))]
    for avg in ("macro", "weighted"):
        a = scores[avg]
        rows.append([avg, float(a["precision"]), float(a["recall"]), float(a["f1"]), ""])
    return header, rows


def curves(history: dict) -> str:
    """Loss and accuracy per epoch, train against validation, as two SVG charts."""
    epochs = range(1, len(history["train_loss"]) + 1)
    out = []
    for metric, title in (("loss", "cross-entropy loss"), ("acc", "accuracy")):
        series = {split: list(zip(epochs, history[f"{split}_{metric}"]))
                  for split in ("train", "val")}
        out.append(report.line_chart(series, title, "epoch"))
    return f"<div class='row'>{''.join(out)}</div>"


def _report_html(cfg, summary, cm, top3, scores, names) -> str:
    """top3: (images (10, 3, ...), their probabilities, their true labels)."""
    cm_img = viz.plot_confusion_matrix(cm, names, title="confusion matrix (row = true class)")
    grid = viz.plot_topk(*top3[:2], names, top3[2])
    facts = [["data set", cfg.dataset], ["model", cfg.model], ["framework", cfg.framework],
             ["parameters", summary["parameters"]], ["epochs", cfg.epochs],
             ["batch size", cfg.batch_size], ["optimizer", f"{cfg.optimizer} lr={cfg.lr}"],
             ["test accuracy", summary["test_accuracy"]], ["test loss", summary["test_loss"]],
             ["macro F1", summary["macro_f1"]], ["seconds per epoch", summary["seconds_per_epoch"]],
             ["ms per iteration", summary["ms_per_iter"]], ["wall time (s)", summary["wall_seconds"]]]
    title = "MNIST" if cfg.dataset == "mnist" else "Fashion-MNIST"
    sections = [
        ("Summary", report.table_html(["", ""], facts)),
        ("Learning curves (validation = the 10k test set)", curves(summary["history"])),
        ("Confusion matrix and top-3 test images per class",
         "<div class='row'>" + report.figure(cm_img, "probabilities, rows sum to 1")
         + report.figure(grid, "the 3 images with the highest probability of each class")
         + "</div>"),
        ("F-scores", report.figure(viz.plot_f_scores(scores, names), "per class")
         + report.table_html(*f_table(scores, names))),
    ]
    return report.page(f"{title} {cfg.model} ({cfg.framework})", sections)


# ---- the two training loops --------------------------------------------------------------------

class ScratchRun:
    """Training with tinygrad_edu's own trainer. `model` defaults to get_model(cfg.model),
    `loss_fn` to cross-entropy; make_scheduler(optimizer) builds an optional lr scheduler.
    With cfg.resume, fit continues from the run's last.npz."""

    def __init__(self, cfg: Config, model=None, loss_fn=None, make_scheduler=None,
                 metrics_fn=None):
        self.cfg = cfg
        self.model = model if model is not None else models.get_model(cfg.model)
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        self.scheduler = make_scheduler(self.optimizer) if make_scheduler else None
        self.loss_fn, self.metrics_fn = loss_fn, metrics_fn

    def fit(self, train_loader, val_loader, logger) -> dict:
        last = os.path.join(logger.logdir, LAST)
        if self.cfg.resume and not os.path.isfile(last):
            raise UsageError(f"--resume {self.cfg.resume}: the run has no {LAST} to continue "
                             f"from (it stopped before its first checkpoint); start it again")
        if self.cfg.resume:
            check_fits(read_checkpoint(last), self.model, last)
        history = tg.train.fit(self.model, self.optimizer, train_loader, val_loader,
                               epochs=self.cfg.epochs, logdir=logger, progress=self.cfg.progress,
                               checkpoint_path=last, resume=bool(self.cfg.resume),
                               loss_fn=self.loss_fn, scheduler=self.scheduler,
                               metrics_fn=self.metrics_fn)
        return history.as_dict()

    def evaluate(self, loader):
        return tg.train.evaluate(self.model, loader, self.loss_fn)

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def state_dict(self) -> dict:
        return self.model.state_dict()


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


def make_optimizer(cfg: Config, params):
    """cfg.optimizer over `params` with cfg.lr and cfg.weight_decay (and cfg.momentum for
    SGD)."""
    opt = {"adam": tg.optim.Adam, "sgd": tg.optim.SGD, "adamw": tg.optim.AdamW,
           "rmsprop": tg.optim.RMSprop}[cfg.optimizer]
    kwargs = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    return opt(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs)


class TorchRun:
    """Training of the PyTorch twin, started from the same initial weights as the scratch run
    (`model`, default get_model(cfg.model)); loss_fn and make_scheduler as in ScratchRun."""

    def __init__(self, cfg: Config, model=None, loss_fn=None, make_scheduler=None,
                 metrics_fn=None):
        from . import torch_backend
        if cfg.resume:
            raise UsageError("--resume continues tinygrad_edu runs; a --framework torch run "
                             "keeps no resumable checkpoint: start it again")
        if metrics_fn is not None:
            raise UsageError("this experiment trains with tinygrad_edu only")
        self.cfg, self.tb = cfg, torch_backend
        self.model = models.to_torch(model if model is not None else models.get_model(cfg.model))
        self.optimizer = torch_backend.make_optimizer(cfg.optimizer, self.model.parameters(),
                                                      cfg.lr, cfg.weight_decay, cfg.momentum)
        self.scheduler = make_scheduler(self.optimizer) if make_scheduler else None
        self.loss_fn = loss_fn

    def fit(self, train_loader, val_loader, logger) -> dict:
        return self.tb.fit(self.model, self.optimizer, train_loader, val_loader, self.cfg.epochs,
                           logger, progress=self.cfg.progress, loss_fn=self.loss_fn,
                           scheduler=self.scheduler)

    def evaluate(self, loader):
        return self.tb.evaluate(self.model, loader)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def state_dict(self) -> dict:
        return self.tb.state_dict_numpy(self.model)


def backend_for(cfg: Config, model=None, loss_fn=None, make_scheduler=None, metrics_fn=None):
    """The training loop of cfg.framework: ScratchRun or TorchRun."""
    cls = TorchRun if cfg.framework == "torch" else ScratchRun
    return cls(cfg, model, loss_fn, make_scheduler, metrics_fn)


def remove_unfinished(run_dir: str) -> None:
    """Delete a run directory that never got past set-up (no curves worth keeping)."""
    if os.path.isdir(run_dir) and not os.path.exists(os.path.join(run_dir, "report.html")):
        shutil.rmtree(run_dir, ignore_errors=True)


def script_main(model: str):
    """The `main(argv=None)` of an `experiments.mnist_<model>` script: flags -> Config -> run."""
    def main(argv=None) -> dict:
        return exit_on_usage_error(lambda: run(parse_config(
            MNISTConfig(model=model), argv, description=f"Train {model} on MNIST.",
            experiment=f"mnist_{model}")), argv)
    return main
