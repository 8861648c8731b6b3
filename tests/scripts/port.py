"""The import rule of README / docs/porting.md, applied mechanically to a PyTorch script:
in import lines `torch` becomes `tinygrad_edu` and `torchvision` becomes `tinygrad_edu.vision`;
a bare `import torch` becomes `import tinygrad_edu as torch` (and `import torchvision` ->
`import tinygrad_edu.vision as torchvision`). Nothing else in the script changes.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

_NAME = r"(torchvision|torch)((?:\.\w+)*)"


def _package(top: str, rest: str) -> str:
    return ("tinygrad_edu.vision" if top == "torchvision" else "tinygrad_edu") + rest


def _import_item(item: str) -> str:
    """One comma-separated item of `import a.b as c, d`."""
    m = re.fullmatch(rf"\s*{_NAME}(\s+as\s+\w+)?\s*", item)
    if m is None:
        return item
    top, rest, alias = m.group(1), m.group(2), m.group(3)
    if alias:
        return f" {_package(top, rest)}{alias}"
    if not rest:
        return f" {_package(top, '')} as {top}"
    # `import torch.nn as nn`-less form `import torch.nn`: binds `torch`, as Python does
    return f" {_package(top, '')} as {top}, {_package(top, rest)}"


def port_line(line: str) -> str:
    """The line with the import rule applied (other lines come back unchanged)."""
    m = re.match(rf"^(\s*)from\s+{_NAME}(\s+import\s+.*)$", line)
    if m:
        return f"{m.group(1)}from {_package(m.group(2), m.group(3))}{m.group(4)}"
    m = re.match(r"^(\s*)import\s+(.*)$", line)
    if m and re.search(rf"\b{_NAME}\b", m.group(2)):
        items = ",".join(_import_item(i) for i in m.group(2).split(","))
        return f"{m.group(1)}import{items}"
    return line


def port_source(source: str) -> str:
    return "\n".join(port_line(line) for line in source.split("\n"))


def load_ported(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the script at `path` after applying the import rule (its __main__ block does not
    run); returns the module."""
    path = Path(path)
    name = name or f"ported_{path.stem}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(port_source(path.read_text()), str(path), "exec"), module.__dict__)  # noqa: S102
    return module


def load_original(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the script unchanged (on PyTorch)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or f"torch_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
