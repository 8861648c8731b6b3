"""The worker threads of the kernels: `tg.set_num_threads(n)`, `tg.get_num_threads()` and
`parallel_for`, which the convolution, pooling, batch-norm and optimizer kernels split their
work with.

Why our own threads, not Numba's `parallel=True` or OpenBLAS's pool: their workers spin-wait
for each other between loops. On a shared machine a partner the OS has not scheduled makes the
others spin: measured on the 2-core machine at load 3.5, a CNN3 step took 384 ms instead of
11 ms with two OpenBLAS threads (benchmarks/README.md). Here a worker waits for the next job
by polling a flag for a bounded 300 us, yielding its core (sched_yield) to any other thread
that wants it, and then sleeps on a queue; and tasks are dealt out dynamically: whichever
thread is free, the caller included, takes the next one. A worker the OS has not scheduled
therefore delays only the task it holds, and a step on a busy machine stays near
single-threaded speed (measured at load 3-5: 0.9-1.5x the one-thread step) instead of
collapsing (PyTorch's default: 8-15x, benchmarks/README.md).

Every task runs Numba kernels compiled with `nogil=True` or numpy's matmul, both of which
release the GIL, so the threads run at once. numpy's OpenBLAS is pinned to one thread
(through threadpoolctl, when installed) so that each worker's GEMM stays on its own core; the
GEMMs of tinygrad_edu run single-threaded inside these workers or in the caller.

`native_for` hands out tasks that are compiled functions (Numba cfuncs), which workers run in
their poll without the GIL: a worker returning to Python for a task waits for the GIL the
caller holds while it starts its own, and sleeps on it (spin.py). gemm splits its products
that way.

    tg.set_num_threads(1)     # everything in the calling thread, like torch.set_num_threads(1)
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable

import numpy as np

from . import spin


def default_threads() -> int:
    """torch's default: OMP_NUM_THREADS when it is set to a positive integer (so that
    `OMP_NUM_THREADS=1 python ...` runs single-threaded in both), else the cores this process
    may run on (its affinity mask)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pin_blas_to_one_thread() -> None:
    """One OpenBLAS thread: our workers are the parallelism, and OpenBLAS's spin-waiting pool
    is what collapses on a busy machine. Without threadpoolctl the BLAS keeps its default."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    ThreadpoolController().select(internal_api="openblas").limit(limits=1)


class _Job:
    """One parallel_for call: tasks 0..n-1 handed out one at a time to whoever asks."""

    def __init__(self, fn: Callable[[int, int], None], n_tasks: int):
        self.fn, self.n_tasks = fn, n_tasks
        self.next_task = itertools.count()  # next() is atomic under the GIL
        self.done, self.lock, self.finished = 0, threading.Lock(), threading.Event()
        self.error: BaseException | None = None

    def work(self, worker: int) -> None:
        """Run tasks until none is left; the last one to finish sets `finished`."""
        for task in self.next_task:
            if task >= self.n_tasks:
                return
            try:
                if self.error is None:
                    self.fn(task, worker)
            except BaseException as error:  # noqa: BLE001 (re-raised in the caller)
                self.error = error
            with self.lock:
                self.done += 1
                if self.done == self.n_tasks:
                    self.finished.set()


class _Pool:
    """n - 1 daemon threads; the caller is worker 0. A job is announced by raising flags[0]
    to its number. A worker that finished a job polls that flag for WORKER_POLL_US without
    the GIL (spin.py) and then sleeps on its queue, where post() finds it; the caller, its
    own tasks done, polls the done flags of the workers still on one for CALLER_POLL_US
    before it sleeps on the job's Event. The Event alone decides when a job is done: the
    flags only save the wake-ups (25-45 us each in this virtual machine, 60-100 on 2026-12-02;
    two 20 us tasks took 77 us at two threads, 44-61 with the polls, against 41 in one
    thread). Native jobs (post_native) a polling worker runs in its poll, and their caller
    waits for them by polling."""

    def __init__(self, n_threads: int):
        self.flags = np.zeros(_SLOT * n_threads, np.int64)  # [0]: the job; [_SLOT * w]: w done
        self.worker_spins = spin.spins_for(WORKER_POLL_US)
        self.caller_spins = spin.spins_for(CALLER_POLL_US)
        self.job: _Job | None = None
        self.started = [0] * n_threads  # the number of the last job each worker took up
        self.sleeping = [False] * n_threads
        self.lock = threading.Lock()  # post() and a worker going to sleep: one at a time
        self.queues = [queue.SimpleQueue() for _ in range(n_threads - 1)]
        for worker, jobs in enumerate(self.queues, start=1):
            threading.Thread(target=self._serve, args=(worker, jobs), daemon=True,
                             name=f"tinygrad_edu-worker-{worker}").start()

    def post(self, job: _Job) -> None:
        """Announce `job`: polling workers see the flag, sleeping ones get it on their queue."""
        with self.lock:  # (callers in several threads: each job its own number)
            job.number = int(self.flags[0]) + 1
            self.job = job
            self.flags[0] = job.number
            asleep = [w for w, sleeping in enumerate(self.sleeping) if sleeping]
            for w in asleep:
                self.sleeping[w] = False
        for w in asleep:
            self.queues[w - 1].put(job)

    def wait(self, job: _Job) -> None:
        """Return when every task of `job` is done (the caller has run out of tasks)."""
        if job.done == job.n_tasks:
            return
        for w, number in enumerate(self.started):
            if w and number == job.number:
                spin.wait_for(self.flags, _SLOT * w, job.number, self.caller_spins)
        job.finished.wait()

    def post_native(self, function: int, args: np.ndarray, n_tasks: int) -> int:
        """Announce a native job (spin.py: its tasks are calls of the cfunc at `function`) in
        the flags; sleeping workers get woken to poll again. Returns its number."""
        with self.lock:
            number = int(self.flags[0]) + 1
            flags = self.flags  # its fields first; the number, which publishes them, last
            flags[spin.NATIVE_FUNCTION], flags[spin.NATIVE_ARGS] = function, args.ctypes.data
            flags[spin.NATIVE_TASKS], flags[spin.NATIVE_FINISHED] = n_tasks, 0
            flags[spin.NATIVE_CLAIM] = number << spin.CLAIM_BITS
            flags[spin.NATIVE_KIND] = flags[0] = number
            asleep = [w for w, sleeping in enumerate(self.sleeping) if sleeping]
            for w in asleep:
                self.sleeping[w] = False
        for w in asleep:
            self.queues[w - 1].put(number)
        return number

    def _serve(self, worker: int, jobs: queue.SimpleQueue) -> None:
        _local.busy = True  # nested parallel_for calls run serially
        done = 0  # the number of the last job this worker finished
        while True:
            number = spin.serve(self.flags, _SLOT * worker, done, self.worker_spins)
            if number < 0:  # no job for WORKER_POLL_US (native ones it ran)
                done = -1 - number
                with self.lock:
                    asleep = self.sleeping[worker] = self.flags[0] == done
                if asleep and jobs.get() is None:
                    return
                continue  # poll again: the job that woke it, native or not
            job = self.job  # the newest: what the queue held may be finished already
            self.started[worker] = done = job.number
            job.work(worker)

    def close(self) -> None:
        for jobs in self.queues:
            jobs.put(None)


_SLOT = 8  # int64 flags per thread: one cache line each
# How long to poll before sleeping. A sleeping vCPU of this virtual machine takes 60-100 us to
# wake (two 100 us tasks after a 1 ms pause: 196 us at the median, 98 in one thread), so both
# polls cover the gaps between a step's jobs and its long tasks (alternating, two threads,
# 2026-12-02: worker / caller 300 / 1000 us against 2000 / 5000: ResNet-18 220.6 -> 207.5 ms,
# the VGG block 68.3 -> 65.3, CNN3 b32 5.00 -> 4.94; with a busy process beside it, CNN3 b32
# 7.73 -> 7.57, b128 22.5 -> 23.1, the VGG block 126 -> 116). The polls yield their core.
WORKER_POLL_US = 2000
CALLER_POLL_US = 5000


_local = threading.local()
_num_threads = default_threads()
_pool: _Pool | None = None
_pool_lock = threading.Lock()
_native_lock = threading.Lock()  # native_for: one native job at a time
_pin_blas_to_one_thread()


def _forget_pool_after_fork() -> None:
    """A forked child (a DataLoader worker) has none of the parent's threads: start afresh."""
    global _pool, _pool_lock, _native_lock
    _pool, _pool_lock, _native_lock = None, threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def set_num_threads(n: int) -> None:
    """Use n threads (the caller and n - 1 workers) for the kernels, like torch.set_num_threads.

        tg.set_num_threads(2)
    """
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int):
        raise RuntimeError(  # noqa: TRY004 (torch raises RuntimeError here too)
            f"set_num_threads expects an int, but got {type(n).__name__}")
    if n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n}")
    with _pool_lock:
        if _pool is not None and n != _num_threads:
            _pool.close()
            _pool = None
        _num_threads = n


def get_num_threads() -> int:
    """The number of threads the kernels use: default_threads() unless set otherwise."""
    return _num_threads


def worker_count() -> int:
    """How many threads a parallel_for may use from here: 1 inside a task (nested calls run
    serially), else get_num_threads(). Size per-worker accumulators with this."""
    return 1 if getattr(_local, "busy", False) else _num_threads


def parallel_for(fn: Callable[[int, int], None], n_tasks: int) -> None:
    """Call fn(task, worker) for every task in range(n_tasks), spread over the threads, and
    return when all are done; worker in range(worker_count()) names the thread, so that tasks
    may accumulate into per-worker buffers. Tasks must write disjoint outputs. The first
    exception raised by a task is re-raised here (tasks not yet started are skipped).

        parallel_for(lambda i, _: kernel(x[i::4], y[i::4]), 4)
    """
    threads = min(worker_count(), n_tasks)
    if threads <= 1:
        for task in range(n_tasks):
            fn(task, 0)
        return
    job = _Job(fn, n_tasks)
    pool = _get_pool()
    pool.post(job)
    _local.busy = True
    try:
        job.work(0)
    finally:
        _local.busy = False
    pool.wait(job)
    job.fn = None  # a worker keeps its last job until the next: not the arrays fn refers to
    if job.error is not None:
        raise job.error


def native_for(function: int, args: np.ndarray, n_tasks: int) -> None:
    """Call the compiled function at address `function` (a Numba cfunc of signature
    void(int64, int64)) as function(args.ctypes.data, task) for every task in
    range(n_tasks), spread over the threads like parallel_for, but without the GIL: workers
    polling for work run the tasks in their poll (spin.serve), so none waits for the GIL the
    caller holds. Tasks must write disjoint outputs and must not raise; `args` (int64) must
    hold whatever they read. One native job at a time: a second caller meanwhile runs its
    tasks serially."""
    if args.dtype != np.int64 or not args.flags.c_contiguous:
        raise TypeError(f"native_for: args must be a C-contiguous int64 array (its tasks read "
                        f"it by address), got a {args.dtype} array; build it with "
                        f"np.array(values, np.int64)")
    threads = min(worker_count(), n_tasks)
    if threads <= 1 or not _native_lock.acquire(blocking=False):
        spin.run_serially(function, args.ctypes.data, n_tasks)
        return
    try:
        pool = _get_pool()
        spin.run_native(pool.flags, pool.post_native(function, args, n_tasks))
    finally:
        _native_lock.release()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _Pool(_num_threads)
        return _pool


def chunks(total: int, parts: int) -> list[tuple[int, int]]:
    """range(total) cut into at most `parts` contiguous (start, stop) pieces of nearly equal
    size, none empty: chunks(10, 3) == [(0, 4), (4, 7), (7, 10)]."""
    parts = min(max(parts, 1), total)
    bounds = [total * k // max(parts, 1) for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def tasks_for(work: int, grain: int) -> int:
    """How many tasks to cut a job of `work` units into: 1 when single-threaded or when the job
    is small (a task should carry at least `grain` units, so that the ~20 us of handing it out
    pays), else one per grain up to twice the threads (so that a descheduled worker's share is
    picked up), and beyond the threads a whole number per thread: 3 even tasks on 2 threads
    take as long as 4."""
    if work < 2 * grain:  # (most calls: one task whatever the threads, so checked first)
        return 1
    threads = worker_count()
    if threads <= 1:
        return 1
    tasks = min(2 * threads, work // grain)
    return tasks - tasks % threads if tasks > threads else tasks
