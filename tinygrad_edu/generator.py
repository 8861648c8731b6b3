"""Generator: a private random stream, like `torch.Generator`, for DataLoader, random_split and
the random functions' `generator=` argument. Without one, the global generator is used.

    g = tg.Generator().manual_seed(0)
    train, val = tg.utils.data.random_split(ds, [0.9, 0.1], generator=g)
"""
from __future__ import annotations

import numpy as np

from .device import check_cpu
from .device import device as _device
from .random import get_rng


class Generator:
    """A seedable numpy generator with torch's method names (CPU only)."""

    def __init__(self, device: str | _device = "cpu"):
        check_cpu(device)
        self.device = _device(device)
        self._seed = int(np.random.SeedSequence().entropy % 2**63)
        self.rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.rng = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from fresh entropy and return the new seed."""
        return self.manual_seed(int(np.random.SeedSequence().entropy % 2**63)).initial_seed()

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> Generator:
        self.rng.bit_generator.state = state
        return self

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed})"


def rng_of(generator: Generator | None) -> np.random.Generator:
    """The numpy generator to draw from: the given Generator's, else the global one."""
    if generator is None:
        return get_rng()
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a tinygrad_edu Generator, got "
                        f"{type(generator).__name__}")
    return generator.rng
