"""Double backward (`create_graph=True`, `tg.autograd.grad`): every op through `gradgradcheck`
(finite differences of the gradient, float64, random upstream gradients, w.r.t. the inputs and
the upstream gradient), a third order for the ops whose gradients are ops of their own, the
negative controls, and PyTorch parity of Hessian-vector products, gradient penalties, Newton's
method and the n-th derivative of tanh."""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tests.test_autograd import Cube  # x ** 3 with a first-order backward only
from tinygrad_edu import ops, ops_cnn
from tinygrad_edu.autograd import Function
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import gradgradcheck

MASK = np.random.default_rng(5).random((3, 4)) > 0.3
DROP = (MASK / 0.7).astype(np.float64)
LABELS = np.array([2, 0, 3])
SOFT = np.random.default_rng(6).dirichlet(np.ones(4), 3)
DIGITS = np.array([[1, 0], [2, 2]])


def batch_minor(shape, rng):
    """(N, C, H, W) values laid out as (C, H, W, N), a conv's output layout (fused batch norm)."""
    N, C, H, W = shape
    return rng.uniform(-2, 2, (C, H, W, N)).transpose(3, 0, 1, 2)


# name: (fn, input shapes, input range); one line per op and variant
OPS = {
    "add": (lambda x, y: x + y, [(3, 4), (4,)], (-2, 2)),
    "sub": (lambda x, y: x - y, [(3, 1), (3, 4)], (-2, 2)),
    "mul": (lambda x, y: x * y, [(3, 4), (3, 1)], (-2, 2)),
    "mul_constant": (lambda x: x * 3.0, [(3, 4)], (-2, 2)),
    "div": (lambda x, y: x / y, [(3, 4), (4,)], (0.5, 2)),
    "pow": (lambda x, y: x ** y, [(3, 4), (3, 4)], (0.5, 2)),
    "pow_scalar": (lambda x: x ** 3, [(3, 4)], (-2, 2)),
    "rpow": (lambda x: 2.0 ** x, [(3, 4)], (-2, 2)),
    "maximum": (lambda x, y: x.maximum(y), [(3, 4), (3, 4)], (-2, 2)),
    "minimum": (lambda x, y: x.minimum(y), [(3, 4), (4,)], (-2, 2)),
    "where": (lambda x, y: tg.where(MASK, x * x, y), [(3, 4), (3, 4)], (-2, 2)),
    "neg": (lambda x: -x, [(3, 4)], (-2, 2)),
    "exp": (lambda x: x.exp(), [(3, 4)], (-2, 2)),
    "log": (lambda x: x.log(), [(3, 4)], (0.5, 2)),
    "sqrt": (lambda x: x.sqrt(), [(3, 4)], (0.5, 2)),
    "abs": (lambda x: x.abs() * x, [(3, 4)], (-2, 2)),
    "clip": (lambda x: x.clip(-1, 1) * x, [(3, 4)], (-2, 2)),
    "relu": (lambda x: x.relu() * x, [(3, 4)], (-2, 2)),
    "leaky_relu": (lambda x: x.leaky_relu(0.1) * x, [(3, 4)], (-2, 2)),
    "sigmoid": (lambda x: x.sigmoid(), [(3, 4)], (-3, 3)),
    "tanh": (lambda x: x.tanh(), [(3, 4)], (-2, 2)),
    "gelu": (lambda x: x.gelu(), [(3, 4)], (-3, 3)),
    "softplus": (lambda x: x.softplus(beta=2.0, threshold=3.0), [(3, 4)], (-2, 2)),
    "cast": (lambda x: (x.float() ** 2).double(), [(3, 4)], (-2, 2)),
    "dropout": (lambda x: ops.Dropout.apply(x * x, mask=DROP), [(3, 4)], (-2, 2)),
    "sum": (lambda x: x.sum(1) ** 2, [(3, 4)], (-2, 2)),
    "sum_all": (lambda x: x.sum() ** 2, [(3, 4)], (-2, 2)),
    "mean_keepdim": (lambda x: x.mean((0, 2), keepdim=True) ** 2, [(2, 3, 4)], (-2, 2)),
    "amax": (lambda x: x.amax(1) ** 2, [(3, 4)], (-2, 2)),
    "max_all": (lambda x: x.max() ** 2, [(3, 4)], (-2, 2)),
    "max_dim": (lambda x: x.max(1).values ** 2, [(3, 4)], (-2, 2)),
    "min_dim_keepdim": (lambda x: x.min(0, keepdim=True).values ** 2, [(3, 4)], (-2, 2)),
    "matmul": (lambda x, y: x @ y, [(3, 4), (4, 2)], (-2, 2)),
    "matmul_batched": (lambda x, y: x @ y, [(2, 3, 4), (4, 2)], (-2, 2)),
    "matmul_vector_matrix": (lambda x, y: x @ y, [(4,), (4, 2)], (-2, 2)),
    "matmul_matrix_vector": (lambda x, y: x @ y, [(3, 4), (4,)], (-2, 2)),
    "matmul_dot": (lambda x, y: x @ y, [(4,), (4,)], (-2, 2)),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(2, 3, 4), (5, 4), (5,)], (-2, 2)),
    "linear_no_bias": (lambda x, w: F.linear(x, w), [(3, 4), (5, 4)], (-2, 2)),
    "reshape": (lambda x: x.reshape(4, 3) ** 2, [(3, 4)], (-2, 2)),
    "permute": (lambda x: x.permute(2, 0, 1) ** 2, [(2, 3, 4)], (-2, 2)),
    "expand": (lambda x: x.expand(2, 3, 4) ** 2, [(3, 1)], (-2, 2)),
    "getitem": (lambda x: x[1:, ::2] ** 2, [(3, 4)], (-2, 2)),
    "getitem_advanced": (lambda x: x[[0, 2, 0]] ** 2, [(3, 4)], (-2, 2)),
    "getitem_mask": (lambda x: x[MASK] ** 2, [(3, 4)], (-2, 2)),
    "pad": (lambda x: x.pad((1, 2, 0, 1)) ** 2, [(3, 4)], (-2, 2)),
    "cat": (lambda x, y: tg.cat([x * x, y], 1), [(3, 2), (3, 4)], (-2, 2)),
    "softmax": (lambda x: x.softmax(1), [(3, 4)], (-2, 2)),
    "log_softmax": (lambda x: x.log_softmax(-1), [(3, 4)], (-2, 2)),
    "cross_entropy": (lambda x: F.cross_entropy(x, LABELS), [(3, 4)], (-2, 2)),
    "cross_entropy_sum_smoothing": (lambda x: F.cross_entropy(
        x, LABELS, reduction="sum", label_smoothing=0.1), [(3, 4)], (-2, 2)),
    "cross_entropy_none_ignore": (lambda x: F.cross_entropy(
        x, np.array([1, -100, 3]), reduction="none"), [(3, 4)], (-2, 2)),
    "cross_entropy_probabilities": (lambda x: F.cross_entropy(x, SOFT), [(3, 4)], (-2, 2)),
    "cross_entropy_spatial": (lambda x: F.cross_entropy(x, DIGITS), [(2, 3, 2)], (-2, 2)),
    "cross_entropy_leaf_through_mul": (lambda x: F.cross_entropy(x * 2, LABELS), [(3, 4)],
                                       (-2, 2)),
    "bce_with_logits": (lambda x, y: F.binary_cross_entropy_with_logits(x, y), [(3, 4), (3, 4)],
                        (-2, 2)),
    "binary_cross_entropy": (lambda p, y: F.binary_cross_entropy(p, y, reduction="sum"),
                             [(3, 4), (3, 4)], (0.1, 0.9)),
    "batch_norm_2d": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                      [(4, 3), (3,), (3,)], (-2, 2)),
    "batch_norm_4d": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                      [(2, 3, 2, 2), (3,), (3,)], (-2, 2)),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)], (-2, 2)),
    "layer_norm_2_dims": (lambda x, w, b: F.layer_norm(x, (2, 3), w, b),
                          [(2, 2, 3), (2, 3), (2, 3)], (-2, 2)),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 2, 4, 4), (3, 2, 3, 3), (3,)],
               (-1, 1)),
    "conv2d_stride_dilation": (lambda x, w: F.conv2d(x, w, stride=2, dilation=2, padding=1),
                               [(2, 2, 6, 5), (2, 2, 2, 3)], (-1, 1)),
    "conv2d_groups": (lambda x, w: F.conv2d(x, w, groups=2), [(1, 4, 4, 4), (4, 2, 2, 2)],
                      (-1, 1)),
    "conv2d_pointwise": (lambda x, w: F.conv2d(x, w), [(2, 3, 3, 3), (2, 3, 1, 1)], (-1, 1)),
    "conv2d_same_even_kernel": (lambda x, w: F.conv2d(x, w, padding="same"),
                                [(1, 2, 4, 4), (2, 2, 2, 2)], (-1, 1)),
    "conv2d_squared": (lambda x, w: F.conv2d(x, w) ** 2, [(1, 2, 4, 4), (2, 2, 3, 3)], (-1, 1)),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2) ** 2, [(2, 2, 4, 4)], (-2, 2)),
    "max_pool2d_overlapping": (lambda x: F.max_pool2d(x, 3, 2, 1) ** 2, [(1, 2, 5, 5)], (-2, 2)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2) ** 2, [(2, 2, 4, 4)], (-2, 2)),
    "avg_pool2d_ceil_no_pad_count": (lambda x: F.avg_pool2d(
        x, 3, 2, 1, ceil_mode=True, count_include_pad=False) ** 2, [(1, 2, 5, 6)], (-2, 2)),
}
TOLERANCES = {"cast": {"eps": 1e-2, "atol": 1e-3, "rtol": 1e-3}}  # float32 in the middle


def leaves(shapes, low, high, seed=0):
    rng = np.random.default_rng(seed)
    return [tg.tensor(rng.uniform(low, high, s), dtype=tg.float64, requires_grad=True)
            for s in shapes]


@pytest.mark.parametrize("name", OPS)
def test_gradgradcheck(name):
    fn, shapes, (low, high) = OPS[name]
    assert gradgradcheck(fn, *leaves(shapes, low, high), **TOLERANCES.get(name, {}))


def test_fused_batch_norm_double_backward():
    """A batch-minor input takes batch norm's Numba path; its double backward is checked too."""
    rng = np.random.default_rng(1)
    x = tg.tensor(batch_minor((2, 3, 2, 2), rng), dtype=tg.float64, requires_grad=True)
    w, b = leaves([(3,), (3,)], -2, 2)
    fn = OPS["batch_norm_4d"][0]
    assert fn(x, w, b)._ctx.fused
    assert gradgradcheck(fn, x, w, b)


def grad_of(fn):
    """x -> d<fn(x...), v>/dx with a graph (v fixed), so gradgradcheck of it checks order 3."""
    def first(*xs):
        out = fn(*xs)
        v = np.random.default_rng(2).standard_normal(out.shape)
        return tg.autograd.grad(out, xs[0], tg.tensor(v, dtype=tg.float64), create_graph=True)[0]
    return first


THIRD_ORDER = ["tanh", "gelu", "getitem_advanced", "cross_entropy", "batch_norm_2d",
               "layer_norm", "conv2d_squared", "max_pool2d", "avg_pool2d", "softplus", "pow"]


@pytest.mark.parametrize("name", THIRD_ORDER)
def test_third_order(name):
    fn, shapes, (low, high) = OPS[name]
    assert gradgradcheck(grad_of(fn), *leaves(shapes, low, high))


def test_gradgradcheck_takes_a_tuple_and_grad_outputs():
    x, y = leaves([(3, 4), (3, 4)], -2, 2)
    v = np.random.default_rng(3).standard_normal((3, 4))
    assert gradgradcheck(lambda a, b: a * b * a, (x, y), grad_outputs=v)


# ---------------------------------------------------------------- negative controls


class DetachedTanh(ops.Tanh):
    """Right gradient values, but the saved output is taken as a constant: the second
    derivative through it is lost."""

    def backward_graph(self, grad):
        t = self.saved[0]
        return grad * (1 - t * t)


class WrongValueTanh(ops.Tanh):
    """Double backward of a wrong formula (1 - t instead of 1 - t^2): consistent with itself."""

    def backward_graph(self, grad):
        t = self.saved_tensors()[0]
        return grad * (1 - t)


def test_gradgradcheck_catches_a_lost_second_derivative():
    with pytest.raises(AssertionError, match="gradgradcheck: double backward disagrees"):
        gradgradcheck(DetachedTanh.apply, *leaves([(3, 4)], -2, 2))


def test_gradgradcheck_catches_a_wrong_create_graph_value():
    with pytest.raises(AssertionError, match="create_graph gradient of input 0 differs"):
        gradgradcheck(WrongValueTanh.apply, *leaves([(3, 4)], -2, 2))
    assert not gradgradcheck(WrongValueTanh.apply, *leaves([(3, 4)], -2, 2),
                             raise_exception=False)


def test_every_op_has_a_double_backward():
    """A Function of ops.py or ops_cnn.py without backward_graph would let its gradient be
    computed but refuse to be differentiated again: every one of them has it."""
    missing = [name for module in (ops, ops_cnn) for name, cls in vars(module).items()
               if isinstance(cls, type) and issubclass(cls, Function)
               and cls.__module__ == module.__name__ and cls is not ops.GraphRule
               and cls.backward_graph is Function.backward_graph]
    assert not missing


def test_op_without_double_backward_raises_naming_itself():
    (x,) = leaves([(3,)], -2, 2)
    (g,) = tg.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)  # right values
    with pytest.raises(RuntimeError, match="Cube: double backward is not implemented"):
        g.sum().backward()


# ---------------------------------------------------------------- classic uses


def test_x_grad_has_a_grad_fn_after_create_graph():
    x = tg.tensor(3.0, dtype=tg.float64, requires_grad=True)
    (x ** 3).backward(create_graph=True)
    assert x.grad.grad_fn is not None and x.grad.requires_grad
    (g2,) = tg.autograd.grad(x.grad, x)
    assert float(g2) == pytest.approx(18.0)  # d(3 x^2)/dx = 6 x


def test_tanh_derivatives_up_to_the_fourth():
    """DeZero's lesson: differentiate tanh again and again."""
    x = tg.tensor(0.7, dtype=tg.float64, requires_grad=True)
    derivatives = [x.tanh()]
    for _ in range(4):
        derivatives.append(tg.autograd.grad(derivatives[-1], x, create_graph=True)[0])
    t = math.tanh(0.7)
    s = 1 - t * t
    expected = [t, s, -2 * t * s, s * (6 * t * t - 2), 8 * t * s * (2 - 3 * t * t)]
    np.testing.assert_allclose([float(d) for d in derivatives], expected, rtol=1e-12)


def test_newtons_method_minimises_a_quartic():
    """x <- x - f'(x) / f''(x) on f(x) = x^4 - 2x^2 from x = 2 (DeZero's step 33): -> 1."""
    x = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    expected = 2.0
    for _ in range(8):
        (g,) = tg.autograd.grad(x ** 4 - 2 * x ** 2, x, create_graph=True)
        (h,) = tg.autograd.grad(g, x)
        x = tg.tensor(float(x) - float(g) / float(h), dtype=tg.float64, requires_grad=True)
        expected -= (4 * expected ** 3 - 4 * expected) / (12 * expected ** 2 - 4)
        assert float(x) == pytest.approx(expected, rel=1e-12)
    assert float(x) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------- PyTorch parity


def mlp_loss(F_, x, labels, w1, b1, w2, b2):
    return F_.cross_entropy(F_.linear(F_.linear(x, w1, b1).tanh(), w2, b2), labels)


def cnn_loss(F_, x, labels, wc, bc, wl, bl):
    h = F_.max_pool2d(F_.conv2d(x, wc, bc, padding=1).relu(), 2)
    return F_.cross_entropy(F_.linear(h.reshape(x.shape[0], -1), wl, bl), labels)


def cnn_bn_loss(F_, x, labels, wc, wn, bn, wl, bl):
    h = F_.conv2d(x, wc, stride=1, padding=1)
    h = F_.avg_pool2d(F_.batch_norm(h, None, None, wn, bn, training=True).relu(), 2)
    return F_.cross_entropy(F_.linear(h.reshape(x.shape[0], -1), wl, bl), labels)


def mlp_ln_loss(F_, x, labels, w1, wn, bn, w2):
    h = F_.gelu(F_.layer_norm(F_.linear(x, w1), (4,), wn, bn))
    return F_.binary_cross_entropy_with_logits(F_.linear(h, w2), F_.one_hot(labels, 2) * 1.0)


MODELS = {  # loss, input shape, parameter shapes, classes
    "mlp": (mlp_loss, (5, 3), [(4, 3), (4,), (3, 4), (3,)], 3),
    "cnn": (cnn_loss, (2, 1, 4, 4), [(2, 1, 3, 3), (2,), (3, 8), (3,)], 3),
    "cnn_batch_norm": (cnn_bn_loss, (3, 2, 4, 4), [(3, 2, 3, 3), (3,), (3,), (2, 12), (2,)], 2),
    "mlp_layer_norm_gelu": (mlp_ln_loss, (5, 3), [(4, 3), (4,), (4,), (2, 4)], 2),
}


def model_case(name):
    loss, x_shape, shapes, classes = MODELS[name]
    rng = np.random.default_rng(4)
    arrays = [rng.uniform(-1, 1, s) for s in [x_shape] + shapes]
    return loss, arrays, rng.integers(0, classes, x_shape[0])


@pytest.mark.parametrize("name", MODELS)
def test_hessian_vector_product_matches_torch(name):
    torch = pytest.importorskip("torch")
    loss, arrays, labels = model_case(name)
    vs = [np.random.default_rng(7 + i).standard_normal(a.shape) for i, a in enumerate(arrays)]

    x = tg.tensor(arrays[0], dtype=tg.float64)
    params = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays[1:]]
    grads = tg.autograd.grad(loss(F, x, labels, *params), params, create_graph=True)
    dot = sum((g * tg.tensor(v, dtype=tg.float64)).sum() for g, v in zip(grads, vs[1:]))
    hvp = tg.autograd.grad(dot, params)

    xt = torch.tensor(arrays[0])
    pt = [torch.tensor(a, requires_grad=True) for a in arrays[1:]]
    gt = torch.autograd.grad(loss(torch.nn.functional, xt, torch.tensor(labels), *pt), pt,
                             create_graph=True)
    dot_t = sum((g * torch.tensor(v)).sum() for g, v in zip(gt, vs[1:]))
    hvp_t = torch.autograd.grad(dot_t, pt)
    for a, b in zip(hvp, hvp_t):
        np.testing.assert_allclose(a.detach().numpy(), b.numpy(), rtol=1e-9, atol=1e-12)
    assert any(np.abs(b.numpy()).max() > 1e-3 for b in hvp_t)  # a non-trivial product


@pytest.mark.parametrize("name", MODELS)
def test_gradient_penalty_matches_torch(name):
    """||d loss / d x||^2 backpropagated to the weights (WGAN-GP's penalty)."""
    torch = pytest.importorskip("torch")
    loss, arrays, labels = model_case(name)

    x = tg.tensor(arrays[0], dtype=tg.float64, requires_grad=True)
    params = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays[1:]]
    (gx,) = tg.autograd.grad(loss(F, x, labels, *params), x, create_graph=True)
    (gx * gx).sum().backward()

    xt = torch.tensor(arrays[0], requires_grad=True)
    pt = [torch.tensor(a, requires_grad=True) for a in arrays[1:]]
    (gxt,) = torch.autograd.grad(loss(torch.nn.functional, xt, torch.tensor(labels), *pt), xt,
                                 create_graph=True)
    (gxt * gxt).sum().backward()
    np.testing.assert_allclose(gx.detach().numpy(), gxt.detach().numpy(), rtol=1e-10)
    for p, q in zip(params, pt):
        np.testing.assert_allclose(p.grad.detach().numpy(), q.grad.numpy(), rtol=1e-9,
                                   atol=1e-12)


TORCH_SAME = ["add", "sub", "mul", "div", "pow", "pow_scalar", "rpow", "maximum", "minimum",
              "neg", "exp", "log", "sqrt", "abs", "clip", "relu", "sigmoid", "tanh", "cast",
              "sum", "sum_all", "mean_keepdim", "amax", "max_all", "max_dim", "min_dim_keepdim",
              "matmul", "matmul_batched", "matmul_vector_matrix", "matmul_matrix_vector",
              "matmul_dot", "reshape", "permute", "expand", "getitem", "getitem_advanced",
              "softmax", "log_softmax"]  # the same code runs on torch tensors


def second_order(fn, arrays, tensor, grad):
    """d/d(inputs, v) of <d<fn(inputs), v>/d(inputs), u>: the quantity gradgradcheck checks,
    in one framework (`tensor` makes a float64 leaf, `grad` is its autograd.grad)."""
    rng = np.random.default_rng(8)
    xs = [tensor(a) for a in arrays]
    out = fn(*xs)
    v = tensor(rng.standard_normal(tuple(out.shape)))
    grads = grad(out, xs, v, create_graph=True)
    total = sum((g * tensor(rng.standard_normal(a.shape), False)).sum()
                for g, a in zip(grads, arrays))
    return [g.detach().numpy() for g in grad(total, xs + [v], None)]


@pytest.mark.parametrize("name", TORCH_SAME)
def test_double_backward_matches_torch(name):
    torch = pytest.importorskip("torch")
    fn, shapes, (low, high) = OPS[name]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(low, high, s) for s in shapes]
    ours = second_order(fn, arrays, lambda a, rg=True: tg.tensor(a, dtype=tg.float64,
                                                                 requires_grad=rg),
                        lambda o, i, g, **k: tg.autograd.grad(o, i, g, allow_unused=True,
                                                              materialize_grads=True, **k))
    theirs = second_order(fn, arrays, lambda a, rg=True: torch.tensor(a, requires_grad=rg),
                          lambda o, i, g, **k: torch.autograd.grad(o, i, g, allow_unused=True,
                                                                   materialize_grads=True, **k))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_tanh_derivatives_match_torch():
    torch = pytest.importorskip("torch")
    x = tg.tensor([-1.5, 0.3, 2.0], dtype=tg.float64, requires_grad=True)
    xt = torch.tensor([-1.5, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    y, yt = x.tanh(), xt.tanh()
    for _ in range(4):
        (y,) = tg.autograd.grad(y.sum(), x, create_graph=True)
        (yt,) = torch.autograd.grad(yt.sum(), xt, create_graph=True)
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12)


# ---------------------------------------------------------------- the PyTorch-surface ops (ops_extra)
_SCATTER_INDEX = np.array([[0, 1], [2, 0], [1, 3]])
EXTRA = {
    "cumsum": (lambda x: tg.cumsum(x, 1) ** 2, [(3, 4)]),
    "sin": (lambda x: tg.sin(x), [(3, 4)]),
    "cos": (lambda x: tg.cos(x), [(3, 4)]),
    "log1p": (lambda x: tg.log1p(x * x), [(3, 4)]),
    "expm1": (lambda x: tg.expm1(x), [(3, 4)]),
    "floor": (lambda x: tg.floor(x) * x, [(3, 4)]),
    "scatter_add": (lambda x, s: tg.scatter_add(x, 1, tg.tensor(_SCATTER_INDEX), s * s) * x,
                    [(3, 4), (3, 2)]),
    "einsum_mm": (lambda a, b: tg.einsum("ij,jk->ik", a, b) ** 2, [(3, 4), (4, 2)]),
    "einsum_batch": (lambda a, b: tg.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 2)]),
}


@pytest.mark.parametrize("name", list(EXTRA))
def test_gradgradcheck_extra_ops(name):
    fn, shapes = EXTRA[name]
    xs = leaves(shapes, -2, 2)
    assert gradgradcheck(fn, *xs)
    assert gradgradcheck(grad_of(fn), *xs)
