"""Self-contained HTML reports: SVG line charts, embedded PNG figures and tables, no plotting library."""
from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #555; text-align: center; }
img { image-rendering: pixelated; max-width: 100%; }
"""


def png_data_uri(image: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a data URI, so the report is one file."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str, xlabel: str,
               width: int = 520, height: int = 300) -> str:
    """An SVG chart of named (x, y) series with axes, ticks and a legend."""
    left, right, top, bottom = 60, 20, 30, 45
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<p>{html.escape(title)}: no data</p>"
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    x0, x1 = xs.min(), xs.max() if xs.max() > xs.min() else xs.min() + 1
    y0, y1 = ys.min(), ys.max() if ys.max() > ys.min() else ys.min() + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y):
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-size="11" font-family="sans-serif">'),
             (f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">'
             f'{html.escape(title)}</text>'),
             (f'<rect x="{left}" y="{top}" width="{width - left - right}" '
             f'height="{height - top - bottom}" fill="none" stroke="#999"/>')]
    for t in np.linspace(y0, y1, 5):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                     f'stroke="#eee"/><text x="{left - 4}" y="{sy(t) + 4:.1f}" '
                     f'text-anchor="end">{t:.4g}</text>')
    for t in np.linspace(x0, x1, 6):
        parts.append(f'<text x="{sx(t):.1f}" y="{height - bottom + 15}" '
                     f'text-anchor="middle">{t:.4g}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">'
                 f'{html.escape(xlabel)}</text>')
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                     f'stroke-width="1.6"/>')
        ly = top + 14 + 14 * i
        parts.append(f'<line x1="{width - right - 150}" x2="{width - right - 130}" y1="{ly - 4}" '
                     f'y2="{ly - 4}" stroke="{color}" stroke-width="2"/><text '
                     f'x="{width - right - 126}" y="{ly}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


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


def figure(image: np.ndarray, caption: str) -> str:
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
