"""Every notebook in notebooks/ runs top to bottom in quick mode (TINYGRAD_EDU_QUICK=1), and
experiments.notebooks writes the hand-in formats."""
import os
from pathlib import Path

import nbformat
import pytest

from experiments import notebooks

from .helpers import mnist_available

REPO = Path(__file__).resolve().parents[1]
CALTECH = Path(os.environ.get("CALTECH101",
                              REPO.parent / "shared/data/caltech101/101_ObjectCategories"))


NEEDS = {"01_mnist_nn_cnn": "mnist", "02_cam": "mnist", "03_caltech": "caltech",
         "04_lines": "mnist"}


def test_every_assignment_has_a_notebook_committed_without_outputs():
    names = [p.stem for p in notebooks.notebook_paths()]
    assert names == ["00_autograd", "01_mnist_nn_cnn", "02_cam", "03_caltech", "04_lines"]
    for path in notebooks.notebook_paths():
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path
        assert any("TINYGRAD_EDU_QUICK" in c.source for c in code), path


@pytest.mark.parametrize("name", [p.stem for p in notebooks.notebook_paths()])
def test_notebook_runs_in_quick_mode(name):
    need = NEEDS.get(name)
    if need == "mnist" and not mnist_available():
        pytest.skip("real MNIST not in the data cache (python -m tinygrad_edu.data download mnist)")
    if need == "caltech" and not CALTECH.is_dir():
        pytest.skip(f"no Caltech-101 at {CALTECH}")
    nb = notebooks.execute(notebooks.NOTEBOOK_DIR / f"{name}.ipynb", quick=True, timeout=600)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("quick mode" in o.get("text", "") for o in outputs)
    if name != "00_autograd":  # the others draw figures: PNGs below the cells
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3


def test_cli_writes_the_executed_notebook_and_its_html(tmp_path, capsys):
    assert notebooks.main(["--html", str(tmp_path), "--quick", "00_autograd"]) == 0
    nb = nbformat.read(tmp_path / "00_autograd.ipynb", as_version=4)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    page = (tmp_path / "00_autograd.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "gradcheck" in page
    assert "00_autograd.html" in capsys.readouterr().out


def test_a_failing_cell_is_one_sentence_naming_the_notebook_and_the_cell(tmp_path, capsys):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("1 / 0")])
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(notebooks.NotebookError,
                       match=r"broken.ipynb: cell 1 failed with ZeroDivisionError"):
        notebooks.execute(path, quick=True, timeout=60)
    assert notebooks.main(["--html", str(tmp_path), "no_such_notebook"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no notebook no_such_notebook.ipynb" in err
