"""The Caltech-101 results: every caltech_* run in a log folder as tables (Markdown), with the
assignment's targets checked. Unfinished runs count with the epochs they completed.

    python -m experiments.caltech_results                    # runs/ -> runs/caltech_results.md
    python -m experiments.caltech_results --logdir /path/to/runs

Targets: improved LeNet-5 (tinygrad_edu) >= 71% validation accuracy (aim 75%); the specified
LeNet-5's scratch and PyTorch twins within 1.5 points at the same epoch; ResNet-18 trains end to
end, with seconds per epoch beside its twin's.
"""
from __future__ import annotations

import argparse
import glob
import json
import os

from . import UsageError, report
from .common import exit_on_usage_error
from .run_record import run_status

TARGET_IMPROVED, TWIN_GAP_POINTS = 0.71, 1.5
COLUMNS = ["model", "framework", "status", "epochs done", "train acc", "val acc",
           "best val acc (epoch)", "val loss", "s / epoch", "wall s", "run"]


def load_runs(logdir: str) -> list[dict]:
    """One record per caltech_* run: its config, status and per-epoch curves."""
    runs = []
    for path in sorted(glob.glob(os.path.join(logdir, "caltech_*-*", "metrics.json"))):
        with open(path) as f:
            saved = json.load(f)
        summary, scalars = saved.get("summary", {}), saved.get("scalars", {})
        curve = {k: [v for _, v in scalars.get(k, [])] for k in
                 ("train/accuracy", "val/accuracy", "val/loss", "time/epoch_seconds")}
        if "config" not in summary or not curve["val/accuracy"]:
            continue  # not a training run, or not one epoch done yet
        runs.append({"config": summary["config"], "status": run_status(summary),
                     "curve": curve, "run": os.path.basename(os.path.dirname(path))})
    return runs


def row(r: dict) -> list:
    c, cfg = r["curve"], r["config"]
    val = c["val/accuracy"]
    best = max(range(len(val)), key=val.__getitem__)
    seconds = c["time/epoch_seconds"]
    return [cfg["model"], cfg["framework"], r["status"], f"{len(val)} / {cfg['epochs']}",
            c["train/accuracy"][-1], val[-1], f"{val[best]:.4f} ({best + 1})", c["val/loss"][-1],
            sum(seconds) / len(seconds), sum(seconds), r["run"]]


def twin_rows(runs: list[dict]) -> list[list]:
    """Per model trained in both frameworks (newest run of each): the accuracy gap at the last
    epoch both reached, and the ratio of their training seconds over those epochs."""
    newest = {(r["config"]["model"], r["config"]["framework"]): r for r in runs}
    out = []
    for model in sorted({m for m, _ in newest}):
        a, b = newest.get((model, "tinygrad_edu")), newest.get((model, "torch"))
        if a and b:
            va, vb = a["curve"]["val/accuracy"], b["curve"]["val/accuracy"]
            e = min(len(va), len(vb))
            sa, sb = a["curve"]["time/epoch_seconds"][:e], b["curve"]["time/epoch_seconds"][:e]
            out.append([model, e, va[e - 1], vb[e - 1], 100 * (va[e - 1] - vb[e - 1]),
                        sum(sa) / sum(sb)])
    return out


def targets(runs: list[dict], twins: list[list]) -> list[list]:
    improved = [r for r in runs if r["config"]["model"] == "lenet5_improved"
                and r["config"]["framework"] == "tinygrad_edu"]
    out = []
    if improved:
        acc = improved[-1]["curve"]["val/accuracy"][-1]
        out.append(["improved LeNet-5 (tinygrad_edu) val acc >= 71%", f"{acc:.4f}",
                    "met" if acc >= TARGET_IMPROVED else "not met"])
    for model, epoch, _, _, gap, _ in twins:
        if model == "lenet5":
            out.append([f"specified LeNet-5 twins within {TWIN_GAP_POINTS} points (epoch {epoch})",
                        f"{gap:+.2f} points", "met" if abs(gap) <= TWIN_GAP_POINTS else "not met"])
    return out


def run(logdir: str) -> str:
    runs = load_runs(logdir)
    if not runs:
        raise UsageError(f"no caltech_* run with a finished epoch in {logdir}/; train one with "
                         f"`python -m experiments.caltech_lenet5` first")
    twins = twin_rows(runs)
    text = "\n\n".join([
        "## Caltech-101 runs\n\n" + report.table_markdown(COLUMNS, [row(r) for r in runs]),
        "## Scratch against PyTorch twin (newest runs, same settings)\n\n" + report.table_markdown(
            ["model", "epoch", "val acc tinygrad_edu", "val acc torch", "gap (points)",
             "s/epoch ratio (scratch / torch)"], twins),
        "## Targets\n\n" + report.table_markdown(["target", "value", "status"],
                                                 targets(runs, twins)),
    ])
    report.write_text_atomic(os.path.join(logdir, "caltech_results.md"), text + "\n")
    print(text)
    return text


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", default="runs")
    args = p.parse_args(argv)
    return exit_on_usage_error(lambda: run(args.logdir))


if __name__ == "__main__":
    main()
