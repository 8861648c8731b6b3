"""The backward pass: seeds, long chains, diamonds, un-broadcasting, freeing the graph,
retain_grad, accumulation, no_grad, custom Functions, and the gradcheck negative control."""
import gc
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
from tests.helpers import check_op
from tinygrad_edu.autograd import Function
from tinygrad_edu.testing import gradcheck


def leaf(*values, dtype=tg.float64):
    return tg.tensor(list(values), dtype=dtype, requires_grad=True)


# ---------------------------------------------------------------- seeding the pass

def test_backward_on_scalar_seeds_with_one():
    x = leaf(1.0, 2.0, 3.0)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2, 4, 6])


@pytest.mark.parametrize("kind", ["tensor", "ndarray", "list"])
def test_backward_with_explicit_gradient(kind):
    x = leaf(1.0, 2.0, 3.0)
    g = {"tensor": tg.tensor([1.0, -1.0, 0.5]), "ndarray": np.array([1.0, -1.0, 0.5]),
         "list": [1.0, -1.0, 0.5]}[kind]
    (x * x).backward(g)
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2, -4, 3])


def test_backward_on_non_scalar_without_gradient_raises():
    y = leaf(1.0, 2.0) * 2
    with pytest.raises(RuntimeError, match=r"backward: .*scalar outputs, got shape \(2,\)"):
        y.backward()


def test_backward_with_wrong_gradient_shape_raises():
    y = leaf(1.0, 2.0) * 2
    with pytest.raises(RuntimeError, match=r"backward: gradient has shape \(3,\), exp.*\(2,\)"):
        y.backward(np.ones(3))


def test_backward_without_graph_raises():
    with pytest.raises(RuntimeError, match="backward: this tensor does not require grad"):
        tg.tensor([1.0]).sum().backward()


def test_backward_on_a_leaf():
    x = leaf(1.0, 2.0)
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3, 4])


# ---------------------------------------------------------------- graph shapes

def test_chain_of_ten_thousand_ops():
    """The iterative toposort: no RecursionError, and the chain rule over every link."""
    x = leaf(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), [1.0001 ** 10_000], rtol=1e-10)


def test_diamond_accumulates_both_paths():
    x = leaf(0.5, -1.5)
    a = x * 3
    y = (a * a + a.exp()).sum()  # a feeds two consumers
    y.backward()
    a_ = 3 * x.detach().numpy()
    np.testing.assert_allclose(x.grad.detach().numpy(), 3 * (2 * a_ + np.exp(a_)))


def test_reused_input_in_one_op():
    x = leaf(3.0)
    (x * x + x).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [7.0])


def test_deep_diamonds_are_linear_not_exponential():
    """y = y + y fifty times has 2**50 paths: each node must be visited once."""
    x = leaf(1.0)
    y = x
    for _ in range(50):
        y = y + y
    y.sum().backward()
    assert x.grad.item() == 2.0 ** 50


def test_shared_subgraph_feeds_two_roots():
    x = leaf(2.0)
    h = x * x
    (h * 3).sum().backward(retain_graph=True)
    (h + 1).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [4 * 3 + 4])


@pytest.mark.parametrize("shape_x, shape_y", [((3, 1), (4,)), ((), (2, 3)), ((1, 3), (2, 1, 3)),
                                              ((2, 1, 1), (2, 3, 4))], ids=str)
def test_unbroadcasting_sums_to_the_input_shape(shape_x, shape_y):
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal(shape_x), dtype=tg.float64, requires_grad=True)
    y = tg.tensor(rng.standard_normal(shape_y), dtype=tg.float64, requires_grad=True)
    g = rng.standard_normal(np.broadcast_shapes(shape_x, shape_y))
    (x * y).backward(g)
    assert x.grad.shape == shape_x and y.grad.shape == shape_y
    full_x = np.broadcast_to(x.detach().numpy(), g.shape)
    full_y = np.broadcast_to(y.detach().numpy(), g.shape)
    np.testing.assert_allclose(x.grad.detach().numpy(), _sum_to(g * full_y, shape_x))
    np.testing.assert_allclose(y.grad.detach().numpy(), _sum_to(g * full_x, shape_y))


def _sum_to(g, shape):
    while g.ndim > len(shape):
        g = g.sum(0)
    return g.sum(tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)


def test_wrong_gradient_shape_from_a_function_names_the_op():
    class Broken(Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            return grad[:1]

    with pytest.raises(RuntimeError, match=r"Broken.backward returned a gradient of shape \(1,\)"):
        Broken.apply(leaf(1.0, 2.0, 3.0)).sum().backward()


# ---------------------------------------------------------------- freeing and retaining

def test_second_backward_raises_a_clear_error():
    x = leaf(1.0, 2.0)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_through_a_freed_subgraph_raises():
    x = leaf(1.0, 2.0)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="Exp: trying to backward through the graph a second"):
        (h * 2).sum().backward()


def test_retain_graph_allows_a_second_backward_and_accumulates():
    x = leaf(1.0, 2.0)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [4, 8])


def test_graph_is_freed_after_backward():
    """A kept loss must not keep the activations alive (PyTorch frees saved tensors)."""
    x = tg.randn(1000, requires_grad=True)
    hidden = (x * 2).exp()
    loss = (hidden * hidden).sum()
    hidden_ref, hidden_data = weakref.ref(hidden), weakref.ref(hidden.array)
    del hidden
    loss.backward()
    gc.collect()
    assert hidden_ref() is None and hidden_data() is None
    assert loss.requires_grad and loss.grad_fn is not None  # the root itself stays as it was


def test_retain_graph_keeps_the_graph():
    """retain_graph keeps what backward needs (the saved arrays) for a second pass. The graph
    holds nodes, not tensors: a deleted intermediate tensor goes at once, its array stays only
    because Mul saved it (PyTorch's rule)."""
    x = tg.randn(10, requires_grad=True)
    hidden = x.exp()
    loss = (hidden * hidden).sum()
    hidden_ref, data_ref = weakref.ref(hidden), weakref.ref(hidden.array)
    del hidden
    gc.collect()
    assert hidden_ref() is None and data_ref() is not None
    loss.backward(retain_graph=True)
    gc.collect()
    assert data_ref() is not None
    loss.backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 4 * np.exp(2 * x.detach().numpy()), rtol=1e-5)


def test_graph_does_not_keep_arrays_no_op_saved():
    """An activation that no backward needs is freed during the forward pass, as in PyTorch:
    the graph does not hold intermediate tensors (a ResNet-18 step kept 57 MB that way)."""
    x = tg.randn(1000, requires_grad=True)
    h = x * 2  # Mul saves x and 2, not h
    y = h.exp()  # Exp saves its output, not its input
    h_data = weakref.ref(h.array)
    del h
    gc.collect()
    assert h_data() is None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * np.exp(2 * x.detach().numpy()), rtol=1e-5)


def test_retain_grad_on_non_leaf():
    x = leaf(1.0, -2.0)
    h = x * 3
    h.retain_grad()
    other = x + 1
    (h * h + other).sum().backward()
    np.testing.assert_array_equal(h.grad.detach().numpy(), 2 * h.detach().numpy())
    np.testing.assert_array_equal(x.grad.detach().numpy(), 3 * 2 * h.detach().numpy() + 1)
    assert other.grad is None  # non-leaves keep no gradient unless asked


# ---------------------------------------------------------------- gradient accumulation

def test_gradients_accumulate_until_zeroed():
    x = leaf(1.0, 2.0)
    (x * 3).sum().backward()
    grad = x.grad
    (x * 3).sum().backward()
    assert x.grad is grad  # same Tensor object: optimizers may hold it
    np.testing.assert_array_equal(x.grad.detach().numpy(), [6, 6])
    x.grad.zero_()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3, 3])
    x.grad = None  # zero_grad(set_to_none=True), PyTorch's default
    (x * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [5, 5])


def test_gradients_never_alias_each_other_or_the_seed():
    x, y = leaf(1.0, 2.0), leaf(3.0, 4.0)
    seed = np.ones(2)
    (x + y).backward(seed)  # Add passes the same array to both parents
    x.grad.zero_()
    np.testing.assert_array_equal(y.grad.detach().numpy(), [1, 1])
    np.testing.assert_array_equal(seed, [1, 1])


def test_leaf_gradients_own_their_memory():
    """A GEMM's fresh weight gradient becomes .grad without a copy; views passed through (reshape,
    transpose) and arrays given to two parents are copied, so no .grad shares memory."""
    x = leaf(1.0, 2.0, 3.0, 4.0, 5.0, 6.0).reshape(2, 3)
    w = tg.tensor([[1.0, 0.5, -1.0], [0.0, 2.0, 1.0]], dtype=tg.float64, requires_grad=True)
    a = leaf(1.0, 2.0, 3.0, 4.0)
    seed = np.arange(4.0).reshape(2, 2)
    (a.reshape(2, 2).T + tg.nn.functional.linear(x, w) + w[:, :2]).backward(seed)
    for grad in (a.grad.array, w.grad.array):
        assert not np.shares_memory(grad, seed) and grad.flags.owndata
    np.testing.assert_array_equal(a.grad.detach().numpy(), seed.T.reshape(-1))
    expected = seed.T @ x.array
    expected[:, :2] += seed
    np.testing.assert_array_equal(w.grad.detach().numpy(), expected)


def test_zero_dim_gradients_support_in_place_ops():
    """Regression: 0-d results were numpy scalars, so zero_() on a 0-d grad raised."""
    x = tg.tensor(2.0, requires_grad=True)
    (x * x).backward()
    (x * x).backward()
    assert isinstance(x.grad.array, np.ndarray) and x.grad.item() == 8.0
    x.grad.zero_()
    assert x.grad.item() == 0.0


def test_float32_gradients_stay_float32():
    x = tg.randn(3, 4, requires_grad=True)
    w = tg.randn(4, 2, requires_grad=True)
    h = (x @ w).maximum(tg.zeros(2)).minimum(1.0)
    h.retain_grad()
    loss = ((h.sigmoid() * 2) ** 2).mean() + l2_norm(x)
    loss.backward()
    for t in (x, w, h):
        assert t.grad.dtype == np.float32


def l2_norm(x):
    return (x * x).sum().sqrt()


# ---------------------------------------------------------------- graph building switches

def test_requires_grad_propagates_and_constants_get_no_grad():
    x = leaf(1.0, 2.0)
    c = tg.tensor([3.0, 4.0], dtype=tg.float64)
    y = x * c
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    z = c * 2
    assert not z.requires_grad and z.grad_fn is None
    y.sum().backward()
    assert c.grad is None


def test_detach_cuts_the_graph():
    x = leaf(1.0, 2.0)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    (y * d).sum().backward()  # d is a constant here
    np.testing.assert_array_equal(x.grad.detach().numpy(), 2 * d.detach().numpy())


def test_no_grad_context_manager():
    x = leaf(1.0)
    with tg.no_grad():
        y = x * 2
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_no_grad_decorator_and_exceptions_restore_the_mode():
    @tg.no_grad()
    def double(t):
        return t * 2

    x = leaf(1.0)
    assert not double(x).requires_grad
    assert tg.is_grad_enabled()
    with pytest.raises(ZeroDivisionError), tg.no_grad():
        raise ZeroDivisionError
    assert tg.is_grad_enabled()


def test_needs_input_grad_is_passed_to_backward():
    seen = []

    class Record(Function):
        def forward(self, x, y):
            return x * y

        def backward(self, grad):
            seen.append(self.needs_input_grad)
            return grad, None

    x, c = leaf(1.0), tg.tensor([2.0], dtype=tg.float64)
    Record.apply(x, c).sum().backward()
    assert seen == [(True, False)]
    np.testing.assert_array_equal(x.grad.detach().numpy(), [1.0])


# ---------------------------------------------------------------- the oracle can fail

class Cube(Function):
    """x ** 3 with a correct backward."""

    def forward(self, x):
        self.save_for_backward(x)
        return x ** 3

    def backward(self, grad):
        return grad * 3 * self.saved[0] ** 2


class WrongCube(Cube):
    """The classic slip: forgets the power rule's factor."""

    def backward(self, grad):
        return grad * self.saved[0] ** 2


class SumOnesCube(Cube):
    """Ignores the upstream gradient: passes with all-ones seeds, fails with random ones."""

    def backward(self, grad):
        return 3 * self.saved[0] ** 2


def test_gradcheck_accepts_a_correct_backward():
    check_op([(3, 4)], Cube.apply, lambda x: x ** 3, lambda x: x ** 3)


@pytest.mark.parametrize("cls", [WrongCube, SumOnesCube])
def test_gradcheck_catches_a_wrong_backward(cls):
    x = tg.tensor(np.random.default_rng(0).uniform(0.5, 2, (3, 4)), requires_grad=True)
    with pytest.raises(AssertionError, match="gradcheck: backward disagrees"):
        gradcheck(cls.apply, x)
    with pytest.raises(AssertionError):
        check_op([(3, 4)], cls.apply, lambda x: x ** 3, lambda x: x ** 3, low=0.5)
