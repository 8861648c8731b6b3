"""Fused optimizer updates (Numba): one pass over a parameter and its state, not one per term.

A numpy Adam update makes about twelve passes over every array (each `*=`, `+=`, `sqrt`...);
on weights that do not fit in cache each pass is a trip to memory: 25 ms per step for 4M
float32 weights (the line network's), 4 ms fused. The loops do the same arithmetic in the same
order as the numpy formulas in adam.py and sgd.py, which stay as the reference the tests
compare them to (tests/test_optim.py) and as the path for arrays these loops do not take.

`error_model="numpy"` makes division IEEE (inf/nan, no ZeroDivisionError check), which is
what lets LLVM vectorise the loops: 30 ms -> 3 ms for Adam's.
"""
from __future__ import annotations

import numpy as np
from numba import carray, cfunc, njit

from tinygrad_edu.parallel import chunks, native_for, parallel_for, tasks_for
from tinygrad_edu.spin import TASK_SIGNATURE, float_from_bits, floats_at, ints_at, task_run

# a parallel task: at least 256K parameters (~80 us of Adam). At 128K, MLP3's 784 x 256 weight
# was split in two and its 2-thread step took 0.536 ms; at 256K, 0.476 (one thread: 0.48);
# CNN3, the line network and ResNet-18 unchanged (alternating in one process)
_TASK_ELEMENTS = 1 << 18


def _split(kernel, p: np.ndarray, *args) -> None:
    """kernel(p, *args) on the flat arrays p and those among args, cut into pieces updated in
    parallel (the updates are elementwise, so any cut gives the same result); a parameter too
    small to split is updated here directly, without the machinery (MLP3's step at batch 32:
    71 -> 51 us for its six parameters)."""
    n_tasks = tasks_for(p.size, _TASK_ELEMENTS)
    if n_tasks == 1:
        kernel(p, *args)
        return
    args = (p,) + args
    parts = chunks(p.size, n_tasks)

    def task(i: int, worker: int) -> None:
        start, stop = parts[i]
        kernel(*(a[start:stop] if isinstance(a, np.ndarray) else a for a in args))

    parallel_for(task, len(parts))


def fusable(*arrays: np.ndarray) -> bool:
    """True when the fused loops can take these arrays: C-contiguous, one float dtype."""
    dtype = arrays[0].dtype
    return dtype.kind == "f" and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def sgd_momentum_(p, grad, buf, lr: float, momentum: float, dampening: float,
                  weight_decay: float, maximize: bool, nesterov: bool) -> None:
    """In place, one SGD step with momentum on an existing buffer (sgd.SGD._update):
    g = +-grad + weight_decay * p; buf = momentum * buf + (1 - dampening) * g;
    p -= lr * (g + momentum * buf if nesterov else buf). Scalars in the arrays' dtype. SGD
    hands its float32 parameters to sgd_momentum_all_ instead (one native job for them all)."""
    scalars = np.array([-1.0 if maximize else 1.0, weight_decay, momentum, 1 - dampening, lr],
                       p.dtype)
    flat = (p.reshape(-1), grad.reshape(-1), buf.reshape(-1))
    _split(_sgd_momentum, *flat, *scalars, dampening == 0, nesterov)


@njit(cache=True, nogil=True, error_model="numpy")
def _sgd_momentum(p, grad, buf, sign, weight_decay, momentum, one_minus_dampening, lr,
                  undamped, nesterov):
    for i in range(p.size):
        g = sign * grad[i]
        if weight_decay != 0:
            g = p[i] * weight_decay + g
        b = buf[i] * momentum + (g if undamped else one_minus_dampening * g)
        buf[i] = b
        p[i] -= lr * (g + momentum * b if nesterov else b)


# A native task (parallel.native_for: no GIL to wait for) pays from fewer parameters
# (sgd_momentum_all_'s grain). Alternating, two threads, 2026-12-04 (an AVX-512 Xeon), SGD
# native from 64K or not (per parameter, before sgd_momentum_all_): MLP3
# b128 1.157 -> 1.092 and 1.166 -> 1.117 ms, ResNet-18 174.5 -> 172.4, CNN3 b32 equal; MLP3
# b32 0.688 -> 0.721 then 0.669 -> 0.675 (its products run in one thread: half its first
# weight, updated in the other core's cache, is read back from there)
_NATIVE_ELEMENTS = 1 << 16


def batchable(p: np.ndarray, grad: np.ndarray, buf: np.ndarray) -> bool:
    """True when sgd_momentum_all_ can take these arrays: float32, C-contiguous, writeable,
    one size."""
    return all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
               for a in (p, grad, buf)) and p.size == grad.size == buf.size


def sgd_momentum_all_(params: list, grads: list, bufs: list, lr: float, momentum: float,
                      dampening: float, weight_decay: float, maximize: bool,
                      nesterov: bool) -> None:
    """sgd_momentum_ on every (p, grad, buf) of the lists (batchable float32 arrays) in one
    native job: its tasks cut all the parameters' values, one after another, into even runs,
    so a small parameter costs a few array addresses instead of a call of its own (MLP3's six
    took ~4.5 us each, mostly Python; like torch's foreach SGD)."""
    args = np.empty(_ALL_HEADER + 4 * len(params), np.int64)
    total = 0
    for i, arrays in enumerate(zip(params, grads, bufs)):
        _put_arrays(args, _ALL_HEADER + 4 * i, *arrays)
        total += arrays[0].size
    n_tasks = tasks_for(total, _NATIVE_ELEMENTS)
    args[:3] = len(params), total, n_tasks
    args[3:8] = np.array([-1.0 if maximize else 1.0, weight_decay, momentum, 1 - dampening, lr],
                         np.float64).view(np.int64)
    args[8:10] = dampening == 0, nesterov
    native_for(_sgd_momentum_all_task.address, args, n_tasks)


_ALL_HEADER = 10  # sgd_momentum_all_'s args: count, total, tasks, 5 scalars' bits, 2 flags


@njit(cache=True)
def _put_arrays(args, at, p, grad, buf):
    """args[at:at + 4] = p's size and the addresses of p, grad and buf."""
    args[at], args[at + 1] = p.size, p.ctypes.data
    args[at + 2], args[at + 3] = grad.ctypes.data, buf.ctypes.data


@cfunc(TASK_SIGNATURE, nopython=True, cache=True)
def _sgd_momentum_all_task(args, task):
    """Run `task` of sgd_momentum_all_: its share of all the parameters' values in a row,
    each parameter's piece of it updated by _sgd_momentum in float32."""
    h = carray(ints_at(args), (_ALL_HEADER,))
    count, total = h[0], h[1]
    lo, hi = task_run(total, h[2], task)
    sign, decay, momentum, undamped_part, lr = (np.float32(float_from_bits(h[3])),
                                                 np.float32(float_from_bits(h[4])),
                                                 np.float32(float_from_bits(h[5])),
                                                 np.float32(float_from_bits(h[6])),
                                                 np.float32(float_from_bits(h[7])))
    arrays = carray(ints_at(args), (_ALL_HEADER + 4 * count,))[_ALL_HEADER:]
    start = 0
    for i in range(count):
        size = arrays[4 * i]
        a, b = max(lo - start, 0), min(hi - start, size)
        if a < b:
            _sgd_momentum(carray(floats_at(arrays[4 * i + 1]), (size,))[a:b],
                          carray(floats_at(arrays[4 * i + 2]), (size,))[a:b],
                          carray(floats_at(arrays[4 * i + 3]), (size,))[a:b], sign, decay,
                          momentum, undamped_part, lr, h[8] != 0, h[9] != 0)
        start += size


def adam_(p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr: float, beta1: float, beta2: float,
          eps: float, weight_decay: float, decoupled: bool, maximize: bool, step_size: float,
          bias_correction2_sqrt: float, amsgrad: bool) -> None:
    """In place, one Adam/AdamW step (the formulas of adam.Adam._update); max_exp_avg_sq is
    only read and written when amsgrad. The scalars are rounded to the arrays' dtype first, as
    numpy does with Python floats, so float32 arrays are updated in float32 (and vectorised)."""
    decay = 1 - lr * weight_decay if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    scalars = np.array([-1.0 if maximize else 1.0, decay, l2, 1 - beta1, beta2, 1 - beta2,
                        bias_correction2_sqrt, eps, step_size], p.dtype)
    _split(_adam, p.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
           max_exp_avg_sq.reshape(-1), *scalars, amsgrad)


@njit(cache=True, nogil=True, error_model="numpy")
def _adam(p, grad, m, v, vmax, sign, decay, l2, one_minus_beta1, beta2, one_minus_beta2,
          bias_correction2_sqrt, eps, step_size, amsgrad):
    for i in range(p.size):
        g = sign * grad[i]
        if l2 != 0:
            g = p[i] * l2 + g
        mi = m[i] + (g - m[i]) * one_minus_beta1
        vi = v[i] * beta2 + g * g * one_minus_beta2
        m[i], v[i] = mi, vi
        if amsgrad:
            vi = vmax[i] = max(vmax[i], vi)
        p[i] = p[i] * decay - mi / (np.sqrt(vi) / bias_correction2_sqrt + eps) * step_size
