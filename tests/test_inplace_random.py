"""Random chains of views, in-place ops and saved values, run on tinygrad_edu and on torch: each
chain must give torch's values and gradients, or be refused by both (issue 13's rule).

A chain is 1-4 steps on y = 1.5 x; each step takes a view of y (or y itself) and writes to it in
place, or computes a value from it that the loss uses later (so backward needs what was saved).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

import tinygrad_edu as tg

torch = pytest.importorskip("torch")

X = np.random.default_rng(0).uniform(0.2, 2.0, (3, 4))
O = np.random.default_rng(1).uniform(0.2, 2.0, (3, 4))
W = np.random.default_rng(2).uniform(-1.0, 1.0, (3, 4))

VIEWS = {
    "row": lambda t: t[0], "column": lambda t: t[:, 1], "rows": lambda t: t[1:],
    "T": lambda t: t.T, "strided": lambda t: t[..., ::2], "unsqueeze": lambda t: t.unsqueeze(0),
    "reshape": lambda t: t.reshape(-1), "narrow": lambda t: t.narrow(-1, 0, 1),
    "self": lambda t: t, "detach": lambda t: t.detach(), "expand": lambda t: t[0:1].expand(3, 4),
}
WRITES = {
    "mul_": lambda v, o: v.mul_(2.0), "add_": lambda v, o: v.add_(o), "exp_": lambda v, o: v.exp_(),
    "fill_": lambda v, o: v.fill_(0.5), "zero_": lambda v, o: v.zero_(),
    "sigmoid_": lambda v, o: v.sigmoid_(), "setitem": lambda v, o: v.__setitem__(0, 1.25),
    "setitem_mask": lambda v, o: v.__setitem__(v > 1.0, 0.0), "iadd": lambda v, o: v.__iadd__(o),
    "clamp_": lambda v, o: v.clamp_(0.3, 1.1), "mul_o": lambda v, o: v.mul_(o),
    "relu_": lambda v, o: v.relu_(), "sqrt_": lambda v, o: v.sqrt_(),
    "copy_": lambda v, o: v.copy_(o), "no_grad mul_": lambda v, o: _no_grad(v, o),
}


def _no_grad(v, o):
    with (tg if isinstance(v, tg.Tensor) else torch).no_grad():
        v.mul_(0.5)
USES = {"exp": lambda v: v.exp(), "square": lambda v: v * v}


def operand(lib, o_leaf, like):
    """A piece of 2 * o (o requires grad) of like's shape, or a constant where none fits."""
    o = o_leaf * 2
    while o.dim() > like.dim():
        o = o[0]
    if o.dim() == like.dim() and all(a >= b for a, b in zip(o.shape, like.shape)):
        return o[tuple(slice(0, n) for n in like.shape)]
    return lib.tensor(np.full(tuple(like.shape), 0.7), dtype=lib.float64)


def chain(lib, steps):
    x = lib.tensor(X, dtype=lib.float64, requires_grad=True)
    o_leaf = lib.tensor(O, dtype=lib.float64, requires_grad=True)
    y = x * 1.5
    used = []
    for view, action in steps:
        v = VIEWS[view](y)
        if action in USES:
            used.append(USES[action](v))
        else:
            WRITES[action](v, operand(lib, o_leaf, v))
    loss = (y * lib.tensor(W, dtype=lib.float64)).sum()
    for u in used:
        loss = loss + u.sum()
    loss.backward()
    return [y.detach().numpy().copy(), x.grad.numpy().copy(),
            None if o_leaf.grad is None else o_leaf.grad.numpy().copy()]


def outcome(lib, steps):
    try:
        return "ok", chain(lib, steps)
    except RuntimeError as e:
        return "refused", str(e)


def chains(n: int, seed: int):
    """Random chains; an assignment into part of an expanded view is left out: tinygrad_edu
    refuses every write to an expanded tensor, torch allows (and deprecates) partial ones."""
    rng = random.Random(seed)
    actions = list(WRITES) + list(USES)
    out = []
    while len(out) < n:
        steps = [(rng.choice(list(VIEWS)), rng.choice(actions)) for _ in range(rng.randint(1, 4))]
        if ("expand", "setitem") not in steps and ("expand", "setitem_mask") not in steps:
            out.append(steps)
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("seed", range(4))
def test_random_chains_match_torch(seed):
    for steps in chains(100, seed):
        ours, theirs = outcome(tg, steps), outcome(torch, steps)
        assert ours[0] == theirs[0], f"{steps}: tinygrad_edu {ours[0]}, torch {theirs[0]}: " \
                                     f"{ours[1] if ours[0] == 'refused' else theirs[1]}"
        if ours[0] == "ok":
            for i, (a, b) in enumerate(zip(ours[1], theirs[1])):
                assert (a is None) == (b is None), f"{steps}: output {i}"
                if a is not None:
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12,
                                               err_msg=f"{steps}: output {i}")


def test_the_chains_exercise_both_outcomes():
    kinds = {outcome(tg, steps)[0] for steps in chains(100, 0)}
    assert kinds == {"ok", "refused"}
