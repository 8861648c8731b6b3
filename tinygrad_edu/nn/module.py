"""Module and Parameter: the containers every layer and model is built from, like torch.nn."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator

import numpy as np

from ..device import dtype_of_to
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (requires_grad=True by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data.array if isinstance(data, Tensor) else data, dtype=dtype,
                         requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """Returned by `register_forward_hook`; `remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


class Module:
    """Base class of layers and models: holds Parameters, buffers and sub-Modules as attributes.

        class Net(nn.Module):
            def __init__(self): super().__init__(); self.fc = nn.Linear(784, 10)
            def forward(self, x): return self.fc(x)
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffer_names", [])
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_forward_pre_hooks", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward method")

    def __call__(self, *args, **kwargs):
        for hook in tuple(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def __setattr__(self, name, value):
        if "_forward_hooks" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes such as {name!r}")
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------ hooks
    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call `hook(module, inputs, output)` after every forward; a non-None return replaces
        the output. Visualisation uses this to capture a layer's activations by name."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------ registration
    def register_buffer(self, name: str, value: Tensor | None) -> None:
        """A non-learnable tensor saved in the state_dict (e.g. BatchNorm's running mean)."""
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        object.__setattr__(self, name, value)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        object.__setattr__(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        object.__setattr__(self, name, module)

    # ------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in self.__dict__.items():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every sub-module, depth first, with dotted names ('' for self)."""
        stack, seen = [(prefix, self)], set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            kids = [(f"{name}.{n}" if name else n, m) for n, m in module.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, module in modules:
            for name, value in module.__dict__.items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mname}.{name}" if mname else name), value

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = ""):
        for mname, module in self.named_modules(prefix):
            for name in module._buffer_names:
                value = module.__dict__[name]
                if value is not None:
                    yield (f"{mname}.{name}" if mname else name), value

    def buffers(self) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers())

    def get_submodule(self, target: str) -> Module:
        """The sub-module at a dotted path such as 'features.0'; the error lists valid names."""
        if target == "":
            return self
        modules = dict(self.named_modules())
        if target not in modules:
            names = ", ".join(n for n in modules if n)
            raise KeyError(f"{type(self).__name__} has no layer named {target!r}; "
                           f"valid names: {names}")
        return modules[target]

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many scalars the parameters hold (the 'parameter count' of a model summary)."""
        return sum(p.array.size for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------ modes and maintenance
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.array[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn: Callable[[Module], None]) -> Module:
        for m in list(self.modules())[::-1]:
            fn(m)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False) -> Module:
        """Cast floating parameters and buffers to a dtype (e.g. float64 for gradient checks);
        like torch's, it also takes a device or a tensor, and only the CPU exists."""
        dtype = dtype_of_to(args, dtype, device)
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        for t in list(self.parameters()) + list(self.buffers()):
            if t.array.dtype.kind == "f":
                t.array = t.array.astype(dtype)
        return self

    def cpu(self) -> Module:
        """Everything already is on the CPU, the only device there is."""
        return self

    def cuda(self, device=None) -> Module:
        raise RuntimeError("tinygrad_edu runs on the CPU; drop the .cuda()")

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and buffers by dotted name; the tensors share memory with the module."""
        state = OrderedDict((n, p.detach()) for n, p in self.named_parameters())
        state.update((n, b.detach()) for n, b in self.named_buffers())
        return state

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values in place; with `strict`, missing, unexpected or mis-shaped keys raise
        one error that names every one of them."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        wrong = []
        for name, target in own.items():
            if name in state_dict:
                value = np.asarray(getattr(state_dict[name], "data", state_dict[name]))
                if value.shape != target.shape:
                    wrong.append(f"{name}: checkpoint {value.shape}, model {target.shape}")
        problems = []
        if wrong:
            problems.append("wrong shape: " + "; ".join(wrong))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"Error loading state_dict into {type(self).__name__}: "
                               + " | ".join(problems)
                               + ". Is the checkpoint from another architecture?")
        for name, target in own.items():
            if name in state_dict:
                value = np.asarray(getattr(state_dict[name], "data", state_dict[name]))
                target.array[...] = value
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = list(self.named_children())
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, m in kids:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after the other; indexable, iterable, like `nn.Sequential`."""

    def __init__(self, *modules: Module):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = modules[0].items()
        else:
            items = ((str(i), m) for i, m in enumerate(modules))
        for name, m in items:
            self.add_module(name, m)

    def forward(self, x):
        for m in self.__dict__.values():
            if isinstance(m, Module):
                x = m(x)
        return x

    def _list(self) -> list:
        return list(self.children())

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*self._list()[i])
        return self._list()[i]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self):
        return iter(self._list())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of sub-modules, registered so their parameters are found."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i):
        return list(self.children())[i]

    def __len__(self) -> int:
        return sum(1 for _ in self.children())

    def __iter__(self):
        return self.children()


class ModuleDict(Module):
    """A dict of sub-modules (e.g. the heads of a multi-output network)."""

    def __init__(self, modules: dict | None = None):
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, key: str) -> Module:
        return self.__dict__[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __len__(self) -> int:
        return sum(1 for _ in self.children())

    def __iter__(self):
        return (n for n, _ in self.named_children())

    def keys(self):
        return [n for n, _ in self.named_children()]

    def items(self):
        return list(self.named_children())

    def values(self):
        return list(self.children())
