"""The experiments a sweep can run. Each is an experiment module's config and its build: a
trial's parameters are fields of the experiment's config, and the trial trains what
build(cfg) returns (common.Setup: model, optimizer, loaders, loss, scheduler, metrics_fn),
seeded first, as a run of the experiment itself would be.

    synthetic        Gaussian blobs and a small MLP: a sweep in seconds (tests, a first try)
    lines            the specified CNN on the line dataset and its variations (lines_variations)
    caltech_lenet5   LeNet-5 on Caltech-101, as specified or with its improvements

The modules are imported by name when a sweep names them, so that the sweep machinery does not
depend on any experiment. A config may also name its own, as "package.module:function", a
function (params: dict, epochs: int) -> Setup.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .. import UsageError

# config fields a trial does not choose: its budget, how (not what) the run runs, and what acts
# outside training (Caltech's --tta is the final report's, --improved picks the CLI's defaults)
NOT_SWEPT = ("epochs", "framework", "resume", "override", "logdir", "name", "progress",
             "variants", "tta", "improved")


@dataclass(frozen=True)
class Experiment:
    """A sweepable experiment: the module with its `build(cfg) -> Setup` and the name of the
    config there that holds its defaults."""

    module: str
    defaults: str = "DEFAULTS"

    def setup(self, params: dict, epochs: int):
        """What one trial trains: build(cfg) of the defaults with `params`, after seeding."""
        cfg = self.config(params, epochs)
        cfg.seed_generators()
        return importlib.import_module(self.module).build(cfg)

    def config(self, params: dict, epochs: int):
        self.check_names(params)
        return dataclasses.replace(self.default_config(), **params, epochs=epochs,
                                   progress=False)

    def default_config(self):
        return getattr(importlib.import_module(self.module), self.defaults)

    def check_names(self, names) -> None:
        """Refuse parameters the experiment does not have, naming those it has (its own
        first)."""
        cls = type(self.default_config())
        known = [n for n in own_first(cls) if n not in NOT_SWEPT]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise UsageError(f"{cls.__name__}: unknown parameter(s) {', '.join(unknown)}; this "
                             f"experiment takes {', '.join(known)}")


def own_first(cls: type) -> list[str]:
    """The field names of a config dataclass, those of the most derived class first."""
    names = []
    for klass in cls.__mro__:
        names += [n for n in vars(klass).get("__annotations__", {}) if n not in names]
    return [n for n in names if n in {f.name for f in dataclasses.fields(cls)}]


EXPERIMENTS = {
    "synthetic": Experiment("experiments.sweeps.synthetic"),
    "lines": Experiment("experiments.lines_variations"),
    "caltech_lenet5": Experiment("experiments.caltech_lenet5", "SPECIFIED"),
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


def make_setup(experiment: Experiment | Callable, params: dict, epochs: int):
    """Build one trial's Setup from its parameters."""
    if isinstance(experiment, Experiment):
        return experiment.setup(params, epochs)
    return experiment(params, epochs)
