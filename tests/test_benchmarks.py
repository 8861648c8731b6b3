"""The iteration-time benchmark times the same computation in every implementation: the plain-NumPy
reference and the PyTorch twin follow tinygrad_edu's losses step by step (no timing here)."""
import numpy as np
import pytest

from benchmarks.iteration_time import INPUT_SHAPES, make_steps, train_flops

try:
    import torch
except ImportError:
    torch = None


@pytest.mark.parametrize("name, n_steps", [("mlp3", 3), ("cnn3", 3), ("lines_multihead", 3),
                                            ("resnet18", 1), ("vgg_bn", 2)])
def test_every_implementation_follows_the_same_losses(name, n_steps):
    steps = make_steps(name, 2, torch)
    assert "numpy" in steps and "tinygrad_edu" in steps
    for rtol in (1e-5, 1e-4, 1e-3)[:n_steps]:  # after SGD updates, float32 rounding grows
        losses = {impl: step() for impl, step in steps.items()}
        np.testing.assert_allclose(list(losses.values()), losses["tinygrad_edu"], rtol=rtol,
                                   err_msg=str(losses))


def test_training_flops_of_cnn3_by_hand():
    # forward multiply-adds per image: conv 16*9*784, 32*144*196, 64*288*49, linear 576*10
    macs = 16 * 9 * 784 + 32 * 144 * 196 + 64 * 288 * 49 + 576 * 10
    first = 16 * 9 * 784  # the first layer computes no input gradient
    assert train_flops("cnn3", 4) == 2 * 4 * (3 * macs - first)
    assert set(INPUT_SHAPES) >= {"mlp3", "cnn2", "cnn3", "lenet5", "resnet18"}
