"""Watch a training run in a notebook: learning curves redrawn after every epoch, and a bar.

    live = viz.LiveCurves(epochs=5, title="CNN3")
    history = tg.train.fit(model, opt, train, val, epochs=5, progress=False, on_epoch_end=live)
    live.close()

`LiveCurves` is an `on_epoch_end` callback for `tg.train.fit` (it receives the History so far).
In Jupyter the figure is replaced in place and the bar is a notebook widget (tqdm.auto); outside
one the bar is printed on stderr and the figure is only kept in `live.figure`.
"""
from __future__ import annotations

from tqdm.auto import tqdm

from .figures import plot_learning_curves
from .plotting import show


class LiveCurves:
    """An `on_epoch_end` callback that redraws `plot_learning_curves` and advances a bar."""

    def __init__(self, epochs: int, title: str = "", val_label: str = "validation"):
        self.title, self.val_label = title, val_label
        self.bar = tqdm(total=epochs, desc=title or "training", unit="epoch")
        self.handle = None
        self.figure = None

    def __call__(self, history) -> None:
        h = history.as_dict() if hasattr(history, "as_dict") else history
        self.figure = plot_learning_curves(h, self.title, self.val_label)
        self.handle = show(self.figure, self.handle)
        shown = {"loss": h["train_loss"][-1]}
        if h.get("val_loss"):
            shown.update(val_loss=h["val_loss"][-1], val_acc=h["val_acc"][-1])
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
        self.bar.update(len(h["train_loss"]) - self.bar.n)

    def close(self) -> None:
        """Close the bar (the last figure stays displayed)."""
        self.bar.close()
