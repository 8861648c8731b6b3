"""tg.autograd.functional (jacobian, hessian, vjp, jvp, hvp) against torch and closed forms."""
from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg

X = np.array([0.5, -1.0, 2.0])
V = np.array([1.0, 0.5, -2.0])


def scalar_fn(x):
    return (x ** 3).sum() + (x[0] * x[1]).tanh() * x[2].exp()


def vector_fn(x):
    return x.exp() * x[1]


CASES = {
    "hessian": lambda lib, x, v: lib.autograd.functional.hessian(scalar_fn, x),
    "jacobian": lambda lib, x, v: lib.autograd.functional.jacobian(vector_fn, x),
    "hvp": lambda lib, x, v: lib.autograd.functional.hvp(scalar_fn, x, v)[1],
    "vjp": lambda lib, x, v: lib.autograd.functional.vjp(vector_fn, x, v)[1],
    "jvp": lambda lib, x, v: lib.autograd.functional.jvp(vector_fn, x, v)[1],
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    out = []
    for lib in (tg, torch):
        x, v = lib.tensor(X, dtype=lib.float64), lib.tensor(V, dtype=lib.float64)
        out.append(CASES[name](lib, x, v).detach().numpy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-12)


def test_hessian_of_a_cubic_is_diagonal_6x():
    h = tg.autograd.functional.hessian(lambda x: (x ** 3).sum(), tg.tensor(X, dtype=tg.float64))
    np.testing.assert_allclose(h.detach().numpy(), np.diag(6 * X), atol=1e-12)


def test_jacobian_of_several_inputs_and_outputs_has_torch_nesting():
    x, y = tg.tensor(X, dtype=tg.float64), tg.tensor(V, dtype=tg.float64)
    J = tg.autograd.functional.jacobian(lambda a, b: (a * b, (a ** 2).sum()), (x, y))
    assert [[j.shape for j in row] for row in J] == [[(3, 3), (3, 3)], [(3,), (3,)]]
    np.testing.assert_allclose(J[0][0].detach().numpy(), np.diag(V))
    np.testing.assert_allclose(J[1][0].detach().numpy(), 2 * X)


def test_newton_method_with_the_hessian_finds_the_minimum():
    # f(x) = sum((x - 1)^4 + x^2): Newton steps with the exact gradient and Hessian
    def f(x):
        return ((x - 1) ** 4 + x ** 2).sum()
    x = tg.tensor([3.0, -2.0], dtype=tg.float64)
    for _ in range(30):
        g = tg.autograd.functional.vjp(f, x)[1].detach().numpy()
        H = tg.autograd.functional.hessian(f, x).detach().numpy()
        x = tg.tensor(x.detach().numpy() - np.linalg.solve(H, g), dtype=tg.float64)
    root = x.detach().numpy()
    np.testing.assert_allclose(4 * (root - 1) ** 3 + 2 * root, 0, atol=1e-10)
