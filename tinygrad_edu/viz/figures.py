"""The figures of a training run: learning curves, confusion matrix, top-k images, F-scores.

Each function returns a matplotlib Figure (see `viz.plotting`), the same one for report.html,
TensorBoard and a notebook:

    history = tg.train.fit(model, opt, train_loader, val_loader, epochs=5)
    fig = viz.plot_learning_curves(history)
    fig = viz.plot_confusion_matrix(cm_probs, class_names)          # rows: true classes
    fig = viz.plot_topk(images, probs, class_names, true_labels)    # images (C, k, ...)
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import Normalize, PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .pictures import draw_image
from .plotting import new_figure

ANNOTATE_MAX = 20  # confusion matrices up to this many classes print the value in each cell
SPLIT_LABELS = {"train": "train", "val": "validation"}


def _history_dict(history) -> dict:
    """A `train.History` or its `as_dict()`."""
    return history.as_dict() if hasattr(history, "as_dict") else dict(history)


def _draw_lines(ax, series: Mapping[str, Sequence[tuple[float, float]]], title: str,
                xlabel: str, ylabel: str) -> None:
    """Named (x, y) series with markers, integer x ticks and the legend outside the data."""
    for name, points in series.items():
        if len(points):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=4, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    xs = [x for points in series.values() for x, _ in points]
    if xs and max(xs) - min(xs) < 12:  # a few epochs: a tick on each, one point stays centred
        ax.set_xticks(range(int(min(xs)), int(max(xs)) + 1))
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if any(len(p) for p in series.values()):
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=9)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")


def plot_lines(series: Mapping[str, Sequence[tuple[float, float]]], title: str,
               xlabel: str = "epoch", ylabel: str = "", width: float = 6.4,
               height: float = 3.6) -> Figure:
    """One chart of named (x, y) series, e.g. the validation loss of every trial of a sweep."""
    fig = new_figure(width, height)
    _draw_lines(fig.add_subplot(), series, title, xlabel, ylabel)
    return fig


def plot_learning_curves(history, title: str = "", val_label: str = "validation") -> Figure:
    """Loss and accuracy per epoch, train and validation, side by side.

    `history`: what `tg.train.fit` returns (or its `as_dict()`): train_loss, val_loss, train_acc
    and val_acc lists, entry i for epoch i + 1. Empty or NaN lists are left out.
    """
    h = _history_dict(history)
    fig = new_figure(11.0, 3.8)
    axes = fig.subplots(1, 2)
    for ax, (metric, name) in zip(axes, (("loss", "loss"), ("acc", "accuracy"))):
        series = {}
        for split in ("train", "val"):
            values = [v for v in h.get(f"{split}_{metric}", []) if np.isfinite(v)]
            label = val_label if split == "val" else "train"
            series[label] = list(zip(range(1, len(values) + 1), values))
        _draw_lines(ax, series, f"{name} per epoch", "epoch", name)
    if title:
        fig.suptitle(title)
    return fig


def _matrix_size(n: int) -> tuple[float, float, int]:
    """(width, height) inches and tick font size for an n x n matrix: cells stay legible."""
    if n <= ANNOTATE_MAX:
        side = max(2.6, 0.42 * n + 1.8)  # 10 classes: 6 in, 600 px; 2 classes: 2.6 in
        return side + 1.2, side, 9
    # a row per 0.12 in (12 px at 100 dpi) with 7 pt labels, and little margin: shrunk to a
    # 1200 px report page, 101 classes keep 10 px rows and 8 px labels (an 18 in figure with
    # 6 pt labels had 6 px rows and 5 px labels there)
    side = 0.12 * n + 1.5  # 101 classes: 14 x 13.6 in
    return side + 0.4, side, 7


def plot_confusion_matrix(cm, class_names: Sequence[str] | None = None, title: str = "",
                          fmt: str = ".2f", xlabel: str = "predicted class",
                          ylabel: str = "true class", cmap: str = "Blues",
                          vmin: float | None = 0.0, vmax: float | None = None) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with a colour bar.

    Up to 20 classes every cell is annotated with its value; beyond, every class keeps a tick
    label at 7 pt, a row per 0.12 in (101 classes: 14 inches wide) and the colours follow the
    square root of the value, so that rare confusions stay visible. `vmax` defaults to 1 for a
    row-normalised matrix, else the largest value.
    >>> fig = plot_confusion_matrix(cm_probs, [str(d) for d in range(10)], title="test")
    """
    m = np.asarray(getattr(cm, "data", cm), np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape {m.shape}")
    n = len(m)
    names = [str(i) for i in range(n)] if class_names is None else [str(s) for s in class_names]
    if len(names) != n:
        raise ValueError(f"plot_confusion_matrix: {len(names)} labels for a {n}x{n} matrix")
    if vmax is None:
        vmax = max(1.0, float(m.max()))
    width, height, size = _matrix_size(n)
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    many = n > ANNOTATE_MAX  # many classes: a square-root scale keeps rare confusions visible
    norm = PowerNorm(0.5, vmin, vmax) if many else Normalize(vmin, vmax)
    im = ax.imshow(m, cmap=cmap, norm=norm, interpolation="nearest")
    label = "fraction of the true class" if vmax == 1.0 else "count"
    fig.colorbar(im, ax=ax, shrink=0.6 if many else 0.8, aspect=40 if many else 20, pad=0.02,
                 label=label + (" (square-root scale)" if many else ""))
    longest = max(map(len, names))
    ax.set_xticks(range(n), names, rotation=90 if n * longest > 40 else 0, fontsize=size)
    ax.set_yticks(range(n), names, fontsize=size)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if n <= ANNOTATE_MAX:
        _annotate(ax, m, fmt, (vmin or 0.0) + 0.5 * (vmax - (vmin or 0.0)))
    return fig


def _annotate(ax, m: np.ndarray, fmt: str, dark_above: float) -> None:
    """Print each cell's value, white on dark cells."""
    for (i, j), v in np.ndenumerate(m):
        text = format(round(v) if fmt.endswith("d") else v, fmt)
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if v > dark_above else "black")


def plot_topk(images, probs, class_names: Sequence[str], true_labels=None,
              title: str = "") -> Figure:
    """The k most probable test images of each class: one row per class.

    `images` (C, k, ...) and `probs` (C, k): row c holds the k images the model gives the highest
    probability of class c (`metrics.topk_per_class`). Each caption gives the predicted class c,
    its probability and, with `true_labels` (C, k), the true label; a wrong one is red and framed.
    """
    images, probs = np.asarray(images), np.asarray(probs)
    c, k = probs.shape if probs.ndim == 2 else (0, 0)
    if probs.ndim != 2 or images.shape[:2] != (c, k) or len(class_names) != c:
        raise ValueError(f"plot_topk: expected images (C, k, ...) and probs (C, k) with C = "
                         f"{len(class_names)} classes, got images {images.shape} and probs "
                         f"{probs.shape}")
    truth = None if true_labels is None else np.asarray(true_labels).reshape(c, k)
    fig = new_figure(1.25 * k + 0.6, 1.4 * c + 0.5)
    axes = fig.subplots(c, k, squeeze=False)
    for (row, col), ax in np.ndenumerate(axes):
        draw_image(ax, images[row, col])
        caption = f"pred {class_names[row]}  p={probs[row, col]:.3f}"
        wrong = truth is not None and truth[row, col] != row
        if truth is not None:
            caption += f"\ntrue {class_names[truth[row, col]]}" + ("  WRONG" if wrong else "")
        ax.set_title(caption, fontsize=8, color="red" if wrong else "black")
        if wrong:
            for spine in ax.spines.values():
                spine.set(visible=True, color="red", linewidth=3)
    title = title or f"the top-{k} test images of each class (row c: highest P(c) first)"
    fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * 11)), fontsize=11)  # 11 pt fits
    return fig


def plot_f_scores(scores: Mapping, class_names: Sequence[str], title: str = "") -> Figure:
    """Precision, recall and F1 of every class as grouped bars, macro F1 as a dashed line.

    `scores`: `metrics.precision_recall_f1(pred, targets, n)`. More than 20 classes: F1 only.
    """
    n = len(class_names)
    many = n > ANNOTATE_MAX
    fig = new_figure(max(6.4, (0.16 if many else 0.6) * n + 2.5), 4.2 if many else 3.8)
    ax = fig.add_subplot()
    kinds = ("f1",) if many else ("precision", "recall", "f1")
    width = 0.8 / len(kinds)
    x = np.arange(n)
    for i, kind in enumerate(kinds):
        ax.bar(x + (i - (len(kinds) - 1) / 2) * width, scores[kind], width,
               label="F1" if kind == "f1" else kind)
    macro = scores["macro"]["f1"]
    ax.axhline(macro, color="black", linestyle="--", linewidth=1, label=f"macro F1 {macro:.3f}")
    ax.set_xticks(x, class_names, rotation=90 if many else 0, fontsize=6 if many else 9)
    ax.set_xlabel("class")
    ax.set_ylabel("score")
    low = min(float(np.min(scores[k])) for k in kinds)
    ax.set_ylim(max(0.0, low - 0.05) if low > 0.5 else 0.0, 1.0)
    ax.set_title(title or ("F1 per class" if many else "precision, recall and F1 per class"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=9)
    return fig
