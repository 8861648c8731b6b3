"""The PyTorch twin's training loop (experiments/torch_backend.fit) resumes like tg.train.fit:
interrupted after any step (a raised KeyboardInterrupt, Ctrl-C or SIGTERM), then resumed, it
ends with exactly the weights, optimizer state and history of an uninterrupted run."""
import json
import os
import signal

import numpy as np
import pytest

import models
import tinygrad_edu as tg
from experiments import mnist_mlp3, torch_backend
from experiments.run_record import read_checkpoint
from tinygrad_edu.data import DataLoader, TensorDataset
from tinygrad_edu.logging import Logger
from tinygrad_edu.train import ResumeError

from .helpers import mnist_available

torch = pytest.importorskip("torch")

EPOCHS, BATCHES = 3, 6  # 96 images of 12x12, batches of 16


def build(schedule: str, batch_size: int = 16):
    """A seeded twin (batch norm, dropout), Adam, a scheduler and shuffled loaders, built as an
    experiment builds them: the same every time."""
    tg.manual_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    model = models.to_torch(models.lines.SpecCNN(image_size=12, channels=(4,), kernel_size=3,
                                                 hidden=16, dropout=0.5))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.05, total_steps=EPOCHS * BATCHES)
                 if schedule == "onecycle" else torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5))
    train = DataLoader(TensorDataset(x, y), batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[:32], y[:32]), 32)
    return model, optimizer, scheduler, train, val


def train(tmp_path, name: str, schedule: str, loss_fn=None, resume=False, batch_size=16):
    model, optimizer, scheduler, train_loader, val_loader = build(schedule, batch_size)
    with Logger(logdir=str(tmp_path / name)) as logger:
        history = torch_backend.fit(model, optimizer, train_loader, val_loader, EPOCHS, logger,
                                    progress=False, loss_fn=loss_fn, scheduler=scheduler,
                                    checkpoint_path=str(tmp_path / "last.npz"), resume=resume)
    return model, optimizer, history


def interrupting(how: str, at_step: int):
    """Cross-entropy that interrupts training at step `at_step` (1-based): raises
    KeyboardInterrupt in the middle of the step (a second Ctrl-C: the forward has updated batch
    norm's statistics, so the last checkpoint is kept), or sends this process the signal (the
    loop finishes the step, saves, then raises)."""
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        if len(calls) == at_step:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}[how])
        return torch.nn.functional.cross_entropy(out, y)
    return loss_fn


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, value in a.items():
        np.testing.assert_array_equal(value, b[k], err_msg=k)


@pytest.mark.parametrize("how, at_step, schedule", [
    ("raise", 10, "onecycle"),  # inside a step of epoch 2: epoch 1's checkpoint stays
    ("sigint", 8, "step"),  # mid-epoch 2, after its second step
    ("sigterm", 15, "onecycle"),  # mid-epoch 3
])
def test_interrupted_and_resumed_ends_with_the_uninterrupted_weights(tmp_path, how, at_step,
                                                                     schedule):
    expected, expected_opt, expected_history = train(tmp_path / "a", "run", schedule)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "run", schedule, loss_fn=interrupting(how, at_step))
    saved = tg.load(str(tmp_path / "last.npz"))
    done = (at_step - 1) // BATCHES * BATCHES if how == "raise" else at_step
    assert (saved["step"], saved["epoch"], saved["batch"]) == (done, *divmod(done, BATCHES))
    ckpt = read_checkpoint(str(tmp_path / "last.npz"))  # the one payload: weights under "model"
    assert ckpt.state.keys() == expected.state_dict().keys()

    got, got_opt, history = train(tmp_path, "run", schedule, resume=True)
    assert_same_state(torch_backend.state_dict_numpy(got),
                      torch_backend.state_dict_numpy(expected))
    for k, v in expected_opt.state_dict()["state"].items():
        assert_same_state({n: t.numpy() for n, t in got_opt.state_dict()["state"][k].items()},
                          {n: t.numpy() for n, t in v.items()})
    assert history.keys() == expected_history.keys()
    for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert history[k] == expected_history[k], k


def test_the_check_can_fail_a_resume_that_forgets_torchs_generator(tmp_path, monkeypatch):
    """Negative control: without torch's generator state the dropout masks after the resume
    differ, and so do the weights."""
    expected = torch_backend.state_dict_numpy(train(tmp_path / "a", "run", "step")[0])
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "run", "step", loss_fn=interrupting("sigint", 8))
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    got = torch_backend.state_dict_numpy(train(tmp_path, "run", "step", resume=True)[0])
    assert any(not np.array_equal(got[k], expected[k]) for k in expected)


def test_resume_refuses_another_batch_size_and_a_checkpoint_of_the_other_loop(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "run", "step", loss_fn=interrupting("sigint", 8))
    with pytest.raises(ResumeError, match="6 batches per epoch, but train_loader has 3"):
        train(tmp_path, "run", "step", resume=True, batch_size=32)
    tg.save({"format": "tinygrad_edu.fit", "model": {}}, str(tmp_path / "last.npz"))
    with pytest.raises(ResumeError, match="not written by the PyTorch loop"):
        train(tmp_path, "run", "step", resume=True)
    os.remove(tmp_path / "last.npz")
    with pytest.raises(ResumeError, match="no checkpoint at"):
        train(tmp_path, "run", "step", resume=True)


@pytest.mark.skipif(not mnist_available(), reason="real MNIST not in the data cache")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_cli_resumes_a_torch_run_stopped_mid_epoch(tmp_path, capsys, monkeypatch, signum):
    args = ["--framework", "torch", "--subset", "256", "--batch-size", "32", "--epochs", "2",
            "--no-progress"]  # 8 batches an epoch
    whole = mnist_mlp3.main(args + ["--logdir", str(tmp_path / "a")])
    real_step = torch_backend._Loop._step

    def step(loop, x, y):
        if loop.step + 1 == 11:  # epoch 2, batch 3
            os.kill(os.getpid(), signum)
        return real_step(loop, x, y)
    with monkeypatch.context() as m:
        m.setattr(torch_backend._Loop, "_step", step)
        with pytest.raises(SystemExit) as e:
            mnist_mlp3.main(args + ["--logdir", str(tmp_path / "b")])
    (run_dir,) = (tmp_path / "b").iterdir()
    assert e.value.code == 130 and f"--resume {run_dir}" in capsys.readouterr().err
    assert (tg.load(str(run_dir / "last.npz"))["step"], tg.load(str(run_dir / "last.npz"))[
        "batch"]) == (11, 3)
    resumed = mnist_mlp3.main(["--resume", str(run_dir), "--no-progress"])
    weights = [tg.load(os.path.join(r["run_dir"], "checkpoint.npz"))["model"]
               for r in (whole, resumed)]
    assert_same_state({k: v.data for k, v in weights[0].items()},
                      {k: v.data for k, v in weights[1].items()})
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert [step for step, _ in saved["scalars"]["train/loss"]] == [1, 2]
    assert saved["summary"]["status"] == "finished"
