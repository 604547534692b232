"""The Layer interface every convnet layer implements (see DESIGN.md).

A layer is configured in ``__init__`` (validated there, the bad value echoed
in the error), creates its weights in ``build(input_shape)``, computes in
``call`` and differentiates in ``_backward``. ``__call__`` checks the input
and builds on first use; ``backward`` applies the layer's activation
derivative, then ``_backward``.
"""
import re
from collections import defaultdict

import numpy as np

from .. import activations as activations_module
from .. import initializers, kernels

_name_counts = defaultdict(int)


def _unique_name(base):
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _shape_tuple(shape, who):
    """A shape given by a user: a tuple of positive ints or None."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{who}: a shape must be a tuple, got {shape!r}") from None
    for v in shape:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < 1):
            raise ValueError(f"{who}: every dimension of shape {shape} must be a positive int "
                             f"or None")
    return tuple(None if v is None else int(v) for v in shape)


class Layer:
    """Base class: weights, gradients, config, and the call/backward protocol."""

    #: the rank of the input including the batch axis (None: any rank >= 2)
    input_ndim = None

    def __init__(self, name=None, dtype="float32", trainable=True, input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments "
                            f"{sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or _unique_name(_snake_case(type(self).__name__))
        self.dtype = kernels.float_dtype(dtype, f"{type(self).__name__} '{self.name}'")
        self.trainable = bool(trainable)
        # Keras lets the first layer of a Sequential carry input_shape=(h, w, c).
        self.declared_input_shape = (None if input_shape is None
                                     else _shape_tuple(input_shape, self.describe()))
        self.activation = None
        self.weights = []
        self.grads = []
        self.built = False
        self.input_shape = None
        self._cache = None

    # -- identity ------------------------------------------------------------------------------

    def describe(self):
        """How error messages name this layer: ``Conv2D 'conv2d_1'``."""
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self):
        return f"<{self.describe()}>"

    # -- building ------------------------------------------------------------------------------

    def build(self, input_shape):
        """Create the weights for inputs of `input_shape` (batch axis first, may be None)."""
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)  # raises if the shape does not fit this layer
        self.input_shape = (None,) + tuple(input_shape[1:])
        self.built = True

    def add_weight(self, shape, initializer):
        value = np.ascontiguousarray(initializer(tuple(shape), dtype=self.dtype))
        self.weights.append(value)
        self.grads.append(np.zeros_like(value))
        return value

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"{self.describe()} has not been built yet, so it has no output "
                             f"shape; call it on data or build it first")
        return self.compute_output_shape(self.input_shape)

    def _check_rank(self, input_shape):
        if self.input_ndim is not None and len(input_shape) != self.input_ndim:
            layout = " (batch, height, width, channels)" if self.input_ndim == 4 else ""
            raise ValueError(f"{self.describe()} expects {self.input_ndim}-D inputs{layout}, "
                             f"got shape {tuple(input_shape)}")
        if len(input_shape) < 2:
            raise ValueError(f"{self.describe()} expects inputs with a batch axis, "
                             f"got shape {tuple(input_shape)}")

    # -- running -------------------------------------------------------------------------------

    def __call__(self, x, training=False):
        x = kernels.as_batch(x, self.dtype, self.describe(), ndim=np.ndim(x))
        self._check_rank(x.shape)
        if not self.built:
            self.build(x.shape)
        else:
            self._check_compatible(x.shape)
        # What backward needs is kept only for a training call.
        self._cache = {"input_shape": x.shape} if training else None
        y = self.call(x, training=training)
        if training:
            self._cache["output_shape"] = y.shape
        return y

    def _check_compatible(self, shape):
        """After build, every known dimension but the batch must stay the same."""
        expected = self.input_shape
        if len(shape) != len(expected) or any(
                e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            raise ValueError(f"{self.describe()} was built for inputs of shape {expected}, "
                             f"got {tuple(shape)}")

    def call(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad_y, need_input_grad=True):
        """Gradient with respect to the input of the last training call; fills self.grads.

        With ``need_input_grad=False`` (the first layer of a model) only the weight
        gradients are computed and None is returned.
        """
        if self._cache is None:
            raise ValueError(f"{self.describe()}: backward() needs a forward call with "
                             f"training=True first")
        grad_y = kernels.as_batch(grad_y, self.dtype, self.describe(), arg="gradient",
                              ndim=np.ndim(grad_y))
        if grad_y.shape != self._cache["output_shape"]:
            raise ValueError(f"{self.describe()}: gradient of shape {grad_y.shape} does not "
                             f"match the output shape {self._cache['output_shape']}")
        return self._backward_from_output(grad_y, need_input_grad)

    def _backward_from_output(self, grad_y, need_input_grad):
        """Through the activation's derivative, then the layer's own operation."""
        return self._backward(self._through_activation(grad_y), need_input_grad)

    def _through_activation(self, grad_y):
        """The gradient of the pre-activation output z, from that of the output y."""
        if self.activation is None:
            return grad_y
        return self.activation.backward(self._cache["z"], self._cache["y"], grad_y)

    def _backward(self, grad_z, need_input_grad=True):
        """Gradient through the layer's own operation, given the gradient of its
        pre-activation output; the model calls it directly when it fuses softmax with
        cross-entropy."""
        raise NotImplementedError

    def _activate(self, z, training):
        """Apply the activation, keeping what its derivative needs when training."""
        y = self.activation.forward(z)
        if training:
            self._cache.update(z=z, y=y)
        return y

    # -- weights and config -------------------------------------------------------------------

    @property
    def trainable_weights(self):
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [] if self.trainable else self.weights

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copy values into the existing arrays (the optimizer keeps references to them)."""
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"{self.describe()} has {len(self.weights)} weights, "
                             f"got a list of {len(weights)}")
        values = []
        for i, (current, new) in enumerate(zip(self.weights, weights)):
            new = np.asarray(new)
            if new.shape != current.shape:
                raise ValueError(f"{self.describe()}: weight {i} has shape {current.shape}, "
                                 f"got {new.shape}")
            if new.dtype.kind not in "biuf":
                raise TypeError(f"{self.describe()}: weight {i} must be numeric, "
                                f"got dtype {new.dtype}")
            values.append(new)
        for current, new in zip(self.weights, values):
            np.copyto(current, new, casting="unsafe")

    def count_params(self):
        if not self.built:
            raise ValueError(f"{self.describe()} has not been built yet: call it on data or "
                             f"build it before counting its parameters")
        return int(sum(w.size for w in self.weights))

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- what summary() reports ---------------------------------------------------------------

    def receptive_field_step(self):
        """(kernel, stride) of the layer along height and width, for the receptive field."""
        return (1, 1), (1, 1)

    def macs(self, input_shape):
        """Multiply-accumulates for one example of `input_shape`."""
        return 0


class KernelMixin:
    """What Dense and Conv2D share: activation(x * kernel + bias) and its four options."""

    def _configure_kernel(self, activation, use_bias, kernel_initializer, bias_initializer):
        self.activation = activations_module.get(activation)
        if isinstance(self.activation, activations_module.Linear):
            self.activation = None
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def _add_kernel_and_bias(self, kernel_shape):
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer)
        self.bias = (self.add_weight((kernel_shape[-1],), self.bias_initializer)
                     if self.use_bias else None)

    def _kernel_config(self):
        activation = ("linear" if self.activation is None
                      else activations_module.serialize(self.activation))
        return {"activation": activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}
