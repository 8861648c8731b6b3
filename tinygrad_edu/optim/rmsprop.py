"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_edu.optim.optimizer import Optimizer, grad_with_decay
from tinygrad_edu.tensor import Tensor


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), same formulas as torch.optim.RMSprop.

        v = alpha * v + (1 - alpha) * g**2
        p -= lr * g / (sqrt(v) + eps)

    centered=True uses the variance v - mean(g)**2 instead of v; momentum > 0 keeps a running
    buf = momentum * buf + g / (sqrt(v) + eps) and steps by lr * buf.

        opt = RMSprop(model.parameters(), lr=1e-2, alpha=0.99)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or alpha < 0:
            raise ValueError(f"RMSprop: lr, alpha, eps, weight_decay and momentum must be >= 0, "
                             f"got lr={lr}, alpha={alpha}, eps={eps}, "
                             f"weight_decay={weight_decay}, momentum={momentum}")
        super().__init__(params, {
            "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
            "momentum": momentum, "centered": centered, "maximize": maximize})

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "square_avg": np.zeros_like(p.array)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p.array)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p.array)
        return state

    def _update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        momentum = float(group["momentum"])
        state["step"] += 1
        grad = grad_with_decay(p, float(group["weight_decay"]), group["maximize"])
        square_avg = state["square_avg"]

        tmp = np.multiply(grad, grad)
        tmp *= 1 - alpha
        square_avg *= alpha
        square_avg += tmp
        if group["centered"]:
            # grad_avg += (1 - alpha) * (g - grad_avg); avg = sqrt(v - grad_avg**2)
            grad_avg = state["grad_avg"]
            np.subtract(grad, grad_avg, out=tmp)
            tmp *= 1 - alpha
            grad_avg += tmp
            np.multiply(grad_avg, grad_avg, out=tmp)
            np.subtract(square_avg, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(square_avg, out=tmp)
        tmp += eps

        np.divide(grad, tmp, out=tmp)  # tmp = g / (sqrt(v) + eps)
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += tmp
            tmp = buf
        p.array -= lr * tmp
