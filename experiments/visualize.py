"""Show what an MNIST network looks at: CAM, Grad-CAM(++), saliency, SmoothGrad, activations,
filters and first-layer weights, as PNG files (--out) and TensorBoard images (--logdir).

    python -m experiments.visualize --checkpoint runs/RUN --index 0 1 2 --method gradcam
    python -m experiments.visualize digit.png --checkpoint runs/RUN --method cam
    python -m experiments.visualize --checkpoint runs/RUN --list-layers
    python -m experiments.visualize --index 0 --method cam --compare runs/A runs/B runs/C

A checkpoint is a run directory (its checkpoint.npz), or a file written by tg.save holding a
state dict or {"model": state_dict, "model_name": ..., "model_config": model.config} (the
config only for non-default sizes). Runs trained with --framework torch are
shown through the PyTorch twin. Without --checkpoint the model (--model) has random weights.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

import models
import tinygrad_edu as tg
from tinygrad_edu import viz
from tinygrad_edu.data import MNIST, DataError
from tinygrad_edu.serialization import CheckpointError

from .common import UsageError, exit_on_usage_error

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
MAP_METHODS = ("cam", "gradcam", "gradcam++", "saliency", "smoothgrad")
METHODS = (*MAP_METHODS, "activations", "filters", "weights")
SCALE = 4  # 28x28 digits are drawn 112x112


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image", nargs="?", help="a PNG/JPEG image (converted to the model's input)")
    p.add_argument("--index", type=int, nargs="+", help="MNIST test-set indices (default: 0)")
    p.add_argument("--method", choices=METHODS, default="gradcam")
    p.add_argument("--layer", help="layer name (see --list-layers); default: the last Conv2d")
    p.add_argument("--class", dest="target", type=int, help="class to explain (default: "
                   "the predicted class of each image)")
    p.add_argument("--model", help=f"model name: {', '.join(models.MODELS)} (default: the "
                   f"checkpoint's, else cnn3)")
    p.add_argument("--checkpoint", help="a run directory or a tg.save'd checkpoint")
    p.add_argument("--compare", nargs="+", metavar="CKPT",
                   help="several checkpoints: one figure with their maps side by side")
    p.add_argument("--list-layers", action="store_true", help="print layer names and shapes")
    p.add_argument("--out", default="runs/visualize", help="directory for the PNG files")
    p.add_argument("--logdir", help="also write the figures to TensorBoard in this directory")
    p.add_argument("--data-dir", help="folder holding MNIST (default: the usual data root)")
    p.add_argument("--steps", type=int, default=100, help="gradient-ascent steps (filters)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ---- models and checkpoints ------------------------------------------------------------------

@dataclass
class Loaded:
    """A model ready to explain, with a label for captions and file names."""

    model: object
    name: str
    framework: str

    @property
    def label(self) -> str:
        return f"{self.name} {'torch' if self.framework == 'torch' else 'scratch'}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        config = getattr(self.model, "config", {})
        size = config.get("image_size", 28)
        return config.get("in_channels", 1), size, size


def _checkpoint_file(path: str) -> str:
    if os.path.isdir(path):
        for name in ("checkpoint.npz", "last.npz"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise UsageError(f"run directory {path} holds no checkpoint.npz or last.npz; was the "
                         f"run finished?")
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path} does not exist")
    return path


def _run_framework(checkpoint: str) -> str:
    """The framework recorded in the run's metrics.json beside the checkpoint, if any."""
    try:
        with open(os.path.join(os.path.dirname(checkpoint), "metrics.json")) as f:
            summary = json.load(f).get("summary", {})
    except (OSError, ValueError):
        return "tinygrad_edu"
    return summary.get("framework") or summary.get("config", {}).get("framework", "tinygrad_edu")


@dataclass
class Checkpoint:
    state: dict  # name -> numpy array
    model_name: str | None  # the registry name, if the checkpoint records it
    model_config: dict  # keyword arguments of the model (empty: its defaults)
    framework: str  # "tinygrad_edu", or "torch" for a run trained with --framework torch


def _load_torch_file(file: str):
    """A torch.save'd state dict (.pt/.pth), read without running code (weights_only)."""
    try:
        import torch
    except ImportError:
        raise UsageError(f"{file} is a PyTorch file; reading it needs torch "
                         f"(pip install torch==2.13.0)") from None
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot read checkpoint {file}: {reason}") from None
    return {k: v.detach().numpy() if hasattr(v, "detach") else v for k, v in obj.items()} \
        if isinstance(obj, dict) else obj


def read_checkpoint(path: str) -> Checkpoint:
    """The weights and what is recorded about the model, from a checkpoint file or run dir.

    .pt/.pth files (torch.save of a state dict) are shown through the PyTorch twin."""
    file = _checkpoint_file(path)
    torch_file = file.endswith((".pt", ".pth"))
    try:
        obj = _load_torch_file(file) if torch_file else tg.load(file)
    except (CheckpointError, OSError, ValueError) as e:
        raise UsageError(f"cannot read checkpoint {file}: {e}") from None
    if not isinstance(obj, dict):
        raise UsageError(f"checkpoint {file} holds a {type(obj).__name__}, not a state dict")
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise UsageError(f"checkpoint {file} holds no state dict (a dict of arrays, or one "
                         f"under the key 'model')")
    name = obj.get("model_name") if isinstance(obj.get("model_name"), str) else None
    config = obj.get("model_config") if isinstance(obj.get("model_config"), dict) else {}
    state = {k: np.asarray(getattr(v, "data", v)) for k, v in state.items()}
    return Checkpoint(state, name, config, "torch" if torch_file else _run_framework(file))


def build_model(name: str, framework: str, state: dict | None, config: dict | None = None
                ) -> Loaded:
    """The registry's model (or its PyTorch twin) `name` built with `config` (the model's own
    `config` dict, for non-default sizes), with `state` loaded if given."""
    if name not in models.MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(models.MODELS)}")
    if framework == "torch":
        try:
            import torch
        except ImportError:
            raise UsageError("the checkpoint was trained with PyTorch; showing it needs torch "
                             "(pip install torch==2.13.0)") from None
        model = models.get_torch_model(name, **(config or {}))
        state = None if state is None else {k: torch.from_numpy(v) for k, v in state.items()}
    else:
        model = models.get_model(name, **(config or {}))
    if state is not None:
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError) as e:
            reason = " ".join(str(e).split())  # torch's message spans several lines
            raise UsageError(f"the checkpoint does not fit model {name!r} ({reason}); pass the "
                             f"right --model") from None
    return Loaded(model, name, framework)


def load_model(checkpoint: str | None, model_name: str | None) -> Loaded:
    if checkpoint is None:
        print(f"note: no --checkpoint, so {model_name or 'cnn3'} has random weights")
        return build_model(model_name or "cnn3", "tinygrad_edu", None)
    ckpt = read_checkpoint(checkpoint)
    name = model_name or ckpt.model_name
    if name is None:
        raise UsageError(f"checkpoint {checkpoint} does not record its model; pass --model "
                         f"({', '.join(models.MODELS)})")
    config = ckpt.model_config if name == ckpt.model_name else {}
    return build_model(name, ckpt.framework, ckpt.state, config)


# ---- inputs ----------------------------------------------------------------------------------

@dataclass
class Inputs:
    x: np.ndarray  # (N, C, H, W) normalised, what the model takes
    pictures: np.ndarray  # (N, C, H, W) in [0, 1], what people see
    captions: list[str]


def _normalise(pictures: np.ndarray) -> np.ndarray:
    return ((pictures - MNIST_MEAN) / MNIST_STD).astype(np.float32)


def image_file(path: str, shape: tuple[int, int, int]) -> Inputs:
    """A PNG/JPEG as the model's input: grayscale or RGB, padded square, resized, and inverted
    when its background is light (MNIST digits are white on black)."""
    channels, height, width = shape
    try:
        img = Image.open(path)
        img = img.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise UsageError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"cannot read image {path} as PNG or JPEG ({e})") from None
    background = img.getpixel((0, 0))
    img = ImageOps.pad(img, (width, height), Image.Resampling.BILINEAR, color=background)
    a = np.asarray(img, np.float32) / 255  # (H, W) or (H, W, 3)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # -> (C, H, W)
    if a.mean() > 0.5:
        a = 1 - a
    return Inputs(_normalise(a[None]), a[None], [os.path.basename(path)])


def mnist_digits(indices: list[int], data_dir: str | None) -> Inputs:
    try:
        test = MNIST(data_dir, train=False)
    except DataError as e:
        raise UsageError(str(e)) from None
    bad = [i for i in indices if not 0 <= i < len(test)]
    if bad:
        raise UsageError(f"--index {bad[0]} is outside the MNIST test set (0..{len(test) - 1})")
    pictures = test.data[indices][:, None].astype(np.float32) / 255  # (N, 1, 28, 28)
    captions = [f"#{i} label {test.targets[i]}" for i in indices]
    return Inputs(_normalise(pictures), pictures, captions)


def load_inputs(args, shape: tuple[int, int, int]) -> Inputs:
    if args.image is not None:
        if args.index:
            raise UsageError("give an image file or --index, not both")
        return image_file(args.image, shape)
    if shape[0] != 1 or shape[1:] != (28, 28):
        raise UsageError(f"--index reads MNIST 28x28 digits, but the model takes {shape}; "
                         f"pass an image file")
    return mnist_digits(args.index or [0], args.data_dir)


# ---- figures ---------------------------------------------------------------------------------

def explain(loaded: Loaded, inputs: Inputs, method: str, layer: str | None,
            target: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(maps (N, h, w), explained classes, softmax probabilities (N, classes))."""
    logits = viz.predict(loaded.model, inputs.x)
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    targets = probs.argmax(1) if target is None else np.full(len(probs), target)
    fn = viz.METHODS[method]
    if method in ("gradcam", "gradcam++"):
        maps = fn(loaded.model, inputs.x, targets, layer=layer)
    elif layer is not None:
        raise UsageError(f"--layer does not apply to --method {method}: "
                         + ("CAM uses the feature maps that feed the classifier"
                            if method == "cam" else "it explains the input pixels"))
    else:
        maps = fn(loaded.model, inputs.x, targets)
    return maps, targets, probs


def _caption(probs: np.ndarray, target: int, prefix: str = "") -> str:
    """'pred 7 (0.98)', plus the explained class when it is not the predicted one."""
    pred = int(probs.argmax())
    text = f"{prefix}pred {pred} ({probs[pred]:.2f})"
    return text if target == pred else f"{text}, map of {target}"


def map_figure(loaded: Loaded, inputs: Inputs, method: str, layer: str | None,
               target: int | None) -> np.ndarray:
    """One row per image: the input, the heat map alone, the heat map over the input."""
    maps, targets, probs = explain(loaded, inputs, method, layer, target)
    size = inputs.x.shape[2:]
    heat = viz.jet(viz.heat_images(maps, size))  # (N, H, W, 3)
    overlays = viz.overlay_maps(inputs.pictures, maps)
    tiles, captions = [], []
    for n in range(len(maps)):
        tiles += [viz.to_rgb(inputs.pictures[n]), heat[n], overlays[n]]
        captions += [inputs.captions[n], f"{method} of {targets[n]}",
                     _caption(probs[n], targets[n])]
    return viz.make_grid(tiles, nrow=3, scale=SCALE, captions=captions, pad_value=255)


def compare_figure(loaded: list[Loaded], inputs: Inputs, method: str, layer: str | None,
                   target: int | None) -> np.ndarray:
    """One row per image: the input, then each model's map over it (tiles drawn larger, so
    that the captions naming the models do not dwarf them)."""
    columns = [explain(m, inputs, method, layer, target) for m in loaded]
    tiles, captions = [], []
    for n in range(len(inputs.x)):
        tiles.append(viz.to_rgb(inputs.pictures[n]))
        captions.append(inputs.captions[n])
        for m, (maps, targets, probs) in zip(loaded, columns):
            tiles.append(viz.overlay_maps(inputs.pictures[n:n + 1], maps[n:n + 1])[0])
            captions.append(_caption(probs[n], targets[n], f"{m.label}: "))
    return viz.make_grid(tiles, nrow=1 + len(loaded), scale=SCALE + 1, captions=captions,
                         pad_value=255)


def layer_figures(loaded: Loaded, args, inputs: Inputs | None) -> dict[str, np.ndarray]:
    """Figures of --method activations (one per image), filters or weights, by file stem."""
    model, layer = loaded.model, args.layer
    if args.method == "weights":
        layer = layer or (viz.conv_layer_names(model) or [None])[0]
        return {f"weights_{layer}": viz.weight_grid(viz.conv_weights(model, layer))}
    layer = layer or viz.default_layer(model)
    if args.method == "filters":
        lo, hi = _normalise(np.array([0.0, 1.0]))
        images, history = viz.visualize_filters(model, layer, input_shape=loaded.input_shape,
                                                steps=args.steps, value_range=(lo, hi))
        gain = history[:, -1].mean() / max(abs(history[:, 0].mean()), 1e-8)
        print(f"filters of {layer}: mean activation {history[:, 0].mean():.3g} -> "
              f"{history[:, -1].mean():.3g} ({gain:.0f}x) after {args.steps} steps")
        return {f"filters_{layer}": viz.filter_grid(images)}
    acts = viz.layer_activations(model, inputs.x, layer)
    return {f"activations_{layer}_{n}": viz.activation_grid(a) for n, a in enumerate(acts)}


def print_layers(loaded: Loaded) -> None:
    modules = dict(loaded.model.named_modules())
    convs = viz.conv_layer_names(loaded.model)
    print(f"{loaded.label}, input {loaded.input_shape}; default layer (the last Conv2d): "
          f"{convs[-1] if convs else 'none'}")
    for name, shape in viz.list_layers(loaded.model, loaded.input_shape):
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
        inputs = load_inputs(args, loaded[0].input_shape)
        figures = {f"compare_{args.method}": compare_figure(loaded, inputs, args.method,
                                                            args.layer, args.target)}
    else:
        loaded = load_model(args.checkpoint, args.model)
        if args.list_layers:
            print_layers(loaded)
            return {}
        inputs = None if args.method in ("filters", "weights") else \
            load_inputs(args, loaded.input_shape)
        stem = f"{loaded.label.replace(' ', '_')}_{args.method}"
        if args.method in MAP_METHODS:
            figures = {stem: map_figure(loaded, inputs, args.method, args.layer, args.target)}
        else:
            figures = {f"{loaded.label.replace(' ', '_')}_{k}": v
                       for k, v in layer_figures(loaded, args, inputs).items()}
    save_figures(figures, args.out, args.logdir)
    return figures


def _run_with_clear_errors(args) -> dict[str, np.ndarray]:
    try:
        return run(args)
    except viz.VizError as e:
        raise UsageError(str(e)) from None


def main(argv=None) -> dict[str, np.ndarray]:
    args = parse_args(argv)
    return exit_on_usage_error(lambda: _run_with_clear_errors(args))


if __name__ == "__main__":
    main()
