"""Waiting without the GIL and without sleeping: the flags that parallel_for's threads hand
jobs over with, read and written by Numba loops that release the GIL.

Why: in this virtual machine a thread that sleeps (on a queue, an Event or the GIL) takes
25-45 us to wake, and a parallel_for paid two such wake-ups (the worker's at the start, the
caller's at the end): two 20 us tasks took 77 us at two threads against 41 in one. A thread
that instead polls a flag in a loop that has let go of the GIL sees the change in a
microsecond and leaves the GIL free for the thread it waits for. The polls are bounded
(`spins_for`), and each poll yields the core (sched_yield) to any other thread that wants
it, so that on a busy machine a waiting thread costs the others little and soon sleeps.

The loads and stores are atomic (acquire / release), so the compiler neither hoists a load
out of the polling loop nor reorders a store before the writes it publishes.

Native jobs (`serve`, `run_native`) go further: their tasks are calls of a compiled function
(a Numba cfunc's address), so a worker runs them without ever taking the GIL. A worker that
returns from a poll to run Python needs the GIL, and when the caller holds it (it is still
starting its own task) the worker sleeps on it: here (an Intel Xeon VM, 2026-12-04) the
worker's half of a 128 x 784 @ 784 x 256 product started 33 us after the caller's, its task
taking 160 us. The job's state lives in the first cache line of the flags: the job number
at [0], then the NATIVE_* fields.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_YIELD = hasattr(os, "sched_yield")
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _load_acquire(typingctx, flags, index):
    """flags[index] (an int64 array) read with acquire ordering."""
    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(flags, index), codegen


@intrinsic
def _store_release(typingctx, flags, index, value):
    """flags[index] = value with release ordering."""
    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]])
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(flags, index, value), codegen


@intrinsic
def _claim(typingctx, flags, index, expected):
    """Compare-and-swap flags[index] from `expected` to expected + 1; True when it was
    `expected` (this thread took that value), False when another thread changed it first."""
    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]])
        new = builder.add(args[2], ir.Constant(ir.IntType(64), 1))
        pair = builder.cmpxchg(ptr, args[2], new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)
    return types.boolean(flags, index, expected), codegen


@intrinsic
def _add(typingctx, flags, index, value):
    """flags[index] += value, atomically."""
    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], array, [args[1]])
        builder.atomic_rmw("add", ptr, args[2], "seq_cst")
        return context.get_dummy_value()
    return types.void(flags, index, value), codegen


@intrinsic
def _call(typingctx, function, args, task):
    """Call the compiled function at address `function`, void(int64 args, int64 task)."""
    def codegen(context, builder, sig, values):
        i64 = ir.IntType(64)
        fn = builder.inttoptr(values[0], ir.FunctionType(ir.VoidType(), [i64, i64]).as_pointer())
        builder.call(fn, [values[1], values[2]])
        return context.get_dummy_value()
    return types.void(function, args, task), codegen


@intrinsic
def floats_at(typingctx, address):
    """The float32 pointer to an address (an int64), for numba.carray in a native task."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
    return types.CPointer(types.float32)(address), codegen


@intrinsic
def ints_at(typingctx, address):
    """The int64 pointer to an address (an int64), for numba.carray in a native task."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
    return types.CPointer(types.int64)(address), codegen


@intrinsic
def bytes_at(typingctx, address):
    """The int8 pointer to an address (an int64), for numba.carray in a native task."""
    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
    return types.CPointer(types.int8)(address), codegen


@intrinsic
def float_from_bits(typingctx, bits):
    """The float64 whose bits are the int64 `bits` (np.float64(x).view(np.int64)): a
    float argument of a native task, passed in its int64 args."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(bits), codegen


@intrinsic
def _yield_core(typingctx):
    """Let another runnable thread have this core (sched_yield, ~0.5 us when none is), or
    where there is no sched_yield, the x86 spin-loop hint `pause`."""
    def codegen(context, builder, sig, args):
        if _YIELD:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        elif _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(cache=True, nogil=True)
def wait_for(flags, index, value, spins):
    """Poll flags[index] until it is at least `value`, at most `spins` times (the GIL
    released); True when it got there."""
    for _ in range(spins):
        if _load_acquire(flags, index) >= value:
            return True
        _yield_core()
    return False


# The native job in the flags' first line: [0] its number (any job's), NATIVE_KIND its number
# again when the job is native, NATIVE_FUNCTION the cfunc's address, NATIVE_ARGS the address
# of its arguments, NATIVE_TASKS how many tasks, NATIVE_CLAIM (number << CLAIM_BITS) + the next
# task to take, NATIVE_FINISHED how many are done. A thread that read an older job's number
# cannot take a task of a newer one: its compare-and-swap expects the older number.
NATIVE_KIND, NATIVE_FUNCTION, NATIVE_ARGS, NATIVE_TASKS, NATIVE_CLAIM, NATIVE_FINISHED = range(1, 7)
CLAIM_BITS = 24  # up to 16M tasks per job
_TASK_MASK = (1 << CLAIM_BITS) - 1


@njit(cache=True, nogil=True)
def _run_tasks(flags, number):
    """Take native job `number`'s tasks one at a time until none is left (or the job is not
    the current one any more) and run each."""
    while True:
        claim = _load_acquire(flags, NATIVE_CLAIM)
        if claim >> CLAIM_BITS != number or (claim & _TASK_MASK) >= flags[NATIVE_TASKS]:
            return
        if _claim(flags, NATIVE_CLAIM, claim):  # the job cannot end before this task does
            _call(flags[NATIVE_FUNCTION], flags[NATIVE_ARGS], claim & _TASK_MASK)
            _add(flags, NATIVE_FINISHED, 1)


@njit(cache=True, nogil=True)
def run_native(flags, number):
    """The caller's part of native job `number` (posted in flags): its share of the tasks,
    then wait until every task taken by another thread is finished too."""
    _run_tasks(flags, number)
    tasks = flags[NATIVE_TASKS]
    while _load_acquire(flags, NATIVE_FINISHED) < tasks:
        _yield_core()


@njit(cache=True, nogil=True)
def run_serially(function, args, n_tasks):
    """Tasks 0 .. n_tasks - 1 of a native job, here, one after another."""
    for task in range(n_tasks):
        _call(function, args, task)


@njit(cache=True, nogil=True)
def serve(flags, slot, done, spins):
    """A worker's wait for work, without the GIL: flags[slot] = done (the last job it
    finished), then poll flags[0] for a newer job at most `spins` times; native jobs it runs
    here (and polls again afresh). Returns a Python job's number, or -1 - done when the polls
    ran out."""
    _store_release(flags, slot, done)
    spun = 0
    while spun < spins:
        number = _load_acquire(flags, 0)
        if number > done:
            if _load_acquire(flags, NATIVE_KIND) != number:
                return number
            _run_tasks(flags, number)
            done = number
            _store_release(flags, slot, done)
            spun = 0
            continue
        _yield_core()
        spun += 1
    return -1 - done


# A native task's signature: (the address of its int64 args, its number)
TASK_SIGNATURE = types.void(types.int64, types.int64)


@njit(cache=True, nogil=True, inline="always")
def task_run(total, n_tasks, task):
    """(lo, hi): task `task`'s share of range(total) cut into n_tasks runs, as chunks() cuts
    it in parallel.py."""
    return total * task // n_tasks, total * (task + 1) // n_tasks


def spins_for(microseconds: float) -> int:
    """How many polls of wait_for take about `microseconds` on this machine: the fastest of a
    few measured batches, so that a busy moment at the measurement does not shorten every
    later poll."""
    global _microseconds_per_spin
    if _microseconds_per_spin is None:
        flags = np.zeros(1, np.int64)
        wait_for(flags, 0, 1, 10)
        batches = []
        for _ in range(5):
            start = time.perf_counter()
            wait_for(flags, 0, 1, 1000)
            batches.append((time.perf_counter() - start) * 1e3)  # us per poll: / 1000 * 1e6
        _microseconds_per_spin = max(min(batches), 1e-3)
    return max(1, int(microseconds / _microseconds_per_spin))


_microseconds_per_spin: float | None = None
