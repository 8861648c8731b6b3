"""Hyper-parameter sweeps on Ray Tune, on this machine or on a Ray cluster.

    python -m experiments.sweep synthetic                           # experiments/sweeps/*.yaml
    python -m experiments.sweep lines_variations --max-concurrent 2 --set space.per_class=100
    python -m experiments.sweep lines_tuning --scheduler asha       # ASHA stops weak trials
    python -m experiments.sweep caltech_lenet5 --address auto       # join a running cluster
    python -m experiments.sweep --resume --out runs/sweep-lines_tuning-20260101-120000

CONFIG (see experiments/sweeps/config.py) names the experiment, its search space, the metric
and mode, the number of samples and the budget in epochs. Each trial is an ordinary
tg.train.fit run in <out>/trials/<trial>/ (TensorBoard events, metrics.json, checkpoint) that
reports validation loss and accuracy to Tune every epoch. At the end, <out>/results.md, .html
and .csv rank the trials, best first, and `tensorboard --logdir <out>/trials` compares them
(HPARAMS tab). Needs the `sweep` extra: pip install -e ".[sweep]". See docs/sweeps.md.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from .common import UsageError, exit_on_usage_error
from .sweeps.config import (
    SCHEDULERS,
    SweepConfig,
    find_config,
    is_sampler,
    load_config,
    trial_name,
)
from .sweeps.results import trial_rows, write_hparams, write_results
from .sweeps.setups import Experiment, find_experiment
from .sweeps.trial import TrialSpec, run_trial

INSTALL = ('sweeps run on Ray Tune, which is not installed: pip install -e ".[sweep]" '
           '(or pip install "ray[tune]==2.60.0" threadpoolctl pyyaml)')


@dataclass
class SweepOptions:
    """How to run a sweep (the command-line flags); what to run is the SweepConfig."""

    scheduler: str | None = None  # None: the config's
    max_concurrent: int | None = None  # None: as many as the CPUs allow
    cpus_per_trial: int = 1
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:port": join
    resume: bool = False


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="a sweep config: a YAML or Python file, or "
                        "the name of one in experiments/sweeps/ (optional with --resume)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default=None,
                        help="fifo: every trial trains its budget; asha: stop weak trials "
                             "early (default: the config's, else fifo)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="at most this many trials at once (default: as the CPUs allow)")
    parser.add_argument("--cpus-per-trial", type=int, default=None,
                        help="CPUs reserved per trial, and so its BLAS and Numba threads "
                             "(default 1)")
    parser.add_argument("--address", default=None,
                        help="default: start Ray on this machine; 'auto' or 'ray://host:port' "
                             "joins a running cluster")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted sweep in --out")
    parser.add_argument("--out", default=None,
                        help="the sweep's directory (default runs/sweep-<config>-<time>)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set epochs=2 --set "
                             "space.per_class=50 (repeatable; VALUE is YAML)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        print(f"error: {INSTALL}", file=sys.stderr)
        sys.exit(2)
    return exit_on_usage_error(lambda: run_from_args(args))


def run_from_args(args: argparse.Namespace) -> dict:
    """Run the sweep the flags describe; --resume continues the one in --out with the settings
    saved in its sweep.json (only --address may differ)."""
    for flag, value in (("--max-concurrent", args.max_concurrent),
                        ("--cpus-per-trial", args.cpus_per_trial)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.resume:
        return run_sweep(*resumed(args))
    if args.config is None:
        raise UsageError("name a sweep config, e.g. python -m experiments.sweep synthetic")
    cfg = load_config(args.config, args.set)
    config = os.path.abspath(args.config) if os.path.isfile(args.config) else args.config
    options = SweepOptions(args.scheduler, args.max_concurrent, args.cpus_per_trial or 1,
                           args.address)
    return run_sweep(cfg, args.out or default_out(cfg), options,
                     {"config": config, "set": args.set})


def resumed(args: argparse.Namespace) -> tuple:
    """(config, out, options, source) of the sweep in --out, to continue it."""
    if args.out is None:
        raise UsageError("--resume continues a sweep: name its directory with --out")
    changed = [flag for flag, value in (("--scheduler", args.scheduler), ("--set", args.set),
                                        ("--max-concurrent", args.max_concurrent),
                                        ("--cpus-per-trial", args.cpus_per_trial)) if value]
    if changed:
        raise UsageError(f"--resume continues the sweep as it was started; drop "
                         f"{', '.join(changed)} (only --address may change)")
    path = os.path.join(args.out, "sweep.json")
    if not os.path.exists(path):
        raise UsageError(f"--resume: {args.out} holds no sweep (no sweep.json); check --out")
    with open(path) as f:
        saved = json.load(f)
    source = saved["source"]
    if source is None:
        raise UsageError(f"--resume: the sweep in {args.out} was started from Python; continue "
                         f"it with run_sweep(cfg, out, SweepOptions(resume=True))")
    if args.config is not None and find_config(args.config) != find_config(source["config"]):
        raise UsageError(f"--resume: {args.out} was started with {source['config']}, not "
                         f"{args.config}; leave CONFIG out to continue it")
    options = SweepOptions(**saved["options"])
    options.address, options.resume = args.address, True
    return load_config(source["config"], source["set"]), args.out, options, source


def default_out(cfg: SweepConfig) -> str:
    return os.path.join("runs", f"sweep-{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")


# ---- running ---------------------------------------------------------------------------------

def run_sweep(cfg: SweepConfig, out: str, options: SweepOptions | None = None,
              source: dict | None = None) -> dict:
    """Run (or with options.resume, continue) the sweep of `cfg` in directory `out`; write the
    results tables and the hparams view; return {"rows", "paths", "out", "wall_seconds"}."""
    options = options or SweepOptions()
    out = os.path.abspath(out)
    scheduler = options.scheduler or cfg.scheduler
    check_sweep(cfg, out, options, scheduler)
    experiment = find_experiment(cfg.experiment)
    if isinstance(experiment, Experiment):
        experiment.check_names(parameter_names(cfg))
    spec = TrialSpec(cfg.experiment, cfg.epochs, cfg.metric, cfg.variants,
                     os.path.join(out, "trials"), options.cpus_per_trial, os.getcwd())
    start = time.perf_counter()
    earlier = _earlier_wall(out) if options.resume else 0.0
    started = _connect(options.address)  # before `out` exists: a refusal leaves nothing behind
    try:
        os.makedirs(out, exist_ok=True)
        _save_settings(out, cfg, options, source)
        trials = _tune(cfg, spec, out, options, scheduler)
    finally:  # every part of the sweep counts, also one that ends in an exception
        wall = earlier + time.perf_counter() - start
        if os.path.isdir(out):
            _save_settings(out, cfg, options, source, wall)
        if started:
            import ray
            ray.shutdown()
    rows = trial_rows(trials, cfg, spec.trials_dir)
    write_hparams(rows, cfg)
    settings = {"scheduler": scheduler, "cpus_per_trial": options.cpus_per_trial,
                "trials_dir": spec.trials_dir, "wall_seconds": wall}
    paths = write_results(rows, cfg, out, settings)
    _print_summary(rows, cfg, paths, out)
    return {"rows": rows, "paths": paths, "out": out, "wall_seconds": wall}


def check_sweep(cfg: SweepConfig, out: str, options: SweepOptions, scheduler: str) -> None:
    state = os.path.join(out, "tune")
    if options.resume and not os.path.isdir(state):
        raise UsageError(f"--resume: {out} holds no Tune state ({state} is missing); run the "
                         f"sweep without --resume first")
    if not options.resume and os.path.exists(state):
        raise UsageError(f"{out} already holds a sweep; continue it with --resume, or choose "
                         f"another --out")
    if options.address is not None:
        check_reachable(options.address)
    if scheduler == "asha" and cfg.grace_period > cfg.epochs:
        raise UsageError(f"ASHA: grace_period ({cfg.grace_period}) exceeds the budget of "
                         f"{cfg.epochs} epochs")


def parameter_names(cfg: SweepConfig) -> set[str]:
    """Every parameter a trial can get: the space's and the variants'."""
    return set(cfg.space) | {k for params in cfg.variants.values() for k in params}


def tune_space(cfg: SweepConfig) -> dict:
    """The config's space as Tune's param_space; the variants become a grid over their names."""
    from ray import tune

    make = {"grid": tune.grid_search, "choice": tune.choice,
            "uniform": lambda v: tune.uniform(*v), "loguniform": lambda v: tune.loguniform(*v)}
    space = {"variant": tune.grid_search(list(cfg.variants))} if cfg.variants else {}
    for name, value in cfg.space.items():
        if is_sampler(value):
            kind, values = next(iter(value.items()))
            space[name] = make[kind](values)
        else:
            space[name] = value
    return space


def _connect(address: str | None) -> bool:
    """Start a local Ray (address None) or join a cluster; False if Ray was already running
    in this process (then it is left running)."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:  # "local": a new Ray even if `ray start` left one running here
        ray.init(address="local", include_dashboard=False, configure_logging=False)
        return True
    try:
        with _stderr_kept_unless_it_fails():
            ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as e:
        raise UsageError(_join_failure(address, e)) from None
    return True


def _join_failure(address: str, e: Exception) -> str:
    """What to do about a cluster that did not take us: its token, or the address."""
    if "AuthenticationError" in f"{type(e).__name__} {e} {e.__cause__}":
        return (f"the Ray cluster at --address {address} wants its authentication token: set "
                f"RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to it, as "
                f"`ray get-auth-token` prints it on the cluster's head node")
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return (f"cannot join the Ray cluster at --address {address} ({reason}); start one with "
            f"`ray start --head`, or check the address")


@contextmanager
def _stderr_kept_unless_it_fails():
    """Hold what is written to file descriptor 2 inside the block, and pass it on only if the
    block succeeds: Ray's C++ client warns on stderr at each of its ~20 attempts to join a
    cluster that refuses it, which would bury the one sentence that says why."""
    sys.stderr.flush()
    real = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(real, 2)
            os.close(real)
        held.seek(0)
        sys.stderr.flush()
        os.write(2, held.read())


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A host:port that refuses the connection is a UsageError at once (ray.init would retry
    it for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UsageError(f"cannot reach the Ray cluster at --address {address} "
                         f"({e.strerror or e}); is `ray start --head` running there?") from None


def _trainable(spec: TrialSpec):
    from ray import tune

    return tune.with_resources(tune.with_parameters(run_trial, spec=spec), {"cpu": spec.cpus})


def _tune(cfg: SweepConfig, spec: TrialSpec, out: str, options: SweepOptions,
          scheduler: str) -> list:
    """Run Tune to the end and return its trials (Tune's Trial objects)."""
    from ray import tune

    path = os.path.join(out, "tune")
    if options.resume:
        tuner = tune.Tuner.restore(path, trainable=_trainable(spec), resume_unfinished=True,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(_trainable(spec), param_space=tune_space(cfg),
                           tune_config=_tune_config(cfg, options, scheduler),
                           run_config=tune.RunConfig(
                               name="tune", storage_path=out, verbose=1,
                               failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                               checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    tuner.fit()
    return tune.ExperimentAnalysis(path).trials


def _tune_config(cfg: SweepConfig, options: SweepOptions, scheduler: str):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    if scheduler == "asha":
        chosen = ASHAScheduler(time_attr="epoch", max_t=cfg.epochs, grace_period=cfg.grace_period,
                               reduction_factor=cfg.reduction_factor)
    else:
        chosen = FIFOScheduler()
    # the generator limits the trials at once: Tune ignores max_concurrent_trials beside it
    search = BasicVariantGenerator(random_state=cfg.sample_seed,
                                   max_concurrent=options.max_concurrent or 0)
    return tune.TuneConfig(metric=cfg.metric, mode=cfg.mode, num_samples=cfg.num_samples,
                           scheduler=chosen, search_alg=search,
                           trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                           reuse_actors=True)


def _save_settings(out: str, cfg: SweepConfig, options: SweepOptions, source: dict | None,
                   wall_seconds: float | None = None):
    """sweep.json: where the config came from (for --resume), how the sweep was run and, once
    it ends, its wall time (summed over every run of a resumed sweep)."""
    from . import report

    settings = {"source": source, "options": asdict(options),
                "config": asdict(cfg) | {"experiment": str(cfg.experiment)}}
    if wall_seconds is None and options.resume:
        wall_seconds = _earlier_wall(out)  # keep the earlier parts' time until this one ends
    if wall_seconds is not None:
        settings["wall_seconds"] = wall_seconds
    report.write_text_atomic(os.path.join(out, "sweep.json"),
                             json.dumps(settings, indent=1, default=str))


def _earlier_wall(out: str) -> float:
    """The wall time that sweep.json records for the earlier runs of this sweep."""
    try:
        with open(os.path.join(out, "sweep.json")) as f:
            return float(json.load(f).get("wall_seconds", 0.0))
    except (OSError, ValueError):
        return 0.0


def _print_summary(rows: list[dict], cfg: SweepConfig, paths: dict, out: str) -> None:
    if rows:
        best = rows[0]
        print(f"best of {len(rows)} trials by {cfg.metric}: {best['trial']} "
              f"{cfg.metric}={best['metrics'].get(cfg.metric, float('nan')):.4f} "
              f"{json.dumps(best['params'], default=str)}")
    unfinished = sum(row["status"] == "not finished" for row in rows)
    if unfinished:
        print(f"{unfinished} trial(s) not finished: continue the sweep with "
              f"python -m experiments.sweep --resume --out {out}")
    print(f"results: {paths['md']} (also .html, .csv)")


if __name__ == "__main__":
    main()
