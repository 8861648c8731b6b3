"""Adagrad: per-coordinate learning rates that shrink with the sum of squared gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_edu.optim.optimizer import Optimizer, grad_with_decay
from tinygrad_edu.tensor import Tensor


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), same formulas as torch.optim.Adagrad.

        sum += g**2
        p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

        opt = Adagrad(model.parameters(), lr=1e-2)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False):
        if min(lr, lr_decay, weight_decay, initial_accumulator_value, eps) < 0:
            raise ValueError(f"Adagrad: lr, lr_decay, weight_decay, initial_accumulator_value and "
                             f"eps must be >= 0, got lr={lr}, lr_decay={lr_decay}, "
                             f"weight_decay={weight_decay}, "
                             f"initial_accumulator_value={initial_accumulator_value}, eps={eps}")
        super().__init__(params, {
            "lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value, "eps": eps,
            "maximize": maximize})

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "sum": np.full_like(p.array, group["initial_accumulator_value"])}

    def _update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
        state["step"] += 1
        grad = grad_with_decay(p, float(group["weight_decay"]), group["maximize"])
        clr = lr / (1 + (state["step"] - 1) * lr_decay)

        tmp = np.multiply(grad, grad)
        state["sum"] += tmp
        np.sqrt(state["sum"], out=tmp)
        tmp += eps
        np.divide(grad, tmp, out=tmp)
        tmp *= clr
        p.array -= tmp
