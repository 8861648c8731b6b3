"""Every op, forward and backward: numpy for values, finite differences for gradients, PyTorch
(when installed) for both. One line per op through `check_op`; shapes from grids and Hypothesis."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
from tests.helpers import check_op, torch
from tinygrad_edu.nn import functional as F

TF = torch.nn.functional if torch is not None else None
erf = np.vectorize(math.erf)
FEW = settings(max_examples=20, deadline=None, derandomize=True)  # reproducible in CI

# ---------------------------------------------------------------- binary elementwise

BINARY = {  # name: (tinygrad_edu and torch fn, numpy fn, input range)
    "add": (lambda x, y: x + y, np.add, (-2, 2)),
    "sub": (lambda x, y: x - y, np.subtract, (-2, 2)),
    "mul": (lambda x, y: x * y, np.multiply, (-2, 2)),
    "div": (lambda x, y: x / y, np.divide, (0.5, 2)),
    "pow": (lambda x, y: x ** y, np.power, (0.5, 2)),
    "maximum": (lambda x, y: x.maximum(y), np.maximum, (-2, 2)),
    "minimum": (lambda x, y: x.minimum(y), np.minimum, (-2, 2)),
}
BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)),
             ((), (2, 3)), ((4,), ())]


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_broadcast(name, shapes):
    fn, np_fn, (low, high) = BINARY[name]
    check_op(shapes, fn, np_fn, low=low, high=high)


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
@pytest.mark.parametrize("name", ["mul", "div", "maximum"])
def test_binary_non_contiguous(name, layout):
    fn, np_fn, (low, high) = BINARY[name]
    check_op([(3, 4), (3, 4)], fn, np_fn, low=low, high=high, layout=layout)


@FEW
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4),
       name=st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_binary_hypothesis(shapes, name):
    fn, np_fn, (low, high) = BINARY[name]
    check_op(shapes.input_shapes, fn, np_fn, low=low, high=high)


SCALAR = {  # a Python number on either side
    "x+s": (lambda x: x + 2.5, lambda x: x + 2.5),
    "s+x": (lambda x: 2.5 + x, lambda x: 2.5 + x),
    "x-s": (lambda x: x - 2.5, lambda x: x - 2.5),
    "s-x": (lambda x: 2.5 - x, lambda x: 2.5 - x),
    "x*s": (lambda x: x * -1.5, lambda x: x * -1.5),
    "s*x": (lambda x: 3 * x, lambda x: 3 * x),
    "x/s": (lambda x: x / 4, lambda x: x / 4),
    "s/x": (lambda x: 2 / x, lambda x: 2 / x),
    "x**2": (lambda x: x ** 2, lambda x: x ** 2),
    "x**0.5": (lambda x: x ** 0.5, np.sqrt),
    "x**-1": (lambda x: x ** -1, lambda x: 1 / x),
    "s**x": (lambda x: 2.5 ** x, lambda x: 2.5 ** x),
}


@pytest.mark.parametrize("name", SCALAR)
def test_scalar_operand(name):
    fn, np_fn = SCALAR[name]
    check_op([(3, 4)], fn, np_fn, low=0.5, high=2)


def test_scalar_operand_negative_inputs():
    check_op([(3, 4)], lambda x: (2.0 - x) * x ** 3 / -3.0, lambda x: (2.0 - x) * x ** 3 / -3.0)


def test_pow_zero_exponent_has_zero_gradient_at_zero():
    """Regression: 0 * 0 ** -1 gave NaN; PyTorch (and calculus) say d(x ** 0)/dx = 0."""
    check_op([], lambda x: x ** 0, np.ones_like, arrays=[np.array([0.0, 1.5, -2.0])],
             finite_differences=False)
    x = tg.tensor([0.0, 1.5, -2.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), 0)


def test_maximum_ties_split_the_gradient():
    """Ties share the gradient in half, as in PyTorch."""
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 3.0])
    check_op([], lambda x, y: x.maximum(y) * 2, arrays=[a, b], finite_differences=False)
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    x.maximum(y).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.5, 1, 0.5])
    np.testing.assert_array_equal(y.grad.detach().numpy(), [0.5, 0, 0.5])


def test_where():
    check_op([(3, 4), (3, 4), (3, 4)], lambda c, x, y: tg.where(c > 0, x, y),
             lambda c, x, y: np.where(c > 0, x, y),
             lambda c, x, y: torch.where(c > 0, x, y))
    check_op([(3, 4), (4,)], lambda x, y: x.where(x < 0.5, y),
             lambda x, y: np.where(x < 0.5, x, y))
    check_op([(2, 3)], lambda x: tg.where(x > 0, x, 0.0), lambda x: np.where(x > 0, x, 0.0),
             lambda x: torch.where(x > 0, x, 0.0))


# ---------------------------------------------------------------- unary elementwise

UNARY = {  # name: (tinygrad_edu fn, numpy fn, torch fn or None for "the same", input range)
    "neg": (lambda x: -x, np.negative, None, (-2, 2)),
    "exp": (lambda x: x.exp(), np.exp, None, (-2, 2)),
    "log": (lambda x: x.log(), np.log, None, (0.1, 3)),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, None, (0.1, 3)),
    "abs": (lambda x: x.abs(), np.abs, None, (-2, 2)),
    "clip": (lambda x: x.clip(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), None, (-2, 2)),
    "clip_min": (lambda x: x.clip(min=0.2), lambda x: np.maximum(x, 0.2), None, (-2, 2)),
    "clamp_max": (lambda x: x.clamp(max=-0.1), lambda x: np.minimum(x, -0.1), None, (-2, 2)),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0), None, (-2, 2)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda x: TF.leaky_relu(x, 0.2), (-2, 2)),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), None, (-5, 5)),
    "tanh": (lambda x: x.tanh(), np.tanh, None, (-3, 3)),
    "gelu": (F.gelu, lambda x: x * 0.5 * (1 + erf(x / math.sqrt(2))), TF and TF.gelu, (-3, 3)),
    "softplus": (F.softplus, lambda x: np.logaddexp(0, x), TF and TF.softplus, (-5, 5)),
    "softplus_beta": (lambda x: F.softplus(x, beta=2, threshold=5),
                      lambda x: np.where(2 * x > 5, x, np.logaddexp(0, 2 * x) / 2),
                      lambda x: TF.softplus(x, beta=2, threshold=5), (-5, 5)),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary(name):
    fn, np_fn, torch_fn, (low, high) = UNARY[name]
    check_op([(3, 4)], fn, np_fn, torch_fn, low=low, high=high)


def test_clip_passes_the_gradient_at_its_bounds():
    """PyTorch's rule: min <= x <= max lets the gradient through, bounds included."""
    a = np.array([-1.0, -0.5, 0.0, 0.7, 1.0])
    check_op([], lambda x: x.clip(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), arrays=[a],
             finite_differences=False)
    x = tg.tensor(a, requires_grad=True)
    x.clip(-0.5, 0.7).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0, 1, 1, 1, 0])


@pytest.mark.parametrize("name", ["exp", "sigmoid", "gelu", "clip"])
def test_unary_non_contiguous(name):
    fn, np_fn, torch_fn, (low, high) = UNARY[name]
    check_op([(4, 3)], fn, np_fn, torch_fn, low=low, high=high, layout="transposed")
    check_op([(2, 3)], fn, np_fn, torch_fn, low=low, high=high, layout="sliced")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "gelu", "relu"])
def test_unary_large_inputs_stay_finite(name):
    fn, _, torch_fn, _ = UNARY[name]
    big = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # forward and backward
        check_op([], fn, None, torch_fn, arrays=[big], finite_differences=False)
        x = tg.tensor(big, requires_grad=True)
        fn(x).sum().backward()
    assert np.isfinite(x.grad.detach().numpy()).all()


# ---------------------------------------------------------------- matmul

MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
          ((2, 3, 4), (4, 5)), ((4, 5), (2, 5, 3)), ((2, 3, 4), (2, 4, 5)),
          ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,))]


@pytest.mark.parametrize("shapes", MATMUL, ids=str)
def test_matmul(shapes):
    check_op(shapes, lambda x, y: x @ y, np.matmul)


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
def test_matmul_non_contiguous(layout):
    check_op([(3, 4), (4, 5)], lambda x, y: x.matmul(y), np.matmul, layout=layout)


def test_matmul_scalar_operand_and_rmatmul():
    w = np.random.default_rng(1).standard_normal((4, 2))
    check_op([(3, 4)], lambda x: x @ w, lambda x: x @ w, lambda x: x @ torch.from_numpy(w))
    check_op([(4, 2)], lambda x: w.T @ x, lambda x: w.T @ x, torch_fn=False)


@FEW
@given(batch=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
       mkn=st.tuples(*[st.integers(1, 4)] * 3), vec=st.sampled_from(["", "x", "y"]))
def test_matmul_hypothesis(batch, mkn, vec):
    m, k, n = mkn
    a = (k,) if vec == "x" else batch.input_shapes[0] + (m, k)
    b = (k,) if vec == "y" else batch.input_shapes[1] + (k, n)
    check_op([a, b], lambda x, y: x @ y, np.matmul)


LINEAR = [((5, 4), (3, 4), (3,)), ((2, 5, 4), (3, 4), (3,)), ((4,), (3, 4), (3,)),
          ((5, 4), (3, 4), None)]


@pytest.mark.parametrize("shapes", LINEAR, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_linear(shapes, layout):
    """F.linear is one fused op (ops.Linear): x @ w.T + b for any leading dims, bias optional."""
    if shapes[2] is None:
        check_op(shapes[:2], F.linear, lambda x, w: x @ w.T, layout=layout,
                 torch_fn=lambda x, w: TF.linear(x, w))
    else:
        check_op(shapes, F.linear, lambda x, w, b: x @ w.T + b, layout=layout,
                 torch_fn=lambda x, w, b: TF.linear(x, w, b))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_computes_in_float32_inside(label_smoothing):
    """No float64 temporaries hidden behind the final cast (class-index targets)."""
    from tinygrad_edu.ops import CrossEntropy
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    ce = CrossEntropy()
    loss = ce.forward(x, target=np.array([0, 2, 1, 2]), label_smoothing=label_smoothing)
    logp, q = ce.saved[:2]
    assert loss.dtype == logp.dtype == np.float32
    assert q is None if label_smoothing == 0 else q.dtype == np.float32  # None: one-hot, kernel
    gx, _ = ce.backward(np.ones((), np.float32))
    assert gx.dtype == np.float32


# ---------------------------------------------------------------- reductions

DIMS = [None, 0, -1, (0, 2)]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "var", "std"])
def test_reduce(name, dim, keepdim):
    np_fn = {"sum": np.sum, "mean": np.mean, "var": lambda x, **kw: np.var(x, ddof=1, **kw),
             "std": lambda x, **kw: np.std(x, ddof=1, **kw)}[name]
    axis = dim if dim is None or isinstance(dim, int) else tuple(dim)
    check_op([(2, 3, 4)], lambda x: getattr(x, name)(dim=dim, keepdim=keepdim),
             lambda x: np_fn(x, axis=axis, keepdims=keepdim))


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std_correction(correction):
    check_op([(3, 5)], lambda x: x.var(1, correction=correction),
             lambda x: np.var(x, axis=1, ddof=correction))
    check_op([(3, 5)], lambda x: x.std(0, keepdim=True, correction=correction),
             lambda x: np.std(x, axis=0, keepdims=True, ddof=correction))


def test_var_unbiased_and_axis_aliases():
    check_op([(3, 5)], lambda x: x.var(unbiased=False), np.var, lambda x: x.var(unbiased=False))
    check_op([(3, 5)], lambda x: x.sum(axis=1) + x.mean(axis=1), lambda x: x.sum(1) + x.mean(1),
             torch_fn=False)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim(name, dim, keepdim):
    np_fn = {"max": np.max, "min": np.min}[name]
    check_op([(2, 3, 4)], lambda x: getattr(x, name)(dim, keepdim)[0],
             lambda x: np_fn(x, axis=dim, keepdims=keepdim))
    check_op([(2, 3, 4)], lambda x: getattr(x, name)(dim=dim, keepdim=keepdim).values,
             lambda x: np_fn(x, axis=dim, keepdims=keepdim))


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_full_and_amax(name):
    np_fn = {"max": np.max, "min": np.min}[name]
    check_op([(2, 3, 4)], lambda x: getattr(x, name)(), np_fn)
    check_op([(2, 3, 4)], lambda x: getattr(x, "a" + name)(dim=(0, 2), keepdim=True),
             lambda x: np_fn(x, axis=(0, 2), keepdims=True))


def test_max_ties_share_the_gradient_like_torch():
    """Full max / amax split the gradient between equal maxima, max(dim) gives it to the index."""
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    check_op([], lambda x: x.max(), arrays=[a], finite_differences=False)
    check_op([], lambda x: x.amax(1), arrays=[a], finite_differences=False)
    check_op([], lambda x: x.amin(0), arrays=[a], finite_differences=False)
    x = tg.tensor(a, requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    values, indices = x.max(1)
    values.sum().backward()
    np.testing.assert_array_equal(indices.detach().numpy(), [1, 0])
    np.testing.assert_array_equal(x.grad.detach().numpy(), [[0, 1, 0], [1, 0, 0]])


@FEW
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), data=st.data())
def test_reduce_hypothesis(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keepdim = data.draw(st.booleans())
    check_op([shape], lambda x: x.sum(dim, keepdim) * x.mean(dim, keepdim),
             lambda x: x.sum(dim, keepdims=keepdim) * x.mean(dim, keepdims=keepdim))
    check_op([shape], lambda x: x.amax(dim, keepdim), lambda x: x.max(dim, keepdims=keepdim))


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin_have_no_gradient(name, dim):
    data = np.random.default_rng(0).standard_normal((3, 4))
    x = tg.tensor(data, requires_grad=True)
    out = getattr(x, name)(dim)
    np.testing.assert_array_equal(out.detach().numpy(), getattr(np, name)(data, axis=dim))
    assert out.dtype == np.int64 and not out.requires_grad
    if dim is not None:
        kept = getattr(x, name)(dim, keepdim=True)
        np.testing.assert_array_equal(kept.detach().numpy(), getattr(np, name)(data, dim, keepdims=True))


# ---------------------------------------------------------------- movement

MOVEMENT = {  # name: (input shape, tinygrad_edu and torch fn, numpy fn)
    "reshape": ((3, 4), lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6)),
    "reshape_tuple": ((3, 4), lambda x: x.reshape((4, -1)), lambda x: x.reshape(4, -1)),
    "view": ((2, 3, 4), lambda x: x.view(-1), lambda x: x.reshape(-1)),
    "flatten": ((2, 3, 4), lambda x: x.flatten(), lambda x: x.reshape(-1)),
    "flatten_1": ((2, 3, 4), lambda x: x.flatten(1), lambda x: x.reshape(2, 12)),
    "flatten_0_1": ((2, 3, 4), lambda x: x.flatten(0, 1), lambda x: x.reshape(6, 4)),
    "transpose": ((2, 3, 4), lambda x: x.transpose(0, 2), lambda x: x.swapaxes(0, 2)),
    "transpose_neg": ((2, 3, 4), lambda x: x.transpose(-1, -2), lambda x: x.swapaxes(-1, -2)),
    "T": ((3, 4), lambda x: x.T, lambda x: x.T),
    "t": ((3, 4), lambda x: x.t(), lambda x: x.T),
    "permute": ((2, 3, 4), lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1)),
    "permute_tuple": ((2, 3, 4), lambda x: x.permute((1, 2, 0)), lambda x: x.transpose(1, 2, 0)),
    "squeeze": ((3, 1, 4, 1), lambda x: x.squeeze(), np.squeeze),
    "squeeze_dim": ((3, 1, 4, 1), lambda x: x.squeeze(1), lambda x: x.squeeze(1)),
    "squeeze_neg": ((3, 1, 4, 1), lambda x: x.squeeze(-1), lambda x: x.squeeze(-1)),
    "squeeze_noop": ((3, 4), lambda x: x.squeeze(0), lambda x: x),
    "unsqueeze": ((3, 4), lambda x: x.unsqueeze(0), lambda x: x[None]),
    "unsqueeze_neg": ((3, 4), lambda x: x.unsqueeze(-1), lambda x: x[..., None]),
    "expand": ((3, 1), lambda x: x.expand(2, 3, 4), lambda x: np.broadcast_to(x, (2, 3, 4))),
    "expand_minus1": ((3, 1), lambda x: x.expand(-1, 5), lambda x: np.broadcast_to(x, (3, 5))),
    "repeat": ((2, 3), lambda x: x.repeat(2, 1, 2), lambda x: np.tile(x, (2, 1, 2))),
}


@pytest.mark.parametrize("name", MOVEMENT)
def test_movement(name):
    shape, fn, np_fn = MOVEMENT[name]
    check_op([shape], fn, np_fn)


@pytest.mark.parametrize("name", ["reshape", "flatten", "transpose", "permute", "expand"])
def test_movement_non_contiguous(name):
    shape, fn, np_fn = MOVEMENT[name]
    check_op([shape], fn, np_fn, layout="transposed")


def test_view_as_and_expand_as():
    check_op([(3, 4), (2, 6)], lambda x, y: x.view_as(y) * y, lambda x, y: x.reshape(2, 6) * y)
    check_op([(3, 1), (2, 3, 4)], lambda x, y: x.expand_as(y) * y, lambda x, y: x * y)


ROWS = np.array([2, 0, 2])  # a repeated row: the gradients of the copies add up
MASK = np.array([True, False, True, True])
INDEXING = {
    "int": lambda x: x[1],
    "neg_int": lambda x: x[-1, 2],
    "slice": lambda x: x[1:3],
    "step": lambda x: x[::2, 1::2],
    "neg_step": lambda x: x[::-1],
    "column": lambda x: x[:, 1],
    "none": lambda x: x[None, :, 1:],
    "ellipsis": lambda x: x[..., 0],
    "index_array": lambda x: x[ROWS],
    "index_list": lambda x: x[[0, 2, 0]],
    "index_2d": lambda x: x[np.array([[0, 1], [2, 0]])],
    "index_pairs": lambda x: x[[0, 1, 1], [3, 0, 3]],
    "index_and_slice": lambda x: x[1:, ROWS[:2]],
    "bool_mask_array": lambda x: x[:, MASK],
    "bool_mask_tensor": lambda x: x[x > 0],
}


@pytest.mark.parametrize("name", INDEXING)
def test_getitem(name):
    fn = INDEXING[name]
    torch_fn = False if name == "neg_step" else None  # torch has no negative steps
    check_op([(3, 4)], fn, fn, torch_fn)  # numpy's indexing is the reference


def test_getitem_with_index_tensors():
    idx = tg.tensor([2, 0, 2])
    check_op([(3, 4)], lambda x: x[idx], lambda x: x[[2, 0, 2]], lambda x: x[idx.detach().numpy()])
    mask = tg.tensor([True, False, True])
    check_op([(3, 4)], lambda x: x[mask], lambda x: x[[0, 2]], lambda x: x[mask.detach().numpy()])


@pytest.mark.parametrize("pad, value", [((1, 2), 0.0), ((1, 0, 2, 1), 1.5),
                                        ((0, 0, 0, 0, 1, 1), 0.0)], ids=str)
def test_pad(pad, value):
    width = [(0, 0)] * 3
    for i in range(len(pad) // 2):
        width[2 - i] = (pad[2 * i], pad[2 * i + 1])
    check_op([(2, 3, 4)], lambda x: F.pad(x, pad, value=value),
             lambda x: np.pad(x, width, constant_values=value),
             lambda x: TF.pad(x, pad, value=value))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    shapes = [tuple(n + i if d == dim % 3 else n for d, n in enumerate(s))
              for i, s in enumerate(shapes)]  # the cat dim may differ
    check_op(shapes, lambda *xs: tg.cat(xs, dim), lambda *xs: np.concatenate(xs, dim),
             lambda *xs: torch.cat(xs, dim))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    check_op([(3, 4), (3, 4)], lambda *xs: tg.stack(xs, dim), lambda *xs: np.stack(xs, dim),
             lambda *xs: torch.stack(xs, dim))


def test_split_and_chunk():
    check_op([(2, 6)], lambda x: x.split(3, 1)[0] * x.split(3, 1)[1],
             lambda x: x[:, :3] * x[:, 3:])
    check_op([(5, 2)], lambda x: x.split([1, 4])[1], lambda x: x[1:])
    check_op([(5, 2)], lambda x: x.split(2)[-1], lambda x: x[4:])
    check_op([(2, 5)], lambda x: x.chunk(3, -1)[2] * 2 + x.chunk(3, -1)[0][:, :1],
             lambda x: x[:, 4:] * 2 + x[:, :1])
    shapes = [p.shape for p in tg.zeros(7, 3).chunk(3)]
    assert shapes == [(3, 3), (3, 3), (1, 3)]


def test_casts_keep_the_graph_only_for_floats():
    x = tg.tensor([1.5, -2.5], requires_grad=True)
    y = x.double() * tg.tensor([2.0, 3.0], dtype=tg.float64)
    assert y.dtype == np.float64 and y.requires_grad
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2.0, 3.0])
    for cast in (x.long(), x.int(), x.bool(), x.to(tg.int64)):
        assert not cast.requires_grad
    np.testing.assert_array_equal(x.long().detach().numpy(), [1, -2])  # truncation, like torch
    assert x.to(tg.float32) is x


# ---------------------------------------------------------------- softmax family

@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(name, dim):
    def np_log_softmax(x):
        z = x - x.max(dim, keepdims=True)
        return z - np.log(np.exp(z).sum(dim, keepdims=True))
    np_fn = np_log_softmax if name == "log_softmax" else lambda x: np.exp(np_log_softmax(x))
    check_op([(2, 3, 4)], lambda x: getattr(x, name)(dim), np_fn)
    check_op([(2, 3, 4)], lambda x: getattr(F, name)(x, dim), np_fn,
             lambda x: getattr(TF, name)(x, dim), layout="transposed")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_stable_for_huge_logits(name):
    logits = np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        check_op([], lambda x: getattr(F, name)(x, 1), None, lambda x: getattr(TF, name)(x, 1),
                 arrays=[logits], finite_differences=False)
        x = tg.tensor(logits, requires_grad=True)
        (getattr(x, name)(1) * tg.tensor([[1.0, 2.0, 3.0, 4.0]] * 2)).sum().backward()
    assert np.isfinite(x.grad.detach().numpy()).all()


def test_logsumexp():
    check_op([(3, 4)], lambda x: x.logsumexp(1), lambda x: np.log(np.exp(x).sum(1)))
    check_op([(3, 4)], lambda x: x.logsumexp(0, keepdim=True),
             lambda x: np.log(np.exp(x).sum(0, keepdims=True)))


# ---------------------------------------------------------------- losses

CLASSES = np.array([2, 0, 1, 2])  # targets for (4, 3) logits


def _probabilities(shape, seed=1):
    z = np.random.default_rng(seed).standard_normal(shape)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_class_indices(reduction, label_smoothing):
    kw = {"reduction": reduction, "label_smoothing": label_smoothing}
    check_op([(4, 3)], lambda x: F.cross_entropy(x, CLASSES, **kw), None,
             lambda x: TF.cross_entropy(x, torch.from_numpy(CLASSES), **kw))
    check_op([(4, 3)], lambda x: F.cross_entropy(x, tg.tensor(CLASSES), **kw), None,
             lambda x: TF.cross_entropy(x, torch.from_numpy(CLASSES), **kw))


def test_cross_entropy_matches_log_softmax_and_nll():
    check_op([(4, 3)], lambda x: F.cross_entropy(x, CLASSES),
             lambda x: -(x - np.log(np.exp(x).sum(1, keepdims=True)))[range(4), CLASSES].mean(),
             torch_fn=False)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_spatial_and_ignore_index(reduction):
    target = np.array([[0, 2, -100], [1, -100, 0]])  # (N, d) for (N, C, d) logits
    kw = {"reduction": reduction, "ignore_index": -100}
    check_op([(2, 3, 3)], lambda x: F.cross_entropy(x, target, **kw), None,
             lambda x: TF.cross_entropy(x, torch.from_numpy(target), **kw))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("kind", ["probabilities", "one_hot"])
def test_cross_entropy_soft_targets(kind, label_smoothing):
    target = _probabilities((4, 3)) if kind == "probabilities" else np.eye(3)[CLASSES]
    kw = {"label_smoothing": label_smoothing}
    check_op([(4, 3)], lambda x: F.cross_entropy(x, target, **kw), None,
             lambda x: TF.cross_entropy(x, torch.from_numpy(target), **kw))


def test_cross_entropy_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    target = np.array([1, 0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        check_op([], lambda x: F.cross_entropy(x, target), None,
                 lambda x: TF.cross_entropy(x, torch.from_numpy(target)), arrays=[logits],
                 finite_differences=False)
        loss = F.cross_entropy(tg.tensor(logits, requires_grad=True), target)
    assert np.isclose(loss.item(), (2e4 + 2e4 + np.log(2)) / 2)  # float32 logits


def test_cross_entropy_rejects_bad_targets():
    with pytest.raises(IndexError, match="cross_entropy.*out of range"):
        F.cross_entropy(tg.zeros(2, 3), np.array([0, 3]))
    with pytest.raises(RuntimeError, match=r"cross_entropy.*\(3,\).*\(2, 3\)"):
        F.cross_entropy(tg.zeros(2, 3), np.array([0, 1, 2]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction):
    check_op([(4, 3)], lambda x: F.nll_loss(F.log_softmax(x, 1), CLASSES, reduction=reduction),
             None, lambda x: TF.nll_loss(TF.log_softmax(x, 1), torch.from_numpy(CLASSES),
                                         reduction=reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(reduction):
    target = np.random.default_rng(2).uniform(0, 1, (3, 4))
    check_op([(3, 4)], lambda p: F.binary_cross_entropy(p, target, reduction=reduction),
             lambda p: _reduce(-(target * np.log(p) + (1 - target) * np.log(1 - p)), reduction),
             lambda p: TF.binary_cross_entropy(p, torch.from_numpy(target), reduction=reduction),
             low=0.05, high=0.95)
    check_op([(3, 4), (3, 4)], lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction),
             None, lambda p, y: TF.binary_cross_entropy(p, y, reduction=reduction), low=0.05,
             high=0.95)  # the target's gradient too


def test_binary_cross_entropy_at_zero_and_one():
    """Regression: p = 0 or 1 gave NaN gradients; PyTorch clamps the logs and the denominator."""
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    with np.errstate(over="raise", invalid="raise"):
        check_op([], lambda p: F.binary_cross_entropy(p, y, reduction="sum"), None,
                 lambda p: TF.binary_cross_entropy(p, torch.from_numpy(y), reduction="sum"),
                 arrays=[p], finite_differences=False)
    x = tg.tensor(p, requires_grad=True)
    F.binary_cross_entropy(x, y, reduction="none").sum().backward()
    assert np.isfinite(x.grad.detach().numpy()).all()


def test_binary_cross_entropy_rejects_logits():
    with pytest.raises(ValueError, match="binary_cross_entropy.*with_logits"):
        F.binary_cross_entropy(tg.tensor([1.5]), tg.tensor([1.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(reduction):
    target = np.random.default_rng(3).uniform(0, 1, (3, 4))
    check_op([(3, 4)],
             lambda x: F.binary_cross_entropy_with_logits(x, target, reduction=reduction),
             lambda x: _reduce(np.logaddexp(0, x) - target * x, reduction),
             lambda x: TF.binary_cross_entropy_with_logits(x, torch.from_numpy(target),
                                                           reduction=reduction), low=-4, high=4)
    check_op([(3, 4), (3, 4)], lambda x, y: F.binary_cross_entropy_with_logits(x, y), None,
             lambda x, y: TF.binary_cross_entropy_with_logits(x, y), low=0.1, high=0.9)


def test_binary_cross_entropy_with_logits_stable():
    logits = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    target = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        check_op([], lambda x: F.binary_cross_entropy_with_logits(x, target, reduction="none"),
                 lambda x: np.logaddexp(0, x) - target * x,
                 lambda x: TF.binary_cross_entropy_with_logits(x, torch.from_numpy(target),
                                                               reduction="none"),
                 arrays=[logits], finite_differences=False)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses(name, reduction):
    np_loss = {"mse_loss": np.square, "l1_loss": np.abs}[name]
    check_op([(3, 4), (3, 4)], lambda x, y: getattr(F, name)(x, y, reduction=reduction),
             lambda x, y: _reduce(np_loss(x - y), reduction),
             lambda x, y: getattr(TF, name)(x, y, reduction=reduction))


def test_losses_reject_unknown_reduction():
    for loss in (F.mse_loss, F.l1_loss, F.binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match=f"{loss.__name__}: reduction.*'avg'"):
            loss(tg.zeros(2), tg.zeros(2), reduction="avg")


def _reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


# ---------------------------------------------------------------- dropout

def test_dropout_train_is_seeded_scaled_and_masks_the_gradient():
    x = tg.ones(100, 50, requires_grad=True)
    tg.manual_seed(0)
    y = F.dropout(x, 0.3)
    tg.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, 0.3).detach().numpy(), y.detach().numpy())  # same seed, same mask
    assert set(np.unique(y.detach().numpy())) <= {0.0, np.float32(1 / 0.7)}
    assert abs((y.detach().numpy() == 0).mean() - 0.3) < 0.02
    w = tg.randn(100, 50)
    (y * w).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), y.detach().numpy() * w.detach().numpy(), rtol=1e-6)


def test_dropout_gradcheck():
    def seeded_dropout(x):
        tg.manual_seed(7)
        return F.dropout(x, 0.5) * x
    check_op([(4, 5)], seeded_dropout, torch_fn=False)


def test_dropout_eval_and_edge_probabilities():
    x = tg.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert x.dropout(0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).detach().numpy(), 0)
    with pytest.raises(ValueError, match="dropout.*1.5"):
        F.dropout(x, 1.5)


# ---------------------------------------------------------------- normalisation and pooling

@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 4)], ids=str)
def test_batch_norm_training(shape):
    check_op([shape, (3,), (3,)],
             lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             lambda x, w, b: _np_batch_norm(x, w, b),
             lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True))


def _np_batch_norm(x, w, b, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    x_hat = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return x_hat * w.reshape(bshape) + b.reshape(bshape)


@pytest.mark.parametrize("stats_type", ["numpy", "tensor"])
def test_batch_norm_running_stats(stats_type):
    """Training updates the running stats (unbiased variance); eval normalises with them."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 2, 2)) * 3 + 1
    mean, var = np.zeros(3), np.ones(3)
    stats = (mean, var) if stats_type == "numpy" else (tg.tensor(mean, dtype=tg.float64),
                                                      tg.tensor(var, dtype=tg.float64))
    F.batch_norm(tg.tensor(x, dtype=tg.float64), *stats, training=True, momentum=0.2)
    got_mean, got_var = (np.asarray(s) for s in stats)
    m = x.size // 3
    np.testing.assert_allclose(got_mean, 0.2 * x.mean((0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(got_var, 0.8 + 0.2 * x.var((0, 2, 3)) * m / (m - 1), rtol=1e-12)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    check_op([], lambda x, w, b: F.batch_norm(x, *stats, w, b, training=False),
             lambda x, w, b: (x - got_mean[:, None, None]) / np.sqrt(got_var[:, None, None] + 1e-5)
             * w[:, None, None] + b[:, None, None],
             lambda x, w, b: TF.batch_norm(x, torch.from_numpy(got_mean),
                                           torch.from_numpy(got_var), w, b, training=False),
             arrays=[x, w, b])


@pytest.mark.parametrize("normalized", [(4,), (3, 4)], ids=str)
def test_layer_norm(normalized):
    axes = tuple(range(-len(normalized), 0))

    def np_layer_norm(x, w, b):
        x_hat = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
        return x_hat * w + b
    check_op([(2, 3, 4), normalized, normalized],
             lambda x, w, b: F.layer_norm(x, normalized, w, b), np_layer_norm,
             lambda x, w, b: TF.layer_norm(x, normalized, w, b))
    check_op([(2, 3, 4)], lambda x: F.layer_norm(x, normalized), None,
             lambda x: TF.layer_norm(x, normalized), layout="transposed")


def test_layer_norm_rejects_wrong_shape():
    with pytest.raises(RuntimeError, match=r"layer_norm: expected input \(\.\.\., 5\), got"):
        F.layer_norm(tg.zeros(2, 4), 5)


@pytest.mark.parametrize("shape, size", [((2, 3, 6, 6), 1), ((2, 3, 6, 6), (2, 3)),
                                         ((1, 2, 5, 7), (3, 2)), ((1, 2, 4, 4), (None, 2))],
                         ids=str)
def test_adaptive_avg_pool2d(shape, size):
    check_op([shape], lambda x: F.adaptive_avg_pool2d(x, size), None,
             lambda x: TF.adaptive_avg_pool2d(x, size))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_soft_target_that_requires_grad_gets_its_gradient(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, probs = rng.normal(size=(4, 3, 2)), rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1)
    out = []
    for lib in (tg, torch):
        x = lib.tensor(logits, dtype=lib.float64, requires_grad=True)
        q = lib.tensor(probs, dtype=lib.float64, requires_grad=True)
        loss = lib.nn.functional.cross_entropy(x, q, reduction=reduction, label_smoothing=0.1)
        loss.sum().backward()
        out.append([loss.detach().numpy(), x.grad.numpy(), q.grad.numpy()])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_a_reductions_gradient_is_laid_out_like_its_input(op):
    """The gradient of a sum or mean over a batch-minor conv activation's spatial axes (global
    average pooling) is a broadcast in the activation's memory order, so the elementwise ops
    of backward meet one layout; the values are the plain broadcast's."""
    from tinygrad_edu import kernels
    rng = np.random.default_rng(0)
    x = kernels.batch_minor((4, 3, 5, 6), np.float32)
    x[...] = rng.standard_normal(x.shape)
    for source in (x, np.ascontiguousarray(x)):  # batch-minor, then (N, C, H, W) order
        t = tg.Tensor(source, requires_grad=True)
        z = t.relu()  # a batch-minor input keeps its layout through an elementwise op
        seen = []
        z.register_hook(lambda grad, seen=seen: seen.append(grad.detach().numpy()))
        getattr(z, op)((2, 3)).backward(tg.Tensor(np.arange(12, dtype=np.float32).reshape(4, 3)))
        g = seen[0]
        n = 30 if op == "mean" else 1
        np.testing.assert_array_equal(g, np.broadcast_to(
            (np.arange(12, dtype=np.float32).reshape(4, 3, 1, 1) / np.float32(n)), x.shape))
        order = np.argsort([-s for s in g.strides], kind="stable")
        expected = [1, 2, 3, 0] if source is x else [0, 1, 2, 3]
        assert [a for a in order if g.strides[a]] == [a for a in expected if g.strides[a]]
