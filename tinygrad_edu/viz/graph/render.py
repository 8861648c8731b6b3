"""Drawing a Graph with Graphviz: node labels, module clusters, folded boxes, SVG output."""
from __future__ import annotations

import os
import re

import graphviz

from .modules import box_of, depth, parent
from .nodes import OpNode, TensorNode
from .stats import Stats, shape_text

INSTALL = ("the Graphviz program 'dot' was not found; install it with `apt-get install graphviz` "
           "(Debian, Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`")
COLOURS = {"parameter": "#dbeafe", "input": "#e5e7eb", "constant": "#f3f4f6",
           "output": "#dcfce7", "cut": "#ffffff", "op": "#fef3c7", "box": "#ede9fe"}
TRACE_CHARS = 48


def op_label(n: OpNode, grad: Stats | None, before: str | None) -> str:
    """'h = Mul', the source line (where it differs from `before`, the line of the op's first
    input: the ops of one model's forward all share a line), the output's shape and, after
    backward, its gradient."""
    lines = [f"{n.name} = {n.op}" if n.name else n.op]
    if n.trace and n.trace != before and not str(n.trace).startswith('File "<'):
        lines.append(short_trace(n.trace))  # (no '<frozen runpy>' and such)
    lines.append(shape_text(n.out_shape))
    if grad is not None:
        lines.append(f"grad norm {grad.norm:.3g}")
    return "\n".join(lines)


def tensor_label(n: TensorNode) -> str:
    """Name, shape and dtype, value statistics with a histogram, then the gradient's."""
    if n.kind == "cut":
        return f"... {shape_text(n.shape)}\n(beyond depth)"
    v = n.value
    lines = [n.name, f"{shape_text(v.shape)} {v.dtype}", v.summary(), v.sparkline]
    g = n.grad
    if g is not None:
        lines += [f"grad {g.summary()}", f"grad norm {g.norm:.3g} {g.sparkline}"]
    return "\n".join(lines)


def box_label(path: str, classes: dict, inner: list) -> str:
    """'layer1.0 (BasicBlock)' and how many ops and parameters are folded in it."""
    n_ops = sum(isinstance(n, OpNode) for n in inner)
    n_params = sum(isinstance(n, TensorNode) and n.kind == "parameter" for n in inner)
    cls = f" ({classes[path]})" if path in classes else ""
    return f"{path}{cls}\n{n_ops} ops, {n_params} parameters\n(folded)"


def to_dot(graph, folded: set, only: str | None = None) -> graphviz.Digraph:
    """The Digraph of `graph` with `folded` modules as boxes; `only` draws the inside of one
    module alone (the page's expanded view of a folded box)."""
    dot = graphviz.Digraph("graph", graph_attr={"rankdir": "TB", "fontname": "DejaVu Sans",
                                                "fontsize": "11", "nodesep": "0.25"},
                           node_attr={"fontname": "DejaVu Sans", "fontsize": "10",
                                      "style": "filled"},
                           edge_attr={"fontname": "DejaVu Sans", "fontsize": "9"})
    nodes = [n for n in graph.nodes.values() if only is None or _inside(n.module, only)]
    place = {n.key: box_of(n.module, folded) if only is None else None for n in nodes}
    holders = {n.module for n in nodes if isinstance(n, TensorNode) and n.kind == "parameter"}
    clusters = {}  # module path -> list of (name, attrs) to draw in it
    for n in nodes:
        if place[n.key] is None:
            where = _cluster(n.module, graph.classes, holders, only)
            clusters.setdefault(where, []).append(_node_attrs(graph, n, where != n.module))
    for path in sorted({p for p in place.values() if p is not None}):
        inner = [n for n in nodes if place[n.key] == path]
        clusters.setdefault(parent(path), []).append(
            ("m_" + path, {"label": box_label(path, graph.classes, inner), "shape": "box3d",
                           "fillcolor": COLOURS["box"], "id": "m_" + path}))
    _draw_clusters(dot, clusters, graph.classes if graph.modules else None, only or "")
    _draw_edges(dot, graph, nodes, place)
    return dot


def svg(dot: graphviz.Digraph) -> str:
    """The SVG text of a laid-out Digraph; one sentence on installing Graphviz if it is missing."""
    try:
        return dot.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise RuntimeError(INSTALL) from None


def _node_attrs(graph, n, named: bool) -> tuple:
    """dot attributes of a node; `named` adds its module's name to an op drawn outside the
    module's cluster ('ReLU (relu1)')."""
    if isinstance(n, OpNode):
        first = graph.nodes[n.inputs[0]] if n.inputs else None
        before = first.trace if isinstance(first, OpNode) else None
        label = op_label(n, graph.gradient(n.key), before)
        if named and n.module:
            title, _, rest = label.partition("\n")
            label = f"{title} ({n.module.rpartition('.')[2]})\n{rest}".rstrip("\n")
        return n.key, {"label": label, "shape": "box",
                       "style": "rounded,filled", "fillcolor": COLOURS["op"], "id": n.key}
    attrs = {"label": tensor_label(n), "shape": "box", "fillcolor": COLOURS[n.kind], "id": n.key}
    if n.kind == "cut":
        attrs["style"] = "dashed"
    return n.key, attrs


def _cluster(module: str, classes: dict, holders: set, only: str | None) -> str:
    """The cluster a node is drawn in: its module, except for a layer without sub-modules
    that holds no parameter here (a ReLU: a cluster around one op says nothing) and, in the
    inside view of a folded module, every layer without sub-modules (to stay compact)."""
    if module == only or not module or any(k.startswith(module + ".") for k in classes):
        return module
    return module if only is None and module in holders else parent(module)


def _draw_clusters(dot, clusters: dict, classes: dict | None, top: str) -> None:
    """Nested subgraphs, one per module below `top` (none when `classes` is None:
    modules=False)."""
    if classes is None:
        for items in clusters.values():
            for name, attrs in items:
                dot.node(name, **attrs)
        return
    paths = set(clusters)
    for p in list(paths):  # every ancestor gets a cluster, so that nesting is complete
        while p != top and p:
            p = parent(p)
            paths.add(p)
    children = {}
    for p in paths - {top}:
        children.setdefault(parent(p), []).append(p)

    def fill(g, path):
        for name, attrs in clusters.get(path, ()):
            g.node(name, **attrs)
        for child in sorted(children.get(path, ())):
            with g.subgraph(name="cluster_" + child) as sub:
                sub.attr(label=_title(child, classes), style="rounded,filled",
                         fillcolor="#f8fafc" if depth(child) % 2 else "#eef2f7", color="#94a3b8")
                fill(sub, child)
    fill(dot, top)


def _draw_edges(dot, graph, nodes: list, place: dict) -> None:
    """One edge per (input, consumer) pair of drawn nodes, labelled with the input's shape and,
    after backward, the norm of the gradient sent back along it; edges inside a folded box are
    hidden, edges into or out of it drawn once (with the shape only)."""
    sent = graph.sent_gradients()
    drawn = set()
    for n in nodes:
        for i, src in enumerate(n.inputs):
            if src not in place:
                continue
            a = "m_" + place[src] if place[src] else src
            b = "m_" + place[n.key] if place[n.key] else n.key
            if a == b or (a, b) in drawn:
                continue
            drawn.add((a, b))
            label = shape_text(graph.shape(src))
            grad = sent.get((n.key, i))
            if grad is not None and a == src and b == n.key:
                label += f"\ngrad {grad.norm:.3g}"
            dot.edge(a, b, label=label, id=f"e_{a}_{b}")


def _inside(module: str, path: str) -> bool:
    return module == path or module.startswith(path + ".")


def _title(path: str, classes: dict) -> str:
    cls = classes.get(path)
    return f"{path.rpartition('.')[2] or 'model'} ({cls})" if cls else path.rpartition(".")[2]


def short_trace(trace: str) -> str:
    """'mlp.py:37 return self.fc(x)' from anomaly mode's 'File ".../mlp.py", line 37, in ...'."""
    m = re.match(r'File "(.*)", line (\d+), in .*?\n\s*(.*)', str(trace), re.DOTALL)
    text = f"{os.path.basename(m[1])}:{m[2]} {m[3].strip()}" if m else " ".join(str(trace).split())
    return text if len(text) <= TRACE_CHARS else text[:TRACE_CHARS - 3] + "..."
