"""Summary statistics of one array, as the graph shows them: shape, dtype, min / mean / max,
L2 norm, a tiny histogram and the first few values."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BARS = "▁▂▃▄▅▆▇█"  # one character per histogram bin, tallest bin full height
BINS = 8
PREVIEW = 16  # values shown in full; enough for every element of a small teaching example
HIST_SAMPLE = 1 << 16


@dataclass(frozen=True)
class Stats:
    """What is known about an array; `values` holds its first PREVIEW elements (flattened)."""

    shape: tuple
    dtype: str
    min: float
    mean: float
    max: float
    norm: float
    hist: tuple
    values: tuple

    @classmethod
    def of(cls, array) -> Stats:
        """Statistics of a numpy array (any dtype; booleans and integers are read as floats).
        Sums accumulate in float64; the histogram counts at most HIST_SAMPLE evenly spaced
        values (a ResNet-18 layer's 2.4M weights: 64 ms -> 4 ms per array)."""
        a = np.asarray(array)
        flat = a.reshape(-1)
        if flat.dtype.kind not in "f":
            flat = flat.astype(np.float64)
        if not np.isfinite(flat).all():
            flat = flat[np.isfinite(flat)]
        if flat.size:
            lo, hi = float(flat.min()), float(flat.max())
            sample = flat[::max(1, flat.size // HIST_SAMPLE)]
            hist = np.histogram(sample, bins=BINS, range=(lo, hi) if hi > lo else None)[0]
            mean = float(flat.mean(dtype=np.float64))
            norm = float(np.sqrt(np.einsum("i,i->", flat, flat, dtype=np.float64)))
        else:
            lo = hi = mean = norm = float("nan")
            hist = np.zeros(BINS, dtype=int)
        values = a.reshape(-1)[:PREVIEW].astype(np.float64)
        return cls(tuple(a.shape), str(a.dtype), lo, mean, hi, norm,
                   tuple(int(n) for n in hist), tuple(float(v) for v in values))

    @property
    def sparkline(self) -> str:
        """The histogram as one line of block characters, e.g. '▁▃▇█▅▂▁▁'."""
        top = max(self.hist) or 1
        return "".join(BARS[round(n / top * (len(BARS) - 1))] for n in self.hist)

    def summary(self) -> str:
        """'min -0.1 mean 0.002 max 0.1', three significant digits each."""
        return f"min {self.min:.3g} mean {self.mean:.3g} max {self.max:.3g}"

    def to_dict(self) -> dict:
        """Plain types only, for the HTML page's JSON."""
        d = asdict(self)
        d["shape"], d["hist"], d["values"] = list(self.shape), list(self.hist), list(self.values)
        return d


def shape_text(shape: tuple) -> str:
    """'(4, 3)' for a tuple shape, '()' for a scalar."""
    return "(" + ", ".join(str(n) for n in shape) + ")"
