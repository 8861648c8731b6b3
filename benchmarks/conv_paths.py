"""What each convolution path of tinygrad_edu buys: one training step of every model with the
direct kernels and Winograd switched off and on, alternately in one process.

    python -m benchmarks.conv_paths                          # all models, default threads
    python -m benchmarks.conv_paths --models lenet5 cnn3 --threads 1
    python -m benchmarks.conv_paths --scaling                # default paths, 1 vs all threads

Variants (tinygrad_edu.ops_cnn chooses a path per conv; these switch its thresholds):
- `im2col`: every conv by im2col + numpy's GEMM (the paths before issue 18's kernels);
- `winograd`: Winograd F(2x2, 3x3) where it fits, the rest im2col + GEMM, numpy's GEMM;
- `blas`: Winograd and the direct kernels (kernels.direct_conv2d and
  direct_conv2d_weight_grad) where they fit, numpy's GEMM;
- `all`: the default, the same with gemm.matmul's GEMM where gemm.enabled() (an AVX-512
  host; elsewhere `all` equals `blas`).
Each round runs one untimed and `--iters` timed steps of each variant in turn, so load from
other processes hits them alike; the table shows the minimum wall time and the minimum CPU time
of the calling thread (with one thread, the step's whole CPU time; steadier on a busy machine).
With --scaling it times the default paths at one thread and at tg.get_num_threads() instead,
alternately in the same way, and prints the speed-up: fastest over fastest, and the median of
the rounds that had a core per thread (probed before and after each round with
iteration_time.core_sharing: this host's vCPUs share one core at times).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics

import tinygrad_edu as tg
from benchmarks.iteration_time import CASES, core_sharing, make_steps, time_alternately
from tinygrad_edu import gemm, ops_cnn

# the ops_cnn thresholds each variant sets (the others keep their defaults), and whether its
# GEMMs may take gemm.matmul's kernel (True: where gemm.enabled(); False: numpy's BLAS)
_OFF = {"_DIRECT_MAX_CHANNELS": 0, "_DIRECT_MAX_CHANNELS_WIDE": 0, "_DIRECT_MIN_ROW": 1 << 62}
VARIANTS = {
    "im2col": ({**_OFF, "_WINOGRAD_MIN_CHANNELS": 1 << 62}, False),
    "winograd": (_OFF, False),
    "blas": ({}, False),
    "all": ({}, True),
}


@contextlib.contextmanager
def variant(name: str):
    """ops_cnn's thresholds and the GEMM switch of the variant `name`, restored afterwards."""
    thresholds, our_gemm = VARIANTS[name]
    saved = {k: getattr(ops_cnn, k) for k in thresholds}
    for k, v in thresholds.items():
        setattr(ops_cnn, k, v)
    if not our_gemm:
        gemm.set_enabled(False)
    try:
        yield
    finally:
        gemm.set_enabled(None)
        for k, v in saved.items():
            setattr(ops_cnn, k, v)


def time_variants(step, rounds: int, iters: int) -> dict:
    """{variant: (min wall ms, min thread-CPU ms)} of `step`, the variants alternating."""
    def in_variant(name: str):
        def run():
            with variant(name):
                return step()
        return run
    wall, cpu = time_alternately({v: in_variant(v) for v in VARIANTS}, rounds, iters, math.inf)
    return {v: (min(wall[v]), min(cpu[v])) for v in VARIANTS}


def print_table(cases, rounds: int, iters: int) -> None:
    """One row per (model, batch): each variant's ms (wall / CPU), and im2col's time over
    all's (wall, then CPU)."""
    cells = "".join(f"{v + ' wall/cpu':>22}" for v in VARIANTS)
    print(f"{'model':<16}{'batch':>6}{cells}{'im2col/all':>12}{'(cpu)':>7}", flush=True)
    for name, batch in cases:
        step = make_steps(name, batch, None, ("tinygrad_edu",))["tinygrad_edu"]
        t = time_variants(step, rounds, iters)
        cells = "".join(f"{f'{w:.2f} / {c:.2f}':>22}" for w, c in t.values())
        print(f"{name:<16}{batch:>6}{cells}{t['im2col'][0] / t['all'][0]:>12.2f}"
              f"{t['im2col'][1] / t['all'][1]:>7.2f}", flush=True)


def time_threads(step, counts, rounds: int, iters: int) -> dict:
    """{threads: min wall ms} of `step`, with tg.set_num_threads alternating over `counts`
    (restored afterwards)."""
    def at(n: int):
        def run():
            tg.set_num_threads(n)  # a no-op while n stays the same
            return step()
        return run
    before = tg.get_num_threads()
    try:
        wall, _ = time_alternately({n: at(n) for n in counts}, rounds, iters, math.inf)
    finally:
        tg.set_num_threads(before)
    return {n: min(t) for n, t in wall.items()}


# a round whose probes both stay at or below this ran with a core for each thread
FREE_CORES = 1.10


def time_threads_by_round(step, threads: int, rounds: int, iters: int,
                          probe=core_sharing) -> list[tuple[float, float, float]]:
    """Per round, (min ms at one thread, min ms at `threads`, the larger of `probe(threads)`
    run just before and just after the round). Why per round: this host's vCPUs share a
    physical core at times (core_sharing 1.0-1.4x on 2026-12-03; 1.16-1.19 while ResNet-18
    gained 1.54x, 1.01-1.02 while it gained 1.73x), and a speed-up measured
    across such moments says more about the host than about the step; each round's own ratio,
    with its probes, tells the two apart. The thread count is restored afterwards."""
    before = tg.get_num_threads()
    result = []
    try:
        for _ in range(rounds):
            tg.set_num_threads(threads)  # the probe runs one task per thread
            shared = probe(threads)
            t = time_threads(step, (1, threads), 1, iters)  # back at `threads` after it
            result.append((t[1], t[threads], max(shared, probe(threads))))
    finally:
        tg.set_num_threads(before)
    return result


def scaling_summary(rounds: list[tuple[float, float, float]]) -> dict:
    """From time_threads_by_round: the fastest step at one thread and at all of them over
    every round and their ratio (`speedup`), and over the rounds whose probes stayed at or
    below FREE_CORES, how many (`free`) and the median of each round's own ratio
    (`free_speedup`, NaN when there were none)."""
    ones, alls, _ = zip(*rounds)
    free = [one / every for one, every, shared in rounds if shared <= FREE_CORES]
    return {"one": min(ones), "all": min(alls), "speedup": min(ones) / min(alls),
            "free": len(free), "free_speedup": statistics.median(free) if free else math.nan}


def print_scaling(cases, threads: int, rounds: int, iters: int) -> None:
    """One row per (model, batch): the step at one thread, at `threads`, and the speed-up
    (fastest over fastest); then the median speed-up of the rounds that had a core per
    thread (time_threads_by_round), and how many of the rounds did."""
    print(f"compute on {threads} threads at once: {core_sharing(threads):.2f}x one thread's "
          f"time (1.00: a core each)", flush=True)
    print(f"{'model':<16}{'batch':>6}{'1 thread ms':>13}{f'{threads} threads ms':>15}"
          f"{'speed-up':>10}{'on free cores':>15}{'rounds':>8}", flush=True)
    for name, batch in cases:
        step = make_steps(name, batch, None, ("tinygrad_edu",))["tinygrad_edu"]
        s = scaling_summary(time_threads_by_round(step, threads, rounds, iters))
        free = f"{s['free']}/{rounds}"
        print(f"{name:<16}{batch:>6}{s['one']:>13.2f}{s['all']:>15.2f}{s['speedup']:>10.2f}"
              f"{s['free_speedup']:>15.2f}{free:>8}", flush=True)
    print(f"compute on {threads} threads at once, after: {core_sharing(threads):.2f}x; "
          f"'on free cores': rounds whose probes before and after stayed <= {FREE_CORES:.2f}x",
          flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="model names (default: every conv model)")
    parser.add_argument("--threads", type=int, help="tg.set_num_threads (default: the cores)")
    parser.add_argument("--rounds", type=int, default=5, help="alternation rounds per model")
    parser.add_argument("--iters", type=int, default=2, help="timed steps per round and variant")
    parser.add_argument("--scaling", action="store_true", help="time the default paths at one "
                        "thread and at --threads (default: the cores) instead")
    args = parser.parse_args(argv)
    if args.threads:
        tg.set_num_threads(args.threads)
    cases = [(m, b) for m, b in CASES if m != "mlp3" and (not args.models or m in args.models)]
    print(f"threads {tg.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    if args.scaling:
        print_scaling(cases, tg.get_num_threads(), args.rounds, args.iters)
    else:
        print_table(cases, args.rounds, args.iters)
    print(f"load average after {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
