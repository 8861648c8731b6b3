"""tinygrad_edu.parallel: set_num_threads / get_num_threads like torch's, parallel_for, and every
kernel test of tests/test_kernels.py and the fused optimizer tests again with each op cut into
the smallest pieces over three threads (so that a race or a wrong split shows up)."""
import os
import threading
import time
import weakref

import numpy as np
import pytest
from numba import carray, cfunc, njit, types

import tinygrad_edu as tg
from tests import test_kernels, test_optim
from tinygrad_edu import kernels, ops_cnn, parallel, spin
from tinygrad_edu.optim import kernels as optim_kernels


@pytest.fixture
def threads():
    """Restore the thread count after the test."""
    before = tg.get_num_threads()
    yield
    tg.set_num_threads(before)


@pytest.fixture
def every_op_split(threads, monkeypatch):
    """Three threads, and every conv, pooling, batch-norm and optimizer call cut into as many
    tasks as it can take; records the task counts of the parallel_for and native_for calls."""
    tg.set_num_threads(3)
    monkeypatch.setattr(ops_cnn, "_TASK_MACS", 1)
    monkeypatch.setattr(ops_cnn, "_SUM_VALUES", 1)
    monkeypatch.setattr(kernels, "_TASK_ELEMENTS", 1)
    monkeypatch.setattr(kernels, "_TASK_MACS", 1)
    monkeypatch.setattr(kernels, "_ELEMENTWISE_GRAIN", 1)
    monkeypatch.setattr(kernels, "_NATIVE_ELEMENTS", 1)
    monkeypatch.setattr(kernels, "_NATIVE_RUN_ELEMENTS", 1)
    monkeypatch.setattr(optim_kernels, "_TASK_ELEMENTS", 1)
    monkeypatch.setattr(optim_kernels, "_NATIVE_ELEMENTS", 1)
    counts, real, native = [], parallel.parallel_for, parallel.native_for

    def counting(fn, n_tasks):
        counts.append(n_tasks)
        real(fn, n_tasks)

    def counting_native(fn, args, n_tasks):
        counts.append(n_tasks)
        native(fn, args, n_tasks)

    for module in (ops_cnn.parallel, kernels, optim_kernels):
        monkeypatch.setattr(module, "parallel_for", counting)
    monkeypatch.setattr(kernels, "native_for", counting_native)
    monkeypatch.setattr(optim_kernels, "native_for", counting_native)
    return counts


def test_default_is_omp_num_threads_or_the_cores_and_set_changes_it(threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert parallel.default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert parallel.default_threads() == 3  # as torch.get_num_threads() would say
    monkeypatch.setenv("OMP_NUM_THREADS", "zero")
    assert parallel.default_threads() == len(os.sched_getaffinity(0))
    tg.set_num_threads(3)
    assert tg.get_num_threads() == 3


@pytest.mark.parametrize("value, message", [(0, "expects a positive integer"),
                                            (-1, "expects a positive integer"),
                                            (1.5, "expects an int, but got float")])
def test_set_num_threads_refuses_what_torch_refuses(threads, value, message):
    with pytest.raises(RuntimeError, match=message):
        tg.set_num_threads(value)


def test_parallel_for_runs_every_task_once_on_several_threads(threads):
    tg.set_num_threads(3)
    seen, names, barrier = [], set(), threading.Barrier(3, timeout=10)

    def task(i, worker):
        if i < 3:
            barrier.wait()  # only passes when three threads hold a task at once
        seen.append(i)
        names.add((worker, threading.current_thread().name))

    parallel.parallel_for(task, 20)
    assert sorted(seen) == list(range(20))
    assert {w for w, _ in names} == {0, 1, 2} and len(names) == 3


def test_parallel_for_reraises_a_task_error_and_stays_usable(threads):
    tg.set_num_threads(2)

    def task(i, worker):
        if i == 3:
            raise ValueError("task 3 failed")

    with pytest.raises(ValueError, match="task 3 failed"):
        parallel.parallel_for(task, 8)
    out = np.zeros(4)
    parallel.parallel_for(lambda i, w: out.__setitem__(i, 1), 4)
    assert out.tolist() == [1, 1, 1, 1]


def test_nested_parallel_for_runs_serially_in_its_task(threads):
    tg.set_num_threads(2)
    inner = []

    def outer(i, worker):
        assert parallel.worker_count() == 1
        parallel.parallel_for(lambda j, w: inner.append((i, j, w)), 3)

    parallel.parallel_for(outer, 2)
    assert sorted(inner) == [(i, j, 0) for i in range(2) for j in range(3)]


def _new_pool(n: int) -> None:
    """n threads in a pool made now (so that it reads the poll settings patched in)."""
    tg.set_num_threads(1)
    tg.set_num_threads(n)


@pytest.mark.parametrize("poll_us", [0, 2e5])  # workers asleep on their queues, or polling
def test_every_job_reaches_sleeping_and_polling_workers(threads, monkeypatch, poll_us):
    monkeypatch.setattr(parallel, "WORKER_POLL_US", poll_us)
    _new_pool(3)
    for _ in range(20):  # a worker that missed a job would break the barrier (10 s)
        barrier = threading.Barrier(3, timeout=10)
        parallel.parallel_for(lambda i, w, barrier=barrier: barrier.wait(), 3)


@pytest.mark.parametrize("poll_us", [0, 2e5])  # the caller sleeps on the job's Event, or polls
def test_parallel_for_returns_only_after_a_slow_worker_task(threads, monkeypatch, poll_us):
    monkeypatch.setattr(parallel, "CALLER_POLL_US", poll_us)
    _new_pool(2)
    for _ in range(5):
        out, barrier = np.zeros(2), threading.Barrier(2, timeout=10)

        def task(i, worker, out=out, barrier=barrier):
            barrier.wait()  # both tasks start together: the caller's ends first
            if worker:
                time.sleep(0.03)
            out[i] = 1

        parallel.parallel_for(task, 2)
        assert out.tolist() == [1, 1]


def test_wait_for_sees_another_threads_store_and_lets_it_run():
    """The poll releases the GIL (the Timer's Python thread must run to store) and reads the
    flag afresh each time (a load hoisted out of the loop would never see the store)."""
    flags = np.zeros(1, np.int64)
    threading.Timer(0.05, flags.__setitem__, (0, 3)).start()
    start = time.perf_counter()
    assert spin.wait_for(flags, 0, 3, spin.spins_for(20e6))  # ~20 s at most
    assert time.perf_counter() - start < 10


def test_wait_for_gives_up_after_its_polls_and_serve_stores_first():
    flags = np.zeros(9, np.int64)
    assert not spin.wait_for(flags, 0, 1, 100)
    assert spin.wait_for(flags, 0, 0, 1)
    assert spin.serve(flags, 8, 5, 10) == -1 - 5  # no job newer than 5: the polls ran out
    assert flags.tolist() == [0] * 8 + [5]
    flags[0] = 6  # a Python job (flags[NATIVE_KIND] is not its number): returned to Python
    assert spin.serve(flags, 8, 5, 10) == 6
    assert spin.spins_for(1000) > spin.spins_for(10) >= 1


@cfunc(types.void(types.int64, types.int64), nopython=True)
def _count_task(args, task):
    """A native task: values[task] += 1 after a little work (so that tasks overlap between
    threads), where values is the int64 array at address args."""
    values = carray(spin.ints_at(args), (task + 1,))
    work = 0.0
    for i in range(200):
        work += i * 0.5
    values[task] += 1 if work > 0 else 2


def test_native_for_runs_every_task_once_over_the_threads(threads):
    """Many small jobs of many tasks, so that a worker still taking the last job's tasks meets
    the next one (its compare-and-swap names the old job and fails); with pauses longer than
    the workers' poll, so that they sleep and a native job must wake them."""
    tg.set_num_threads(3)
    for n_tasks in [1, 2, 3, 7, 100, 1000] * 20:
        args = np.zeros(n_tasks, np.int64)
        parallel.native_for(_count_task.address, args, n_tasks)
        assert args.tolist() == [1] * n_tasks
    for _ in range(3):
        time.sleep(parallel.WORKER_POLL_US * 3e-6)
        args = np.zeros(50, np.int64)
        parallel.native_for(_count_task.address, args, 50)
        assert args.tolist() == [1] * 50
        out = np.zeros(4, np.int64)  # and a Python job after a native one
        parallel.parallel_for(lambda i, _, out=out: out.__setitem__(i, 1), 4)
        assert out.tolist() == [1] * 4


def test_native_for_refuses_args_it_cannot_read_by_address():
    with pytest.raises(TypeError, match="C-contiguous int64 array"):
        parallel.native_for(_count_task.address, np.zeros(4, np.int32), 4)
    with pytest.raises(TypeError, match="np.array"):
        parallel.native_for(_count_task.address, np.zeros(8, np.int64)[::2], 4)


@njit
def _task_values(bits, total, n_tasks):
    runs = [spin.task_run(total, n_tasks, t) for t in range(n_tasks)]
    return spin.float_from_bits(bits), runs


def test_native_task_helpers_give_the_float_and_the_runs_of_chunks():
    """A float passed in int64 args comes back whole, and a task's run is chunks()'s."""
    for value in (1e-5, -0.1, 3.0, np.inf):
        got, runs = _task_values(int(np.float64(value).view(np.int64)), 10, 3)
        assert got == value
        assert runs == parallel.chunks(10, 3)


def test_native_for_from_two_threads_and_inside_a_task(threads):
    """Two callers at once (one runs its tasks in its own thread), and a native_for called
    from a parallel_for task (serially there): every task once."""
    tg.set_num_threads(2)
    results = [np.zeros(500, np.int64) for _ in range(2)]

    def caller(args):
        for _ in range(50):
            args[:] = 0
            parallel.native_for(_count_task.address, args, args.size)
            assert args.tolist() == [1] * args.size

    callers = [threading.Thread(target=caller, args=(r,)) for r in results]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    nested = [np.zeros(30, np.int64) for _ in range(2)]
    parallel.parallel_for(lambda i, _: parallel.native_for(_count_task.address, nested[i], 30), 2)
    assert all(n.tolist() == [1] * 30 for n in nested)


def _two_tasks_at_once(_) -> bool:
    """True when tasks 0 and 1 ran on two threads at the same time (else the barrier breaks)."""
    barrier = threading.Barrier(2, timeout=10)
    parallel.parallel_for(lambda i, w: barrier.wait() if i < 2 else None, 4)
    return True


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_workers(threads):
    import multiprocessing
    tg.set_num_threads(2)
    parallel.parallel_for(lambda i, w: None, 4)  # the parent's workers exist now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_two_tasks_at_once, [0]) == [True]  # the parent's workers are gone


def test_a_finished_job_keeps_nothing_alive(threads):
    """A worker holds its last job until the next one comes: not the arrays its tasks used
    (the engine then sees a gradient as shared, and the memory stays taken)."""
    def run(data):  # its closure outlives this call as long as the job refers to it
        parallel.parallel_for(lambda i, worker: data[i::2].sum(), 2)

    tg.set_num_threads(2)
    data = np.ones(1000)
    alive = weakref.ref(data)
    run(data)
    del data
    assert alive() is None


def test_single_thread_runs_in_the_caller(threads):
    tg.set_num_threads(1)
    names = set()
    parallel.parallel_for(lambda i, w: names.add(threading.current_thread().name), 5)
    assert names == {threading.current_thread().name}


@pytest.mark.parametrize("total, parts, expected", [
    (10, 3, [(0, 3), (3, 6), (6, 10)]), (2, 5, [(0, 1), (1, 2)]), (0, 4, []), (7, 1, [(0, 7)])])
def test_chunks_cover_the_range_without_empty_pieces(total, parts, expected):
    assert parallel.chunks(total, parts) == expected


@pytest.mark.parametrize("n_threads, work, expected", [
    (1, 100, 1), (2, 5, 1), (2, 20, 2), (2, 30, 2), (2, 100, 4), (3, 20, 2), (3, 30, 3),
    (3, 50, 3), (3, 60, 6), (3, 1000, 6)])
def test_tasks_are_one_per_grain_then_a_whole_number_per_thread(threads, n_threads, work,
                                                               expected):
    """Below the threads, one task per grain (10 units here); beyond, whole rounds: 3 equal
    tasks on 2 threads would take as long as 4, so 30 units on 2 threads make 2 tasks."""
    tg.set_num_threads(n_threads)
    assert parallel.tasks_for(work, 10) == expected


KERNEL_TESTS = [
    test_kernels.test_conv2d_matches_reference_and_backward_is_the_adjoint,
    test_kernels.test_max_pool2d_matches_reference,
    test_kernels.test_conv_pool_chain_matches_references_and_gradchecks,
    test_kernels.test_batch_norm_kernels_gradcheck_and_any_upstream_layout,
]


@pytest.mark.parametrize("test", KERNEL_TESTS, ids=lambda t: t.__name__)
def test_kernel_tests_pass_with_every_op_split(every_op_split, test):
    test()
    assert max(every_op_split) > 1  # the ops really were cut into several tasks


def test_split_conv_gradcheck_and_agreement_with_one_thread(every_op_split):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 7, 6))
    w = rng.standard_normal((6, 4, 3, 3))
    b = rng.standard_normal(6)
    X, Wt, B = (tg.Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, w, b))
    assert tg.testing.gradcheck(lambda *t: ops_cnn.conv2d(*t, padding=1, stride=(1, 2)),
                                X, Wt, B)
    gy = rng.standard_normal((3, 6, 7, 3))
    results = []
    for n in (3, 1):
        tg.set_num_threads(n)
        X.grad = Wt.grad = B.grad = None
        y = ops_cnn.conv2d(X, Wt, B, padding=1, stride=(1, 2))
        y.backward(gy)
        results.append([y.array, X.grad.array, Wt.grad.array, B.grad.array])
    for split, serial in zip(*results):
        np.testing.assert_allclose(split, serial, rtol=1e-12, atol=1e-12)
    assert max(every_op_split) > 1


def test_split_batch_norm_matches_reference(every_op_split):
    rng = np.random.default_rng(0)
    x = kernels.batch_minor((4, 5, 3, 3), np.float64)
    x[...] = rng.standard_normal(x.shape)
    weight, bias = rng.standard_normal(5), rng.standard_normal(5)
    ours = kernels.batch_norm_forward(x, weight, bias, 1e-5)[:3]
    for value, expected in zip(ours, tg.testing.batch_norm_ref(x, weight, bias, eps=1e-5)):
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-10)
    assert max(every_op_split) > 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # float32: native tasks
def test_split_relu_equals_numpy_in_every_layout(every_op_split, dtype):
    """ReLU's forward and backward through kernels.elementwise: split into runs of memory for
    C-contiguous and batch-minor arrays (same layout out), one plain call for a strided view;
    always PyTorch's values (a NaN output passes its gradient)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 6)).astype(dtype)
    x[0, 0, 0, 0] = np.nan
    batch_minor = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    for a, split in ((x, True), (batch_minor, True), (x[:, :, ::2], False)):
        every_op_split.clear()
        X = tg.from_numpy(a).requires_grad_()  # a's own layout
        y = X.relu()
        np.testing.assert_array_equal(y.array, np.maximum(a, 0))
        assert y.array.strides == np.maximum(a, 0).strides
        g = np.empty_like(a)  # the upstream gradient in y's layout
        g[...] = rng.standard_normal(a.shape)
        with np.errstate(invalid="ignore"):  # the NaN's comparison
            y.backward(tg.tensor(g))
        np.testing.assert_array_equal(X.grad.array, np.where(np.maximum(a, 0) <= 0, 0, g))
        if split:  # forward and backward; the strided view's forward is one plain call
            assert len(every_op_split) == 2 and min(every_op_split) > 1


SPLIT_CASES = [(n, k) for n, k in test_optim.FUSED_CASES if n != "SGD" or k.get("momentum")]


@pytest.mark.parametrize("name, kwargs", SPLIT_CASES)  # plain SGD has no fused loop
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_updates_with_every_update_split_equal_the_numpy_reference(every_op_split, name,
                                                                         kwargs, dtype):
    test_optim.test_fused_update_equals_the_numpy_reference(name, kwargs, dtype)
    assert max(every_op_split) > 1


def test_split_winograd_conv_matches_reference_and_gradchecks(every_op_split, monkeypatch):
    test_kernels.test_winograd_conv2d_matches_reference((2, 5, 9, 8), 1)
    assert max(every_op_split) > 1
    monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_RATIO", 0)
    rng = np.random.default_rng(0)
    X, Wt = (tg.Tensor(rng.standard_normal(s), dtype=np.float64, requires_grad=True)
             for s in ((2, 3, 6, 5), (4, 3, 3, 3)))
    assert tg.testing.gradcheck(lambda x, w: ops_cnn.conv2d(x, w, padding=1), X, Wt)


@pytest.mark.parametrize("padding", [0, 1])
def test_double_backward_of_a_winograd_conv_on_split_threads(every_op_split, monkeypatch,
                                                             padding):
    """A conv that takes the Winograd path, cut into many tasks over three threads, still has
    the right second derivatives (its gradient ops use the im2col paths)."""
    from tinygrad_edu.testing import gradgradcheck
    monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(ops_cnn, "_WINOGRAD_MIN_RATIO", 0)
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)

    def conv_squared(x, w):
        return tg.nn.functional.conv2d(x, w, padding=padding) ** 2
    y = tg.nn.functional.conv2d(x, w, padding=padding)
    assert y.grad_fn.winograd  # the path under test was taken
    assert gradgradcheck(conv_squared, x, w)


@pytest.mark.parametrize("direct", [True, False])
def test_threaded_weight_gradient_is_bit_identical_run_to_run(every_op_split, monkeypatch,
                                                              direct):
    """The weight gradient's per-thread partial sums (im2col + GEMM) are added in a fixed order,
    and the direct kernel sums each block of output channels in one task, so repeated runs
    agree to the bit (resumed trainings equal unbroken ones)."""
    if not direct:
        monkeypatch.setattr(ops_cnn, "_DIRECT_MAX_CHANNELS", 0)
        monkeypatch.setattr(ops_cnn, "_DIRECT_MAX_CHANNELS_WIDE", 0)
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((8, 3, 12, 12)).astype(np.float32))
    w = tg.tensor(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), requires_grad=True)
    seed = rng.standard_normal((8, 5, 10, 10)).astype(np.float32)
    grads = []
    for _ in range(5):
        w.grad = None
        y = tg.nn.functional.conv2d(x, w)
        assert y.grad_fn.direct_weight_grad == direct
        y.backward(tg.tensor(seed))
        grads.append(w.grad.detach().numpy().copy())
    for g in grads[1:]:
        np.testing.assert_array_equal(g, grads[0])


@pytest.mark.parametrize("x_shape, w_shape, pads", [
    ((2, 3, 9, 9), (8, 3, 5, 5), (2, 2, 2, 2)), ((2, 6, 5, 7), (12, 6, 3, 3), (1, 1, 1, 1))])
@pytest.mark.parametrize("our_gemm", [True, False])  # the direct loops, or our GEMM's
def test_split_direct_conv_matches_reference(every_op_split, x_shape, w_shape, pads, our_gemm,
                                             monkeypatch):
    test_kernels.test_direct_conv2d_and_its_weight_grad_match_reference(x_shape, w_shape, pads,
                                                                        our_gemm, monkeypatch)
    assert max(every_op_split) > 1


@pytest.mark.parametrize("opts", [{"kernel_size": 2},
                                  {"kernel_size": 2, "stride": 1, "padding": 1},
                                  {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}])
def test_max_pool_in_native_tasks_matches_the_reference(every_op_split, monkeypatch, opts):
    """float32 max pooling split over the channels in native tasks (each of _POOL_KINDS'
    kernels among these cases: tiled, 2x2 and general windows) gives the naive reference's
    values, positions and gradient."""
    from tinygrad_edu.testing import max_pool2d_backward_ref, max_pool2d_ref
    kinds = []
    native = kernels._native_pool
    monkeypatch.setattr(kernels, "_native_pool",
                        lambda kind, *a: kinds.append((kind, native(kind, *a))) or kinds[-1][1])
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal((3, 5, 9, 8)), 1).astype(np.float32)  # many ties
    X = tg.Tensor(x, requires_grad=True)
    y, indices = ops_cnn.max_pool2d(X, **opts, return_indices=True)
    y_ref, indices_ref = max_pool2d_ref(x, **opts)
    np.testing.assert_array_equal(y.array, y_ref)
    np.testing.assert_array_equal(indices.array, indices_ref)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    np.testing.assert_allclose(X.grad.array, max_pool2d_backward_ref(x, gy, **opts), rtol=1e-6,
                               atol=1e-6)
    assert len(kinds) == 2 and all(ran for _, ran in kinds)  # forward, backward: native
