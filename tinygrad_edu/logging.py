"""TensorBoard logging: a thin ``Logger`` over tensorboardX, and ``read_events`` to read runs back.

Every scalar is also kept in ``<run dir>/metrics.json`` so that scripts and tests can read results
without TensorBoard: ``{"scalars": {tag: [[step, value], ...]}, "summary": {...}, "hparams": {...}}``.
View a run with ``tensorboard --logdir runs``.

tensorboardX is imported inside the functions that use it, not at module level, and through
``load_tensorboardx``: tensorboardX imports torch when torch is installed (1 s), and tinygrad_edu
must not load PyTorch.
"""
from __future__ import annotations

import atexit
import glob
import io
import json
import os
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


def load_tensorboardx():
    """Import tensorboardX without PyTorch: its writer imports torch when torch is installed
    (1 s, and tinygrad_edu must work without it), inside a try that takes a missing torch in
    its stride. So torch is hidden during the import unless the caller already loaded it.
    Call this before the first `from tensorboardX ...` on every path."""
    if "tensorboardX" in sys.modules:
        return sys.modules["tensorboardX"]
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # importing torch now raises ImportError
    try:
        import tensorboardX
    finally:
        if hide:
            del sys.modules["torch"]
    return tensorboardX


def _array(x) -> np.ndarray:
    """The numpy array behind a Tensor, list or array."""
    return np.asarray(getattr(x, "data", x))


def _json_default(obj):
    """Let json.dump write numpy scalars and arrays."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"metrics.json: cannot store a {type(obj).__name__} ({obj!r}); "
                    f"use numbers, strings, lists or dicts")


def _write_json_atomic(path: str, obj) -> None:
    """Write ``obj`` as JSON to a temporary file, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def _new_run_dir(root: str, name: str) -> str:
    """Create and return ``root/<name>-<YYYYmmdd-HHMMSS>`` (with -2, -3... if taken)."""
    base = os.path.join(root, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(root, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"


def _hparam_value(v):
    """A value TensorBoard's hparams plugin can show: bool, number or string."""
    if isinstance(v, np.generic):
        v = v.item()
    return v if isinstance(v, (bool, int, float, str)) else str(v)


class Logger:
    """Write scalars, images, histograms, hparams and text to TensorBoard, plus metrics.json.

    ``Logger()`` writes to ``runs/run-<YYYYmmdd-HHMMSS>``; ``Logger(name="mnist")`` to
    ``runs/mnist-<...>``; ``Logger(logdir=...)`` to exactly that directory (continuing its
    metrics.json if there is one). Use as a context manager or call ``close()``; runs still open
    at interpreter exit are closed then.
    >>> with Logger(name="mnist_cnn3") as log:
    ...     log.scalar("train/loss", 0.25, step=100)
    """

    def __init__(self, logdir: str | None = None, name: str = "run", root: str = "runs"):
        if logdir is None:
            logdir = _new_run_dir(root, name)
        os.makedirs(logdir, exist_ok=True)
        self.logdir = logdir
        self.metrics_path = os.path.join(logdir, "metrics.json")
        self.history: dict[str, list[list]] = {}
        self.summary: dict = {}
        self.hparam_values: dict = {}
        if os.path.exists(self.metrics_path):
            self._load_metrics()
        SummaryWriter = load_tensorboardx().SummaryWriter

        # A unique suffix: two writers started in the same second would share a file name.
        self._writer = SummaryWriter(logdir=logdir, filename_suffix=f".{time.time_ns()}")
        self._closed = False
        atexit.register(self.close)

    def _load_metrics(self) -> None:
        """Continue an existing metrics.json instead of overwriting it."""
        try:
            with open(self.metrics_path) as f:
                saved = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"Logger: {self.metrics_path} is not valid JSON ({e}); move it away "
                             f"or pick another logdir") from e
        self.history = saved.get("scalars", {})
        self.summary = saved.get("summary", {})
        self.hparam_values = saved.get("hparams", {})

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"Logger.{what}: the logger for {self.logdir} is closed; "
                               f"create a new Logger to log more")

    def scalar(self, tag: str, value, step: int) -> None:
        """Log one number (float, numpy scalar or 1-element Tensor) under ``tag`` at ``step``."""
        self._check_open("scalar")
        a = _array(value)
        if a.size != 1:
            raise ValueError(f"Logger.scalar('{tag}'): expected a single number, got shape "
                             f"{a.shape}; use histogram() for arrays")
        value = float(a.reshape(()))
        self._writer.add_scalar(tag, value, int(step))
        self.history.setdefault(tag, []).append([int(step), value])

    def scalars(self, values: Mapping[str, object], step: int, prefix: str = "") -> None:
        """Log several scalars; ``prefix="train"`` turns ``{"loss": x}`` into ``train/loss``."""
        for name, value in values.items():
            self.scalar(f"{prefix}/{name}" if prefix else name, value, step)

    def image(self, tag: str, image, step: int) -> None:
        """Log an image: (H, W, 3) uint8, or any layout ``viz.images.to_rgb`` accepts."""
        from tinygrad_edu.viz.images import to_rgb  # viz imports matplotlib: only when used

        self._check_open("image")
        self._writer.add_image(tag, to_rgb(image), int(step), dataformats="HWC")

    @property
    def writer(self):
        """The tensorboardX SummaryWriter this Logger writes with (SummaryWriter's face uses it
        for the records tensorboardX already makes from numpy arrays)."""
        self._check_open("writer")
        return self._writer

    def histogram(self, tag: str, values, step: int, bins: int = 30) -> None:
        """Log the distribution of an array, e.g. a layer's weights or their gradients.

        Never crashes a training run: NaN and inf values are left out (with a warning saying how
        many), and values too large for a bin width (1e308) are binned without overflow.
        """
        self._check_open("histogram")
        a = _array(values).astype(np.float64).ravel()
        if a.size == 0:
            raise ValueError(f"Logger.histogram('{tag}'): got an empty array")
        finite = a[np.isfinite(a)]
        if finite.size < a.size:
            warnings.warn(f"Logger.histogram('{tag}'): {a.size - finite.size} of {a.size} values "
                          f"are NaN or inf at step {step} and were left out; training may have "
                          f"diverged (try a lower lr)", RuntimeWarning, stacklevel=2)
        if finite.size == 0:
            return
        lo, hi = float(finite.min()), float(finite.max())
        edges = 2 * np.linspace(lo / 2, hi / 2, bins + 1)   # halves: hi - lo may overflow
        counts = np.bincount(np.clip(np.searchsorted(edges, finite, side="right") - 1, 0,
                                     bins - 1), minlength=bins)
        with np.errstate(over="ignore"):
            total, squares = float(finite.sum()), float(np.square(finite).sum())
        self._writer.add_histogram_raw(tag, lo, hi, finite.size, total, squares,
                                       edges[1:].tolist(), counts.tolist(), int(step))

    def graph(self, model, *inputs) -> None:
        """Log the autograd graph of `model(*inputs)` for TensorBoard's GRAPHS tab: our own
        trace (`tinygrad_edu.viz.graph`), ops grouped by module, parameters by name."""
        self._check_open("graph")
        from tensorboardX.proto.event_pb2 import Event

        from tinygrad_edu.autograd import enable_grad
        from tinygrad_edu.viz.graph import graph

        with enable_grad():
            out = model(*inputs)
        graphdef = graph(out, params=model).to_graphdef()
        self._writer.file_writer.add_event(Event(graph_def=graphdef.SerializeToString()))

    def hparams(self, hparam_dict: Mapping[str, object], metric_dict: Mapping[str, float]) -> None:
        """Record this run's hyper-parameters and final metrics for TensorBoard's HPARAMS tab.

        Metrics are also logged as scalars at step 0: give them their own tags, e.g.
        ``{"hparam/test_accuracy": 0.99}``.
        """
        self._check_open("hparams")
        from tensorboardX.summary import hparams as hparams_summaries

        hp = {k: _hparam_value(v) for k, v in hparam_dict.items()}
        metrics = {k: float(_array(v)) for k, v in metric_dict.items()}
        for summary in hparams_summaries(hp, metrics):  # experiment, session start, session end
            self._writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.scalar(tag, value, 0)
        self.hparam_values.update(hp)

    def confusion_matrix(self, tag: str, cm_probs, class_names: Sequence[str], step: int) -> None:
        """Log a row-normalised confusion matrix as an annotated heat-map image."""
        from tinygrad_edu.viz.images import heatmap_image

        self.image(tag, heatmap_image(cm_probs, labels=class_names, title=f"{tag} (step {step})",
                                      fmt=".2f", vmin=0.0, vmax=1.0), step)

    def topk_grid(self, tag: str, images, probs, class_names: Sequence[str], step: int,
                  true_labels=None) -> None:
        """Log the top-k images of each class (``viz.plot_topk``): one row per class, captioned
        with the predicted class, its probability and, given ``true_labels`` (C, k), the truth.

        ``images``: (C, k, ...) one row of k images per class (e.g. ``x[idx]`` with ``idx`` from
        ``metrics.topk_per_class``); ``probs``: (C, k). Each image is min-max normalised.
        """
        from tinygrad_edu.viz.figures import plot_topk

        self.figure(tag, plot_topk(_array(images), _array(probs), class_names, true_labels), step)

    def figure(self, tag: str, figure, step: int) -> None:
        """Log a matplotlib Figure (e.g. from ``tinygrad_edu.viz.plot_*``) as an image."""
        from tinygrad_edu.viz.plotting import to_array

        self.image(tag, to_array(figure), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Log a string (shown in TensorBoard's TEXT tab, Markdown allowed)."""
        self._check_open("text")
        self._writer.add_text(tag, text, int(step))

    def flush(self) -> None:
        """Write pending events to disk and rewrite metrics.json."""
        self._check_open("flush")
        self._writer.flush()
        _write_json_atomic(self.metrics_path, {"scalars": self.history, "summary": self.summary,
                                               "hparams": self.hparam_values})

    def close(self) -> None:
        """Flush and close the run; calling it again does nothing."""
        if self._closed:
            return
        self.flush()
        self._writer.close()
        self._closed = True
        atexit.unregister(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Logger(logdir={self.logdir!r})"


# ---- reading event files back ---------------------------------------------------------------

@dataclass
class Events:
    """What a run directory's event files hold, each series as a list of (step, value)."""
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    images: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)  # (H, W, C)
    histograms: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)  # min, max, ...
    texts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hparams: dict[str, object] = field(default_factory=dict)


def _records(path: str):
    """Yield the payloads of a TFRecord file: [len u64][crc u32][data][crc u32], little endian.

    A truncated last record (a writer still writing) ends the file; a bad checksum raises.
    """
    load_tensorboardx()
    from tensorboardX.record_writer import masked_crc32c

    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack_from("<I", data, pos + 8)
        if masked_crc32c(header) != header_crc:
            raise ValueError(f"read_events: {path} is corrupt (bad record header at byte {pos})")
        end = pos + 12 + length + 4
        if end > len(data):
            return
        payload = data[pos + 12:end - 4]
        if masked_crc32c(payload) != struct.unpack_from("<I", data, end - 4)[0]:
            raise ValueError(f"read_events: {path} is corrupt (bad record checksum at byte {pos})")
        yield payload
        pos = end


def _add_value(events: Events, step: int, value) -> None:
    """Sort one Summary.Value into ``events`` by its kind."""
    kind = value.WhichOneof("value")
    plugin = value.metadata.plugin_data.plugin_name
    if kind == "simple_value":
        events.scalars.setdefault(value.tag, []).append((step, value.simple_value))
    elif kind == "image":
        with Image.open(io.BytesIO(value.image.encoded_image_string)) as im:
            events.images.setdefault(value.tag, []).append((step, np.asarray(im)))
    elif kind == "histo":
        h = value.histo
        stats = {"min": h.min, "max": h.max, "num": h.num, "sum": h.sum,
                 "bucket_limit": list(h.bucket_limit), "bucket": list(h.bucket)}
        events.histograms.setdefault(value.tag, []).append((step, stats))
    elif kind == "tensor" and plugin == "text":
        text = value.tensor.string_val[0].decode("utf-8")
        events.texts.setdefault(value.tag, []).append((step, text))
    elif kind == "tensor" and value.tensor.float_val:
        events.scalars.setdefault(value.tag, []).append((step, value.tensor.float_val[0]))
    elif plugin == "hparams" and value.tag == "_hparams_/session_start_info":
        from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

        data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
        for name, v in data.session_start_info.hparams.items():
            events.hparams[name] = getattr(v, v.WhichOneof("kind"))


def read_events(run_dir: str) -> Events:
    """Read the scalars, images, histograms, texts and hparams of a run's event files.

    Needs only tensorboardX (not TensorBoard). Reads ``run_dir/events.out.tfevents.*`` in name
    order (not subdirectories). Example: ``read_events(log.logdir).scalars["train/loss"]``.
    """
    paths = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    if not paths:
        raise FileNotFoundError(f"read_events: no events.out.tfevents.* file in {run_dir}; "
                                f"is it a run directory, and was the Logger flushed or closed?")
    load_tensorboardx()
    from tensorboardX.proto.event_pb2 import Event

    events = Events()
    for path in paths:
        for payload in _records(path):
            event = Event.FromString(payload)
            for value in event.summary.value:
                _add_value(events, event.step, value)
    return events
