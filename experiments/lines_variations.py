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
compares them in the HPARAMS tab).
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
    vcfg = dataclasses.replace(cfg, **variant.overrides, name=variant.name)

    def finish_variant(cfg, setup, result, logger) -> Report:
        logger.summary["variant"] = dataclasses.asdict(variant)
        return finish(cfg, setup, result, logger, f"Variant {variant.name} of the specified CNN",
                      (["variant", f"{variant.name}: {variant.change}"],))
    return runner.run(vcfg, build, finish_variant, "lines_variations")


def run(cfg: VariationsConfig) -> dict:
    """Train every chosen variant; write and return the table."""
    check_config(cfg, "spec_cnn")
    if cfg.resume:
        raise UsageError("lines_variations trains each variant as its own run; --resume one "
                         "of them with python -m experiments.lines_specified is not the same "
                         "run: start the variations again")
    if cfg.schedule != "none":
        raise UsageError("--schedule: each variant sets its learning-rate schedule (the lr_decay "
                         "variant adds cosine decay); compare schedules with --variants")
    variants = chosen(cfg)
    architecture(cfg)  # a bad --channels etc. before anything is written
    rows, results, table = [], {}, ""
    with runner.open_logger(cfg, "lines_variations") as logger:  # the variants' runs go inside
        sweep_dir = logger.logdir
        logger.summary.update(status="running", config=cfg.to_dict())
        for variant in variants:
            print(f"--- {variant.name}: {variant.change}")
            r = run_variant(dataclasses.replace(cfg, logdir=sweep_dir), variant)
            results[variant.name] = {k: r[k] for k in ("test_accuracy", "macro_f1", "parameters",
                                                       "seconds_per_epoch", "wall_seconds",
                                                       "run_dir")}
            rows.append([variant.name, variant.change, r["parameters"], r["test_accuracy"],
                         r["macro_f1"], r["seconds_per_epoch"], r["wall_seconds"]])
            table = write_table(cfg, r["split"], rows, sweep_dir)  # a partial table survives
            logger.summary["results"] = results
            logger.flush()
        logger.summary["status"] = "finished"
    print(table)
    return {"table": table, "results": results, "run_dir": sweep_dir}


def write_table(cfg: VariationsConfig, split: list[int], rows: list, sweep_dir: str) -> str:
    """variations.md in the sweep directory (split: the training and test images); returns
    its text."""
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
