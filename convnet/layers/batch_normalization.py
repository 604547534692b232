"""BatchNormalization."""
import numpy as np

from .. import _checks, constraints, initializers, kernels, regularizers
from .base import Layer, _get_constraint, _get_regularizer


class BatchNormalization(Layer):
    """Keras 3's batch normalization over the channel `axis`.

    In training (``training=True`` on a trainable layer) each channel is normalised with
    its batch mean and biased variance, gamma * (x - mean) / sqrt(variance + epsilon) +
    beta; otherwise with the moving statistics. A frozen layer (``trainable=False``) runs
    in inference mode even in training, as in Keras, and its gradient treats the moving
    statistics as constants.

    The moving statistics change only in ``fit`` / ``train_on_batch`` (after the
    optimizer's step), by Keras' rule moving = moving * momentum + batch * (1 - momentum)
    with the biased batch variance (PyTorch uses the unbiased one, and calls 1 - momentum
    its momentum). A call with ``training=True`` outside a training step leaves them as
    they are.

    Weights in Keras' order: gamma (``scale``), beta (``center``), moving_mean,
    moving_variance; the last two are non-trainable. The kernels normalise the last axis,
    so another axis (``axis=1`` after a channels_first convolution) is moved last and back.
    ``synchronized=True`` (Keras: the TensorFlow backend only) and ``renorm=True`` are
    refused; the renorm arguments are accepted so that Keras' configs load.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        who = self.describe()
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{who}: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = _checks.real(who, "momentum", momentum, 0, 1)
        self.epsilon = _checks.real(who, "epsilon", epsilon, 0)
        self.center = _checks.boolean(who, "center", center)
        self.scale = _checks.boolean(who, "scale", scale)
        if _checks.boolean(who, "synchronized", synchronized):
            raise ValueError(f"{who}: synchronized=True is not supported (Keras supports it on "
                             f"the TensorFlow backend only); under convnet.distributed each "
                             f"process normalises with its own batch statistics")
        if _checks.boolean(who, "renorm", renorm):
            raise ValueError(f"{who}: renorm=True (batch renormalization) is not supported")
        self.synchronized = False
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = _checks.real(who, "renorm_momentum", renorm_momentum, 0, 1)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = _get_regularizer(beta_regularizer)
        self.gamma_regularizer = _get_regularizer(gamma_regularizer)
        self.beta_constraint = _get_constraint(beta_constraint)
        self.gamma_constraint = _get_constraint(gamma_constraint)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        if not -len(input_shape) <= self.axis < len(input_shape):
            raise ValueError(f"{self.describe()}: axis={self.axis} is out of range for inputs "
                             f"of shape {input_shape}")
        return input_shape

    def build(self, input_shape):
        super().build(input_shape)
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(f"{self.describe()}: the size of axis {self.axis} must be known to "
                             f"build, got shape {tuple(input_shape)}")
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, initializer=self.gamma_initializer,
                                         name="gamma", regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape=shape, initializer=self.beta_initializer,
                                        name="beta", regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)
        self.moving_mean = self.add_weight(shape=shape, initializer=self.moving_mean_initializer,
                                           name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=shape,
                                               initializer=self.moving_variance_initializer,
                                               name="moving_variance", trainable=False)

    # -- computing -----------------------------------------------------------------------------

    def _channels_last(self, array):
        """`array` with the normalised axis last (contiguous), and whether it was moved."""
        axis = self.axis % array.ndim
        if axis == array.ndim - 1:
            return array, False
        return np.ascontiguousarray(np.moveaxis(array, axis, -1)), True

    def _channels_back(self, array, moved):
        if not moved:
            return array
        return np.ascontiguousarray(np.moveaxis(array, -1, self.axis % array.ndim))

    def _parameters(self):
        return (None if self.gamma is None else self.gamma.value,
                None if self.beta is None else self.beta.value)

    def _forward(self, x, training):
        rows, moved = self._channels_last(x)
        gamma, beta = self._parameters()
        name = self.describe()
        if training and self.trainable:
            y, mean, variance, inv_std = kernels.batch_norm_train(rows, gamma, beta, self.epsilon,
                                                                  name=name)
            ctx = {"x": rows, "mean": mean, "variance": variance, "inv_std": inv_std}
        else:
            y = kernels.batch_norm_inference(rows, gamma, beta, self.moving_mean.value,
                                             self.moving_variance.value, self.epsilon, name=name)
            ctx = {"x": rows} if training else None
        return self._channels_back(y, moved), ctx

    def _backward_op(self, ctx, grad_y, need_input_grad):
        grad_rows, moved = self._channels_last(grad_y)
        gamma, _ = self._parameters()
        name = self.describe()
        if "mean" in ctx:
            grad_x, grad_gamma, grad_beta = kernels.batch_norm_train_backward(
                ctx["x"], grad_rows, ctx["mean"], ctx["inv_std"], gamma, name=name)
        else:
            grad_x, grad_gamma, grad_beta = kernels.batch_norm_inference_backward(
                ctx["x"], grad_rows, gamma, self.moving_mean.value, self.moving_variance.value,
                self.epsilon, need_parameter_grads=self.trainable, name=name)
        grads = ([grad_gamma] if self.scale else []) + ([grad_beta] if self.center else [])
        grad_x = self._channels_back(grad_x, moved) if need_input_grad else None
        return grad_x, grads + [None, None]

    def _update_state(self, ctx):
        """Keras' moving averages of this training call's batch statistics (none when the
        layer ran on its moving statistics, frozen)."""
        if ctx is None or "mean" not in ctx:
            return
        keep = self.momentum
        self.moving_mean.assign(self.moving_mean.value * keep + ctx["mean"] * (1.0 - keep))
        self.moving_variance.assign(self.moving_variance.value * keep
                                    + ctx["variance"] * (1.0 - keep))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(
                    self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
                "synchronized": self.synchronized, "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum}
