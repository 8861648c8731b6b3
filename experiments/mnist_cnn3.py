"""Train CNN3 on MNIST, from scratch (default) or as its PyTorch twin, and write a full report.

    python -m experiments.mnist_cnn3                       # tinygrad_edu, default settings
    python -m experiments.mnist_cnn3 --framework torch     # the PyTorch twin, same settings
    python -m experiments.mnist_cnn3 --epochs 1 --subset 5000

The run directory (runs/mnist_cnn3-<framework>-<time>/) holds TensorBoard events, metrics.json,
checkpoint.npz and report.html. Flags: python -m experiments.mnist_cnn3 --help
"""
from .runner import script_main

main = script_main("cnn3")

if __name__ == "__main__":
    main()
