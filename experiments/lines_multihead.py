"""Train the multi-head network on the line dataset: one feature network, four heads.

Length, width and colour each have one sigmoid unit (binary cross-entropy), angle has 12
softmax units (cross-entropy); the network is trained end to end on a weighted sum of the four
losses, on 60% of the images, and tested on the other 40%. Adam's learning rate decays to 0 on
a cosine (--schedule none keeps it constant: then, in 3 epochs on 1000 images per class, the
angle head's test accuracy fell from 99.1% after the first epoch to 96.6% after the third).

    python -m experiments.lines_multihead                          # 1000 images per class
    python -m experiments.lines_multihead --per-class 100 --epochs 1 --loss-weights 1,1,1,2

The run directory (runs/lines_multihead-<time>/) holds TensorBoard events (learning curves,
per-head accuracies and confusion matrices, hparams), metrics.json, checkpoint.npz and
report.html (also with a Grad-CAM of each head).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinygrad_edu as tg
from models.lines import HEADS, MultiHeadNet, multihead_loss, predict_attributes
from tinygrad_edu import metrics, nn, viz
from tinygrad_edu.data import DataLoader
from tinygrad_edu.data.lines import ATTRIBUTES

from . import UsageError, report, runner
from .common import Report, Result, Setup, trainable
from .lines_common import LinesConfig, architecture, check_config, load_data, per_batch_schedule

ALL = "all"  # the aggregated accuracy: every head right


@dataclass
class MultiHeadConfig(LinesConfig):
    """LinesConfig (with the feature network's architecture: --channels 32,64 --kernel-size 5
    --padding 2 ..., so that "variations tried" can vary it) plus the loss weights."""

    model: str = "lines_multihead"
    loss_weights: str = "1,1,1,1"  # length, width, colour, angle


def loss_weights(cfg: MultiHeadConfig) -> tuple[float, ...]:
    try:
        weights = tuple(float(w) for w in cfg.loss_weights.split(","))
    except ValueError:
        weights = ()
    if len(weights) != len(HEADS) or min(weights) < 0:
        raise UsageError(f"--loss-weights takes {len(HEADS)} non-negative numbers for "
                         f"{', '.join(HEADS)}, e.g. 1,1,1,2; got {cfg.loss_weights!r}")
    return weights


# ---- the four heads as one tensor, for tg.train.fit ------------------------------------------

class PackedHeads(nn.Module):
    """The network with its heads side by side in one (N, 15) tensor (length, width, colour,
    then the 12 angle logits): tg.train.fit and evaluate expect a single output tensor."""

    def __init__(self, net: MultiHeadNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return tg.cat(list(self.net(x).values()), dim=1)  # (N, 15)


def unpack_heads(packed) -> dict:
    """(N, 15) tensor or array -> {head: (N, units)} in HEADS order."""
    heads, start = {}, 0
    for name, units in HEADS.items():
        heads[name] = packed[:, start:start + units]
        start += units
    return heads


def head_accuracy(right: np.ndarray, prefix: str) -> dict:
    """{prefix}_<head> and {prefix}_all from (N, 4) booleans: which heads got which image right."""
    accuracy = {f"{prefix}_{name}": float(right[:, k].mean()) for k, name in enumerate(HEADS)}
    return accuracy | {f"{prefix}_{ALL}": float(right.all(1).mean())}


class TrainingLoss:
    """The weighted head loss that fit minimises; while training (gradients on, not in fit's
    validation) it also counts which heads got each training image right, so that the report
    has training accuracy curves per head at no extra cost."""

    def __init__(self, weights: tuple[float, ...]):
        self.weights, self.right = weights, []

    def __call__(self, packed, y):
        if tg.is_grad_enabled():
            targets = np.asarray(getattr(y, "data", y))
            self.right.append(predict_attributes(unpack_heads(packed.array)) == targets)
        return multihead_loss(unpack_heads(packed), y, self.weights)

    def epoch_accuracy(self) -> dict:
        """The training accuracy of each head over the batches since the last call."""
        right, self.right = np.concatenate(self.right or [np.zeros((0, len(HEADS)), bool)]), []
        return head_accuracy(right, "train_accuracy") if len(right) else {}


class HeadMetrics:
    """A `fit` metrics_fn: the test accuracy of each head and of all four together, and the
    epoch's training accuracies from `loss`, per epoch; it keeps the last validation outputs
    for the final report."""

    def __init__(self, loss: TrainingLoss):
        self.loss = loss
        self.outputs = self.targets = None

    def __call__(self, packed: np.ndarray, targets: np.ndarray) -> dict:
        self.outputs, self.targets = unpack_heads(packed), targets
        right = predict_attributes(self.outputs) == targets  # (N, 4)
        return head_accuracy(right, "accuracy") | self.loss.epoch_accuracy()


def head_scores(outputs: dict, targets: np.ndarray) -> dict:
    """Per head: accuracy, macro F1, precision/recall/F1 by value and the confusion matrix."""
    pred = predict_attributes(outputs)
    scores = {}
    for k, (name, values) in enumerate(ATTRIBUTES.items()):
        n = len(values)
        prf = metrics.precision_recall_f1(pred[:, k], targets[:, k], n)
        scores[name] = {"accuracy": float(np.mean(pred[:, k] == targets[:, k])),
                        "macro_f1": prf["macro"]["f1"], "prf": prf,
                        "confusion": metrics.confusion_matrix(pred[:, k], targets[:, k], n,
                                                              "true")}
    scores[ALL] = {"accuracy": float(np.mean((pred == targets).all(1)))}
    return scores


# ---- the run ---------------------------------------------------------------------------------

def build(cfg: MultiHeadConfig) -> Setup:
    """The multi-head network, packed for fit, on the 60/40 split of the line dataset's
    attributes, with the weighted head loss and the per-head metrics."""
    check_config(cfg, DEFAULTS.model)
    if cfg.dataset != "lines":
        raise UsageError("the multi-head network learns the line attributes: --dataset lines")
    loss = TrainingLoss(loss_weights(cfg))
    kwargs = architecture(cfg)
    data = load_data(cfg, target_type="attributes")
    net = MultiHeadNet(**kwargs)
    train_loader = DataLoader(data.train, cfg.batch_size, shuffle=True)
    model, optimizer, scheduler = trainable(cfg, PackedHeads(net),
                                            per_batch_schedule(cfg, train_loader))
    heads = {name: [str(v) for v in values] for name, values in ATTRIBUTES.items()}
    return Setup(model, optimizer, train_loader, DataLoader(data.test, 1000),
                 model_name="lines_multihead", model_config=net.config, dataset="lines",
                 preprocessing=data.preprocessing, class_names=data.class_names,
                 name="lines_multihead", loss_fn=loss, scheduler=scheduler,
                 metrics_fn=HeadMetrics(loss), heads=heads, network=net, data=data)


def finish(cfg: MultiHeadConfig, setup: Setup, result: Result, logger) -> Report:
    """Log the per-head test results, and the report (with a Grad-CAM of each head)."""
    kept, step = setup.metrics_fn, cfg.epochs
    scores = head_scores(kept.outputs, kept.targets)
    test_accuracy = {h: s["accuracy"] for h, s in scores.items()}
    for name, values in ATTRIBUTES.items():
        logger.confusion_matrix(f"test/confusion_{name}", scores[name]["confusion"],
                                [str(v) for v in values], step)
        logger.scalar(f"test/accuracy_{name}", scores[name]["accuracy"], step)
        logger.scalar(f"test/f1_{name}", scores[name]["macro_f1"], step)
    logger.scalar(f"test/accuracy_{ALL}", scores[ALL]["accuracy"], step)
    logger.text("test/heads", report.table_markdown(*head_table(scores)), step)
    summary = {"test_accuracy": test_accuracy,
               "test_macro_f1": {h: s["macro_f1"] for h, s in scores.items() if h != ALL},
               "test_loss": result.history["val_loss"][-1],
               "confusion_matrices": {h: scores[h]["confusion"].tolist() for h in HEADS}}
    accuracies = ", ".join(f"{h} {a:.4f}" for h, a in test_accuracy.items())
    return Report(summary, "The multi-head network on the line dataset",
                  report_sections(cfg, summary["test_loss"], scores, result, setup),
                  {f"hparam/accuracy_{h}": a for h, a in test_accuracy.items()}
                  | {"hparam/wall_seconds": result.wall_seconds},
                  f"lines_multihead: test accuracy {accuracies}; {result.wall_seconds:.1f} s")


# ---- the report ------------------------------------------------------------------------------

def head_table(scores: dict) -> tuple[list, list]:
    rows = [[name, len(ATTRIBUTES[name]), s["accuracy"], s["macro_f1"]]
            for name, s in scores.items() if name != ALL]
    rows.append([f"{ALL} four (aggregated)", 96, scores[ALL]["accuracy"], ""])
    return ["head", "values", "test accuracy", "macro F1"], rows


def value_table(scores: dict) -> tuple[list, list]:
    """The F-score table (report.f_table) of every head, one after the other."""
    rows = []
    for name, values in ATTRIBUTES.items():
        header, head_rows = report.f_table(scores[name]["prf"], [f"{name} = {v}" for v in values])
        rows += [[f"{name}: {r[0]}" if r[0] in ("macro", "weighted") else r[0], *r[1:]]
                 for r in head_rows]
    return ["head = value", *header[1:]], rows


def learning_curves(history: dict) -> str:
    """Loss (train and test), and the training and the test accuracy of each head, per epoch,
    as charts."""
    epochs = list(range(1, len(history["train_loss"]) + 1))
    losses = {split: list(zip(epochs, history[f"{split}_loss"])) for split in ("train", "val")}
    charts = [report.line_chart(losses, "weighted loss", "epoch")]
    for prefix, split in (("train_accuracy", "training"), ("accuracy", "test")):
        curves = {name: [(e, m[f"{prefix}_{name}"]) for e, m in zip(epochs, history["val_metrics"])
                         if f"{prefix}_{name}" in m] for name in [*HEADS, ALL]}
        charts.append(report.line_chart(curves, f"{split} accuracy per head", "epoch"))
    return f"<div class='row'>{''.join(charts)}</div>"


def confusion_figures(scores: dict) -> str:
    figures = []
    for name, values in ATTRIBUTES.items():
        image = viz.heatmap_image(scores[name]["confusion"], labels=[str(v) for v in values],
                                  title=name, fmt=".3f", vmin=0.0, vmax=1.0)
        figures.append(report.figure(image, f"{name}: P(predicted | true)"))
    return f"<div class='row'>{''.join(figures)}</div>"


def grad_cam_figure(net: MultiHeadNet, data, count: int = 8) -> str:
    """Grad-CAM of each head (rows) on the first test images (columns), for its prediction."""
    x, y = data.test.get_batch(np.arange(count))  # (count, 3, 28, 28), (count, 4) attributes
    values = list(ATTRIBUTES.values())
    truth = [" ".join(str(values[k][i]) for k, i in enumerate(row)) + "°" for row in y]
    grid = viz.plot_cam_comparison(x, {name: viz.grad_cam(net, x, output=name) for name in HEADS},
                                   truth, title="Grad-CAM of each head (first row: the input)")
    evidence = ", ".join(f"{name} {values[1]}" for name, values in ATTRIBUTES.items()
                         if len(values) == 2)
    return report.figure(grid, f"rows: {', '.join(HEADS)}; Grad-CAM at the last convolution of "
                               f"the logit of each one-unit head (evidence for {evidence}) and of "
                               f"the predicted angle")


def report_sections(cfg: MultiHeadConfig, test_loss: float, scores: dict, result: Result,
                    setup: Setup) -> list:
    facts = [["data set", f"lines: {len(setup.data.train)} train / {len(setup.data.test)} test"],
             ["model", "MultiHeadNet " + str(setup.model_config)], ["epochs", cfg.epochs],
             ["batch size", cfg.batch_size], ["optimizer", f"{cfg.optimizer} lr={cfg.lr}"],
             ["loss weights (length, width, colour, angle)", cfg.loss_weights],
             ["learning-rate schedule", cfg.schedule],
             ["parameters", result.parameters], ["test loss", test_loss],
             *report.time_facts(result.timing())]
    return [
        ("Summary", report.table_html(["", ""], facts)),
        ("Accuracy of each head", report.table_html(*head_table(scores))),
        ("Learning curves (validation = the 40% test split)", learning_curves(result.history)),
        ("Confusion matrices", confusion_figures(scores)),
        ("Grad-CAM of each head", grad_cam_figure(setup.network, setup.data)),
        ("F-scores of each value", report.table_html(*value_table(scores))),
    ]


DEFAULTS = MultiHeadConfig(epochs=3)


main = runner.main_for(DEFAULTS, build, finish, "lines_multihead", __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
