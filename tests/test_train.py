"""fit / evaluate / predict on small synthetic data: learning, exact resume, NaN stop, Ctrl-C."""
import math
import os
import signal

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.data import DataLoader, TensorDataset
from tinygrad_edu.logging import Logger, read_events
from tinygrad_edu.nn import functional as F
from tinygrad_edu.nn.utils import clip_grad_norm_
from tinygrad_edu.optim import SGD, Adam
from tinygrad_edu.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau
from tinygrad_edu.train import TrainingDiverged, evaluate, fit, predict

N, BATCH = 256, 32  # 8 batches per epoch


def blobs(n=N, seed=0):
    """Two Gaussian classes in 4-D, separable: class = sign of the sum of the coordinates."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    return x, y


def loaders(shuffle=True, seed=None):
    x, y = blobs()
    xv, yv = blobs(128, seed=1)
    return (DataLoader(TensorDataset(x, y), BATCH, shuffle=shuffle, seed=seed),
            DataLoader(TensorDataset(xv, yv), 64))


def make_run(seed=0, lr=0.02):
    """A model with dropout (so the random generator matters), Adam and a cosine schedule
    (whose next lr depends on the scheduler's state, not only on the optimizer's lr)."""
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    optimizer = Adam(model.parameters(), lr=lr)
    return model, optimizer, CosineAnnealingLR(optimizer, T_max=4)


def weights(model):
    return {k: v.array.copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def curves(history):
    """The history without the timings, which differ from run to run."""
    d = history.as_dict()
    return {k: v for k, v in d.items() if k not in ("epoch_time", "ms_per_iter")}


def counting_loss(on_train_step):
    """cross_entropy that calls on_train_step(step, loss) at each training step (1-based)."""
    calls = []

    def loss_fn(out, y):
        loss = F.cross_entropy(out, y)
        if tg.is_grad_enabled():  # training, not evaluation under no_grad
            calls.append(float(loss.array))
            loss = on_train_step(len(calls), loss) or loss
        return loss
    loss_fn.calls = calls
    return loss_fn


def reference_run(epochs=3, loader_seed=None):
    model, optimizer, scheduler = make_run()
    train, val = loaders(seed=loader_seed)
    history = fit(model, optimizer, train, val, epochs=epochs, scheduler=scheduler, seed=1,
                  progress=False)
    return weights(model), history


def test_fit_learns_a_separable_problem():
    model, optimizer, _ = make_run(lr=0.05)
    train, val = loaders()
    history = fit(model, optimizer, train, val, epochs=4, progress=False)
    assert history.val_acc[-1] >= 0.95 and history.train_acc[-1] >= 0.9
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.val_loss) == len(history.epoch_time) == len(history.ms_per_iter) == 4
    assert history.best_loss == min(history.val_loss)
    assert history.val_loss[history.best_epoch - 1] == history.best_loss
    loss, acc, logits, targets = evaluate(model, val)
    assert logits.shape == (128, 2) and targets.shape == (128,)
    assert (loss, acc) == (history.val_loss[-1], history.val_acc[-1])
    assert model.training  # evaluate restores the mode
    np.testing.assert_array_equal(predict(model, blobs(128, seed=1)[0], batch_size=50), logits)
    np.testing.assert_array_equal(predict(model, val), logits)


def test_resume_after_an_epoch_gives_exactly_the_uninterrupted_weights(tmp_path):
    expected, expected_history = reference_run(epochs=3)
    path = tmp_path / "ckpt.npz"
    model, optimizer, scheduler = make_run()
    train, val = loaders()
    fit(model, optimizer, train, val, epochs=2, scheduler=scheduler, seed=1,
        checkpoint_path=path, progress=False)
    model, optimizer, scheduler = make_run(seed=42)  # other initial weights: all must be loaded
    train, val = loaders()
    history = fit(model, optimizer, train, val, epochs=3, scheduler=scheduler,
                  checkpoint_path=path, resume=True, progress=False)
    assert_same_weights(weights(model), expected)
    assert curves(history) == curves(expected_history)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * (1 + math.cos(math.pi * 3 / 4)))


@pytest.mark.parametrize("loader_seed", [None, 7], ids=["global-rng", "loader-seed"])
def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(tmp_path, loader_seed):
    """Also with DataLoader(seed=...), whose private generator the checkpoint must hold."""
    expected, expected_history = reference_run(epochs=3, loader_seed=loader_seed)
    path = tmp_path / "ckpt.npz"
    model, optimizer, scheduler = make_run()
    train, val = loaders(seed=loader_seed)

    def press_ctrl_c(step, loss):
        if step == 12:  # epoch 2, batch 4: the batch finishes, then fit stops
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fit(model, optimizer, train, val, epochs=3, scheduler=scheduler, seed=1,
            loss_fn=counting_loss(press_ctrl_c), checkpoint_path=path, progress=False)
    saved = tg.load(path)
    assert (saved["epoch"], saved["batch"], saved["step"]) == (1, 4, 12)
    assert_same_weights({k: v.array for k, v in saved["model"].items()}, weights(model))

    model, optimizer, scheduler = make_run(seed=42)
    train, val = loaders(seed=loader_seed)
    history = fit(model, optimizer, train, val, epochs=3, scheduler=scheduler,
                  checkpoint_path=path, resume=True, progress=False)
    assert_same_weights(weights(model), expected)
    assert curves(history) == curves(expected_history)


class InterruptedLoader:
    """A loader whose iteration raises KeyboardInterrupt before batch `at` of epoch 2 (after
    the inner loader drew the epoch's shuffle)."""

    def __init__(self, loader, at):
        self.loader, self.at, self.epochs = loader, at, 0

    def __len__(self):
        return len(self.loader)

    def state_dict(self) -> dict:  # DataLoader(seed=...)'s private generator, for fit to save
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)

    def __iter__(self):
        self.epochs += 1
        for i, batch in enumerate(self.loader):
            if self.epochs == 2 and i == self.at:
                raise KeyboardInterrupt
            yield batch


def test_keyboard_interrupt_saves_checkpoint_and_flushes_logs(tmp_path):
    model, optimizer, _ = make_run()
    train, val = loaders()
    logdir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(model, optimizer, InterruptedLoader(train, at=3), val, epochs=3, logdir=str(logdir),
            log_every=1, progress=False)
    saved = tg.load(logdir / "checkpoint.npz")
    assert (saved["epoch"], saved["batch"]) == (1, 3)
    assert_same_weights({k: v.array for k, v in saved["model"].items()}, weights(model))
    steps = [s for s, _ in read_events(str(logdir)).scalars["train/loss_iter"]]
    assert steps == list(range(1, 12))  # 8 steps of epoch 1 and 3 of epoch 2


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    model, optimizer, _ = make_run()
    train, val = loaders()
    path = tmp_path / "ckpt.npz"

    def poison(step, loss):
        if step == 11:  # epoch 2, batch 3
            return loss * float("nan")

    loss_fn = counting_loss(poison)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, optimizer, train, val, epochs=3, loss_fn=loss_fn, checkpoint_path=path,
            progress=False)
    message = str(info.value)
    assert "loss is nan at epoch 2, step 11" in message
    assert f"last finite loss was {loss_fn.calls[9]:.6g} at step 10" in message
    assert f"{path} (1 of 3 epochs done)" in message
    saved = tg.load(path)
    assert (saved["epoch"], saved["batch"]) == (1, 0)
    for name, value in saved["model"].items():
        assert np.isfinite(value.array).all(), name
    assert all(np.isfinite(p.array).all() for p in model.parameters())  # no NaN step was taken


def test_nan_weights_are_caught_before_the_checkpoint(tmp_path):
    model, optimizer, _ = make_run()
    train, val = loaders()
    path = tmp_path / "ckpt.npz"

    def break_weights(step, loss):
        if step == 8:  # last batch of epoch 1: the loss is fine, the weights are not
            model[0].weight.array[0, 0] = np.inf

    with pytest.raises(TrainingDiverged, match="parameter 0.weight is not finite after epoch 1"):
        fit(model, optimizer, train, val, epochs=2, loss_fn=counting_loss(break_weights),
            checkpoint_path=path, progress=False)
    assert not path.exists()


def test_logger_event_file_holds_train_and_val_curves(tmp_path):
    model, optimizer, _ = make_run()
    train, val = loaders()
    with Logger(logdir=str(tmp_path / "run")) as logger:
        history = fit(model, optimizer, train, val, epochs=2, logdir=logger, log_every=4,
                      metrics_fn=lambda logits, y: {"error": 1 - np.mean(logits.argmax(1) == y)},
                      progress=False)
    events = read_events(str(tmp_path / "run"))
    for tag, values in (("train/loss", history.train_loss), ("train/accuracy", history.train_acc),
                        ("val/loss", history.val_loss), ("val/accuracy", history.val_acc)):
        assert [s for s, _ in events.scalars[tag]] == [1, 2], tag
        np.testing.assert_allclose([v for _, v in events.scalars[tag]], values, rtol=1e-6)
    errors = [v for _, v in events.scalars["val/error"]]
    np.testing.assert_allclose(errors, 1 - np.array(history.val_acc), rtol=1e-6)
    assert [s for s, _ in events.scalars["train/loss_iter"]] == [4, 8, 12, 16]
    assert len(events.scalars["time/epoch_seconds"]) == 2
    assert len(events.histograms["weights/0.weight"]) == 2
    assert len(events.histograms["grads/3.weight"]) == 2
    assert (tmp_path / "run" / "checkpoint.npz").exists()


def test_reduce_on_plateau_gets_the_validation_loss():
    model, optimizer, _ = make_run()
    scheduler = ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    train, val = loaders()
    history = fit(model, optimizer, train, val, epochs=3, scheduler=scheduler, progress=False)
    assert scheduler.best == min(history.val_loss)
    assert scheduler.last_epoch == 3


class CountingScheduler:
    """A custom per-batch scheduler: fit should step it once per batch."""
    step_per_batch = True

    def __init__(self):
        self.steps = 0

    def step(self):
        self.steps += 1


def test_per_batch_schedulers_step_every_batch():
    model, optimizer, _ = make_run()
    train, val = loaders()
    counter = CountingScheduler()
    fit(model, optimizer, train, val, epochs=2, scheduler=counter, progress=False)
    assert counter.steps == 16
    model = nn.Linear(4, 2)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    one_cycle = OneCycleLR(optimizer, max_lr=0.1, epochs=2, steps_per_epoch=len(train))
    fit(model, optimizer, train, None, epochs=2, scheduler=one_cycle, progress=False)
    assert one_cycle.last_epoch == 16


def test_on_epoch_end_sees_each_epoch_after_its_checkpoint_and_can_stop_the_run(tmp_path):
    """What a hyper-parameter sweep needs: report every epoch, stop early, resume exactly."""
    expected, expected_history = reference_run(epochs=3)
    path = tmp_path / "ckpt.npz"
    seen = []

    def report(history):
        seen.append((len(history.val_loss), tg.load(path)["epoch"]))
        if len(seen) == 2:
            raise RuntimeError("stop after 2 epochs")

    model, optimizer, scheduler = make_run()
    train, val = loaders()
    with pytest.raises(RuntimeError, match="stop after 2"):
        fit(model, optimizer, train, val, epochs=3, scheduler=scheduler, seed=1,
            checkpoint_path=path, progress=False, on_epoch_end=report)
    assert seen == [(1, 1), (2, 2)]  # the checkpoint of the epoch is on disk when it is reported
    model, optimizer, scheduler = make_run()
    train, val = loaders()
    history = fit(model, optimizer, train, val, epochs=3, scheduler=scheduler,
                  checkpoint_path=path, resume=True, progress=False)
    assert_same_weights(weights(model), expected)
    assert curves(history) == curves(expected_history)


def test_resume_refuses_a_file_that_fit_did_not_write(tmp_path):
    model, optimizer, _ = make_run()
    train, _ = loaders()
    tg.save({"model": model.state_dict()}, tmp_path / "weights.npz")
    with pytest.raises(ValueError, match="weights.npz was not written by fit"):
        fit(model, optimizer, train, resume=str(tmp_path / "weights.npz"), progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*missing.npz"):
        fit(model, optimizer, train, checkpoint_path=str(tmp_path / "missing.npz"), resume=True,
            progress=False)


def interrupted_run(path, step: int, signum=signal.SIGINT):
    """(model, optimizer) of a 2-epoch fit that `signum` stopped during training step `step`,
    its checkpoint at `path`."""
    model, optimizer, _ = make_run()
    train, _ = loaders()

    def send(at, loss):
        if at == step:
            os.kill(os.getpid(), signum)
    with pytest.raises(KeyboardInterrupt):
        fit(model, optimizer, train, epochs=2, loss_fn=counting_loss(send),
            checkpoint_path=path, progress=False)
    return model, optimizer


def test_resume_with_another_batch_size_is_refused_not_a_stop_iteration(tmp_path):
    model, optimizer = interrupted_run(tmp_path / "ckpt.npz", step=6)
    x, y = blobs()
    bigger = DataLoader(TensorDataset(x, y), BATCH * 4, shuffle=True)
    with pytest.raises(ValueError, match=r"written with \d+ batches per epoch, but train_loader "
                                         r"has \d+; resume with the original batch size"):
        fit(model, optimizer, bigger, epochs=2, checkpoint_path=tmp_path / "ckpt.npz",
            resume=True, progress=False)


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's if a sweep test ran first
    interrupted_run(tmp_path / "ckpt.npz", step=3, signum=signal.SIGTERM)
    assert tg.load(tmp_path / "ckpt.npz")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back


def test_clip_grad_norm_scales_all_gradients_together():
    a, b = tg.Tensor(np.zeros(2), requires_grad=True), tg.Tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = tg.Tensor(np.array([3.0, 0.0])), tg.Tensor(np.array([4.0]))
    assert clip_grad_norm_([a, b], max_norm=1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad.array, b.grad.array]), [0.6, 0, 0.8],
                               rtol=1e-5)
    assert clip_grad_norm_([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    assert math.isclose(float(np.linalg.norm(a.grad.array)), 0.6, rel_tol=1e-5)
