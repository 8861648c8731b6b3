"""matplotlib figures without pyplot: made on the Agg canvas, so they draw headless.

Every figure function of `tinygrad_edu.viz` returns a `matplotlib.figure.Figure` built here. A
Figure made this way belongs to no GUI window and no pyplot state, so it works on a server, in a
test and in a notebook alike, and is freed like any Python object. Turn it into what each
consumer wants:

    fig = viz.plot_confusion_matrix(cm, names)
    viz.to_array(fig)             # (H, W, 3) uint8, for TensorBoard (Logger.image) and PNGs
    viz.save_figure(fig, "cm.png")   # .png, .pdf or .svg, written atomically
    viz.show(fig)                 # in a notebook: the figure below the cell
"""
from __future__ import annotations

import io
import os
import tempfile

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100  # pixels per inch of PNGs and arrays: a 6.4 x 4.8 in figure is 640 x 480


def new_figure(width: float, height: float) -> Figure:
    """An empty Figure of `width` x `height` inches on an Agg canvas, laid out by matplotlib's
    constrained layout (titles, labels, legends and colour bars never overlap)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_array(fig: Figure, dpi: int = DPI) -> np.ndarray:
    """Render `fig` to an (H, W, 3) uint8 RGB array (white background)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=dpi, facecolor="white")
    width = round(fig.get_size_inches()[0] * dpi)
    rgba = np.frombuffer(buf.getvalue(), np.uint8)
    return rgba.reshape(-1, width, 4)[:, :, :3].copy()  # (H, W, 4) -> (H, W, 3)


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The PNG file of `fig` as bytes (for data URIs and notebooks)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DPI) -> None:
    """Write `fig` to `path` (format from the extension: .png, .pdf, .svg) atomically."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=f"{suffix}.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=suffix.lstrip(".") or "png", dpi=dpi, facecolor="white")
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def show(fig: Figure) -> None:
    """Display `fig` below the notebook cell, as a PNG; does nothing outside IPython."""
    try:
        from IPython.display import Image, display
    except ImportError:
        return
    display(Image(data=to_png(fig)))
