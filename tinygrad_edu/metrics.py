"""Classification metrics on numpy arrays: accuracy, confusion matrix, precision/recall/F1, top-k.

Every function accepts numpy arrays, lists or Tensors (anything numpy can convert). Where a
function takes predictions it also takes logits or probabilities of shape (N, C): they are turned
into labels with ``argmax`` over the last axis. Definitions follow scikit-learn with
``zero_division=0`` so results can be checked against it.
"""
from __future__ import annotations

import numpy as np


def _array(x) -> np.ndarray:
    """The numpy array behind a Tensor, list or array."""
    return np.asarray(getattr(x, "data", x))


def _labels(pred, targets, fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels (argmax of (N, C) scores, or (N,) labels as given) and (N,) targets."""
    pred, targets = _array(pred), _array(targets)
    if targets.ndim != 1:
        raise ValueError(f"{fn}: expected targets of shape (N,), got {targets.shape}")
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)  # (N, C) scores -> (N,) labels
    if pred.shape != targets.shape:
        raise ValueError(f"{fn}: expected predictions of shape (N,) or (N, C) with N = "
                         f"{targets.shape[0]} (the number of targets), got {pred.shape}")
    if pred.size == 0:
        raise ValueError(f"{fn}: got no samples (empty predictions and targets)")
    for name, a in (("predictions", pred), ("targets", targets)):
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{fn}: {name} must be integer class labels, got dtype {a.dtype}")
    return pred, targets


def _check_range(fn: str, num_classes: int, **arrays: np.ndarray) -> None:
    """Raise if any label is outside [0, num_classes)."""
    for name, a in arrays.items():
        if a.min() < 0 or a.max() >= num_classes:
            raise ValueError(f"{fn}: {name} must lie in [0, {num_classes}) for num_classes="
                             f"{num_classes}, got values in [{a.min()}, {a.max()}]")


def accuracy(logits_or_pred, targets) -> float:
    """Fraction of samples whose predicted label equals the target.

    ``logits_or_pred``: (N, C) scores or (N,) labels; ``targets``: (N,) labels.
    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    pred, targets = _labels(logits_or_pred, targets, "accuracy")
    return float(np.mean(pred == targets))


def confusion_matrix(pred, targets, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """(num_classes, num_classes) matrix: row = true class, column = predicted class.

    ``normalize=None`` gives int64 counts; ``normalize='true'`` divides each row by its total, so
    entry [i, j] is P(predicted j | true i). Rows of classes absent from ``targets`` stay 0.
    >>> confusion_matrix([0, 1, 1], [0, 1, 0], num_classes=2)
    array([[1, 1],
           [0, 1]])
    """
    if normalize not in (None, "true"):
        raise ValueError(f"confusion_matrix: normalize must be None or 'true', got {normalize!r}")
    pred, targets = _labels(pred, targets, "confusion_matrix")
    _check_range("confusion_matrix", num_classes, predictions=pred, targets=targets)
    flat = targets.astype(np.int64) * num_classes + pred  # (N,) index into the flattened matrix
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    cm = counts.reshape(num_classes, num_classes)  # (true, predicted)
    if normalize is None:
        return cm
    totals = cm.sum(axis=1, keepdims=True)  # (num_classes, 1)
    return np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (scikit-learn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


def precision_recall_f1(pred, targets, num_classes: int) -> dict:
    """Per-class precision, recall, F1 and support, plus their macro and weighted averages.

    Returns ``{"precision": (C,), "recall": (C,), "f1": (C,), "support": (C,) int64,
    "macro": {"precision", "recall", "f1"}, "weighted": {...}}``. Undefined ratios are 0, and
    the averages are means of the per-class values over all C classes (macro) or weighted by
    support (weighted), as in ``sklearn.metrics.precision_recall_fscore_support``.
    """
    cm = confusion_matrix(pred, targets, num_classes)  # (true, predicted) counts
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)  # tp + fp
    support = cm.sum(axis=1)  # tp + fn
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, predicted + support)  # = 2PR / (P + R) where defined
    weights = support / support.sum()

    def average(w: np.ndarray) -> dict[str, float]:
        return {name: float(np.sum(v * w)) for name, v in
                (("precision", precision), ("recall", recall), ("f1", f1))}

    return {"precision": precision, "recall": recall, "f1": f1, "support": support,
            "macro": average(np.full(num_classes, 1.0 / num_classes)),
            "weighted": average(weights)}


def topk_per_class(scores, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """For each class c, the k samples with the highest score for c, best first.

    ``scores``: (N, C), typically softmax probabilities. Returns ``(indices, values)``, both of
    shape (C, k): ``indices[c]`` are sample indices, ``values[c]`` their scores for class c.
    Ties go to the lower sample index. Example: ``idx, p = topk_per_class(probs, k=3)``, then
    ``images[idx]`` has shape (C, 3, ...), one row of images per class.
    """
    scores = _array(scores)
    if scores.ndim != 2:
        raise ValueError(f"topk_per_class: expected scores of shape (N, C), got {scores.shape}")
    if not 1 <= k <= scores.shape[0]:
        raise ValueError(f"topk_per_class: k must be in [1, N={scores.shape[0]}], got k={k}")
    order = np.argsort(-scores, axis=0, kind="stable")  # (N, C), best sample first per class
    indices = order[:k].T  # (C, k)
    values = np.take_along_axis(scores.T, indices, axis=1)  # (C, k)
    return indices, values
