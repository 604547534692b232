"""Activation layers with settings of their own: LeakyReLU, PReLU (a learned slope) and ELU,
with Keras 3's arguments and defaults."""
import math
import warnings

import numpy as np

from .. import activations, initializers
from ..autodiff import unbroadcast
from .base import Layer, _get_constraint, _get_regularizer, _serialize
from .core import Activation


def _number(value, who, arg, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{who}: {arg} must be a finite number{bound}, got {value!r}")
    return float(value)


class LeakyReLU(Activation):
    """``x`` where x > 0, ``negative_slope * x`` elsewhere. The layer's default slope is
    Keras 3's, 0.3 (Keras' leaky_relu function and PyTorch default to 0.2 and 0.01)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            warnings.warn("LeakyReLU: argument `alpha` is deprecated (Keras 3); use "
                          "`negative_slope` instead", stacklevel=2)
            negative_slope = kwargs.pop("alpha")
        negative_slope = _number(negative_slope, "LeakyReLU", "negative_slope", minimum=0)
        super().__init__(activations.LeakyReLU(negative_slope), **kwargs)

    @property
    def negative_slope(self):
        return self.activation.negative_slope

    def get_config(self):
        return {**Layer.get_config(self), "negative_slope": self.negative_slope}


class ELU(Layer):
    """``x`` where x > 0, ``alpha * (exp(x) - 1)`` elsewhere; its derivative there is
    ``y + alpha``."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(alpha, self.describe(), "alpha")

    def _forward(self, x, training):
        y = np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype,
                                                                              copy=False)
        return y, ({"x": x, "y": y} if training else None)

    def _backward_op(self, ctx, grad_z, need_input_grad):
        x, y = ctx["x"], ctx["y"]
        slope = np.where(x > 0, 1, y + x.dtype.type(self.alpha)).astype(x.dtype, copy=False)
        return grad_z * slope, []

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """``x`` where x > 0, ``alpha * x`` elsewhere, with `alpha` learned: one per input value
    of an example, or shared along `shared_axes` (counted from 1, e.g. ``shared_axes=[1, 2]``
    for one slope per channel of NHWC images).

    Keras computes ``relu(x) - alpha * relu(-x)``, so at x = 0 the gradient with respect to x
    is 0 (both ReLUs' derivatives are 0 there), as here."""

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = _get_regularizer(alpha_regularizer)
        self.alpha_constraint = _get_constraint(alpha_constraint)
        axes = shared_axes if shared_axes is None or isinstance(shared_axes, (list, tuple)) \
            else [shared_axes]
        if axes is not None and not all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1
                for a in axes):
            raise ValueError(f"{self.describe()}: shared_axes must be None, an int or a list of "
                             f"ints >= 1 (axes of an example, counted from 1), got "
                             f"{shared_axes!r}")
        self.shared_axes = None if axes is None else [int(a) for a in axes]

    def build(self, input_shape):
        super().build(input_shape)
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if axis >= len(input_shape):
                raise ValueError(f"{self.describe()}: shared_axes {self.shared_axes} name axis "
                                 f"{axis}, but inputs of shape {tuple(input_shape)} have axes "
                                 f"1..{len(input_shape) - 1}")
            shape[axis - 1] = 1
        if None in shape:
            raise ValueError(f"{self.describe()}: inputs of shape {tuple(input_shape)} have an "
                             f"unknown size on an axis that is not shared; give it a size or "
                             f"share it (shared_axes)")
        self.alpha = self.add_weight(shape=tuple(shape), initializer=self.alpha_initializer,
                                     name="alpha", regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return tuple(input_shape)

    def _forward(self, x, training):
        alpha = self.alpha.value
        y = np.maximum(x, 0) - alpha * np.maximum(-x, 0)
        return y, (x if training else None)

    def _backward_op(self, x, grad_z, need_input_grad):
        alpha = self.alpha.value
        grad_alpha = unbroadcast(grad_z * np.minimum(x, 0), alpha.shape)
        if not need_input_grad:
            return None, [grad_alpha]
        slope = np.where(x > 0, x.dtype.type(1), np.where(x < 0, alpha, x.dtype.type(0)))
        return grad_z * slope, [grad_alpha]

    def get_config(self):
        config = {"alpha_initializer": initializers.serialize(self.alpha_initializer),
                  "alpha_regularizer": None if self.alpha_regularizer is None
                  else _serialize(self.alpha_regularizer),
                  "alpha_constraint": None if self.alpha_constraint is None
                  else _serialize(self.alpha_constraint),
                  "shared_axes": self.shared_axes}
        return {**super().get_config(), **config}
