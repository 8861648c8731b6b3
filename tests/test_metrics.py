"""Metrics against hand-computed cases and, when installed, scikit-learn."""
import numpy as np
import pytest

from tinygrad_edu.metrics import accuracy, confusion_matrix, precision_recall_f1, topk_per_class


class Wrapped:
    """Stands in for a Tensor: metrics only use ``.data``."""

    def __init__(self, data):
        self.data = np.asarray(data)


# Hand case: 4 classes, class 3 never occurs (it still counts in the macro average).
PRED = np.array([0, 0, 1, 2, 2, 2])
TARGET = np.array([0, 1, 1, 2, 2, 0])


def test_accuracy_from_labels_logits_and_tensors():
    assert accuracy(PRED, TARGET) == pytest.approx(4 / 6)
    logits = np.eye(4)[PRED] + 0.1  # (6, 4), argmax = PRED
    assert accuracy(logits, TARGET) == pytest.approx(4 / 6)
    assert accuracy(Wrapped(logits), Wrapped(TARGET)) == pytest.approx(4 / 6)


def test_accuracy_rejects_bad_inputs():
    with pytest.raises(ValueError, match="expected predictions of shape"):
        accuracy(PRED[:5], TARGET)
    with pytest.raises(TypeError, match="integer class labels"):
        accuracy(PRED.astype(np.float32), TARGET)
    with pytest.raises(ValueError, match="no samples"):
        accuracy(np.array([], dtype=int), np.array([], dtype=int))


def test_confusion_matrix_counts_rows_true_columns_predicted():
    expected = np.array([[1, 0, 1, 0],
                         [1, 1, 0, 0],
                         [0, 0, 2, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(PRED, TARGET, 4), expected)


def test_confusion_matrix_normalize_true_keeps_empty_rows_zero():
    cm = confusion_matrix(PRED, TARGET, 4, normalize="true")
    expected = np.array([[0.5, 0, 0.5, 0],
                         [0.5, 0.5, 0, 0],
                         [0, 0, 1, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_allclose(cm, expected)


def test_confusion_matrix_rejects_bad_labels_and_options():
    with pytest.raises(ValueError, match=r"predictions must lie in \[0, 2\)"):
        confusion_matrix(PRED, TARGET, 2)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        confusion_matrix(PRED % 3, TARGET - 1, 3)
    with pytest.raises(ValueError, match="normalize"):
        confusion_matrix(PRED, TARGET, 4, normalize="all")


def test_precision_recall_f1_hand_case():
    r = precision_recall_f1(PRED, TARGET, 4)
    np.testing.assert_allclose(r["precision"], [1 / 2, 1, 2 / 3, 0])
    np.testing.assert_allclose(r["recall"], [1 / 2, 1 / 2, 1, 0])
    np.testing.assert_allclose(r["f1"], [1 / 2, 2 / 3, 4 / 5, 0])
    np.testing.assert_array_equal(r["support"], [2, 2, 2, 0])
    assert r["macro"]["precision"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 4)
    assert r["macro"]["f1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 4)
    assert r["weighted"]["recall"] == pytest.approx(4 / 6)  # weighted recall = accuracy
    assert r["weighted"]["f1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    num_classes = 6
    targets = rng.integers(0, num_classes - 1, 60)  # the last class never occurs
    pred = np.where(rng.random(60) < 0.5, targets, rng.integers(0, num_classes, 60))
    labels = list(range(num_classes))
    ours = precision_recall_f1(pred, targets, num_classes)
    p, r, f, s = metrics.precision_recall_fscore_support(targets, pred, labels=labels,
                                                          zero_division=0)
    np.testing.assert_allclose(ours["precision"], p)
    np.testing.assert_allclose(ours["recall"], r)
    np.testing.assert_allclose(ours["f1"], f)
    np.testing.assert_array_equal(ours["support"], s)
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(targets, pred, labels=labels,
                                                              average=average, zero_division=0)
        assert [ours[average][k] for k in ("precision", "recall", "f1")] == pytest.approx([p, r, f])
    for normalize in (None, "true"):
        np.testing.assert_allclose(
            confusion_matrix(pred, targets, num_classes, normalize=normalize),
            metrics.confusion_matrix(targets, pred, labels=labels, normalize=normalize))
    assert accuracy(pred, targets) == pytest.approx(metrics.accuracy_score(targets, pred))


def test_topk_per_class_picks_highest_scores_per_column():
    scores = np.array([[0.7, 0.2, 0.1],
                       [0.1, 0.8, 0.1],
                       [0.5, 0.4, 0.1],
                       [0.9, 0.05, 0.05]])
    idx, values = topk_per_class(scores, k=2)
    np.testing.assert_array_equal(idx, [[3, 0], [1, 2], [0, 1]])  # class 2: tie -> lower index
    np.testing.assert_allclose(values, [[0.9, 0.7], [0.8, 0.4], [0.1, 0.1]])


def test_topk_per_class_indexes_images_into_rows():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 10))
    images = rng.random((50, 1, 4, 4))
    idx, values = topk_per_class(Wrapped(scores), k=3)
    assert idx.shape == values.shape == (10, 3)
    assert images[idx].shape == (10, 3, 1, 4, 4)
    np.testing.assert_allclose(values, scores[idx, np.arange(10)[:, None]])
    np.testing.assert_allclose(values[:, 0], scores.max(axis=0))
    assert np.all(np.diff(values, axis=1) <= 0)  # best first


def test_topk_per_class_rejects_bad_k_and_shape():
    with pytest.raises(ValueError, match=r"k must be in \[1, N=4\]"):
        topk_per_class(np.zeros((4, 3)), k=5)
    with pytest.raises(ValueError, match=r"expected scores of shape \(N, C\)"):
        topk_per_class(np.zeros(4))
