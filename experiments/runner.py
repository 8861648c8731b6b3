"""The shared MNIST experiment: data, model, training in either framework, evaluation, figures,
TensorBoard, metrics.json, checkpoint and report.html. The `mnist_*` scripts are thin over it."""
from __future__ import annotations

import os
import shutil
import time

import numpy as np

import models
import tinygrad_edu as tg
from tinygrad_edu import metrics
from tinygrad_edu.data import MNIST, DataError, DataLoader, Subset
from tinygrad_edu.data import transforms as T
from tinygrad_edu.logging import Logger
from tinygrad_edu.viz.images import heatmap_image, make_grid

from . import report
from .common import Config, UsageError, exit_on_usage_error, parse_config

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CLASS_NAMES = [str(d) for d in range(10)]


def load_mnist(cfg: Config) -> tuple[MNIST, MNIST]:
    """Train and test splits, normalised; a missing or corrupt data set is a UsageError."""
    transform = T.Compose([T.ToTensor(), T.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    if cfg.data_dir is not None and not os.path.isdir(cfg.data_dir):
        raise UsageError(f"--data-dir {cfg.data_dir} is not a directory; point it at the folder "
                         f"holding the MNIST files, or leave it out to download them")
    try:
        train = MNIST(cfg.data_dir, train=True, transform=transform)
        test = MNIST(cfg.data_dir, train=False, transform=transform)
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


def run_dir_for(cfg: Config) -> str:
    name = cfg.name or f"mnist_{cfg.model}-{cfg.framework}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(cfg.logdir, f"{name}-{stamp}")
    suffix = 1
    while os.path.exists(path):
        path, suffix = os.path.join(cfg.logdir, f"{name}-{stamp}-{suffix}"), suffix + 1
    return path


def check_model_and_framework(cfg: Config) -> None:
    """UsageErrors for an unknown --model or a --framework that is not installed."""
    check_framework(cfg)
    if cfg.model not in models.MODELS:
        raise UsageError(f"unknown model {cfg.model!r}; choose one of {', '.join(models.MODELS)}")


def run(cfg: Config) -> dict:
    """Train and evaluate one network; return the run's summary (also in metrics.json)."""
    check_model_and_framework(cfg)
    train_set, test_set = load_mnist(cfg)
    train_set = subset(train_set, cfg.subset, cfg.seed)
    tg.manual_seed(cfg.seed)
    train_loader = DataLoader(train_set, cfg.batch_size, shuffle=True)  # tg.manual_seed above
    test_loader = DataLoader(test_set, 1000)
    return logged_run(cfg, run_dir_for(cfg), lambda logger: _train_and_report(
        cfg, train_loader, test_loader, test_set, logger))


def logged_run(cfg: Config, run_dir: str, body) -> dict:
    """body(logger) with a Logger on run_dir whose metrics.json says running, then finished
    (body sets it) or failed; the logger is closed either way."""
    logger = Logger(logdir=run_dir)
    logger.summary.update(status="running", config=cfg.to_dict())
    logger.flush()
    try:
        result = body(logger)
    except BaseException:
        logger.summary["status"] = "failed"
        logger.close()
        raise
    logger.close()
    return result


def _train_and_report(cfg, train_loader, test_loader, test_set, logger) -> dict:
    run_cls = _TorchRun if cfg.framework == "torch" else _ScratchRun
    backend = run_cls(cfg, make_scheduler=scheduler_factory(cfg))
    t0 = time.perf_counter()
    history = backend.fit(train_loader, test_loader, logger)
    wall = time.perf_counter() - t0
    loss, acc, logits, targets = backend.evaluate(test_loader)
    probs = _softmax(logits)
    pred = probs.argmax(1)
    cm = metrics.confusion_matrix(pred, targets, 10, normalize="true")
    scores = metrics.precision_recall_f1(pred, targets, 10)
    top_idx, top_p = metrics.topk_per_class(probs, k=3)
    images = test_set.data[top_idx]  # (10, 3, 28, 28) uint8
    step = cfg.epochs
    logger.confusion_matrix("test/confusion_matrix", cm, CLASS_NAMES, step)
    logger.topk_grid("test/top3_per_class", images, top_p, CLASS_NAMES, step)
    for c in range(10):
        logger.scalar(f"test/f1/class_{c}", scores["f1"][c], step)
    logger.scalar("test/f1_macro", scores["macro"]["f1"], step)
    logger.text("test/f_scores", report.table_markdown(*_f_table(scores)), step)
    summary = {
        "model": cfg.model, "framework": cfg.framework, "epochs": cfg.epochs,
        "parameters": backend.num_parameters(), "test_loss": loss, "test_accuracy": acc,
        "macro_f1": float(scores["macro"]["f1"]), "wall_seconds": wall,
        "seconds_per_epoch": float(np.mean(history["epoch_time"])),
        "ms_per_iter": float(np.median(history["ms_per_iter"])),
        "history": history, "confusion_matrix": cm.tolist(),
        "f1_per_class": [float(v) for v in scores["f1"]],
    }
    logger.hparams({k: v for k, v in cfg.to_dict().items() if v is not None},
                   {"hparam/test_accuracy": acc, "hparam/test_loss": loss})
    tg.save(backend.state_dict(), os.path.join(logger.logdir, "checkpoint.npz"))
    logger.summary.update(summary)
    logger.summary["status"] = "finished"
    logger.flush()
    html = _report_html(cfg, summary, cm, images, top_p, scores)
    report.write_text_atomic(os.path.join(logger.logdir, "report.html"), html)
    print(f"{cfg.model} ({cfg.framework}): test accuracy {acc:.4f}, loss {loss:.4f}, "
          f"macro F1 {summary['macro_f1']:.4f}, {wall:.1f} s; run in {logger.logdir}")
    return summary | {"run_dir": logger.logdir}


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


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _f_table(scores: dict) -> tuple[list, list]:
    header = ["class", "precision", "recall", "F1", "support"]
    rows = [[CLASS_NAMES[c], float(scores["precision"][c]), float(scores["recall"][c]),
             float(scores["f1"][c]), int(scores["support"][c])] for c in range(10)]
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


def _report_html(cfg, summary, cm, images, top_p, scores) -> str:
    cm_img = heatmap_image(cm, labels=CLASS_NAMES, title="confusion matrix (row = true class)",
                           fmt=".2f", vmin=0.0, vmax=1.0)
    captions = [f"{c}: {top_p[c, i]:.3f}" for c in range(10) for i in range(3)]
    grid = make_grid(images.reshape(30, 28, 28), nrow=3, captions=captions, normalize=True,
                     scale=2)
    facts = [["model", cfg.model], ["framework", cfg.framework],
             ["parameters", summary["parameters"]], ["epochs", cfg.epochs],
             ["batch size", cfg.batch_size], ["optimizer", f"{cfg.optimizer} lr={cfg.lr}"],
             ["test accuracy", summary["test_accuracy"]], ["test loss", summary["test_loss"]],
             ["macro F1", summary["macro_f1"]], ["seconds per epoch", summary["seconds_per_epoch"]],
             ["ms per iteration", summary["ms_per_iter"]], ["wall time (s)", summary["wall_seconds"]]]
    sections = [
        ("Summary", report.table_html(["", ""], facts)),
        ("Learning curves (validation = the 10k test set)", curves(summary["history"])),
        ("Confusion matrix and top-3 test images per class",
         "<div class='row'>" + report.figure(cm_img, "probabilities, rows sum to 1")
         + report.figure(grid, "the 3 images with the highest probability of each class")
         + "</div>"),
        ("F-scores", report.table_html(*_f_table(scores))),
    ]
    return report.page(f"MNIST {cfg.model} ({cfg.framework})", sections)


class _ScratchRun:
    """Training with tinygrad_edu's own trainer. `model` defaults to get_model(cfg.model),
    `loss_fn` to cross-entropy; make_scheduler(optimizer) builds an optional lr scheduler."""

    def __init__(self, cfg: Config, model=None, loss_fn=None, make_scheduler=None):
        self.cfg = cfg
        self.model = model if model is not None else models.get_model(cfg.model)
        self.optimizer = _scratch_optimizer(cfg, self.model.parameters())
        self.scheduler = make_scheduler(self.optimizer) if make_scheduler else None
        self.loss_fn = loss_fn

    def fit(self, train_loader, val_loader, logger) -> dict:
        history = tg.train.fit(self.model, self.optimizer, train_loader, val_loader,
                               epochs=self.cfg.epochs, logdir=logger, progress=self.cfg.progress,
                               checkpoint_path=os.path.join(logger.logdir, "last.npz"),
                               loss_fn=self.loss_fn, scheduler=self.scheduler)
        return history.as_dict()

    def evaluate(self, loader):
        return tg.train.evaluate(self.model, loader)

    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "model_name": self.cfg.model}


def _scratch_optimizer(cfg: Config, params):
    opt = {"adam": tg.optim.Adam, "sgd": tg.optim.SGD, "adamw": tg.optim.AdamW,
           "rmsprop": tg.optim.RMSprop}[cfg.optimizer]
    kwargs = {"momentum": 0.9} if cfg.optimizer == "sgd" else {}
    return opt(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs)


class _TorchRun:
    """Training of the PyTorch twin, started from the same initial weights as the scratch run
    (`model`, default get_model(cfg.model)); loss_fn and make_scheduler as in _ScratchRun."""

    def __init__(self, cfg: Config, model=None, loss_fn=None, make_scheduler=None):
        from . import torch_backend
        self.cfg, self.tb = cfg, torch_backend
        self.model = models.to_torch(model if model is not None else models.get_model(cfg.model))
        self.optimizer = torch_backend.make_optimizer(cfg.optimizer, self.model.parameters(),
                                                      cfg.lr, cfg.weight_decay)
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
        return {"model": self.tb.state_dict_numpy(self.model), "model_name": self.cfg.model}


def remove_unfinished(run_dir: str) -> None:
    """Delete a run directory that never got past set-up (no curves worth keeping)."""
    if os.path.isdir(run_dir) and not os.path.exists(os.path.join(run_dir, "report.html")):
        shutil.rmtree(run_dir, ignore_errors=True)


def script_main(model: str):
    """The `main(argv=None)` of an `experiments.mnist_<model>` script: flags -> Config -> run."""
    def main(argv=None) -> dict:
        cfg = parse_config(Config(model=model), argv, description=f"Train {model} on MNIST.")
        return exit_on_usage_error(lambda: run(cfg))
    return main
