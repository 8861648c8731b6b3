"""Train MLP3 on MNIST, from scratch (default) or as its PyTorch twin, and write a full report.

    python -m experiments.mnist_mlp3                       # tinygrad_edu, default settings
    python -m experiments.mnist_mlp3 --framework torch     # the PyTorch twin, same settings
    python -m experiments.mnist_mlp3 --epochs 1 --subset 5000

The run directory (runs/mnist_mlp3-<framework>-<time>/) holds TensorBoard events, metrics.json,
checkpoint.npz and report.html.
"""
from .common import Config, exit_on_usage_error, parse_config
from .runner import run

DEFAULTS = Config(model="mlp3")


def main(argv=None) -> dict:
    cfg = parse_config(DEFAULTS, argv, description=__doc__.splitlines()[0])
    return exit_on_usage_error(lambda: run(cfg))


if __name__ == "__main__":
    main()
