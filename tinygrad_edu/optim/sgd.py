"""SGD: stochastic gradient descent with optional momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinygrad_edu.optim.kernels import batchable, fusable, sgd_momentum_, sgd_momentum_all_
from tinygrad_edu.optim.optimizer import Optimizer, grad_with_decay
from tinygrad_edu.tensor import Tensor


class SGD(Optimizer):
    """p -= lr * g, where g is the gradient (plus weight_decay * p), or its momentum average.

    With momentum m:  buf = m * buf + (1 - dampening) * g  (buf = g on the first step), and the
    step uses buf, or g + m * buf if nesterov. Same formulas as torch.optim.SGD.

        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")
        super().__init__(params, {
            "lr": lr, "momentum": momentum, "dampening": dampening,
            "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {}  # momentum_buffer is a copy of the first gradient, made in _update

    def _update_group(self, params: list[Tensor], group: dict[str, Any]) -> None:
        """The float32 parameters that have a momentum buffer in one fused native job
        (sgd_momentum_all_: one call for the group, not one per parameter), the rest one at a
        time."""
        momentum = float(group["momentum"])
        rest, batch = params, []
        if momentum != 0:
            rest = []
            for p in params:
                buf = self.state[p].get("momentum_buffer")
                (batch if buf is not None and batchable(p.array, p.grad.array, buf)
                 else rest).append(p)
        if batch:
            sgd_momentum_all_([p.array for p in batch], [p.grad.array for p in batch],
                              [self.state[p]["momentum_buffer"] for p in batch],
                              float(group["lr"]), momentum, float(group["dampening"]),
                              float(group["weight_decay"]), bool(group["maximize"]),
                              bool(group["nesterov"]))
        for p in rest:
            self._update(p, self.state[p], group)

    def _update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        weight_decay, dampening = float(group["weight_decay"]), float(group["dampening"])
        buf = state.get("momentum_buffer")
        if buf is not None and fusable(p.array, p.grad.array, buf):  # one pass (optim/kernels.py)
            sgd_momentum_(p.array, p.grad.array, buf, lr, momentum, dampening, weight_decay,
                          bool(group["maximize"]), bool(group["nesterov"]))
            return
        # the reference formulas, also the first step and plain SGD (two passes)
        grad = grad_with_decay(p, weight_decay, group["maximize"])
        if momentum != 0:
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += grad if dampening == 0 else (1 - dampening) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.array -= lr * grad
