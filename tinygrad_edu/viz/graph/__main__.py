"""Draw one training step of a network from models/: forward on a random batch, the loss,
backward, with every op's source line (anomaly mode) and gradients.

    python -m tinygrad_edu.viz.graph mlp3 --input-shape 1 1 28 28 --out g.html
    python -m tinygrad_edu.viz.graph resnet18 --input-shape 2 3 64 64 --out resnet.svg

The only module of tinygrad_edu that knows models/ (imported when the command runs).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ... import autograd
from ...nn import functional as F
from ...random import manual_seed
from ...tensor import Tensor, randn
from .explorer import FORMATS, Graph, graph
from .trace import trace_modules


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tinygrad_edu.viz.graph", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL_NAME", help="a name from models.MODELS, e.g. mlp3")
    p.add_argument("--input-shape", type=int, nargs="+", default=None, metavar="N",
                   help="the batch's shape, e.g. 1 1 28 28 (default: two images of the size "
                        "the model was built for; batch norm needs more than one value)")
    p.add_argument("--out", default="graph.html", help="the file to write: .html, .svg or .dot")
    p.add_argument("--depth", type=int, default=None, help="keep only ops this close to the loss")
    p.add_argument("--expand", action="store_true", help="draw every module open (no folding)")
    p.add_argument("--seed", type=int, default=0, help="for the weights, batch and targets")
    return p.parse_args(argv)


def training_step(model, x: Tensor, rng: np.random.Generator, depth: int | None = None,
                  fold=None) -> Graph:
    """Forward `x` and a loss on targets drawn from `rng`, build the graph, then backward."""
    # anomaly mode: every op keeps the source line of its forward call; the trace: its module
    with autograd.detect_anomaly(), trace_modules(model) as modules:
        out = model(x)
        loss = _loss(out, x.shape[0], rng)
    g = graph(loss, params=model, modules=modules, depth=depth, fold=fold)  # x, out, loss too
    loss.backward()
    return g


def _loss(out, n: int, rng: np.random.Generator) -> Tensor:
    """Cross-entropy on random classes; the multi-head network's own loss on random attributes."""
    if isinstance(out, dict):
        from models.lines import ATTRIBUTES, multihead_loss
        y = np.stack([rng.integers(0, len(v), n) for v in ATTRIBUTES.values()], axis=1)
        return multihead_loss(out, y)
    return F.cross_entropy(out, Tensor(rng.integers(0, out.shape[-1], n)))


def _input_shape(model, given) -> tuple:
    if given:
        return tuple(given)
    config = getattr(model, "config", {})
    size = config.get("image_size", 28)
    return (2, config.get("in_channels", 1), size, size)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.out.lower().endswith(FORMATS):
        return _fail(f"--out {args.out!r}: use a name ending in {', '.join(FORMATS)}")
    import models
    manual_seed(args.seed)  # the weights, the batch and the targets
    try:
        model = models.get_model(args.model)
    except ValueError as e:
        return _fail(str(e).replace("get_model: ", ""))
    shape = _input_shape(model, args.input_shape)
    x = randn(*shape, requires_grad=True)
    try:
        g = training_step(model, x, np.random.default_rng(args.seed), args.depth,
                          fold=set() if args.expand else None)
    except (RuntimeError, ValueError) as e:
        return _fail(f"{args.model} on an input of shape {shape}: {e}")
    try:
        g.save(args.out)
    except RuntimeError as e:
        return _fail(str(e))
    print(f"wrote {args.out}: {len(g.nodes)} nodes, {len(g.steps)} backward steps")
    return 0


def _fail(message: str) -> int:
    print(f"python -m tinygrad_edu.viz.graph: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
