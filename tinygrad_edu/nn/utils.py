"""Utilities on parameters, like `torch.nn.utils`."""
from __future__ import annotations

import math

import numpy as np


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale all gradients together so that their joint L2 norm is at most `max_norm`, like
    `torch.nn.utils.clip_grad_norm_`; returns the norm before clipping."""
    grads = [p.grad.data for p in parameters if p.grad is not None]
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total
