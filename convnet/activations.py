"""Activation functions, each with its derivative beside it.

``forward(x)`` returns y; ``backward(x, y, grad_y)`` returns grad_x (either
x or y may be used, whichever the derivative is cheaper from).
"""
import numpy as np

from . import kernels
from .utils import from_registry


class Activation:
    name = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, x, y, grad_y):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(np.asarray(x))

    def __repr__(self):
        return f"<activation {self.name}>"


class Linear(Activation):
    name = "linear"

    def forward(self, x):
        return x

    def backward(self, x, y, grad_y):
        return grad_y


class ReLU(Activation):
    """max(x, 0), with Keras' options: a slope below `threshold`, a cap at `max_value`.

    The derivative at the threshold itself is 0, as in PyTorch.
    """
    name = "relu"

    def __init__(self, negative_slope=0.0, max_value=None, threshold=0.0):
        self.negative_slope, self.max_value, self.threshold = negative_slope, max_value, threshold

    @property
    def plain(self):
        return self.negative_slope == 0 and self.max_value is None and self.threshold == 0

    def forward(self, x):
        if self.plain:
            return np.maximum(x, 0, out=np.empty_like(x))
        y = np.where(x > self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            y = np.minimum(y, self.max_value)
        return y.astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        if self.plain and y.dtype == grad_y.dtype and y.dtype in (np.float32, np.float64):
            return kernels.relu_backward(y, grad_y)
        if self.plain:
            return np.where(y > 0, grad_y, 0).astype(grad_y.dtype, copy=False)
        slope = np.where(x > self.threshold, 1.0, self.negative_slope)
        if self.max_value is not None:
            slope = np.where(x >= self.max_value, 0.0, slope)
        return (grad_y * slope).astype(grad_y.dtype, copy=False)


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, x):
        # exp of a non-positive number only, so no overflow warnings for large |x|.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * y * (1 - y)


class Tanh(Activation):
    name = "tanh"

    def forward(self, x):
        return np.tanh(x)

    def backward(self, x, y, grad_y):
        return grad_y * (1 - y * y)


class Softmax(Activation):
    """Softmax over `axis` (Keras' default: the last)."""
    name = "softmax"

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, x, y, grad_y):
        return y * (grad_y - np.sum(grad_y * y, axis=self.axis, keepdims=True))


class Softplus(Activation):
    name = "softplus"

    def forward(self, x):
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * Sigmoid().forward(x)


class ELU(Activation):
    name = "elu"

    def forward(self, x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x > 0, 1, y + 1).astype(x.dtype, copy=False)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = negative_slope

    def forward(self, x):
        return np.where(x > 0, x, x * self.negative_slope).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x > 0, 1, self.negative_slope).astype(x.dtype, copy=False)


class SiLU(Activation):
    name = "silu"

    def forward(self, x):
        return x * Sigmoid().forward(x)

    def backward(self, x, y, grad_y):
        s = Sigmoid().forward(x)
        return grad_y * (s + x * s * (1 - s))


_BY_NAME = {cls.name: cls for cls in (Linear, ReLU, Sigmoid, Tanh, Softmax, Softplus, ELU,
                                      LeakyReLU, SiLU)}
_BY_NAME["swish"] = SiLU

# Keras-style functional names: convnet.activations.relu(x), ...
linear, relu, sigmoid, tanh, softmax = Linear(), ReLU(), Sigmoid(), Tanh(), Softmax()
softplus, elu, leaky_relu, silu = Softplus(), ELU(), LeakyReLU(), SiLU()
swish = silu


def get(identifier):
    """An Activation from a name ("relu"), None (linear) or an Activation instance."""
    if identifier is None:
        return Linear()
    return from_registry(identifier, Activation, _BY_NAME, "activation", " or None")


def serialize(activation):
    return activation.name
