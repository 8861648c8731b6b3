"""The line-dataset experiments' shared part: the config (data set, images per class, the
network's architecture), the 60/40 split, and the specified CNN's build and report.
`lines_specified` runs it, `lines_variations` runs it once per variant, `lines_multihead` builds
its own network on the same data, and the sweeps' `lines` experiment calls the same build.

    cfg = LinesConfig(per_class=100, kernel_size=5)
    setup = build(cfg)            # SpecCNN, Adam, loaders of the 60/40 split, ...
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from models.lines import DOWNSAMPLE, SpecCNN, SpecCNNCode, feature_config
from tinygrad_edu import metrics
from tinygrad_edu.data import MNIST, ArrayDataset, DataError, DataLoader, random_split
from tinygrad_edu.data import transforms as T
from tinygrad_edu.data.lines import LineDataset
from tinygrad_edu.optim.lr_scheduler import CosineAnnealingLR
from tinygrad_edu.viz.images import heatmap_image

from . import UsageError, report
from .common import Config, Report, Result, Setup, subset, trainable
from .run_record import Preprocessing, mnist_class_names, mnist_preprocessing

DATASETS = ("lines", "mnist")
TRAIN_FRACTION = 0.6  # the rest, 40%, is the test set
NET = inspect.signature(SpecCNNCode.__init__).parameters  # the networks' own defaults
LINES_INPUT = Preprocessing(mean=(0.0,), std=(1.0,), size=28, channels=3, dark_background=True)


@dataclass
class LinesConfig(Config):
    """Config plus the data set, the images per class of the line dataset, and the network's
    architecture (--channels 32,64 --kernel-size 5 --padding 2 ...: what variations vary)."""

    CHOICES: ClassVar[dict] = {"dataset": DATASETS, "downsample": DOWNSAMPLE}
    model: str = "spec_cnn"
    dataset: str = "lines"
    per_class: int = 1000
    batch_size: int = 64
    channels: str = ",".join(map(str, NET["channels"].default))  # one conv block per entry
    kernel_size: int = NET["kernel_size"].default
    padding: int = NET["padding"].default
    downsample: str = NET["downsample"].default  # pool, or stride (a stride-2 convolution)
    hidden: int = NET["hidden"].default
    dropout: float = NET["dropout"].default


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


def architecture(cfg: LinesConfig, in_channels: int = 3) -> dict:
    """The feature network's keyword arguments from the flags (--channels as "32,64" or, from a
    sweep, a list); a combination that cannot be built is a UsageError, before any data."""
    try:
        channels = tuple(int(c) for c in (cfg.channels.split(",") if isinstance(
            cfg.channels, str) else cfg.channels))
    except ValueError:
        raise UsageError(f"--channels takes filter counts separated by commas, e.g. 32,64; got "
                         f"{cfg.channels!r}") from None
    kwargs = {"channels": channels, "kernel_size": cfg.kernel_size, "padding": cfg.padding,
              "downsample": cfg.downsample, "hidden": cfg.hidden, "dropout": cfg.dropout}
    try:
        feature_config(cfg.model, in_channels, 28, **kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return kwargs


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


def load_data(cfg: LinesConfig, target_type: str = "class") -> Data:
    """The data set of cfg.dataset split 60/40 by cfg.seed (MNIST: the first --subset images
    of a seeded permutation, if given); problems become UsageErrors."""
    try:
        if cfg.dataset == "mnist":
            dataset = subset(mnist_all(cfg.data_dir), cfg.subset, cfg.seed)
            names, prep = mnist_class_names("mnist"), mnist_preprocessing("mnist")
        else:
            dataset = LineDataset(cfg.data_dir, per_class=cfg.per_class, target_type=target_type,
                                  transform=T.ToTensor())
            names, prep = list(LineDataset.classes), LINES_INPUT
    except DataError as e:
        raise UsageError(str(e)) from None
    train, test = random_split(dataset, [TRAIN_FRACTION, 1 - TRAIN_FRACTION], seed=cfg.seed)
    return Data(train, test, names, prep)


def mnist_all(data_dir: str | None) -> ArrayDataset:
    """MNIST's training and test images together (70,000), normalised, to split 60/40."""
    parts = [MNIST(data_dir, train=train) for train in (True, False)]
    images = np.concatenate([p.data for p in parts])
    labels = np.concatenate([p.targets for p in parts])
    return ArrayDataset(images, labels, mnist_preprocessing("mnist").transform())


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


def cosine_decay(optimizer, total_steps: int) -> CosineAnnealingLR:
    """Cosine annealing from the optimizer's lr to 0 over `total_steps`, stepped after every
    batch (the line experiments' --schedule cosine)."""
    scheduler = CosineAnnealingLR(optimizer, T_max=total_steps)
    scheduler.step_per_batch = True  # tg.train.fit then steps it after every batch
    return scheduler


def per_batch_schedule(cfg: LinesConfig, train_loader):
    """`optimizer -> scheduler` of --schedule: cosine to 0 over all the run's batches, or
    none."""
    if cfg.schedule not in ("cosine", "none"):
        raise UsageError(f"--schedule {cfg.schedule}: the line experiments take cosine or none")
    total = cfg.epochs * len(train_loader)
    return lambda optimizer: cosine_decay(optimizer, total) if cfg.schedule == "cosine" else None


def build(cfg: LinesConfig) -> Setup:
    """The specified CNN (with the config's architecture) on the 60/40 split of cfg.dataset."""
    check_config(cfg, "spec_cnn")
    kwargs = architecture(cfg, 1 if cfg.dataset == "mnist" else 3)
    data = load_data(cfg)
    network = SpecCNN(in_channels=data.in_channels, num_classes=len(data.class_names), **kwargs)
    train_loader = DataLoader(data.train, cfg.batch_size, shuffle=True)
    model, optimizer, scheduler = trainable(cfg, network, per_batch_schedule(cfg, train_loader))
    return Setup(model, optimizer, train_loader, DataLoader(data.test, 1000),
                 model_name="spec_cnn", model_config=network.config, dataset=cfg.dataset,
                 preprocessing=data.preprocessing, class_names=data.class_names,
                 name=f"{cfg.dataset}_spec_cnn", scheduler=scheduler,
                 metrics_fn=KeepLastOutputs(len(data.class_names)), data=data)


# ---- the report ------------------------------------------------------------------------------

def finish(cfg: LinesConfig, setup: Setup, result: Result, logger, title: str | None = None,
           facts: tuple = ()) -> Report:
    """Test results of a classifier on the 40% split (confusion matrix, most confused pairs,
    F-scores) to TensorBoard and the report; `facts` go first in its Summary."""
    kept, names, h = setup.metrics_fn, setup.class_names, result.history
    pred = kept.logits.argmax(1)
    scores = metrics.precision_recall_f1(pred, kept.targets, len(names))
    cm = metrics.confusion_matrix(pred, kept.targets, len(names), "true")
    acc, loss, macro_f1 = h["val_acc"][-1], h["val_loss"][-1], float(scores["macro"]["f1"])
    logger.image("test/confusion_matrix", confusion_image(cm, names), cfg.epochs)
    logger.scalar("test/f1_macro", macro_f1, cfg.epochs)
    logger.text("test/f_scores", report.table_markdown(*report.f_table(scores, names)),
                cfg.epochs)
    data = setup.data
    summary_facts = [
        *facts, ["data set", f"{cfg.dataset}: {len(data.train)} train / {len(data.test)} test"],
        ["model", "SpecCNN " + str(setup.model_config)], ["epochs", cfg.epochs],
        ["batch size", cfg.batch_size],
        ["optimizer", f"{cfg.optimizer} lr={cfg.lr} weight_decay={cfg.weight_decay}"],
        ["learning-rate schedule", cfg.schedule], ["parameters", result.parameters],
        ["test accuracy", acc], ["test loss", loss], ["macro F1", macro_f1],
        *report.time_facts(result.timing())]
    sections = [
        ("Summary", report.table_html(["", ""], summary_facts)),
        ("Learning curves (validation = the 40% test split)", report.curves(h)),
        ("Confusion matrix", report.figure(confusion_image(cm, names), cm_caption(names))),
        ("Most confused classes", report.table_html(*confused_pairs(cm, names))),
        ("F-scores", report.table_html(*report.f_table(scores, names))),
    ]
    return Report({"test_accuracy": acc, "test_loss": loss, "macro_f1": macro_f1,
                   "split": [len(data.train), len(data.test)],
                   "confusion_matrix": cm.tolist(),
                   "f1_per_class": [float(v) for v in scores["f1"]]},
                  title or f"The specified CNN on {cfg.dataset}", sections,
                  {"hparam/test_accuracy": acc, "hparam/macro_f1": macro_f1,
                   "hparam/wall_seconds": result.wall_seconds},
                  f"spec_cnn on {cfg.dataset}: test accuracy {acc:.4f}, macro F1 {macro_f1:.4f}, "
                  f"{result.wall_seconds:.1f} s")


def confusion_image(cm: np.ndarray, names: list[str]) -> np.ndarray:
    """The confusion matrix drawn by viz (annotated for a few classes; for many, every tick
    label, a colour bar and a square-root scale so that rare confusions stay visible)."""
    return heatmap_image(cm, labels=names, title="confusion matrix (row = true class)",
                         fmt=".2f", vmin=0.0, vmax=1.0)


def cm_caption(names: list[str]) -> str:
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
