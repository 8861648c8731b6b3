"""The sweeps' `synthetic` experiment: an MLP on Gaussian blobs, a sweep in seconds (no data to
download). Its config and build follow the experiment contract (common.Config, Setup)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygrad_edu import nn
from tinygrad_edu.data import DataLoader, TensorDataset

from ..common import Config, Setup, trainable


@dataclass
class SyntheticConfig(Config):
    """One Gaussian blob per class (centres ~ N(0, 3^2) per feature), an MLP to classify them."""

    samples: int = 512
    classes: int = 4
    features: int = 8
    spread: float = 1.0  # the blobs' standard deviation
    data_seed: int = 0  # the data are the same in every trial unless this changes
    hidden: int = 32
    model: str = "mlp"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    schedule: str = "none"


def blobs(cfg: SyntheticConfig) -> tuple[TensorDataset, TensorDataset]:
    """Training (cfg.samples) and validation (cfg.samples // 2) sets of the same blobs."""
    rng = np.random.default_rng(cfg.data_seed)
    centres = rng.normal(0.0, 3.0, size=(cfg.classes, cfg.features))

    def draw(n: int) -> TensorDataset:
        y = rng.integers(cfg.classes, size=n)
        x = centres[y] + cfg.spread * rng.normal(size=(n, cfg.features))  # (n, features)
        return TensorDataset(x.astype(np.float32), y.astype(np.int64))
    return draw(cfg.samples), draw(max(cfg.samples // 2, 1))


def build(cfg: SyntheticConfig) -> Setup:
    train, val = blobs(cfg)
    network = nn.Sequential(nn.Linear(cfg.features, cfg.hidden), nn.ReLU(),
                            nn.Linear(cfg.hidden, cfg.classes))
    model, optimizer, scheduler = trainable(cfg, network)
    return Setup(model, optimizer, DataLoader(train, cfg.batch_size, shuffle=True),
                 DataLoader(val, 256), model_name="mlp", model_config={"hidden": cfg.hidden},
                 dataset="blobs", preprocessing=None,
                 class_names=[str(c) for c in range(cfg.classes)], name="synthetic",
                 scheduler=scheduler)


DEFAULTS = SyntheticConfig()
