"""The iteration-time benchmark times the same computation in every implementation: the plain-NumPy
reference and the PyTorch twin follow tinygrad_edu's losses step by step (no timing here)."""
import math

import numpy as np
import pytest

from benchmarks.iteration_time import INPUT_SHAPES, make_steps, train_flops

try:
    import torch
except ImportError:
    torch = None


@pytest.mark.parametrize("name, n_steps", [("mlp3", 3), ("cnn3", 3), ("lines_multihead", 3),
                                            ("resnet18", 1), ("vgg_bn", 2)])
def test_every_implementation_follows_the_same_losses(name, n_steps):
    steps = make_steps(name, 2, torch)
    assert "numpy" in steps and "tinygrad_edu" in steps
    for rtol in (1e-5, 1e-4, 1e-3)[:n_steps]:  # after SGD updates, float32 rounding grows
        losses = {impl: step() for impl, step in steps.items()}
        np.testing.assert_allclose(list(losses.values()), losses["tinygrad_edu"], rtol=rtol,
                                   err_msg=str(losses))


def test_training_flops_of_cnn3_by_hand():
    # forward multiply-adds per image: conv 16*9*784, 32*144*196, 64*288*49, linear 576*10
    macs = 16 * 9 * 784 + 32 * 144 * 196 + 64 * 288 * 49 + 576 * 10
    first = 16 * 9 * 784  # the first layer computes no input gradient
    assert train_flops("cnn3", 4) == 2 * 4 * (3 * macs - first)
    assert set(INPUT_SHAPES) >= {"mlp3", "cnn2", "cnn3", "lenet5", "resnet18"}


def test_threads_option_sets_every_implementation_and_load_starts_busy_processes():
    import tinygrad_edu as tg
    from benchmarks import iteration_time
    before = iteration_time.environment(None)
    try:
        iteration_time.set_threads(1, None)
        env = iteration_time.environment(None)
        assert env["tinygrad_edu_threads"] == env["numpy_blas_threads"] == 1
    finally:
        iteration_time.set_threads(before["numpy_blas_threads"], None)
        tg.set_num_threads(before["tinygrad_edu_threads"])
    busy = iteration_time.start_load(2)
    try:
        assert len(busy) == 2 and all(p.poll() is None for p in busy)  # running
    finally:
        for p in busy:
            p.kill()
            p.wait()


def test_conv_path_variants_switch_the_kernels_compute_the_same_step_and_restore(monkeypatch):
    from benchmarks import conv_paths
    from tinygrad_edu import gemm, kernels, ops_cnn
    defaults = {k: getattr(ops_cnn, k) for v, _ in conv_paths.VARIANTS.values() for k in v}
    seen = []

    def recording(real, path):
        return lambda *args: seen.append(path) or real(*args)

    for kernel, path in (("direct_conv2d", "direct"), ("direct_conv2d_weight_grad", "direct"),
                         ("winograd_conv2d", "winograd")):
        monkeypatch.setattr(kernels, kernel, recording(getattr(kernels, kernel), path))
    real_enabled = gemm.enabled
    monkeypatch.setattr(gemm, "enabled", lambda *a: real_enabled(*a) and not seen.append("gemm"))
    losses, calls = {}, {}
    for name in conv_paths.VARIANTS:
        seen.clear()
        step = make_steps("vgg_bn", 2, None, ("tinygrad_edu",))["tinygrad_edu"]
        with conv_paths.variant(name):
            losses[name] = step()
        calls[name] = set(seen)
    ours = {"gemm"} if real_enabled(np.float32) else set()  # our GEMM where this host takes it
    assert calls == {"im2col": set(), "winograd": {"winograd"}, "blas": {"winograd", "direct"},
                     "all": {"winograd", "direct"} | ours}
    np.testing.assert_allclose(list(losses.values()), losses["all"], rtol=1e-5)
    assert {k: getattr(ops_cnn, k) for k in defaults} == defaults
    assert gemm.enabled(np.float32) == real_enabled(np.float32)  # the switch restored


def test_conv_paths_scaling_runs_the_step_at_each_thread_count_and_restores_it():
    import tinygrad_edu as tg
    from benchmarks import conv_paths
    before, seen = tg.get_num_threads(), []
    result = conv_paths.time_threads(lambda: seen.append(tg.get_num_threads()), (1, 3), 2, 1)
    assert set(result) == {1, 3} and seen == [1, 1, 3, 3, 1, 1, 3, 3]
    assert tg.get_num_threads() == before


def test_conv_paths_scaling_by_round_probes_each_round_and_keeps_its_own_ratio():
    """Each round: the probe at all threads, the step at 1 then at 3 threads, the probe again
    (the larger kept); the summary's free-core speed-up is the median of the rounds whose
    probes stayed low, the plain one the fastest over the fastest."""
    import tinygrad_edu as tg
    from benchmarks import conv_paths
    before, events = tg.get_num_threads(), []
    probes = iter([1.0, 1.05, 1.9, 1.0, 1.02, 1.01])

    def probe(threads):
        events.append(("probe", tg.get_num_threads()))
        return next(probes)

    rounds = conv_paths.time_threads_by_round(
        lambda: events.append(("step", tg.get_num_threads())), 3, 3, 1, probe=probe)
    assert [shared for _, _, shared in rounds] == [1.05, 1.9, 1.02]
    assert events[:6] == [("probe", 3), ("step", 1), ("step", 1), ("step", 3), ("step", 3),
                          ("probe", 3)]
    assert tg.get_num_threads() == before
    summary = conv_paths.scaling_summary([(10.0, 6.0, 1.05), (9.0, 8.0, 1.9), (12.0, 6.0, 1.0)])
    assert summary["one"] == 9.0 and summary["all"] == 6.0 and summary["speedup"] == 1.5
    assert summary["free"] == 2 and abs(summary["free_speedup"] - (10 / 6 + 2) / 2) < 1e-12
    assert math.isnan(conv_paths.scaling_summary([(9.0, 8.0, 1.9)])["free_speedup"])


def test_core_sharing_times_the_same_loop_on_one_and_on_every_thread(monkeypatch):
    """The probe printed beside the timings: once the process's other threads are idle (a
    BLAS pool still spinning would read as a shared core), n tasks of one loop at once over
    one alone, each task a run of the loop (no timing asserted: only that it waited first,
    ran once per thread and once alone, three times each, and gave a ratio)."""
    import tinygrad_edu as tg
    from benchmarks import iteration_time
    calls, real = [], iteration_time.parallel_for
    monkeypatch.setattr(iteration_time, "parallel_for",
                        lambda fn, n: calls.append(n) or real(fn, n))
    monkeypatch.setattr(iteration_time, "wait_for_idle_threads", lambda: calls.append("idle"))
    before = tg.get_num_threads()
    tg.set_num_threads(2)
    try:
        ratio = iteration_time.core_sharing(2, seconds=0.001)
    finally:
        tg.set_num_threads(before)
    assert calls == ["idle", 2, 2, 2, 1, 1, 1] and 0 < ratio < float("inf")


def test_timing_waits_for_other_threads_to_stop_spinning():
    """wait_for_idle_threads returns at once when the process's other threads are idle, and
    waits (here up to its timeout) while one of them keeps a core busy, as PyTorch's and
    OpenBLAS's threads do for a while after a step."""
    import threading

    from benchmarks.iteration_time import wait_for_idle_threads
    assert wait_for_idle_threads(timeout_s=1.0) < 0.5
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert wait_for_idle_threads(timeout_s=0.2) >= 0.2
    finally:
        stop.set()
        worker.join()
