"""Sweep configs: a YAML or Python file naming the experiment, its search space and its budget.

    experiment: lines             # a name in setups.EXPERIMENTS, or "package.module:function"
    epochs: 4                     # the budget: the most epochs one trial trains
    metric: val_loss              # val_loss, val_acc, or val_<name> of a metrics_fn value
    mode: min                     # min or max
    num_samples: 1                # how many times the grid is run, sampling the ranges anew
    scheduler: asha               # fifo (every trial runs its budget) or asha (stops weak ones)
    space:                        # one entry per parameter of the experiment
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      optimizer: {choice: [adam, sgd]}
      dropout: {uniform: [0.0, 0.5]}
      kernel_size: {grid: [3, 5, 7]}
      per_class: 100              # a constant: every trial gets it
    variants:                     # optional: named sets of parameters, one more grid axis
      specified: {}
      deeper: {channels: [32, 64], padding: 2}

A Python config defines SWEEP, a dict of the same keys; its `experiment` may be a function.
Reading a config needs no Ray (experiments.sweep turns it into a Tune search space).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import UsageError

SWEEPS_DIR = Path(__file__).resolve().parent
SAMPLERS = ("grid", "choice", "uniform", "loguniform")
SCHEDULERS = ("fifo", "asha")
RESERVED = ("epochs", "variant")  # the budget and the variant name are not space entries


@dataclass
class SweepConfig:
    """A checked sweep config; `space` maps a parameter to a constant or {sampler: values}."""

    experiment: str | Callable  # a setups.EXPERIMENTS name, "module:function", or a function
    epochs: int
    name: str = "sweep"  # a config file's default: its file name
    space: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)  # variant name -> {parameter: value}
    metric: str = "val_loss"
    mode: str = "min"
    num_samples: int = 1
    scheduler: str = "fifo"
    grace_period: int = 1  # ASHA: the epochs every trial gets before it can be stopped
    reduction_factor: int = 3  # ASHA: keep the best 1/reduction_factor at each rung
    max_failures: int = 2  # retries of a trial that raises or whose worker dies
    sample_seed: int = 0  # seeds the sampling of ranges and choices, for repeatable sweeps
    description: str = ""

    def searched(self) -> list[str]:
        """The parameters that differ between trials (the table's columns), in config order."""
        names = ["variant"] if self.variants else []
        return names + [k for k, v in self.space.items() if is_sampler(v)]


def is_sampler(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SAMPLERS


# ---- reading ---------------------------------------------------------------------------------

def find_config(name_or_path: str) -> Path:
    """A config's path: a YAML or Python file as given, or experiments/sweeps/<name>.yaml."""
    path = Path(name_or_path)
    if path.is_file():
        if path.suffix not in (".yaml", ".yml", ".py"):
            raise UsageError(f"{path}: a sweep config is a .yaml, .yml or .py file")
        return path.resolve()
    for suffix in (".yaml", ".yml"):
        candidate = SWEEPS_DIR / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in SWEEPS_DIR.iterdir() if p.suffix in (".yaml", ".yml"))
    raise UsageError(f"no sweep config {name_or_path!r}: not a file, and not one of "
                     f"experiments/sweeps/: {', '.join(known)}")


def load_config(name_or_path: str, overrides: list[str] = ()) -> SweepConfig:
    """Read and check a config; overrides are KEY=VALUE strings (VALUE in YAML), where KEY is
    a top-level key or space.PARAMETER, e.g. ["epochs=2", "space.per_class=20"]."""
    path = find_config(name_or_path)
    raw = _read_python(path) if path.suffix == ".py" else _read_yaml(path)
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: a sweep config is a mapping of keys (experiment, epochs, "
                         f"space, ...), got {type(raw).__name__}")
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    for item in overrides:
        _override(raw, item, path)
    return check_config(raw, str(path))


def _read_yaml(path: Path):
    try:
        import yaml
    except ImportError:
        raise UsageError("YAML sweep configs need PyYAML: pip install -e '.[sweep]'") from None
    try:
        return yaml.load(path.read_text(), Loader=_loader())
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {e}") from None


def _loader():
    """PyYAML's SafeLoader, reading 1e-4 as a float (YAML 1.1 would read it as a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    number = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", number, list("-+0123456789."))
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?\d+$"),
                                 list("-+0123456789"))
    return Loader


def _read_python(path: Path) -> dict:
    """SWEEP from a Python config, imported as a module (so its functions can be pickled)."""
    name = f"_sweep_config_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "SWEEP"):
        raise UsageError(f"{path}: a Python sweep config defines SWEEP = {{...}} with the keys "
                         f"of a YAML config")
    return module.SWEEP


def _override(raw: dict, item: str, path: Path) -> None:
    key, sep, text = item.partition("=")
    if not sep:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. epochs=2 or "
                         f"space.per_class=20")
    import yaml
    value = yaml.load(text, Loader=_loader())
    if key.startswith("space."):
        raw["space"] = dict(raw.get("space") or {}) | {key[len("space."):]: value}
    else:
        raw[key] = value


# ---- checking --------------------------------------------------------------------------------

def check_config(raw: dict, where: str) -> SweepConfig:
    """A SweepConfig from a dict, or a UsageError saying which key is wrong and why."""
    known = [f.name for f in dataclasses.fields(SweepConfig)]
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; a sweep "
                         f"config has {', '.join(known)}")
    for key in ("experiment", "epochs"):
        if key not in raw:
            raise UsageError(f"{where}: the config needs '{key}'")
    cfg = SweepConfig(**{k: v for k, v in raw.items() if v is not None})  # empty: the default
    _check_numbers(cfg, where)
    if cfg.mode not in ("min", "max"):
        raise UsageError(f"{where}: mode must be min or max, got {cfg.mode!r}")
    if cfg.scheduler not in SCHEDULERS:
        raise UsageError(f"{where}: scheduler must be one of {', '.join(SCHEDULERS)}, got "
                         f"{cfg.scheduler!r}")
    if not (isinstance(cfg.experiment, str) or callable(cfg.experiment)):
        raise UsageError(f"{where}: experiment must be a name or 'module:function', got "
                         f"{cfg.experiment!r}")
    _check_space(cfg.space, where)
    _check_variants(cfg.variants, where)
    return cfg


def _check_numbers(cfg: SweepConfig, where: str) -> None:
    for name in ("epochs", "num_samples", "grace_period", "reduction_factor"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{where}: {name} must be a positive integer, got {value!r}")
    if isinstance(cfg.max_failures, bool) or not isinstance(cfg.max_failures, int):
        raise UsageError(f"{where}: max_failures must be an integer (-1: retry forever), got "
                         f"{cfg.max_failures!r}")
    if cfg.reduction_factor < 2:
        raise UsageError(f"{where}: reduction_factor must be at least 2, got "
                         f"{cfg.reduction_factor}")


def _check_space(space, where: str) -> None:
    if not isinstance(space, dict):
        raise UsageError(f"{where}: space must map parameter names to values or samplers, got "
                         f"{type(space).__name__}")
    for name, value in space.items():
        if name in RESERVED:
            raise UsageError(f"{where}: space.{name} is reserved: the budget is the top-level "
                             f"'epochs', and 'variant' comes from the 'variants' mapping")
        if isinstance(value, dict) and not is_sampler(value):
            raise UsageError(f"{where}: space.{name} = {value!r}: a sampler is a mapping with "
                             f"one key, one of {', '.join(SAMPLERS)}")
        if is_sampler(value):
            _check_sampler(name, *next(iter(value.items())), where)


def _check_sampler(name: str, kind: str, values, where: str) -> None:
    what = f"{where}: space.{name}.{kind}"
    if kind in ("grid", "choice"):
        if not isinstance(values, list) or not values:
            raise UsageError(f"{what} must be a non-empty list of values, got {values!r}")
        return
    if (not isinstance(values, list) or len(values) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            or not values[0] < values[1]):
        raise UsageError(f"{what} must be [low, high] with numbers low < high, got {values!r}")
    if kind == "loguniform" and values[0] <= 0:
        raise UsageError(f"{what}: a log-uniform range must be positive, got {values!r}")


def _check_variants(variants, where: str) -> None:
    if not isinstance(variants, dict):
        raise UsageError(f"{where}: variants must map names to parameter mappings")
    for name, params in variants.items():
        if not isinstance(params, dict):
            raise UsageError(f"{where}: variants.{name} must be a mapping of parameters (or "
                             f"{{}}), got {params!r}")


def trial_name(trial) -> str:
    """'trial_00003': a Tune trial's number in the sweep (names its run directory)."""
    return "trial_" + trial.trial_id.rsplit("_", 1)[-1]


def trial_params(config: dict, variants: dict) -> dict:
    """One trial's parameters for its experiment: the Tune config without the variant's name,
    with that variant's parameters merged in (they win over the space's)."""
    params = {k: v for k, v in config.items() if k != "variant"}
    if variants:
        params.update(variants[config["variant"]])
    return params
