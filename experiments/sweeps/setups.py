"""The experiments a sweep can run. Each turns one trial's parameters into what tg.train.fit
trains: a model, an optimizer, the loaders and, optionally, a loss, a scheduler and a metrics_fn.

    synthetic        Gaussian blobs and a small MLP: a sweep in seconds (tests, a first try)
    lines            the specified CNN on the line dataset and its variations (models/lines.py)
    caltech_lenet5   LeNet-5 on Caltech-101, as specified or with its improvements

A config may also name its own, as "package.module:function", a function (params: dict,
epochs: int) -> TrialSetup.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import models
import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.data import DataLoader, TensorDataset

from ..caltech_common import load_caltech, model_kwargs, one_hot_cross_entropy
from ..caltech_lenet5 import SPECIFIED as LENET5_SPECIFIED
from ..common import UsageError
from ..lines_specified import KeepLastOutputs, LinesConfig, cosine_decay, load_data
from ..runner import make_optimizer, scheduler_factory


@dataclass
class TrialSetup:
    """What one trial trains: the arguments of tg.train.fit. val_loader is required: its loss
    and accuracy are what the trial reports to Tune each epoch."""

    model: nn.Module
    optimizer: tg.optim.Optimizer
    train_loader: object
    val_loader: object
    loss_fn: Callable | None = None
    scheduler: object = None
    metrics_fn: Callable | None = None  # (logits, targets) -> {name: value}, reported too


@dataclass(frozen=True)
class Experiment:
    """A sweepable experiment: a dataclass of its parameters (with defaults) and a function
    build(params, epochs) -> TrialSetup."""

    params: type
    build: Callable

    def setup(self, params: dict, epochs: int) -> TrialSetup:
        self.check_names(params)
        return self.build(self.params(**params), epochs)

    def check_names(self, names) -> None:
        """Refuse parameters the experiment does not have, naming those it has."""
        known = [f.name for f in dataclasses.fields(self.params)]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise UsageError(f"{self.params.__name__}: unknown parameter(s) "
                             f"{', '.join(unknown)}; this experiment takes {', '.join(known)}")


# ---- synthetic: Gaussian blobs ---------------------------------------------------------------

@dataclass
class SyntheticParams:
    """One Gaussian blob per class (centres ~ N(0, 3^2) per feature), an MLP to classify them."""

    samples: int = 512
    classes: int = 4
    features: int = 8
    spread: float = 1.0  # the blobs' standard deviation
    data_seed: int = 0  # the data are the same in every trial unless this changes
    hidden: int = 32
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    seed: int = 0  # initial weights and shuffling


def blobs(p: SyntheticParams) -> tuple[TensorDataset, TensorDataset]:
    """Training (p.samples) and validation (p.samples // 2) sets of the same blobs."""
    rng = np.random.default_rng(p.data_seed)
    centres = rng.normal(0.0, 3.0, size=(p.classes, p.features))

    def draw(n: int) -> TensorDataset:
        y = rng.integers(p.classes, size=n)
        x = centres[y] + p.spread * rng.normal(size=(n, p.features))  # (n, features)
        return TensorDataset(x.astype(np.float32), y.astype(np.int64))
    return draw(p.samples), draw(max(p.samples // 2, 1))


def build_synthetic(p: SyntheticParams, epochs: int) -> TrialSetup:
    train, val = blobs(p)
    tg.manual_seed(p.seed)
    model = nn.Sequential(nn.Linear(p.features, p.hidden), nn.ReLU(),
                          nn.Linear(p.hidden, p.classes))
    return TrialSetup(model, make_optimizer(p, model.parameters()),
                      DataLoader(train, p.batch_size, shuffle=True), DataLoader(val, 256))


# ---- the line dataset ------------------------------------------------------------------------

@dataclass
class LinesParams:
    """The specified CNN (SpecCNN) on the line dataset, trained like experiments.lines_variations:
    a 60/40 split by `seed`, validation on the 40% test split, macro F1 reported each epoch."""

    dataset: str = "lines"  # or mnist
    per_class: int = 1000
    data_dir: str | None = None
    channels: tuple = (32,)  # SpecCNN's options
    kernel_size: int = 7
    padding: int = 0
    downsample: str = "pool"
    hidden: int = 1024
    dropout: float = 0.0
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # SGD's
    weight_decay: float = 0.0
    lr_decay: bool = False  # cosine annealing from lr to 0 over all the steps
    batch_size: int = 64
    seed: int = 0


def build_lines(p: LinesParams, epochs: int) -> TrialSetup:
    data = load_data(LinesConfig(dataset=p.dataset, per_class=p.per_class, data_dir=p.data_dir,
                                 seed=p.seed))
    tg.manual_seed(p.seed)
    model = models.SpecCNN(in_channels=data.in_channels, num_classes=len(data.class_names),
                           channels=tuple(p.channels), kernel_size=p.kernel_size,
                           padding=p.padding, downsample=p.downsample, hidden=p.hidden,
                           dropout=p.dropout)
    optimizer = make_optimizer(p, model.parameters())
    tg.manual_seed(p.seed)  # again before the shuffle, as lines_variations does: same numbers
    train_loader = DataLoader(data.train, p.batch_size, shuffle=True)
    scheduler = cosine_decay(optimizer, epochs * len(train_loader)) if p.lr_decay else None
    return TrialSetup(model, optimizer, train_loader, DataLoader(data.test, 1000),
                      scheduler=scheduler, metrics_fn=KeepLastOutputs(len(data.class_names)))


# ---- Caltech-101 LeNet-5 ---------------------------------------------------------------------

@dataclass
class LeNet5Params:
    """LeNet-5 on Caltech-101 as experiments.caltech_lenet5 trains it (its defaults are the
    specified network's); model 'lenet5_improved' adds batch norm, dropout and Xavier init."""

    model: str = LENET5_SPECIFIED.model
    dropout: float = LENET5_SPECIFIED.dropout  # lenet5_improved only
    optimizer: str = LENET5_SPECIFIED.optimizer
    lr: float = LENET5_SPECIFIED.lr
    weight_decay: float = LENET5_SPECIFIED.weight_decay
    schedule: str = LENET5_SPECIFIED.schedule  # lr per epoch: none, cosine or step
    augment: bool = LENET5_SPECIFIED.augment
    crop_padding: int = LENET5_SPECIFIED.crop_padding  # augment's random crop
    jitter: float = LENET5_SPECIFIED.jitter  # augment's colour jitter strength (0: none)
    batch_size: int = LENET5_SPECIFIED.batch_size
    image_size: int = LENET5_SPECIFIED.image_size
    classes: int | None = LENET5_SPECIFIED.classes  # the first N classes only: quick runs
    val_fraction: float = LENET5_SPECIFIED.val_fraction
    data_dir: str | None = LENET5_SPECIFIED.data_dir
    seed: int = 0


def build_lenet5(p: LeNet5Params, epochs: int) -> TrialSetup:
    if p.model not in ("lenet5", "lenet5_improved"):
        raise UsageError(f"caltech_lenet5: model must be lenet5 or lenet5_improved, got "
                         f"{p.model!r}")
    cfg = dataclasses.replace(LENET5_SPECIFIED, **dataclasses.asdict(p), epochs=epochs,
                              improved=p.model == "lenet5_improved")
    train_set, val_set = load_caltech(cfg)
    tg.manual_seed(p.seed)
    train_loader = DataLoader(train_set, p.batch_size, shuffle=True, drop_last=True)
    n = len(train_set.classes)
    model = models.get_model(p.model, **model_kwargs(cfg, n))
    optimizer = make_optimizer(cfg, model.parameters())
    make_scheduler = scheduler_factory(cfg)
    return TrialSetup(model, optimizer, train_loader, DataLoader(val_set, 256),
                      loss_fn=one_hot_cross_entropy(n, "tinygrad_edu"),
                      scheduler=make_scheduler(optimizer) if make_scheduler else None)


EXPERIMENTS = {
    "synthetic": Experiment(SyntheticParams, build_synthetic),
    "lines": Experiment(LinesParams, build_lines),
    "caltech_lenet5": Experiment(LeNet5Params, build_lenet5),
}


def find_experiment(experiment: str | Callable) -> Experiment | Callable:
    """The Experiment of a name in EXPERIMENTS, or the setup function of "module:function"
    (or the function itself)."""
    if callable(experiment):
        return experiment
    if experiment in EXPERIMENTS:
        return EXPERIMENTS[experiment]
    module_name, sep, attr = experiment.partition(":")
    if not sep:
        raise UsageError(f"unknown experiment {experiment!r}; choose one of "
                         f"{', '.join(EXPERIMENTS)}, or name a function as 'module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"experiment {experiment!r}: cannot import it ({e})") from None


def make_setup(experiment: Experiment | Callable, params: dict, epochs: int) -> TrialSetup:
    """Build one trial's TrialSetup from its parameters."""
    if isinstance(experiment, Experiment):
        return experiment.setup(params, epochs)
    return experiment(params, epochs)
