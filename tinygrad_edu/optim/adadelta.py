"""Adadelta: steps sized by the ratio of running RMS of past updates to running RMS of gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_edu.optim.optimizer import Optimizer, grad_with_decay
from tinygrad_edu.tensor import Tensor


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012), same formulas as torch.optim.Adadelta.

        v = rho * v + (1 - rho) * g**2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta**2
        p -= lr * delta

        opt = Adadelta(model.parameters())   # lr=1.0: the ratio of RMS sets the step size
    """

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not 0 <= rho <= 1:
            raise ValueError(f"Adadelta: need lr, eps, weight_decay >= 0 and 0 <= rho <= 1, got "
                             f"lr={lr}, eps={eps}, weight_decay={weight_decay}, rho={rho}")
        super().__init__(params, {
            "lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize})

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "square_avg": np.zeros_like(p.array),
                "acc_delta": np.zeros_like(p.array)}

    def _update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
        state["step"] += 1
        grad = grad_with_decay(p, float(group["weight_decay"]), group["maximize"])
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]

        delta = np.multiply(grad, grad)
        delta *= 1 - rho
        square_avg *= rho
        square_avg += delta
        std = np.add(square_avg, eps)
        np.sqrt(std, out=std)
        np.add(acc_delta, eps, out=delta)
        np.sqrt(delta, out=delta)
        delta /= std
        delta *= grad

        np.multiply(delta, delta, out=std)  # std is free again: reuse it for delta**2
        std *= 1 - rho
        acc_delta *= rho
        acc_delta += std
        delta *= lr
        p.array -= delta
