"""`Tensor.data` as in PyTorch: a Tensor sharing the memory, outside the graph and its version
counter. The idioms of pre-1.0 scripts and tutorials (`out.data.max(1)[1]`,
`w.data.normal_(0, 0.02)`, `p.data -= lr * p.grad.data`) give torch's values."""
import numpy as np
import pytest

import tinygrad_edu as tg


def test_data_is_a_detached_tensor_sharing_memory():
    x = tg.tensor([[1.0, 5.0], [7.0, 2.0]], requires_grad=True)
    d = x.data
    assert isinstance(d, tg.Tensor) and not d.requires_grad and d.grad_fn is None and d.is_leaf
    d[0, 0] = 3.0
    assert x[0, 0].item() == 3.0 and x.requires_grad and x.is_leaf


def test_writes_through_data_are_not_seen_by_autograd():
    """torch: changes made through .data bump no version counter, so backward uses the new
    values without complaint (the reason .data is 'unsafe' and detach() is preferred)."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x.data.add_(1.0)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 6.0])
    x2 = tg.tensor([1.0, 2.0], requires_grad=True)
    y2 = (x2 * x2).sum()
    x2.detach().add_(1.0)  # detach shares the counter: the same write is refused
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y2.backward()


def test_data_setter_takes_a_tensor_and_keeps_the_leaf():
    w = tg.nn.Parameter(tg.zeros(2, 3))
    w.data = tg.ones(4)
    assert w.shape == (4,) and w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.detach().numpy(), np.ones(4))
    with pytest.raises(TypeError, match="has to be a Tensor"):
        w.data = np.zeros(4)


def test_init_through_data_as_in_dcgan():
    tg.manual_seed(0)
    conv = tg.nn.Conv2d(3, 4, 3)
    conv.weight.data.normal_(0.0, 0.02)
    conv.bias.data.fill_(0)
    assert conv.weight.is_leaf and conv.weight.requires_grad and conv.weight.grad_fn is None
    assert abs(float(conv.weight.detach().numpy().std()) - 0.02) < 0.01
    assert not conv.bias.detach().numpy().any()


def test_legacy_idioms_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((8, 5)).astype(np.float32), rng.integers(0, 5, 8)
    for lib in (tg, torch):
        out = lib.tensor(logits, requires_grad=True)
        t = lib.tensor(target)
        pred = out.data.max(1, keepdim=True)[1]
        correct = pred.eq(t.data.view_as(pred)).sum().item()
        labels = out.data.max(1)[1]
        _, predicted = lib.max(out.data, 1)
        if lib is tg:
            ours = (correct, labels.tolist(), predicted.tolist())
        else:
            assert ours == (correct, labels.tolist(), predicted.tolist())


def test_manual_sgd_through_data_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0, x = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    results = []
    for lib in (tg, torch):
        w = lib.tensor(w0, requires_grad=True)
        for _ in range(3):
            loss = (lib.tensor(x) @ w.T).pow(2).mean()
            loss.backward()
            w.data -= 0.1 * w.grad.data
            w.grad.data.zero_()
        results.append(w.detach().numpy().copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
