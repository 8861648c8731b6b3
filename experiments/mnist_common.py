"""The MNIST / Fashion-MNIST experiment: its config, its build (data, model, optimizer) and its
report (confusion matrix, top-3 images per class, F-scores); `mnist_mlp3`, `mnist_cnn2` and
`mnist_cnn3` run it through the runner, `compare` runs it for several networks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import models
from tinygrad_edu import metrics, viz
from tinygrad_edu.data import DataError, DataLoader
from tinygrad_edu.data.mnist import DATASETS

from . import UsageError, report
from .common import Config, Report, Result, Setup, softmax, subset, trainable
from .run_record import NORMALISATION, mnist_class_names, mnist_preprocessing

TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


@dataclass
class MNISTConfig(Config):
    """Config plus the data set: MNIST's digits or Fashion-MNIST's clothes (same format)."""

    CHOICES: ClassVar[dict] = {"dataset": tuple(NORMALISATION)}
    dataset: str = "mnist"


def load_mnist(cfg: MNISTConfig, train: bool = True):
    """The training (or test) split of cfg.dataset, normalised; a missing, corrupt or wrong
    data set is a UsageError."""
    if cfg.data_dir is not None and not os.path.isdir(cfg.data_dir):
        raise UsageError(f"--data-dir {cfg.data_dir} is not a directory; point it at the folder "
                         f"holding the {cfg.dataset} files, or leave it out to download them")
    try:
        return DATASETS[cfg.dataset](cfg.data_dir, train=train, transform=mnist_preprocessing(cfg.dataset).transform())
    except DataError as e:
        raise UsageError(str(e)) from None


def build(cfg: MNISTConfig) -> Setup:
    """cfg.model on the first --subset training images of cfg.dataset, validated on the test
    set (10,000 images)."""
    if cfg.model not in models.MODELS:
        raise UsageError(f"unknown model {cfg.model!r}; choose one of {', '.join(models.MODELS)}")
    train_set, test_set = load_mnist(cfg), load_mnist(cfg, train=False)
    train_set = subset(train_set, cfg.subset, cfg.seed)
    network = models.get_model(cfg.model)
    model, optimizer, scheduler = trainable(cfg, network)
    prefix = "mnist" if cfg.dataset == "mnist" else cfg.dataset
    return Setup(model, optimizer, DataLoader(train_set, cfg.batch_size, shuffle=True),
                 DataLoader(test_set, 1000), model_name=cfg.model, model_config=network.config,
                 dataset=cfg.dataset, preprocessing=mnist_preprocessing(cfg.dataset),
                 class_names=mnist_class_names(cfg.dataset), scheduler=scheduler,
                 name=f"{prefix}_{cfg.model}-{cfg.framework}", data=test_set)


def finish(cfg: MNISTConfig, setup: Setup, result: Result, logger) -> Report:
    """Test metrics (confusion matrix, F-scores, the 3 most probable images per class) to
    TensorBoard and the report."""
    loss, acc, logits, targets = result.evaluate()
    probs = softmax(logits)
    pred, names, step = probs.argmax(1), setup.class_names, cfg.epochs
    cm = metrics.confusion_matrix(pred, targets, 10, normalize="true")
    scores = metrics.precision_recall_f1(pred, targets, 10)
    top_idx, top_p = metrics.topk_per_class(probs, k=3)
    top3 = (setup.data.data[top_idx], top_p, targets[top_idx])  # images (10, 3, 28, 28) uint8
    logger.confusion_matrix("test/confusion_matrix", cm, names, step)
    logger.topk_grid("test/top3_per_class", top3[0], top_p, names, step, top3[2])
    for c in range(10):
        logger.scalar(f"test/f1/class_{c}", scores["f1"][c], step)
    logger.scalar("test/f1_macro", scores["macro"]["f1"], step)
    logger.text("test/f_scores", report.table_markdown(*report.f_table(scores, names)), step)
    macro_f1 = float(scores["macro"]["f1"])
    summary = {"model": cfg.model, "framework": cfg.framework, "dataset": cfg.dataset,
               "epochs": cfg.epochs, "test_loss": loss, "test_accuracy": acc,
               "macro_f1": macro_f1, "confusion_matrix": cm.tolist(),
               "f1_per_class": [float(v) for v in scores["f1"]]}
    facts = [["data set", cfg.dataset], ["model", cfg.model], ["framework", cfg.framework],
             ["parameters", result.parameters], ["epochs", cfg.epochs],
             ["batch size", cfg.batch_size], ["optimizer", f"{cfg.optimizer} lr={cfg.lr}"],
             ["test accuracy", acc], ["test loss", loss], ["macro F1", macro_f1],
             *report.time_facts(result.timing())]
    sections = [
        ("Summary", report.table_html(["", ""], facts)),
        ("Learning curves (validation = the 10k test set)", report.curves(result.history)),
        ("Confusion matrix and top-3 test images per class",
         "<div class='row'>" + report.figure(viz.plot_confusion_matrix(
             cm, names, title="confusion matrix (row = true class)"),
             "probabilities, rows sum to 1")
         + report.figure(viz.plot_topk(*top3[:2], names, top3[2]),
                         "the 3 images with the highest probability of each class") + "</div>"),
        ("F-scores", report.figure(viz.plot_f_scores(scores, names), "per class")
         + report.table_html(*report.f_table(scores, names))),
    ]
    return Report(summary, f"{TITLES[cfg.dataset]} {cfg.model} ({cfg.framework})", sections,
                  {"hparam/test_accuracy": acc, "hparam/test_loss": loss},
                  f"{cfg.model} on {cfg.dataset} ({cfg.framework}): test accuracy {acc:.4f}, "
                  f"loss {loss:.4f}, macro F1 {macro_f1:.4f}, {result.wall_seconds:.1f} s")

