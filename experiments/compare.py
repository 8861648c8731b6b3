"""Train (or collect) MLP3, CNN2 and CNN3, each from scratch and as its PyTorch twin, and write
one side-by-side comparison (HTML and Markdown).

    python -m experiments.compare --epochs 5            # six runs, then the report
    python -m experiments.compare --collect             # newest finished run of each in runs/

Writes runs/compare-<time>/comparison.html and .md, with the runs inside it (one directory per
network and framework). Ctrl-C stops it with a checkpoint;
`python -m experiments.compare --resume runs/compare-<time>` keeps the finished runs, continues
the interrupted one and trains the rest.
"""
from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass, fields

import numpy as np

from tinygrad_edu.viz.images import heatmap_image

from . import UsageError, report, runner
from .common import FRAMEWORKS, exit_on_usage_error, parse_config
from .mnist_common import MNISTConfig, build, finish
from .run_record import mnist_class_names

NETWORKS = ("mlp3", "cnn2", "cnn3")
COLUMNS = ["network", "framework", "parameters", "test accuracy", "test loss", "macro F1",
           "ms / iter", "s / epoch", "wall s", "training"]


def newest_finished(logdir: str, model: str, framework: str, dataset: str) -> dict | None:
    """The summary of the newest finished run of a network on `dataset` in `logdir`, its own
    or one inside a compare's directory, if any."""
    paths = [p for pattern in (f"*_{model}-{framework}-*", f"*/{model}-{framework}-*")
             for p in glob.glob(os.path.join(glob.escape(logdir), pattern, "metrics.json"))]
    for path in sorted(paths, key=os.path.getmtime, reverse=True):
        with open(path) as f:
            summary = json.load(f).get("summary", {})
        if summary.get("status") == "finished" and summary.get("dataset", "mnist") == dataset:
            return summary | {"run_dir": os.path.dirname(path)}
    return None


def row(s: dict) -> list:
    return [s["model"], s["framework"], s["parameters"], s["test_accuracy"], s["test_loss"],
            s["macro_f1"], s["ms_per_iter"], s["seconds_per_epoch"], s["wall_seconds"],
            training(s.get("config", {}))]


def training(c: dict) -> str:
    """How a run trained, in words: 'sgd lr 0.01 momentum 0.9, cosine, 5 epochs, mnist'."""
    if not c:
        return "?"
    momentum = f" momentum {c.get('momentum', 0.0)}" if c.get("optimizer") == "sgd" else ""
    return (f"{c.get('optimizer')} lr {c.get('lr')}{momentum}, {c.get('schedule')}, "
            f"{c.get('epochs')} epochs, batch {c.get('batch_size')}, "
            f"{c.get('dataset', 'mnist')}")


def differences(results: dict) -> list[list]:
    """Scratch minus PyTorch for each network: accuracy gap (points) and speed ratio."""
    out = []
    for net in NETWORKS:
        a, b = results.get((net, "tinygrad_edu")), results.get((net, "torch"))
        if a and b:
            out.append([net, 100 * (a["test_accuracy"] - b["test_accuracy"]),
                        a["ms_per_iter"] / b["ms_per_iter"],
                        a["seconds_per_epoch"] / b["seconds_per_epoch"]])
    return out


def write_report(results: dict, out_dir: str) -> str:
    rows = [row(results[k]) for k in sorted(results, key=lambda k: (NETWORKS.index(k[0]), k[1]))]
    diff_header = ["network", "accuracy gap (points, scratch - torch)", "ms/iter ratio",
                   "s/epoch ratio"]
    diffs = differences(results)
    md = ["# MNIST: scratch vs PyTorch", "", report.table_markdown(COLUMNS, rows), "",
          "## Scratch vs framework", "", report.table_markdown(diff_header, diffs), ""]
    figures = []
    for key in sorted(results, key=lambda k: (NETWORKS.index(k[0]), k[1])):
        s = results[key]
        cm = np.array(s["confusion_matrix"])
        img = heatmap_image(cm, labels=mnist_class_names(s.get("dataset", "mnist")), title=f"{key[0]} ({key[1]})", fmt=".2f",
                            vmin=0.0, vmax=1.0)
        figures.append(f"<div>{report.figure(img, f'{key[0]} ({key[1]})')}"
                       f"{report.curves(s['history'])}</div>")
    sections = [("Results", report.table_html(COLUMNS, rows)),
                ("Scratch vs framework", report.table_html(diff_header, diffs)),
                ("Confusion matrices and learning curves", "".join(figures))]
    os.makedirs(out_dir, exist_ok=True)
    report.write_text_atomic(os.path.join(out_dir, "comparison.md"), "\n".join(md))
    report.write_text_atomic(os.path.join(out_dir, "comparison.html"),
                             report.page("MNIST: scratch vs PyTorch", sections))
    return "\n".join(md)


@dataclass
class CompareConfig(MNISTConfig):
    """The flags of every run compared (optimizer, lr, momentum, schedule, ...), and which."""

    networks: str = ",".join(NETWORKS)  # comma-separated
    frameworks: str = ",".join(FRAMEWORKS)
    collect: bool = False  # only collect the newest finished runs in --logdir


def chosen(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UsageError(f"{flag}: unknown {', '.join(unknown) or 'empty list'}; choose from "
                         f"{', '.join(allowed)}")
    return names


def compare(cfg: CompareConfig) -> dict:
    """Train (or collect) each network in each framework, then write the comparison. The runs
    go in one directory (runner.run_parts), so --resume continues them as one."""
    nets = chosen(cfg.networks, NETWORKS, "--networks")
    frameworks = chosen(cfg.frameworks, FRAMEWORKS, "--frameworks")
    if cfg.collect:
        return collect(cfg, nets, frameworks)
    parts = {f"{net}-{fw}": (lambda part, net=net, fw=fw: train(part, net, fw))
             for net in nets for fw in frameworks}
    entries, out = runner.run_parts(cfg, "compare", parts,
                                    lambda entries, d: write_report(by_run(entries), d))
    return report_of(by_run(entries), out)


def train(cfg: CompareConfig, net: str, framework: str) -> dict:
    """One run of the comparison: `net` in `framework` with the comparison's flags."""
    run_cfg = MNISTConfig(**{f.name: getattr(cfg, f.name) for f in fields(MNISTConfig)}
                          | {"model": net, "framework": framework})
    return runner.run(run_cfg, build, finish, f"mnist_{net}")


def by_run(entries: dict) -> dict:
    """run_parts' entries (runs' summaries) by (network, framework)."""
    return {(s["model"], s["framework"]): s for s in entries.values()}


def collect(cfg: CompareConfig, nets: list[str], frameworks: list[str]) -> dict:
    """Compare the newest finished run of each network and framework in --logdir."""
    results = {}
    for net in nets:
        for fw in frameworks:
            s = newest_finished(cfg.logdir, net, fw, cfg.dataset)
            if s is None:
                print(f"no finished run of {net} ({fw}) in {cfg.logdir}; skipped")
                continue
            results[(net, fw)] = s
    if not results:
        raise UsageError(f"no runs to compare in {cfg.logdir}; run without --collect")
    return report_of(results, os.path.join(cfg.logdir,
                                           f"compare-{time.strftime('%Y%m%d-%H%M%S')}"))


def report_of(results: dict, out: str) -> dict:
    """Write the comparison of `results` in `out`, print it; return the results."""
    print(write_report(results, out))
    print(f"report: {out}/comparison.html")
    return results


def main(argv=None) -> dict:
    return exit_on_usage_error(lambda: compare(parse_config(
        CompareConfig(), argv, description=__doc__.splitlines()[0], experiment="compare")),
        argv)


if __name__ == "__main__":
    main()
