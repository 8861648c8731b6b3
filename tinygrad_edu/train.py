"""A training loop for classifiers: fit, evaluate and predict, with checkpoints you can resume.

    history = tg.train.fit(model, Adam(model.parameters()), train_loader, val_loader, epochs=5,
                           logdir="runs/mlp")     # TensorBoard curves, runs/mlp/checkpoint.npz
    loss, acc, logits, targets = tg.train.evaluate(model, test_loader)

What `fit` does each epoch: train in `model.train()` mode, one optimizer step per batch; then
validate under `no_grad` in `model.eval()` mode; step the scheduler; log; save a checkpoint.

Schedulers: ReduceLROnPlateau steps once per epoch with the validation loss (the training loss
without a val_loader); OneCycleLR, and any scheduler with `step_per_batch = True`, steps after
every batch; every other scheduler steps once per epoch.

Checkpoints (one .npz, see `tinygrad_edu.serialization`) hold the model, optimizer, scheduler,
random-generator state, history and the position in the run, so `fit(..., resume=True)` ends
with exactly the weights an uninterrupted run would have, even when the run was stopped in the
middle of an epoch. For that, the shuffle must come from tinygrad_edu's generator
(`DataLoader(seed=None)`, restored from the checkpoint) or from a loader with
`set_epoch(epoch)` or `state_dict()` / `load_state_dict()`, which `fit` calls.

Ctrl-C or SIGTERM: the first one lets the current batch finish, saves a checkpoint, flushes the
logs and raises KeyboardInterrupt; a second one interrupts at once. An interrupt that lands inside
a step (a second Ctrl-C, or a KeyboardInterrupt raised by the loss or a hook) writes no checkpoint:
the forward had already moved batch norm's running statistics, so the previous checkpoint (if
any) stays and a resumed run continues from it, redoing that step. Checkpoints are created
readable like any other file (0644 under the usual umask).
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from . import metrics
from .autograd import no_grad
from .logging import Logger
from .nn import functional as F
from .nn.module import Module
from .nn.utils import clip_grad_norm_
from .optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau
from .optim.optimizer import Optimizer
from .random import get_rng_state, manual_seed, set_rng_state
from .serialization import load, save
from .tensor import Tensor

CHECKPOINT_FORMAT = "tinygrad_edu.fit"


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint was kept."""


class ResumeError(ValueError):
    """fit(resume=...) cannot continue from this checkpoint with these arguments."""


@dataclass
class History:
    """Per-epoch results of `fit`; entry i is epoch i + 1. Validation lists stay empty without a
    val_loader; accuracies are NaN when the targets are not class labels."""
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    val_metrics: list[dict] = field(default_factory=list)  # from metrics_fn
    lr: list[float] = field(default_factory=list)  # of the first parameter group, at epoch end
    epoch_time: list[float] = field(default_factory=list)  # seconds of training per epoch
    ms_per_iter: list[float] = field(default_factory=list)
    best_epoch: int = 0  # the epoch with the lowest validation (else training) loss
    best_loss: float = math.inf

    def as_dict(self) -> dict:
        return asdict(self)

    def _add(self, train: dict, val: dict | None, lr: float) -> None:
        """Append one epoch and update the best one."""
        self.train_loss.append(train["loss"])
        self.train_acc.append(train["acc"])
        self.epoch_time.append(train["seconds"])
        self.ms_per_iter.append(train["ms_per_iter"])
        self.lr.append(lr)
        if val is not None:
            self.val_loss.append(val["loss"])
            self.val_acc.append(val["acc"])
            self.val_metrics.append(val["metrics"])
        loss = val["loss"] if val is not None else train["loss"]
        if loss < self.best_loss:
            self.best_epoch, self.best_loss = len(self.train_loss), loss


@dataclass
class _EpochStats:
    """Running sums over the batches of the current epoch."""
    loss_sum: float = 0.0  # sum of batch loss * batch size
    seen: int = 0
    correct: int = 0
    labelled: int = 0  # samples whose accuracy could be scored (class-label targets)
    batches: int = 0
    seconds: float = 0.0

    def add(self, loss: float, out: np.ndarray, y: np.ndarray, seconds: float) -> None:
        n = len(y)
        self.loss_sum += loss * n
        self.seen += n
        self.batches += 1
        self.seconds += seconds
        if _is_classification(out, y):
            self.correct += int(np.count_nonzero(out.argmax(1) == y))
            self.labelled += n

    def summary(self) -> dict:
        return {"loss": self.loss_sum / max(self.seen, 1),
                "acc": self.correct / self.labelled if self.labelled else math.nan,
                "seconds": self.seconds,
                "ms_per_iter": 1e3 * self.seconds / max(self.batches, 1)}


def _is_classification(out: np.ndarray, y: np.ndarray) -> bool:
    """(N, C) scores against (N,) integer labels: accuracy is defined."""
    return out.ndim == 2 and y.ndim == 1 and y.dtype.kind in "iu"


# ------------------------------------------------------------------ evaluation
def evaluate(model: Module, loader, loss_fn: Callable | None = None
             ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Mean loss, accuracy, outputs (N, C) and targets (N,) over a loader of (x, y) batches,
    in eval mode under no_grad (the model's mode is restored after).

        loss, acc, logits, targets = evaluate(model, test_loader)
    """
    loss_fn = loss_fn or F.cross_entropy
    outputs, targets, loss_sum = [], [], 0.0
    with _eval_mode(model), no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += float(loss_fn(out, y).array) * len(y)
            outputs.append(out.array)
            targets.append(np.asarray(getattr(y, "data", y)))
    if not outputs:
        raise ValueError("evaluate: the loader yielded no batches; is the dataset empty?")
    outputs, targets = np.concatenate(outputs), np.concatenate(targets)
    acc = metrics.accuracy(outputs, targets) if _is_classification(outputs, targets) else math.nan
    return loss_sum / len(targets), acc, outputs, targets


def predict(model: Module, inputs, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for `inputs`, an array or Tensor (N, ...) or a loader of batches
    (x or (x, y, ...)), computed in eval mode under no_grad; returns (N, ...) numpy.

        probs = predict(model, x_test).argmax(1)
    """
    if isinstance(inputs, (np.ndarray, Tensor)):
        data = np.asarray(getattr(inputs, "data", inputs))
        batches = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in inputs)
    with _eval_mode(model), no_grad():
        outputs = [model(x if isinstance(x, Tensor) else Tensor(x)).array for x in batches]
    if not outputs:
        raise ValueError("predict: got no inputs")
    return np.concatenate(outputs)


class _eval_mode:
    """model.eval() inside the block, the previous mode after it."""

    def __init__(self, model: Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)
        return False


# ------------------------------------------------------------------ fit
def fit(model: Module, optimizer: Optimizer, train_loader, val_loader=None, epochs: int = 1,
        loss_fn: Callable | None = None, scheduler=None, logdir: str | Logger | None = None,
        checkpoint_every: int = 1, checkpoint_path: str | None = None,
        resume: bool | str = False, seed: int | None = None,
        metrics_fn: Callable[[np.ndarray, np.ndarray], dict] | None = None,
        log_every: int = 50, progress: bool = True, grad_clip: float | None = None,
        on_epoch_end: Callable[[History], None] | None = None) -> History:
    """Train `model` for `epochs` epochs (in total, counting the epochs of a resumed run).

    loss_fn(outputs, targets) defaults to cross-entropy. logdir: a Logger, or the directory of a
    new one (None: no logging). Checkpoints go to checkpoint_path (default
    <logdir>/checkpoint.npz; none without either) every `checkpoint_every` epochs and after the
    last one. resume: True (from checkpoint_path) or a checkpoint's path. seed seeds
    tinygrad_edu's generator (shuffling, dropout) unless resuming. metrics_fn(logits, targets)
    -> {name: value} runs on the validation outputs each epoch. grad_clip: the largest L2 norm
    of all gradients together. on_epoch_end(history) runs after every epoch, once that epoch's
    checkpoint (if one is due) is on disk: report progress, or raise to stop. Raises
    TrainingDiverged on a NaN or infinite loss.

        history = fit(model, opt, train_loader, val_loader, epochs=2, logdir="runs/mlp")
    """
    for name, value in (("checkpoint_every", checkpoint_every), ("log_every", log_every)):
        if int(value) != value or value < 1:
            raise ValueError(f"fit: {name} must be a positive integer, got {value}")
    owns_logger = isinstance(logdir, (str, os.PathLike))
    logger = Logger(logdir=os.fspath(logdir)) if owns_logger else logdir
    if checkpoint_path is None and logger is not None:
        checkpoint_path = os.path.join(logger.logdir, "checkpoint.npz")
    run = _Run(model, optimizer, train_loader, val_loader, epochs, loss_fn or F.cross_entropy,
               scheduler, logger, int(checkpoint_every), checkpoint_path, metrics_fn,
               int(log_every), progress, grad_clip, on_epoch_end)
    try:
        if resume:
            run.restore(checkpoint_path if resume is True else os.fspath(resume))
        elif seed is not None:
            manual_seed(seed)
        run.train()
    finally:
        if owns_logger:
            logger.close()
        elif logger is not None:
            logger.flush()
    return run.history


class _Run:
    """The state of one `fit` call: what it trains, where it is, and what it has measured."""

    def __init__(self, model, optimizer, train_loader, val_loader, epochs, loss_fn, scheduler,
                 logger, checkpoint_every, checkpoint_path, metrics_fn, log_every, progress,
                 grad_clip, on_epoch_end):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs, self.loss_fn, self.metrics_fn = epochs, loss_fn, metrics_fn
        self.logger, self.log_every, self.progress = logger, log_every, progress
        self.checkpoint_every, self.checkpoint_path = checkpoint_every, checkpoint_path
        self.grad_clip, self.on_epoch_end = grad_clip, on_epoch_end
        self.per_batch_scheduler = (isinstance(scheduler, OneCycleLR)
                                    or getattr(scheduler, "step_per_batch", False))
        self.history = History()
        # where the run is: epoch (0-based) and the batches of it already done, optimizer steps
        self.epoch, self.batch, self.step = 0, 0, 0
        self.stats = _EpochStats()
        # None until the current epoch begins: the generator's state before its shuffle, and
        # train_loader.state_dict() then
        self.epoch_rng: dict | None = None
        self.epoch_loader: dict | None = None
        self.resume_rng: dict | None = None  # generator state to continue a mid-epoch resume
        self.boundary_rng: dict | None = None  # generator state after the last whole step
        self.in_step = False  # the model is ahead of the position (a step has begun, not ended)
        self.last_loss = (math.nan, -1)  # the last finite loss and its step
        self.saved_epoch: float | None = None  # epochs done in the last checkpoint written
        self.bar: tqdm | None = None

    # -------------------------------------------------------------- the loop
    def train(self) -> None:
        self._between_steps()
        with InterruptAtBatchEnd() as interrupt:
            try:
                while self.epoch < self.epochs:
                    self._train_epoch(interrupt)
                    self._end_epoch()
                    if interrupt.requested:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                if not self.in_step:  # else the previous checkpoint stays (see the module doc)
                    self._save_checkpoint()
                raise
            finally:
                if self.bar is not None:
                    self.bar.close()

    def _train_epoch(self, interrupt: InterruptAtBatchEnd) -> None:
        """Run the remaining batches of epoch `self.epoch`."""
        batches = self._start_epoch()
        bar = tqdm(total=_length(self.train_loader), initial=self.batch, disable=not self.progress,
                   desc=f"epoch {self.epoch + 1}/{self.epochs}", dynamic_ncols=True)
        self.bar, shown = bar, time.perf_counter()
        self.model.train()
        tick = time.perf_counter()
        for x, y in batches:
            self.in_step = True  # until the position below counts this step
            loss, out = self._train_step(x, y)
            now = time.perf_counter()
            self.stats.add(loss, out, np.asarray(getattr(y, "data", y)), now - tick)
            self.batch, self.step, tick = self.batch + 1, self.step + 1, now
            self._between_steps()
            self._log_step(loss)
            bar.update(1)
            if now - shown > 0.5:
                bar.set_postfix(self._postfix(self.stats.summary()), refresh=False)
                shown = now
            if interrupt.requested:
                raise KeyboardInterrupt

    def _start_epoch(self):
        """The batch iterator of this epoch, fast-forwarded past batches already done."""
        if self.batch == 0:
            self._between_steps()  # before the shuffle, which a resumed run must draw again
            self.epoch_rng = self.boundary_rng
            if hasattr(self.train_loader, "set_epoch"):
                self.train_loader.set_epoch(self.epoch)
            if hasattr(self.train_loader, "state_dict"):
                self.epoch_loader = self.train_loader.state_dict()
            return iter(self.train_loader)
        # resuming mid-epoch: replay the epoch's shuffle, skip the batches done, then continue
        set_rng_state(self.epoch_rng)
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(self.epoch)
        if self.epoch_loader is not None:
            self.train_loader.load_state_dict(self.epoch_loader)
        batches = iter(self.train_loader)
        for _ in range(self.batch):
            next(batches)
        set_rng_state(self.resume_rng)
        return batches

    def _between_steps(self) -> None:
        """Mark a point between two steps, where the model, optimizer, scheduler and position
        agree: a checkpoint holds the generator's state of the last such point, not the state
        after a batch fetch or a step that an exception cut short."""
        self.boundary_rng = get_rng_state()
        self.in_step = False

    def _train_step(self, x, y) -> tuple[float, np.ndarray]:
        """One forward, backward and optimizer step; returns the loss and the outputs."""
        out = self.model(x)
        loss = self.loss_fn(out, y)
        value = float(loss.array)  # the one sync per step
        if not math.isfinite(value):
            self._diverged(f"the loss is {value} at epoch {self.epoch + 1}, step {self.step + 1} "
                           f"(batch {self.batch + 1} of the epoch)")
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.per_batch_scheduler:
            self.scheduler.step()
        self.last_loss = (value, self.step + 1)
        return value, out.array

    def _end_epoch(self) -> None:
        """Validate, step the scheduler, log, and save a checkpoint if one is due."""
        train, lr = self.stats.summary(), self._lr()
        bad = _first_nonfinite(self.model)
        if bad is not None:
            self._diverged(f"parameter {bad} is not finite after epoch {self.epoch + 1}")
        val = self._validate() if self.val_loader is not None else None
        if val is not None and not math.isfinite(val["loss"]):
            self._diverged(f"the validation loss is {val['loss']} after epoch {self.epoch + 1}")
        self.in_step = True  # the scheduler, history and position move together
        self._step_scheduler((val or train)["loss"])
        self.history._add(train, val, lr)
        self.epoch, self.batch, self.stats = self.epoch + 1, 0, _EpochStats()
        self.epoch_rng = self.epoch_loader = None  # the next epoch has not begun
        self._between_steps()
        self.bar.set_postfix(self._postfix(train, val), refresh=False)
        self.bar.close()
        self._log_epoch(train, val, lr)
        if self.epoch % self.checkpoint_every == 0 or self.epoch == self.epochs:
            self._save_checkpoint()
        if self.on_epoch_end is not None:
            self.on_epoch_end(self.history)

    def _step_scheduler(self, loss: float) -> None:
        """Step a per-epoch scheduler; ReduceLROnPlateau gets the epoch's validation (else
        training) loss."""
        if self.scheduler is None or self.per_batch_scheduler:
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(loss)
        else:
            self.scheduler.step()

    def _validate(self) -> dict:
        loss, acc, logits, targets = evaluate(self.model, self.val_loader, self.loss_fn)
        extra = self.metrics_fn(logits, targets) if self.metrics_fn is not None else {}
        return {"loss": loss, "acc": acc, "metrics": {k: float(v) for k, v in extra.items()}}

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _postfix(self, train: dict, val: dict | None = None) -> dict:
        shown = {"loss": f"{train['loss']:.4f}", "acc": f"{train['acc']:.4f}",
                 "ms/it": f"{train['ms_per_iter']:.2f}"}
        if val is not None:
            shown.update(val_loss=f"{val['loss']:.4f}", val_acc=f"{val['acc']:.4f}")
        return shown

    def _diverged(self, what: str) -> None:
        """Stop with TrainingDiverged; the checkpoint on disk (if any) is the last good one."""
        if self.logger is not None:
            self.logger.flush()
        last, step = self.last_loss
        if self.saved_epoch is not None:
            kept = (f"The last good checkpoint, {self.checkpoint_path} ({self.saved_epoch:g} of "
                    f"{self.epochs} epochs done), is kept: resume from it with a lower lr.")
        else:
            kept = "No checkpoint was written by this run."
        raise TrainingDiverged(
            f"fit: training diverged: {what}; the last finite loss was {last:.6g} at step "
            f"{step}. {kept} Try a lower learning rate or grad_clip, and check the data for "
            f"NaNs.")

    # -------------------------------------------------------------- logging
    def _log_step(self, loss: float) -> None:
        if self.logger is not None and self.step % self.log_every == 0:
            self.logger.scalar("train/loss_iter", loss, self.step)
            self.logger.scalar("train/lr_iter", self._lr(), self.step)

    def _log_epoch(self, train: dict, val: dict | None, lr: float) -> None:
        """The curves of the epoch just done (x = epoch, from 1), weight and gradient
        histograms, then a flush."""
        if self.logger is None:
            return
        e = self.epoch
        scalars = {"train/loss": train["loss"], "train/accuracy": train["acc"],
                   "train/lr": lr, "time/epoch_seconds": train["seconds"],
                   "time/ms_per_iter": train["ms_per_iter"]}
        if val is not None:
            scalars.update({"val/loss": val["loss"], "val/accuracy": val["acc"]})
            scalars.update({f"val/{k}": v for k, v in val["metrics"].items()})
        self.logger.scalars({k: v for k, v in scalars.items() if math.isfinite(v)}, e)
        for name, p in self.model.named_parameters():
            self.logger.histogram(f"weights/{name}", p.array, e)
            if p.grad is not None:
                self.logger.histogram(f"grads/{name}", p.grad.array, e)
        self.logger.flush()

    # -------------------------------------------------------------- checkpoints
    def _save_checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        if self.logger is not None:
            self.logger.flush()
        loader_state = self.epoch_loader
        if self.epoch_rng is None and hasattr(self.train_loader, "state_dict"):
            loader_state = self.train_loader.state_dict()  # the next epoch starts from here
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "history": self.history.as_dict(),
            "epoch": self.epoch, "batch": self.batch, "step": self.step,
            "batches_per_epoch": _length(self.train_loader),
            "rng": self.boundary_rng,
            "epoch_rng": self.epoch_rng,  # None until the epoch began
            "epoch_loader": loader_state,
            "stats": asdict(self.stats),
            "last_loss": list(self.last_loss),
        }
        save(state, self.checkpoint_path)
        make_readable(self.checkpoint_path)
        self.saved_epoch = self.epoch + self.batch / max(_length(self.train_loader) or 1, 1)

    def restore(self, path: str | None) -> None:
        """Load everything a checkpoint of `fit` holds, to continue where it stopped."""
        if path is None:
            raise ResumeError("fit(resume=True): there is no checkpoint path; pass "
                             "checkpoint_path=..., logdir=..., or resume='path/to/checkpoint.npz'")
        if not os.path.exists(path):
            raise FileNotFoundError(f"fit(resume=...): no checkpoint at {path}; run without "
                                    f"resume to start training from scratch")
        state = load(path)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ResumeError(f"fit(resume=...): {path} was not written by fit (it is not a "
                             f"training checkpoint); load weights from it with "
                             f"model.load_state_dict(...) instead")
        if (state["scheduler"] is None) != (self.scheduler is None):
            has = "has" if state["scheduler"] is not None else "has no"
            given = type(self.scheduler).__name__ if self.scheduler is not None else None
            raise ResumeError(f"fit(resume=...): {path} {has} scheduler state, but fit got "
                             f"scheduler={given}; resume with the scheduler of the original run")
        saved, now = state.get("batches_per_epoch"), _length(self.train_loader)
        if saved is not None and now is not None and saved != now:
            raise ResumeError(f"fit(resume=...): {path} was written with {saved} batches per "
                             f"epoch, but train_loader has {now}; resume with the original "
                             f"batch size and data")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = History(**state["history"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.stats = _EpochStats(**state["stats"])
        self.last_loss = tuple(state["last_loss"])
        set_rng_state(state["rng"])  # a mid-epoch resume replays from epoch_rng first
        if self.batch:
            self.epoch_rng, self.epoch_loader = state["epoch_rng"], state["epoch_loader"]
            self.resume_rng = state["rng"]
        elif state["epoch_loader"] is not None:  # the epoch starts afresh from this state
            self.train_loader.load_state_dict(state["epoch_loader"])
        self.saved_epoch = self.epoch + self.batch / max(_length(self.train_loader) or 1, 1)


def make_readable(path: str) -> None:
    """Give a file written through a private temporary (mode 0600) the mode a plain open()
    would have: 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _length(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _first_nonfinite(model: Module) -> str | None:
    """The name of the first parameter holding a NaN or infinity, or None."""
    for name, p in model.named_parameters():
        if not np.isfinite(p.array).all():
            return name
    return None


class InterruptAtBatchEnd:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request checked between batches, so
    that the checkpoint written for it holds whole steps; a second one raises
    KeyboardInterrupt at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.requested = False
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.installed:
            for s, previous in self.previous.items():
                fallback = signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
                signal.signal(s, previous if previous is not None else fallback)
        return False
