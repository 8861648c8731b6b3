"""Try variants of the specified CNN on the line dataset, on a budget, and tabulate them.

Each variant changes one thing (filter size, number of filters, pooling or strided convolution,
depth, learning-rate decay, dropout, L2), and "combined" joins the changes that help. Every
variant is trained and tested like the specified CNN (60/40 split, same seed); the table
"variations tried" gives its test accuracy, macro F1 and time.

    python -m experiments.lines_variations                       # every variant, 200 per class
    python -m experiments.lines_variations --variants specified,combined --per-class 1000 \\
        --epochs 4

Writes runs/lines_variations-<time>/variations.md and one run directory per variant inside it
(report.html, TensorBoard events with hparams: `tensorboard --logdir` on the sweep directory
compares them in the HPARAMS tab). Ctrl-C stops it with a checkpoint;
`python -m experiments.lines_variations --resume runs/lines_variations-<time>` keeps the
finished variants, continues the interrupted one and trains the rest.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from . import UsageError, report, runner
from .common import Report, exit_on_usage_error, parse_config
from .lines_common import LinesConfig, architecture, build, check_config, finish


@dataclass(frozen=True)
class Variant:
    """One change to the specified CNN or to how it is trained: config fields and values."""

    name: str
    change: str  # what differs from the specified CNN, for the table
    overrides: dict = field(default_factory=dict)  # LinesConfig fields (architecture, training)


DEEPER = {"channels": "32,64", "kernel_size": 5, "padding": 2}
VARIANTS = {v.name: v for v in (
    Variant("specified", "none: 7x7 conv with 32 filters, 2x2 max pool, fc 1024"),
    Variant("kernel5", "5x5 filters", {"kernel_size": 5}),
    Variant("kernel3", "3x3 filters", {"kernel_size": 3}),
    Variant("filters16", "16 filters", {"channels": "16"}),
    Variant("filters64", "64 filters", {"channels": "64"}),
    Variant("strided", "stride-2 convolution instead of max pooling", {"downsample": "stride"}),
    Variant("deeper", "two conv blocks: 32 and 64 filters, 5x5, padding 2", DEEPER),
    Variant("lr_decay", "cosine learning-rate decay to 0", {"schedule": "cosine"}),
    Variant("dropout", "dropout 0.5 after fc 1024", {"dropout": 0.5}),
    Variant("l2", "L2 weight decay 1e-4", {"weight_decay": 1e-4}),
    Variant("combined", "deeper + cosine lr decay + dropout 0.5",
            DEEPER | {"dropout": 0.5, "schedule": "cosine"}),
)}
COLUMNS = ["variant", "change", "parameters", "test accuracy", "macro F1", "s / epoch",
           "wall s"]


@dataclass
class VariationsConfig(LinesConfig):
    per_class: int = 200
    epochs: int = 2
    schedule: str = "none"  # each variant sets its own (lr_decay: cosine); --schedule is refused
    variants: str = ",".join(VARIANTS)


def chosen(cfg: VariationsConfig) -> list[Variant]:
    names = [n.strip() for n in cfg.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise UsageError(f"--variants: unknown {', '.join(unknown) or 'empty list'}; choose "
                         f"from {', '.join(VARIANTS)}")
    return [VARIANTS[n] for n in names]


def run_variant(cfg: VariationsConfig, variant: Variant) -> dict:
    """Train and test one variant in its own run directory (named after it) through the
    runner, which seeds before it builds: a variant gives the same numbers every time."""
    print(f"--- {variant.name}: {variant.change}")
    vcfg = dataclasses.replace(cfg, **variant.overrides, name=variant.name)

    def finish_variant(cfg, setup, result, logger) -> Report:
        logger.summary["variant"] = dataclasses.asdict(variant)
        return finish(cfg, setup, result, logger, f"Variant {variant.name} of the specified CNN",
                      (["variant", f"{variant.name}: {variant.change}"],))
    return runner.run(vcfg, build, finish_variant, "lines_variations")


def run(cfg: VariationsConfig) -> dict:
    """Train every chosen variant, each its own run in the sweep directory (runner.run_parts);
    write and return the table. With --resume SWEEP_DIR (the directory of an interrupted run of
    this command) the finished variants are kept, the interrupted one continues from its
    last.npz and the rest are trained."""
    check_config(cfg, "spec_cnn")
    if cfg.schedule != "none":
        raise UsageError("--schedule: each variant sets its learning-rate schedule (the lr_decay "
                         "variant adds cosine decay); compare schedules with --variants")
    variants = chosen(cfg)
    architecture(cfg)  # a bad --channels etc. before anything is written
    parts = {v.name: (lambda vcfg, v=v: entry(run_variant(vcfg, v))) for v in variants}
    results, sweep_dir = runner.run_parts(cfg, "lines_variations", parts,
                                          lambda results, d: write_table(cfg, results, d))
    table = write_table(cfg, results, sweep_dir)
    print(table)
    return {"table": table, "results": results, "run_dir": sweep_dir}


def entry(r: dict) -> dict:
    """A variant's row of the table, from its run's summary."""
    return {k: r[k] for k in ("test_accuracy", "macro_f1", "parameters", "seconds_per_epoch",
                              "wall_seconds", "split", "run_dir")}


def write_table(cfg: VariationsConfig, results: dict, sweep_dir: str) -> str:
    """variations.md in the sweep directory, a row per variant in `results`; returns its
    text."""
    rows = [[name, VARIANTS[name].change, r["parameters"], r["test_accuracy"], r["macro_f1"],
             r["seconds_per_epoch"], r["wall_seconds"]] for name, r in results.items()]
    split = next(iter(results.values()))["split"]  # the same 60/40 split for every variant
    what = (f"the line dataset: {cfg.per_class} images per class" if cfg.dataset == "lines"
            else f"{cfg.dataset}")
    text = (f"## Variations tried\n\nThe specified CNN and its variants on {what}: "
            f"{split[0]} to train, {split[1]} "
            f"to test (60/40), {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} "
            f"lr {cfg.lr}, seed {cfg.seed}.\n\n" + report.table_markdown(COLUMNS, rows) + "\n")
    report.write_text_atomic(os.path.join(sweep_dir, "variations.md"), text)
    return text


DEFAULTS = VariationsConfig()


def main(argv=None) -> dict:
    return exit_on_usage_error(lambda: run(parse_config(
        DEFAULTS, argv, description=__doc__.splitlines()[0],
        experiment="lines_variations")), argv)


if __name__ == "__main__":
    main()
