"""Conv2d and max_pool2d forward+backward at the 3-layer MNIST CNN's shapes: tinygrad_edu vs a
plain-NumPy im2col implementation vs PyTorch CPU (when installed), plus Numba's compile time.

    python -m benchmarks.kernels [--repeats 15] [--out benchmarks/results/kernels.json]

Implementations are timed alternately inside each repeat (so load from other processes hits all
of them alike), after one warm-up call each; the table shows medians and ratios. The first conv
layer computes no input gradient in any implementation, as in a real network.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_edu
from tinygrad_edu.ops_cnn import conv2d, max_pool2d
from tinygrad_edu.tensor import Tensor

CONV_LAYERS = [(1, 32, 28), (32, 64, 14), (64, 128, 7)]  # (in_channels, out_channels, H = W)
POOL_LAYERS = [(32, 28), (64, 14), (128, 7)]  # (channels, H = W), 2x2 pools after each conv


# ------------------------------------------------------------------ plain NumPy baseline
def numpy_im2col(x, k: int, stride: int, pad: int):
    """(N, C, H, W) -> (N*OH*OW, C*k*k), DeZero/CS231n style: one strided slice per kernel tap."""
    N, C, H, W = x.shape
    OH, OW = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    col = np.empty((N, C, k, k, OH, OW), x.dtype)
    for i in range(k):
        for j in range(k):
            col[:, :, i, j] = xp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * k * k), (OH, OW)


def numpy_col2im(col, shape, k: int, stride: int, pad: int, out_hw):
    """Adjoint of numpy_im2col: (N*OH*OW, C*k*k) -> (N, C, H, W)."""
    N, C, H, W = shape
    OH, OW = out_hw
    col = col.reshape(N, OH, OW, C, k, k).transpose(0, 3, 4, 5, 1, 2)  # (N, C, k, k, OH, OW)
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), col.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + stride * OH:stride, j:j + stride * OW:stride] += col[:, :, i, j]
    return xp[:, :, pad:H + pad, pad:W + pad]


def numpy_conv2d_step(x, w, b, gy, need_gx: bool):
    """Forward and backward of a 3x3 padding-1 convolution with plain NumPy."""
    OC = w.shape[0]
    col, (OH, OW) = numpy_im2col(x, 3, 1, 1)  # (N*L, C*9)
    y = (col @ w.reshape(OC, -1).T + b).reshape(x.shape[0], OH, OW, OC).transpose(0, 3, 1, 2)
    gy2 = gy.transpose(0, 2, 3, 1).reshape(-1, OC)  # (N*L, OC)
    gw, gb = (gy2.T @ col).reshape(w.shape), gy2.sum(axis=0)
    gx = numpy_col2im(gy2 @ w.reshape(OC, -1), x.shape, 3, 1, 1, (OH, OW)) if need_gx else None
    return y, gx, gw, gb


def numpy_max_pool2d_step(x, gy):
    """Forward and backward of a 2x2 stride-2 max pool with plain NumPy (argmax over im2col)."""
    N, C, H, W = x.shape
    col, (OH, OW) = numpy_im2col(x.reshape(N * C, 1, H, W), 2, 2, 0)  # (N*C*L, 4)
    arg = col.argmax(axis=1)
    y = col[np.arange(col.shape[0]), arg].reshape(N, C, OH, OW)
    gcol = np.zeros_like(col)
    gcol[np.arange(col.shape[0]), arg] = gy.reshape(-1)
    gx = numpy_col2im(gcol, (N * C, 1, H, W), 2, 2, 0, (OH, OW)).reshape(N, C, H, W)
    return y, gx


# ------------------------------------------------------------------ one case per op and shape
def conv_case(n: int, cin: int, cout: int, hw: int, torch):
    """{implementation: zero-argument callable running forward + backward} for one conv layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cin, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((cout, cin, 3, 3)) * 0.1).astype(np.float32)
    b = np.zeros(cout, np.float32)
    gy = rng.standard_normal((n, cout, hw, hw)).astype(np.float32)
    need_gx = cin > 1  # the first layer's input is the image
    X = Tensor(x, requires_grad=need_gx)
    Wt, B = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)

    def ours():
        X.grad = Wt.grad = B.grad = None
        conv2d(X, Wt, B, padding=1).backward(gy)

    cases = {"tinygrad_edu": ours, "numpy": lambda: numpy_conv2d_step(x, w, b, gy, need_gx)}
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_(need_gx)
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        gyt = torch.from_numpy(gy)

        def theirs():
            xt.grad = wt.grad = bt.grad = None
            torch.nn.functional.conv2d(xt, wt, bt, padding=1).backward(gyt)

        cases["torch"] = theirs
    return cases


def pool_case(n: int, c: int, hw: int, torch):
    """{implementation: callable} for one 2x2 max pool, on ReLU-like input (many zero ties)."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((n, c, hw, hw)), 0).astype(np.float32)
    gy = rng.standard_normal((n, c, hw // 2, hw // 2)).astype(np.float32)
    X = Tensor(x, requires_grad=True)

    def ours():
        X.grad = None
        max_pool2d(X, 2).backward(gy)

    cases = {"tinygrad_edu": ours, "numpy": lambda: numpy_max_pool2d_step(x, gy)}
    if torch is not None:
        xt, gyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(gy)

        def theirs():
            xt.grad = None
            torch.nn.functional.max_pool2d(xt, 2).backward(gyt)

        cases["torch"] = theirs
    return cases


def time_alternately(cases: dict, repeats: int) -> tuple[dict, dict]:
    """(median, min) milliseconds per implementation, each repeat running every one once. The
    table shows medians; minima are kept in the JSON as the less load-sensitive witness."""
    for fn in cases.values():
        fn()  # warm-up: Numba compile or cache load, allocator, BLAS threads
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return ({name: float(np.median(t)) for name, t in times.items()},
            {name: float(np.min(t)) for name, t in times.items()})


# ------------------------------------------------------------------ Numba start-up
_FIRST_CALLS = """
import time
start = time.perf_counter()
import numpy as np
from tinygrad_edu.ops_cnn import avg_pool2d, conv2d, max_pool2d
from tinygrad_edu.tensor import Tensor
imported = time.perf_counter()
x = Tensor(np.ones((2, 3, 8, 8), np.float32), requires_grad=True)
w = Tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
y = conv2d(x, w, padding=1)
(max_pool2d(y, 2).sum() + avg_pool2d(y, 2).sum()).backward()
print(imported - start, time.perf_counter() - imported)
"""


def numba_start_times() -> dict:
    """Seconds to import ops_cnn and run the first float32 conv2d, max_pool2d and avg_pool2d
    forward and backward (every kernel a training step uses), in a fresh process:
    cold (empty NUMBA_CACHE_DIR, so everything compiles) then warm (loaded from that cache)."""
    root = Path(__file__).resolve().parent.parent
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(root)}
        for label in ("cold", "warm"):
            proc = subprocess.run([sys.executable, "-c", _FIRST_CALLS], env=env, cwd=root,
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"benchmarks.kernels: the {label} Numba start-up probe "
                                   f"failed:\n{proc.stderr}")
            out = proc.stdout.split()
            result[label] = {"import_s": float(out[0]), "first_calls_s": float(out[1])}
    return result


# ------------------------------------------------------------------ report
def run(batch_sizes, repeats: int, torch) -> list[dict]:
    rows = []
    for n in batch_sizes:
        for cin, cout, hw in CONV_LAYERS:
            ms, fastest = time_alternately(conv_case(n, cin, cout, hw, torch), repeats)
            rows.append({"op": "conv2d", "shape": f"{cin}->{cout} {hw}x{hw}", "batch": n, **ms,
                         "min_ms": fastest})
        for c, hw in POOL_LAYERS:
            ms, fastest = time_alternately(pool_case(n, c, hw, torch), repeats)
            rows.append({"op": "max_pool2d", "shape": f"{c} {hw}x{hw}", "batch": n, **ms,
                         "min_ms": fastest})
    return rows


def print_table(rows: list[dict], has_torch: bool) -> None:
    head = f"{'op':<11}{'shape':<15}{'batch':>6}{'ours ms':>9}{'numpy ms':>10}{'numpy/ours':>11}"
    if has_torch:
        head += f"{'torch ms':>10}{'ours/torch':>11}"
    print(head)
    for r in rows:
        line = (f"{r['op']:<11}{r['shape']:<15}{r['batch']:>6}{r['tinygrad_edu']:>9.2f}"
                f"{r['numpy']:>10.2f}{r['numpy'] / r['tinygrad_edu']:>11.2f}")
        if has_torch:
            line += f"{r['torch']:>10.2f}{r['tinygrad_edu'] / r['torch']:>11.2f}"
        print(line)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kernels.json"))
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None

    load_before = os.getloadavg()[0]
    rows = run(args.batch_sizes, args.repeats, torch)
    load_after = os.getloadavg()[0]
    print_table(rows, torch is not None)
    print(f"1-minute load average {load_before:.1f} before, {load_after:.1f} after "
          f"({os.cpu_count()} CPUs; other processes' load slows every column)")
    start = numba_start_times()
    for label, t in start.items():
        print(f"numba {label} start: import {t['import_s']:.2f} s, first call of every kernel "
              f"{t['first_calls_s']:.2f} s")
    write_json(args.out, {
        "rows": rows,
        "numba_start": start,
        "repeats": args.repeats,
        "versions": {"tinygrad_edu": tinygrad_edu.__version__, "numpy": np.__version__,
                     "torch": None if torch is None else torch.__version__,
                     "python": platform.python_version()},
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": {"before": load_before, "after": load_after},
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
