"""The local rule each op applies in backward, in words a student can check by hand, and the
names of what it saved for backward (so the page can show "y" next to "grad_x = grad * y").

`grad` is the incoming gradient (of the op's output); `grad_x`, `grad_y`, ... go to its inputs.
Gradients are then summed back to each input's shape (autograd.unbroadcast).
"""
from __future__ import annotations

RULES = {
    "Add": "grad_x = grad, grad_y = grad",
    "Sub": "grad_x = grad, grad_y = -grad",
    "Mul": "grad_x = grad * y, grad_y = grad * x",
    "Div": "grad_x = grad / y, grad_y = -grad * x / y**2",
    "Pow": "grad_x = grad * y * x**(y - 1), grad_y = grad * out * log(x)",
    "Maximum": "grad goes to the larger input (split evenly on ties)",
    "Minimum": "grad goes to the smaller input (split evenly on ties)",
    "Where": "grad_x = where(cond, grad, 0), grad_y = where(cond, 0, grad)",
    "Neg": "grad_x = -grad",
    "Exp": "grad_x = grad * out",
    "Log": "grad_x = grad / x",
    "Sqrt": "grad_x = grad / (2 * out)",
    "Abs": "grad_x = grad * sign(x)",
    "Clip": "grad_x = grad where lo <= x <= hi, else 0",
    "ReLU": "grad_x = grad * (out > 0)",
    "LeakyReLU": "grad_x = grad where x > 0, else grad * slope",
    "Sigmoid": "grad_x = grad * out * (1 - out)",
    "Tanh": "grad_x = grad * (1 - out**2)",
    "GELU": "grad_x = grad * (Phi(x) + x * phi(x))",
    "Softplus": "grad_x = grad * sigmoid(beta * x)",
    "MatMul": "grad_x = grad @ y.T, grad_y = x.T @ grad",
    "Linear": "grad_x = grad @ W, grad_W = grad.T @ x, grad_b = grad summed over the batch",
    "Sum": "grad_x = grad broadcast back to x's shape",
    "Mean": "grad_x = grad / n broadcast back to x's shape",
    "Amax": "grad goes to the maxima (split evenly on ties)",
    "MaxDim": "grad goes to the argmax positions",
    "Reshape": "grad_x = grad reshaped to x's shape",
    "Permute": "grad_x = grad permuted back",
    "Expand": "grad_x = grad summed over the expanded axes",
    "GetItem": "grad_x = zeros of x's shape with grad added at the indexed positions",
    "Pad": "grad_x = grad with the padding cut off",
    "Cat": "grad is split back into the inputs' pieces",
    "Cast": "grad_x = grad cast back to x's dtype",
    "Softmax": "grad_x = out * (grad - sum(grad * out))",
    "LogSoftmax": "grad_x = grad - softmax(x) * sum(grad)",
    "CrossEntropy": "grad_x = (softmax(x) - one_hot(target)) * grad / N",
    "BCEWithLogits": "grad_x = (sigmoid(x) - y) * grad",
    "BinaryCrossEntropy": "grad_p = grad * (p - y) / (p * (1 - p))",
    "Dropout": "grad_x = grad * mask (mask is 0 or 1 / (1 - p))",
    "BatchNorm": "g = grad * weight; grad_x = inv_std / m * (m * g - sum(g) - x_hat * "
                 "sum(g * x_hat)); grad_weight = sum(grad * x_hat); grad_bias = sum(grad)",
    "LayerNorm": "g = grad * weight; grad_x = inv_std / m * (m * g - sum(g) - x_hat * "
                 "sum(g * x_hat)); grad_weight = sum(grad * x_hat); grad_bias = sum(grad)",
    "Conv2d": "grad_x = col2im(grad @ W), grad_W = grad @ im2col(x), grad_b = sum(grad)",
    "MaxPool2d": "grad goes to the maximum of each window",
    "AvgPool2d": "grad is spread evenly over each window",
    "Sin": "grad_x = grad * cos(x)",
    "Cos": "grad_x = -grad * sin(x)",
    "Expm1": "grad_x = grad * (out + 1)",
    "Log1p": "grad_x = grad / (1 + x)",
    "Cumsum": "grad_x = running sum of grad taken backwards along the axis",
    "Prod": "grad_x = grad * (product of the other elements)",
    "Einsum": "each operand's grad is the einsum of grad with the other operands",
    "Piecewise": "grad_x = 0 (floor, ceil, round, trunc and sign are flat)",
    "Scatter": "grad_x = grad where nothing was written, grad_src = grad at the written places",
    "IndexPut": "grad_x = grad with the overwritten entries zeroed, grad_value = grad at them",
    "CopyView": "grad_base = grad with the view's region zeroed, grad_value = grad in it",
}

SAVED_NAMES = {
    "Mul": ("x", "y"), "Div": ("x", "y"), "Pow": ("x", "y", "out"), "Maximum": ("x", "y"),
    "Minimum": ("x", "y"), "Where": ("cond",), "Exp": ("out",), "Log": ("x",), "Sqrt": ("out",),
    "Abs": ("x",), "Clip": ("x", "lo", "hi"), "ReLU": ("out",), "LeakyReLU": ("x", "slope"),
    "Sigmoid": ("out",), "Tanh": ("out",), "GELU": ("x",), "MatMul": ("x", "y"),
    "Softmax": ("out",), "LogSoftmax": ("out",), "Dropout": ("mask",), "Linear": ("x", "W"),
    "Sin": ("x",), "Cos": ("x",), "Expm1": ("out",), "Log1p": ("x",),
}


def rule(op: str) -> str:
    """'mul: grad_x = grad * y, grad_y = grad * x' for op 'Mul'; ops without an entry point to
    their backward in the source."""
    text = RULES.get(op, f"see {op}.backward in the source")
    return f"{op.lower()}: {text}"


def saved_name(op: str, index: int) -> str:
    """The name of the op's index-th saved value ('y' for Mul's second), else 'saved[index]'."""
    names = SAVED_NAMES.get(op, ())
    return names[index] if index < len(names) else f"saved[{index}]"
