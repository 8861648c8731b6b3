"""Train CNN2 on MNIST, from scratch (default) or as its PyTorch twin, and write a full report.

    python -m experiments.mnist_cnn2                       # tinygrad_edu, default settings
    python -m experiments.mnist_cnn2 --framework torch     # the PyTorch twin, same settings
    python -m experiments.mnist_cnn2 --epochs 1 --subset 5000

The run directory (runs/mnist_cnn2-<framework>-<time>/) holds TensorBoard events, metrics.json,
checkpoint.npz and report.html. Flags: python -m experiments.mnist_cnn2 --help
"""
from . import runner
from .mnist_common import MNISTConfig, build, finish

main = runner.main_for(MNISTConfig(model="cnn2"), build, finish, "mnist_cnn2",
                       "Train cnn2 on MNIST.")

if __name__ == "__main__":
    main()
