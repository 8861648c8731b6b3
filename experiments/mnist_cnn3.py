"""Train CNN3 on MNIST, from scratch (default) or as its PyTorch twin, and write a full report.

    python -m experiments.mnist_cnn3                       # tinygrad_edu, default settings
    python -m experiments.mnist_cnn3 --framework torch     # the PyTorch twin, same settings
    python -m experiments.mnist_cnn3 --epochs 1 --subset 5000

The run directory (runs/mnist_cnn3-<framework>-<time>/) holds TensorBoard events, metrics.json,
checkpoint.npz and report.html. Flags: python -m experiments.mnist_cnn3 --help
"""
from . import runner
from .mnist_common import MNISTConfig, build, finish

main = runner.main_for(MNISTConfig(model="cnn3"), build, finish, "mnist_cnn3",
                       "Train cnn3 on MNIST.")

if __name__ == "__main__":
    main()
