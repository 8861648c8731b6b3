"""The one global random generator: every random op, init, dropout, shuffle and kernel uses it."""
from __future__ import annotations

import random as _pyrandom

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed tinygrad_edu's generator (and Python's `random`), like `torch.manual_seed`."""
    global _rng
    _rng = np.random.default_rng(seed)
    _pyrandom.seed(seed)
    return _rng


def get_rng() -> np.random.Generator:
    """The current global generator."""
    return _rng


def get_rng_state() -> dict:
    """The generator's state as a plain dict (saved in checkpoints)."""
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from `get_rng_state()`."""
    _rng.bit_generator.state = state
