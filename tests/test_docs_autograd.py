"""Every Python block of docs/autograd.md runs as it is, and prints what its comments say."""
from __future__ import annotations

import contextlib
import io
import linecache
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "autograd.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_block_runs_and_prints_what_it_says(code):
    out = io.StringIO()
    name = f"<docs/autograd.md block {BLOCKS.index(code)}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # as IPython does
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {})  # noqa: S102 - the doc's own examples
    printed = out.getvalue()
    for line in code.splitlines():  # `print(...)  # expected` comments name what must appear
        m = re.search(r"print\(.*\)\s+#\s*(.+)$", line)
        if m:
            for piece in re.split(r"\s*\.\.\.\s*", m.group(1)):
                assert piece.strip() in printed, f"{piece!r} not in {printed!r}"


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 8
