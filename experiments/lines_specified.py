"""Train the specified CNN on the line dataset (96 classes) or MNIST (10 classes), 60/40 split.

60% of the images train the network, the other 40% test it; the run ends with a report.

    python -m experiments.lines_specified                      # lines, 1000 images per class
    python -m experiments.lines_specified --dataset mnist      # MNIST's 70,000 images, 60/40
    python -m experiments.lines_specified --per-class 100 --epochs 1

The run directory (runs/<dataset>_spec_cnn-<time>/) holds TensorBoard events, metrics.json,
checkpoint.npz and report.html. lines_variations and lines_multihead build on this module.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import tinygrad_edu as tg
from models.lines import SpecCNN
from tinygrad_edu import metrics
from tinygrad_edu.data import MNIST, ArrayDataset, DataError, DataLoader, random_split
from tinygrad_edu.data import transforms as T
from tinygrad_edu.data.lines import LineDataset
from tinygrad_edu.logging import Logger
from tinygrad_edu.optim.lr_scheduler import CosineAnnealingLR
from tinygrad_edu.viz.images import heatmap_image

from . import report
from .common import Config, parse_config
from .errors import UsageError, exit_on_usage_error
from .run_record import Preprocessing, RunRecord
from .runner import (
    MNIST_MEAN,
    MNIST_STD,
    ScratchRun,
    class_names,
    curves,
    f_table,
    hparams,
    logged_run,
    preprocessing,
    save_checkpoint,
    subset,
)

DATASETS = ("lines", "mnist")
TRAIN_FRACTION = 0.6  # the rest, 40%, is the test set


@dataclass
class LinesConfig(Config):
    """Config plus the data set and, for the line dataset, the images per class."""

    CHOICES: ClassVar[dict] = {"dataset": DATASETS}
    model: str = "spec_cnn"
    dataset: str = "lines"
    per_class: int = 1000
    batch_size: int = 64


def check_config(cfg: LinesConfig, model: str) -> None:
    """Refuse what these experiments do not do, in one sentence each."""
    if cfg.model != model:
        raise UsageError(f"this experiment trains {model}; --model {cfg.model} does not apply")
    if cfg.dataset not in DATASETS:
        raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {cfg.dataset!r}")
    if cfg.framework != "tinygrad_edu":
        raise UsageError("the line experiments train with tinygrad_edu; the PyTorch twins are "
                         "compared with it in tests/test_lines.py")
    if cfg.subset is not None and cfg.dataset == "lines":
        raise UsageError("--subset does not apply to the line dataset; use --per-class to "
                         "train on fewer images")
    if cfg.data_dir is not None and os.path.isfile(cfg.data_dir):
        raise UsageError(f"--data-dir {cfg.data_dir} is a file; pass a directory")


# ---- data ------------------------------------------------------------------------------------

@dataclass
class Data:
    """A 60/40 split of one data set and what a model and a report need to know about it."""

    train: object  # Subset
    test: object  # Subset
    class_names: list[str]
    preprocessing: Preprocessing  # how an image in [0, 1] becomes the network's input

    @property
    def in_channels(self) -> int:
        return self.preprocessing.channels


LINES_INPUT = Preprocessing(mean=(0.0,), std=(1.0,), size=28, channels=3, dark_background=True)


def load_data(cfg: LinesConfig, target_type: str = "class") -> Data:
    """The data set of cfg.dataset split 60/40 by cfg.seed (MNIST: the first --subset images
    of a seeded permutation, if given); problems become UsageErrors."""
    try:
        if cfg.dataset == "mnist":
            dataset = subset(_mnist_all(cfg.data_dir), cfg.subset, cfg.seed)
            names, prep = class_names("mnist"), preprocessing("mnist")
        else:
            dataset = LineDataset(cfg.data_dir, per_class=cfg.per_class, target_type=target_type,
                                  transform=T.ToTensor())
            names, prep = list(LineDataset.classes), LINES_INPUT
    except DataError as e:
        raise UsageError(str(e)) from None
    train, test = random_split(dataset, [TRAIN_FRACTION, 1 - TRAIN_FRACTION], seed=cfg.seed)
    return Data(train, test, names, prep)


def _mnist_all(data_dir: str | None) -> ArrayDataset:
    """MNIST's training and test images together (70,000), normalised, to split 60/40."""
    parts = [MNIST(data_dir, train=train) for train in (True, False)]
    images = np.concatenate([p.data for p in parts])
    labels = np.concatenate([p.targets for p in parts])
    return ArrayDataset(images, labels, T.Compose([T.ToTensor(),
                                                   T.Normalize((MNIST_MEAN,), (MNIST_STD,))]))


def record_for(cfg: LinesConfig, experiment: str, model_name: str, model, data: Data,
               heads: dict | None = None) -> RunRecord:
    """The run.json of a line-experiment run."""
    return RunRecord(experiment=experiment, model_name=model_name, model_config=model.config,
                     framework=cfg.framework, dataset=cfg.dataset,
                     preprocessing=data.preprocessing, class_names=data.class_names,
                     config=cfg.to_dict(), heads=heads or {})


# ---- training --------------------------------------------------------------------------------

class KeepLastOutputs:
    """A `fit` metrics_fn that keeps the last validation outputs (so the test set is not run
    again after training) and reports the macro F1 of each epoch."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.logits = self.targets = None

    def __call__(self, logits: np.ndarray, targets: np.ndarray) -> dict:
        self.logits, self.targets = logits, targets
        scores = metrics.precision_recall_f1(logits, targets, self.num_classes)
        return {"f1_macro": scores["macro"]["f1"]}


def fit_timed(cfg: LinesConfig, data: Data, model, logger: Logger, metrics_fn, loss_fn=None,
              scheduler_fn=None) -> tuple[dict, float]:
    """tg.train.fit on data.train, validated on data.test after every epoch, with the optimizer
    of cfg and the schedule scheduler_fn(optimizer, total steps); returns the history and the
    wall time. With cfg.resume it continues the run's last.npz."""
    tg.manual_seed(cfg.seed)
    train_loader = DataLoader(data.train, cfg.batch_size, shuffle=True)  # tg.manual_seed above
    test_loader = DataLoader(data.test, 1000)
    total = cfg.epochs * len(train_loader)
    backend = ScratchRun(cfg, model, loss_fn, metrics_fn=metrics_fn, make_scheduler=(
        None if scheduler_fn is None else lambda optimizer: scheduler_fn(optimizer, total)))
    start = time.perf_counter()
    history = backend.fit(train_loader, test_loader, logger)
    return history, time.perf_counter() - start


def cosine_decay(optimizer, total_steps: int) -> CosineAnnealingLR:
    """A scheduler_fn for fit_timed: cosine annealing from the optimizer's lr to 0, stepped
    after every batch."""
    scheduler = CosineAnnealingLR(optimizer, T_max=total_steps)
    scheduler.step_per_batch = True  # tg.train.fit then steps it after every batch
    return scheduler


def timing(history: dict, wall: float) -> dict:
    return {"wall_seconds": wall, "seconds_per_epoch": float(np.mean(history["epoch_time"])),
            "ms_per_iter": float(np.median(history["ms_per_iter"]))}


def train_classifier(cfg: LinesConfig, data: Data, model, logger: Logger,
                     scheduler_fn=None) -> dict:
    """Train `model` with cross-entropy and return the history, test metrics and times."""
    outputs = KeepLastOutputs(len(data.class_names))
    history, wall = fit_timed(cfg, data, model, logger, outputs, scheduler_fn=scheduler_fn)
    pred = outputs.logits.argmax(1)
    scores = metrics.precision_recall_f1(pred, outputs.targets, len(data.class_names))
    return {"history": history, "test_accuracy": history["val_acc"][-1],
            "test_loss": history["val_loss"][-1], "macro_f1": float(scores["macro"]["f1"]),
            "parameters": model.num_parameters(), **timing(history, wall),
            "confusion_matrix": metrics.confusion_matrix(pred, outputs.targets,
                                                         len(data.class_names), "true"),
            "scores": scores}


def finish_run(cfg: LinesConfig, logger: Logger, result: dict, title: str, facts: list,
               record: RunRecord, model) -> None:
    """Log the test results (confusion matrix, F-scores, hparams), save the weights and write
    metrics.json and report.html."""
    cm, scores, names = result["confusion_matrix"], result["scores"], record.class_names
    logger.image("test/confusion_matrix", confusion_image(cm, names), cfg.epochs)
    logger.scalar("test/f1_macro", result["macro_f1"], cfg.epochs)
    logger.text("test/f_scores", report.table_markdown(*f_table(scores, names)), cfg.epochs)
    logger.hparams(hparams(cfg), {"hparam/test_accuracy": result["test_accuracy"],
                                  "hparam/macro_f1": result["macro_f1"],
                                  "hparam/wall_seconds": result["wall_seconds"]})
    save_checkpoint(model.state_dict(), record, logger.logdir)
    kept = {k: v for k, v in result.items() if k not in ("confusion_matrix", "scores")}
    logger.summary.update(kept, status="finished", confusion_matrix=cm.tolist(),
                          f1_per_class=[float(v) for v in scores["f1"]])
    logger.flush()
    sections = [
        ("Summary", report.table_html(["", ""], facts + summary_facts(result))),
        ("Learning curves (validation = the 40% test split)", curves(result["history"])),
        ("Confusion matrix", report.figure(confusion_image(cm, names), _cm_caption(names))),
        ("Most confused classes", report.table_html(*confused_pairs(cm, names))),
        ("F-scores", report.table_html(*f_table(scores, names))),
    ]
    report.write_text_atomic(os.path.join(logger.logdir, "report.html"),
                             report.page(title, sections))


def summary_facts(result: dict) -> list[list]:
    return [["parameters", result["parameters"]], ["test accuracy", result["test_accuracy"]],
            ["test loss", result["test_loss"]], ["macro F1", result["macro_f1"]],
            ["seconds per epoch", result["seconds_per_epoch"]],
            ["ms per iteration", result["ms_per_iter"]],
            ["wall time (s)", result["wall_seconds"]]]


# ---- figures and tables ----------------------------------------------------------------------

def confusion_image(cm: np.ndarray, names: list[str]) -> np.ndarray:
    """The confusion matrix drawn by viz (annotated for a few classes; for many, every tick
    label, a colour bar and a square-root scale so that rare confusions stay visible)."""
    return heatmap_image(cm, labels=names, title="confusion matrix (row = true class)",
                         fmt=".2f", vmin=0.0, vmax=1.0)


def _cm_caption(names: list[str]) -> str:
    if len(names) <= 12:
        return "P(predicted | true), rows sum to 1"
    return (f"P(predicted | true) for the {len(names)} classes in class order, row = true "
            f"class; colour = square root of the probability")


def confused_pairs(cm: np.ndarray, names: list[str], k: int = 10) -> tuple[list, list]:
    """The k largest off-diagonal entries of a row-normalised confusion matrix."""
    off = cm - np.diag(np.diag(cm))
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    rows = [[names[i], names[j], float(off[i, j])]
            for i, j in zip(*np.unravel_index(order, cm.shape)) if off[i, j] > 0]
    return ["true class", "predicted as", "fraction of the true class"], rows


# ---- the experiment --------------------------------------------------------------------------

def schedule_fn(cfg: LinesConfig):
    """The scheduler_fn of --schedule: cosine annealing to 0 over the run, or none."""
    if cfg.schedule not in ("cosine", "none"):
        raise UsageError(f"--schedule {cfg.schedule}: the line experiments take cosine or none")
    return cosine_decay if cfg.schedule == "cosine" else None


def run(cfg: LinesConfig) -> dict:
    """Train and test the specified CNN on cfg.dataset; return the summary."""
    check_config(cfg, DEFAULTS.model)
    scheduler_fn = schedule_fn(cfg)
    data = load_data(cfg)
    tg.manual_seed(cfg.seed)
    model = SpecCNN(in_channels=data.in_channels, num_classes=len(data.class_names))
    record = record_for(cfg, "lines_specified", "spec_cnn", model, data)

    def body(logger: Logger) -> dict:
        result = train_classifier(cfg, data, model, logger, scheduler_fn)
        facts = [["data set", f"{cfg.dataset}: {len(data.train)} train / {len(data.test)} test"],
                 ["model", "SpecCNN " + str(model.config)], ["epochs", cfg.epochs],
                 ["batch size", cfg.batch_size], ["optimizer", f"{cfg.optimizer} lr={cfg.lr}"],
                 ["learning-rate schedule", cfg.schedule]]
        finish_run(cfg, logger, result, f"The specified CNN on {cfg.dataset}", facts, record,
                   model)
        print(f"spec_cnn on {cfg.dataset}: test accuracy {result['test_accuracy']:.4f}, macro "
              f"F1 {result['macro_f1']:.4f}, {result['wall_seconds']:.1f} s; run in "
              f"{logger.logdir}")
        return {k: v for k, v in result.items() if k not in ("confusion_matrix", "scores")} | {
            "run_dir": logger.logdir}
    return logged_run(cfg, record, f"{cfg.dataset}_spec_cnn", body)


DEFAULTS = LinesConfig(epochs=3)


def main(argv=None) -> dict:
    return exit_on_usage_error(lambda: run(parse_config(
        DEFAULTS, argv, description=__doc__.splitlines()[0],
        experiment="lines_specified")), argv)


if __name__ == "__main__":
    main()
