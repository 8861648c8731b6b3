"""Train ResNet-18 (He et al. 2015) on Caltech-101 (64x64) from scratch, in either framework.

    python -m experiments.caltech_resnet18                      # tinygrad_edu
    python -m experiments.caltech_resnet18 --framework torch    # the PyTorch twin, same settings
    python -m experiments.caltech_resnet18 --epochs 1 --subset 1000

ResNet-18 is ~15x the work of LeNet-5 per image: measure seconds per epoch with a short run
first. The run directory (runs/caltech_resnet18-<framework>-<time>/) holds TensorBoard events,
metrics.json, checkpoint.npz and report.html.
"""
from . import runner
from .caltech_common import CaltechConfig, build, finish

DEFAULTS = CaltechConfig(model="resnet18", epochs=4, optimizer="sgd", lr=0.05, momentum=0.9,
                         weight_decay=5e-4, augment=True, schedule="cosine")
main = runner.main_for(DEFAULTS, build, finish, "caltech_resnet18", __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
