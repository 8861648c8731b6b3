"""Execute the assignment notebooks and write the hand-in formats: .ipynb with outputs and .html.

    python -m experiments.notebooks --html OUTDIR               # all of notebooks/, full runs
    python -m experiments.notebooks --html OUTDIR --quick 02_cam  # TINYGRAD_EDU_QUICK=1, one

Each notebook runs top to bottom in a fresh kernel (nbclient, the `python3` kernel of
ipykernel), with notebooks/ as its working directory; OUTDIR/<name>.ipynb keeps every output and
OUTDIR/<name>.html (nbconvert) is the page to hand in. The committed notebooks have no outputs.
A failing cell stops with one sentence naming the notebook, the cell and the error (exit code 2).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
QUICK_ENV = "TINYGRAD_EDU_QUICK"
THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")


class NotebookError(RuntimeError):
    """A notebook that could not be found or whose cell raised."""


def notebook_paths(names: Sequence[str] = ()) -> list[Path]:
    """notebooks/*.ipynb in name order, or the ones named (with or without .ipynb)."""
    every = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        path = NOTEBOOK_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        if not path.exists():
            raise NotebookError(f"no notebook {path.name} in {NOTEBOOK_DIR}; there are "
                                f"{', '.join(p.stem for p in every)}")
        chosen.append(path)
    return chosen


@contextlib.contextmanager
def kernel_environment(quick: bool) -> Iterator[None]:
    """os.environ as the kernel inherits it: quick mode on or off, one thread per library
    unless the caller set them (the machines are shared), restored afterwards."""
    saved = dict(os.environ)
    os.environ[QUICK_ENV] = "1" if quick else "0"
    for name in THREADS:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(path: Path, quick: bool = False, timeout: int = 3600) -> nbformat.NotebookNode:
    """Run notebook `path` top to bottom in a fresh kernel; return it with its outputs.

    `timeout` is per cell, in seconds. A cell that raises becomes a NotebookError.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with kernel_environment(quick):
        try:
            client.execute()
        except CellExecutionError as e:
            failed = next((i for i, c in enumerate(nb.cells) if _has_error(c)), None)
            error = f"{e.ename}: {e.evalue}" if getattr(e, "ename", "") else str(e)[-300:]
            raise NotebookError(f"{path.name}: cell {failed} failed with {error}") from None
    return nb


def _has_error(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def to_html(nb: nbformat.NotebookNode) -> str:
    """The executed notebook as one HTML page (nbconvert's classic template, images inline)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    return body


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix + ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def write_outputs(nb: nbformat.NotebookNode, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """OUTDIR/<stem>.ipynb (with outputs) and OUTDIR/<stem>.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb, page = out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html"
    _write_atomic(ipynb, nbformat.writes(nb))
    _write_atomic(page, to_html(nb))
    return ipynb, page


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="notebooks to run (default: all of notebooks/)")
    p.add_argument("--html", required=True, metavar="OUTDIR",
                   help="where the executed .ipynb and .html files go")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_ENV}=1: small data and few epochs (about 2 minutes each)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = p.parse_args(argv)
    try:
        for path in notebook_paths(args.names):
            nb = execute(path, args.quick, args.timeout)
            ipynb, page = write_outputs(nb, Path(args.html), path.stem)
            print(f"{path.name}: {ipynb} and {page}")
    except NotebookError as e:
        print(f"experiments.notebooks: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
