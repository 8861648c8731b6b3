"""experiments.report: HTML pages and PDFs built from the matplotlib figures of tinygrad_edu.viz."""
import re

import numpy as np
import pytest

from experiments import report
from tinygrad_edu import viz


def history(epochs: int = 3) -> dict:
    e = np.arange(1, epochs + 1)
    return {"train_loss": list(1 / e), "val_loss": list(1.1 / e), "train_acc": list(1 - 0.5 / e),
            "val_acc": list(1 - 0.6 / e)}


def test_line_chart_is_inline_svg_with_searchable_titles_and_labels():
    svg = report.line_chart({"train": [(1, 0.5), (2, 0.3)], "val": [(1, 0.6), (2, 0.4)]},
                            "cross-entropy loss", "epoch", "loss")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for text in ("cross-entropy loss", "epoch", "loss", "train", "val"):
        assert f">{text}<" in svg, text


def test_figure_embeds_a_matplotlib_figure_or_an_array_as_png():
    html = report.figure(viz.plot_confusion_matrix(np.eye(3)), "P(predicted | true)")
    assert html.count("data:image/png;base64,") == 1 and "P(predicted | true)" in html
    assert "data:image/png;base64," in report.figure(np.zeros((4, 4, 3), np.uint8), "x")


def test_page_escapes_and_holds_every_section():
    html = report.page("a <run>", [("Summary", report.table_html(["", ""], [["acc", 0.5]])),
                                   ("Curves", report.line_chart({"a": [(1, 1.0)]}, "t", "x"))])
    assert "<title>a &lt;run&gt;</title>" in html and "<td>0.5000</td>" in html
    assert html.count("<h2>") == 2 and "<svg" in html


def test_write_pdf_has_a_summary_page_and_one_page_per_figure(tmp_path):
    path = tmp_path / "run" / "report.pdf"
    figures = [("per epoch", viz.plot_learning_curves(history())),
               ("rows sum to 1", viz.plot_confusion_matrix(np.eye(10) * 0.9 + 0.01))]
    report.write_pdf(str(path), "MNIST cnn3", [["test accuracy", 0.99], ["epochs", 3]], figures)
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) == 3  # summary + 2 figures
    assert [p.name for p in path.parent.iterdir()] == ["report.pdf"]


def test_write_pdf_leaves_nothing_behind_when_a_figure_fails(tmp_path):
    with pytest.raises(AttributeError):
        report.write_pdf(str(tmp_path / "r.pdf"), "t", [], [("bad", "not a figure")])
    assert list(tmp_path.iterdir()) == []


def test_line_chart_titles_its_y_axis_by_default():
    svg = report.line_chart({"train": [(1, 0.5)]}, "accuracy", "epoch")
    assert svg.count(">accuracy<") == 2  # the title and the y axis
