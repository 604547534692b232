"""LayerNormalization: each example normalized over some of its axes, with Keras 3's
arguments, defaults and formula."""
import math
import warnings

import numpy as np

from .. import initializers, kernels
from .base import Layer, _get_constraint, _get_regularizer, _serialize


def _axes(axis, who):
    """Keras' axis argument: an int or a list of ints."""
    if isinstance(axis, (list, tuple)):
        axes = list(axis)
    elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    else:
        raise TypeError(f"{who}: axis must be an int or a list of ints, got {axis!r}")
    if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                           for a in axes):
        raise TypeError(f"{who}: axis must be an int or a non-empty list of ints, got {axis!r}")
    return [int(a) for a in axes]


class LayerNormalization(Layer):
    """``(x - mean) / sqrt(variance + epsilon) * gamma + beta``, the mean and variance taken
    over `axis` (default the last) of each example; gamma and beta have the sizes of those
    axes. The variance is the mean squared deviation from the mean (computed in two passes,
    as PyTorch's layer_norm, which Keras' torch backend calls). When the normalized axes are
    the last ones (the usual case) a compiled kernel computes it, row by row.

    ``rms_scaling=True`` (deprecated in Keras 3, which warns) computes Keras' formula for it,
    ``x / sqrt(variance + epsilon) * gamma`` with no centring and no beta."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        who = self.describe()
        if rms_scaling:
            warnings.warn("LayerNormalization: rms_scaling=True is deprecated in Keras 3 (it "
                          "scales by the variance, not the root mean square)", stacklevel=2)
        self.axis = _axes(axis, who)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) \
                or not math.isfinite(epsilon) or epsilon < 0:
            raise ValueError(f"{who}: epsilon must be a finite number >= 0, got {epsilon!r}")
        self.epsilon = float(epsilon)
        for arg, value in (("center", center), ("scale", scale), ("rms_scaling", rms_scaling)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{who}: {arg} must be True or False, got {value!r}")
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = _get_regularizer(beta_regularizer)
        self.gamma_regularizer = _get_regularizer(gamma_regularizer)
        self.beta_constraint = _get_constraint(beta_constraint)
        self.gamma_constraint = _get_constraint(gamma_constraint)
        self.gamma = self.beta = None

    def _canonical_axes(self, input_shape):
        ndim = len(input_shape)
        given = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -ndim <= a < ndim for a in given):
            raise ValueError(f"{self.describe()}: axis {self.axis} is out of range for inputs "
                             f"of shape {tuple(input_shape)}")
        axes = sorted(a % ndim for a in given)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{self.describe()}: axis {self.axis} names an axis twice")
        if 0 in axes:
            raise ValueError(f"{self.describe()}: axis {self.axis} includes the batch axis 0; "
                             f"LayerNormalization normalizes each example on its own")
        return axes

    def build(self, input_shape):
        super().build(input_shape)
        self.axis = self._canonical_axes(input_shape)
        shape = tuple(input_shape[a] for a in self.axis)
        if None in shape:
            raise ValueError(f"{self.describe()}: the normalized axes {self.axis} of inputs of "
                             f"shape {tuple(input_shape)} must have known sizes")
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(shape=shape, initializer=self.gamma_initializer,
                                         name="gamma", regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(shape=shape, initializer=self.beta_initializer,
                                        name="beta", regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        self._canonical_axes(input_shape)
        return tuple(input_shape)

    def _broadcast(self, weight, ndim):
        """A weight (sized like the normalized axes) shaped to broadcast against inputs."""
        shape = [1] * ndim
        for a, size in zip(self.axis, weight.shape):
            shape[a] = size
        return weight.value.reshape(shape)

    def _rows(self, shape):
        """The width of the rows the compiled kernel normalizes, when the normalized axes
        are the last ones (each example's values to normalize then lie in one contiguous
        row); else None, and NumPy computes."""
        ndim = len(shape)
        if self.rms_scaling or self.axis != list(range(ndim - len(self.axis), ndim)):
            return None
        return math.prod(shape[a] for a in self.axis)

    def _forward(self, x, training):
        width = self._rows(x.shape)
        if width is not None:
            rows = x.reshape(-1, width)
            y, mean, inv = kernels.layer_norm(
                rows, None if self.gamma is None else self.gamma.value.reshape(-1),
                None if self.beta is None else self.beta.value.reshape(-1), self.epsilon,
                name=self.describe())
            ctx = {"rows": rows, "mean": mean, "inv": inv} if training else None
            return y.reshape(x.shape), ctx
        axes = tuple(self.axis)
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        variance = np.square(centered).mean(axis=axes, keepdims=True)
        inv = (1 / np.sqrt(variance + x.dtype.type(self.epsilon))).astype(x.dtype, copy=False)
        normalized = x * inv if self.rms_scaling else centered * inv
        y = normalized if self.gamma is None else normalized * self._broadcast(self.gamma, x.ndim)
        if self.beta is not None:
            y = y + self._broadcast(self.beta, x.ndim)
        ctx = ({"x": x, "centered": centered, "inv": inv, "normalized": normalized}
               if training else None)
        return y, ctx

    def _backward_op(self, ctx, grad_z, need_input_grad):
        if "rows" in ctx:
            rows = ctx["rows"]
            grad_x, grad_gamma, grad_beta = kernels.layer_norm_backward(
                rows, grad_z.reshape(rows.shape),
                None if self.gamma is None else self.gamma.value.reshape(-1), ctx["mean"],
                ctx["inv"], need_input_grad, name=self.describe())
            grads = ([grad_gamma.reshape(self.gamma.shape)] if self.gamma is not None else []) \
                + ([grad_beta.reshape(self.beta.shape)] if self.beta is not None else [])
            return None if grad_x is None else grad_x.reshape(grad_z.shape), grads
        axes = tuple(self.axis)
        ndim = grad_z.ndim
        others = tuple(a for a in range(ndim) if a not in axes)
        grads = []
        if self.gamma is not None:
            grads.append((grad_z * ctx["normalized"]).sum(axis=others))
        if self.beta is not None:
            grads.append(grad_z.sum(axis=others))
        if not need_input_grad:
            return None, grads
        g = grad_z if self.gamma is None else grad_z * self._broadcast(self.gamma, ndim)
        inv = ctx["inv"]
        if self.rms_scaling:
            # y = x * inv: inv depends on x through the variance only
            along = (g * ctx["x"]).mean(axis=axes, keepdims=True)
            return inv * g - inv ** 3 * ctx["centered"] * along, grads
        normalized = ctx["normalized"]
        grad_x = inv * (g - g.mean(axis=axes, keepdims=True)
                        - normalized * (g * normalized).mean(axis=axes, keepdims=True))
        return grad_x, grads

    def get_config(self):
        config = {"axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                  "scale": self.scale, "rms_scaling": self.rms_scaling,
                  "beta_initializer": initializers.serialize(self.beta_initializer),
                  "gamma_initializer": initializers.serialize(self.gamma_initializer)}
        for key in ("beta_regularizer", "gamma_regularizer", "beta_constraint",
                    "gamma_constraint"):
            value = getattr(self, key)
            config[key] = None if value is None else _serialize(value)
        return {**super().get_config(), **config}
