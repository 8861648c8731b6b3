"""Adam and AdamW: per-coordinate steps from bias-corrected running moments of the gradient."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_edu.optim.kernels import adam_, fusable
from tinygrad_edu.optim.optimizer import Optimizer, grad_with_decay
from tinygrad_edu.tensor import Tensor


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with the AMSGrad variant; same formulas as torch.optim.Adam.

        m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g**2
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    weight_decay adds weight_decay * p to g (L2), or with decoupled_weight_decay=True shrinks
    p by (1 - lr * weight_decay) before the step (that is AdamW).

        opt = Adam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        name = type(self).__name__
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{name}: lr, eps and weight_decay must be >= 0, got lr={lr}, "
                             f"eps={eps}, weight_decay={weight_decay}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{name}: betas must be in [0, 1), got {betas}")
        super().__init__(params, {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay})

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "exp_avg": np.zeros_like(p.array), "exp_avg_sq": np.zeros_like(p.array)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p.array)
        return state

    def _update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        state["step"] += 1
        step = state["step"]
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        arrays = (p.array, p.grad.array, state["exp_avg"], state["exp_avg_sq"])
        if fusable(*arrays):  # one pass over the arrays (optim/kernels.py), same arithmetic
            adam_(*arrays, state.get("max_exp_avg_sq", arrays[3]), lr, beta1, beta2, eps,
                  weight_decay, bool(group["decoupled_weight_decay"]), bool(group["maximize"]),
                  step_size, bias_correction2_sqrt, bool(group["amsgrad"]))
            return
        # the reference formulas, in numpy (about twelve passes over memory)
        if group["decoupled_weight_decay"]:
            if weight_decay != 0:
                p.array *= 1 - lr * weight_decay
            grad = grad_with_decay(p, 0.0, group["maximize"])
        else:
            grad = grad_with_decay(p, weight_decay, group["maximize"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

        # m += (1 - beta1) * (g - m), torch's lerp; v = beta2 * v + (1 - beta2) * g * g
        tmp = np.subtract(grad, exp_avg)
        tmp *= 1 - beta1
        exp_avg += tmp
        np.multiply(grad, grad, out=tmp)
        tmp *= 1 - beta2
        exp_avg_sq *= beta2
        exp_avg_sq += tmp

        second = exp_avg_sq
        if group["amsgrad"]:
            second = np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])

        # tmp = denominator sqrt(v) / sqrt(1 - beta2**t) + eps, then the step m / denominator
        np.sqrt(second, out=tmp)
        tmp /= bias_correction2_sqrt
        tmp += eps
        np.divide(exp_avg, tmp, out=tmp)
        tmp *= step_size
        p.array -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): p *= 1 - lr * weight_decay.

        opt = AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
