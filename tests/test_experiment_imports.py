"""experiments/ reads top down: an entry point (mnist_cnn3) imports an experiment module
(mnist_common) and the runner, and those import only modules that import no other module of
the package (common, run_record, report, torch_backend): at most two levels. No module imports
another's private names. Measured from the source with ast: every import statement counts,
also those inside functions. The package's __init__ (UsageError) is not counted: Python runs it
before any module of the package, so importing it adds no step to follow."""
import ast
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
MAX_DEPTH = 2


def module_names(root: Path) -> dict[str, Path]:
    """'experiments.sweeps.trial' -> its file, for every module below root (packages too)."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported(name: str, path: Path, modules: dict) -> list[tuple[str, str | None]]:
    """(module, name) pairs that the module `name` imports from the package: the module and,
    for `from module import x`, the name x (None for `import module`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    out.append((submodule, None))
                elif base in modules:
                    out.append((base, alias.name))
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports, the package itself left out."""
    modules = module_names(root)
    return {name: {m for m, _ in imported(name, path, modules) if m not in (name, root.name)}
            for name, path in modules.items()}


def depths(graph: dict[str, set[str]]) -> dict[str, int]:
    """The longest chain of imports that starts at each module (0: it imports none)."""
    memo: dict[str, int] = {}

    def depth(name: str, seen: tuple = ()) -> int:
        if name in seen:
            raise AssertionError(f"import cycle: {' -> '.join(seen + (name,))}")
        if name not in memo:
            memo[name] = max((1 + depth(m, seen + (name,)) for m in graph[name]), default=0)
        return memo[name]
    return {name: depth(name) for name in graph}


def chain(graph: dict[str, set[str]], start: str) -> list[str]:
    """The longest import chain from `start`, for the failure message."""
    d = depths(graph)
    out = [start]
    while graph[out[-1]]:
        out.append(max(graph[out[-1]], key=lambda m: d[m]))
    return out


def private_imports(root: Path) -> list[str]:
    """'a imports b._x' for every private name one module takes from another, imported
    (`from .b import _x`) or reached as an attribute (`b._x` after `from . import b`)."""
    modules = module_names(root)
    found = []
    for name, path in modules.items():
        pairs = imported(name, path, modules)
        found += [f"{name} imports {m}.{n}" for m, n in pairs if n and n.startswith("_")
                  and not n.startswith("__") and m != name]
        aliases = {m.rpartition(".")[2]: m for m, n in pairs if n is None and m != name}
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_of_experiments_imports_more_than_two_levels_deep():
    graph = import_graph(EXPERIMENTS)
    deep = {name: d for name, d in depths(graph).items() if d > MAX_DEPTH}
    assert not deep, "; ".join(f"{' -> '.join(chain(graph, name))}" for name in sorted(deep))
    assert depths(graph)["experiments.mnist_cnn3"] == 2  # the measure sees the runner


def test_no_module_of_experiments_imports_a_private_name_of_another():
    assert private_imports(EXPERIMENTS) == []


@pytest.fixture
def package(tmp_path):
    """A package pkg: a -> b -> c -> d, and e taking private names of d."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "from . import b\n", "b.py": "from .sub import c\n",
             "sub/__init__.py": "", "sub/c.py": "def f():\n    from ..d import x\n",
             "d.py": "x = _y = 1\n", "e.py": "from . import d\nfrom .d import _y\nd._y\n"}
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_the_measures_see_a_deep_chain_and_private_names(package):
    """Negative control: a chain of three imports (one inside a function) is depth 3, and
    both ways of taking a private name are found."""
    graph = import_graph(package)
    assert depths(graph)["pkg.a"] == 3 and chain(graph, "pkg.a") == [
        "pkg.a", "pkg.b", "pkg.sub.c", "pkg.d"]
    assert private_imports(package) == ["pkg.e imports pkg.d._y", "pkg.e uses pkg.d._y"]
