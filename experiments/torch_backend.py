"""The PyTorch side of an experiment: the same batches, loop, logging and metrics as the scratch
trainer, so the two frameworks are compared on equal terms. torch is imported lazily."""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm import tqdm

from tinygrad_edu.logging import Logger


def _torch():
    import torch
    return torch


def make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float = 0.0):
    """torch's optimizer `name` with the same settings as runner.make_optimizer."""
    torch = _torch()
    classes = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW,
               "rmsprop": torch.optim.RMSprop}
    kwargs = {"momentum": momentum} if name == "sgd" else {}
    return classes[name](params, lr=lr, weight_decay=weight_decay, **kwargs)


def _as_torch(batch):
    torch = _torch()
    return tuple(torch.from_numpy(np.asarray(t.data)) for t in batch)


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
        log_every: int = 50, progress: bool = True, loss_fn=None, scheduler=None) -> dict:
    """Train with `loss_fn` (default cross-entropy) and an optional lr scheduler (OneCycleLR
    steps per batch, any other per epoch, like tg.train.fit); log the scalars the scratch
    trainer logs; return the history."""
    torch = _torch()
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    per_batch = isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    history = {k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time",
                               "ms_per_iter")}
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        t0, seen, correct, total_loss = time.perf_counter(), 0, 0, 0.0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", disable=not progress)
        for batch in bar:
            x, y = _as_torch(batch)
            out = model(x)
            loss = loss_fn(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if per_batch:
                scheduler.step()
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"torch: loss became {value} at epoch {epoch}, step "
                                         f"{step}; lower the learning rate")
            step += 1
            seen += len(y)
            correct += int((out.argmax(1) == y).sum())
            total_loss += value * len(y)
            if step % log_every == 0:
                logger.scalar("train/loss_iter", value, step)
                ms = (time.perf_counter() - t0) / (bar.n + 1) * 1e3
                bar.set_postfix(loss=f"{value:.4f}", acc=f"{correct / seen:.4f}", ms=f"{ms:.1f}")
        epoch_time = time.perf_counter() - t0
        if scheduler is not None and not per_batch:
            scheduler.step()
        val_loss, val_acc, _, _ = evaluate(model, val_loader)
        row = {"train_loss": total_loss / seen, "train_acc": correct / seen, "val_loss": val_loss,
               "val_acc": val_acc, "epoch_time": epoch_time,
               "ms_per_iter": epoch_time / len(train_loader) * 1e3}
        for k, v in row.items():
            history[k].append(v)
        logger.scalars({"train/loss": row["train_loss"], "train/accuracy": row["train_acc"],
                        "val/loss": val_loss, "val/accuracy": val_acc,
                        "time/epoch_seconds": epoch_time}, epoch)
        logger.flush()
    return history


def state_dict_numpy(model) -> dict:
    """The twin's weights as numpy arrays (the scratch models use the same names)."""
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
