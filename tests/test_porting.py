"""The PyTorch surface of issue 14, name by name: module-level functions, functionals and layers
against PyTorch (float64, forward and backward with a random upstream gradient, through
tests/helpers.check_op), devices, and the AttributeError hints for names we lack.

Each case is one line: `make(L)` builds the function from a library L, which is `tinygrad_edu`
or `torch` (same names: that is the point), so the same line runs on both.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tests.helpers import check_op

torch = pytest.importorskip("torch")


def F(L):
    return L.nn.functional


# (id, input shapes, make(L) -> function of the inputs, options for check_op)
FUNCTIONS = [
    ("exp", [(3, 4)], lambda L: L.exp, {}),
    ("log", [(3, 4)], lambda L: L.log, {"low": 0.1}),
    ("log1p", [(3, 4)], lambda L: L.log1p, {"low": -0.5}),
    ("expm1", [(3, 4)], lambda L: L.expm1, {}),
    ("sqrt", [(3, 4)], lambda L: L.sqrt, {"low": 0.1}),
    ("rsqrt", [(3, 4)], lambda L: L.rsqrt, {"low": 0.1}),
    ("abs", [(3, 4)], lambda L: L.abs, {}),
    ("sin", [(3, 4)], lambda L: L.sin, {}),
    ("cos", [(3, 4)], lambda L: L.cos, {}),
    ("sigmoid", [(3, 4)], lambda L: L.sigmoid, {}),
    ("tanh", [(3, 4)], lambda L: L.tanh, {}),
    ("relu", [(3, 4)], lambda L: L.relu, {}),
    ("square", [(3, 4)], lambda L: L.square, {}),
    ("neg", [(3, 4)], lambda L: L.neg, {}),
    ("reciprocal", [(3, 4)], lambda L: L.reciprocal, {"low": 0.5}),
    ("floor", [(3, 4)], lambda L: L.floor, {"finite_differences": False}),
    ("ceil", [(3, 4)], lambda L: L.ceil, {"finite_differences": False}),
    ("round", [(3, 4)], lambda L: L.round, {"finite_differences": False}),
    ("trunc", [(3, 4)], lambda L: L.trunc, {"finite_differences": False}),
    ("sign", [(3, 4)], lambda L: L.sign, {"finite_differences": False}),
    ("clamp", [(3, 4)], lambda L: lambda x: L.clamp(x, -1, 0.5), {}),
    ("clip", [(3, 4)], lambda L: lambda x: L.clip(x, min=-1), {}),
    ("softmax", [(3, 4)], lambda L: lambda x: L.softmax(x, 1), {}),
    ("log_softmax", [(3, 4)], lambda L: lambda x: L.log_softmax(x, dim=0), {}),
    ("logsumexp", [(3, 4)], lambda L: lambda x: L.logsumexp(x, 1), {}),
    ("add", [(3, 4), (4,)], lambda L: lambda x, y: L.add(x, y, alpha=2), {}),
    ("sub", [(3, 4), (4,)], lambda L: L.sub, {}),
    ("mul", [(3, 4), (3, 1)], lambda L: L.mul, {}),
    ("div", [(3, 4), (4,)], lambda L: L.div, {"low": 0.5}),
    ("pow", [(3, 4)], lambda L: lambda x: L.pow(x, 3), {}),
    ("lerp", [(3, 4), (3, 4)], lambda L: lambda x, y: L.lerp(x, y, 0.3), {}),
    ("sum", [(3, 4)], lambda L: lambda x: L.sum(x, 1), {}),
    ("sum_all", [(3, 4)], lambda L: L.sum, {}),
    ("mean", [(3, 4)], lambda L: lambda x: L.mean(x, 0, keepdim=True), {}),
    ("var", [(3, 4)], lambda L: lambda x: L.var(x, 1), {}),
    ("std", [(3, 4)], lambda L: lambda x: L.std(x), {}),
    ("max_dim", [(3, 4)], lambda L: lambda x: L.max(x, 1).values, {}),
    ("max_dim_indices", [(3, 4)], lambda L: lambda x: L.max(x, 1)[1] * 1.0 + x.sum() * 0, {}),
    ("max_all", [(3, 4)], lambda L: L.max, {}),
    ("max_binary", [(3, 4), (3, 4)], lambda L: L.max, {}),
    ("min_dim", [(3, 4)], lambda L: lambda x: L.min(x, 0)[0], {}),
    ("amax", [(3, 4)], lambda L: lambda x: L.amax(x, 1), {}),
    ("amin", [(3, 4)], lambda L: lambda x: L.amin(x, 0), {}),
    ("argmax", [(3, 4)], lambda L: lambda x: L.argmax(x, 1) + x.sum() * 0, {}),
    ("argmin", [(3, 4)], lambda L: lambda x: L.argmin(x) + x.sum() * 0, {}),
    ("prod", [(3, 4)], lambda L: lambda x: L.prod(x, 1), {}),
    ("prod_all", [(2, 3)], lambda L: L.prod, {}),
    ("cumsum", [(3, 4)], lambda L: lambda x: L.cumsum(x, 1), {}),
    ("norm", [(3, 4)], lambda L: L.norm, {}),
    ("norm_dim", [(3, 4)], lambda L: lambda x: L.norm(x, dim=1), {}),
    ("norm_p1", [(3, 4)], lambda L: lambda x: L.norm(x, p=1, dim=0), {}),
    ("norm_p3", [(3, 4)], lambda L: lambda x: L.norm(x, p=3), {}),
    ("norm_inf", [(3, 4)], lambda L: lambda x: L.norm(x, p=math.inf, dim=1), {}),
    ("matmul", [(2, 3, 4), (4, 5)], lambda L: L.matmul, {}),
    ("mm", [(3, 4), (4, 5)], lambda L: L.mm, {}),
    ("bmm", [(2, 3, 4), (2, 4, 5)], lambda L: L.bmm, {}),
    ("dot", [(4,), (4,)], lambda L: L.dot, {}),
    ("outer", [(3,), (4,)], lambda L: L.outer, {}),
    ("einsum_mm", [(3, 4), (4, 5)], lambda L: lambda x, y: L.einsum("ij,jk->ik", x, y), {}),
    ("einsum_batch", [(2, 3, 4), (2, 4, 5)],
     lambda L: lambda x, y: L.einsum("bij,bjk->bik", x, y), {}),
    ("einsum_sum_out", [(3, 4)], lambda L: lambda x: L.einsum("ij->i", x), {}),
    ("einsum_outer", [(3,), (4,)], lambda L: lambda x, y: L.einsum("i,j", x, y), {}),
    ("tril", [(4, 4)], lambda L: lambda x: L.tril(x, -1), {}),
    ("triu", [(4, 4)], lambda L: L.triu, {}),
    ("flatten", [(2, 3, 4)], lambda L: lambda x: L.flatten(x, 1), {}),
    ("reshape", [(2, 3, 4)], lambda L: lambda x: L.reshape(x, (4, 6)), {}),
    ("transpose", [(2, 3, 4)], lambda L: lambda x: L.transpose(x, 0, 2), {}),
    ("permute", [(2, 3, 4)], lambda L: lambda x: L.permute(x, (2, 0, 1)), {}),
    ("squeeze", [(2, 1, 4)], lambda L: lambda x: L.squeeze(x, 1), {}),
    ("unsqueeze", [(2, 4)], lambda L: lambda x: L.unsqueeze(x, 1), {}),
    ("chunk", [(6, 4)], lambda L: lambda x: L.chunk(x, 3)[1], {}),
    ("split", [(6, 4)], lambda L: lambda x: L.split(x, [2, 4])[1], {}),
    ("unbind", [(3, 4)], lambda L: lambda x: L.unbind(x, 1)[2], {}),
    ("narrow", [(5, 4)], lambda L: lambda x: L.narrow(x, 0, 1, 3), {}),
    ("cat", [(2, 4), (3, 4)], lambda L: lambda x, y: L.cat([x, y]), {}),
    ("concat", [(2, 4), (2, 3)], lambda L: lambda x, y: L.concat([x, y], dim=1), {}),
    ("stack", [(2, 4), (2, 4)], lambda L: lambda x, y: L.stack([x, y], 1), {}),
    ("flip", [(3, 4)], lambda L: lambda x: L.flip(x, [0, 1]), {}),
    ("roll", [(3, 4)], lambda L: lambda x: L.roll(x, 1, 1), {}),
    ("roll_flat", [(3, 4)], lambda L: lambda x: L.roll(x, -5), {}),
    ("roll_two", [(3, 4)], lambda L: lambda x: L.roll(x, (1, 2), (0, 1)), {}),
    ("index_select", [(4, 3)], lambda L: lambda x: L.index_select(x, 0, L.tensor([3, 0, 3])), {}),
    ("masked_fill", [(3, 4)], lambda L: lambda x: L.masked_fill(x, x > 0.5, -1.0), {}),
    ("masked_select", [(3, 4)], lambda L: lambda x: L.masked_select(x, x > 0), {}),
    ("where", [(3, 4), (3, 4)], lambda L: lambda x, y: L.where(x > 0, x, y), {}),
    ("gather", [(3, 4)], lambda L: lambda x: L.gather(x, 1, L.tensor([[0, 0], [1, 3], [2, 1]])),
     {}),
    ("scatter", [(3, 4), (2, 4)],
     lambda L: lambda x, s: L.scatter(x, 0, L.tensor([[0, 1, 2, 0], [2, 0, 1, 1]]), s), {}),
    ("scatter_add", [(3, 4), (2, 4)],
     lambda L: lambda x, s: L.scatter_add(x, 0, L.tensor([[0, 1, 2, 0], [0, 0, 1, 1]]), s), {}),
    ("sort", [(3, 4)], lambda L: lambda x: L.sort(x, 1).values, {}),
    ("sort_descending", [(3, 4)], lambda L: lambda x: L.sort(x, 0, descending=True)[0], {}),
    ("argsort", [(3, 4)], lambda L: lambda x: L.argsort(x, 1) + x.sum() * 0, {}),
    ("topk", [(3, 5)], lambda L: lambda x: L.topk(x, 2).values, {}),
    ("topk_smallest", [(3, 5)], lambda L: lambda x: L.topk(x, 2, dim=0, largest=False)[0], {}),
    ("topk_indices", [(3, 5)], lambda L: lambda x: L.topk(x, 3)[1] + x.sum() * 0, {}),
    ("any", [(3, 4)], lambda L: lambda x: L.any(x > 1.5, 1) + x.sum() * 0, {}),
    ("all", [(3, 4)], lambda L: lambda x: L.all(x > -1.5, 0) + x.sum() * 0, {}),
    ("nonzero", [(3, 4)], lambda L: lambda x: L.nonzero(x > 0) + x.sum() * 0, {}),
    ("count_nonzero", [(3, 4)], lambda L: lambda x: L.count_nonzero(x > 0, 1) + x.sum() * 0, {}),
    ("clamp_min", [(3, 4)], lambda L: lambda x: L.clamp_min(x, 0.1), {}),
    ("clamp_max", [(3, 4)], lambda L: lambda x: L.clamp_max(x, 0.1), {}),
    ("log2", [(3, 4)], lambda L: L.log2, {"low": 0.1}),
    ("log10", [(3, 4)], lambda L: L.log10, {"low": 0.1}),
    ("sinh", [(3, 4)], lambda L: L.sinh, {}),
    ("cosh", [(3, 4)], lambda L: L.cosh, {}),
    ("broadcast_to", [(3, 1)], lambda L: lambda x: L.broadcast_to(x, (2, 3, 4)), {}),
    ("swapaxes", [(2, 3, 4)], lambda L: lambda x: L.swapaxes(x, 0, 2), {}),
    ("movedim", [(2, 3, 4)], lambda L: lambda x: L.movedim(x, 0, 2), {}),
    ("tile", [(2, 3)], lambda L: lambda x: L.tile(x, (2,)), {}),
    ("repeat_interleave", [(2, 3)], lambda L: lambda x: L.repeat_interleave(x, 2, dim=1), {}),
    ("repeat_interleave_flat", [(2, 3)], lambda L: lambda x: L.repeat_interleave(x, 3), {}),
    ("meshgrid_ij", [(3,), (4,)], lambda L: lambda x, y: L.meshgrid(x, y, indexing="ij")[1] * x[0],
     {}),
    ("meshgrid_xy", [(3,), (4,)], lambda L: lambda x, y: L.meshgrid(x, y, indexing="xy")[0] * y[1],
     {}),
    ("diag_vector", [(3,)], lambda L: lambda x: L.diag(x, -1), {}),
    ("diag_matrix", [(3, 4)], lambda L: lambda x: L.diag(x, 1), {}),
    ("trace", [(3, 4)], lambda L: L.trace, {}),
    ("cdist", [(4, 3), (5, 3)], lambda L: L.cdist, {}),
    ("isclose", [(3, 4)], lambda L: lambda x: L.isclose(x, x + 1e-9) + x.sum() * 0, {}),
    ("logical_not", [(3, 4)], lambda L: lambda x: L.logical_not(x > 0) + x.sum() * 0, {}),
    ("logical_and", [(3, 4)], lambda L: lambda x: L.logical_and(x > 0, x < 1) + x.sum() * 0,
     {}),
]


@pytest.mark.parametrize("shapes, make, options", [c[1:] for c in FUNCTIONS],
                         ids=[c[0] for c in FUNCTIONS])
def test_function_matches_torch(shapes, make, options):
    check_op(shapes, make(tg), torch_fn=make(torch), **{"finite_differences": True, **options})


FUNCTIONALS = [
    ("silu", [(3, 4)], lambda L: F(L).silu, {}),
    ("mish", [(3, 4)], lambda L: F(L).mish, {}),
    ("elu", [(3, 4)], lambda L: lambda x: F(L).elu(x, 0.7), {}),
    ("selu", [(3, 4)], lambda L: F(L).selu, {}),
    ("celu", [(3, 4)], lambda L: lambda x: F(L).celu(x, 1.5), {}),
    ("hardtanh", [(3, 4)], lambda L: lambda x: F(L).hardtanh(x, -0.5, 0.5), {}),
    ("relu6", [(3, 4)], lambda L: lambda x: F(L).relu6(x * 4), {}),
    ("logsigmoid", [(3, 4)], lambda L: lambda x: F(L).logsigmoid(x * 10), {}),
    ("softsign", [(3, 4)], lambda L: F(L).softsign, {}),
    ("softplus", [(3, 4)], lambda L: lambda x: F(L).softplus(x, beta=2), {}),
    ("glu", [(3, 4)], lambda L: F(L).glu, {}),
    ("prelu", [(2, 3, 4), (3,)], lambda L: F(L).prelu, {}),
    ("normalize", [(3, 4)], lambda L: F(L).normalize, {}),
    ("cosine_similarity", [(3, 4), (3, 4)], lambda L: F(L).cosine_similarity, {}),
    ("dropout_eval", [(3, 4)], lambda L: lambda x: F(L).dropout2d(x[None, None], 0.5, False), {}),
    ("nll_loss", [(5, 3)],
     lambda L: lambda x: F(L).nll_loss(x, L.tensor([0, 2, 1, 2, 0])), {}),
    ("nll_loss_weight", [(5, 3)], lambda L: lambda x: F(L).nll_loss(
        x, L.tensor([0, 2, 1, 2, 0]), weight=L.tensor([1.0, 2.0, 0.5], dtype=L.float64)), {}),
    ("nll_loss_ignore", [(5, 3)], lambda L: lambda x: F(L).nll_loss(
        x, L.tensor([0, -100, 1, 2, -100]), reduction="sum"), {}),
    ("nll_loss_2d", [(2, 3, 2, 2)], lambda L: lambda x: F(L).nll_loss(
        x, L.tensor([[[0, 1], [2, 2]], [[1, 1], [0, 2]]])), {}),
    ("bce", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).binary_cross_entropy(
        x.sigmoid(), (y > 0).double()), {}),
    ("bce_weight", [(3, 4), (4,)], lambda L: lambda x, w: F(L).binary_cross_entropy(
        x.sigmoid(), (x > 0).double(), weight=w.detach().abs()),
     {"finite_differences": False}),
    ("bce_logits", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).binary_cross_entropy_with_logits(
        x, (y > 0).double(), reduction="sum"), {}),
    ("bce_logits_pos_weight", [(3, 4), (4,)], lambda L: lambda x, p: (
        F(L).binary_cross_entropy_with_logits(x, (x > 0.3).double(),
                                              pos_weight=p.detach().abs())),
     {"finite_differences": False}),
    ("mse_loss", [(3, 4), (3, 4)], lambda L: F(L).mse_loss, {}),
    ("l1_loss", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).l1_loss(x, y, reduction="sum"), {}),
    ("smooth_l1_loss", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).smooth_l1_loss(
        x, y, beta=0.5), {}),
    ("huber_loss", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).huber_loss(x, y, delta=0.7), {}),
    ("kl_div", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).kl_div(
        x.log_softmax(1), y.softmax(1), reduction="batchmean"), {}),
    ("kl_div_log_target", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).kl_div(
        x.log_softmax(1), y.log_softmax(1), reduction="sum", log_target=True), {}),
    ("cross_entropy", [(4, 3)], lambda L: lambda x: F(L).cross_entropy(
        x, L.tensor([0, 2, 1, 1])), {}),
    ("cross_entropy_weight", [(5, 3)], lambda L: lambda x: F(L).cross_entropy(
        x, L.tensor([0, 2, 1, 2, 0]), weight=L.tensor([1.0, 2.0, 0.5], dtype=L.float64)), {}),
    ("cross_entropy_weight_ignore", [(5, 3)], lambda L: lambda x: F(L).cross_entropy(
        x, L.tensor([0, -100, 1, 2, 0]), L.tensor([1.0, 2.0, 0.5], dtype=L.float64),
        reduction="sum"), {}),
    ("cross_entropy_legacy_reduce", [(4, 3)], lambda L: lambda x: F(L).cross_entropy(
        x, L.tensor([0, 2, 1, 1]), reduce=False), {}),
    ("nll_loss_legacy_size_average", [(4, 3)], lambda L: lambda x: F(L).nll_loss(
        x, L.tensor([0, 2, 1, 1]), size_average=False), {}),
    ("CrossEntropyLoss_weight", [(5, 3)], lambda L: lambda x: L.nn.CrossEntropyLoss(
        L.tensor([1.0, 3.0, 0.5], dtype=L.float64), label_smoothing=0.0)(
        x, L.tensor([0, 2, 1, 2, 0])), {}),
    ("NLLLoss_weight", [(5, 3)], lambda L: lambda x: L.nn.NLLLoss(
        L.tensor([1.0, 3.0, 0.5], dtype=L.float64), ignore_index=1)(
        x, L.tensor([0, 2, 1, 2, 0])), {}),
    ("BCEWithLogitsLoss_pos_weight", [(3, 4)], lambda L: lambda x: L.nn.BCEWithLogitsLoss(
        pos_weight=L.tensor([1.0, 2.0, 3.0, 0.5], dtype=L.float64))(x, (x > 0).double()), {}),
    ("BCELoss_weight", [(3, 4)], lambda L: lambda x: L.nn.BCELoss(
        L.tensor([1.0, 2.0, 3.0, 0.5], dtype=L.float64), reduction="sum")(
        x.sigmoid(), (x > 0).double()), {}),
    ("MSELoss_legacy", [(3, 4), (3, 4)], lambda L: lambda x, y: L.nn.MSELoss(
        size_average=False)(x, y), {}),
    ("L1Loss_legacy", [(3, 4), (3, 4)], lambda L: lambda x, y: L.nn.L1Loss(
        reduce=False)(x, y), {}),
    ("smooth_l1_legacy", [(3, 4), (3, 4)], lambda L: lambda x, y: F(L).smooth_l1_loss(
        x, y, None, None, "sum", 0.5), {}),
    ("one_hot", [(3,)], lambda L: lambda x: F(L).one_hot(L.tensor([0, 2, 1]), 4) + x.sum() * 0,
     {}),
    ("conv1d", [(2, 3, 9), (4, 3, 3), (4,)], lambda L: lambda x, w, b: F(L).conv1d(
        x, w, b, stride=2, padding=1), {}),
    ("conv1d_dilation", [(2, 4, 9), (4, 2, 3)], lambda L: lambda x, w: F(L).conv1d(
        x, w, dilation=2, groups=2), {}),
    ("conv_transpose2d", [(2, 3, 4, 5), (3, 2, 3, 3), (2,)], lambda L: lambda x, w, b: (
        F(L).conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)), {}),
    ("conv_transpose2d_plain", [(1, 2, 3, 3), (2, 3, 2, 2)], lambda L: F(L).conv_transpose2d, {}),
    ("conv_transpose2d_dilation", [(1, 2, 4, 4), (2, 1, 3, 3)], lambda L: lambda x, w: (
        F(L).conv_transpose2d(x, w, stride=(1, 2), padding=(2, 1), dilation=2)), {}),
    ("embedding", [(5, 3)], lambda L: lambda w: F(L).embedding(L.tensor([[0, 4], [4, 2]]), w),
     {}),
    ("embedding_padding", [(5, 3)], lambda L: lambda w: F(L).embedding(
        L.tensor([[0, 4], [1, 2]]), w, padding_idx=1), {"finite_differences": False}),
    ("group_norm", [(2, 6, 3, 3), (6,), (6,)], lambda L: lambda x, w, b: F(L).group_norm(
        x, 3, w, b), {}),
    ("interpolate_nearest", [(1, 2, 3, 4)], lambda L: lambda x: F(L).interpolate(
        x, scale_factor=2), {}),
    ("interpolate_nearest_size", [(1, 2, 5, 4)], lambda L: lambda x: F(L).interpolate(
        x, size=(3, 7)), {}),
    ("interpolate_bilinear", [(1, 2, 3, 4)], lambda L: lambda x: F(L).interpolate(
        x, size=(5, 7), mode="bilinear"), {}),
    ("interpolate_bilinear_corners", [(1, 2, 3, 4)], lambda L: lambda x: F(L).interpolate(
        x, scale_factor=2, mode="bilinear", align_corners=True), {}),
    ("interpolate_bilinear_down", [(1, 1, 6, 8)], lambda L: lambda x: F(L).interpolate(
        x, size=(4, 3), mode="bilinear"), {}),
    ("interpolate_area", [(1, 2, 6, 7)], lambda L: lambda x: F(L).interpolate(
        x, size=(4, 3), mode="area"), {}),
    ("interpolate_linear", [(2, 3, 5)], lambda L: lambda x: F(L).interpolate(
        x, scale_factor=1.5, mode="linear"), {}),
]


@pytest.mark.parametrize("shapes, make, options", [c[1:] for c in FUNCTIONALS],
                         ids=[c[0] for c in FUNCTIONALS])
def test_functional_matches_torch(shapes, make, options):
    check_op(shapes, make(tg), torch_fn=make(torch), **{"finite_differences": True, **options})


@pytest.mark.parametrize("name", ["hardsigmoid", "hardswish"])
def test_hard_activations_match_torch(name):
    """torch computes these two in float64 with a float32 constant 1/6: equal to 1e-7 only."""
    x = np.linspace(-4, 4, 41)
    upstream = np.random.default_rng(0).standard_normal(41)
    ours = tg.tensor(x, dtype=tg.float64, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out, out_t = getattr(F(tg), name)(ours), getattr(F(torch), name)(theirs)
    out.backward(upstream)
    out_t.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-7, atol=1e-12)


def test_nll_loss_refuses_out_of_range_targets():
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        tg.nn.functional.nll_loss(tg.zeros(2, 3), tg.tensor([0, 3]))


def test_einsum_refuses_what_it_does_not_do():
    x = tg.zeros(3, 3)
    with pytest.raises(NotImplementedError, match="'...' is not supported"):
        tg.einsum("...i->...", x)
    with pytest.raises(NotImplementedError, match="once per operand"):
        tg.einsum("ii->", x)


def test_random_functions_take_torch_overloads_and_generators():
    g = tg.Generator().manual_seed(3)
    a = tg.randint(10, (4,), generator=g)
    b = tg.randint(0, 10, (4,), generator=tg.Generator().manual_seed(3))
    assert a.shape == (4,) and a.dtype == np.int64 and a.tolist() == b.tolist()
    p = tg.randperm(6, generator=tg.Generator().manual_seed(1))
    assert sorted(p.tolist()) == list(range(6))
    assert tg.randint(3, 5, size=(2, 2)).data.min() >= 3
    r1 = tg.randn(2, 3, generator=tg.Generator().manual_seed(4))
    r2 = tg.randn((2, 3), generator=tg.Generator().manual_seed(4))
    assert r1.tolist() == r2.tolist() and r1.dtype == np.float32
    u = tg.rand(5, generator=tg.Generator().manual_seed(4), dtype=tg.float64)
    assert u.dtype == np.float64 and 0 <= float(u.min()) and float(u.max()) < 1
    draws = tg.multinomial(tg.tensor([0.0, 1.0, 0.0]), 4, replacement=True)
    assert draws.tolist() == [1, 1, 1, 1]
    assert tg.bernoulli(tg.ones(3)).tolist() == [1.0, 1.0, 1.0]
    assert tg.normal(0.0, 1.0, size=(2, 3)).shape == (2, 3)


def test_unique_searchsorted_bucketize_finfo_match_torch():
    values = [3, 1, 3, 2, 1, 1]
    for ours, theirs in zip(tg.unique(tg.tensor(values), return_inverse=True, return_counts=True),
                            torch.unique(torch.tensor(values), return_inverse=True,
                                         return_counts=True)):
        assert ours.tolist() == theirs.tolist()
    edges, points = [1, 3, 5, 7, 9], [0, 1, 5, 6, 9, 10]
    for right in (False, True):
        assert tg.bucketize(tg.tensor(points), tg.tensor(edges), right=right).tolist() == \
            torch.bucketize(torch.tensor(points), torch.tensor(edges), right=right).tolist()
        assert tg.searchsorted(tg.tensor(edges), tg.tensor(points), right=right).tolist() == \
            torch.searchsorted(torch.tensor(edges), torch.tensor(points), right=right).tolist()
    assert tg.finfo(tg.float32).eps == torch.finfo(torch.float32).eps
    assert tg.iinfo(tg.int64).max == torch.iinfo(torch.int64).max
    assert tg.is_floating_point(tg.zeros(1)) and not tg.is_floating_point(tg.arange(2))


def test_is_tensor_and_as_tensor():
    x = tg.zeros(2)
    assert tg.is_tensor(x) and not tg.is_tensor(np.zeros(2))
    assert tg.as_tensor(x) is x
    arr = np.zeros(3, np.float32)
    assert tg.as_tensor(arr).numpy() is arr
    assert tg.numel(tg.zeros(2, 3)) == 6
    assert tg.equal(tg.tensor([1, 2]), tg.tensor([1, 2]))
    assert tg.allclose(tg.tensor([1.0]), tg.tensor([1.0 + 1e-9]))


# ---------------------------------------------------------------- layers, same weights


def _copy_weights(ours, theirs) -> None:
    """Load our module's parameters and buffers into the torch twin (names match)."""
    state = {k: torch.from_numpy(np.array(v.data)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)


LAYERS = [
    ("Conv1d", lambda L: L.nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 8)),
    ("ConvTranspose2d", lambda L: L.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1), (2, 3, 4, 4)),
    ("GroupNorm", lambda L: L.nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    ("Upsample", lambda L: L.nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 3)),
    ("Unflatten", lambda L: L.nn.Unflatten(1, (2, 3)), (4, 6)),
    ("Identity", lambda L: L.nn.Identity(54, unused=1), (2, 3)),
    ("Dropout2d_eval", lambda L: L.nn.Dropout2d(0.3).eval(), (2, 3, 4, 4)),
    ("SiLU", lambda L: L.nn.SiLU(), (3, 4)),
    ("Mish", lambda L: L.nn.Mish(), (3, 4)),
    ("ELU", lambda L: L.nn.ELU(0.5), (3, 4)),
    ("CELU", lambda L: L.nn.CELU(0.5), (3, 4)),
    ("SELU", lambda L: L.nn.SELU(), (3, 4)),
    ("ReLU6", lambda L: L.nn.ReLU6(), (3, 4)),
    ("Hardtanh", lambda L: L.nn.Hardtanh(-0.3, 0.4), (3, 4)),
    ("Hardsigmoid", lambda L: L.nn.Hardsigmoid(), (3, 4)),
    ("Hardswish", lambda L: L.nn.Hardswish(), (3, 4)),
    ("LogSigmoid", lambda L: L.nn.LogSigmoid(), (3, 4)),
    ("Softsign", lambda L: L.nn.Softsign(), (3, 4)),
    ("Softplus", lambda L: L.nn.Softplus(beta=3), (3, 4)),
    ("GLU", lambda L: L.nn.GLU(), (3, 4)),
    ("PReLU", lambda L: L.nn.PReLU(3), (2, 3, 4)),
]


@pytest.mark.parametrize("make, shape", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(make, shape):
    ours = make(tg).double()
    theirs = make(torch).double()
    _copy_weights(ours, theirs)
    check_op([shape], ours, torch_fn=theirs, finite_differences=False)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), atol=1e-8, err_msg=name)


def test_embedding_matches_torch_and_pads():
    ours, theirs = tg.nn.Embedding(6, 3, padding_idx=2), torch.nn.Embedding(6, 3, padding_idx=2)
    assert np.all(ours.weight.detach().numpy()[2] == 0)
    _copy_weights(ours, theirs)
    idx = [[0, 2, 5], [2, 2, 1]]
    upstream = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    out, out_t = ours(tg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_allclose(out.data, out_t.detach().numpy())
    out.backward(upstream)
    out_t.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), atol=1e-6)
    assert np.all(ours.weight.grad.numpy()[2] == 0)
    frozen = tg.nn.Embedding.from_pretrained(tg.ones(4, 2))
    assert not frozen.weight.requires_grad and frozen(tg.tensor([3])).tolist() == [[1.0, 1.0]]


def test_new_layers_default_init_has_torch_scale():
    """Bounds of torch's default init: kaiming_uniform(a=sqrt(5)) over fan_in of weight.shape[1:]."""
    conv_t = tg.nn.ConvTranspose2d(8, 4, 3)
    bound = 1 / math.sqrt(4 * 3 * 3)
    assert np.abs(conv_t.weight.data).max() <= bound and np.abs(conv_t.bias.data).max() <= bound
    assert conv_t(tg.zeros(1, 8, 5, 5)).shape == (1, 4, 7, 7)
    assert tg.nn.Conv1d(2, 5, 3)(tg.zeros(1, 2, 10)).shape == (1, 5, 8)


def test_dropout2d_zeroes_whole_channels():
    tg.manual_seed(0)
    out = tg.nn.Dropout2d(0.5)(tg.ones(8, 16, 3, 3)).numpy()
    per_channel = out.reshape(8, 16, 9)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert np.all(per_channel.min(2) == per_channel.max(2))    # one value per channel
    assert 0.2 < (per_channel[..., 0] == 0).mean() < 0.8


def test_layers_take_device_and_dtype():
    layer = tg.nn.Linear(2, 3, device="cpu", dtype=tg.float64)
    assert layer.weight.dtype == np.float64
    assert tg.nn.Conv2d(1, 2, 3, device=tg.device("cpu")).weight.shape == (2, 1, 3, 3)
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        tg.nn.Linear(2, 3, device="cuda")


# ---------------------------------------------------------------- devices and missing names


def test_devices_are_honest():
    assert tg.device("cpu") == "cpu" and tg.device("cpu:0") == tg.device("cpu")
    assert repr(tg.device("cpu")) == "device(type='cpu')" and str(tg.device("cpu")) == "cpu"
    assert not tg.cuda.is_available() and tg.cuda.device_count() == 0
    assert not tg.accelerator.is_available() and tg.accelerator.current_accelerator() is None
    assert not tg.backends.mps.is_available()
    with pytest.raises(RuntimeError, match=r"runs on the CPU; drop the .to\('cuda'\)"):
        tg.device("cuda")
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        tg.Generator(device="mps")


@pytest.mark.parametrize("module, name, words", [
    (tg, "compile", "tinygrad_edu has no torch.compile; remove it"),
    (tg, "jit", "torch.jit; remove the scripting"),
    (tg, "frobnicate", "has no attribute 'frobnicate'"),
    (tg.nn, "LSTM", "tinygrad_edu has no torch.nn.LSTM; not implemented yet"),
    (tg.nn.functional, "scaled_dot_product_attention", "write softmax(q @ k.T"),
])
def test_missing_names_say_what_to_do(module, name, words):
    with pytest.raises(AttributeError, match=words.replace("(", r"\(").replace(".", r"\.")):
        getattr(module, name)


def test_missing_torchvision_names_say_what_to_do():
    import tinygrad_edu.vision as torchvision
    with pytest.raises(AttributeError, match="use the networks in models/"):
        torchvision.models  # noqa: B018


def test_functions_take_data_as_torch_does():
    """`torch.max(outputs.data, 1)`: `.data` is a Tensor outside the graph."""
    x = tg.tensor([[1.0, 3.0], [4.0, 2.0]], requires_grad=True)
    values, indices = tg.max(x.data, 1)
    assert values.tolist() == [3.0, 4.0] and indices.tolist() == [1, 0]
    assert not values.requires_grad
    assert tg.sum(x.data > 2).item() == 2 and tg.exp(x.data).shape == (2, 2)


@pytest.mark.parametrize("module, name, words", [
    ("tinygrad_edu.vision.datasets", "CIFAR10", "torchvision.datasets.CIFAR10; not available"),
    ("tinygrad_edu.vision.transforms", "v2", "use tinygrad_edu.vision.transforms"),
    ("tinygrad_edu.utils.data", "DistributedSampler", "train in one process"),
    ("tinygrad_edu.vision.utils", "draw_bounding_boxes", "no torchvision.utils.draw_bounding"),
])
def test_missing_names_of_the_faces(module, name, words):
    import importlib
    with pytest.raises(AttributeError, match=words):
        getattr(importlib.import_module(module), name)


def test_module_devices():
    model = tg.nn.Linear(2, 2)
    assert model.cpu() is model and model.to("cpu") is model
    assert model.to(tg.device("cpu"), tg.float64).weight.dtype == np.float64
    with pytest.raises(RuntimeError, match="runs on the CPU; drop the .cuda()"):
        model.cuda()
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        model.to("cuda")


# Tensor methods of the PyTorch surface: the same line runs on both libraries' tensors.
METHODS = [
    ("norm", [(3, 4)], lambda x: x.norm()),
    ("norm_dim", [(3, 4)], lambda x: x.norm(dim=1, keepdim=True)),
    ("norm_p1", [(3, 4)], lambda x: x.norm(1)),
    ("prod", [(3, 4)], lambda x: x.prod(1, keepdim=True)),
    ("cumsum", [(3, 4)], lambda x: x.cumsum(0)),
    ("sort", [(3, 4)], lambda x: x.sort(descending=True).values),
    ("argsort", [(3, 4)], lambda x: x.argsort(0) + x.sum() * 0),
    ("topk", [(3, 5)], lambda x: x.topk(2, dim=1)[0]),
    ("flip", [(3, 4)], lambda x: x.flip(1)),
    ("flip_dims", [(3, 4)], lambda x: x.flip(0, 1)),
    ("roll", [(3, 4)], lambda x: x.roll(2, 1)),
    ("index_select", [(4, 3)], lambda x: x.index_select(1, x.new_tensor([2, 0]).long())),
    ("masked_select", [(3, 4)], lambda x: x.masked_select(x > 0)),
    ("scatter", [(3, 4)], lambda x: x.scatter(1, (x > 0).long(), -1.0)),
    ("scatter_add", [(2, 4), (2, 4)],
     lambda x, s: x.scatter_add(0, (s > 0).long(), s)),
    ("nonzero", [(3, 4)], lambda x: (x > 0).nonzero() + x.sum() * 0),
    ("count_nonzero", [(3, 4)], lambda x: (x > 0).count_nonzero() + x.sum() * 0),
    ("tril", [(4, 4)], lambda x: x.tril(1)),
    ("triu", [(4, 4)], lambda x: x.triu(-1)),
    ("log1p", [(3, 4)], lambda x: x.abs().log1p()),
    ("expm1", [(3, 4)], lambda x: x.expm1()),
    ("sin", [(3, 4)], lambda x: x.sin()),
    ("cos", [(3, 4)], lambda x: x.cos()),
    ("floor", [(3, 4)], lambda x: x.floor() + x),
    ("ceil", [(3, 4)], lambda x: x.ceil() * x),
    ("round", [(3, 4)], lambda x: x.round() + x),
    ("trunc", [(3, 4)], lambda x: x.trunc() + x),
    ("lerp", [(3, 4), (3, 4)], lambda x, y: x.lerp(y, 0.25)),
    ("outer", [(3,), (4,)], lambda x, y: x.outer(y)),
    ("mm", [(3, 4), (4, 2)], lambda x, y: x.mm(y)),
    ("bmm", [(2, 3, 4), (2, 4, 2)], lambda x, y: x.bmm(y)),
    ("contiguous", [(3, 4)], lambda x: x.t().contiguous() * 2),
    ("type_as", [(3, 4)], lambda x: x.type_as(x) * 1.5),
    ("new_zeros", [(3, 4)], lambda x: x + x.new_zeros(3, 4) + x.new_ones((3, 4))),
    ("new_full", [(3, 4)], lambda x: x * x.new_full((3, 4), 2.0)),
]


@pytest.mark.parametrize("shapes, fn", [c[1:] for c in METHODS], ids=[c[0] for c in METHODS])
def test_method_matches_torch(shapes, fn):
    check_op(shapes, fn, finite_differences=False)


def test_tensor_to_and_devices():
    x = tg.ones(2, 3)
    assert x.to("cpu") is x and x.cpu() is x and x.to(tg.device("cpu")) is x
    assert x.device == "cpu" and not x.is_cuda and x.device == tg.device("cpu")
    assert x.to(tg.float64).dtype == np.float64 and x.to("cpu", tg.int64).dtype == np.int64
    assert x.to(tg.zeros(1, dtype=tg.float64)).dtype == np.float64
    assert x.to(dtype=tg.float16, device="cpu").dtype == np.float16
    assert x.to(device="cpu", copy=True) is not x
    for move in (lambda: x.to("cuda"), lambda: x.to("mps"), lambda: x.cuda(),
                 lambda: x.to("cuda:1")):
        with pytest.raises(RuntimeError, match="runs on the CPU"):
            move()
    w = tg.ones(2, requires_grad=True)
    w.to("cpu", tg.float64).sum().backward()            # a cast keeps the graph
    assert w.grad.tolist() == [1.0, 1.0]
    assert x.half().dtype == np.float16 and x.byte().dtype == np.uint8
    assert x.short().dtype == np.int16 and x.is_floating_point()
    assert x.element_size() == 4 and x.nelement() == 6
    assert x.new_tensor([1, 2]).dtype == np.float32 and x.new_empty(2).shape == (2,)
    assert x.t().contiguous().numpy().flags.c_contiguous and x.contiguous() is x
    assert x.equal(tg.ones(2, 3)) and not x.equal(tg.ones(3, 2))
    assert tg.tensor([1.0, float("inf")]).isinf().tolist() == [False, True]


def test_in_place_scatter_as_in_the_data_tutorial():
    """torch's "Datasets & DataLoaders" tutorial one-hot encodes with scatter_."""
    one_hot = tg.zeros(10, dtype=tg.float32).scatter_(0, tg.tensor(3), value=1)
    assert one_hot.tolist() == [0.0] * 3 + [1.0] + [0.0] * 6
    x = tg.zeros(2, 3)
    x.scatter_add_(1, tg.tensor([[0, 0], [2, 1]]), tg.ones(2, 2))
    assert x.tolist() == [[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]]



def test_creation_functions_take_torchs_device_argument():
    for make in (lambda d: tg.zeros(2, 3, device=d), lambda d: tg.ones((2,), device=d),
                 lambda d: tg.randn(2, device=d), lambda d: tg.rand(2, device=d),
                 lambda d: tg.empty(2, device=d), lambda d: tg.full((2,), 1.5, device=d),
                 lambda d: tg.arange(4, device=d), lambda d: tg.linspace(0, 1, 3, device=d),
                 lambda d: tg.eye(2, device=d), lambda d: tg.tensor([1.0], device=d),
                 lambda d: tg.zeros_like(tg.ones(2), device=d),
                 lambda d: tg.randn_like(tg.ones(2), device=d),
                 lambda d: tg.randint(0, 3, (2,), device=d), lambda d: tg.randperm(3, device=d)):
        assert make("cpu").device == "cpu" and make(tg.device("cpu")).shape == make(None).shape
        with pytest.raises(RuntimeError, match=r"runs on the CPU; drop the device='cuda'"):
            make("cuda")
    assert tg.zeros(2, pin_memory=True, device="cpu").tolist() == [0.0, 0.0]
