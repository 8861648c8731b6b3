"""The Caltech-101 experiment: its config, its build (stratified image-folder splits, the
network, one-hot cross-entropy, in either framework) and its report (per-epoch table, hardest
classes, confusion matrix, F-scores). `caltech_lenet5` and `caltech_resnet18` run it through
the runner; the sweeps' `caltech_lenet5` experiment calls the same build."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import models
import tinygrad_edu as tg
from tinygrad_edu import metrics, viz
from tinygrad_edu.data import ArrayDataset, DataError, DataLoader, ImageFolder
from tinygrad_edu.data import transforms as T
from tinygrad_edu.nn import functional as F

from . import UsageError, report
from .common import Config, Report, Result, Setup, softmax, subset, trainable
from .run_record import Preprocessing

# the repository's sibling folder shared/ holds the original JPEGs (with a sha256sums file)
DATA_DIR = Path(__file__).resolve().parents[2] / "shared/data/caltech101/101_ObjectCategories"
EXCLUDE = ("BACKGROUND_Google",)  # Google image-search clutter, not one of the 101 classes
# per-channel mean and std of the 90% training split at 64x64 (ImageFolder, split_seed 0)
MEAN, STD = (0.546, 0.529, 0.502), (0.304, 0.298, 0.311)


@dataclass
class CaltechConfig(Config):
    """A Caltech-101 run: Config's flags with new defaults, and this experiment's own."""

    model: str = "lenet5"
    epochs: int = 10
    batch_size: int = 64
    schedule: str = "none"
    data_dir: str | None = str(DATA_DIR)
    image_size: int = 64
    val_fraction: float = 0.1
    classes: int | None = None  # only the first N classes (alphabetical): quick runs and tests
    augment: bool = False  # random crop (padding), horizontal flip, colour jitter
    crop_padding: int = 4  # --augment's random crop: zero padding on each side, in pixels
    jitter: float = 0.3  # --augment's colour jitter strength (brightness, contrast, saturation)
    dropout: float = 0.3  # the improved LeNet-5's dropout before each hidden FC layer
    label_smoothing: float = 0.0  # of the training loss's one-hot targets (torch's meaning)
    tta: bool = False  # final evaluation averages the softmax of each image and its mirror image


def load_caltech(cfg: CaltechConfig) -> tuple[ImageFolder, ImageFolder]:
    """The stratified train and validation splits, normalised; training ones augmented if asked."""
    root = Path(cfg.data_dir or DATA_DIR)
    if not root.is_dir():
        raise UsageError(f"--data-dir {root} is not a directory; point it at Caltech-101's "
                         f"101_ObjectCategories folder (one sub-folder per class)")
    exclude = list(EXCLUDE) if (root / EXCLUDE[0]).is_dir() else []
    if cfg.classes is not None:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in exclude)
        exclude += names[cfg.classes:]
    normalize = T.Normalize(MEAN, STD)
    augment = [T.RandomCrop(cfg.image_size, padding=cfg.crop_padding), T.RandomHorizontalFlip(),
               *([T.ColorJitter(*[cfg.jitter] * 3)] if cfg.jitter else [])] if cfg.augment else []
    common = {"size": cfg.image_size, "val_fraction": cfg.val_fraction, "exclude": exclude}
    try:
        train = ImageFolder(root, split="train", transform=T.Compose(
            [T.ToTensor(), *augment, normalize]), **common)
        val = ImageFolder(root, split="val", transform=T.Compose([T.ToTensor(), normalize]),
                          **common)
    except DataError as e:
        raise UsageError(str(e)) from None
    return train, val


def one_hot_cross_entropy(num_classes: int, framework: str, label_smoothing: float = 0.0):
    """Cross-entropy against one-hot targets (the assignment's), built from the class indices
    the loader yields; the loss equals index cross-entropy, and accuracy stays computable.
    label_smoothing applies while gradients are recorded (training), so the validation loss,
    computed under no_grad, stays the plain cross-entropy of runs without it."""
    if framework == "torch":
        import torch
        return lambda out, y: torch.nn.functional.cross_entropy(
            out, torch.nn.functional.one_hot(y, num_classes).to(out.dtype),
            label_smoothing=label_smoothing if torch.is_grad_enabled() else 0.0)
    eye = np.eye(num_classes, dtype=np.float32)
    return lambda out, y: F.cross_entropy(  # (N, C) one-hot
        out, eye[y.array], label_smoothing=label_smoothing if tg.is_grad_enabled() else 0.0)


def flip_tta(evaluate, val_loader, logits: np.ndarray, targets: np.ndarray):
    """(loss, accuracy, log-probabilities) of the softmax averaged over each validation image
    and its mirror image (horizontal-flip test-time augmentation); `logits` are the plain ones."""
    data = val_loader.dataset
    mirrored = ArrayDataset(data.data, data.targets, transform=T.Compose(
        [data.transform, T.RandomHorizontalFlip(p=1.0)]))
    flipped = evaluate(DataLoader(mirrored, val_loader.batch_size))[2]
    log_p = np.log((softmax(logits) + softmax(flipped)) / 2)
    loss = float(-log_p[np.arange(len(targets)), targets].mean())
    return loss, float((log_p.argmax(1) == targets).mean()), log_p


def model_kwargs(cfg: CaltechConfig, num_classes: int) -> dict:
    kwargs = {"num_classes": num_classes}
    if cfg.model.startswith("lenet5"):
        kwargs["image_size"] = cfg.image_size
    if cfg.model == "lenet5_improved":
        kwargs["dropout"] = cfg.dropout
    return kwargs


def build(cfg: CaltechConfig) -> Setup:
    """cfg.model on the training split (its first --subset images), validated on the
    validation split, with one-hot cross-entropy."""
    if cfg.model not in models.MODELS:
        raise UsageError(f"unknown model {cfg.model!r}; choose one of {', '.join(models.MODELS)}")
    train_set, val_set = load_caltech(cfg)
    n = len(train_set.classes)
    network = models.get_model(cfg.model, **model_kwargs(cfg, n))
    model, optimizer, scheduler = trainable(cfg, network)
    train_loader = DataLoader(subset(train_set, cfg.subset, cfg.seed), cfg.batch_size,
                              shuffle=True, drop_last=True)  # BatchNorm1d needs 2+ samples
    return Setup(model, optimizer, train_loader, DataLoader(val_set, 256), model_name=cfg.model,
                 model_config=network.config, dataset="caltech101",
                 preprocessing=Preprocessing(mean=MEAN, std=STD, size=cfg.image_size,
                                             channels=3, dark_background=False),
                 class_names=list(train_set.classes), name=f"caltech_{cfg.model}-{cfg.framework}",
                 loss_fn=one_hot_cross_entropy(n, cfg.framework, cfg.label_smoothing),
                 scheduler=scheduler)


def finish(cfg: CaltechConfig, setup: Setup, result: Result, logger) -> Report:
    """Validation metrics (top-5, per class, confusion matrix, F-scores) to TensorBoard and
    the report."""
    loss, acc, logits, targets = result.evaluate()
    plain = {"val_loss_plain": loss, "val_accuracy_plain": acc}  # without --tta
    if cfg.tta:
        loss, acc, logits = flip_tta(result.evaluate, setup.val_loader, logits, targets)
    top5, classes, h = metrics_top5(logits, targets), setup.class_names, result.history
    cm = metrics.confusion_matrix(logits.argmax(1), targets, len(classes), normalize="true")
    logger.scalar("val/top5_accuracy", top5, cfg.epochs)
    summary = {
        "model": cfg.model, "framework": cfg.framework, "epochs": cfg.epochs,
        "train_images": len(setup.train_loader.dataset), "val_images": len(targets),
        "classes": len(classes), "train_loss": h["train_loss"][-1],
        "train_accuracy": h["train_acc"][-1], "val_loss": loss, "val_accuracy": acc,
        "val_top5_accuracy": top5,
        "val_accuracy_per_class": dict(zip(classes, map(float, cm.diagonal()))), **plain,
    }
    scores = metrics.precision_recall_f1(logits.argmax(1), targets, len(classes))
    sections = report_sections(cfg, summary | {"parameters": result.parameters}
                               | result.timing(), h, cm, scores, classes)
    return Report(summary, f"Caltech-101 {cfg.model} ({cfg.framework})", sections,
                  {"hparam/val_accuracy": acc, "hparam/val_loss": loss},
                  f"{cfg.model} ({cfg.framework}): val accuracy {acc:.4f} (top-5 {top5:.4f}), "
                  f"loss {loss:.4f}, {result.timing()['seconds_per_epoch']:.1f} s/epoch, "
                  f"{result.wall_seconds:.1f} s")


def metrics_top5(logits: np.ndarray, targets: np.ndarray) -> float:
    """The fraction of images whose class is among the 5 highest scores."""
    top = np.argsort(-softmax(logits), axis=1)[:, :5]
    return float(np.mean((top == targets[:, None]).any(1)))


def augmentation_text(cfg: CaltechConfig) -> str:
    """The augmentation a run used, in words, for its report."""
    if not cfg.augment:
        return "none"
    jitter = f", colour jitter {cfg.jitter}" if cfg.jitter else ""
    return f"random crop (padding {cfg.crop_padding}), horizontal flip{jitter}"


def report_sections(cfg: CaltechConfig, summary: dict, h: dict, cm, scores, classes) -> list:
    facts = [["model", cfg.model], ["framework", cfg.framework],
             ["parameters", summary["parameters"]], ["classes", summary["classes"]],
             ["train / val images", f"{summary['train_images']} / {summary['val_images']}"],
             ["epochs", cfg.epochs], ["batch size", cfg.batch_size],
             ["optimizer", f"{cfg.optimizer} lr={cfg.lr} weight_decay={cfg.weight_decay}"],
             ["lr schedule", cfg.schedule], ["augmentation", augmentation_text(cfg)],
             ["label smoothing", cfg.label_smoothing], ["flip test-time augmentation", cfg.tta],
             ["val accuracy without flip TTA", summary["val_accuracy_plain"]],
             ["val accuracy", summary["val_accuracy"]],
             ["val top-5 accuracy", summary["val_top5_accuracy"]],
             ["val loss", summary["val_loss"]], ["seconds per epoch", summary["seconds_per_epoch"]],
             ["wall time (s)", summary["wall_seconds"]]]
    epochs = [[e + 1, h["train_loss"][e], h["train_acc"][e], h["val_loss"][e], h["val_acc"][e],
               h["epoch_time"][e]] for e in range(len(h["train_loss"]))]
    worst = sorted(summary["val_accuracy_per_class"].items(), key=lambda kv: kv[1])[:10]
    return [
        ("Summary", report.table_html(["", ""], facts)),
        ("Learning curves (cross-entropy and accuracy per epoch)", report.curves(h)),
        ("Per epoch", report.table_html(
            ["epoch", "train loss", "train acc", "val loss", "val acc", "seconds"], epochs)),
        ("Hardest classes (validation accuracy)", report.table_html(
            ["class", "accuracy"], [[c, a] for c, a in worst])),
        ("Confusion matrix (validation)", report.figure(viz.plot_confusion_matrix(
            cm, classes, title="P(predicted | true)"), "rows: true class, sum to 1")),
        ("F-scores (validation)", report.figure(viz.plot_f_scores(scores, classes), "per class")),
    ]
