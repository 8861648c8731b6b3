"""A finished (or interrupted) sweep as tables: results.md, results.html and results.csv, one row
per trial sorted by the sweep's metric, best first; and each trial's hyper-parameters and final
metrics in its run directory for TensorBoard's HPARAMS tab."""
from __future__ import annotations

import csv
import html
import io
import json
import math
import os

from tinygrad_edu.logging import Logger

from .. import report
from ..run_record import metrics_lock
from .config import SweepConfig, trial_name

STANDARD = ("val_loss", "val_acc", "train_loss", "train_acc")
ENDED = ("finished", "stopped_early", "diverged")  # a --resume does not train these again


def trial_rows(trials: list, cfg: SweepConfig, trials_dir: str) -> list[dict]:
    """One dict per Tune trial: its name, searched parameters, last metrics, epochs, wall time,
    status, retries, error and run directory; sorted by cfg.metric, best first."""
    rows = []
    for trial in trials:
        last = trial.last_result or {}
        name = trial_name(trial)
        rows.append({
            "trial": name,
            "params": {k: trial.config.get(k) for k in cfg.searched()},
            "config": dict(trial.config),
            "metrics": {k: float(v) for k, v in last.items()  # see trial.epoch_metrics
                        if k.startswith(("train_", "val_")) and isinstance(v, (int, float))},
            "epochs": int(last.get("epoch", 0)),
            "wall_seconds": float(last.get("time_total_s", math.nan)),
            "status": status(trial, last, cfg.epochs),
            "retries": trial.num_failures,
            "resumed_from_epoch": last.get("resumed_from_epoch"),
            "error": _error_line(trial),
            "run_dir": os.path.join(trials_dir, name),
        })
    return sort_rows(rows, cfg.metric, cfg.mode)


def status(trial, last: dict, budget: int) -> str:
    """finished, stopped_early (by ASHA: fewer epochs than the budget), diverged, failed, or
    not finished (an interrupted sweep: continue it with --resume)."""
    if trial.status == "ERROR":
        return "failed"
    if trial.status != "TERMINATED":
        return "not finished"
    if last.get("diverged"):
        return "diverged"
    return "finished" if last.get("epoch", 0) >= budget else "stopped_early"


def _error_line(trial) -> str:
    """The last line of a failed trial's traceback ('ValueError: ...'), or ''."""
    if trial.status != "ERROR":
        return ""
    error = trial.get_error()
    lines = [line for line in str(error or "unknown error").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def sort_rows(rows: list[dict], metric: str, mode: str) -> list[dict]:
    """Best first by `metric` (min or max); trials without a finite value last."""
    def key(row):
        value = row["metrics"].get(metric, math.nan)
        if not math.isfinite(value):
            return (1, 0.0)
        return (0, value if mode == "min" else -value)
    return sorted(rows, key=key)


def metric_names(rows: list[dict], cfg: SweepConfig) -> list[str]:
    """The metric columns: the sweep's metric, the validation ones, the rest, train last."""
    seen = {k for row in rows for k in row["metrics"]}
    extra = sorted(seen - set(STANDARD) - {cfg.metric})
    ordered = [cfg.metric, "val_loss", "val_acc", *extra, "train_loss", "train_acc"]
    return [k for i, k in enumerate(ordered) if k in seen and k not in ordered[:i]]


def table(rows: list[dict], cfg: SweepConfig) -> tuple[list[str], list[list]]:
    """(header, rows) of the results table; numbers stay numbers, a metric a trial never
    reported is None."""
    metrics = metric_names(rows, cfg)
    header = ["rank", "trial", *cfg.searched(), *metrics, "epochs", "wall s", "status",
              "retries"]
    body = [[i + 1, row["trial"], *row["params"].values(),
             *(row["metrics"].get(m) for m in metrics), row["epochs"],
             row["wall_seconds"], row["status"], row["retries"]] for i, row in enumerate(rows)]
    return header, body


def _shown(value):
    """A value as the Markdown and HTML tables show it: parameters with 4 significant digits,
    nothing for a metric never reported."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, (int, str)) else json.dumps(value)


def _shown_row(row: list, n_params: int) -> list:
    """Parameters as _shown, metrics as report.table_* show them, wall time to 0.1 s."""
    params, rest = row[2:2 + n_params], row[2 + n_params:]
    metrics, (epochs, wall, *tail) = rest[:-4], rest[-4:]
    wall = f"{wall:.1f}" if math.isfinite(wall) else ""
    return [*row[:2], *map(_shown, params), *("" if m is None else m for m in metrics), epochs,
            wall, *tail]


# ---- writing ---------------------------------------------------------------------------------

def write_results(rows: list[dict], cfg: SweepConfig, out: str, settings: dict) -> dict:
    """results.md, results.html and results.csv in `out`; returns their paths."""
    header, body = table(rows, cfg)
    shown = [_shown_row(r, len(cfg.searched())) for r in body]
    paths = {ext: os.path.join(out, f"results.{ext}") for ext in ("md", "html", "csv")}
    report.write_text_atomic(paths["md"], markdown(rows, cfg, settings, header, shown))
    report.write_text_atomic(paths["html"], html_page(rows, cfg, settings, header, shown))
    report.write_text_atomic(paths["csv"], csv_text(header, body))
    return paths


def headline(rows: list[dict], cfg: SweepConfig, settings: dict) -> str:
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    done = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"{len(rows)} trials of `{_experiment_name(cfg)}` ({done}), at most {cfg.epochs} "
            f"epochs each, sorted by {cfg.metric} ({cfg.mode}imum first). Scheduler "
            f"{settings['scheduler']}, {settings['cpus_per_trial']} CPU(s) per trial, "
            f"max_failures {cfg.max_failures}; wall time {settings['wall_seconds']:.1f} s.")


def _experiment_name(cfg: SweepConfig) -> str:
    e = cfg.experiment
    return e if isinstance(e, str) else f"{e.__module__}:{e.__qualname__}"


def best_config(rows: list[dict]) -> str:
    return json.dumps(rows[0]["config"], default=str) if rows else "{}"


def failures(rows: list[dict]) -> list[list]:
    return [[row["trial"], row["retries"], row["error"]] for row in rows if row["error"]]


def markdown(rows, cfg, settings, header, shown) -> str:
    blocks = [f"# Sweep {cfg.name}", cfg.description.strip(), headline(rows, cfg, settings),
              report.table_markdown(header, shown),
              f"Best configuration: `{best_config(rows)}`"]
    if failures(rows):
        blocks += ["## Failed trials",
                   report.table_markdown(["trial", "retries", "last error"], failures(rows))]
    blocks.append(f"Each trial's run directory is `{settings['trials_dir']}/<trial>`; compare "
                  f"them with `tensorboard --logdir {settings['trials_dir']}` (HPARAMS tab).")
    return "\n\n".join(b for b in blocks if b) + "\n"


def html_page(rows, cfg, settings, header, shown) -> str:
    summary = (f"<p>{html.escape(cfg.description)}</p>"
               f"<p>{html.escape(headline(rows, cfg, settings))}</p>")
    sections = [("Summary", summary),
                ("Trials, best first", report.table_html(header, shown)),
                ("Best configuration", f"<pre>{html.escape(best_config(rows))}</pre>"),
                (f"{cfg.metric} per epoch", curves(rows, cfg.metric))]
    if failures(rows):
        sections.append(("Failed trials",
                         report.table_html(["trial", "retries", "last error"], failures(rows))))
    return report.page(f"Sweep {cfg.name}", sections)


def curves(rows: list[dict], metric: str) -> str:
    """The metric of every trial per epoch, read from the trials' metrics.json."""
    tag = {"val_loss": "val/loss", "val_acc": "val/accuracy", "train_loss": "train/loss",
           "train_acc": "train/accuracy"}.get(metric, metric.replace("_", "/", 1))
    series = {}
    for row in rows:
        path = os.path.join(row["run_dir"], "metrics.json")
        if os.path.exists(path):
            with open(path) as f:
                points = json.load(f).get("scalars", {}).get(tag, [])
            series[row["trial"]] = sorted(dict(map(tuple, points)).items())
    return report.line_chart(series, f"{metric} of each trial", "epoch")


def csv_text(header: list[str], body: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[json.dumps(v) if isinstance(v, (list, dict)) else v for v in row]
                      for row in body])
    return buffer.getvalue()


def write_hparams(rows: list[dict], cfg: SweepConfig) -> None:
    """Each trial's searched parameters and final metrics (tags hparam/<metric>) in its run
    directory, for TensorBoard's HPARAMS tab, once it has ended for good (ENDED: a failed
    trial is retried by --resume); one record, also across resumes. Its status and rank go
    into its metrics.json ("interrupted" while the sweep is not finished)."""
    for rank, row in enumerate(rows, start=1):
        if not os.path.isdir(row["run_dir"]):  # never started, or on another machine's disk
            continue
        with metrics_lock(row["run_dir"]), Logger(logdir=row["run_dir"]) as logger:
            if row["status"] in ENDED and not logger.hparam_values:
                values = {f"hparam/{k}": v for k, v in row["metrics"].items()
                          if math.isfinite(v)}
                logger.hparams(row["params"] or row["config"],
                               values | {"hparam/epochs": row["epochs"]})
            logger.summary["sweep"] = {"rank": rank, "status": row["status"],
                                       "retries": row["retries"], "epochs": row["epochs"]}
            logger.summary["status"] = "interrupted" if row["status"] == "not finished" else \
                row["status"]
