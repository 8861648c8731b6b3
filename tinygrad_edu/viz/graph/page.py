"""The self-contained HTML page: the graph's SVG, its data as JSON, and a little JavaScript that
steps through the recorded backward pass (buttons or arrow keys) and shows a node's statistics
when it is clicked. No network is needed to open it."""
from __future__ import annotations

import html as html_lib
import json
import math
import re

from .modules import box_of
from .nodes import OpNode
from .render import svg, to_dot
from .rules import rule

CSS = """
html, body { height: 100%; }
body { overflow: hidden; font: 13px/1.4 "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0;
       color: #111827; }
header { height: 29px; padding: 8px 12px 0; border-bottom: 1px solid #d1d5db; }
button { font: inherit; padding: 3px 12px; }
.hint { color: #6b7280; margin-left: 12px; }
main { display: flex; height: calc(100vh - 46px); }
#graph { flex: 1 1 60%; overflow: auto; padding: 8px; }
#graph.fit svg { max-width: 100%; max-height: 100%; height: auto; }
#inside svg { max-width: 100%; max-height: 60vh; height: auto; }
#inside.large svg { max-width: none; max-height: none; }
aside { flex: 0 0 40%; max-width: 40%; padding: 8px 12px; overflow: auto;
        border-left: 1px solid #d1d5db; }
h3 { margin: 6px 0; font-size: 14px; } h4 { margin: 10px 0 4px; font-size: 13px; }
.rule { font-family: "DejaVu Sans Mono", monospace; background: #fef3c7; padding: 4px 6px; }
.stats { margin: 2px 0 8px 8px; } .values { font-family: "DejaVu Sans Mono", monospace;
  font-size: 11px; word-break: break-all; color: #1f2937; }
.hist { display: inline-flex; align-items: flex-end; height: 18px; gap: 1px;
        vertical-align: middle; }
.hist span { display: inline-block; width: 6px; background: #6366f1; }
.trace { font-family: "DejaVu Sans Mono", monospace; color: #374151; }
g.node.current polygon, g.node.current path, g.node.current ellipse {
  stroke: #dc2626; stroke-width: 4px; }
g.node.done polygon, g.node.done path { fill: #bbf7d0; }
g.node.receives polygon, g.node.receives path { stroke: #2563eb; stroke-width: 3px; }
g.edge.flow path { stroke: #dc2626; stroke-width: 2.5px; }
g.edge.flow polygon { fill: #dc2626; stroke: #dc2626; }
g.node { cursor: pointer; }
"""

SCRIPT = r"""
const D = JSON.parse(document.getElementById('graph-data').textContent);
let step = -1, insideBox = null;
const $ = id => document.getElementById(id);
const fmt = v => typeof v === 'number' ? String(Number(v.toPrecision(7))) : String(v);
const shape = s => '(' + s.join(', ') + ')';
function statsHtml(s, title) {
  if (!s) return '<div class="stats">none (not needed)</div>';
  const top = Math.max(1, ...s.hist);
  const bars = s.hist.map(n => `<span style="height:${2 + 16 * n / top}px"></span>`).join('');
  const size = s.shape.reduce((a, b) => a * b, 1);
  const more = size > s.values.length ? ` (first ${s.values.length} of ${size})` : '';
  return `<div class="stats">${title ? '<b>' + title + '</b> ' : ''}${shape(s.shape)} ${s.dtype}`
    + ` &nbsp; min ${fmt(s.min)} mean ${fmt(s.mean)} max ${fmt(s.max)} norm ${fmt(s.norm)}`
    + ` <span class="hist">${bars}</span><div class="values">values${more}: `
    + s.values.map(fmt).join(' ') + '</div></div>';
}
function nodeTitle(k, where) {  // where: add the module of an op, to tell apart two BatchNorms
  const n = D.nodes[k];
  if (n.kind !== 'op') return n.name;
  const title = n.name ? `${n.name} = ${n.op}` : n.op;
  return where && n.module ? `${title} (${n.module})` : title;
}
function elements(k) {  // the node in the graph (or its folded box), and in the inside view
  const box = D.nodes[k] && D.nodes[k].box;
  const found = [$(box ? 'm_' + box : k)];
  if (box && insideBox === box) found.push($(box + '__' + k));
  return found.filter(e => e);
}
function mark(k, cls) { elements(k).forEach(e => e.classList.add(cls)); }
function markEdges(k) {  // the edges from the node's inputs: backward sends gradients along them
  const box = D.nodes[k].box;
  $('graph').querySelectorAll(`g.edge[id$="_${box ? 'm_' + box : k}"]`)
    .forEach(e => e.classList.add('flow'));
  if (box && insideBox === box)
    $('inside').querySelectorAll(`g.edge[id$="_${k}"]`).forEach(e => e.classList.add('flow'));
}
function clearMarks() {
  document.querySelectorAll('.current, .done, .receives, .flow')
    .forEach(e => e.classList.remove('current', 'done', 'receives', 'flow'));
}
function showInside(box) {
  insideBox = box;
  $('inside').innerHTML = box ? `<h4>inside ${box} <button id="enlarge">enlarge</button></h4>`
    + D.inner[box] : '';
  if (box) $('enlarge').addEventListener('click', () => $('inside').classList.toggle('large'));
  bindClicks($('inside'));
}
function render() {
  clearMarks();
  $('counter').textContent = `step ${step + 1} / ${D.steps.length}`;
  if (step < 0) {
    $('step').innerHTML = D.steps.length ? '<h3>Before backward</h3>Press next (or the right '
      + 'arrow key) to run backward one op at a time, from the output back to the leaves.'
      : '<h3>No backward pass recorded</h3>Build the graph, call backward, then save the page.';
    return;
  }
  const s = D.steps[step], n = D.nodes[s.node];
  if ((n.box || null) !== insideBox) showInside(n.box || null);
  for (let i = 0; i < step; i++) mark(D.steps[i].node, 'done');
  n.inputs.forEach(k => mark(k, 'receives'));
  mark(s.node, 'current');
  markEdges(s.node);
  elements(s.node).forEach(e => e.scrollIntoView({block: 'nearest', inline: 'nearest'}));
  $('step').innerHTML = stepHtml(s, n);
}
function section(title, id, body) { return `<h4>${title}</h4><div id="${id}">${body}</div>`; }
function stepHtml(s, n) {  // the op, its incoming gradient, rule, saved values, outgoing gradients
  let h = `<h3>Step ${step + 1} of ${D.steps.length}: ${nodeTitle(s.node)}</h3>`;
  if (n.module) h += `<div>in module <b>${n.module}</b></div>`;
  if (n.trace) h += `<div class="trace">${n.trace}</div>`;
  h += section('incoming gradient (of the output)', 'incoming', statsHtml(s.incoming));
  h += `<h4>local rule</h4><div class="rule" id="rule">${n.rule}</div>`;
  if (n.saved.length)
    h += section('saved for backward', 'saved', n.saved.map(([k, v]) => statsHtml(v, k)).join(''));
  h += section('outgoing gradients', 'outgoing', n.inputs.map((k, i) => `<div class="out" `
    + `data-to="${k}">to <b>${nodeTitle(k, true)}</b>${statsHtml(s.outgoing[i])}</div>`).join(''));
  if (s.accumulated.length)
    h += section('accumulated into leaves', 'accumulated', s.accumulated.map(([k, c, t]) =>
      `<div class="leaf" data-leaf="${k}"><b>${nodeTitle(k)}</b>.grad += `
      + `<div class="contribution">${statsHtml(c)}</div>${nodeTitle(k)}.grad is now`
      + `<div class="total">${statsHtml(t)}</div></div>`).join(''));
  return h;
}
function details(k) {
  const n = D.nodes[k];
  if (!n) return;
  let h = `<h3>${nodeTitle(k)}</h3><div>${n.kind}`
    + `${n.module ? ' in <b>' + n.module + '</b>' : ''}</div>`;
  if (n.trace) h += `<div class="trace">${n.trace}</div>`;
  if (n.rule) h += `<div class="rule">${n.rule}</div>`;
  if (n.value) h += statsHtml(n.value, 'value');
  if (n.grad) h += statsHtml(n.grad, n.kind === 'op' ? 'gradient of its output' : 'grad');
  n.saved.forEach(([name, v]) => { h += statsHtml(v, 'saved ' + name); });
  $('details').innerHTML = h;
}
function bindClicks(root) {
  root.querySelectorAll('g.node').forEach(g => g.addEventListener('click', () => {
    const id = g.id.includes('__') ? g.id.split('__')[1] : g.id;
    if (id.startsWith('m_')) { showInside(id.slice(2)); $('details').innerHTML = ''; return; }
    details(id);
  }));
}
function go(i) { step = Math.max(-1, Math.min(D.steps.length - 1, i)); render(); }
$('next').addEventListener('click', () => go(step + 1));
$('prev').addEventListener('click', () => go(step - 1));
document.addEventListener('keydown', e => {
  if (e.key === 'ArrowRight' || e.key === 'ArrowDown') { go(step + 1); e.preventDefault(); }
  if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') { go(step - 1); e.preventDefault(); }
  if (e.key === 'Home') go(-1);
  if (e.key === 'End') go(D.steps.length - 1);
});
$('fit').addEventListener('click', () => $('graph').classList.toggle('fit'));
const drawn = $('graph').querySelector('svg');  // small graphs fit the pane, big ones scroll
if (drawn && drawn.width.baseVal.value <= 2 * $('graph').clientWidth)
  $('graph').classList.add('fit');
bindClicks($('graph'));
render();
"""

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body><header><button id="prev">&#9664; prev</button> <button id="next">next &#9654;</button>
<span id="counter"></span> <button id="fit">fit / actual size</button><span class="hint">arrow
keys step through backward; click a node for its statistics, a folded box to look inside</span>
</header>
<main><div id="graph">{svg}</div><aside><section id="inside"></section><section id="step">
</section><section id="details"></section></aside></main>
<script type="application/json" id="graph-data">{data}</script>
<script>{script}</script></body></html>
"""


def html(graph, title: str = "autograd graph") -> str:
    """The page's text: the SVG drawn with the graph's folding, and one step per backward op."""
    boxes = {n.key: box_of(n.module, graph.folded) for n in graph.nodes.values()}
    inner = {b: _prefix_ids(svg(to_dot(graph, set(), only=b)), b + "__")
             for b in set(boxes.values()) - {None}}
    data = {"nodes": {k: _node(graph, n, boxes[k]) for k, n in graph.nodes.items()},
            "steps": [{"node": s.node, "incoming": s.incoming.to_dict(),
                       "outgoing": [o and o.to_dict() for o in s.outgoing],
                       "accumulated": [[k, c.to_dict(), t.to_dict()] for k, c, t in s.accumulated]}
                      for s in graph.steps],
            "inner": inner}
    text = json.dumps(_finite(data)).replace("</", "<\\/")
    return TEMPLATE.format(title=html_lib.escape(title), css=CSS, data=text, script=SCRIPT,
                           svg=_strip_xml(svg(graph.to_dot())))


def _node(graph, n, box: str | None) -> dict:
    """What the page shows about one node."""
    d = {"kind": "op" if isinstance(n, OpNode) else n.kind, "name": n.name, "module": n.module,
         "box": box, "inputs": n.inputs, "saved": [], "trace": None, "rule": None}
    if isinstance(n, OpNode):
        g = graph.gradient(n.key)
        d.update(op=n.op, trace=n.trace and html_lib.escape(str(n.trace)), rule=rule(n.op),
                 saved=[[name, s.to_dict()] for name, s in n.saved], shape=list(n.out_shape),
                 grad=g and g.to_dict(), value=None)
    else:
        d.update(shape=list(n.shape), value=n.value and n.value.to_dict(),
                 grad=n.grad and n.grad.to_dict())
    d["name"] = d["name"] and html_lib.escape(d["name"])
    return d


def _finite(x):
    """JSON has no NaN or infinity: write them as the strings 'nan', 'inf', '-inf'."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _strip_xml(text: str) -> str:
    """The <svg> element alone, without the XML prologue and DOCTYPE, for inlining in HTML."""
    return text[text.index("<svg"):]


def _prefix_ids(text: str, prefix: str) -> str:
    """Make an inner view's element ids unique on the page."""
    return re.sub(r'\bid="', f'id="{prefix}', _strip_xml(text))
