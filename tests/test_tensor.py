"""The Tensor object itself: creation, dtypes and casts, the global generator, comparisons and
logical ops, in-place methods, numpy interop, and the errors a user meets first."""
import operator

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.tensor import Tensor


@pytest.fixture
def default_float64():
    tg.set_default_dtype(tg.float64)
    yield
    tg.set_default_dtype(tg.float32)


# ---------------------------------------------------------------- creation and dtypes

@pytest.mark.parametrize("data, dtype", [([1.0, 2.0], np.float32), ([1, 2], np.int64),
                                         ([True, False], np.bool_), (3.5, np.float32),
                                         (7, np.int64), (np.arange(3.0), np.float64),
                                         (np.float64(1.5), np.float64),
                                         (np.arange(3, dtype=np.int32), np.int32)], ids=str)
def test_tensor_infers_dtype_like_torch(data, dtype):
    assert tg.tensor(data).dtype == dtype
    assert tg.tensor(tg.tensor(data)).dtype == dtype  # a tensor's copy keeps its dtype
    if torch_available():
        import torch
        assert str(torch.tensor(data).dtype).replace("torch.", "") == np.dtype(dtype).name


def test_the_tensor_constructor_uses_the_default_float_dtype_like_torch_Tensor():
    assert tg.Tensor(np.arange(3.0)).dtype == np.float32


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_tensor_copies_from_numpy_shares():
    arr = np.zeros(3, np.float32)
    copied, shared = tg.tensor(arr), tg.from_numpy(arr)
    arr[0] = 1
    assert copied.detach().numpy()[0] == 0 and shared.detach().numpy()[0] == 1
    assert tg.tensor(copied).detach().numpy() is not copied.detach().numpy()
    assert tg.tensor([1, 2], dtype=tg.float64).dtype == np.float64


@pytest.mark.parametrize("make", [tg.zeros, tg.ones, tg.empty, tg.rand, tg.randn])
def test_shape_creators(make):
    for t in (make(2, 3), make((2, 3)), make([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
    assert make(2, dtype=tg.float64).dtype == np.float64
    assert make(2, requires_grad=True).requires_grad
    assert make(()).shape == ()


def test_creation_values():
    np.testing.assert_array_equal(tg.zeros(2, 2).detach().numpy(), 0)
    np.testing.assert_array_equal(tg.ones(3).detach().numpy(), 1)
    np.testing.assert_array_equal(tg.eye(2).detach().numpy(), np.eye(2))
    assert tg.eye(2, 3).shape == (2, 3)
    np.testing.assert_array_equal(tg.arange(4).detach().numpy(), [0, 1, 2, 3])
    np.testing.assert_array_equal(tg.arange(1, 7, 2).detach().numpy(), [1, 3, 5])
    np.testing.assert_allclose(tg.linspace(0, 1, 5).detach().numpy(), [0, 0.25, 0.5, 0.75, 1])
    assert tg.arange(3).dtype == np.int64 and tg.arange(0, 1, 0.25).dtype == np.float32
    r = tg.rand(1000).detach().numpy()
    assert r.min() >= 0 and r.max() < 1
    assert abs(tg.randn(10_000).detach().numpy().std() - 1) < 0.05
    i = tg.randint(2, 5, (1000,))
    assert i.dtype == np.int64 and set(np.unique(i.detach().numpy())) == {2, 3, 4}
    assert sorted(tg.randperm(6).tolist()) == list(range(6))


def test_full_takes_its_dtype_from_the_fill_value():
    """Regression: full((2,), 3) was float32; torch.full gives int64 (bool for True)."""
    assert tg.full((2, 3), 1.5).dtype == np.float32
    assert tg.full((2,), 3).dtype == np.int64
    assert tg.full((2,), True).dtype == np.bool_
    assert tg.full(2, 3, dtype=tg.float64).dtype == np.float64
    np.testing.assert_array_equal(tg.full((2,), 7).detach().numpy(), [7, 7])


def test_like_creators_keep_shape_and_dtype():
    base = tg.ones(2, 3, dtype=tg.float64)
    for make in (tg.zeros_like, tg.ones_like, tg.rand_like, tg.randn_like, tg.empty_like):
        t = make(base)
        assert t.shape == (2, 3) and t.dtype == np.float64
    assert tg.zeros_like(tg.arange(3)).dtype == np.int64
    np.testing.assert_array_equal(tg.full_like(base, 2.0).detach().numpy(), 2)
    assert tg.ones_like(base, dtype=tg.float32).dtype == np.float32


def test_set_default_dtype(default_float64):
    assert tg.get_default_dtype() == np.float64
    for t in (tg.tensor([1.0]), tg.zeros(2), tg.randn(2), tg.arange(0, 1, 0.5), tg.eye(2)):
        assert t.dtype == np.float64
    assert tg.tensor([1]).dtype == np.int64  # integers are untouched
    assert (tg.arange(3) / 2).dtype == np.float64


def test_set_default_dtype_rejects_integers():
    with pytest.raises(TypeError, match="set_default_dtype: only floating dtypes.*int64"):
        tg.set_default_dtype(tg.int64)
    assert tg.get_default_dtype() == np.float32


def test_manual_seed_reproduces_every_random_source():
    def draw():
        return np.concatenate([tg.randn(3).detach().numpy(), tg.rand(3).detach().numpy(),
                               tg.randint(0, 100, (3,)).detach().numpy(), tg.randperm(5).detach().numpy(),
                               tg.nn.functional.dropout(tg.ones(8), 0.5).detach().numpy(),
                               tg.zeros(3).uniform_().detach().numpy(), tg.zeros(3).normal_().detach().numpy()])
    tg.manual_seed(123)
    first = draw()
    tg.manual_seed(123)
    np.testing.assert_array_equal(draw(), first)
    tg.manual_seed(124)
    assert not np.array_equal(draw(), first)


def test_rng_state_round_trip():
    tg.manual_seed(0)
    state = tg.get_rng_state()
    a = tg.randn(4).detach().numpy()
    tg.randn(10)
    tg.set_rng_state(state)
    np.testing.assert_array_equal(tg.randn(4).detach().numpy(), a)


# ---------------------------------------------------------------- properties and conversion

def test_properties():
    x = tg.zeros(2, 3, 4, requires_grad=True)
    assert (x.shape, x.ndim, x.dim(), x.numel(), len(x)) == ((2, 3, 4), 3, 3, 24, 2)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.is_leaf and x.grad_fn is None and x.grad is None
    y = x * 2
    assert not y.is_leaf and "grad_fn=<MulBackward>" in repr(y)
    assert "requires_grad=True" in repr(x)
    assert x.permute(2, 0, 1).T.shape == (3, 2, 4)


def test_conversions():
    x = tg.tensor([[1.5, -2.0]])
    assert isinstance(x.detach().numpy(), np.ndarray) and x.tolist() == [[1.5, -2.0]]
    assert tg.tensor([3.5]).item() == 3.5 and float(tg.tensor(2.5)) == 2.5
    assert int(tg.tensor(4)) == 4 and bool(tg.tensor(True))
    assert np.asarray(x) is x.detach().numpy()
    with pytest.raises(ValueError, match=r"item: only one-element tensors.*\(1, 2\)"):
        x.item()


@pytest.mark.parametrize("method, dtype", [("float", np.float32), ("double", np.float64),
                                           ("long", np.int64), ("int", np.int32),
                                           ("bool", np.bool_)])
def test_cast_methods(method, dtype):
    x = tg.tensor([0.0, 1.7, -2.2])
    out = getattr(x, method)()
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.detach().numpy(), x.detach().numpy().astype(dtype))
    assert x.to(dtype).dtype == dtype and x.type(dtype).dtype == dtype


def test_zero_dim_results_are_arrays():
    """Regression: ops on 0-d tensors stored numpy scalars, so in-place methods raised."""
    s = tg.tensor(3.0) * 2
    assert isinstance(s.detach().numpy(), np.ndarray)
    for t in (s, tg.tensor([1.0, 2.0])[0], tg.tensor([1.0, 2.0]).argmax(0), -tg.tensor(1.0)):
        assert isinstance(t.detach().numpy(), np.ndarray), type(t.detach().numpy())
    s.fill_(5.0)
    assert s.item() == 5.0


def test_in_place_methods_do_not_build_a_graph():
    x = tg.zeros(2, 3)
    x.fill_(2.0).add_(tg.ones(2, 3), alpha=0.5).mul_(2)
    np.testing.assert_array_equal(x.detach().numpy(), 5)
    x.copy_(np.arange(6).reshape(2, 3))
    x[0, 1] = 10
    x[1] = tg.tensor([7.0, 8.0, 9.0])
    np.testing.assert_array_equal(x.detach().numpy(), [[0, 10, 2], [7, 8, 9]])
    x.zero_()
    assert not x.detach().numpy().any() and x.grad_fn is None


def test_clone_is_a_copy_in_the_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    assert y.array is not x.array
    y.array[0] = 9
    assert x.detach().numpy()[0] == 1
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3, 3])


def test_numpy_operands_on_either_side():
    x = tg.tensor([1.0, 2.0])
    for out in (np.ones(2) + x, x + np.ones(2), np.float32(2) * x, x * np.float64(2)):
        assert isinstance(out, Tensor)
    np.testing.assert_array_equal((np.ones(2) - x).detach().numpy(), [0, -1])


# ---------------------------------------------------------------- comparisons and logic

COMPARISONS = {  # operator: (Python operator, numpy reference, method name)
    "==": (operator.eq, np.equal, "eq"), "!=": (operator.ne, np.not_equal, "ne"),
    "<": (operator.lt, np.less, "lt"), "<=": (operator.le, np.less_equal, "le"),
    ">": (operator.gt, np.greater, "gt"), ">=": (operator.ge, np.greater_equal, "ge"),
}


@pytest.mark.parametrize("op", COMPARISONS)
def test_comparisons_are_boolean_and_gradient_free(op):
    py_op, np_op, method = COMPARISONS[op]
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[3.0], [2.0]])
    x = tg.tensor(a, requires_grad=True)
    y = tg.tensor(b, requires_grad=True)
    for other, ref in ((y, b), (2.0, 2.0)):
        out = py_op(x, other)
        assert out.dtype == np.bool_ and not out.requires_grad and out.grad_fn is None
        np.testing.assert_array_equal(out.detach().numpy(), np_op(a, ref))
    np.testing.assert_array_equal(getattr(x, method)(y).detach().numpy(), np_op(a, b))


def test_logical_ops():
    p = tg.tensor([True, True, False, False])
    q = tg.tensor([True, False, True, False])
    np.testing.assert_array_equal((p & q).detach().numpy(), [1, 0, 0, 0])
    np.testing.assert_array_equal((p | q).detach().numpy(), [1, 1, 1, 0])
    np.testing.assert_array_equal((p ^ q).detach().numpy(), [0, 1, 1, 0])
    np.testing.assert_array_equal((~p).detach().numpy(), [0, 0, 1, 1])
    np.testing.assert_array_equal(p.logical_not().detach().numpy(), [0, 0, 1, 1])
    np.testing.assert_array_equal(p.logical_and(q).detach().numpy(), (p & q).detach().numpy())
    np.testing.assert_array_equal(p.logical_or(q).detach().numpy(), (p | q).detach().numpy())
    np.testing.assert_array_equal(p.logical_xor(q).detach().numpy(), (p ^ q).detach().numpy())
    assert (p | q).dtype == np.bool_
    assert bool(p.any()) and not bool(p.all())
    x = tg.tensor([1.0, np.nan, np.inf])
    np.testing.assert_array_equal(x.isnan().detach().numpy(), [0, 1, 0])
    np.testing.assert_array_equal(x.isfinite().detach().numpy(), [1, 0, 0])
    assert tg.tensor([1.0, 2.0]).allclose(np.array([1.0, 2.0 + 1e-9]))


def test_accuracy_idiom():
    logits = tg.tensor([[0.1, 2.0], [3.0, -1.0], [0.0, 1.0]])
    labels = tg.tensor([1, 0, 0])
    assert (logits.argmax(1) == labels).sum().item() == 2
    assert (logits.argmax(dim=1) == labels).float().mean().item() == pytest.approx(2 / 3)


# ---------------------------------------------------------------- errors that speak to the user

def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="requires_grad: only floating point.*int64"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="requires_grad: only floating point.*int32"):
        tg.tensor([1, 2], dtype=tg.int32).requires_grad_()
    with pytest.raises(RuntimeError, match="requires_grad: .*bool"):
        tg.zeros(2, dtype=tg.bool_, requires_grad=True)


def test_matmul_shape_errors_name_both_shapes():
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(2, 3\) and \(4, 2\).*3 != 4"):
        tg.zeros(2, 3) @ tg.zeros(4, 2)
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(3,\) and \(4,\)"):
        tg.zeros(3) @ tg.zeros(4)
    with pytest.raises(RuntimeError, match=r"matmul: the batch dim.*\(2, 3, 4\) and \(5, 4, 6\)"):
        tg.zeros(2, 3, 4) @ tg.zeros(5, 4, 6)
    with pytest.raises(RuntimeError, match="matmul: both arguments need at least 1 dim"):
        tg.zeros(3) @ tg.tensor(2.0)


@pytest.mark.parametrize("call, message", [
    (lambda: tg.zeros(2, 3).reshape(4, 2), r"reshape: shape \(4, 2\) is invalid .*\(2, 3\)"),
    (lambda: tg.zeros(2, 3).permute(0, 0), r"permute: \(0, 0\) is not a permutation"),
    (lambda: tg.zeros(3).expand(1), r"expand: cannot expand shape \(3,\) to \(1,\)"),
    (lambda: tg.zeros(2, 3).expand(2, 4), r"expand: cannot expand shape \(2, 3\) to \(2, 4\)"),
    (lambda: tg.cat([tg.zeros(2, 3), tg.zeros(3, 2)]), r"cat: tensor 1 has shape \(3, 2\)"),
    (lambda: tg.stack([tg.zeros(2), tg.zeros(3)]), r"stack: all tensors must have the same"),
    (lambda: tg.zeros(5).split([2, 2]), r"split: sizes \[2, 2\] do not add up to 5"),
    (lambda: tg.zeros(2).clip(), "clip: at least one of min and max"),
    (lambda: tg.zeros(2).pad((1, 1, 1)), r"pad: expected an even number"),
], ids=["reshape", "permute", "expand_shrink", "expand_mismatch", "cat", "stack", "split",
        "clip", "pad"])
def test_shape_errors(call, message):
    with pytest.raises((RuntimeError, ValueError), match=message):
        call()


@pytest.mark.parametrize("expr, dtype", [
    (lambda i, f: i * 0.5, np.float32), (lambda i, f: 0.5 * i, np.float32),
    (lambda i, f: i / 2, np.float32), (lambda i, f: 2 / i, np.float32),
    (lambda i, f: i + 1, np.int64), (lambda i, f: 1 - i, np.int64),
    (lambda i, f: i * f, np.float32), (lambda i, f: f - i, np.float32),
    (lambda i, f: i ** 0.5, np.float32), (lambda i, f: f.double() * i, np.float64),
], ids=["i*0.5", "0.5*i", "i/2", "2/i", "i+1", "1-i", "i*f", "f-i", "i**0.5", "f64*i"])
def test_integer_and_float_operands_promote_like_torch(expr, dtype):
    """An integer tensor meeting a float (number or tensor) gives the float's dtype, as in
    PyTorch; numpy alone would give float64 for int64 with float32."""
    i, f = tg.tensor([1, 2, 3]), tg.tensor([0.5, 1.0, 2.0])
    assert expr(i, f).dtype == dtype
    torch = pytest.importorskip("torch")
    t = expr(torch.tensor([1, 2, 3]), torch.tensor([0.5, 1.0, 2.0]))
    assert str(t.dtype) == f"torch.{np.dtype(dtype).name}"
