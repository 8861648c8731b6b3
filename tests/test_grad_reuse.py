"""Backward rules writing into the incoming gradient (autograd.may_overwrite): ReLU does when
only the engine holds that gradient, and never when anything else could see the change -- a
hook, a retained grad, the caller's seed, a second parent, a view, a post-hook, autograd.grad.
Then ReLU's two kernels (the in-place backward, the forward) against PyTorch's rules."""
import warnings

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import kernels

RNG = np.random.default_rng(0)
H = RNG.standard_normal((4, 6)).astype(np.float32)  # about half negative: ReLU zeroes those
UP = RNG.standard_normal((4, 6)).astype(np.float32) + 3  # upstream gradient, no zeros


@pytest.fixture
def in_place_calls(monkeypatch):
    """The gradients ReLU's backward wrote into, recorded."""
    calls = []
    original = kernels.relu_backward_in_place

    def record(grad, out):
        done = original(grad, out)
        calls.append(done)
        return done

    monkeypatch.setattr(kernels, "relu_backward_in_place", record)
    return calls


def _relu_of_product():
    """h (a leaf), y = relu(h * 1): y's gradient comes from the engine, a fresh array."""
    h = tg.tensor(H, requires_grad=True)
    return h, (h * 1).relu()


def _expected_grad(up=UP):
    return np.where(H <= 0, 0, up)


def test_an_engine_held_gradient_is_reused_and_the_result_is_right(in_place_calls):
    h, y = _relu_of_product()
    (y * tg.tensor(UP)).sum().backward()
    assert in_place_calls == [True]
    np.testing.assert_array_equal(h.grad.numpy(), _expected_grad())


def test_a_hook_that_keeps_the_gradient_sees_it_unchanged(in_place_calls):
    h, y = _relu_of_product()
    kept = []
    y.register_hook(kept.append)
    (y * tg.tensor(UP)).sum().backward()
    np.testing.assert_array_equal(kept[0].numpy(), UP)
    np.testing.assert_array_equal(h.grad.numpy(), _expected_grad())
    assert in_place_calls == []


def test_a_hook_that_keeps_a_view_of_the_gradient_sees_it_unchanged(in_place_calls):
    _, y = _relu_of_product()
    kept = []
    y.register_hook(lambda g: kept.append(g.numpy()[1:]))
    (y * tg.tensor(UP)).sum().backward()
    np.testing.assert_array_equal(kept[0], UP[1:])
    assert in_place_calls == []


def test_a_hook_that_keeps_the_array_a_gradient_views_sees_it_unchanged(in_place_calls):
    """ReLU's gradient is a transposed view of the array z's hook keeps (the base count)."""
    h, y = _relu_of_product()
    z, kept = y.T, []
    z.register_hook(kept.append)
    (z * tg.tensor(UP.T)).sum().backward()
    np.testing.assert_array_equal(kept[0].numpy(), UP.T)
    np.testing.assert_array_equal(h.grad.numpy(), _expected_grad())
    assert in_place_calls == []


def test_a_retained_grad_is_the_upstream_gradient():
    h, y = _relu_of_product()
    y.retain_grad()
    (y * tg.tensor(UP)).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), UP)
    np.testing.assert_array_equal(h.grad.numpy(), _expected_grad())


@pytest.mark.parametrize("as_tensor", [False, True])
def test_the_callers_gradient_is_left_alone(in_place_calls, as_tensor):
    h, y = _relu_of_product()
    seed = tg.tensor(UP) if as_tensor else UP.copy()
    y.backward(seed)
    np.testing.assert_array_equal(seed.numpy() if as_tensor else seed, UP)
    np.testing.assert_array_equal(h.grad.numpy(), _expected_grad())
    assert in_place_calls == []


def test_one_gradient_handed_to_two_relus_reaches_both():
    """Add hands the same array to both parents: the first ReLU must not zero the second's."""
    a = tg.tensor(H, requires_grad=True)
    b = tg.tensor(-H, requires_grad=True)
    ((a * 1).relu() + (b * 1).relu()).mul(tg.tensor(UP)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.where(H <= 0, 0, UP))
    np.testing.assert_array_equal(b.grad.numpy(), np.where(-H <= 0, 0, UP))


def test_a_node_hook_sees_the_gradient_of_the_output(in_place_calls):
    _, y = _relu_of_product()
    seen = {}
    y.grad_fn.register_hook(
        lambda gin, gout: seen.update(gin=gin[0].detach().numpy(), gout=gout[0].detach().numpy()))
    (y * tg.tensor(UP)).sum().backward()
    np.testing.assert_array_equal(seen["gout"], UP)
    np.testing.assert_array_equal(seen["gin"], _expected_grad())
    assert in_place_calls == []


def test_a_node_prehook_that_keeps_the_gradient_sees_it_unchanged(in_place_calls):
    h, y = _relu_of_product()
    kept = []
    y.grad_fn.register_prehook(lambda gout: kept.append(gout[0]))
    (y * tg.tensor(UP)).sum().backward()
    np.testing.assert_array_equal(kept[0].detach().numpy(), UP)
    np.testing.assert_array_equal(h.grad.numpy(), _expected_grad())
    assert in_place_calls == []


def test_autograd_grad_of_an_intermediate_and_a_leaf():
    h, y = _relu_of_product()
    gy, gh = tg.autograd.grad((y * tg.tensor(UP)).sum(), [y, h])
    np.testing.assert_array_equal(gy.numpy(), UP)
    np.testing.assert_array_equal(gh.numpy(), _expected_grad())


def test_create_graph_never_overwrites(in_place_calls):
    h, y = _relu_of_product()
    (g,) = tg.autograd.grad((y * y * tg.tensor(UP)).sum(), [h], create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), np.where(H <= 0, 0, 2 * H * UP), rtol=1e-6)
    assert in_place_calls == []


# ---------------------------------------------------------------- the kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_minor", [False, True])
def test_relu_backward_in_place_matches_pytorchs_rule(dtype, batch_minor):
    """threshold_backward: 0 where out <= 0 (so -0.0 becomes 0.0), else grad (NaN outputs
    pass it); batch-minor arrays too (a conv's activations)."""
    shape = (5, 3, 4, 7)
    out = np.maximum(RNG.standard_normal(shape), 0).astype(dtype)
    out.flat[::11] = np.nan
    grad = RNG.standard_normal(shape).astype(dtype)
    grad.flat[::5] = -0.0
    if batch_minor:
        out = np.ascontiguousarray(out.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
        grad = np.ascontiguousarray(grad.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    expected = np.where(out <= 0, 0, grad)
    assert kernels.relu_backward_in_place(grad, out)
    np.testing.assert_array_equal(grad, expected)
    assert not np.signbit(grad[out <= 0]).any()


def test_relu_backward_in_place_splits_over_threads_like_one_pass(monkeypatch):
    monkeypatch.setattr(kernels, "_ELEMENTWISE_GRAIN", 1000)
    out = np.maximum(RNG.standard_normal(10_001), 0).astype(np.float32)
    grad = RNG.standard_normal(10_001).astype(np.float32)
    expected = np.where(out <= 0, 0, grad)
    threads = tg.get_num_threads()
    tg.set_num_threads(2)
    try:
        assert kernels.relu_backward_in_place(grad, out)
    finally:
        tg.set_num_threads(threads)
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("grad, out", [
    (np.ones((4, 6), np.float32), np.ones((4, 6), np.float64)),  # dtypes differ
    (np.ones((4, 6), np.float32), np.ones((6, 4), np.float32).T),  # layouts differ
    (np.ones((4, 6), np.float32)[:, ::2], np.ones((4, 3), np.float32)),  # strides differ
    (np.ones((4, 6), np.float32)[:, ::2], np.ones((4, 6), np.float32)[:, ::2]),  # not one run
])
def test_relu_backward_in_place_refuses_what_it_cannot_do_and_leaves_it(grad, out):
    before = grad.copy()
    assert not kernels.relu_backward_in_place(grad, -out)
    np.testing.assert_array_equal(grad, before)


def test_relu_gradient_passes_through_nan_like_pytorch():
    """Both paths (in place and not) and the double-backward rule agree with torch."""
    torch = pytest.importorskip("torch")
    x = np.array([np.nan, -1.0, 2.0, 0.0], np.float32)
    up = np.array([5.0, 5.0, 5.0, 5.0], np.float32)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt * 1).backward(torch.tensor(up))
    for build in (lambda t: (t * 1).relu(), lambda t: t.relu()):
        t = tg.tensor(x, requires_grad=True)
        with np.errstate(invalid="ignore"):
            build(t).backward(tg.tensor(up))
        np.testing.assert_array_equal(t.grad.numpy(), xt.grad.numpy())
    t = tg.tensor(x, requires_grad=True)
    (g,) = tg.autograd.grad(t.relu().sum(), [t], create_graph=True)
    np.testing.assert_array_equal(g.numpy(), [1, 0, 1, 0])


# ---------------------------------------------------------------- ReLU's forward kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "batch-minor", "transposed", "strided", "reversed"])
def test_relu_forward_is_pytorchs_clamp_min_in_the_inputs_layout(dtype, layout):
    """0 where x < 0, else x: NaN and -0.0 pass (np.maximum made -0.0 into 0.0); the output has
    the input's layout, and a NaN raises no warning."""
    x = RNG.standard_normal((4, 3, 5, 6)).astype(dtype)
    x.flat[::7], x.flat[3::11] = np.nan, -0.0
    x = {"C": x, "batch-minor": np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2),
         "transposed": x.T, "strided": x[:, :, ::2], "reversed": x[::-1, :, ::-1]}[layout]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = kernels.relu(x)
    expected = np.where(x < 0, 0, x)
    np.testing.assert_array_equal(y, expected)
    assert (np.signbit(y) == np.signbit(expected)).all() and y.dtype == dtype
    if layout not in ("strided", "reversed"):
        assert y.strides == x.strides


def test_relu_forward_split_over_threads_and_other_dtypes(monkeypatch):
    monkeypatch.setattr(kernels, "_ELEMENTWISE_GRAIN", 1000)
    x = RNG.standard_normal(10_001).astype(np.float32)
    threads = tg.get_num_threads()
    tg.set_num_threads(2)
    try:
        np.testing.assert_array_equal(kernels.relu(x), np.maximum(x, 0))
    finally:
        tg.set_num_threads(threads)
    ints = np.array([-3, 0, 4], np.int64)
    np.testing.assert_array_equal(kernels.relu(ints), [0, 0, 4])
    assert kernels.relu(ints).dtype == np.int64
    assert kernels.relu(np.array(-2.0)).shape == ()


def test_relu_forward_matches_pytorch_on_nan_and_negative_zero():
    torch = pytest.importorskip("torch")
    x = np.array([-0.0, 0.0, np.nan, -1.5, 2.0, -np.inf, np.inf], np.float32)
    ours, theirs = tg.tensor(x).relu().numpy(), torch.relu(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert (np.signbit(ours) == np.signbit(theirs)).all()


def test_only_functions_that_ask_are_offered_their_gradient(monkeypatch):
    """The engine counts references for rules that set overwrites_grad (ReLU), not others."""
    from tinygrad_edu import autograd
    counted = []
    real = autograd._reference_counts
    monkeypatch.setattr(autograd, "_reference_counts", lambda g: counted.append(1) or real(g))
    _, y = _relu_of_product()
    (y * tg.tensor(UP)).sum().backward()  # nodes: Sum, Mul, ReLU, Mul
    assert len(counted) == 1
