"""The autograd graph explorer (tinygrad_edu.viz.graph): structure, modules, recorded backward
steps against the engine's gradients, the saved files, the CLI, and the HTML page driven in
headless Chromium."""
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import models
import tinygrad_edu as tg
from models.lines import ATTRIBUTES, multihead_loss
from tinygrad_edu.nn import functional as F
from tinygrad_edu.viz.graph import Stats, graph, trace_modules
from tinygrad_edu.viz.graph.__main__ import main
from tinygrad_edu.viz.graph.nodes import OpNode
from tinygrad_edu.viz.graph.rules import rule

MODEL_INPUTS = {"mlp3": (2, 1, 28, 28), "cnn3": (2, 1, 28, 28),
                "lines_multihead": (2, 3, 28, 28), "resnet18": (2, 3, 64, 64)}


def small_graph(seed=0):
    """z = relu(x * y + x), backward with a random upstream gradient: (graph, x, y, seed)."""
    tg.manual_seed(seed)
    x = tg.randn(4, 3, requires_grad=True)
    y = tg.randn(4, 3, requires_grad=True)
    h = x * y
    z = (h + x).relu()
    g = graph(z)
    upstream = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
    z.backward(tg.tensor(upstream))
    return g, x, y, upstream


def ops(g):
    return [n for n in g.nodes.values() if isinstance(n, OpNode)]


def model_step(name, retain=False):
    """One forward and backward of a models/ network on a random batch: (graph, model, loss)."""
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    model = models.get_model(name)
    x = tg.randn(*MODEL_INPUTS[name], requires_grad=True)  # as the CLI: its gradient is shown
    out = model(x)
    if isinstance(out, dict):
        y = np.stack([rng.integers(0, len(v), 2) for v in ATTRIBUTES.values()], axis=1)
        loss = multihead_loss(out, y)
    else:
        loss = F.cross_entropy(out, tg.tensor(rng.integers(0, out.shape[1], 2)))
    g = graph(loss, params=model)
    loss.backward()
    return g, model, loss


# ---------------------------------------------------------------- structure

def test_ops_and_leaves_are_named_from_the_callers_variables():
    g, _, y, _ = small_graph()
    assert [n.op for n in ops(g)] == ["Mul", "Add", "ReLU"]
    names = {n.key: n.name for n in g.nodes.values()}
    mul = ops(g)[0]
    assert [names[k] for k in mul.inputs] == ["x", "y"] and mul.name == "h"
    assert ops(g)[1].inputs == [mul.key, mul.inputs[0]]  # x feeds Add too: one node, two edges
    assert ops(g)[0].saved[1][0] == "y" and ops(g)[0].saved[1][1] == Stats.of(y.array)


def test_several_outputs_share_their_leaves():
    x = tg.randn(3, requires_grad=True)
    a, b = (x * 2).sum(), x.exp().mean()
    g = graph({"a": a, "b": [b]})
    assert [n.name for n in g.nodes.values() if getattr(n, "kind", "") == "output"] == ["a", "b"]
    assert sum(getattr(n, "kind", "") == "input" for n in g.nodes.values()) == 1
    tg.autograd.backward([a, b])
    final = {k: t for s in g.steps for k, _, t in s.accumulated}
    np.testing.assert_allclose(next(iter(final.values())).values, x.grad.array, rtol=1e-6)


def test_depth_keeps_only_the_ops_near_the_output():
    x = tg.randn(3, requires_grad=True)
    z = ((x * 2).exp() + 1).sum()
    g = graph(z, depth=2)
    assert [n.op for n in ops(g)] == ["Add", "Sum"]
    cut = [n for n in g.nodes.values() if getattr(n, "kind", "") == "cut"]
    assert len(cut) == 1 and cut[0].shape == (3,)


def test_graph_after_backward_says_to_build_it_before():
    x = tg.randn(3, requires_grad=True)
    z = (x * x).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="before loss.backward"):
        graph(z)


def test_rule_text_names_the_op_and_its_gradients():
    assert rule("Mul") == "mul: grad_x = grad * y, grad_y = grad * x"
    assert rule("Frobnicate") == "frobnicate: see Frobnicate.backward in the source"


# ---------------------------------------------------------------- recorded backward

def test_steps_follow_backward_with_the_gradients_of_each_op():
    g, x, y, upstream = small_graph()
    mul, add, relu = ops(g)
    assert [s.node for s in g.steps] == [relu.key, add.key, mul.key]
    np.testing.assert_array_equal(g.steps[0].incoming.values, upstream.ravel())
    xv, yv = x.array.astype(np.float64), y.array.astype(np.float64)
    grad_h = upstream * (xv * yv + xv > 0)  # through ReLU, then Add passes it on
    np.testing.assert_allclose(g.steps[2].incoming.values, grad_h.ravel(), rtol=1e-6)
    np.testing.assert_allclose(g.steps[2].outgoing[1].values, (grad_h * xv).ravel(), rtol=1e-6)
    # x gets grad_h from Add and grad_h * y from Mul: the running total ends at x.grad
    (key_add, contrib, _), = g.steps[1].accumulated
    np.testing.assert_allclose(contrib.values, grad_h.ravel(), rtol=1e-6)
    final = {k: t for s in g.steps for k, _, t in s.accumulated}
    np.testing.assert_allclose(final[key_add].values, x.grad.array.ravel(), rtol=1e-6)
    np.testing.assert_allclose(final[mul.inputs[1]].values, y.grad.array.ravel(), rtol=1e-6)


def test_totals_start_from_the_gradient_already_accumulated():
    x = tg.randn(3, requires_grad=True)
    (x * 3).sum().backward()  # x.grad = 3 before the recorded pass
    z = (x * x).sum()
    g = graph(z)
    z.backward()
    (_, first, total1), (_, _, total2) = [a for s in g.steps for a in s.accumulated]
    np.testing.assert_allclose(first.values, x.array, rtol=1e-6)  # Mul sends x.array to each x
    np.testing.assert_allclose(total1.values, 3 + x.array, rtol=1e-6)
    np.testing.assert_allclose(total2.values, x.grad.array, rtol=1e-6)
    np.testing.assert_allclose(total2.values, 3 + 2 * x.array, rtol=1e-6)


def test_a_second_backward_pass_replaces_the_steps():
    x = tg.randn(3, requires_grad=True)
    z = (x * x).sum()
    g = graph(z)
    z.backward(retain_graph=True)
    z.backward()
    assert len(g.steps) == 2  # Sum then Mul, once
    np.testing.assert_allclose(g.steps[-1].accumulated[-1][2].values, 4 * x.array, rtol=1e-6)


def test_in_place_ops_and_views_are_steps_too():
    a = tg.randn(3, 4, requires_grad=True)
    b = a * 2
    b += 1
    b[0] = 0
    b.view(12).mul_(3)
    loss = (tg.sin(b) * b).sum()
    g = graph(loss)
    assert [n.op for n in ops(g)] == ["Mul", "Add", "IndexPut", "Reshape", "Mul", "CopyView",
                                      "Sin", "Mul", "Sum"]
    loss.backward()
    totals = {k: t for s in g.steps for k, _, t in s.accumulated}
    key = next(n.key for n in g.nodes.values() if getattr(n, "name", "") == "a")
    np.testing.assert_allclose(totals[key].values, a.grad.array.ravel(), rtol=1e-6)
    assert a.grad.array[0].sum() == 0  # the overwritten row gets no gradient


# ---------------------------------------------------------------- modules

def test_mlp_nodes_sit_in_their_modules():
    g, *_ = model_step("mlp3")
    by_op = {}
    for n in ops(g):
        by_op.setdefault(n.op, []).append(n.module)
    assert by_op["Linear"] == ["features.fc1", "features.fc2", "classifier.fc"]
    assert by_op["Reshape"] == ["features"]  # the Flatten before fc1
    assert by_op["ReLU"] == ["features", ""]  # the second is at the border of two Sequentials
    assert by_op["CrossEntropy"] == [""]
    params = {n.name: n.module for n in g.nodes.values() if getattr(n, "kind", "") == "parameter"}
    assert params["features.fc2.weight"] == "features.fc2"
    assert g.folded == set()  # small: fully expanded


def test_traced_modules_put_every_op_where_its_forward_ran():
    model = models.get_model("resnet18")
    with trace_modules(model) as modules:
        out = model(tg.randn(2, 3, 64, 64))
    g = graph(out, params=model, modules=modules)
    where = {}
    for n in ops(g):
        where.setdefault(n.op, []).append(n.module)
    assert where["Add"] == [f"features.layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert where["ReLU"][:3] == ["features.relu", "features.layer1.0.relu1",
                                 "features.layer1.0.relu2"]
    assert where["Mean"] == ["classifier.avgpool"] and where["Reshape"] == ["classifier.flatten"]
    assert g.folded == {f"features.layer{i}.{j}" for i in range(1, 5) for j in range(2)}
    assert "9 ops, 9 parameters" in g._repr_svg_()  # layer2.0: its shortcut, Add and ReLU too
    assert not any(h for m in model.modules() for h in m._forward_hooks.values())  # removed


def test_resnet18_is_folded_by_block_and_builds_in_well_under_5_s():
    tg.manual_seed(0)
    model = models.get_model("resnet18")
    loss = F.cross_entropy(model(tg.randn(2, 3, 64, 64)), tg.tensor(np.array([1, 2])))
    start = time.perf_counter()
    g = graph(loss, params=model)
    seconds = time.perf_counter() - start  # 0.19 s measured on the 2-core machine
    assert seconds < 5
    assert g.folded == {f"features.layer{i}.{j}" for i in range(1, 5) for j in range(2)}
    svg = g._repr_svg_()
    assert svg.count('class="node"') <= 60
    assert "features.layer2.0 (BasicBlock)" in svg and "7 ops, 9 parameters" in svg
    g.expand("features.layer2.0")
    assert 'id="op' in g._repr_svg_() and g.folded.isdisjoint({"features.layer2.0"})


# ---------------------------------------------------------------- files

def test_save_writes_svg_dot_and_html(tmp_path):
    g, *_ = small_graph()
    assert "<svg" in Path(g.save(str(tmp_path / "g.svg"))).read_text()
    assert Path(g.save(str(tmp_path / "g.dot"))).read_text().startswith("digraph")
    page = Path(g.save(str(tmp_path / "g.html"))).read_text()
    assert "graph-data" in page and "http" not in page.split("<svg", 1)[0]  # nothing to fetch
    with pytest.raises(ValueError, match=r"g\.png.*\.svg, \.dot, \.html"):
        g.save(str(tmp_path / "g.png"))


def test_missing_dot_says_how_to_install_it(tmp_path, monkeypatch):
    g, *_ = small_graph()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        g.save(str(tmp_path / "g.svg"))
    assert not list(tmp_path.iterdir())  # no half-written file


def page_data(path) -> dict:
    text = Path(path).read_text()
    raw = re.search(r'id="graph-data">(.*?)</script>', text, re.DOTALL)[1]
    return json.loads(raw.replace("<\\/", "</"))


@pytest.mark.parametrize("name", list(MODEL_INPUTS))
def test_page_shows_each_parameters_value_and_gradient(name, tmp_path):
    g, model, _ = model_step(name)
    svg = g._repr_svg_()
    assert svg.startswith("<?xml") and "</svg>" in svg
    data = page_data(g.save(str(tmp_path / "g.html")))
    shown = {n["name"]: n for n in data["nodes"].values() if n["kind"] == "parameter"}
    totals = {data["nodes"][k]["name"]: t for s in data["steps"] for k, _, t in s["accumulated"]}
    assert len(shown) == len(list(model.parameters()))
    for pname, p in model.named_parameters():
        grad = p.grad.array.astype(np.float64).ravel()
        np.testing.assert_allclose(shown[pname]["grad"]["values"], grad[:16], rtol=1e-6)
        np.testing.assert_allclose(shown[pname]["grad"]["norm"], np.linalg.norm(grad), rtol=1e-5)
        np.testing.assert_allclose(shown[pname]["value"]["mean"], p.array.mean(), rtol=1e-4,
                                   atol=1e-7)
        np.testing.assert_allclose(totals[pname]["values"], grad[:16], rtol=1e-5, atol=1e-7)
    assert data["steps"][0]["incoming"]["values"] == [1.0]  # d loss / d loss


def test_graphdef_scopes_ops_by_module():
    g, *_ = model_step("mlp3")
    gd = g.to_graphdef()
    names = [n.name for n in gd.node]
    assert all(i in names for n in gd.node for i in n.input)
    linear = [n for n in gd.node if n.op == "Linear"]
    assert linear[0].name.startswith("features/fc1/Linear_")
    assert "features/fc1/weight" in linear[0].input
    dims = [d.size for d in linear[0].attr["_output_shapes"].list.shape[0].dim]
    assert dims == [2, 256]
    assert type(gd).FromString(gd.SerializeToString()) == gd


# ---------------------------------------------------------------- CLI

def test_cli_draws_one_training_step(tmp_path, capsys):
    out = tmp_path / "g.html"
    assert main(["cnn3", "--input-shape", "1", "1", "28", "28", "--out", str(out)]) == 0
    data = page_data(out)
    ops_shown = [n["op"] for n in data["nodes"].values() if n["kind"] == "op"]
    assert "CrossEntropy" in ops_shown and "Conv2d" in ops_shown
    assert len(data["steps"]) == len(ops_shown)
    assert any("cnn.py" in (n["trace"] or "") for n in data["nodes"].values())  # anomaly mode


def test_cli_is_reproducible_by_seed(tmp_path):
    a, b, c = (str(tmp_path / f"{n}.svg") for n in "abc")
    for out, seed in ((a, "0"), (b, "0"), (c, "1")):
        assert main(["mlp3", "--out", out, "--seed", seed]) == 0
    assert Path(a).read_text() == Path(b).read_text() != Path(c).read_text()


@pytest.mark.parametrize("argv, message", [
    (["nope"], "unknown model 'nope'"),
    (["mlp3", "--out", "g.png"], "--out 'g.png'"),
    (["mlp3", "--input-shape", "1", "3", "28", "28"], "mlp3 on an input of shape (1, 3, 28, 28)"),
])
def test_cli_refuses_bad_input_in_one_sentence(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- the page in a real browser

class Chromium:
    """Headless Chromium driven over the DevTools protocol (a websocket per page)."""

    def __init__(self):
        websocket = pytest.importorskip("websocket")  # websocket-client
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            pytest.skip("chromium is not installed (apt-get install chromium)")
        self.profile = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = next(m[1] for line in self.proc.stderr
                    if (m := re.search(r"ws://127\.0\.0\.1:(\d+)/", line)))
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        # no Origin header: websocket-client 1.9 sends one, which Chromium refuses (403)
        # unless started with --remote-allow-origins
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.id = 0

    def call(self, method: str, **params):
        self.id += 1
        self.ws.send(json.dumps({"id": self.id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.id:
                assert "error" not in msg, msg
                return msg["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, path) -> None:
        self.call("Page.navigate", url=f"file://{path}")
        for _ in range(200):
            if self.js("document.readyState") == "complete" and self.js("typeof D === 'object'"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{path} did not load")

    def key(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=code)

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    b = Chromium()
    yield b
    b.close()


def numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(":", 1)[1].split()])


STEP_STATE = """(() => ({
  counter: document.getElementById('counter').textContent,
  title: document.querySelector('#step h3').textContent,
  current: [...document.querySelectorAll('g.node.current')].map(e => e.id),
  incoming: document.querySelector('#incoming .values').textContent,
  rule: document.getElementById('rule').textContent,
  leaves: [...document.querySelectorAll('#accumulated .leaf')].map(
    e => [e.dataset.leaf, e.querySelector('.total .values').textContent]),
}))()"""


def step_through(browser, n_steps: int) -> list:
    """Press next (the button, then the right arrow key, alternately) through the whole pass."""
    states = []
    for i in range(n_steps):
        if i % 2:
            browser.key("ArrowRight", 39)
        else:
            browser.js("document.getElementById('next').click()")
        states.append(browser.js(STEP_STATE))
    return states


def test_page_steps_through_backward_showing_the_gradients(browser, tmp_path):
    g, x, y, upstream = small_graph()
    path = g.save(str(tmp_path / "g.html"))
    browser.open(path)
    assert browser.js("document.getElementById('counter').textContent") == "step 0 / 3"
    states = step_through(browser, 3)
    assert [s["counter"] for s in states] == ["step 1 / 3", "step 2 / 3", "step 3 / 3"]
    assert [s["current"] for s in states] == [[s.node] for s in g.steps]
    assert states[2]["rule"] == "mul: grad_x = grad * y, grad_y = grad * x"
    np.testing.assert_allclose(numbers(states[0]["incoming"]), upstream.ravel(), rtol=1e-6)
    shown = {k: numbers(v) for s in states for k, v in s["leaves"]}
    keys = {n.name: n.key for n in g.nodes.values()}
    np.testing.assert_allclose(shown[keys["x"]], x.grad.array.ravel(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(shown[keys["y"]], y.grad.array.ravel(), rtol=1e-6, atol=1e-7)
    browser.key("ArrowLeft", 37)
    assert browser.js(STEP_STATE)["counter"] == "step 2 / 3"
    browser.js(f"document.getElementById('{keys['x']}').dispatchEvent(new MouseEvent('click'))")
    details = browser.js("document.getElementById('details').textContent")
    assert details.startswith("x") and f"{x.array.ravel()[0]:.6}"[:6] in details


DETAILS = """(k => {
  details(k);
  return [...document.querySelectorAll('#details .stats')].map(e => [
    e.querySelector('b') ? e.querySelector('b').textContent : '',
    e.querySelector('.values').textContent]);
})"""


@pytest.mark.parametrize("name", list(MODEL_INPUTS))
def test_page_of_each_model_shows_the_tensors_values_and_gradients(name, browser, tmp_path):
    g, *_ = model_step(name)
    browser.open(g.save(str(tmp_path / "g.html")))
    states = step_through(browser, len(g.steps))
    assert states[-1]["counter"] == f"step {len(g.steps)} / {len(g.steps)}"
    assert all(len(s["current"]) >= 1 for s in states)  # every op is shown: in its box too
    if g.folded:  # ResNet-18: stepping into a block frames the box and the op in its inside view
        inside = [s for s in states if len(s["current"]) == 2]
        assert inside and all(s["current"][0].startswith("m_features.layer") for s in inside)
    shown = {k: numbers(v) for s in states for k, v in s["leaves"]}
    for n in g.nodes.values():
        if getattr(n, "kind", "") != "parameter":
            continue
        grad, value = n.tensor.grad.array.ravel()[:16], n.tensor.array.ravel()[:16]
        np.testing.assert_allclose(shown[n.key], grad, rtol=1e-5, atol=1e-6)
        panel = dict(browser.js(f"{DETAILS}('{n.key}')"))  # what a click on the node shows
        np.testing.assert_allclose(numbers(panel["value"]), value, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(numbers(panel["grad"]), grad, rtol=1e-5, atol=1e-6)


def test_a_notebook_shows_the_graph_inline():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import tinygrad_edu as tg\nfrom tinygrad_edu.viz import graph\n"
        "x = tg.randn(4, 3, requires_grad=True)\nloss = (x * x).sum()\n"
        "g = graph(loss)\nloss.backward()\ng")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    data = nb.cells[0].outputs[-1]["data"]
    assert data["text/plain"] == "Graph(2 ops, 2 tensors, 2 backward steps recorded)"
    assert "<svg" in data["image/svg+xml"] and "grad norm" in data["image/svg+xml"]


def test_tg_viz_resolves_on_first_use_and_import_stays_light():
    import subprocess
    import sys
    code = ("import sys, tinygrad_edu as tg; light = 'matplotlib' not in sys.modules; "
            "print(light, tg.viz.graph.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "graph"]
