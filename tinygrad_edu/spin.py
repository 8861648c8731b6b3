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


@njit(cache=True, nogil=True)
def store_then_wait_for(flags, store_index, store_value, index, value, spins):
    """flags[store_index] = store_value, then wait_for(flags, index, value, spins): a worker
    reports its job done and waits for the next without taking the GIL in between."""
    _store_release(flags, store_index, store_value)
    return wait_for(flags, index, value, spins)


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
