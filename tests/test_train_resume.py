"""fit's resume after an interrupt that lands inside a step (a second Ctrl-C while the first is
pending, a KeyboardInterrupt raised in the forward or after the update) or inside a batch fetch:
resumed, the run ends with exactly the state of an uninterrupted one, batch norm's running
statistics and the optimizer's and scheduler's state included."""
import os
import signal

import pytest

import tinygrad_edu as tg
from tests.test_train import (
    InterruptedLoader,
    assert_same_weights,
    counting_loss,
    curves,
    loaders,
    weights,
)
from tinygrad_edu import nn
from tinygrad_edu.optim import Adam
from tinygrad_edu.optim.lr_scheduler import OneCycleLR
from tinygrad_edu.train import fit

EPOCHS, BATCHES = 3, 8  # tests.test_train's loaders: 256 samples, batches of 32


def make_bn_run(seed=0, dropout=0.2):
    """A model whose forward changes its state (batch norm's running statistics) and draws from
    the generator (dropout), Adam, and a per-batch schedule (OneCycleLR also moves Adam's beta1)."""
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(dropout),
                          nn.Linear(16, 2))
    optimizer = Adam(model.parameters(), lr=0.02)
    return model, optimizer, OneCycleLR(optimizer, max_lr=0.05, total_steps=EPOCHS * BATCHES)


def train(path, resume=False, loss_fn=None, interrupt_loader_at=None, loader_seed=None,
          optimizer_step=None, dropout=0.2):
    """Model, optimizer, scheduler and history of a 3-epoch fit with checkpoints at `path`;
    resumed runs start from other weights, so everything must come from the checkpoint."""
    model, optimizer, scheduler = make_bn_run(seed=42 if resume else 0, dropout=dropout)
    if optimizer_step is not None:
        optimizer.step = optimizer_step(optimizer.step)
    train_loader, val_loader = loaders(seed=loader_seed)
    if interrupt_loader_at is not None:
        train_loader = InterruptedLoader(train_loader, at=interrupt_loader_at)
    history = fit(model, optimizer, train_loader, val_loader, epochs=EPOCHS, scheduler=scheduler,
                  seed=None if resume else 1, loss_fn=loss_fn, checkpoint_path=path,
                  resume=resume, progress=False)
    return model, optimizer, scheduler, history


def raise_in_forward(at: int):
    """A KeyboardInterrupt from the loss at training step `at`: the forward has moved batch
    norm's statistics, no gradient has been taken."""
    def on_step(step, loss):
        if step == at:
            raise KeyboardInterrupt
    return {"loss_fn": counting_loss(on_step)}


def second_ctrl_c(at: int):
    """Two Ctrl-Cs during training step `at`: the first is deferred to the batch's end, the
    second interrupts at once, in the middle of the step."""
    def on_step(step, loss):
        if step == at:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
    return {"loss_fn": counting_loss(on_step)}


def raise_after_update(at: int):
    """A KeyboardInterrupt right after the optimizer's update of step `at`, before fit counts
    the step (the weights are ahead of the position)."""
    def wrap(step):
        calls = []

        def interrupted_step():
            step()
            calls.append(1)
            if len(calls) == at:
                raise KeyboardInterrupt
        return interrupted_step
    return {"optimizer_step": wrap}


@pytest.mark.parametrize("interrupt, at, loader_seed, dropout", [
    (raise_in_forward, BATCHES + 1, None, 0.2),  # epoch 2's first step, after its shuffle
    (raise_in_forward, BATCHES + 1, 7, 0.2),  # the same, the shuffle from DataLoader(seed=7)
    (raise_in_forward, BATCHES + 4, None, 0.2),
    (raise_in_forward, BATCHES + 4, None, 0.0),  # no dropout: only batch norm's buffers tell
    (second_ctrl_c, BATCHES + 4, None, 0.2),
    (raise_after_update, BATCHES + 4, None, 0.2),
])
def test_an_interrupt_inside_a_step_keeps_the_last_checkpoint_and_resume_is_exact(
        tmp_path, interrupt, at, loader_seed, dropout):
    expected = train(tmp_path / "whole.npz", loader_seed=loader_seed, dropout=dropout)
    path = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        train(path, loader_seed=loader_seed, dropout=dropout, **interrupt(at))
    saved = position(path)
    assert_same_run(train(path, resume=True, loader_seed=loader_seed, dropout=dropout),
                    expected)
    assert saved == (1, 0, BATCHES)  # epoch 1's checkpoint stayed


@pytest.mark.parametrize("loader_seed", [None, 7], ids=["global-rng", "loader-seed"])
def test_an_interrupt_fetching_an_epochs_first_batch_saves_the_state_before_its_shuffle(
        tmp_path, loader_seed):
    expected = train(tmp_path / "whole.npz", loader_seed=loader_seed)
    path = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        train(path, interrupt_loader_at=0, loader_seed=loader_seed)
    saved = position(path)
    assert_same_run(train(path, resume=True, loader_seed=loader_seed), expected)
    assert saved == (1, 0, BATCHES)


def position(path) -> tuple[int, int, int]:
    """(epochs done, batches of the next epoch done, steps) of the checkpoint at `path`."""
    saved = tg.load(path)
    return saved["epoch"], saved["batch"], saved["step"]


def assert_same_run(got, expected) -> None:
    """Every state_dict entry (buffers included), the optimizer's and the scheduler's state and
    the curves are exactly equal."""
    (model, optimizer, scheduler, history), (model_e, optimizer_e, scheduler_e, history_e) = (
        got, expected)
    assert_same_weights(weights(model), weights(model_e))
    state, state_e = optimizer.state_dict(), optimizer_e.state_dict()
    assert state["param_groups"] == state_e["param_groups"]
    assert state["state"].keys() == state_e["state"].keys()
    for i, entry in state_e["state"].items():
        assert_same_weights(state["state"][i], entry)
    assert scheduler.state_dict() == scheduler_e.state_dict()
    assert curves(history) == curves(history_e)
