"""examples/mlp_mnist.py: trains, resumes, and refuses what would mix two runs' settings."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.helpers import mnist_available

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlp_mnist.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mlp_mnist", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlp_mnist"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["mlp_mnist"]


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--batch-size", "-2"),
                                         ("--lr", "nan"), ("--val-size", "0")])
def test_bad_values_are_one_sentence(example, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        example.main([flag, value, "--logdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(f"error: {flag}")


@pytest.mark.skipif(not mnist_available(), reason="real MNIST not in the data cache")
def test_resume_continues_and_refuses_changed_settings(example, tmp_path, capsys):
    first = example.main(["--epochs", "1", "--val-size", "50000", "--no-progress",
                          "--logdir", str(tmp_path)])  # 10,000 images to train on
    run_dir = first["run_dir"]
    for flag, value in (("--lr", "0.01"), ("--batch-size", "128")):
        with pytest.raises(SystemExit) as e:
            example.main(["--resume", run_dir, flag, value])
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"{flag} {value} differs from the run's" in err
    second = example.main(["--resume", run_dir, "--epochs", "2", "--no-progress"])
    assert second["run_dir"] == run_dir and second["test_accuracy"] >= first["test_accuracy"]
    saved = json.loads(Path(run_dir, "metrics.json").read_text())
    assert [s for s, _ in saved["scalars"]["train/loss"]] == [1, 2]
    assert saved["summary"]["config"]["epochs"] == 2
