"""Train (or collect) MLP3, CNN2 and CNN3, each from scratch and as its PyTorch twin, and write
one side-by-side comparison (HTML and Markdown).

    python -m experiments.compare --epochs 5            # six runs, then the report
    python -m experiments.compare --collect             # newest finished run of each in runs/
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np

from tinygrad_edu.viz.images import heatmap_image

from . import report
from .common import Config, UsageError, exit_on_usage_error
from .runner import CLASS_NAMES, check_framework, curves, run

NETWORKS = ("mlp3", "cnn2", "cnn3")
FRAMEWORKS = ("tinygrad_edu", "torch")
COLUMNS = ["network", "framework", "parameters", "test accuracy", "test loss", "macro F1",
           "ms / iter", "s / epoch", "wall s"]


def newest_finished(logdir: str, model: str, framework: str) -> dict | None:
    """The summary of the newest finished run of a network in `logdir`, if any."""
    pattern = os.path.join(logdir, f"mnist_{model}-{framework}-*", "metrics.json")
    for path in sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True):
        with open(path) as f:
            summary = json.load(f).get("summary", {})
        if summary.get("status") == "finished":
            return summary | {"run_dir": os.path.dirname(path)}
    return None


def row(s: dict) -> list:
    return [s["model"], s["framework"], s["parameters"], s["test_accuracy"], s["test_loss"],
            s["macro_f1"], s["ms_per_iter"], s["seconds_per_epoch"], s["wall_seconds"]]


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
        img = heatmap_image(cm, labels=CLASS_NAMES, title=f"{key[0]} ({key[1]})", fmt=".2f",
                            vmin=0.0, vmax=1.0)
        figures.append(f"<div>{report.figure(img, f'{key[0]} ({key[1]})')}"
                       f"{curves(s['history'])}</div>")
    sections = [("Results", report.table_html(COLUMNS, rows)),
                ("Scratch vs framework", report.table_html(diff_header, diffs)),
                ("Confusion matrices and learning curves", "".join(figures))]
    os.makedirs(out_dir, exist_ok=True)
    report.write_text_atomic(os.path.join(out_dir, "comparison.md"), "\n".join(md))
    report.write_text_atomic(os.path.join(out_dir, "comparison.html"),
                             report.page("MNIST: scratch vs PyTorch", sections))
    return "\n".join(md)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--logdir", default="runs")
    p.add_argument("--collect", action="store_true", help="only collect existing runs")
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    p.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)

    def go():
        results = {}
        for net in args.networks:
            for fw in args.frameworks:
                if args.collect:
                    s = newest_finished(args.logdir, net, fw)
                    if s is None:
                        print(f"no finished run of {net} ({fw}) in {args.logdir}; skipped")
                        continue
                else:
                    cfg = Config(model=net, framework=fw, epochs=args.epochs,
                                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 subset=args.subset, data_dir=args.data_dir,
                                 logdir=args.logdir, progress=args.progress)
                    check_framework(cfg)
                    s = run(cfg)
                results[(net, fw)] = s
        if not results:
            raise UsageError(f"no runs to compare in {args.logdir}; run without --collect")
        out = os.path.join(args.logdir, f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
        print(write_report(results, out))
        print(f"report: {out}/comparison.html")

    exit_on_usage_error(go)


if __name__ == "__main__":
    main()
