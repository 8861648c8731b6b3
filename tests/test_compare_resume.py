"""compare --resume: Ctrl-C in the middle of one of compare's runs names the command that
continues the comparison, which keeps the finished runs, continues the interrupted one from its
last.npz (mid-epoch) to the weights of an uninterrupted compare, trains the rest and writes one
report with every run once."""
import json
import os
import signal

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.train
from experiments import compare, lines_variations
from tests.helpers import mnist_available

pytestmark = pytest.mark.skipif(not mnist_available(),
                                reason="real MNIST not in the data cache (python -m "
                                       "tinygrad_edu.data download mnist)")
NETS = ("mlp3", "cnn2", "cnn3")  # 256 images, batch 32: 8 steps, one epoch, each run


def small(logdir) -> list[str]:
    return ["--epochs", "1", "--subset", "256", "--batch-size", "32", "--no-progress",
            "--networks", ",".join(NETS), "--frameworks", "tinygrad_edu", "--logdir",
            str(logdir)]


def weights(run_dir) -> dict:
    return {k: v.array for k, v in
            tg.load(os.path.join(run_dir, "checkpoint.npz"))["model"].items()}


def count_steps(monkeypatch, interrupt_at: int | None = None) -> list:
    """Count tg.train.fit's training steps; send SIGINT during step `interrupt_at` (1-based,
    counted over every run)."""
    original, calls = tinygrad_edu.train._Run._train_step, []

    def train_step(run, x, y):
        calls.append(1)
        if len(calls) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return original(run, x, y)
    monkeypatch.setattr(tinygrad_edu.train._Run, "_train_step", train_step)
    return calls


def test_interrupted_compare_resumes_to_the_uninterrupted_report(tmp_path, capsys,
                                                                 monkeypatch):
    whole = compare.main(small(tmp_path / "a"))
    with monkeypatch.context() as m:
        count_steps(m, interrupt_at=8 + 4)  # the middle of cnn2's epoch
        with pytest.raises(SystemExit) as e:
            compare.main(small(tmp_path / "b"))
    assert e.value.code == 130
    (out,) = (tmp_path / "b").iterdir()
    (mlp3_dir,), (cnn2_dir,) = out.glob("mlp3-*"), out.glob("cnn2-*")
    assert not list(out.glob("cnn3-*"))
    err = capsys.readouterr().err
    assert err == (f"interrupted; the checkpoint is {cnn2_dir}/last.npz: continue with python "
                   f"-m experiments.compare --resume {out}\n")
    assert json.loads((out / "metrics.json").read_text())["summary"]["status"] == "interrupted"
    finished_at = os.stat(mlp3_dir / "checkpoint.npz").st_mtime_ns

    with pytest.raises(SystemExit) as e:
        lines_variations.main(["--resume", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"python -m experiments.compare --resume {out}" in err, err
    for flags, named in ((["--lr", "0.1"], "--lr 0.1 differs"),
                         (["--networks", "mlp3"], "--networks mlp3 differs"),
                         (["--lr", "0.1", "--override"], "leave out --override")):
        with pytest.raises(SystemExit) as e:
            compare.main(["--resume", str(out), *flags])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and named in err, err

    with monkeypatch.context() as m:
        steps = count_steps(m)
        resumed = compare.main(["--resume", str(out), "--no-progress"])
    assert len(steps) == 4 + 8  # the rest of cnn2's epoch and cnn3's: mlp3 was not retrained
    assert os.stat(mlp3_dir / "checkpoint.npz").st_mtime_ns == finished_at
    assert sorted(p.name.split("-")[0] for p in out.glob("*-tinygrad_edu-*")) == sorted(NETS)
    for net in NETS:
        key = (net, "tinygrad_edu")
        assert resumed[key]["test_accuracy"] == whole[key]["test_accuracy"], net
        got, expected = weights(resumed[key]["run_dir"]), weights(whole[key]["run_dir"])
        for k in expected:
            np.testing.assert_array_equal(got[k], expected[k], err_msg=f"{net} {k}")
    assert json.loads((out / "metrics.json").read_text())["summary"]["status"] == "finished"
    md = (out / "comparison.md").read_text()
    for net in NETS:
        assert md.count(f"| {net} | tinygrad_edu |") == 1, net
