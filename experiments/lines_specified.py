"""Train the specified CNN on the line dataset (96 classes) or MNIST (10 classes), 60/40 split.

60% of the images train the network, the other 40% test it; the run ends with a report.

    python -m experiments.lines_specified                      # lines, 1000 images per class
    python -m experiments.lines_specified --dataset mnist      # MNIST's 70,000 images, 60/40
    python -m experiments.lines_specified --per-class 100 --epochs 1
    python -m experiments.lines_specified --channels 32,64 --kernel-size 5 --padding 2

The run directory (runs/<dataset>_spec_cnn-<time>/) holds TensorBoard events, metrics.json,
checkpoint.npz and report.html. The experiment itself (config, build, report) is in
lines_common.py, shared with lines_variations and lines_multihead.
"""
from . import runner
from .lines_common import LinesConfig, build, finish

DEFAULTS = LinesConfig(epochs=3)
main = runner.main_for(DEFAULTS, build, finish, "lines_specified",
                       __doc__.splitlines()[0])

if __name__ == "__main__":
    main()
