"""Draw what the trained LeNet-5 sees: the 32 maps of its first conv layer and the 64 of its second,
for an accordion and a camera, one row per image (PNG and TensorBoard).

    python -m experiments.caltech_lenet5                  # train first (writes checkpoint.npz)
    python -m experiments.caltech_activations             # the newest caltech_lenet5 run in runs/
    python -m experiments.caltech_activations --checkpoint runs/<run>/checkpoint.npz

Each map is the layer's output after ReLU (what the next layer receives), scaled to its own
[min, max] so that every channel's pattern shows; a channel that stays at zero is black.
The figure goes to <logdir>/caltech_activations-<time>/activations.png.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

from tinygrad_edu import viz
from tinygrad_edu.data.image_folder import decode_image
from tinygrad_edu.logging import Logger

from . import UsageError
from .caltech_common import DATA_DIR
from .common import exit_on_usage_error
from .run_record import Trained, load_trained

IMAGES = ("accordion/image_0001.jpg", "camera/image_0001.jpg")
LAYERS = (("features.relu1", "conv1: 32 maps"), ("features.relu2", "conv2: 64 maps"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint.npz of a caltech_lenet5 run (default: the newest in --logdir)")
    p.add_argument("--logdir", default="runs")
    p.add_argument("--data-dir", default=str(DATA_DIR))
    p.add_argument("--images", nargs="+", default=list(IMAGES),
                   help="paths relative to --data-dir, one figure row each")
    return p.parse_args(argv)


def newest_checkpoint(logdir: str) -> str:
    """The checkpoint of the most recent caltech_lenet5 run (specified model) under `logdir`."""
    found = glob.glob(os.path.join(logdir, "caltech_lenet5-*", "checkpoint.npz"))
    if not found:
        raise UsageError(f"no caltech_lenet5 run with a checkpoint in {logdir}/; train one with "
                         f"`python -m experiments.caltech_lenet5` or pass --checkpoint")
    return max(found, key=os.path.getmtime)


def load_model(path: str) -> Trained:
    """The LeNet-5 of a caltech_lenet5 run (a run directory or its checkpoint.npz), as run.json
    records it: constructor config, class names and input statistics."""
    trained = load_trained(path)
    if trained.record is None or not trained.name.startswith("lenet5"):
        raise UsageError(f"{path} is not a caltech_lenet5 run (its run.json does not record a "
                         f"LeNet-5); pass the run directory of such a run")
    trained.model.eval()
    return trained


def load_images(data_dir: str, names, trained: Trained) -> tuple[np.ndarray, np.ndarray]:
    """(raw (N, H, W, 3) uint8, normalised (N, 3, H, W) float32) for the network."""
    size = trained.preprocessing.size
    raw = []
    for name in names:
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            raise UsageError(f"image {path} does not exist; check --data-dir and --images")
        raw.append(decode_image(path, (size, size)))
    raw = np.stack(raw)  # (N, H, W, 3)
    x = raw.transpose(0, 3, 1, 2).astype(np.float32) / 255  # (N, 3, H, W)
    return raw, trained.preprocessing.apply(x)


def panel(image: np.ndarray, title: str) -> np.ndarray:
    """An (H, W, 3) image with a caption underneath."""
    return viz.make_grid([image], nrow=1, captions=[title], pad_value=255)


def side_by_side(images: list[np.ndarray], gap: int = 12, axis: int = 1) -> np.ndarray:
    """Join (H, W, 3) uint8 images left to right (axis=1) or top to bottom (axis=0), padding
    the other dimension with white so they line up at the top / left."""
    other = 1 - axis
    size = max(im.shape[other] for im in images)
    parts = []
    for im in images:
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, size - im.shape[other])
        parts.append(np.pad(im, pad, constant_values=255))
        spacer = list(parts[-1].shape)
        spacer[axis] = gap
        parts.append(np.full(spacer, 255, np.uint8))
    return np.concatenate(parts[:-1], axis=axis)


def run(args: argparse.Namespace) -> dict:
    ckpt = args.checkpoint or newest_checkpoint(args.logdir)
    trained = load_model(ckpt)
    raw, x = load_images(args.data_dir, args.images, trained)
    trace = viz.Trace(trained.model, x, grad=False)
    probs = np.exp(trace.logits() - trace.logits().max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    out_dir = os.path.join(args.logdir, f"caltech_activations-{time.strftime('%Y%m%d-%H%M%S')}")
    rows = []
    with Logger(logdir=out_dir) as logger:
        for i, name in enumerate(args.images):
            k = int(probs[i].argmax())
            row = [panel(raw[i].repeat(3, 0).repeat(3, 1),
                         f"{name}: predicted {trained.class_names[k]} ({probs[i, k]:.2f})")]
            for layer, title in LAYERS:
                grid = viz.activation_grid(trace.output(layer)[i], nrow=8)
                logger.image(f"activations/{layer}/{name}", grid, 0)
                row.append(panel(grid, title))
            rows.append(side_by_side(row))
        figure = side_by_side(rows, gap=20, axis=0)
        logger.image("activations/figure", figure, 0)
        path = os.path.join(out_dir, "activations.png")
        viz.save_png(path, figure)
    print(f"activations of {', '.join(args.images)} from {ckpt}: {path}")
    return {"figure": path, "checkpoint": ckpt, "run_dir": out_dir}


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return exit_on_usage_error(lambda: run(args), argv)


if __name__ == "__main__":
    main()
