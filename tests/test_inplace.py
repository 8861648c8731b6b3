"""PyTorch idioms on in-place ops, views and assignment: tinygrad_edu gives torch's values and
gradients, or torch's refusal (issue 13).

Each idiom is written once against `lib` (tinygrad_edu or torch: the APIs are the same) and
returns the tensors to compare. With torch installed both run in float64 and must agree to 1e-12;
without it, the NumPy expectations below are the oracle (a subset of the idioms).
"""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg

try:
    import torch
except ImportError:
    torch = None

X = np.array([[0.5, -1.2, 2.0, 0.3], [1.5, 0.7, -0.4, -2.2], [0.9, -0.1, 1.3, 0.6]])
O = np.array([[1.1, 0.4, -0.6, 2.0], [0.8, -1.5, 0.3, 0.2], [-0.7, 0.5, 1.9, -1.0]])
W = np.array([[0.3, -0.7, 1.1, 0.9], [-0.2, 0.4, 0.8, -1.3], [1.6, 0.1, -0.5, 0.7]])


def leaf(lib, values):
    return lib.tensor(np.array(values), dtype=lib.float64, requires_grad=True)


def const(lib, values):
    return lib.tensor(np.array(values), dtype=lib.float64)


def to_numpy(t):
    if t is None:
        return None
    return np.array(t.detach().numpy() if hasattr(t, "detach") else t, dtype=np.float64)


def compare(idiom, expected=None):
    """Run the idiom on tinygrad_edu; check it against torch (and NumPy when given)."""
    ours = [to_numpy(t) for t in idiom(tg)]
    refs = []
    if torch is not None:
        refs.append([to_numpy(t) for t in idiom(torch)])
    if expected is not None:
        refs.append([None if e is None else np.asarray(e, np.float64) for e in expected])
    if not refs:
        pytest.skip("torch is not installed and this idiom has no NumPy expectation")
    for ref in refs:
        assert len(ours) == len(ref)
        for i, (a, b) in enumerate(zip(ours, ref)):
            if b is None or a is None:
                assert a is None and b is None, f"output {i}: {a} vs {b}"
                continue
            assert a.shape == b.shape, f"output {i}: shape {a.shape} vs {b.shape}"
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"output {i}")


def refuses(idiom, match: str | None = None):
    """Both frameworks refuse the idiom with a RuntimeError (ours says why); without torch,
    ours alone."""
    if torch is not None:
        with pytest.raises(RuntimeError):
            idiom(torch)
    with pytest.raises(RuntimeError, match=match):
        idiom(tg)


# ---------------------------------------------------------------- every in-place op
# (name, op applied to y = 1.5 * x, with o a second leaf); positive=True feeds positive values
INPLACE = [
    ("add_", lambda y, o: y.add_(o), False),
    ("add_alpha", lambda y, o: y.add_(o, alpha=2.5), False),
    ("add_scalar", lambda y, o: y.add_(3.0), False),
    ("sub_", lambda y, o: y.sub_(o), False),
    ("sub_alpha", lambda y, o: y.sub_(o, alpha=0.5), False),
    ("mul_", lambda y, o: y.mul_(o), False),
    ("mul_scalar", lambda y, o: y.mul_(3.0), False),
    ("mul_broadcast", lambda y, o: y.mul_(o[0]), False),
    ("div_", lambda y, o: y.div_(o), True),
    ("pow_scalar", lambda y, o: y.pow_(2), False),
    ("pow_tensor", lambda y, o: y.pow_(o), True),
    ("clamp_", lambda y, o: y.clamp_(-0.5, 0.9), False),
    ("clamp_min_", lambda y, o: y.clamp_min_(0.2), False),
    ("clamp_max_", lambda y, o: y.clamp_max_(0.2), False),
    ("neg_", lambda y, o: y.neg_(), False),
    ("exp_", lambda y, o: y.exp_(), False),
    ("log_", lambda y, o: y.log_(), True),
    ("sqrt_", lambda y, o: y.sqrt_(), True),
    ("rsqrt_", lambda y, o: y.rsqrt_(), True),
    ("abs_", lambda y, o: y.abs_(), False),
    ("relu_", lambda y, o: y.relu_(), False),
    ("sigmoid_", lambda y, o: y.sigmoid_(), False),
    ("tanh_", lambda y, o: y.tanh_(), False),
    ("square_", lambda y, o: y.square_(), False),
    ("reciprocal_", lambda y, o: y.reciprocal_(), True),
    ("sign_", lambda y, o: y.sign_(), False),
    ("fill_", lambda y, o: y.fill_(2.0), False),
    ("fill_tensor", lambda y, o: y.fill_(o[1, 2]), False),
    ("zero_", lambda y, o: y.zero_(), False),
    ("copy_", lambda y, o: y.copy_(o), False),
    ("copy_broadcast", lambda y, o: y.copy_(o[2]), False),
    ("masked_fill_", lambda y, o: y.masked_fill_(o > 0.3, -1.0), False),
    ("masked_fill_tensor", lambda y, o: y.masked_fill_(o > 0.3, o[0, 0]), False),
    ("addcmul_", lambda y, o: y.addcmul_(o, o, value=0.5), False),
    ("addcdiv_", lambda y, o: y.addcdiv_(o, o * o + 1, value=2.0), False),
    ("lerp_", lambda y, o: y.lerp_(o, 0.25), False),
]


def _iadd(y, o):
    y += o
    return y


def _isub(y, o):
    y -= o * 2
    return y


def _imul(y, o):
    y *= o
    return y


def _idiv(y, o):
    y /= o
    return y


def _ipow(y, o):
    y **= 3
    return y


INPLACE += [("__iadd__", _iadd, False), ("__isub__", _isub, False), ("__imul__", _imul, False),
            ("__itruediv__", _idiv, True), ("__ipow__", _ipow, False)]


def write_idiom(op, positive: bool = False, returns_self: bool = False):
    """y = 1.5 x, then op(y, o) writes to y (or a view of it), then a weighted sum backward:
    y's value and the gradients of both leaves x and o."""
    def idiom(lib):
        x = leaf(lib, np.abs(X) + 0.1 if positive else X)
        o = leaf(lib, np.abs(O) + 0.2 if positive else O)
        y = x * 1.5
        out = op(y, o)
        assert out is y or not returns_self
        (y * const(lib, W)).sum().backward()
        return [y, x.grad, o.grad]
    return idiom


@pytest.mark.parametrize("name,op,positive", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_op_matches_torch(name, op, positive):
    compare(write_idiom(op, positive, returns_self=True))


def test_mul_after_mul_gives_the_chained_gradient_numpy():
    def idiom(lib):
        x = leaf(lib, [1.0, 2.0, 3.0])
        y = x * 2
        y.mul_(3)
        y.sum().backward()
        return [y, x.grad]
    compare(idiom, expected=[[6.0, 12.0, 18.0], [6.0, 6.0, 6.0]])


def test_iadd_updates_in_place_and_aliases_see_it():
    def idiom(lib):
        x = leaf(lib, [1.0, 2.0])
        y = x * 1
        alias = y
        y += const(lib, [10.0, 20.0])
        assert alias is y
        (alias * alias).sum().backward()
        return [alias, x.grad]
    compare(idiom, expected=[[11.0, 22.0], [22.0, 44.0]])


def test_manual_sgd_step_under_no_grad_updates_the_parameters():
    def idiom(lib):
        w = leaf(lib, [[0.5, -1.0], [2.0, 0.25]])
        x = const(lib, [[1.0, 2.0]])
        for _ in range(3):
            loss = ((x @ w) ** 2).sum()
            loss.backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
            w.grad = None
        return [w]
    compare(idiom)


def test_manual_sgd_on_a_model_changes_it_like_torch():
    tg.manual_seed(0)
    model = tg.nn.Linear(3, 2)
    before = model.weight.detach().numpy().copy()
    loss = model(tg.ones(4, 3)).sum()
    loss.backward()
    with tg.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    np.testing.assert_allclose(model.weight.detach().numpy(), before - 0.5 * 4.0, rtol=1e-6)


def test_inplace_on_a_constant_with_a_grad_operand_makes_it_require_grad():
    def idiom(lib):
        w = leaf(lib, [1.0, -2.0, 3.0])
        a = lib.zeros(3, dtype=lib.float64)
        a.add_(w * w)
        (a * const(lib, [1.0, 2.0, 3.0])).sum().backward()
        assert a.requires_grad and not a.is_leaf
        return [a, w.grad]
    compare(idiom, expected=[[1.0, 4.0, 9.0], [2.0, -8.0, 18.0]])


def test_relu_inplace_module_matches_torch():
    def idiom(lib):
        x = leaf(lib, X)
        lin = x * 2 - 0.5
        out = lib.nn.ReLU(inplace=True)(lin)
        assert out is lin
        (out * const(lib, W)).sum().backward()
        return [out, x.grad]
    compare(idiom)


# ---------------------------------------------------------------- refusals


def test_inplace_on_a_leaf_that_requires_grad_is_refused():
    refuses(lambda lib: leaf(lib, [1.0]).add_(1), "leaf Variable that requires grad")


def test_inplace_on_a_view_of_a_leaf_is_refused():
    refuses(lambda lib: leaf(lib, X)[0].mul_(2), "view of a leaf Variable")


def test_inplace_on_a_leaf_inside_no_grad_is_allowed_and_bumps_the_version():
    w = leaf(tg, [1.0, 2.0])
    with tg.no_grad():
        w.add_(1)
    assert w._version == 1 and w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.detach().numpy(), [2.0, 3.0])


def _saved_then_modified(first, then):
    def idiom(lib):
        x = leaf(lib, np.abs(X) + 0.1)
        y = x * 1
        z = first(y)
        then(y, z)
        z.sum().backward()
    return idiom


SAVED_MODIFIED = [
    ("exp saves its result", lambda y: y.exp(), lambda y, z: z.add_(1)),
    ("sigmoid saves its result", lambda y: y.sigmoid(), lambda y, z: z.mul_(2)),
    ("tanh saves its result", lambda y: y.tanh(), lambda y, z: z.sub_(1)),
    ("relu saves its result", lambda y: y.relu(), lambda y, z: z.add_(1)),
    ("sqrt saves its result", lambda y: y.sqrt(), lambda y, z: z.mul_(2)),
    ("pow saves its input", lambda y: y ** 2, lambda y, z: y.add_(1)),
    ("log saves its input", lambda y: y.log(), lambda y, z: y.mul_(2)),
    ("y * y saves y", lambda y: y * y, lambda y, z: y.zero_()),
    ("matmul saves its inputs", lambda y: y @ y.T, lambda y, z: y.add_(1)),
    ("setitem into a saved input", lambda y: y.exp() * y, lambda y, z: y.__setitem__(0, 1.0)),
    ("exp_ then mul_", lambda y: y.exp_(), lambda y, z: z.mul_(2)),
    ("y.mul_(y) keeps y as its saved operand", lambda y: y.mul_(y), lambda y, z: None),
    ("a write through a detached alias", lambda y: y.exp(), lambda y, z: z.detach().zero_()),
    ("a write through a view", lambda y: y.sigmoid(), lambda y, z: z[0].zero_()),
]


@pytest.mark.parametrize("name,first,then", SAVED_MODIFIED, ids=[c[0] for c in SAVED_MODIFIED])
def test_modifying_a_saved_tensor_refuses_backward(name, first, then):
    refuses(_saved_then_modified(first, then), "modified by an inplace operation")


ALLOWED_AFTER = [
    ("y * 2 saves no y", lambda y: y * 2, lambda y, z: y.add_(1)),
    ("y + 1 saves nothing", lambda y: y + 1, lambda y, z: y.mul_(3)),
    ("sum saves nothing", lambda y: y.sum(), lambda y, z: y.zero_()),
    ("pow's result is not saved", lambda y: y ** 2, lambda y, z: z.add_(1)),
    ("y / 2 saves no y", lambda y: y / 2, lambda y, z: y.add_(1)),
]


@pytest.mark.parametrize("name,first,then", ALLOWED_AFTER, ids=[c[0] for c in ALLOWED_AFTER])
def test_modifying_an_unsaved_tensor_keeps_backward_working(name, first, then):
    def idiom(lib):
        x = leaf(lib, np.abs(X) + 0.1)
        y = x * 1
        z = first(y)
        then(y, z)
        z.sum().backward()
        return [z, x.grad]
    compare(idiom)


def test_refusal_names_the_saving_op_and_the_modifying_op():
    x = leaf(tg, [1.0, 2.0])
    y = x.exp()
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"Exp saved its output .* modified by add_.*"
                                           r"version 1; expected version 0"):
        y.sum().backward()


def test_result_of_another_shape_is_refused():
    def idiom(lib):
        x = lib.zeros(4)
        x += lib.zeros(3, 4)
    refuses(idiom, r"output with shape \[4\] doesn't match the broadcast shape \[3, 4\]")


def test_float_result_into_an_integer_tensor_is_refused():
    def idiom(lib):
        t = lib.tensor([1, 2, 3])
        t += 0.5
    refuses(idiom, "can't be cast")


def test_integer_tensor_in_place_with_integers_works():
    def idiom(lib):
        t = lib.tensor([1, 2, 3])
        t *= 2
        t += lib.tensor([1, 1, 1])
        return [t]
    compare(idiom, expected=[[3, 5, 7]])


def test_write_to_an_expanded_tensor_is_refused():
    def idiom(lib):
        x = lib.tensor([1.0, 2.0])
        x.expand(3, 2).add_(1)
    refuses(idiom, "more than one element")


def test_inplace_on_a_split_piece_that_requires_grad_is_refused_naming_it():
    def idiom(lib):
        x = leaf(lib, X) * 1
        a, _b = x.split(2, dim=0)
        a.mul_(2)
    refuses(idiom, "several views")


# ---------------------------------------------------------------- views


VIEWS = [
    ("row", lambda y, o: y[0].mul_(2)),
    ("column of the transpose", lambda y, o: y.T[1].add_(o[:, 1])),
    ("slice +=", lambda y, o: y[:, 1:3].__iadd__(o[:, :2])),
    ("view then setitem", lambda y, o: y.view(12).__setitem__(3, o[0, 0])),
    ("flatten (contiguous: a view) then fill_", lambda y, o: y.flatten()[5:8].fill_(0.5)),
    ("transpose then mul_", lambda y, o: y.transpose(0, 1).mul_(o.T)),
    ("permute then copy_", lambda y, o: y.permute(1, 0)[0].copy_(o[:, 3])),
    ("unsqueeze then zero_", lambda y, o: y.unsqueeze(0)[0, 1].zero_()),
    ("narrow then mul_", lambda y, o: y.narrow(1, 1, 2).mul_(3)),
    ("view of a view of a view", lambda y, o: y[1:][0][2:].__setitem__(0, 5.0)),
    ("select then exp_", lambda y, o: y.select(1, 2).exp_()),
    ("mT then relu_", lambda y, o: y.mT.relu_()),
    ("reshape (a view) then div_", lambda y, o: y.reshape(2, 6).div_(2)),
    ("squeeze then sigmoid_", lambda y, o: y[0:1].squeeze(0).sigmoid_()),
]


@pytest.mark.parametrize("name,op", VIEWS, ids=[c[0] for c in VIEWS])
def test_write_through_a_view_reaches_the_base_and_its_gradient(name, op):
    compare(write_idiom(op))


def test_row_view_write_numpy_expectation():
    def idiom(lib):
        x = leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
        y = x * 1
        y[0].mul_(10)
        y.sum().backward()
        return [y, x.grad]
    compare(idiom, expected=[[[10.0, 20.0], [3.0, 4.0]], [[10.0, 10.0], [1.0, 1.0]]])


def test_a_view_sees_a_later_write_to_its_base():
    def idiom(lib):
        x = leaf(lib, X)
        y = x * 1
        v = y[0]
        y.mul_(2)
        (v * const(lib, W[0])).sum().backward()
        return [v, x.grad]
    compare(idiom)


def test_a_sibling_view_sees_a_write_through_another_view():
    def idiom(lib):
        x = leaf(lib, X)
        y = x * 1
        a, b = y[:, 0], y[0]
        a.mul_(3)
        (b * const(lib, W[0])).sum().backward()
        return [b, x.grad]
    compare(idiom)


def test_views_share_memory_and_the_version_counter():
    x = tg.zeros(3, 4)
    for v in (x[0], x.T, x.view(12), x.reshape(2, 6), x.unsqueeze(1), x.narrow(0, 1, 2),
              x.permute(1, 0), x.flatten(), x.mT, x.detach()):
        before = x._version
        v.add_(1)
        assert x._version == before + 1 == v._version
    assert x.detach().numpy().sum() > 0


def test_view_refuses_strides_that_need_a_copy_reshape_copies():
    x = tg.tensor(X, dtype=tg.float64)
    with pytest.raises(RuntimeError, match=r"view size is not compatible.*Use \.reshape"):
        x.T.view(-1)
    if torch is not None:
        with pytest.raises(RuntimeError):
            torch.tensor(X).T.view(-1)
    flat = x.T.reshape(-1)  # a copy: writes to it are not seen by x
    flat.zero_()
    np.testing.assert_array_equal(x.detach().numpy(), X)


def test_advanced_indexing_is_a_copy_basic_indexing_a_view():
    x = tg.tensor(X, dtype=tg.float64)
    x[[0, 1]].zero_()
    np.testing.assert_array_equal(x.detach().numpy(), X)
    x[0:2].zero_()
    assert (x.detach().numpy()[:2] == 0).all()


def test_detach_shares_memory_numpy_of_detach_too():
    x = leaf(tg, [1.0, 2.0])
    d = x.detach()
    arr = d.numpy()
    arr[0] = 7.0
    assert x.detach().numpy()[0] == 7.0
    with pytest.raises(RuntimeError, match=r"detach\(\)\.numpy\(\)"):
        x.numpy()


# ---------------------------------------------------------------- assignment


SETITEM = [
    ("int", lambda b, v: b.__setitem__(0, 0.0)),
    ("column", lambda b, v: b.__setitem__((slice(None), 1), 0.0)),
    ("element", lambda b, v: b.__setitem__((1, 2), 5.0)),
    ("ellipsis", lambda b, v: b.__setitem__((Ellipsis, 0), v[:, 0])),
    ("row from a tensor", lambda b, v: b.__setitem__(1, v[0] * 2)),
    ("broadcast row into a slice", lambda b, v: b.__setitem__(slice(0, 2), v[2])),
    ("0-d tensor into everything", lambda b, v: b.__setitem__(slice(None), v[1, 1])),
    ("leading 1-dims", lambda b, v: b.__setitem__(0, v[0:1])),
    ("strided slice", lambda b, v: b.__setitem__((slice(None), slice(None, None, 2)),
                                                 v[:, :2])),
    ("bool mask from itself", lambda b, v: b.__setitem__(b < 0, 0.0)),
    ("bool mask with tensor values",
     lambda b, v: b.__setitem__(b > 0.6, v[b.detach() > 0.6] * 3)),
    ("integer rows", lambda b, v: b.__setitem__([0, 2], v[1])),
    ("integer tensor index", lambda b, v: b.__setitem__((slice(None), tg.tensor([3, 0])
                                                         if isinstance(b, tg.Tensor)
                                                         else torch.tensor([3, 0])), v[:, 1:3])),
    ("mixed slice and list", lambda b, v: b.__setitem__((slice(1, 3), [0, 2]), -1.0)),
    ("None axis", lambda b, v: b.__setitem__((None, 2), v[0])),
    ("augmented row", lambda b, v: b.__setitem__(0, b[0].__iadd__(v[0]))),
    ("augmented mask", lambda b, v: b.__setitem__(b > 0, b[b > 0].__imul__(3))),
]


@pytest.mark.parametrize("name,assign", SETITEM, ids=[c[0] for c in SETITEM])
def test_setitem_cuts_overwritten_gradients_and_feeds_the_value(name, assign):
    compare(write_idiom(assign))


def test_setitem_numpy_expectations():
    def overwritten(lib):
        x = leaf(lib, [1.0, -2.0, 3.0])
        b = x * 1
        b[0] = 0
        b.sum().backward()
        return [b, x.grad]
    compare(overwritten, expected=[[0.0, -2.0, 3.0], [0.0, 1.0, 1.0]])

    def masked(lib):
        x = leaf(lib, [1.0, -2.0, 3.0])
        b = x * 1
        b[b < 0] = 0
        b.sum().backward()
        return [b, x.grad]
    compare(masked, expected=[[1.0, 0.0, 3.0], [1.0, 0.0, 1.0]])

    def value(lib):
        x = leaf(lib, [1.0, 2.0, 3.0])
        v = leaf(lib, 5.0)
        b = x * 1
        b[1:] = v
        (b * const(lib, [1.0, 2.0, 3.0])).sum().backward()
        return [b, x.grad, v.grad]
    compare(value, expected=[[1.0, 5.0, 5.0], [1.0, 0.0, 0.0], 5.0])


def test_setitem_into_a_plain_tensor_makes_it_part_of_the_graph():
    def idiom(lib):
        v = leaf(lib, [1.0, 2.0])
        a = lib.zeros(3, 2, dtype=lib.float64)
        a[1] = v * v
        (a * const(lib, [[1.0, 1.0], [2.0, 3.0], [4.0, 4.0]])).sum().backward()
        return [a, v.grad]
    compare(idiom, expected=[[[0, 0], [1, 4], [0, 0]], [4.0, 12.0]])


def test_setitem_in_a_loop_without_grad_is_direct():
    t = tg.zeros(1000)
    for i in range(1000):
        t[i] = i
    np.testing.assert_array_equal(t.detach().numpy(), np.arange(1000))
    assert t._version == 1000


def test_setitem_shape_mismatch_is_refused():
    def idiom(lib):
        b = lib.zeros(3, 4)
        b[0] = lib.ones(3)
    refuses(idiom)


# ---------------------------------------------------------------- hooks


def test_leaf_hook_replaces_the_gradient_and_sees_the_total_once():
    def idiom(lib):
        x = leaf(lib, [1.0, 2.0])
        calls = []
        x.register_hook(lambda g: calls.append(to_numpy(g)) or g * 2)
        (x * x + x * 3).sum().backward()
        assert len(calls) == 1
        return [x.grad, calls[0]]
    compare(idiom, expected=[[10.0, 14.0], [5.0, 7.0]])


def test_intermediate_hook_and_retain_grad_like_torch():
    def idiom(lib):
        x = leaf(lib, X)
        y = x.tanh()
        y.retain_grad()
        seen = []
        y.register_hook(lambda g: seen.append(to_numpy(g)))
        y.register_hook(lambda g: g * 3)
        (y * const(lib, W)).sum().backward()
        return [x.grad, y.grad, seen[0]]
    compare(idiom)


def test_hook_handle_remove():
    def idiom(lib):
        x = leaf(lib, [1.0, 2.0])
        h = x.register_hook(lambda g: g * 10)
        h.remove()
        (x * 2).sum().backward()
        return [x.grad]
    compare(idiom, expected=[[2.0, 2.0]])


def test_hook_on_a_tensor_without_grad_is_refused():
    refuses(lambda lib: lib.zeros(2).register_hook(lambda g: g), "doesn't require")


def test_node_hooks_see_input_and_output_gradients():
    x = leaf(tg, [1.0, 2.0])
    y = x * 3
    seen = {}

    def pre(gout):
        seen["out"] = to_numpy(gout[0])

    def post(gin, gout):
        seen["in"] = to_numpy(gin[0])
    y.grad_fn.register_prehook(pre)
    y.grad_fn.register_hook(post)
    (y * tg.tensor([1.0, 2.0], dtype=tg.float64)).sum().backward()
    np.testing.assert_array_equal(seen["out"], [1.0, 2.0])
    np.testing.assert_array_equal(seen["in"], [3.0, 6.0])


# ---------------------------------------------------------------- autograd.grad, anomaly mode


def test_autograd_grad_leaves_dot_grad_alone():
    def idiom(lib):
        x = leaf(lib, [1.0, 2.0])
        h = x * x
        gx, gh = lib.autograd.grad((h * 3).sum(), [x, h])
        assert x.grad is None
        return [gx, gh]
    compare(idiom, expected=[[6.0, 12.0], [3.0, 3.0]])


def test_autograd_grad_unused_input():
    def idiom(lib):
        x, z = leaf(lib, [1.0]), leaf(lib, [2.0])
        out = (x * 2).sum()
        (gz,) = lib.autograd.grad(out, [z], allow_unused=True, retain_graph=True)
        assert gz is None
        lib.autograd.grad(out, [z])
    refuses(idiom)


def test_second_derivative_of_a_cube():
    def idiom(lib):
        x = leaf(lib, [2.0, -1.0])
        (g,) = lib.autograd.grad((x ** 3).sum(), x, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), x)
        return [g, h]
    compare(idiom, expected=[[12.0, 3.0], [12.0, -6.0]])


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
def test_anomaly_mode_names_the_function_and_the_forward_line():
    x = leaf(tg, [-1.0, 4.0])
    with tg.autograd.detect_anomaly():
        y = x.sqrt()  # the forward line the message must show
        with pytest.raises(RuntimeError, match=r"(?s)Sqrt.*nan.*the forward line the message"):
            y.sum().backward()
    assert not tg.autograd.is_anomaly_enabled()


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
def test_anomaly_mode_off_by_default_backward_gives_nan():
    x = leaf(tg, [-1.0])
    x.sqrt().sum().backward()
    assert np.isnan(x.grad.detach().numpy()[0])


# ---------------------------------------------------------------- dtype and construction rules


def test_integer_input_to_float_layers_is_a_type_error():
    img = tg.tensor(np.zeros((1, 1, 5, 5), np.uint8))
    with pytest.raises(TypeError, match=r"Conv2d\(1->2\).*uint8.*float32.*x\.float\(\)"):
        tg.nn.Conv2d(1, 2, 3)(img)
    with pytest.raises(TypeError, match=r"Linear\(3->2\).*int64"):
        tg.nn.Linear(3, 2)(tg.tensor([[1, 2, 3]]))
    with pytest.raises(TypeError, match="matmul"):
        tg.tensor([[1, 2]]) @ tg.randn(2, 2)


def test_tensor_of_non_numbers_is_refused():
    with pytest.raises(TypeError, match="str"):
        tg.tensor([1, "a"])
    with pytest.raises(RuntimeError, match="NoneType"):
        tg.tensor([None, 1])


def test_batch_norm_training_on_one_value_per_channel_is_refused():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        tg.nn.BatchNorm1d(3)(tg.randn(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        tg.nn.BatchNorm2d(3)(tg.randn(1, 3, 1, 1))
    tg.nn.BatchNorm2d(3)(tg.randn(1, 3, 2, 2))  # 4 values per channel: fine
    tg.nn.BatchNorm1d(3).eval()(tg.randn(1, 3))  # eval: running statistics, fine


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_like_torch(norm_type):
    def idiom(lib):
        a, b = leaf(lib, [3.0, -4.0]), leaf(lib, [[1.0, 2.0], [0.5, -2.5]])
        ((a * a).sum() + (b ** 3).sum()).backward()
        total = lib.nn.utils.clip_grad_norm_([a, b], 1.5, norm_type=norm_type)
        single = lib.nn.utils.clip_grad_norm_(a, 0.1)
        assert isinstance(total, lib.Tensor) and isinstance(single, lib.Tensor)
        return [total, single, a.grad, b.grad]
    compare(idiom)


# ---------------------------------------------------------------- views made under no_grad, split


def _nograd_view_write(base_grad: bool, write_grad: bool, operand_grad: bool):
    def idiom(lib):
        x = leaf(lib, X[0]) if base_grad else const(lib, X[0])
        y = x * 2
        with lib.no_grad():
            v = y[:2]
        o = leaf(lib, [1.0, 2.0]) if operand_grad else 1.0
        with lib.set_grad_enabled(write_grad):
            v.add_(o)
        return [y]
    return idiom


AMBIGUOUS = [
    ("no_grad view, write with grad, base needs grad", _nograd_view_write(True, True, False),
     True),
    ("no_grad view, write with grad, operand needs grad", _nograd_view_write(False, True, True),
     True),
    ("no_grad view, write with grad, nothing needs grad", _nograd_view_write(False, True, False),
     False),
    ("no_grad view, write under no_grad", _nograd_view_write(True, False, True), False),
]


def _split_write(base_grad: bool, operand_grad: bool, under_no_grad: bool, how: str):
    def idiom(lib):
        y = leaf(lib, X) * 1 if base_grad else const(lib, X)
        piece = y.split(2)[0] if how == "split" else y.unbind(0)[0]
        o = leaf(lib, O[0]) if operand_grad else 1.0
        with lib.set_grad_enabled(not under_no_grad):
            piece.add_(o)
        return [y]
    return idiom


AMBIGUOUS += [
    ("split piece of a grad tensor", _split_write(True, False, False, "split"), True),
    ("unbind piece of a grad tensor", _split_write(True, False, False, "unbind"), True),
    ("split piece, grad operand", _split_write(False, True, False, "split"), True),
    ("split piece, nothing needs grad", _split_write(False, False, False, "split"), False),
    ("split piece under no_grad", _split_write(True, False, True, "split"), False),
]


@pytest.mark.parametrize("name,idiom,refused", AMBIGUOUS, ids=[c[0] for c in AMBIGUOUS])
def test_ambiguous_view_writes_are_refused_like_torch(name, idiom, refused):
    if refused:
        refuses(idiom, "no_grad mode|several views")
    else:
        compare(idiom)


def test_retain_grad_of_a_view_survives_a_write_to_its_base():
    def idiom(lib):
        x = leaf(lib, [[1.0, 2.0], [3.0, 4.0]])
        y = x * 1
        v = y[0]
        v.retain_grad()
        y.mul_(3)
        (v * const(lib, [1.0, 5.0])).sum().backward()
        return [v.grad, x.grad]
    compare(idiom, expected=[[1.0, 5.0], [[3.0, 15.0], [0.0, 0.0]]])


# ---------------------------------------------------------------- in-place variants of the surface
SURFACE = [
    ("log1p_", lambda y, o: y.log1p_(), True),
    ("expm1_", lambda y, o: y.expm1_(), False),
    ("sin_", lambda y, o: y.sin_(), False),
    ("cos_", lambda y, o: y.cos_(), False),
    ("floor_", lambda y, o: y.floor_(), False),
    ("ceil_", lambda y, o: y.ceil_(), False),
    ("round_", lambda y, o: y.round_(), False),
    ("trunc_", lambda y, o: y.trunc_(), False),
    ("tril_", lambda y, o: y.tril_(), False),
    ("triu_", lambda y, o: y.triu_(1), False),
    ("cumsum_", lambda y, o: y.cumsum_(1), False),
    ("index_fill_", lambda y, o: y.index_fill_(1, _index(y, [0, 2]), -1.0), False),
    ("index_fill_tensor", lambda y, o: y.index_fill_(0, _index(y, [1]), o[0, 0]), False),
    ("index_copy_", lambda y, o: y.index_copy_(1, _index(y, [3, 0]), o[:, :2]), False),
    ("index_add_", lambda y, o: y.index_add_(1, _index(y, [1, 1, 3]), o[:, :3], alpha=2.0),
     False),
    ("scatter_", lambda y, o: y.scatter_(1, _index(y, [[0, 1], [2, 3], [1, 0]]), o[:, :2]),
     False),
    ("scatter_add_", lambda y, o: y.scatter_add_(1, _index(y, [[0, 0], [2, 3], [1, 1]]),
                                                 o[:, :2]), False),
]


def _index(like, values):
    lib = tg if isinstance(like, tg.Tensor) else torch
    return lib.tensor(values)


@pytest.mark.parametrize("name,op,positive", SURFACE, ids=[c[0] for c in SURFACE])
def test_surface_inplace_op_matches_torch(name, op, positive):
    compare(write_idiom(op, positive, returns_self=True))


def test_grad_fn_name_and_next_functions_walk_the_graph_like_torch():
    def idiom(lib):
        x = leaf(lib, [1.0, 2.0])
        y = (x * 3).exp()
        (mul, _), = y.grad_fn.next_functions
        (acc, _), (_, _) = mul.next_functions
        names = [y.grad_fn.name(), mul.name()]
        assert all(n.startswith(("Exp", "Mul")) for n in names), names
        return [acc.variable if hasattr(acc, "variable") else acc]
    compare(idiom, expected=[[1.0, 2.0]])


def test_inference_mode_and_detach_like_torch():
    x = leaf(tg, [1.0, 2.0])
    with tg.inference_mode():
        assert not (x * 2).requires_grad
    with tg.inference_mode(False):
        assert (x * 2).requires_grad
    y = x * 2
    y.retain_grad()
    assert y.retains_grad and not x.retains_grad
    assert y.detach_() is y and y.is_leaf and not y.requires_grad
    with pytest.raises(RuntimeError, match="views in-place"):
        (x * 1)[0].detach_()
