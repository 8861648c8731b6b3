"""The PyTorch side of an experiment: the same batches, loop, logging and metrics as the scratch
trainer, so the two frameworks are compared on equal terms. torch is imported lazily.

`fit` checkpoints like tg.train.fit (the run directory's last.npz, the same payload keys): the
twin's weights as numpy arrays, the optimizer's and scheduler's state, the position in the run
and the generators' states, so that `fit(..., resume=True)` ends with the weights of an
uninterrupted run, also after a Ctrl-C or SIGTERM in the middle of an epoch.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
from tqdm import tqdm

import tinygrad_edu as tg
from tinygrad_edu.logging import Logger
from tinygrad_edu.train import InterruptAtBatchEnd, ResumeError, TrainingDiverged, make_readable

CHECKPOINT_FORMAT = "experiments.torch_backend.fit"
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time", "ms_per_iter")


def _torch():
    import torch
    return torch


def _as_torch(batch):
    torch = _torch()
    return tuple(torch.from_numpy(np.asarray(t.array)) for t in batch)


def evaluate(model, loader) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Mean cross-entropy, accuracy, logits (N, C) and targets (N,) over a loader."""
    torch = _torch()
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for batch in loader:
            x, y = _as_torch(batch)
            logits.append(model(x).numpy())
            targets.append(y.numpy())
    logits, targets = np.concatenate(logits), np.concatenate(targets)
    loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                   torch.from_numpy(targets)))
    return loss, float((logits.argmax(1) == targets).mean()), logits, targets


def fit(model, optimizer, train_loader, val_loader, epochs: int, logger: Logger,
        log_every: int = 50, progress: bool = True, loss_fn=None, scheduler=None,
        checkpoint_path: str | None = None, resume: bool = False) -> dict:
    """Train for `epochs` epochs in total with `loss_fn` (default cross-entropy) and an optional
    lr scheduler (OneCycleLR steps per batch, any other per epoch, like tg.train.fit); log the
    scalars the scratch trainer logs; return the history (lists per epoch, HISTORY_KEYS).

    checkpoint_path (None: no checkpoints) is written atomically after every epoch and, on
    Ctrl-C or SIGTERM, once the batch in progress is done (then KeyboardInterrupt is raised; a
    second one interrupts at once); resume=True continues from it, mid-epoch included.

        history = fit(twin, opt, train_loader, val_loader, 2, logger, checkpoint_path="last.npz")
    """
    loop = _Loop(model, optimizer, scheduler, loss_fn or _torch().nn.functional.cross_entropy,
                 train_loader, epochs, checkpoint_path)
    if resume:
        loop.restore()
    with InterruptAtBatchEnd() as interrupt:
        try:
            while loop.epoch < epochs:
                loop.train_epoch(interrupt, logger, log_every, progress)
                loop.end_epoch(val_loader, logger)
                if interrupt.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            logger.flush()
            # a second Ctrl-C inside a step leaves weights or batch-norm statistics half
            # updated: then the previous checkpoint stays
            if not loop.in_step:
                loop.save()
            raise
    return loop.history


class _Loop:
    """Where a torch training run is (epochs done, batches of the current epoch done, optimizer
    steps), what the current epoch has measured so far, and its checkpoint."""

    def __init__(self, model, optimizer, scheduler, loss_fn, train_loader, epochs: int,
                 checkpoint_path: str | None):
        self.model, self.optimizer, self.scheduler, self.loss_fn = (model, optimizer, scheduler,
                                                                    loss_fn)
        self.train_loader, self.epochs, self.path = train_loader, epochs, checkpoint_path
        self.per_batch = isinstance(scheduler, _torch().optim.lr_scheduler.OneCycleLR)
        self.history = {k: [] for k in HISTORY_KEYS}
        self.epoch = self.batch = self.step = 0
        self.sums = _new_sums()
        self.epoch_rng = self.resume_rng = None  # tinygrad_edu's generator (the shuffle)
        self.epoch_loader = None  # the loader's own shuffle state (DataLoader(seed=...))
        self.in_step = False  # inside a step (or epoch end) that changes the model's state
        self._mark_boundary()

    def _mark_boundary(self) -> None:
        """Remember the generators' states between two steps: a checkpoint holds those, not
        the states of a step (or a batch fetch) that an immediate Ctrl-C cut short."""
        self.boundary = (tg.get_rng_state(), _torch().get_rng_state())

    def train_epoch(self, interrupt: InterruptAtBatchEnd, logger: Logger, log_every: int,
                    progress: bool) -> None:
        """The remaining batches of epoch `self.epoch`: forward, backward, update."""
        batches = self._batches()
        self.model.train()
        with tqdm(total=len(self.train_loader), initial=self.batch, disable=not progress,
                  desc=f"epoch {self.epoch + 1}/{self.epochs}") as bar:
            self._run_batches(batches, bar, interrupt, logger, log_every)

    def _run_batches(self, batches, bar, interrupt, logger: Logger, log_every: int) -> None:
        tick = time.perf_counter()
        for batch in batches:
            x, y = _as_torch(batch)
            value, out = self._step(x, y)
            now = time.perf_counter()
            s = self.sums
            s["seen"] += len(y)
            s["correct"] += int((out.argmax(1) == y).sum())
            s["loss"] += value * len(y)
            s["seconds"] += now - tick
            self.batch, self.step, tick = self.batch + 1, self.step + 1, now
            self._mark_boundary()
            bar.update(1)
            if self.step % log_every == 0:
                logger.scalar("train/loss_iter", value, self.step)
                bar.set_postfix(loss=f"{value:.4f}", acc=f"{s['correct'] / s['seen']:.4f}",
                                ms=f"{s['seconds'] / self.batch * 1e3:.1f}")
            if interrupt.requested:
                raise KeyboardInterrupt

    def _batches(self):
        """This epoch's batch iterator, past the batches a resumed run had already done: the
        epoch's shuffle (and augmentation) is replayed from the generator state it began with."""
        if self.batch == 0:
            self.epoch_rng, self.epoch_loader = tg.get_rng_state(), _loader_state(self.train_loader)
            self._mark_boundary()
            return iter(self.train_loader)
        tg.set_rng_state(self.epoch_rng)
        _load_loader_state(self.train_loader, self.epoch_loader)
        batches = iter(self.train_loader)
        for _ in range(self.batch):
            next(batches)
        tg.set_rng_state(self.resume_rng)
        return batches

    def _step(self, x, y):
        """One optimizer step; the batch's loss (a float) and the outputs."""
        self.in_step = True  # the forward already updates batch norm's running statistics
        out = self.model(x)
        loss = self.loss_fn(out, y)
        value = loss.item()
        if not math.isfinite(value):  # before the update: the weights and checkpoint stay good
            kept = f"the last checkpoint, {self.path}, is kept" if self.path else "no checkpoint"
            raise TrainingDiverged(f"fit: training diverged: the loss is {value} at epoch "
                                   f"{self.epoch + 1}, step {self.step + 1} ({kept}); try a "
                                   f"lower learning rate")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.per_batch:
            self.scheduler.step()
        self.in_step = False
        return value, out.detach()

    def end_epoch(self, val_loader, logger: Logger) -> None:
        """Validate, step a per-epoch scheduler, log the epoch and write the checkpoint."""
        val_loss, val_acc, _, _ = evaluate(self.model, val_loader)
        s = self.sums
        row = {"train_loss": s["loss"] / s["seen"], "train_acc": s["correct"] / s["seen"],
               "val_loss": val_loss, "val_acc": val_acc, "epoch_time": s["seconds"],
               "ms_per_iter": s["seconds"] / len(self.train_loader) * 1e3}
        self.in_step = True
        if self.scheduler is not None and not self.per_batch:
            self.scheduler.step()
        for k, v in row.items():
            self.history[k].append(v)
        self.epoch, self.batch, self.sums = self.epoch + 1, 0, _new_sums()
        self.epoch_rng = self.epoch_loader = None  # the next epoch has not begun
        self.in_step = False
        self._mark_boundary()
        logger.scalars({"train/loss": row["train_loss"], "train/accuracy": row["train_acc"],
                        "val/loss": val_loss, "val/accuracy": val_acc,
                        "time/epoch_seconds": row["epoch_time"]}, self.epoch)
        logger.flush()
        self.save()

    # -------------------------------------------------------------- checkpoints
    def save(self) -> None:
        """Write the checkpoint (atomically, readable like the run's other files)."""
        if self.path is None:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": state_dict_numpy(self.model),
            "optimizer": _numpy_tree(self.optimizer.state_dict()),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "history": self.history, "sums": self.sums,
            "epoch": self.epoch, "batch": self.batch, "step": self.step,
            "batches_per_epoch": len(self.train_loader),
            "rng": self.boundary[0], "torch_rng": self.boundary[1].numpy(),
            "epoch_rng": self.epoch_rng,  # None until an epoch began
            "epoch_loader": self.epoch_loader if self.epoch_rng is not None else
            _loader_state(self.train_loader),
        }
        tg.save(state, self.path)
        make_readable(self.path)

    def restore(self) -> None:
        """Load everything `save` wrote, to continue where the run stopped."""
        state = self._read()
        torch = _torch()
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in state["model"].items()})
        self.optimizer.load_state_dict(_torch_tree(state["optimizer"]))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.sums = state["history"], state["sums"]
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        tg.set_rng_state(state["rng"])  # a mid-epoch resume replays from epoch_rng first
        torch.set_rng_state(torch.from_numpy(state["torch_rng"]))
        self._mark_boundary()
        if self.batch == 0:  # the epoch starts afresh, from these states
            _load_loader_state(self.train_loader, state["epoch_loader"])
        else:
            self.epoch_rng, self.epoch_loader = state["epoch_rng"], state["epoch_loader"]
            self.resume_rng = state["rng"]

    def _read(self) -> dict:
        """The checkpoint, once it is known to be one this loop can continue; else ResumeError."""
        if self.path is None or not os.path.isfile(self.path):
            raise ResumeError(f"torch fit(resume=True): there is no checkpoint at "
                              f"{self.path}; start the run without resuming")
        state = tg.load(self.path)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ResumeError(f"torch fit(resume=True): {self.path} was not written by the "
                              f"PyTorch loop; resume it with the framework that wrote it")
        if (state["scheduler"] is None) != (self.scheduler is None):
            raise ResumeError(f"torch fit(resume=True): {self.path} was written "
                              f"{'without' if state['scheduler'] is None else 'with'} an lr "
                              f"scheduler; resume with the schedule of the original run")
        if state["batches_per_epoch"] != len(self.train_loader):
            raise ResumeError(f"torch fit(resume=True): {self.path} was written with "
                              f"{state['batches_per_epoch']} batches per epoch, but "
                              f"train_loader has {len(self.train_loader)}; resume with the "
                              f"original batch size and data")
        return state


def _new_sums() -> dict:
    """Running sums over the batches of an epoch."""
    return {"seen": 0, "correct": 0, "loss": 0.0, "seconds": 0.0}


def _loader_state(loader) -> dict | None:
    """A loader's own shuffle state (tinygrad_edu's DataLoader(seed=...)), if it keeps one."""
    return loader.state_dict() if hasattr(loader, "state_dict") else None


def _load_loader_state(loader, state: dict | None) -> None:
    if state is not None:
        loader.load_state_dict(state)


def _numpy_tree(obj):
    """A (nested) state dict with every torch tensor as a numpy array (for tg.save)."""
    if isinstance(obj, dict):
        return {k: _numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy_tree(v) for v in obj)
    return obj.detach().numpy().copy() if hasattr(obj, "detach") else obj


def _torch_tree(obj):
    """The inverse of _numpy_tree."""
    if isinstance(obj, dict):
        return {k: _torch_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_tree(v) for v in obj)
    return _torch().from_numpy(obj) if isinstance(obj, np.ndarray) else obj


def state_dict_numpy(model) -> dict:
    """The twin's weights as numpy arrays (the scratch models use the same names)."""
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
