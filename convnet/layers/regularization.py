"""Regularization layers: SpatialDropout2D, GaussianNoise, GaussianDropout (active only while
training, the identity at inference) and ActivityRegularization, with Keras 3's arguments."""
import math

import numpy as np

from .. import backend, random, regularizers
from .base import Layer
from .core import Dropout


def _real(value, who, arg, low, high, high_open=False):
    """`value` as a float in [low, high] (or [low, high)), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: {arg} must be a number, got {value!r}")
    value = float(value)
    if not (low <= value < high if high_open else low <= value <= high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{who}: {arg} must be in [{low}, {high}{bracket}, got {value!r}")
    return value


def _seed(seed, who):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"{who}: seed must be None or an int >= 0, got {seed!r}")
    return None if seed is None else int(seed)


class _Noise(Layer):
    """What the noise layers share: a seed (a generator of their own) or convnet's shared
    seeded generator, and noise only while training."""

    def _configure_seed(self, seed):
        self.seed = _seed(seed, self.describe())
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)

    def _random(self):
        return self._generator or random.generator()


class GaussianNoise(_Noise):
    """Adds zero-mean Gaussian noise of standard deviation `stddev` (in [0, 1], as Keras
    requires) while training; the identity at inference, and for the gradient."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _real(stddev, self.describe(), "stddev", 0, 1)
        self._configure_seed(seed)

    def _forward(self, x, training):
        if not training or self.stddev == 0:
            return x, None
        return x + self._random().normal(0.0, self.stddev, x.shape).astype(x.dtype), None

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return grad_z, []

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_Noise):
    """Multiplies the inputs by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))`` while training; the identity at inference. Keras takes
    rate = 1 too, whose noise would be infinite: convnet refuses it."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _real(rate, self.describe(), "rate", 0, 1, high_open=True)
        self._configure_seed(seed)

    def _forward(self, x, training):
        if not training or self.rate == 0:
            return x, None
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = self._random().normal(1.0, stddev, x.shape).astype(x.dtype)
        return x * noise, noise

    def _backward_op(self, noise, grad_z, need_input_grad):
        return (grad_z if noise is None else grad_z * noise), []

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: while training each channel of each image is zeroed
    with probability `rate` (the kept ones scaled by 1 / (1 - rate)), every pixel of it at
    once, since neighbouring pixels are correlated and dropping them one by one regularizes
    little. Keras' noise shape: (batch, 1, 1, channels), or (batch, channels, 1, 1) with
    data_format="channels_first"."""
    input_ndim = 4

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, **kwargs)
        self.seed = _seed(seed, self.describe())
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"{self.describe()}: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.data_format = backend.standardize_data_format(data_format)
        self.noise_shape = ((None, None, 1, 1) if self.data_format == "channels_first"
                            else (None, 1, 1, None))

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        return {**config, "data_format": self.data_format}


class ActivityRegularization(Layer):
    """Passes its input through and adds ``(l1 * sum(|x|) + l2 * sum(x**2)) / batch_size``
    to the loss (Keras 3 divides an activity penalty by the batch size), with its gradient."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        who = self.describe()
        self.l1 = _real(l1, who, "l1", 0, math.inf, high_open=True)
        self.l2 = _real(l2, who, "l2", 0, math.inf, high_open=True)
        self.activity_regularizer = regularizers.L1L2(l1=self.l1, l2=self.l2)

    def _forward(self, x, training):
        return x, None

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return grad_z, []

    def get_config(self):
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}
