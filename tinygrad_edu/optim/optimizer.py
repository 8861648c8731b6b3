"""Optimizer: the base class every optimizer extends, with PyTorch's param_groups and state_dict.

A subclass says what state one parameter keeps (`_init_state`) and how one parameter moves
(`_update`); this class walks the groups, skips parameters without a gradient, and saves/loads.
Updates are written into `p.array` in place with NumPy, so a float32 model stays float32.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinygrad_edu.autograd import enable_grad
from tinygrad_edu.tensor import Tensor


class Optimizer:
    """Base class: holds `param_groups` (parameters with their hyperparameters) and `state`.

        opt = SGD([{"params": model.body.parameters()}, {"params": head, "lr": 1e-3}], lr=1e-2)
        loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{self._name}: params should be an iterable of Tensors or dicts, "
                            "got a single Tensor; pass [tensor] or model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list; "
                             "pass model.parameters() or a list of Tensors")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add parameters with their own hyperparameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}.add_param_group: expected a dict with a 'params' key, "
                            f"got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(f"{self._name}: parameters must be an ordered collection (a list), "
                            "not a set, so that state_dict indices are the same on every run")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name}: can only optimize Tensors, but one of the "
                                f"parameters is a {type(p).__name__}; wrap it as "
                                "Tensor(array, requires_grad=True)")
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError(f"{self._name}: some parameters appear in more than one "
                             "parameter group")
        group = {**self.defaults, **param_group, "params": params}
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set `p.grad` to None (default) or fill it with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.array.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns `closure()` if one is given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                state = self.state[p]
                if not state:
                    state.update(self._init_state(p, group))
            self._update_group(params, group)
        return loss

    def _update_group(self, params: list[Tensor], group: dict[str, Any]) -> None:
        """Move every parameter of `params` (one group's, each with a gradient and a state):
        `_update` one at a time, unless a subclass updates several at once."""
        for p in params:
            self._update(p, self.state[p], group)

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state one parameter starts with (step counter, moment buffers, ...)."""
        raise NotImplementedError

    def _update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Move `p.array` in place using `p.grad.array`, `state` and the group's hyperparameters."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """A snapshot in PyTorch's layout: parameters are replaced by their index, arrays copied.

        {'state': {0: {'step': 3, 'exp_avg': ndarray, ...}, ...},
         'param_groups': [{'lr': 0.01, ..., 'params': [0, 1]}, ...]}
        """
        index = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append({**group, "params": ids})
        state = {index[id(p)]: {k: _copy(v) for k, v in s.items()}
                 for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()` into an optimizer built over the same parameters, in order."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{self._name}.load_state_dict: the state dict has "
                             f"{len(saved_groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}; build the optimizer like the saved one")
        params = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{self._name}.load_state_dict: parameter group {i} has "
                                 f"{len(saved['params'])} parameters in the state dict and "
                                 f"{len(group['params'])} here; is it the same model?")
            params.update(zip(saved["params"], group["params"]))
        self.state = defaultdict(dict)
        for index, saved_state in state_dict["state"].items():
            p = params[index]
            self.state[p] = {k: _cast_like(v, p, k, self._name) for k, v in saved_state.items()}
        self.param_groups = [{**saved, "params": group["params"]}
                             for saved, group in zip(saved_groups, self.param_groups)]

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            options = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} parameters, {options}")
        return "\n".join(lines + [")"])


def _copy(value):
    """A copy of a state value, so a saved state dict does not change as training goes on."""
    return value.copy() if isinstance(value, np.ndarray) else value


def _cast_like(value, p: Tensor, key: str, name: str):
    """A copy of a loaded state array in the parameter's dtype, after checking its shape."""
    if not isinstance(value, np.ndarray):
        return value
    if value.shape != p.array.shape:
        raise ValueError(f"{name}.load_state_dict: state '{key}' has shape {value.shape} but its "
                         f"parameter has shape {p.array.shape}; is it the same model?")
    return value.astype(p.array.dtype, copy=True)


def grad_with_decay(p: Tensor, weight_decay: float, maximize: bool) -> np.ndarray:
    """The gradient to descend: `p.grad`, negated if maximizing, plus L2 `weight_decay * p`.

    Never writes into `p.grad.array`; returns it as is when there is nothing to fold in.
    """
    grad = p.grad.array
    if weight_decay == 0:
        return -grad if maximize else grad
    out = np.multiply(p.array, weight_decay)
    if maximize:
        out -= grad
    else:
        out += grad
    return out
