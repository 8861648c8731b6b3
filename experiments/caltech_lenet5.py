"""Train LeNet-5 on Caltech-101 (64x64), as specified or improved, in either framework.

    python -m experiments.caltech_lenet5                        # the specified LeNet-5
    python -m experiments.caltech_lenet5 --framework torch      # its PyTorch twin, same settings
    python -m experiments.caltech_lenet5 --improved             # BN, dropout, Xavier, augmentation,
                                                                # weight decay, cosine lr schedule
    python -m experiments.caltech_lenet5 --epochs 2 --classes 5 # a quick look

The run directory (runs/caltech_lenet5[_improved]-<framework>-<time>/) holds TensorBoard events,
metrics.json (loss and accuracy on both splits per epoch), checkpoint.npz and report.html.
"""
import argparse
import dataclasses
import sys
from dataclasses import dataclass

from .caltech_common import CaltechConfig, run
from .common import exit_on_usage_error, parse_config


@dataclass
class LeNetConfig(CaltechConfig):
    improved: bool = False  # LeNet-5 with the improvements, and their training defaults


SPECIFIED = LeNetConfig(model="lenet5", epochs=12, optimizer="adam", lr=1e-3, schedule="none")
IMPROVED = dataclasses.replace(SPECIFIED, model="lenet5_improved", improved=True, epochs=12,
                               optimizer="sgd", lr=0.05, weight_decay=5e-4, augment=True,
                               schedule="cosine")


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--improved", action=argparse.BooleanOptionalAction, default=False)
    defaults = IMPROVED if pre.parse_known_args(argv)[0].improved else SPECIFIED
    cfg = parse_config(defaults, argv, description=__doc__.splitlines()[0])
    return exit_on_usage_error(lambda: run(cfg))


if __name__ == "__main__":
    main()
