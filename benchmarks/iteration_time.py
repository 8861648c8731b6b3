"""Time per training iteration (forward, backward, SGD step) of every models/ network: tinygrad_edu
vs PyTorch CPU (when installed) vs a plain-NumPy reference, plus peak memory and Numba start-up.

    python -m benchmarks.iteration_time                        # everything (several minutes)
    python -m benchmarks.iteration_time --models cnn3 mlp3 --no-memory --no-startup
    python -m benchmarks.iteration_time --paths      # also: each conv path's effect (ours only)

Implementations run alternately in rounds (each round: one untimed iteration of each, then
--iters timed ones), so load from other processes hits all of them alike and the ratios hold on a
busy machine; the table shows medians. See benchmarks/README.md for what every column means.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

import models
import tinygrad_edu as tg
from benchmarks.kernels import write_json
from benchmarks.numpy_reference import from_model
from tinygrad_edu import nn, optim
from tinygrad_edu.nn import functional as F
from tinygrad_edu.parallel import parallel_for

# (model name in models.MODELS or VGG_BN, batch size); input shapes per model below
CASES = [("mlp3", 32), ("mlp3", 128), ("cnn2", 32), ("cnn2", 128), ("cnn3", 32), ("cnn3", 128),
         ("lines_multihead", 32), ("lenet5", 32), ("resnet18", 32), ("vgg_bn", 32)]
INPUT_SHAPES = {"mlp3": (1, 28, 28), "cnn2": (1, 28, 28), "cnn3": (1, 28, 28),
                "lines_multihead": (3, 28, 28), "lenet5": (3, 64, 64), "resnet18": (3, 64, 64),
                "vgg_bn": (3, 32, 32)}
MULTIHEAD = "lines_multihead"  # a dict of head logits, trained with models.lines.multihead_loss
VGG_BN = "vgg_bn"  # a CIFAR-style block, built here with either framework's nn (vgg_bn_block)
IMPLEMENTATIONS = ("tinygrad_edu", "torch", "numpy")
LR, MOMENTUM = 0.01, 0.9


# ------------------------------------------------------------------ the networks
def vgg_bn_block(layers, num_classes: int = 10):
    """3x3 convs 3 -> 64 -> 64 -> 128, each with batch norm and ReLU, a max pool after the
    second, global average pooling and a linear classifier: the layers of a CIFAR VGG, built
    from `layers`, tinygrad_edu.nn or torch.nn (the same names, so their state_dicts match)."""
    def conv(c_in, c_out):
        return [layers.Conv2d(c_in, c_out, 3, padding=1), layers.BatchNorm2d(c_out),
                layers.ReLU()]

    return layers.Sequential(*conv(3, 64), *conv(64, 64), layers.MaxPool2d(2), *conv(64, 128),
                             layers.AdaptiveAvgPool2d(1), layers.Flatten(),
                             layers.Linear(128, num_classes))


def build_model(name: str):
    """The tinygrad_edu network `name` (models.get_model, or the VGG block)."""
    return vgg_bn_block(nn) if name == VGG_BN else models.get_model(name)


def build_twin(name: str, model, torch):
    """The PyTorch twin of `model` with a copy of its weights."""
    if name != VGG_BN:
        return models.to_torch(model)
    twin = vgg_bn_block(torch.nn)
    models.copy_weights(model, twin)
    return twin


def num_classes(name: str, model) -> int:
    return 10 if name == VGG_BN else model.config["num_classes"]


# ------------------------------------------------------------------ one training step each
def make_batch(name: str, batch: int, model):
    """A fixed random batch: float32 images and int64 targets (class indices, or one attribute
    index per head for the multi-head network)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + INPUT_SHAPES[name]).astype(np.float32)
    if name == MULTIHEAD:
        from models.lines import HEADS
        y = np.stack([rng.integers(0, max(units, 2), batch) for units in HEADS.values()], 1)
        return x, y
    return x, rng.integers(0, num_classes(name, model), batch)


def loss_functions(name: str, torch):
    """(tinygrad_edu loss, torch loss), each taking the model's output and the numpy targets."""
    if name == MULTIHEAD:
        loss = models.MultiHeadLoss()
        return loss, (models.to_torch(loss) if torch is not None else None)

    def ours(out, y):
        return F.cross_entropy(out, tg.Tensor(y))

    def theirs(out, y):
        return torch.nn.functional.cross_entropy(out, torch.from_numpy(y))

    return ours, theirs


def make_steps(name: str, batch: int, torch, which=IMPLEMENTATIONS) -> dict:
    """{implementation: zero-argument callable doing one training step (zero_grad, forward, loss,
    backward, SGD step) and returning the loss}, all starting from the same weights."""
    tg.manual_seed(0)
    model = build_model(name)
    x, y = make_batch(name, batch, model)
    ours_loss, torch_loss = loss_functions(name, torch)
    steps = {}
    if "numpy" in which:
        ref = from_model(model)
        steps["numpy"] = numpy_blas_threads(lambda: ref.train_step(x, y, LR, MOMENTUM))
    if "torch" in which and torch is not None:
        twin = build_twin(name, model, torch)
        t_opt = torch.optim.SGD(twin.parameters(), lr=LR, momentum=MOMENTUM)
        steps["torch"] = training_step(twin, t_opt, torch_loss, torch.from_numpy(x), y)
    if "tinygrad_edu" in which:
        opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        steps["tinygrad_edu"] = training_step(model, opt, ours_loss, tg.Tensor(x), y)
    return steps


def training_step(model, opt, loss_fn, x, y):
    """One step of either framework (the same API): zero_grad, forward, loss, backward, update."""
    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


# ------------------------------------------------------------------ timing
def time_alternately(steps: dict, rounds: int, iters: int, budget_s: float) -> tuple:
    """({implementation: list of milliseconds}, {implementation: list of CPU milliseconds of
    the calling thread}). Each round runs, for every implementation, once the threads of the
    one before are idle (`wait_for_idle_threads`), one untimed step (so one framework's idle
    threads do not bill the next) then `iters` timed ones; rounds stop early once `budget_s`
    seconds are spent (but never before 3 rounds)."""
    times = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    start = time.perf_counter()
    for r in range(rounds):
        for name, step in steps.items():
            wait_for_idle_threads()
            step()
            for _ in range(iters):
                t0, c0 = time.perf_counter(), time.thread_time()
                step()
                times[name].append((time.perf_counter() - t0) * 1e3)
                cpu[name].append((time.thread_time() - c0) * 1e3)
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    return times, cpu


def wait_for_idle_threads(timeout_s: float = 2.0) -> float:
    """Sleep until the process's other threads have stopped using the CPU (at most
    `timeout_s`); returns the seconds waited. PyTorch's OpenMP threads spin for a while after
    each step, waiting for more work: run next, another library's step would share the cores
    with them (measured on MLP3 at batch 128: 0.943 ms per step right after PyTorch's, 0.833
    alone, 0.86 with PyTorch's threads set to sleep at once by OMP_WAIT_POLICY=PASSIVE)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        others = time.process_time() - time.thread_time()
        time.sleep(0.005)
        if time.process_time() - time.thread_time() - others < 0.0005:
            break
    return time.perf_counter() - start


def first_steps(steps: dict) -> tuple[dict, float]:
    """The first step's loss of each implementation (they start from the same weights), and
    the slowest first step in seconds."""
    losses, slowest = {}, 0.0
    for name, step in steps.items():
        t0 = time.perf_counter()
        losses[name] = step()
        slowest = max(slowest, time.perf_counter() - t0)
    return losses, slowest


def steps_per_round(steps: dict, first_s: float, round_s: float = 0.025) -> int:
    """Timed steps per round and implementation when --iters is not given: one for networks
    whose first step took over half a second (more rounds, fewer steps each), else enough
    steps for `round_s` of the slowest implementation's step, 3 to 50. With 3 steps of a 1 ms
    network (MLP3) a round was a few milliseconds, and 18 such steps gave medians 10-20% apart
    from one run to the next (2026-12-04). Each implementation's step is timed as the rounds
    time it, once the others' threads are idle, best of three: a second step run right after
    another library's took 4-16x its usual time (MLP3 b32, 2026-12-04: ours 16 ms where a
    step takes 0.4, PyTorch 4.2 beside spinning OpenBLAS threads), and MLP3 got 3 steps."""
    if first_s >= 0.5:
        return 1
    slowest = 0.0
    for step in steps.values():
        best = float("inf")
        for _ in range(3):
            wait_for_idle_threads()
            t0 = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - t0)
        slowest = max(slowest, best)
    return max(3, min(50, int(round_s / max(slowest, 1e-6))))


def train_flops(name: str, batch: int) -> float:
    """Multiply-adds of every Conv2d and Linear times 2 FLOPs, times 3 for forward, weight
    gradient and input gradient (2 for the first layer, whose input needs no gradient)."""
    model = build_model(name)
    macs = []

    def count(module, inputs, out):
        per_output = (module.weight.array.size // module.weight.shape[0])  # C/groups*KH*KW or in
        macs.append(out.array.size * per_output)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(count)
    x, _ = make_batch(name, batch, model)
    with tg.no_grad():
        model(tg.Tensor(x))
    return 2.0 * (3 * sum(macs) - macs[0])


def gemm_peak_gflops() -> float:
    """float32 GEMM throughput of numpy's BLAS on a 1024^3 product (best of 5), with the BLAS
    threads of the NumPy reference (tinygrad_edu's own GEMMs run one per worker thread)."""
    a = np.ones((1024, 1024), np.float32)
    best = np.inf
    product = numpy_blas_threads(lambda: a @ a)
    for _ in range(5):
        t0 = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024 ** 3 / best / 1e9


@numba.njit(nogil=True, fastmath=True, cache=True)
def _multiply_adds(n: int, x: np.ndarray) -> float:
    """n rounds of 64 fused multiply-adds on values that stay in registers: work for a core
    alone, no memory traffic."""
    acc = np.zeros(64, np.float32)
    for _ in range(n):
        for j in range(64):
            acc[j] = acc[j] * x[j] + x[j + 64]
    return acc.sum()


def core_sharing(threads: int, seconds: float = 0.01) -> float:
    """How much longer `threads` threads take to run the same register-only loop at once than
    one thread alone (best of 3 each, runs of `seconds`, so that handing the tasks out is
    negligible): 1.0 where each thread has a core of its own, up to `threads` where they
    share one. A virtual machine's vCPUs may share physical cores at times (the thirteenth
    session's host did, 1.0-1.4x for two), and then no step gains more than threads / this
    from the threads, so the benchmarks print it beside their timings. It first waits for the
    process's other threads to go idle: run at once after the GEMM peak's product, numpy's
    2-thread OpenBLAS pool, still spinning, read as a shared core (1.66-2.31x, three times in
    a row on 2026-12-03; 1.06-1.45 after the wait)."""
    wait_for_idle_threads()
    x = np.full(128, 0.5, np.float32)
    _multiply_adds(1, x)  # (loaded or compiled)
    start = time.perf_counter()
    _multiply_adds(100_000, x)
    rounds = max(1, int(100_000 * seconds / max(time.perf_counter() - start, 1e-9)))

    def task(i: int, worker: int) -> None:
        _multiply_adds(rounds, x)

    def best(n: int) -> float:  # n tasks at once, one per thread
        times = []
        for _ in range(3):
            start = time.perf_counter()
            parallel_for(task, n)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(threads) / best(1)


# ------------------------------------------------------------------ peak memory (subprocess)
def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def warm_up(impl: str, torch) -> None:
    """Load what a first step would load (Numba's compiled kernels, PyTorch's lazy libraries)
    with a tiny network (conv, ReLU, pooling of 2x2 and of 3x3 windows, which take different
    kernels, linear, cross-entropy, two SGD steps with momentum), so that it does not count as
    training memory (loading the 3x3 pooling kernels in LeNet-5's first step cost 8 MB)."""
    if impl not in ("tinygrad_edu", "torch"):
        return  # the numpy reference loads nothing lazily
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = np.full((4, 3, 3, 3), 0.1, np.float32)
    fc = np.full((10, 64), 0.1, np.float32)
    y = np.array([1, 2])
    lib = {"tinygrad_edu": tg, "torch": torch}[impl]
    ops = F if impl == "tinygrad_edu" else torch.nn.functional
    make = tg.Tensor if impl == "tinygrad_edu" else torch.from_numpy
    X, Wt, Fc = make(x), make(w).requires_grad_(), make(fc).requires_grad_()
    opt = lib.optim.SGD([Wt, Fc], lr=0.01, momentum=0.9)
    for _ in range(2):
        out = ops.conv2d(X, Wt, padding=1).relu()
        out = (ops.max_pool2d(out, 2) + ops.max_pool2d(out, 3, 2, 1)).flatten(1)
        ops.cross_entropy(ops.linear(out, Fc), make(y)).backward()
        opt.step()


def memory_probe(name: str, batch: int, impl: str, torch) -> dict:
    """Peak resident memory growth (MB) over 3 training steps at `batch`, in this fresh process,
    from just before the first step: gradients, momentum, activations and workspaces (the
    weights already exist). Kernels and libraries are loaded first by `warm_up`."""
    warm_up(impl, torch)
    steps = make_steps(name, batch, torch, (impl,))
    gc.collect()
    base = _rss_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM, the peak, to the current RSS
        exact = True
    except OSError:
        exact = False
    for _ in range(3):
        steps[impl]()
    return {"peak_mb": (_rss_kb("VmHWM") - base) / 1024, "hwm_reset": exact}


def measure_memory(name: str, batch: int, impls, threads: int | None) -> dict:
    """{implementation: peak MB}, each measured by `memory_probe` in its own process."""
    out = {}
    for impl in impls:
        cmd = [sys.executable, "-m", "benchmarks.iteration_time", "--memory-probe", name,
               str(batch), impl] + ([f"--threads={threads}"] if threads else [])
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=_ROOT)
        if res.returncode != 0:
            print(f"  memory probe {name} {impl} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        out[impl] = json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]
    return out


# ------------------------------------------------------------------ Numba start-up
_ROOT = Path(__file__).resolve().parent.parent
_STARTUP = """
import sys, time
t0 = time.perf_counter()
from benchmarks.iteration_time import make_steps, set_threads
t1 = time.perf_counter()
if int(sys.argv[1]):
    set_threads(int(sys.argv[1]), None)
step = make_steps("cnn3", 32, None, ("tinygrad_edu",))["tinygrad_edu"]
t2 = time.perf_counter()
step()
t3 = time.perf_counter()
step()
print(t1 - t0, t3 - t2, time.perf_counter() - t3)
"""


def numba_start_times(threads: int | None) -> dict:
    """Seconds to import and make CNN3's first training step (batch 32) in a fresh process: cold
    (empty NUMBA_CACHE_DIR, so every kernel compiles) then warm (loaded from that cache)."""
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(_ROOT)}
        for label in ("cold", "warm"):
            cmd = [sys.executable, "-c", _STARTUP, str(threads or 0)]
            out = subprocess.run(cmd, env=env, cwd=_ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
            imp, first, second = map(float, out[-3:])
            result[label] = {"import_s": imp, "first_step_s": first, "second_step_s": second}
    return result


# ------------------------------------------------------------------ threads and load
_numpy_threads = [len(os.sched_getaffinity(0))]  # OpenBLAS's own default: one per core


def set_threads(n: int, torch) -> None:
    """n threads for every implementation: tg.set_num_threads, torch.set_num_threads, and
    numpy's BLAS while the NumPy reference runs (tinygrad_edu keeps its BLAS at one thread)."""
    tg.set_num_threads(n)
    _numpy_threads[0] = n
    if torch is not None:
        torch.set_num_threads(n)


def numpy_blas_threads(fn):
    """fn, run with the NumPy reference's BLAS threads (set_threads, default one per core)
    and then back to tinygrad_edu's one: numpy's OpenBLAS is shared by both."""
    from threadpoolctl import ThreadpoolController
    blas = ThreadpoolController().select(internal_api="openblas")

    def run():
        with blas.limit(limits=_numpy_threads[0]):
            return fn()
    return run


def start_load(n: int) -> list:
    """n CPU-bound processes (a Python busy loop each), to time the step on a busy machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def environment(torch) -> dict:
    """Versions, threads, BLAS kernel and the OPENBLAS_* variables that change numpy's speed."""
    env = {"python": platform.python_version(), "numpy": np.__version__,
           "tinygrad_edu": tg.__version__, "cpu_count": os.cpu_count(),
           "torch": None if torch is None else torch.__version__,
           "torch_threads": None if torch is None else torch.get_num_threads(),
           "tinygrad_edu_threads": tg.get_num_threads(), "numpy_blas_threads": _numpy_threads[0],
           "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}}
    try:
        from threadpoolctl import threadpool_info
        env["threadpools"] = [{k: p.get(k) for k in ("internal_api", "num_threads",
                                                      "architecture", "version")}
                              for p in threadpool_info()]
    except ImportError:
        env["threadpools"] = "threadpoolctl not installed"
    return env


# ------------------------------------------------------------------ report
def summarize(times: list) -> dict:
    a = np.asarray(times)
    return {"median_ms": float(np.median(a)), "p25_ms": float(np.percentile(a, 25)),
            "p75_ms": float(np.percentile(a, 75)), "n": int(a.size)}


def run_case(name: str, batch: int, args, torch, gflops: float) -> dict:
    steps = make_steps(name, batch, torch)
    losses, slowest = first_steps(steps)
    spread = max(losses.values()) - min(losses.values())
    if spread > 1e-3 * max(abs(v) for v in losses.values()):
        print(f"  warning: {name} first losses differ: {losses}", file=sys.stderr)
    iters = args.iters or steps_per_round(steps, slowest)
    times, cpu = time_alternately(steps, args.rounds, iters, args.budget)
    flops = train_flops(name, batch)
    row = {"model": name, "batch": batch, "first_loss": losses, "train_gflop": flops / 1e9,
           "gemm_floor_ms": flops / gflops / 1e6,
           "iters_per_round": iters, "time": {impl: summarize(t) for impl, t in times.items()},
           "thread_cpu_min_ms": {impl: min(c) for impl, c in cpu.items()}}
    if not args.no_memory:
        row["peak_mb"] = measure_memory(name, batch, steps, args.threads)
    return row


def print_row(row: dict) -> None:
    t = {impl: s["median_ms"] for impl, s in row["time"].items()}
    m = row.get("peak_mb", {})

    def cell(d, k, fmt):
        return format(d[k], fmt) if k in d else "-"

    ratio = cell({"r": t["tinygrad_edu"] / t["torch"]} if "torch" in t else {}, "r", ".2f")
    mem_ratio = (format(m["tinygrad_edu"] / m["torch"], ".2f")
                 if "torch" in m and "tinygrad_edu" in m and m["torch"] > 0 else "-")
    c = row["thread_cpu_min_ms"]
    cpu_ratio = format(c["tinygrad_edu"] / c["torch"], ".2f") if "torch" in c else "-"
    print(f"{row['model']:<16}{row['batch']:>6}{t['tinygrad_edu']:>9.2f}"
          f"{cell(t, 'torch', '.2f'):>10}{t['numpy']:>10.2f}{ratio:>9}"
          f"{t['numpy'] / t['tinygrad_edu']:>9.2f}{row['gemm_floor_ms']:>10.2f}"
          f"{cell(m, 'tinygrad_edu', '.0f'):>9}{cell(m, 'torch', '.0f'):>7}"
          f"{cell(m, 'numpy', '.0f'):>7}{mem_ratio:>10}{cpu_ratio:>9}", flush=True)


HEADER = (f"{'model':<16}{'batch':>6}{'ours ms':>9}{'torch ms':>10}{'numpy ms':>10}"
          f"{'ours/pt':>9}{'np/ours':>9}{'floor ms':>10}{'ours MB':>9}{'pt MB':>7}{'np MB':>7}"
          f"{'mem o/pt':>10}{'cpu o/pt':>9}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="model names to run (default: all cases)")
    parser.add_argument("--rounds", type=int, default=12, help="alternation rounds per case")
    parser.add_argument("--iters", type=int, help="timed steps per round and impl (default: "
                        "about 25 ms of the slowest, 3 to 50; 1 for networks over 0.5 s)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per case (soft)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--no-startup", action="store_true", help="skip Numba cold/warm start")
    parser.add_argument("--threads", type=int, help="threads for every implementation: "
                        "tg.set_num_threads, torch.set_num_threads and the NumPy reference's "
                        "BLAS pool; default: each library's own default, one per core")
    parser.add_argument("--load", type=int, default=0, help="start this many CPU-bound "
                        "processes while timing (a busy machine); default 0")
    parser.add_argument("--paths", action="store_true", help="then time ours with its conv "
                        "paths switched off and on (benchmarks/conv_paths.py)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/iteration_time.json"))
    parser.add_argument("--memory-probe", nargs=3, metavar=("MODEL", "BATCH", "IMPL"),
                        help=argparse.SUPPRESS)  # internal: one probe, run in a subprocess
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    if args.threads:
        set_threads(args.threads, torch)
    if args.memory_probe:
        name, batch, impl = args.memory_probe
        print(json.dumps(memory_probe(name, int(batch), impl, torch)))
        return

    skipped, rows = [], []
    load_before = os.getloadavg()
    gflops = gemm_peak_gflops()
    sharing = core_sharing(tg.get_num_threads())
    print(f"float32 GEMM peak here: {gflops:.0f} GFLOP/s; load average {load_before[0]:.1f}"
          f"; threads: ours {tg.get_num_threads()}, torch "
          f"{None if torch is None else torch.get_num_threads()}, numpy {_numpy_threads[0]}"
          f"; {args.load} busy processes started; compute on all threads at once "
          f"{sharing:.2f}x one thread's time (1.00: a core each)")
    print(HEADER)
    load = start_load(args.load)
    try:
        for name, batch in CASES:
            if args.models and name not in args.models:
                continue
            if (name not in models.MODELS and name != VGG_BN) or name not in INPUT_SHAPES:
                skipped.append(name)
                continue
            rows.append(run_case(name, batch, args, torch, gflops))
            print_row(rows[-1])
    finally:
        for process in load:
            process.kill()
    for name in skipped:
        print(f"skipped {name}: not in models.MODELS (or no input shape in INPUT_SHAPES) yet")
    if args.paths:
        from benchmarks import conv_paths
        print("conv paths (tinygrad_edu only, alternating in this process):")
        conv_paths.print_table([(r["model"], r["batch"]) for r in rows if r["model"] != "mlp3"],
                               rounds=5, iters=2)
    start = None if args.no_startup else numba_start_times(args.threads)
    for label, s in (start or {}).items():
        print(f"numba {label} start (CNN3, batch 32): import {s['import_s']:.2f} s, first step "
              f"{s['first_step_s']:.2f} s, second step {s['second_step_s'] * 1e3:.1f} ms")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} "
          f"(on {os.cpu_count()} cores)")
    write_json(args.out, {
        "rows": rows, "skipped": skipped, "numba_start": start, "gemm_peak_gflops": gflops,
        "core_sharing": sharing,
        "rounds": args.rounds, "iters_per_round": args.iters, "threads_option": args.threads,
        "busy_processes": args.load,
        "load_average": {"before": load_before, "after": load_after},
        "environment": environment(torch),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
