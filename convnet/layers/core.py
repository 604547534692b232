"""Input, Dense, Flatten, Activation, ReLU, Softmax, Dropout and ZeroPadding2D."""
import math
from numbers import Real

import numpy as np

from .. import activations, kernels, random
from ..graph import CallNode, KerasTensor
from .base import KernelMixin, Layer, _shape_tuple
from .spatial import SpatialLayer, padding_config


class InputLayer(Layer):
    """The entry of a model: declares the shape of one example (no batch axis); None marks a
    size known only at call time, e.g. ``Input((None, None, 3))`` for images of any size.
    Its ``output`` is the symbolic tensor ``keras.Input`` returns."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 sparse=None, input_tensor=None, optional=False, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None and batch_shape is not None:
            batch_size, shape = batch_shape[0], tuple(batch_shape)[1:]
        if shape is None:
            raise ValueError(f"{self.describe()}: shape is required, e.g. Input((28, 28, 1))")
        if sparse:
            raise ValueError(f"{self.describe()}: sparse inputs are not supported")
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        self.shape = _shape_tuple(shape, self.describe())
        self.batch_size = batch_size
        self.built = True
        self.input_shape = (batch_size,) + self.shape
        self.output = KerasTensor((batch_size,) + self.shape, self.dtype, name=self.name)
        CallNode(self, (), {}, self.output)

    @property
    def batch_shape(self):
        return (self.batch_size,) + self.shape

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _forward(self, x, training):
        return x, None

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return grad_z, []

    def get_config(self):
        config = super().get_config()
        return {**config, "shape": list(self.shape), "batch_size": self.batch_size}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """Keras' ``Input``: a symbolic tensor of one example's shape (batch axis None), to build
    a functional model on, or to start a Sequential with."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                       name=name, sparse=sparse, input_tensor=tensor, optional=optional)
    return layer.output


class Dense(KernelMixin, Layer):
    """``activation(x @ kernel + bias)`` over the last axis, kernel (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = kernels.as_int_tuple(units, 1, "units", self.describe())[0]
        self._configure_kernel(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, kernel_constraint,
                               bias_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"{self.describe()}: the last dimension of the input must be known "
                             f"to build, got shape {tuple(input_shape)}")
        self._add_kernel_and_bias((input_shape[-1], self.units))

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return tuple(input_shape[:-1]) + (self.units,)

    def _forward(self, x, training):
        z = kernels.matmul(x.reshape(-1, x.shape[-1]), self.kernel.value, name=self.describe())
        z = z.reshape(*x.shape[:-1], self.units)
        if self.use_bias:
            z += self.bias.value
        ctx = {"x": x} if training else None
        return self._activate(z, ctx), ctx

    def _backward_op(self, ctx, grad_z, need_input_grad):
        x = ctx["x"]
        x2 = x.reshape(-1, x.shape[-1])
        g2 = grad_z.reshape(-1, self.units)
        grads = [kernels.matmul(x2.T, g2, name=self.describe())]
        if self.use_bias:
            grads.append(g2.sum(axis=0))
        if not need_input_grad:
            return None, grads
        return kernels.matmul(g2, self.kernel.value.T, name=self.describe()).reshape(x.shape), grads

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

    def _forward(self, x, training):
        shape = x.shape
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        return np.ascontiguousarray(x).reshape(x.shape[0], -1), shape

    def _backward_op(self, shape, grad_z, need_input_grad):
        if self.data_format == "channels_first" and len(shape) > 2:
            moved = (shape[0], *shape[2:], shape[1])
            return np.ascontiguousarray(np.moveaxis(grad_z.reshape(moved), -1, 1)), []
        return grad_z.reshape(shape), []

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Activation(Layer):
    """Applies an activation function by name, e.g. ``Activation("relu")``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def _forward(self, x, training):
        ctx = {} if training else None
        return self._activate(x, ctx), ctx

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return grad_z, []

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

    def _forward(self, x, training):
        if not training or self.rate == 0:
            return x, None
        shape = x.shape if self.noise_shape is None else self._noise_shape_for(x.shape)
        generator = self._generator or random.generator()
        keep = generator.random(shape) >= self.rate
        mask = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        return x * mask, mask

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

    def _backward_op(self, mask, grad_z, need_input_grad):
        return (grad_z if mask is None else grad_z * mask), []

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

    def _forward_nhwc(self, x, ctx):
        return np.pad(x, ((0, 0), *self.padding, (0, 0)))

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        (t, b), (l, r) = self.padding
        h, w = grad_z.shape[1] - t - b, grad_z.shape[2] - l - r
        return np.ascontiguousarray(grad_z[:, t:t + h, l:l + w]), []

    def get_config(self):
        return {**super().get_config(), "padding": padding_config(self.padding)}
