"""`torch.utils.tensorboard.SummaryWriter`'s face over `tinygrad_edu.logging.Logger`.

It takes our Tensors (and numpy arrays, numbers, matplotlib figures) wherever torch's takes
torch tensors; scalars also go to the run's metrics.json (Logger's). Histograms never crash
logging (NaN / inf left out with a warning). After `close()` the next `add_*` reopens the run
in a new event file, as torch's writer does, and never overwrites the earlier one (tensorboardX
names files by the second; the PyTorch TensorBoard tutorial, which closes its writer after each
PR curve, lost 9 of its 10 curves that way). `add_graph` draws our own autograd trace.

    from tinygrad_edu.utils.tensorboard import SummaryWriter
    writer = SummaryWriter("runs/fashion_mnist_experiment_1")
    writer.add_scalar("training loss", loss.item(), step)
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import datetime

import numpy as np

from ..logging import Logger

__all__ = ["SummaryWriter"]


def _np(x):
    """A numpy array (or number) for tensorboardX: Tensors give their data, lists are stacked."""
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "data") and not isinstance(x[0], str):
        return np.stack([np.asarray(getattr(v, "data", v)) for v in x])
    data = getattr(x, "data", x)
    return np.asarray(data) if not isinstance(data, (int, float)) else data


def _step(global_step) -> int:
    return 0 if global_step is None else int(global_step)


class SummaryWriter:
    """Log to TensorBoard with torch's method names and arguments (CPU, our Tensors).

    `log_dir` None gives runs/<Mon>DD_HH-MM-SS_<host><comment>, as torch does.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, comment: str = "",
                 purge_step: int | None = None, max_queue: int = 10, flush_secs: int = 120,
                 filename_suffix: str = ""):
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = os.fspath(log_dir)
        self._logger: Logger | None = None
        self._subruns: dict[str, Logger] = {}
        self._open()

    def _open(self) -> Logger:
        """The run's Logger, reopened (a new event file) after close()."""
        if self._logger is None:
            self._logger = Logger(logdir=self.log_dir)
        return self._logger

    def get_logdir(self) -> str:
        return self.log_dir

    # ------------------------------------------------------------ records
    def add_scalar(self, tag: str, scalar_value, global_step=None, walltime=None,
                   new_style: bool = False, double_precision: bool = False) -> None:
        self._open().scalar(tag, _np(scalar_value), _step(global_step))

    def add_scalars(self, main_tag: str, tag_scalar_dict: Mapping, global_step=None,
                    walltime=None) -> None:
        """One chart with several curves: each key is a sub-run <log_dir>/<main_tag>_<key>
        holding the scalar `main_tag`, as in torch."""
        self._open()
        for key, value in tag_scalar_dict.items():
            run = os.path.join(self.log_dir, f"{main_tag.replace('/', '_')}_{key}")
            if run not in self._subruns:
                self._subruns[run] = Logger(logdir=run)
            self._subruns[run].scalar(main_tag, _np(value), _step(global_step))

    def add_histogram(self, tag: str, values, global_step=None, bins="tensorflow",
                      walltime=None, max_bins=None) -> None:
        self._open().histogram(tag, _np(values), _step(global_step))

    def add_image(self, tag: str, img_tensor, global_step=None, walltime=None,
                  dataformats: str = "CHW") -> None:
        """One image: floats in [0, 1] or uint8, (C, H, W) unless `dataformats` says otherwise."""
        self._open().writer.add_image(tag, _np(img_tensor), _step(global_step), walltime,
                                      dataformats=dataformats)

    def add_images(self, tag: str, img_tensor, global_step=None, walltime=None,
                   dataformats: str = "NCHW") -> None:
        self._open().writer.add_images(tag, _np(img_tensor), _step(global_step), walltime,
                                       dataformats=dataformats)

    def add_figure(self, tag: str, figure, global_step=None, close: bool = True,
                   walltime=None) -> None:
        """A matplotlib figure (or a list of them) rendered as an image."""
        self._open().writer.add_figure(tag, figure, _step(global_step), close, walltime)

    def add_text(self, tag: str, text_string: str, global_step=None, walltime=None) -> None:
        self._open().text(tag, text_string, _step(global_step))

    def add_pr_curve(self, tag: str, labels, predictions, global_step=None,
                     num_thresholds: int = 127, weights=None, walltime=None) -> None:
        """Precision-recall curve of binary `labels` against `predictions` in [0, 1]."""
        self._open().writer.add_pr_curve(tag, _np(labels), _np(predictions), _step(global_step),
                                         num_thresholds, None if weights is None else _np(weights),
                                         walltime)

    def add_embedding(self, mat, metadata=None, label_img=None, global_step=None,
                      tag: str = "default", metadata_header=None) -> None:
        """Points (N, D) for the PROJECTOR tab, labelled by `metadata`, with (N, C, H, W)
        thumbnails `label_img`."""
        self._open().writer.add_embedding(_np(mat), metadata,
                                          None if label_img is None else _np(label_img),
                                          _step(global_step), tag, metadata_header)

    def add_hparams(self, hparam_dict: Mapping, metric_dict: Mapping,
                    hparam_domain_discrete=None, run_name: str | None = None,
                    global_step=None) -> None:
        """Hyper-parameters and metrics for the HPARAMS tab, in a sub-run as torch does."""
        metrics = {k: float(np.asarray(_np(v))) for k, v in metric_dict.items()}
        self._open().writer.add_hparams(dict(hparam_dict), metrics, run_name, global_step)

    def add_graph(self, model, input_to_model=None, verbose: bool = False,
                  use_strict_trace: bool = True) -> None:
        """The autograd graph of `model(input_to_model)` (a tuple is several inputs)."""
        inputs = input_to_model if isinstance(input_to_model, (tuple, list)) else \
            (input_to_model,)
        self._open().graph(model, *inputs)

    # ------------------------------------------------------------ lifetime
    def flush(self) -> None:
        for log in [self._logger, *self._subruns.values()]:
            if log is not None:
                log.flush()

    def close(self) -> None:
        """Flush and close the event file; a later add_* opens a new one in the same run."""
        for log in [self._logger, *self._subruns.values()]:
            if log is not None:
                log.close()
        self._logger, self._subruns = None, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SummaryWriter(log_dir={self.log_dir!r})"
