"""Activation functions with Keras 3's names, defaults and formulas, each with its
derivative beside it.

``forward(x)`` returns y; ``backward(x, y, grad_y)`` returns grad_x (either x or y may be
used, whichever the derivative is cheaper from). Calling an activation, ``gelu(x)`` or
``leaky_relu(x, negative_slope=0.1)``, works like Keras' functions. Where a function has a
kink, the derivative there is the one-sided value PyTorch and TensorFlow use.
"""
import math

import numpy as np
from scipy import special

from . import _checks, kernels
from .utils import from_registry


class Activation:
    name = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, x, y, grad_y):
        raise NotImplementedError

    def __call__(self, x, **kwargs):
        """Keras' functional form; keyword arguments override this activation's settings."""
        activation = type(self)(**{**self.get_config(), **kwargs}) if kwargs else self
        x = np.asarray(x)
        return activation.forward(x if x.dtype.kind == "f" else x.astype(np.float32))

    def get_config(self):
        return {}

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
        self.negative_slope = _checks.real("relu", "negative_slope", negative_slope)
        self.max_value = (None if max_value is None else
                          _checks.real("relu", "max_value", max_value, low=0))
        self.threshold = _checks.real("relu", "threshold", threshold)

    def get_config(self):
        return {"negative_slope": self.negative_slope, "max_value": self.max_value,
                "threshold": self.threshold}

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
        self.axis = _checks.integer("softmax", "axis", axis)

    def get_config(self):
        return {"axis": self.axis}

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
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = _checks.real("elu", "alpha", alpha)

    def forward(self, x):
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype,
                                                                                  copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x > 0, 1, y + self.alpha).astype(x.dtype, copy=False)

    def get_config(self):
        return {"alpha": self.alpha}


class SELU(Activation):
    """``scale * elu(x, alpha)`` with Klambauer et al.'s self-normalising constants."""
    name = "selu"
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946

    def forward(self, x):
        return (self.scale * np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))
                ).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x > 0, self.scale, y + self.scale * self.alpha).astype(
            x.dtype, copy=False)


class CELU(Activation):
    """``max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)``."""
    name = "celu"

    def __init__(self, alpha=1.0):
        self.alpha = _checks.real("celu", "alpha", alpha, low=0, low_open=True)

    def forward(self, x):
        return (np.maximum(x, 0) + self.alpha * np.expm1(np.minimum(x, 0) / self.alpha)
                ).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x > 0, 1, np.exp(np.minimum(x, 0) / self.alpha)).astype(
            x.dtype, copy=False)

    def get_config(self):
        return {"alpha": self.alpha}


class LeakyReLU(Activation):
    """``x`` for x > 0, ``negative_slope * x`` otherwise; the function's default slope is 0.2
    (Keras' LeakyReLU layer defaults to 0.3)."""
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = _checks.real("leaky_relu", "negative_slope", negative_slope)

    def forward(self, x):
        return np.where(x > 0, x, x * self.negative_slope).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x > 0, 1, self.negative_slope).astype(x.dtype, copy=False)

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class ReLU6(Activation):
    """``min(max(x, 0), 6)``."""
    name = "relu6"

    def forward(self, x):
        return np.minimum(np.maximum(x, 0), 6).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * ((x > 0) & (x < 6))


class SiLU(Activation):
    """``x * sigmoid(x)`` (also called swish)."""
    name = "silu"

    def forward(self, x):
        return x * Sigmoid().forward(x)

    def backward(self, x, y, grad_y):
        s = Sigmoid().forward(x)
        return grad_y * (s + x * s * (1 - s))


class GELU(Activation):
    """``x * Phi(x)`` with the normal CDF Phi from erf (Keras' default approximate=False;
    approximate=True is the tanh formula)."""
    name = "gelu"
    _c = math.sqrt(2 / math.pi)

    def __init__(self, approximate=False):
        self.approximate = _checks.boolean("gelu", "approximate", approximate)

    def forward(self, x):
        if self.approximate:
            y = 0.5 * x * (1 + np.tanh(self._c * (x + 0.044715 * x ** 3)))
        else:
            y = 0.5 * x * (1 + special.erf(x / math.sqrt(2)))
        return y.astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        if self.approximate:
            t = np.tanh(self._c * (x + 0.044715 * x ** 3))
            slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self._c * (1 + 3 * 0.044715 * x * x)
        else:
            slope = (0.5 * (1 + special.erf(x / math.sqrt(2)))
                     + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
        return (grad_y * slope).astype(grad_y.dtype, copy=False)

    def get_config(self):
        return {"approximate": self.approximate}


class Mish(Activation):
    """``x * tanh(softplus(x))``."""
    name = "mish"

    def forward(self, x):
        return (x * np.tanh(np.logaddexp(0, x))).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        t = np.tanh(np.logaddexp(0, x))
        return (grad_y * (t + x * (1 - t * t) * Sigmoid().forward(x))).astype(grad_y.dtype,
                                                                              copy=False)


class Softsign(Activation):
    """``x / (1 + |x|)``."""
    name = "softsign"

    def forward(self, x):
        return x / (1 + np.abs(x))

    def backward(self, x, y, grad_y):
        return grad_y / (1 + np.abs(x)) ** 2


class HardSigmoid(Activation):
    """Keras 3's piecewise-linear sigmoid: ``clip(x / 6 + 0.5, 0, 1)``."""
    name = "hard_sigmoid"

    def forward(self, x):
        return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * ((x > -3) & (x < 3)) / 6


class HardSiLU(Activation):
    """``x * hard_sigmoid(x)`` (also called hard_swish)."""
    name = "hard_silu"

    def forward(self, x):
        return (x * np.clip(x / 6 + 0.5, 0, 1)).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        slope = np.where(x <= -3, 0, np.where(x >= 3, 1, x / 3 + 0.5))
        return (grad_y * slope).astype(grad_y.dtype, copy=False)


class HardTanh(Activation):
    """``clip(x, -1, 1)``."""
    name = "hard_tanh"

    def forward(self, x):
        return np.clip(x, -1, 1).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * ((x > -1) & (x < 1))


class Exponential(Activation):
    """``exp(x)``."""
    name = "exponential"

    def forward(self, x):
        return np.exp(x)

    def backward(self, x, y, grad_y):
        return grad_y * y


class LogSigmoid(Activation):
    """``log(sigmoid(x)) = -softplus(-x)``."""
    name = "log_sigmoid"

    def forward(self, x):
        return -np.logaddexp(0, -x).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * Sigmoid().forward(-x)


class LogSoftmax(Activation):
    """``x - logsumexp(x)`` over ``axis``."""
    name = "log_softmax"

    def __init__(self, axis=-1):
        self.axis = _checks.integer("log_softmax", "axis", axis)

    def forward(self, x):
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, x, y, grad_y):
        return grad_y - np.exp(y) * grad_y.sum(axis=self.axis, keepdims=True)

    def get_config(self):
        return {"axis": self.axis}


class TanhShrink(Activation):
    """``x - tanh(x)``."""
    name = "tanh_shrink"

    def forward(self, x):
        return x - np.tanh(x)

    def backward(self, x, y, grad_y):
        return grad_y * np.tanh(x) ** 2


class _Shrink(Activation):
    def __init__(self, threshold=0.5):
        self.threshold = _checks.real(self.name, "threshold", threshold, low=0)

    def backward(self, x, y, grad_y):
        return grad_y * (np.abs(x) > self.threshold)

    def get_config(self):
        return {"threshold": self.threshold}


class HardShrink(_Shrink):
    """``x`` where ``|x| > threshold``, else 0."""
    name = "hard_shrink"

    def forward(self, x):
        return np.where(np.abs(x) > self.threshold, x, 0).astype(x.dtype, copy=False)


class SoftShrink(_Shrink):
    """``x - threshold`` above threshold, ``x + threshold`` below -threshold, else 0."""
    name = "soft_shrink"

    def forward(self, x):
        return (np.sign(x) * np.maximum(np.abs(x) - self.threshold, 0)).astype(x.dtype,
                                                                               copy=False)


class Squareplus(Activation):
    """``(x + sqrt(x**2 + b)) / 2``, a smooth ReLU."""
    name = "squareplus"

    def __init__(self, b=4):
        self.b = _checks.real("squareplus", "b", b, low=0)

    def forward(self, x):
        return ((x + np.sqrt(x * x + self.b)) / 2).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * (1 + x / np.sqrt(x * x + self.b)) / 2

    def get_config(self):
        return {"b": self.b}


class SparsePlus(Activation):
    """0 for x <= -1, ``(x + 1)**2 / 4`` for |x| < 1, x for x >= 1."""
    name = "sparse_plus"

    def forward(self, x):
        return np.where(x <= -1, 0, np.where(x < 1, (x + 1) ** 2 / 4, x)).astype(x.dtype,
                                                                                 copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * np.where(x <= -1, 0, np.where(x < 1, (x + 1) / 2, 1)).astype(
            x.dtype, copy=False)


class SparseSigmoid(Activation):
    """0 for x <= -1, ``(x + 1) / 2`` for |x| < 1, 1 for x >= 1."""
    name = "sparse_sigmoid"

    def forward(self, x):
        return np.clip((x + 1) / 2, 0, 1).astype(x.dtype, copy=False)

    def backward(self, x, y, grad_y):
        return grad_y * ((x > -1) & (x < 1)) / 2


_BY_NAME = {cls.name: cls for cls in (
    Linear, ReLU, Sigmoid, Tanh, Softmax, Softplus, ELU, SELU, CELU, LeakyReLU, ReLU6, SiLU,
    GELU, Mish, Softsign, HardSigmoid, HardSiLU, HardTanh, Exponential, LogSigmoid, LogSoftmax,
    TanhShrink, HardShrink, SoftShrink, Squareplus, SparsePlus, SparseSigmoid)}
_BY_NAME["swish"] = SiLU
_BY_NAME["hard_swish"] = HardSiLU

# Keras-style functional names: convnet.activations.relu(x), gelu(x, approximate=True), ...
linear, relu, sigmoid, tanh, softmax = Linear(), ReLU(), Sigmoid(), Tanh(), Softmax()
softplus, elu, selu, celu, leaky_relu = Softplus(), ELU(), SELU(), CELU(), LeakyReLU()
relu6, silu, gelu, mish, softsign = ReLU6(), SiLU(), GELU(), Mish(), Softsign()
hard_sigmoid, hard_silu, hard_tanh = HardSigmoid(), HardSiLU(), HardTanh()
exponential, log_sigmoid, log_softmax, tanh_shrink = (Exponential(), LogSigmoid(), LogSoftmax(),
                                                      TanhShrink())
hard_shrink, soft_shrink, squareplus = HardShrink(), SoftShrink(), Squareplus()
sparse_plus, sparse_sigmoid = SparsePlus(), SparseSigmoid()
swish, hard_swish = silu, hard_silu


def get(identifier):
    """An Activation from a name ("relu", "gelu", ...), a {"class_name", "config"} dict as
    serialize() writes for non-default settings, None (linear) or an Activation instance."""
    if identifier is None:
        return Linear()
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        config = identifier.get("config", {})
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"Unknown activation config {identifier!r}; expected a "
                             f"class_name among {sorted(_BY_NAME)}")
        return cls(**config)
    return from_registry(identifier, Activation, _BY_NAME, "activation", " or None")


def serialize(activation):
    """The activation's name, or {"class_name", "config"} when its settings differ from the
    defaults (e.g. gelu with approximate=True), so a saved model keeps them."""
    config = activation.get_config()
    if not config or config == type(activation)().get_config():
        return activation.name
    return {"class_name": activation.name, "config": config}
