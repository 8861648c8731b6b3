"""What every experiment CLI promises: bad values, divergence, an unwritable run directory and a
full disk are one line on stderr and exit code 2 (--debug shows the traceback); Ctrl-C and
SIGTERM save a checkpoint and print the resume command; --resume continues mid-epoch to the
uninterrupted weights and refuses a changed flag unless --override."""
import errno
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.train
from experiments import (
    UsageError,
    caltech_lenet5,
    caltech_resnet18,
    lines_multihead,
    lines_specified,
    lines_variations,
    mnist_cnn3,
    mnist_mlp3,
)

MAINS = {"mnist_cnn3": mnist_cnn3.main, "mnist_mlp3": mnist_mlp3.main,
         "lines_specified": lines_specified.main, "lines_multihead": lines_multihead.main,
         "lines_variations": lines_variations.main, "caltech_lenet5": caltech_lenet5.main,
         "caltech_resnet18": caltech_resnet18.main}
BAD = [("--epochs", "0"), ("--epochs", "-3"), ("--batch-size", "0"), ("--lr", "-1"),
       ("--lr", "nan"), ("--lr", "inf"), ("--subset", "0"), ("--epochs", "two")]


def tiny_lines(tmp_path, *extra) -> list[str]:
    return ["--per-class", "4", "--epochs", "2", "--batch-size", "32", "--no-progress",
            "--logdir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("flag, value", BAD)
@pytest.mark.parametrize("name", MAINS)
def test_bad_values_are_one_sentence_and_exit_code_2(name, flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        MAINS[name]([flag, value, "--logdir", str(tmp_path)])
    assert e.value.code == 2
    assert one_line_error(capsys).startswith(f"error: {flag}" if value != "two" else "error: ")
    assert not os.listdir(tmp_path)  # nothing was started


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="--epochs must be a positive number"):
        lines_specified.main(["--epochs", "0", "--debug", "--logdir", str(tmp_path)])
    monkeypatch.setenv("TINYGRAD_EDU_DEBUG", "1")
    with pytest.raises(UsageError):
        lines_specified.main(["--lr", "-1", "--logdir", str(tmp_path)])


def test_divergence_is_one_sentence_naming_the_last_good_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        lines_specified.main(tiny_lines(tmp_path, "--lr", "1e30", "--schedule", "none"))
    err = one_line_error(capsys)
    assert e.value.code == 2 and "training diverged" in err and "lower learning rate" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "metrics.json").read_text())["summary"]
    assert summary["status"] == "failed" and not np.isnan(summary.get("test_accuracy", 0.0))


def test_unwritable_logdir_is_one_sentence(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as e:
        lines_specified.main(tiny_lines(tmp_path)[:-4] + ["--logdir", str(blocker / "runs")])
    assert e.value.code == 2 and str(blocker) in one_line_error(capsys)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    real_save, calls = tinygrad_edu.train.save, []

    def save_until_full(state, path):
        calls.append(path)
        if len(calls) > 1:  # the first epoch's checkpoint is written, the second is not
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(state, path)
    monkeypatch.setattr(tinygrad_edu.train, "save", save_until_full)
    with pytest.raises(SystemExit) as e:
        lines_specified.main(tiny_lines(tmp_path))
    err = one_line_error(capsys)
    assert e.value.code == 2 and "the disk is full" in err and "last.npz" in err
    assert tg.load(calls[0])["epoch"] == 1


def interrupt_at(monkeypatch, step: int, signum=signal.SIGINT) -> None:
    """Send `signum` to this process during training step `step` (1-based)."""
    original = tinygrad_edu.train._Run._train_step

    def train_step(run, x, y):
        if run.step + 1 == step:
            os.kill(os.getpid(), signum)
        return original(run, x, y)
    monkeypatch.setattr(tinygrad_edu.train._Run, "_train_step", train_step)


def final_weights(run_dir) -> dict:
    return {k: v.data for k, v in tg.load(os.path.join(run_dir, "checkpoint.npz"))["model"].items()}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, capsys,
                                                                         monkeypatch, signum):
    expected = final_weights(lines_specified.main(tiny_lines(tmp_path / "a"))["run_dir"])
    capsys.readouterr()
    with monkeypatch.context() as m:
        interrupt_at(m, 15, signum)  # 384 images, 230 to train: 8 batches an epoch, epoch 2
        with pytest.raises(SystemExit) as e:
            lines_specified.main(tiny_lines(tmp_path / "b"))
    assert e.value.code == 130
    err = capsys.readouterr().err.strip()
    (run_dir,) = (tmp_path / "b" / "runs").iterdir()
    assert err == (f"interrupted; the checkpoint is {run_dir}/last.npz: continue with python -m "
                   f"experiments.lines_specified --resume {run_dir}")
    assert json.loads((run_dir / "metrics.json").read_text())["summary"]["status"] == \
        "interrupted"
    for name in ("last.npz", "metrics.json"):
        assert oct(os.stat(run_dir / name).st_mode & 0o777) == oct(0o666 & ~current_umask())

    (run_dir / ".last.npz.abc.tmp").write_bytes(b"half a save")  # a kill during the save
    out = lines_specified.main(["--resume", str(run_dir), "--no-progress"])
    assert out["run_dir"] == str(run_dir) and not (run_dir / ".last.npz.abc.tmp").exists()
    got = final_weights(run_dir)
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["summary"]["status"] == "finished"
    assert oct(os.stat(run_dir / "checkpoint.npz").st_mode & 0o777) == oct(0o666 & ~current_umask())
    epochs = [step for step, _ in saved["scalars"]["train/loss"]]
    assert epochs == [1, 2]  # no epoch listed twice


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_resume_refuses_a_changed_flag_unless_override(tmp_path, capsys):
    run_dir = lines_specified.main(tiny_lines(tmp_path, "--epochs", "1"))["run_dir"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        lines_specified.main(["--resume", run_dir, "--lr", "0.01"])
    err = one_line_error(capsys)
    assert e.value.code == 2 and "--lr 0.01 differs from the run's 0.001" in err
    out = lines_specified.main(["--resume", run_dir, "--epochs", "2", "--override",
                                "--no-progress"])
    assert len(out["history"]["train_loss"]) == 2  # one more epoch, after the first
    with open(os.path.join(run_dir, "metrics.json")) as f:
        summary = json.load(f)["summary"]
    assert summary["overrides"] == [{"epochs": [1, 2]}] and summary["config"]["epochs"] == 2


def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        lines_specified.main(["--resume", str(tmp_path)])
    assert e.value.code == 2 and "holds no run.json" in one_line_error(capsys)


def test_a_run_killed_with_minus_9_shows_as_interrupted_and_resumes(tmp_path, capsys):
    from experiments.run_record import run_status
    run_dir = lines_specified.main(tiny_lines(tmp_path, "--epochs", "1"))["run_dir"]
    path = os.path.join(run_dir, "metrics.json")
    with open(path) as f:
        saved = json.load(f)
    summary = saved["summary"]
    assert run_status(summary) == "finished" and summary["pid"] == os.getpid()
    summary["status"] = "running"
    assert run_status(summary) == "running"  # this process is alive
    summary["pid"] = 2 ** 22 + 12345  # beyond pid_max: a process that is gone
    assert run_status(summary) == "interrupted"
    summary["pid"] = os.getpid()  # "still running": resuming it would write beside it
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(SystemExit) as e:
        lines_specified.main(["--resume", run_dir, "--epochs", "2", "--override"])
    assert e.value.code == 2 and "is still running" in one_line_error(capsys)


def test_epochs_logged_after_the_last_checkpoint_are_not_listed_twice(tmp_path, capsys):
    """kill -9 after epoch 2 was logged but before its checkpoint: the resumed run trains
    epoch 2 again from the epoch-1 checkpoint and metrics.json lists it once."""
    import shutil
    run_dir = Path(lines_specified.main(tiny_lines(tmp_path, "--epochs", "1"))["run_dir"])
    shutil.copy(run_dir / "last.npz", tmp_path / "epoch1.npz")
    lines_specified.main(["--resume", str(run_dir), "--epochs", "2", "--override",
                          "--no-progress"])
    shutil.copy(tmp_path / "epoch1.npz", run_dir / "last.npz")  # the epoch-2 save never happened
    lines_specified.main(["--resume", str(run_dir), "--no-progress"])
    scalars = json.loads((run_dir / "metrics.json").read_text())["scalars"]
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert [step for step, _ in scalars["val/accuracy"]] == [1, 2]
    iters = [step for step, _ in scalars.get("train/loss_iter", [])]
    assert iters == sorted(set(iters))


def test_a_run_is_resumed_by_the_experiment_that_started_it(tmp_path, capsys):
    run_dir = lines_specified.main(tiny_lines(tmp_path, "--epochs", "1"))["run_dir"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        lines_multihead.main(["--resume", run_dir])
    assert e.value.code == 2 and (f"that is a lines_specified run; continue it with python -m "
                                  f"experiments.lines_specified --resume {run_dir}"
                                  in one_line_error(capsys))


def test_resume_refuses_nan_weights_and_another_architecture(tmp_path, capsys):
    argv = ["--per-class", "4", "--epochs", "1", "--no-progress", "--logdir",
            str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]
    run_dir = Path(lines_multihead.main(argv)["run_dir"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        lines_multihead.main(["--resume", str(run_dir), "--channels", "8", "--override",
                              "--epochs", "2"])
    err = one_line_error(capsys)
    assert e.value.code == 2 and "holds another architecture (net.features" in err
    state = tg.load(run_dir / "last.npz")
    state["model"]["net.heads.angle.bias"].data[0] = np.nan
    tg.save(state, run_dir / "last.npz")
    with pytest.raises(SystemExit) as e:
        lines_multihead.main(["--resume", str(run_dir), "--epochs", "2", "--override"])
    assert e.value.code == 2 and "'net.heads.angle.bias' holds NaN" in one_line_error(capsys)


def test_an_overridden_batch_size_that_fit_cannot_resume_is_one_sentence(tmp_path, capsys,
                                                                         monkeypatch):
    with monkeypatch.context() as m:
        interrupt_at(m, 3)
        with pytest.raises(SystemExit):
            lines_specified.main(tiny_lines(tmp_path))
    (run_dir,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        lines_specified.main(["--resume", str(run_dir), "--batch-size", "64", "--override"])
    err = one_line_error(capsys)
    assert e.value.code == 2 and "batches per epoch, but train_loader has" in err


def test_interrupted_variations_resume_to_the_uninterrupted_table(tmp_path, capsys,
                                                                  monkeypatch):
    """Ctrl-C in the second variant names the command that continues the variations; that
    keeps the finished variant, continues the interrupted one mid-epoch and ends with the
    numbers and weights of an uninterrupted run."""
    argv = tiny_lines(tmp_path, "--variants", "specified,dropout")
    whole = lines_variations.main(tiny_lines(tmp_path / "a", "--variants", "specified,dropout"))
    original, calls = tinygrad_edu.train._Run._train_step, []

    def train_step(run, x, y):  # 8 steps an epoch, 2 epochs: call 21 is the dropout variant's
        calls.append(1)
        if len(calls) == 21:
            os.kill(os.getpid(), signal.SIGINT)
        return original(run, x, y)
    with monkeypatch.context() as m:
        m.setattr(tinygrad_edu.train._Run, "_train_step", train_step)
        with pytest.raises(SystemExit) as e:
            lines_variations.main(argv)
    assert e.value.code == 130
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"continue with python -m experiments.lines_variations --resume "
                        f"{sweep_dir}") and "/dropout-" in err
    assert json.loads((sweep_dir / "metrics.json").read_text())["summary"]["status"] == \
        "interrupted"
    (variant_dir,) = sweep_dir.glob("dropout-*")
    with pytest.raises(SystemExit) as e:
        lines_variations.main(["--resume", str(variant_dir)])
    assert e.value.code == 2 and f"--resume {sweep_dir}" in one_line_error(capsys)
    resumed = lines_variations.main(["--resume", str(sweep_dir), "--no-progress"])
    assert resumed["run_dir"] == str(sweep_dir) and len(list(sweep_dir.glob("*-*"))) == 2
    for name in ("specified", "dropout"):
        assert resumed["results"][name]["test_accuracy"] == \
            whole["results"][name]["test_accuracy"], name
    got, expected = (final_weights(r["results"]["dropout"]["run_dir"]) for r in (resumed, whole))
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    assert (sweep_dir / "variations.md").read_text().count("\n| ") == 3  # header and 2 rows


def test_an_interrupt_before_the_first_checkpoint_says_to_start_again(tmp_path, capsys,
                                                                     monkeypatch):
    """A KeyboardInterrupt inside the first step leaves no last.npz: the line says the run
    cannot be resumed (not a --resume that would fail)."""
    def train_step(run, x, y):
        raise KeyboardInterrupt  # inside the step: fit writes no checkpoint
    monkeypatch.setattr(tinygrad_edu.train._Run, "_train_step", train_step)
    with pytest.raises(SystemExit) as e:
        lines_specified.main(tiny_lines(tmp_path))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert e.value.code == 130 and not (run_dir / "last.npz").exists()
    assert capsys.readouterr().err == (
        f"interrupted before the run's first checkpoint, so {run_dir} cannot be resumed: start "
        f"python -m experiments.lines_specified again\n")
    assert json.loads((run_dir / "metrics.json").read_text())["summary"]["status"] == \
        "interrupted"


def test_variations_interrupted_before_a_variants_first_checkpoint_start_it_again(
        tmp_path, capsys, monkeypatch):
    """An interrupt inside the second variant's first step: the line says the continuing
    command starts that variant again, and it does."""
    original, calls = tinygrad_edu.train._Run._train_step, []

    def train_step(run, x, y):  # 8 steps an epoch, 2 epochs: call 17 is dropout's first
        calls.append(1)
        if len(calls) == 17:
            raise KeyboardInterrupt
        return original(run, x, y)
    with monkeypatch.context() as m:
        m.setattr(tinygrad_edu.train._Run, "_train_step", train_step)
        with pytest.raises(SystemExit) as e:
            lines_variations.main(tiny_lines(tmp_path, "--variants", "specified,dropout"))
    (sweep_dir,) = (tmp_path / "runs").iterdir()
    (variant_dir,) = sweep_dir.glob("dropout-*")
    assert e.value.code == 130 and capsys.readouterr().err == (
        f"interrupted before the first checkpoint of {variant_dir}: continue with python -m "
        f"experiments.lines_variations --resume {sweep_dir}, which starts that run again\n")
    resumed = lines_variations.main(["--resume", str(sweep_dir), "--no-progress"])
    assert list(resumed["results"]) == ["specified", "dropout"]
    assert len(list(sweep_dir.glob("specified-*"))) == 1
    assert resumed["results"]["dropout"]["run_dir"] != str(variant_dir)


def test_ctrl_c_before_the_run_exists_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the data loads: no run directory yet, so nothing to resume; one line, no
    traceback (with --debug the KeyboardInterrupt goes through)."""
    from experiments import lines_common

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(lines_common, "load_data", interrupted)
    with pytest.raises(SystemExit) as e:
        lines_specified.main(tiny_lines(tmp_path))
    assert e.value.code == 130
    assert "run the command again" in one_line_error(capsys)
    with pytest.raises(KeyboardInterrupt):
        lines_specified.main([*tiny_lines(tmp_path), "--debug"])
