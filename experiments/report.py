"""Self-contained reports of a run: HTML pages with the figures embedded, and the same figures
as one PDF. Every chart is a matplotlib figure from `tinygrad_edu.viz` (curves inline as SVG, so
they stay sharp and their text searchable; pictures as PNG data URIs), so report.html shows what
TensorBoard and the notebooks show.

    sections = [("Summary", table_html(["", ""], facts)),
                ("Learning curves", figure(viz.plot_learning_curves(history), "per epoch"))]
    write_text_atomic("report.html", page("MNIST cnn3", sections))
    write_pdf("report.pdf", "MNIST cnn3", facts, [("per epoch", viz.plot_learning_curves(h))])
"""
from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from PIL import Image

from tinygrad_edu import viz

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #555; text-align: center; }
img, svg { max-width: 100%; height: auto; }
"""


def png_data_uri(image) -> str:
    """A Figure, or an (H, W, 3) uint8 image, as a PNG data URI, so the report is one file."""
    if isinstance(image, Figure):
        data = viz.to_png(image)
    else:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def svg_markup(fig: Figure) -> str:
    """`fig` as inline SVG markup, its text kept as text (searchable, selectable)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", facecolor="white")
    text = buf.getvalue()
    return text[text.index("<svg"):]  # without the XML prolog and doctype


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str, xlabel: str,
               ylabel: str | None = None) -> str:
    """A chart of named (x, y) series (`viz.plot_lines`) as inline SVG, 560 px wide so that
    two fit side by side; the y axis is titled `ylabel`, by default the chart's title."""
    fig = viz.plot_lines(series, title, xlabel, title if ylabel is None else ylabel,
                         width=5.6, height=3.4)
    return svg_markup(fig)


def table_html(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def table_markdown(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def f_table(scores: dict, names: Sequence[str]) -> tuple[list, list]:
    """Precision, recall, F1 and support per class (metrics.precision_recall_f1's `scores`),
    then the macro and weighted averages: the one F-score table of every report."""
    header = ["class", "precision", "recall", "F1", "support"]
    rows = [[names[c], float(scores["precision"][c]), float(scores["recall"][c]),
             float(scores["f1"][c]), int(scores["support"][c])] for c in range(len(names))]
    for avg in ("macro", "weighted"):
        a = scores[avg]
        rows.append([avg, float(a["precision"]), float(a["recall"]), float(a["f1"]), ""])
    return header, rows


def curves(history: Mapping) -> str:
    """Loss and accuracy per epoch, train against validation, as two charts side by side."""
    epochs = range(1, len(history["train_loss"]) + 1)
    out = []
    for metric, title in (("loss", "cross-entropy loss"), ("acc", "accuracy")):
        series = {split: list(zip(epochs, history[f"{split}_{metric}"]))
                  for split in ("train", "val")}
        out.append(line_chart(series, title, "epoch"))
    return f"<div class='row'>{''.join(out)}</div>"


def time_facts(timing: Mapping) -> list[list]:
    """The Summary rows of a run's times (runner's Result.timing())."""
    return [["seconds per epoch", timing["seconds_per_epoch"]],
            ["ms per iteration", timing["ms_per_iter"]], ["wall time (s)", timing["wall_seconds"]]]


def figure(image, caption: str) -> str:
    """A captioned figure: a matplotlib Figure or an (H, W, 3) uint8 image, embedded as PNG."""
    return (f'<figure><img src="{png_data_uri(image)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A whole HTML document from (heading, inner html) sections."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{inner}" for h, inner in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            f"</body></html>")


def write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# ---- PDF -------------------------------------------------------------------------------------

def _summary_page(title: str, facts: Sequence[Sequence]) -> Figure:
    """An A4 page: the title and the (name, value) facts of the run as a table."""
    fig = viz.new_figure(8.27, 11.69)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title, fontsize=16, loc="left")
    if facts:
        table = ax.table(cellText=[[str(k), _fmt(v)] for k, v in facts], loc="upper left",
                         colWidths=[0.45, 0.45], cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(10)
        table.scale(1.0, 1.4)
    return fig


def write_pdf(path: str, title: str, facts: Sequence[Sequence],
              figures: Sequence[tuple[str, Figure]]) -> None:
    """Write a run as one PDF (matplotlib's PdfPages): a first page with `title` and the
    `facts` table ([name, value] rows, as in report.html's Summary), then one page per
    (caption, Figure), the caption added under the figure (as its `supxlabel`). Written
    atomically: a failed run leaves no half-written PDF."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".pdf.tmp")
    os.close(fd)
    try:
        with PdfPages(tmp, metadata={"Title": title}) as pdf:
            pdf.savefig(_summary_page(title, facts))
            for caption, fig in figures:
                fig.supxlabel(caption, fontsize=10, color="#555")
                pdf.savefig(fig, facecolor="white")
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
