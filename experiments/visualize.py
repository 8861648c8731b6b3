"""Show what a trained network looks at: CAM, Grad-CAM(++), saliency, SmoothGrad, activations,
filters and first-layer weights, as PNG files (--out) and TensorBoard images (--logdir).

    python -m experiments.visualize runs/RUN a.png b.png c.png --method gradcam
    python -m experiments.visualize runs/RUN --index 0 1 2 3 4 5 --output all
    python -m experiments.visualize runs/RUN --method filters --start blank
    python -m experiments.visualize runs/RUN --list-layers
    python -m experiments.visualize --index 0 --method cam --compare runs/A runs/B runs/C

RUN is a run directory: its run.json says which model it trained (any architecture, Part-2
variants included), how its inputs were scaled (MNIST's mean/std, the line dataset's [0, 1],
Caltech's per-channel statistics) and what its outputs mean, so no --model is needed and every
image is fed as in training. --index picks images of the run's own test set. A multi-head
network is explained head by head (--output HEAD, default all). RUN may also be a checkpoint
file (tg.save'd state dict, or a torch .pt/.pth through the PyTorch twin); without run.json it
is taken for an MNIST model (--model names it if the file does not). Without RUN the model
(--model) has random weights.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

import models
import tinygrad_edu as tg
from tinygrad_edu import viz
from tinygrad_edu.data import DataError
from tinygrad_edu.data.image_folder import eight_bit
from tinygrad_edu.data.mnist import DATASETS

from . import UsageError
from .common import exit_on_usage_error
from .run_record import Trained, build_model, load_trained

MAP_METHODS = ("cam", "gradcam", "gradcam++", "saliency", "smoothgrad")
METHODS = (*MAP_METHODS, "activations", "filters", "weights")
ALL = "all"
SCALE = 4  # 28x28 digits are drawn 112x112


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", metavar="RUN [IMAGE ...]",
                   help="a run directory (or checkpoint file), then PNG/JPEG images")
    p.add_argument("--index", type=int, nargs="+", help="indices into the run's test set")
    p.add_argument("--method", choices=METHODS, default="gradcam")
    p.add_argument("--layer", help="layer name (see --list-layers); default: the last Conv2d")
    p.add_argument("--output", help="the head of a multi-head network to explain, or 'all' "
                   "(the default)")
    p.add_argument("--class", dest="target", type=int, help="class to explain (default: "
                   "the predicted class of each image)")
    p.add_argument("--start", choices=("blank", "noise"), default="noise",
                   help="--method filters: start the gradient ascent from a blank or a noisy "
                   "image")
    p.add_argument("--model", help=f"model name: {', '.join(models.MODELS)} (default: the "
                   f"run's, else cnn3)")
    p.add_argument("--checkpoint", help="the run directory or checkpoint (then every "
                   "positional argument is an image)")
    p.add_argument("--compare", nargs="+", metavar="RUN",
                   help="several runs: one figure with their maps side by side")
    p.add_argument("--list-layers", action="store_true", help="print layer names and shapes")
    p.add_argument("--out", default="runs/visualize", help="directory for the PNG files")
    p.add_argument("--logdir", help="also write the figures to TensorBoard in this directory")
    p.add_argument("--data-dir", help="folder holding the run's data set (default: the run's)")
    p.add_argument("--steps", type=int, default=100, help="gradient-ascent steps (filters)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    args.checkpoint, args.images = _split_paths(args)
    return args


def _split_paths(args) -> tuple[str | None, list[str]]:
    """(run, images): the first positional is the run when it is a directory or a checkpoint
    file and --checkpoint is not given."""
    paths = list(args.paths)
    if args.checkpoint is None and paths and (
            os.path.isdir(paths[0]) or paths[0].endswith((".npz", ".pt", ".pth"))):
        return paths[0], paths[1:]
    return args.checkpoint, paths


# ---- the model -------------------------------------------------------------------------------

def load_model(checkpoint: str | None, model_name: str | None) -> Trained:
    """The run's trained model, or (no checkpoint) `model_name` with random weights."""
    if checkpoint is None:
        name = model_name or "cnn3"
        print(f"note: no run given, so {name} has random weights")
        return Trained(build_model(name, "tinygrad_edu"), name, "tinygrad_edu", None)
    return load_trained(checkpoint, model_name)


# ---- inputs ----------------------------------------------------------------------------------

@dataclass
class Inputs:
    x: np.ndarray  # (N, C, H, W) normalised, what the model takes
    pictures: np.ndarray  # (N, C, H, W) in [0, 1], what people see
    captions: list[str]


def image_file(path: str, trained: Trained) -> Inputs:
    """A PNG/JPEG as the model's input: grayscale or RGB, padded square, resized, scaled as the
    run scaled its data, and inverted when its background is light but the data set's is dark
    (MNIST digits are white on black). 16-bit images are scaled by 65535."""
    prep = trained.preprocessing
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise UsageError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"cannot read image {path} as PNG or JPEG ({e})") from None
    a = _pixels(img, prep.channels, prep.size)  # (C, H, W) in [0, 1]
    if prep.dark_background and a.mean() > 0.5:
        a = 1 - a
    return Inputs(prep.apply(a[None]), a[None], [os.path.basename(path)])


def _pixels(img: Image.Image, channels: int, size: int) -> np.ndarray:
    """(C, H, W) float32 in [0, 1], padded square with the corner colour and resized."""
    img = eight_bit(img).convert("L" if channels == 1 else "RGB")
    img = ImageOps.pad(img, (size, size), Image.Resampling.BILINEAR, color=img.getpixel((0, 0)))
    a = np.asarray(img, np.float32) / 255  # (H, W) or (H, W, 3)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def test_images(trained: Trained, indices: list[int], data_dir: str | None) -> Inputs:
    """Images `indices` of the run's test set (MNIST's, Fashion-MNIST's, the line dataset's
    40% split, Caltech's validation split), as the run fed them."""
    dataset, label = _test_set(trained, data_dir)
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise UsageError(f"--index {bad[0]} is outside the run's test set (0..{len(dataset) - 1})")
    x, y = dataset.get_batch(np.asarray(indices))
    x = np.asarray(x, np.float32)
    captions = [f"#{i} {label(np.asarray(t))}" for i, t in zip(indices, y)]
    return Inputs(x, trained.preprocessing.undo(x), captions)


def _test_set(trained: Trained, data_dir: str | None):
    """(dataset of normalised (x, y), y -> caption) of the run's test split."""
    record = trained.record
    name = record.dataset if record is not None else "mnist"
    config = dict(record.config) if record is not None else {}
    if data_dir is not None:
        config["data_dir"] = data_dir
    try:
        if name == "caltech101":
            from .caltech_common import CaltechConfig, load_caltech
            dataset = load_caltech(CaltechConfig(**_known(CaltechConfig, config)))[1]
        elif record is not None and record.experiment.startswith("lines_"):
            from .lines_common import LinesConfig, load_data
            target = "attributes" if record.heads else "class"
            dataset = load_data(LinesConfig(**_known(LinesConfig, config)), target).test
        elif name in DATASETS:
            dataset = DATASETS[name](config.get("data_dir"), train=False,
                                     transform=trained.preprocessing.transform())
        else:
            raise UsageError(f"--index: the run's data set {name!r} is not one visualize can "
                             f"read; pass image files")
    except DataError as e:
        raise UsageError(str(e)) from None
    return dataset, _labeller(trained)


def _known(cls, config: dict) -> dict:
    names = set(cls.__dataclass_fields__)
    return {k: v for k, v in config.items() if k in names}


def _labeller(trained: Trained):
    """y -> 'label <name>' for a class index, or the attribute values of a multi-head target."""
    names, heads = trained.class_names, trained.heads

    def label(y: np.ndarray) -> str:
        if heads:
            return " ".join(values[int(v)] for values, v in zip(heads.values(), y.ravel()))
        return f"label {names[int(y)] if names else int(y)}"
    return label


def load_inputs(args, trained: Trained) -> Inputs:
    if args.images:
        if args.index:
            raise UsageError("give image files or --index, not both")
        parts = [image_file(path, trained) for path in args.images]
        return Inputs(np.concatenate([p.x for p in parts]),
                      np.concatenate([p.pictures for p in parts]),
                      [c for p in parts for c in p.captions])
    return test_images(trained, args.index or [0], args.data_dir)


# ---- what the network says --------------------------------------------------------------------

@dataclass
class Explained:
    """One head's heat maps and the words for them, for N images."""

    head: str | None  # None: the network's only output
    maps: np.ndarray  # (N, h, w)
    predicted: list[str]  # the predicted class (value) of each image
    confidence: np.ndarray  # (N,) its probability
    captions: list[str]  # the prediction, e.g. "pred 7 (0.98)" or "length 15 (0.93)"
    titles: list[str]  # what the map shows, e.g. "gradcam of 7"


def heads_to_explain(trained: Trained, output: str | None) -> list[str | None]:
    """[None] for a one-output network; the chosen head, or all of them, for a multi-head one."""
    heads = trained.heads
    if not heads:
        if output not in (None, ALL):
            raise UsageError(f"--output {output}: {trained.label} has a single output; --output "
                             f"picks a head of a multi-head network")
        return [None]
    if output in (None, ALL):
        return list(heads)
    if output not in heads:
        raise UsageError(f"--output {output}: {trained.label} has the heads "
                         f"{', '.join(heads)} (or all)")
    return [output]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over a head's units; a one-unit head's sigmoid as (1 - p, p)."""
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - p, p], 1)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def explain(trained: Trained, inputs: Inputs, method: str, layer: str | None,
            target: int | None, head: str | None = None) -> Explained:
    """The maps of `method` for one head (None: the only output) and their captions."""
    logits = viz.predict(trained.model, inputs.x, output=head)
    probs = probabilities(logits)
    names = trained.heads[head] if head is not None else trained.class_names
    if logits.shape[1] == 1:  # the map is of the single logit: evidence for the second value
        targets = np.zeros(len(logits), np.int64)
    else:
        targets = probs.argmax(1) if target is None else np.full(len(probs), target)
    fn = viz.METHODS[method]
    kwargs = {"output": head} if head is not None else {}
    if method in ("gradcam", "gradcam++"):
        maps = fn(trained.model, inputs.x, targets, layer=layer, **kwargs)
    elif layer is not None:
        raise UsageError(f"--layer does not apply to --method {method}: "
                         + ("CAM uses the feature maps that feed the classifier"
                            if method == "cam" else "it explains the input pixels"))
    else:
        maps = fn(trained.model, inputs.x, targets, **kwargs)
    name = (lambda c: str(names[c]) if names else str(c))
    prefix = f"{head} " if head is not None else "pred "
    predicted = [name(int(p.argmax())) for p in probs]
    captions = [f"{prefix}{c} ({p.max():.2f})" for c, p in zip(predicted, probs)]
    if logits.shape[1] == 1:
        titles = [f"{method}: evidence for {name(1)}"] * len(logits)
    else:
        titles = [f"{method} of {name(int(t))}" for t in targets]
        captions = [c if t == p.argmax() else f"{c}, map of {name(int(t))}"
                    for c, t, p in zip(captions, targets, probs)]
    return Explained(head, maps, predicted, probs.max(1), captions, titles)


def print_predictions(inputs: Inputs, explained: list[Explained]) -> None:
    """One line per image: its caption, then each head's prediction and probability."""
    for n, caption in enumerate(inputs.captions):
        said = ", ".join(f"{e.head or 'pred'} {e.predicted[n]} ({e.confidence[n]:.4f})"
                         for e in explained)
        print(f"{caption}: {said}")


def map_figure(inputs: Inputs, explained: list[Explained]) -> np.ndarray:
    """One row per image: the input, then for a one-output network the heat map alone and over
    the input; for a multi-head network one map over the input per head."""
    tiles, captions = [], []
    for n in range(len(inputs.x)):
        tiles.append(viz.to_rgb(inputs.pictures[n]))
        captions.append(inputs.captions[n])
        for e in explained:
            if e.head is None:
                heat = viz.jet(viz.heat_images(e.maps[n:n + 1], inputs.x.shape[2:]))[0]
                tiles.append(heat)
                captions.append(e.titles[n])
            tiles.append(viz.overlay_maps(inputs.pictures[n:n + 1], e.maps[n:n + 1])[0])
            captions.append(e.captions[n] if e.head is None else
                            f"{e.captions[n]}; {e.titles[n]}")
    per_row = len(tiles) // len(inputs.x)
    return viz.make_grid(tiles, nrow=per_row, scale=SCALE, captions=captions, pad_value=255)


def compare_figure(loaded: list[Trained], inputs: Inputs, method: str, layer: str | None,
                   target: int | None) -> np.ndarray:
    """One row per image: the input, then each model's map over it (tiles drawn larger, so
    that the captions naming the models do not dwarf them). Each model gets the pictures
    scaled as its own run scaled them."""
    shapes = {m.input_shape for m in loaded}
    if len(shapes) > 1:
        raise UsageError(f"--compare: the runs take different inputs ({', '.join(map(str, shapes))})"
                         f"; compare runs of the same data set")
    columns = [explain(m, Inputs(m.preprocessing.apply(inputs.pictures), inputs.pictures,
                                 inputs.captions), method, layer, target) for m in loaded]
    tiles, captions = [], []
    for n in range(len(inputs.x)):
        tiles.append(viz.to_rgb(inputs.pictures[n]))
        captions.append(inputs.captions[n])
        for m, e in zip(loaded, columns):
            tiles.append(viz.overlay_maps(inputs.pictures[n:n + 1], e.maps[n:n + 1])[0])
            captions.append(f"{m.label}: {e.captions[n]}")
    return viz.make_grid(tiles, nrow=1 + len(loaded), scale=SCALE + 1, captions=captions,
                         pad_value=255)


def layer_figures(trained: Trained, args, inputs: Inputs | None) -> dict[str, np.ndarray]:
    """Figures of --method activations (one per image), filters or weights, by file stem."""
    model, layer = trained.model, args.layer
    if args.method == "weights":
        layer = layer or (viz.conv_layer_names(model) or [None])[0]
        return {f"weights_{layer}": viz.weight_grid(viz.conv_weights(model, layer))}
    layer = layer or viz.default_layer(model)
    if args.method == "filters":
        bounds = trained.preprocessing.apply(np.array([0.0, 1.0], np.float32).reshape(2, 1, 1, 1)
                                             * np.ones((1, trained.input_shape[0], 1, 1)))
        images, history = viz.visualize_filters(
            model, layer, input_shape=trained.input_shape, steps=args.steps, start=args.start,
            value_range=(float(bounds[0].min()), float(bounds[1].max())))
        gain = history[:, -1].mean() / max(abs(history[:, 0].mean()), 1e-8)
        print(f"filters of {layer} from a {args.start} start: mean activation "
              f"{history[:, 0].mean():.3g} -> {history[:, -1].mean():.3g} ({gain:.0f}x) after "
              f"{args.steps} steps")
        return {f"filters_{layer}_{args.start}": viz.filter_grid(images)}
    acts = viz.layer_activations(model, inputs.x, layer)
    return {f"activations_{layer}_{n}": viz.activation_grid(a) for n, a in enumerate(acts)}


def print_layers(trained: Trained) -> None:
    modules = dict(trained.model.named_modules())
    convs = viz.conv_layer_names(trained.model)
    print(f"{trained.label}, input {trained.input_shape}; default layer (the last Conv2d): "
          f"{convs[-1] if convs else 'none'}")
    for name, shape in viz.list_layers(trained.model, trained.input_shape):
        print(f"  {name:24s} {type(modules[name]).__name__:18s} {shape}")


def save_figures(figures: dict[str, np.ndarray], out: str, logdir: str | None) -> None:
    for stem, image in figures.items():
        path = os.path.join(out, re.sub(r"[^\w.+-]", "_", stem) + ".png")
        viz.save_png(path, image)
        print(f"wrote {path}")
    if logdir is not None:
        from tinygrad_edu.logging import Logger
        with Logger(logdir=logdir) as log:
            for stem, image in figures.items():
                log.image(f"visualize/{stem}", image, step=0)
        print(f"wrote {len(figures)} TensorBoard image(s) to {logdir}")


def run(args) -> dict[str, np.ndarray]:
    tg.manual_seed(args.seed)
    if args.compare:
        specs = ([args.checkpoint] if args.checkpoint else []) + args.compare
        loaded = [load_model(c, args.model) for c in specs]
        if args.method not in MAP_METHODS:
            raise UsageError(f"--compare shows heat maps; use --method {'|'.join(MAP_METHODS)}")
        inputs = load_inputs(args, loaded[0])
        figures = {f"compare_{args.method}": compare_figure(loaded, inputs, args.method,
                                                            args.layer, args.target)}
    else:
        trained = load_model(args.checkpoint, args.model)
        if args.list_layers:
            print_layers(trained)
            return {}
        inputs = None if args.method in ("filters", "weights") else load_inputs(args, trained)
        stem = trained.label.replace(" ", "_")
        if args.method in MAP_METHODS:
            explained = [explain(trained, inputs, args.method, args.layer, args.target, head)
                         for head in heads_to_explain(trained, args.output)]
            print_predictions(inputs, explained)
            figures = {f"{stem}_{args.method}": map_figure(inputs, explained)}
        else:
            figures = {f"{stem}_{k}": v for k, v in layer_figures(trained, args, inputs).items()}
    save_figures(figures, args.out, args.logdir)
    return figures


def _run_with_clear_errors(args) -> dict[str, np.ndarray]:
    try:
        return run(args)
    except viz.VizError as e:
        raise UsageError(str(e)) from None


def main(argv=None) -> dict[str, np.ndarray]:
    return exit_on_usage_error(lambda: _run_with_clear_errors(parse_args(argv)), argv)


if __name__ == "__main__":
    main()
