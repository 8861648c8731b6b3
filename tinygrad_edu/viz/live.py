"""Watch a training run in a notebook: a progress bar and the learning curves, redrawn after
every epoch.

    live = viz.LiveCurves(epochs=5, title="CNN3")
    history = tg.train.fit(model, opt, train, val, epochs=5, progress=False, on_epoch_end=live)

`LiveCurves` is an `on_epoch_end` callback for `tg.train.fit` (it receives the History so far).
In Jupyter both outputs are replaced in place, so the saved notebook (and its HTML) keeps the
final bar and curves; outside a notebook it prints one line per epoch.
"""
from __future__ import annotations

import html
import math
import time

from .figures import plot_learning_curves
from .plotting import to_png


def _progress_line(epoch: int, epochs: int, h: dict, seconds: float) -> str:
    """'epoch 3/5  loss 0.1234  acc 0.9700  val_loss 0.2345  val_acc 0.9600  12 s'."""
    shown = [f"epoch {epoch}/{epochs}"]
    for key, name in (("train_loss", "loss"), ("train_acc", "acc"), ("val_loss", "val_loss"),
                      ("val_acc", "val_acc")):
        if h.get(key) and math.isfinite(h[key][-1]):  # NaN accuracy: targets are not classes
            shown.append(f"{name} {h[key][-1]:.4f}")
    return "  ".join(shown + [f"{seconds:.0f} s"])


class LiveCurves:
    """An `on_epoch_end` callback: a progress bar over the epochs and `plot_learning_curves`."""

    def __init__(self, epochs: int, title: str = "", val_label: str = "validation"):
        self.epochs, self.title, self.val_label = epochs, title, val_label
        self.start = time.perf_counter()
        self.figure = None
        try:
            from IPython import get_ipython
            from IPython.display import HTML, Image, display
        except ImportError:
            self.display = None
        else:
            self.display = (HTML, Image) if get_ipython() is not None else None
        if self.display is not None:
            self.bar = display(self._bar(0, "starting"), display_id=True)
            self.plot = display(HTML(""), display_id=True)

    def _bar(self, epoch: int, text: str):
        """An HTML <progress> bar with the title and the last epoch's numbers."""
        label = html.escape(f"{self.title}: {text}" if self.title else text)
        return self.display[0](f'<progress value="{epoch}" max="{self.epochs}" '
                               f'style="width: 20em"></progress> <code>{label}</code>')

    def __call__(self, history) -> None:
        h = history.as_dict() if hasattr(history, "as_dict") else history
        epoch = len(h["train_loss"])
        line = _progress_line(epoch, self.epochs, h, time.perf_counter() - self.start)
        self.figure = plot_learning_curves(h, self.title, self.val_label)
        if self.display is None:
            print(f"{self.title}: {line}" if self.title else line, flush=True)
            return
        self.bar.update(self._bar(epoch, line))
        self.plot.update(self.display[1](data=to_png(self.figure)))
