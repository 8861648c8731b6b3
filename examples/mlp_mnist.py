"""Train a 3-layer MLP (784-256-128-10, ReLU) on MNIST with tinygrad_edu's training stack.

    python examples/mlp_mnist.py                  # 2 epochs, batch 64, Adam: >= 97% test accuracy
    python examples/mlp_mnist.py --resume runs/mlp_mnist-<time>     # finish an interrupted run
    tensorboard --logdir runs                     # curves, histograms, confusion matrix, top-3

Everything comes from the public API: tg.data (MNIST, DataLoader, random_split), tg.nn,
tg.optim.Adam, tg.train (fit, evaluate), tg.metrics and the TensorBoard Logger. 5,000 training
images are held out for validation, so the test set is only looked at once, at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import tinygrad_edu as tg
from tinygrad_edu import metrics, nn
from tinygrad_edu.data import MNIST, DataError, DataLoader, random_split
from tinygrad_edu.data import transforms as T
from tinygrad_edu.logging import Logger
from tinygrad_edu.optim import Adam
from tinygrad_edu.train import TrainingDiverged, evaluate, fit


@dataclass
class Config:
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3
    val_size: int = 5000
    seed: int = 0
    logdir: str = "runs"
    data_dir: str | None = None
    resume: str | None = None  # a run directory holding checkpoint.npz
    progress: bool = True


# what a resumed run must share with the run it continues (--epochs may grow)
KEPT_ON_RESUME = ("batch_size", "lr", "val_size", "seed", "data_dir")


def parse_args(argv=None) -> Config:
    """Flags -> Config. With --resume, flags not given come from the run's saved config, and a
    flag given with another value than the run's is refused."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--val-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--logdir", help="runs are written to LOGDIR/mlp_mnist-*")
    p.add_argument("--data-dir", help="folder with the MNIST files (else download)")
    p.add_argument("--resume", help="run directory of an interrupted run")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    given = {k: v for k, v in vars(p.parse_args(argv)).items() if v is not None}
    base = asdict(Config())
    if "resume" in given:
        saved = saved_config(given["resume"])
        changed = [k for k in KEPT_ON_RESUME if k in given and given[k] != saved.get(k)]
        if changed:
            k = changed[0]
            raise UsageError(f"--resume: --{k.replace('_', '-')} {given[k]} differs from the "
                             f"run's {saved.get(k)}; leave it out to continue the run as it was")
        base |= {k: saved[k] for k in base if k in saved and k not in ("resume", "progress")}
    cfg = Config(**(base | given))
    for name in ("epochs", "batch_size", "lr", "val_size"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    return cfg


class UsageError(Exception):
    """Something the user can fix: one sentence on stderr, exit code 2."""


def saved_config(run_dir: str) -> dict:
    """The config an earlier run of this script stored in its metrics.json."""
    try:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            return json.load(f)["summary"]["config"]
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"--resume {run_dir}: no metrics.json with this script's config "
                         f"({e})") from None


def build_model() -> nn.Module:
    """(N, 1, 28, 28) images -> (N, 10) logits; the softmax lives in the loss."""
    return nn.Sequential(
        nn.Flatten(),                       # (N, 784)
        nn.Linear(784, 256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def log_test_figures(logger: Logger, logits, targets, test_set: MNIST, step: int) -> float:
    """Confusion matrix heat-map and the 3 most confident test images of each class."""
    probs = tg.Tensor(logits).softmax(1).numpy()                     # (N, 10)
    names = list(test_set.classes)
    cm = metrics.confusion_matrix(probs, targets, num_classes=10, normalize="true")
    logger.confusion_matrix("test/confusion_matrix", cm, names, step)
    top_idx, top_p = metrics.topk_per_class(probs, k=3)              # (10, 3) each
    logger.topk_grid("test/top3_per_class", test_set.data[top_idx], top_p, names, step)
    macro_f1 = metrics.precision_recall_f1(probs, targets, num_classes=10)["macro"]["f1"]
    logger.scalar("test/f1_macro", macro_f1, step)
    return macro_f1


def main(argv=None) -> dict:
    """Run the script; a mistake the user can fix is one line on stderr and exit code 2."""
    try:
        return run(parse_args(argv))
    except (UsageError, DataError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run(cfg: Config) -> dict:
    """Train, test, log; return the summary."""
    tg.manual_seed(cfg.seed)
    transform = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    full_train = MNIST(cfg.data_dir, train=True, transform=transform)
    test_set = MNIST(cfg.data_dir, train=False, transform=transform)
    train_set, val_set = random_split(full_train, [len(full_train) - cfg.val_size, cfg.val_size],
                                      seed=cfg.seed)
    # No seed: the shuffle draws from tg's generator, which checkpoints save and resume restores.
    train_loader = DataLoader(train_set, cfg.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, 1000)
    test_loader = DataLoader(test_set, 1000)

    model = build_model()
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    logger = Logger(logdir=cfg.resume) if cfg.resume else Logger(name="mlp_mnist",
                                                                   root=cfg.logdir)
    with logger:
        logger.summary["config"] = asdict(cfg)
        logger.flush()
        start = time.perf_counter()
        history = fit(model, optimizer, train_loader, val_loader, epochs=cfg.epochs,
                      logdir=logger, resume=bool(cfg.resume), progress=cfg.progress)
        train_seconds = time.perf_counter() - start
        test_loss, test_acc, logits, targets = evaluate(model, test_loader)
        macro_f1 = log_test_figures(logger, logits, targets, test_set, cfg.epochs)
        summary = {"test_accuracy": test_acc, "test_loss": test_loss, "macro_f1": macro_f1,
                   "train_seconds": train_seconds,
                   "seconds_per_epoch": sum(history.epoch_time) / len(history.epoch_time),
                   "ms_per_iter": sum(history.ms_per_iter) / len(history.ms_per_iter),
                   "parameters": model.num_parameters()}
        logger.summary.update(summary)
        hparams = {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "val_size", "seed")}
        logger.hparams(hparams, {"hparam/test_accuracy": test_acc, "hparam/test_loss": test_loss})
    print(f"MLP 784-256-128-10: test accuracy {test_acc:.4f}, loss {test_loss:.4f}, macro F1 "
          f"{macro_f1:.4f}; training {train_seconds:.1f} s ({summary['ms_per_iter']:.2f} ms/iter)"
          f"; run in {logger.logdir}, checkpoint {os.path.join(logger.logdir, 'checkpoint.npz')}")
    return summary | {"run_dir": logger.logdir}


if __name__ == "__main__":
    main()
