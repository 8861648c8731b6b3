"""Learning-rate schedules like torch.optim.lr_scheduler: they rewrite each group's 'lr' on step().

Call `scheduler.step()` after `optimizer.step()`, once per epoch (or per batch for OneCycleLR).
Each scheduler computes the next lr from the current one (torch's "recursive" form), so the
values match PyTorch to the last bit; the constructor already takes the first step (epoch 0).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

from tinygrad_edu.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: keeps `base_lrs` and `last_epoch`; subclasses say how `get_lr()` moves on.

        scheduler = StepLR(opt, step_size=30, gamma=0.1)
        for epoch in range(90): train(...); scheduler.step()
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a tinygrad_edu Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no 'initial_lr' "
                               f"but last_epoch={last_epoch}; to resume, load the optimizer's "
                               "state_dict first, or start with last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True  # the constructor's step sets up epoch 0 (torch's _initial_step)
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rates for epoch `last_epoch`, one per parameter group."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and write the new learning rates into the optimizer."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last `step()`, one per parameter group."""
        return self._last_lr

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    _derived: tuple[str, ...] = ()  # attributes the constructor rebuilds; not saved

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (which has its own state_dict) and derived attributes."""
        skip = ("optimizer", *self._derived)
        return {key: value for key, value in self.__dict__.items() if key not in skip}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`."""
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply the lr by `gamma` every `step_size` epochs.

        StepLR(opt, step_size=30, gamma=0.1)   # lr 0.1 for epochs 0-29, 0.01 for 30-59, ...
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class MultiStepLR(LRScheduler):
    """Multiply the lr by `gamma` at each epoch listed in `milestones`.

        MultiStepLR(opt, milestones=[30, 80], gamma=0.1)
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._current_lrs()]


class ExponentialLR(LRScheduler):
    """Multiply the lr by `gamma` every epoch.

        ExponentialLR(opt, gamma=0.95)
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from its initial value to `eta_min` along half a cosine over `T_max` epochs.

    lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2, computed from lr_{t-1}
    as torch does; past T_max it climbs back up (a full cosine period is 2 * T_max).

        CosineAnnealingLR(opt, T_max=100, eta_min=1e-5)
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:  # resumed with last_epoch >= 0: closed form
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:  # the bottom of the cosine: the ratio below is 0 / 0
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._current_lrs())]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current_lrs()]


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` when a metric has stopped improving for `patience` epochs.

    An epoch improves if metric < best * (1 - threshold) (mode='min', threshold_mode='rel'), or
    < best - threshold ('abs'); mode='max' flips the test. After a cut, wait `cooldown` epochs
    before counting again. The lr never goes below `min_lr`; cuts smaller than `eps` are skipped.

        scheduler = ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
        for epoch in range(50): train(...); scheduler.step(val_loss)
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | list[float] = 0.0, eps: float = 1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: expected a tinygrad_edu Optimizer, "
                            f"got {type(optimizer).__name__}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max' and threshold_mode "
                             f"'rel' or 'abs', got mode={mode!r}, "
                             f"threshold_mode={threshold_mode!r}")
        n_groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n_groups:
                raise ValueError(f"ReduceLROnPlateau: expected {n_groups} min_lrs (one per "
                                 f"parameter group), got {len(min_lr)}")
            self.min_lrs = list(min_lr)
        else:
            self.min_lrs = [min_lr] * n_groups
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = self._current_lrs()

    def step(self, metrics: float) -> None:  # type: ignore[override]
        """Record this epoch's metric (e.g. validation loss) and cut the lr if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self) -> None:
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def _is_better(self, current: float) -> bool:
        best, threshold = self.best, self.threshold
        if self.mode == "min":
            return current < (best * (1 - threshold) if self.threshold_mode == "rel"
                              else best - threshold)
        return current > (best * (1 + threshold) if self.threshold_mode == "rel"
                          else best + threshold)


class _Phase(NamedTuple):
    """One stretch of OneCycleLR: anneal from the start_* to the end_* group values by end_step."""
    end_step: float
    start_lr: str
    end_lr: str
    start_momentum: str
    end_momentum: str


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith, 2018): warm the lr up to `max_lr`, then anneal it far below.

    Per batch: lr goes from max_lr / div_factor up to max_lr over the first `pct_start` of
    `total_steps`, then down to max_lr / (div_factor * final_div_factor); momentum (SGD's
    momentum, or Adam's beta1) moves the opposite way between max_momentum and base_momentum.
    three_phase=True comes back down to the initial lr symmetrically before the final anneal.

        scheduler = OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=len(loader))
        for x, y in loader: ...; opt.step(); scheduler.step()
    """

    _derived = ("_phases",)  # namedtuples, rebuilt by the constructor from total_steps etc.

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85,
                 max_momentum: float | list[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: expected a tinygrad_edu Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be between 0 and 1, got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self._phases = _one_cycle_phases(self.total_steps, pct_start, three_phase)

        groups = optimizer.param_groups
        if last_epoch == -1:
            for group, group_max_lr in zip(groups, _per_group("max_lr", max_lr, groups)):
                group["initial_lr"] = group_max_lr / div_factor
                group["max_lr"] = group_max_lr
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"OneCycleLR: cycle_momentum=True needs an optimizer with "
                                 f"momentum or betas, {type(optimizer).__name__} has neither; "
                                 "pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            if last_epoch == -1:
                max_momenta = _per_group("max_momentum", max_momentum, groups)
                base_momenta = _per_group("base_momentum", base_momentum, groups)
                for group, group_max, group_base in zip(groups, max_momenta, base_momenta):
                    self._set_momentum(group, group_max)
                    group["max_momentum"] = group_max
                    group["base_momentum"] = group_base
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times, but total_steps is "
                             f"{self.total_steps}; the schedule is over")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._phases):
                if step <= phase.end_step or i == len(self._phases) - 1:
                    pct = (step - start_step) / (phase.end_step - start_step)
                    lrs.append(self._anneal(group[phase.start_lr], group[phase.end_lr], pct))
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase.start_momentum],
                                                group[phase.end_momentum], pct)
                        self._set_momentum(group, momentum)
                    break
                start_step = phase.end_step
        return lrs


def _total_steps(total_steps: int | None, epochs: int | None,
                 steps_per_epoch: int | None) -> int:
    """OneCycleLR's length: total_steps, or epochs * steps_per_epoch."""
    if total_steps is not None:
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: total_steps must be a positive int, got {total_steps}")
        return total_steps
    if epochs is None or steps_per_epoch is None:
        raise ValueError("OneCycleLR: give either total_steps, or both epochs and steps_per_epoch")
    if min(epochs, steps_per_epoch) <= 0:
        raise ValueError(f"OneCycleLR: epochs and steps_per_epoch must be positive, "
                         f"got {epochs} and {steps_per_epoch}")
    return epochs * steps_per_epoch


def _one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool) -> list[_Phase]:
    """The phases of OneCycleLR, as torch defines them (end steps are inclusive step indices)."""
    warmup_end = float(pct_start * total_steps) - 1
    if three_phase:
        return [_Phase(warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _Phase(float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr",
                       "base_momentum", "max_momentum"),
                _Phase(total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
    return [_Phase(warmup_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            _Phase(total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]


def _per_group(name: str, value: float | list[float], groups: list[dict]) -> list[float]:
    """One value per parameter group: a list is checked for length, a number is repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(f"OneCycleLR: expected {len(groups)} values for {name} (one per "
                             f"parameter group), got {len(value)}")
        return list(value)
    return [value] * len(groups)
