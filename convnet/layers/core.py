"""Input, Dense, Flatten, Activation, ReLU, Softmax, Dropout and ZeroPadding2D."""
import math
from numbers import Real

import numpy as np

from .. import activations, kernels, random
from .base import KernelMixin, Layer, _shape_tuple
from .spatial import SpatialLayer, padding_config


class InputLayer(Layer):
    """Declares the shape of one example (no batch axis); None marks a size known only at
    call time, e.g. ``Input((None, None, 3))`` for images of any size."""

    def __init__(self, shape=None, batch_size=None, name=None, dtype="float32", **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None:
            raise ValueError(f"{self.describe()}: shape is required, e.g. Input((28, 28, 1))")
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        self.shape = _shape_tuple(shape, self.describe())
        self.batch_size = batch_size

    def get_config(self):
        config = super().get_config()
        return {**config, "shape": list(self.shape), "batch_size": self.batch_size}


def Input(shape=None, batch_size=None, name=None, dtype="float32"):
    """Keras' ``Input``: begins a Sequential model, fixing the shape of its examples."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype)


class Dense(KernelMixin, Layer):
    """``activation(x @ kernel + bias)`` over the last axis, kernel (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = kernels.as_int_tuple(units, 1, "units", self.describe())[0]
        self._configure_kernel(activation, use_bias, kernel_initializer, bias_initializer)

    def build(self, input_shape):
        super().build(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"{self.describe()}: the last dimension of the input must be known "
                             f"to build, got shape {tuple(input_shape)}")
        self._add_kernel_and_bias((input_shape[-1], self.units))

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training=False):
        z = kernels.matmul(x.reshape(-1, x.shape[-1]), self.kernel, name=self.describe())
        z = z.reshape(*x.shape[:-1], self.units)
        if self.use_bias:
            z += self.bias
        if training:
            self._cache["x"] = x
        return z if self.activation is None else self._activate(z, training)

    def _backward(self, grad_z, need_input_grad=True):
        x = self._cache["x"]
        x2 = x.reshape(-1, x.shape[-1])
        g2 = grad_z.reshape(-1, self.units)
        kernels.matmul(x2.T, g2, out=self.grads[0], name=self.describe())
        if self.use_bias:
            self.grads[1][...] = g2.sum(axis=0)
        if not need_input_grad:
            return None
        return kernels.matmul(g2, self.kernel.T, name=self.describe()).reshape(x.shape)

    def macs(self, input_shape):
        rows = math.prod(input_shape[1:-1]) if all(d is not None for d in input_shape[1:-1]) \
            else None
        return None if rows is None else rows * input_shape[-1] * self.units

    def get_config(self):
        return {**super().get_config(), "units": self.units, **self._kernel_config()}


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...). With data_format="channels_first" the input is
    first moved to channels_last, so weights keep their order across layouts (as in Keras)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"{self.describe()}: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.data_format = data_format or "channels_last"

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def call(self, x, training=False):
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def _backward(self, grad_y, need_input_grad=True):
        shape = self._cache["input_shape"]
        if self.data_format == "channels_first" and len(shape) > 2:
            moved = (shape[0], *shape[2:], shape[1])
            return np.ascontiguousarray(np.moveaxis(grad_y.reshape(moved), -1, 1))
        return grad_y.reshape(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Activation(Layer):
    """Applies an activation function by name, e.g. ``Activation("relu")``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=False):
        return self._activate(x, training)

    def _backward(self, grad_z, need_input_grad=True):
        return grad_z

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class ReLU(Activation):
    """Keras' ReLU layer: ``max(x, 0)`` with optional max_value, negative_slope, threshold."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        # NaN anywhere, or an infinite slope or threshold, would turn every output or
        # gradient into NaN or zero; an infinite max_value is no cap, as None is.
        for arg, value in (("max_value", max_value), ("negative_slope", negative_slope),
                           ("threshold", threshold)):
            if value is None and arg == "max_value":
                continue
            finite = arg != "max_value"
            if (isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value)
                    or value < 0 or (finite and math.isinf(value))):
                raise ValueError(f"ReLU: {arg} must be a {'finite ' if finite else ''}number "
                                 f">= 0, got {value!r}")
        super().__init__(activations.ReLU(negative_slope, max_value, threshold), **kwargs)

    def get_config(self):
        config = Layer.get_config(self)
        return {**config, "max_value": self.activation.max_value,
                "negative_slope": self.activation.negative_slope,
                "threshold": self.activation.threshold}


class Softmax(Activation):
    """Softmax over `axis` (default: the last)."""

    def __init__(self, axis=-1, **kwargs):
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Softmax: axis must be an int, got {axis!r}")
        super().__init__(activations.Softmax(axis), **kwargs)

    def get_config(self):
        return {**Layer.get_config(self), "axis": self.activation.axis}


class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs while training, scaling the rest by 1/(1-rate)."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"{self.describe()}: rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        if noise_shape is not None:
            entries = noise_shape if isinstance(noise_shape, (tuple, list)) else None
            if entries is None or not all(
                    d is None or isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                    for d in entries):
                raise TypeError(f"{self.describe()}: noise_shape must be a tuple of ints or "
                                f"None, got {noise_shape!r}")
            if any(d is not None and d < 1 for d in entries):
                raise ValueError(f"{self.describe()}: noise_shape entries must be >= 1 (or "
                                 f"None), got {noise_shape!r}")
            noise_shape = tuple(None if d is None else int(d) for d in entries)
        self.noise_shape = noise_shape
        self.seed = seed
        self._generator = None if seed is None else np.random.default_rng(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            if training:
                self._cache["mask"] = None
            return x
        shape = x.shape if self.noise_shape is None else self._noise_shape_for(x.shape)
        generator = self._generator or random.generator()
        keep = generator.random(shape) >= self.rate
        mask = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        self._cache["mask"] = mask
        return x * mask

    def _noise_shape_for(self, input_shape):
        """noise_shape with None filled from the input, if it broadcasts against the input
        (each entry 1 or the input's size): checked before the mask is drawn."""
        shape = tuple(n if d is None else d for n, d in zip(input_shape, self.noise_shape))
        if len(self.noise_shape) != len(input_shape) or any(
                d not in (1, n) for n, d in zip(input_shape, shape)):
            raise ValueError(f"{self.describe()}: noise_shape {self.noise_shape} does not "
                             f"broadcast against the input of shape {tuple(input_shape)} "
                             f"(each entry must be None, 1 or the input's size)")
        return shape

    def _backward(self, grad_y, need_input_grad=True):
        mask = self._cache["mask"]
        return grad_y if mask is None else grad_y * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}


class ZeroPadding2D(SpatialLayer):
    """Pads images with zeros: an int, (height, width), or ((top, bottom), (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if isinstance(padding, str):
            raise TypeError(f"{self.describe()}: padding must be an int, a pair or "
                            f"((top, bottom), (left, right)), got {padding!r}")
        self.padding = kernels.resolve_padding(padding, (1, 1), (1, 1), (1, 1), (None, None),
                                           self.describe())
        (t, b), (l, r) = self.padding
        if (1 + t + b) * (1 + l + r) > kernels.INT_MAX:
            raise ValueError(f"{self.describe()}: padding {padding!r} would make even a 1x1 "
                             f"image {1 + t + b}x{1 + l + r}, more than 2**31 - 1 cells, the "
                             f"most an image may have for max pooling (its argmax is int32)")

    def _output_shape_nhwc(self, shape):
        (t, b), (l, r) = self.padding
        n, h, w, c = shape
        return (n, None if h is None else h + t + b, None if w is None else w + l + r, c)

    def _call_nhwc(self, x, training):
        return np.pad(x, ((0, 0), *self.padding, (0, 0)))

    def _backward_nhwc(self, grad_y, need_input_grad):
        (t, b), (l, r) = self.padding
        h, w = grad_y.shape[1] - t - b, grad_y.shape[2] - l - r
        return np.ascontiguousarray(grad_y[:, t:t + h, l:l + w])

    def get_config(self):
        return {**super().get_config(), "padding": padding_config(self.padding)}
