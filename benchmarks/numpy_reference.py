"""Plain-NumPy reference networks for the iteration-time benchmark: im2col convolutions, argmax
pooling and hand-written backward passes, with no autograd and no compiled kernels.

    ref = from_model(tinygrad_model)        # same layers and a copy of the same weights
    loss = ref.train_step(x, y, lr=0.01, momentum=0.9)

`from_model` walks a tinygrad_edu model and translates each layer it knows (Linear, Conv2d,
ReLU, MaxPool2d, BatchNorm, AdaptiveAvgPool2d(1), Flatten, Dropout, Identity, Sequential and
ResNet's BasicBlock); the weights are copied, so the first loss equals the framework's. This is
the baseline a student would write after CS231n: every op is vectorised NumPy, nothing more.
"""
from __future__ import annotations

import numpy as np

from benchmarks.kernels import numpy_col2im, numpy_im2col


class Layer:
    """forward(x) -> y keeps what backward needs; backward(g) -> gradient of the input."""

    def params(self) -> list:
        """[value, gradient] pairs; the gradient slot is filled by backward."""
        return []

    def forward(self, x):
        raise NotImplementedError

    def backward(self, g):
        raise NotImplementedError


class Linear(Layer):
    def __init__(self, w, b):
        self.w, self.b = [w, None], [b, None] if b is not None else None

    def params(self):
        return [self.w] + ([self.b] if self.b else [])

    def forward(self, x):
        self.x = x
        y = x @ self.w[0].T  # (N, in) @ (in, out) -> (N, out)
        return y + self.b[0] if self.b else y

    def backward(self, g):
        self.w[1] = g.T @ self.x  # (out, N) @ (N, in)
        if self.b:
            self.b[1] = g.sum(axis=0)
        return g @ self.w[0]  # (N, out) @ (out, in)


class Conv2d(Layer):
    """Square kernel, one stride and one padding; im2col rows are output pixels."""

    def __init__(self, w, b, stride: int, padding: int, input_grad: bool):
        self.w, self.b = [w, None], [b, None] if b is not None else None
        self.stride, self.padding, self.input_grad = stride, padding, input_grad

    def params(self):
        return [self.w] + ([self.b] if self.b else [])

    def forward(self, x):
        OC, k = self.w[0].shape[0], self.w[0].shape[2]
        self.shape = x.shape
        self.col, self.out_hw = numpy_im2col(x, k, self.stride, self.padding)  # (N*L, C*k*k)
        y = self.col @ self.w[0].reshape(OC, -1).T  # (N*L, OC)
        if self.b:
            y += self.b[0]
        return y.reshape(x.shape[0], *self.out_hw, OC).transpose(0, 3, 1, 2)  # (N, OC, OH, OW)

    def backward(self, g):
        w = self.w[0]
        OC, k = w.shape[0], w.shape[2]
        g2 = g.transpose(0, 2, 3, 1).reshape(-1, OC)  # (N*L, OC)
        self.w[1] = (g2.T @ self.col).reshape(w.shape)
        if self.b:
            self.b[1] = g2.sum(axis=0)
        if not self.input_grad:
            return None
        gcol = g2 @ w.reshape(OC, -1)  # (N*L, C*k*k)
        return numpy_col2im(gcol, self.shape, k, self.stride, self.padding, self.out_hw)


class ReLU(Layer):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, g):
        return g * self.mask


class MaxPool2d(Layer):
    """Square window; padding reads as -inf; the argmax of each window takes the gradient."""

    def __init__(self, k: int, stride: int, padding: int):
        self.k, self.stride, self.padding = k, stride, padding

    def forward(self, x):
        N, C, H, W = x.shape
        p = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
        col, self.out_hw = numpy_im2col(xp.reshape(N * C, 1, H + 2 * p, W + 2 * p),
                                        self.k, self.stride, 0)  # (N*C*L, k*k)
        self.arg, self.shape, self.col_shape = col.argmax(axis=1), x.shape, col.shape
        return col[np.arange(col.shape[0]), self.arg].reshape(N, C, *self.out_hw)

    def backward(self, g):
        N, C, H, W = self.shape
        p = self.padding
        gcol = np.zeros(self.col_shape, g.dtype)
        gcol[np.arange(gcol.shape[0]), self.arg] = g.reshape(-1)
        gx = numpy_col2im(gcol, (N * C, 1, H + 2 * p, W + 2 * p), self.k, self.stride, 0,
                          self.out_hw)
        return gx.reshape(N, C, H + 2 * p, W + 2 * p)[:, :, p:p + H, p:p + W]


class BatchNorm(Layer):
    """Training-mode batch normalisation over every axis but 1 (running statistics ignored)."""

    def __init__(self, w, b, eps: float):
        self.w, self.b, self.eps = [w, None], [b, None], eps

    def params(self):
        return [self.w, self.b]

    def forward(self, x):
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.bshape = (1, -1) + (1,) * (x.ndim - 2)
        mean, var = x.mean(axis=self.axes, keepdims=True), x.var(axis=self.axes, keepdims=True)
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        return self.x_hat * self.w[0].reshape(self.bshape) + self.b[0].reshape(self.bshape)

    def backward(self, g):
        self.b[1] = g.sum(axis=self.axes)
        self.w[1] = (g * self.x_hat).sum(axis=self.axes)
        m = g.size // g.shape[1]
        g_hat = g * self.w[0].reshape(self.bshape)
        return self.inv_std / m * (m * g_hat - g_hat.sum(axis=self.axes, keepdims=True)
                                   - self.x_hat * (g_hat * self.x_hat).sum(axis=self.axes,
                                                                            keepdims=True))


class GlobalAvgPool(Layer):
    def forward(self, x):
        self.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, g):
        H, W = self.shape[2:]
        return np.broadcast_to(g / (H * W), self.shape)


class Flatten(Layer):
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, g):
        return g.reshape(self.shape)


class Identity(Layer):
    def forward(self, x):
        return x

    def backward(self, g):
        return g


class Sequential(Layer):
    def __init__(self, layers: list):
        self.layers = layers

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g


class Residual(Layer):
    """relu(main(x) + shortcut(x)): ResNet's basic block."""

    def __init__(self, main: Sequential, shortcut: Layer):
        self.main, self.shortcut, self.relu = main, shortcut, ReLU()

    def params(self):
        return self.main.params() + self.shortcut.params()

    def forward(self, x):
        return self.relu.forward(self.main.forward(x) + self.shortcut.forward(x))

    def backward(self, g):
        g = self.relu.backward(g)
        return self.main.backward(g) + self.shortcut.backward(g)


class Network:
    """A layer stack trained with softmax cross-entropy and SGD with momentum (torch's rule)."""

    def __init__(self, body: Layer):
        self.body = body
        self.velocity: dict[int, np.ndarray] = {}

    def train_step(self, x, y, lr: float, momentum: float) -> float:
        """Forward, backward and one SGD update on a batch; returns the mean loss."""
        logits = self.body.forward(x)  # (N, classes)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = -np.log(p[rows, y]).mean()
        p[rows, y] -= 1
        self.body.backward(p / len(y))
        for i, pair in enumerate(self.body.params()):
            v = self.velocity.get(i)
            v = pair[1] if v is None else momentum * v + pair[1]
            self.velocity[i] = v
            pair[0] -= lr * v
        return float(loss)


class MultiHeadNetwork(Network):
    """A shared body and named Linear heads (models.lines.MultiHeadNet): a one-unit head is a
    sigmoid unit trained with binary cross-entropy, a wider head a softmax with cross-entropy;
    the loss is their sum. Targets y (N, heads) are attribute indices."""

    def __init__(self, body: Layer, heads: dict):
        super().__init__(body)
        self.heads = heads

    def train_step(self, x, y, lr: float, momentum: float) -> float:
        z = self.body.forward(x)  # (N, hidden)
        loss, gz = 0.0, np.zeros_like(z)
        for k, head in enumerate(self.heads.values()):
            out = head.forward(z)  # (N, units)
            if out.shape[1] == 1:
                t = (y[:, k:k + 1] == 1).astype(out.dtype)
                loss += float(np.mean(np.maximum(out, 0) - out * t + np.log1p(np.exp(-abs(out)))))
                g = (1 / (1 + np.exp(-out)) - t) / len(y)
            else:
                e = np.exp(out - out.max(axis=1, keepdims=True))
                p = e / e.sum(axis=1, keepdims=True)
                rows = np.arange(len(y))
                loss += float(-np.log(p[rows, y[:, k]]).mean())
                p[rows, y[:, k]] -= 1
                g = p / len(y)
            gz += head.backward(g)
        self.body.backward(gz)
        params = self.body.params() + [q for h in self.heads.values() for q in h.params()]
        for i, pair in enumerate(params):
            v = self.velocity.get(i)
            v = pair[1] if v is None else momentum * v + pair[1]
            self.velocity[i] = v
            pair[0] -= lr * v
        return loss


# ---------------------------------------------------------------- translation of a model
def from_model(model) -> Network:
    """A Network with the layers and a copy of the weights of a tinygrad_edu model whose forward
    is its children in order (every models/ network is `features` then `classifier`), or of a
    multi-head network (`features` then a ModuleDict `heads`)."""
    first = [True]  # the first conv or linear layer needs no input gradient
    if hasattr(model, "heads"):
        body = _translate(model.features, first)
        return MultiHeadNetwork(body, {name: _translate(m, first)
                                       for name, m in model.heads.items()})
    return Network(Sequential([_translate(m, first) for m in model.children()]))


def _array(param):
    return None if param is None else param.array.copy()


def _single(value, what: str) -> int:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if pair[0] != pair[1]:
        raise ValueError(f"numpy_reference: only square {what} is supported, got {value}")
    return pair[0]


def _translate(m, first: list) -> Layer:
    """One tinygrad_edu module -> the equivalent reference layer."""
    kind = type(m).__name__
    if kind == "Sequential":
        return Sequential([_translate(c, first) for c in m.children()])
    if kind == "BasicBlock":
        main = Sequential([_translate(getattr(m, n), first)
                           for n in ("conv1", "bn1", "relu1", "conv2", "bn2")])
        return Residual(main, _translate(m.shortcut, first))
    if kind == "Linear":
        first[0] = False
        return Linear(_array(m.weight), _array(m.bias))
    if kind == "Conv2d":
        if m.groups != 1 or m.dilation != (1, 1) or isinstance(m.padding, str):
            raise ValueError(f"numpy_reference: unsupported {m!r}")
        layer = Conv2d(_array(m.weight), _array(m.bias), _single(m.stride, "stride"),
                       _single(m.padding, "padding"), input_grad=not first[0])
        first[0] = False
        return layer
    if kind == "MaxPool2d":
        return MaxPool2d(_single(m.kernel_size, "kernel_size"), _single(m.stride, "stride"),
                         _single(m.padding, "padding"))
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return BatchNorm(_array(m.weight), _array(m.bias), m.eps)
    if kind == "AdaptiveAvgPool2d" and m.output_size in (1, (1, 1)):
        return GlobalAvgPool()
    simple = {"ReLU": ReLU, "Flatten": Flatten, "Identity": Identity, "Dropout": Identity}
    if kind in simple:  # Dropout: the benchmark times the deterministic networks
        return simple[kind]()
    raise ValueError(f"numpy_reference: no reference layer for {kind}; add one to "
                     f"benchmarks/numpy_reference.py")
