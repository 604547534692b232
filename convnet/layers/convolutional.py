"""Conv2D (with groups), DepthwiseConv2D, SeparableConv2D and Conv2DTranspose."""
import math

import numpy as np

from .. import activations, constraints, initializers, kernels, regularizers
from ..utils import conv_transpose_padding
from .base import KernelMixin, _get_constraint, _get_regularizer
from .spatial import SpatialLayer, padding_config


class _Convolution(SpatialLayer):
    """What the 2-D convolutions share: a window (kernel_size, strides, padding,
    dilation_rate) validated when the layer is made, and an activation whose plain ReLU
    runs inside the kernels that can fuse it."""

    def __init__(self, kernel_size, strides, padding, data_format, dilation_rate, activation,
                 **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        who = self.describe()
        self.kernel_size = kernels.as_int_tuple(kernel_size, 2, "kernel_size", who)
        self.strides = kernels.as_int_tuple(strides, 2, "strides", who)
        self.dilation_rate = kernels.as_int_tuple(dilation_rate, 2, "dilation_rate", who)
        # Validates the form of padding now; the amounts depend on the input size.
        kernels.resolve_padding(padding, self.kernel_size, self.strides, self.dilation_rate,
                                (None, None), who)
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.activation = activations.get(activation)
        if isinstance(self.activation, activations.Linear):
            self.activation = None

    def _input_channels(self, input_shape):
        channels = self._to_nhwc_shape(input_shape)[3]
        if channels is None:
            raise ValueError(f"{self.describe()}: the channel dimension of the input must be "
                             f"known to build, got shape {tuple(input_shape)}")
        return channels

    def _window_output_hw(self, shape):
        return kernels.window_geometry(shape[1:3], self.kernel_size, self.strides, self.padding,
                                       self.dilation_rate, False, self.describe()).output_hw

    @property
    def _fused_relu(self):
        """A plain ReLU runs inside the kernels, forward and backward, on each block
        while it is in cache."""
        return isinstance(self.activation, activations.ReLU) and self.activation.plain

    def _finish_forward(self, z, ctx, fused):
        """The activation of z (ctx keeps what its derivative needs); with `fused`, z is
        already the ReLU's output, which stands in for z as well."""
        if fused:
            if ctx is not None:
                ctx.update(z=z, y=z)
            return z
        return self._activate(z, ctx)

    def receptive_field_step(self):
        kernel = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
        return kernel, self.strides

    def _output_pixels(self, input_shape):
        """out_h * out_w of one example, or None where the size is unknown."""
        _, out_h, out_w, _ = self._output_shape_nhwc(self._to_nhwc_shape(input_shape))
        return None if out_h is None or out_w is None else out_h * out_w

    def _window_config(self):
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": padding_config(self.padding),
                "dilation_rate": list(self.dilation_rate)}

    def _activation_config(self):
        return {"activation": ("linear" if self.activation is None
                               else activations.serialize(self.activation))}

    def _activity_config(self):
        return {"activity_regularizer": regularizers.serialize(self.activity_regularizer)}


class Conv2D(KernelMixin, _Convolution):
    """2-D convolution over NHWC images with a (kh, kw, in / groups, filters) kernel, like
    Keras.

    ``padding`` takes "valid", "same" (TensorFlow's rule), an int, a pair, or
    ((top, bottom), (left, right)). With ``groups`` > 1 the input channels and the filters
    are cut into that many blocks and block g of the filters sees only block g of the
    channels (Keras' and PyTorch's grouping); both counts must be divisible by it.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         activity_regularizer=activity_regularizer, **kwargs)
        who = self.describe()
        self.filters = kernels.as_int_tuple(filters, 1, "filters", who)[0]
        self.groups = kernels.as_int_tuple(groups, 1, "groups", who)[0]
        if self.filters % self.groups:
            raise ValueError(f"{who}: groups={self.groups} must divide filters={self.filters}")
        self._configure_kernel(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, kernel_constraint,
                               bias_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ValueError(f"{self.describe()}: groups={self.groups} must divide the input's "
                             f"{channels} channels (input shape {tuple(input_shape)})")
        self._add_kernel_and_bias((*self.kernel_size, channels // self.groups, self.filters))

    def _output_shape_nhwc(self, shape):
        return (shape[0], *self._window_output_hw(shape), self.filters)

    def _kernel_transforms(self):
        """The dict kernels.conv2d caches Winograd's transforms of the kernel in, or None
        where Winograd cannot serve this layer.

        The transforms belong to one value of the kernel: a training step changes it once
        (and bumps its ``version``), while the forward pass and both gradients of a step,
        and every batch of ``predict``, use it as it is. The dict is kept with the version
        and a copy of the kernel it was made for, and is replaced when either differs, so
        a kernel written in place behind the variable's back (``np.asarray(v)[...] = ...``)
        is never convolved with a stale transform (the comparison costs a read of the
        kernel, a few microseconds, against the transform's einsum).
        """
        if self.groups != 1 or not kernels.winograd_serves(self.kernel_size, self.strides,
                                                            self.dilation_rate):
            return None
        kernel = self.kernel.value
        cache = self.__dict__.get("_winograd_cache")
        if (cache is None or cache[0] != self.kernel.version or cache[1].shape != kernel.shape
                or cache[1].dtype != kernel.dtype or not np.array_equal(cache[1], kernel)):
            cache = (self.kernel.version, kernel.copy(), {})
            object.__setattr__(self, "_winograd_cache", cache)  # not a tracked attribute
        return cache[2]

    def _forward_nhwc(self, x, ctx):
        fused = self._fused_relu
        z = kernels.conv2d(x, self.kernel.value, None if self.bias is None else self.bias.value,
                           self.strides, self.padding, self.dilation_rate, relu=fused,
                           groups=self.groups, kernel_transforms=self._kernel_transforms(),
                           name=self.describe())
        if ctx is not None:
            ctx["x"] = x
        return self._finish_forward(z, ctx, fused)

    def _backward_nhwc(self, ctx, grad_y, need_input_grad, skip_activation):
        if self._fused_relu and not skip_activation:
            # The ReLU's derivative, too, runs inside the kernel, a block at a time.
            return self._conv_backward(ctx, grad_y, need_input_grad, relu_output=ctx["y"])
        return super()._backward_nhwc(ctx, grad_y, need_input_grad, skip_activation)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return self._conv_backward(ctx, grad_z, need_input_grad)

    def _conv_backward(self, ctx, grad, need_input_grad, relu_output=None):
        grad_x, grad_kernel, grad_bias = kernels.conv2d_backward(
            ctx["x"], self.kernel.value, grad, self.strides, self.padding,
            self.dilation_rate, need_input_grad, relu_output, groups=self.groups,
            kernel_transforms=self._kernel_transforms(), name=self.describe())
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def macs(self, input_shape):
        pixels = self._output_pixels(input_shape)
        if pixels is None:
            return None
        channels = self._to_nhwc_shape(input_shape)[3]
        return pixels * math.prod(self.kernel_size) * channels // self.groups * self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._window_config(),
                "groups": self.groups, **self._kernel_config(), **self._activity_config()}


class DepthwiseConv2D(_Convolution):
    """Depthwise 2-D convolution, as Keras: each input channel c is filtered on its own by
    ``depth_multiplier`` filters kernel[:, :, c, m], giving output channel
    c * depth_multiplier + m. The kernel is (kh, kw, in_channels, depth_multiplier) and,
    as in Keras 3, the weight is named "kernel" (Keras 2 called it "depthwise_kernel");
    the bias has in_channels * depth_multiplier entries."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.depth_multiplier = kernels.as_int_tuple(depth_multiplier, 1, "depth_multiplier",
                                                     self.describe())[0]
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = _get_regularizer(depthwise_regularizer)
        self.bias_regularizer = _get_regularizer(bias_regularizer)
        self.depthwise_constraint = _get_constraint(depthwise_constraint)
        self.bias_constraint = _get_constraint(bias_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, channels, self.depth_multiplier),
            initializer=self.depthwise_initializer, name="kernel",
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.bias = (self.add_weight(shape=(channels * self.depth_multiplier,),
                                     initializer=self.bias_initializer, name="bias",
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)

    def _output_shape_nhwc(self, shape):
        channels = None if shape[3] is None else shape[3] * self.depth_multiplier
        return (shape[0], *self._window_output_hw(shape), channels)

    def _forward_nhwc(self, x, ctx):
        z = kernels.depthwise_conv2d(x, self.kernel.value,
                                     None if self.bias is None else self.bias.value,
                                     self.strides, self.padding, self.dilation_rate,
                                     name=self.describe())
        if ctx is not None:
            ctx["x"] = x
        return self._activate(z, ctx)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        grad_x, grad_kernel, grad_bias = kernels.depthwise_conv2d_backward(
            ctx["x"], self.kernel.value, grad_z, self.strides, self.padding, self.dilation_rate,
            need_input_grad, name=self.describe())
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def macs(self, input_shape):
        pixels = self._output_pixels(input_shape)
        if pixels is None:
            return None
        channels = self._to_nhwc_shape(input_shape)[3]
        return pixels * math.prod(self.kernel_size) * channels * self.depth_multiplier

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                **self._window_config(), **self._activation_config(), "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                **self._activity_config(),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class SeparableConv2D(_Convolution):
    """Depthwise separable 2-D convolution, as Keras: a depthwise convolution (kernel
    (kh, kw, in_channels, depth_multiplier), no bias) and then a 1x1 convolution (kernel
    (1, 1, in_channels * depth_multiplier, filters)) with the bias, whose plain ReLU runs
    inside its kernel. Weights: [depthwise_kernel, pointwise_kernel, bias]."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         activity_regularizer=activity_regularizer, **kwargs)
        who = self.describe()
        self.filters = kernels.as_int_tuple(filters, 1, "filters", who)[0]
        self.depth_multiplier = kernels.as_int_tuple(depth_multiplier, 1, "depth_multiplier",
                                                     who)[0]
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = _get_regularizer(depthwise_regularizer)
        self.pointwise_regularizer = _get_regularizer(pointwise_regularizer)
        self.bias_regularizer = _get_regularizer(bias_regularizer)
        self.depthwise_constraint = _get_constraint(depthwise_constraint)
        self.pointwise_constraint = _get_constraint(pointwise_constraint)
        self.bias_constraint = _get_constraint(bias_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self._input_channels(input_shape)
        self.depthwise_kernel = self.add_weight(
            shape=(*self.kernel_size, channels, self.depth_multiplier),
            initializer=self.depthwise_initializer, name="depthwise_kernel",
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            shape=(1, 1, channels * self.depth_multiplier, self.filters),
            initializer=self.pointwise_initializer, name="pointwise_kernel",
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint)
        self.bias = (self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                     name="bias", regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)

    def _output_shape_nhwc(self, shape):
        return (shape[0], *self._window_output_hw(shape), self.filters)

    def _forward_nhwc(self, x, ctx):
        fused = self._fused_relu
        depthwise = kernels.depthwise_conv2d(x, self.depthwise_kernel.value, None, self.strides,
                                             self.padding, self.dilation_rate,
                                             name=self.describe())
        z = kernels.conv2d(depthwise, self.pointwise_kernel.value,
                           None if self.bias is None else self.bias.value, relu=fused,
                           name=self.describe())
        if ctx is not None:
            ctx.update(x=x, depthwise=depthwise)
        return self._finish_forward(z, ctx, fused)

    def _backward_nhwc(self, ctx, grad_y, need_input_grad, skip_activation):
        if self._fused_relu and not skip_activation:
            return self._separable_backward(ctx, grad_y, need_input_grad, relu_output=ctx["y"])
        return super()._backward_nhwc(ctx, grad_y, need_input_grad, skip_activation)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return self._separable_backward(ctx, grad_z, need_input_grad)

    def _separable_backward(self, ctx, grad, need_input_grad, relu_output=None):
        name = self.describe()
        grad_depthwise, grad_pointwise, grad_bias = kernels.conv2d_backward(
            ctx["depthwise"], self.pointwise_kernel.value, grad, relu_output=relu_output,
            name=name)
        grad_x, grad_depthwise_kernel, _ = kernels.depthwise_conv2d_backward(
            ctx["x"], self.depthwise_kernel.value, grad_depthwise, self.strides, self.padding,
            self.dilation_rate, need_input_grad, name=name)
        grads = [grad_depthwise_kernel, grad_pointwise]
        return grad_x, grads + [grad_bias] if self.use_bias else grads

    def macs(self, input_shape):
        pixels = self._output_pixels(input_shape)
        if pixels is None:
            return None
        depth = self._to_nhwc_shape(input_shape)[3] * self.depth_multiplier
        return pixels * depth * (math.prod(self.kernel_size) + self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._window_config(),
                "depth_multiplier": self.depth_multiplier, **self._activation_config(),
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                **self._activity_config(),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class Conv2DTranspose(KernelMixin, _Convolution):
    """Transposed 2-D convolution, as Keras: the adjoint of a Conv2D with the same kernel,
    laid out (kh, kw, filters, in_channels) as in Keras (PyTorch's ConvTranspose2d weight is
    (in_channels, filters, kh, kw)).

    The output size follows Keras' rule: along each axis, with k = dilation*(kernel-1) + 1,
    (n-1)*s + max(k, s) for "valid" and n*s for "same" when ``output_padding`` is None,
    else (n-1)*s + k + output_padding ("valid") or (n-1)*s + k%2 + output_padding ("same").
    ``padding`` is "valid" or "same" only, ``output_padding`` must be smaller than
    ``strides``, and strides > 1 with dilation > 1 is refused, all as Keras does.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         activity_regularizer=activity_regularizer, **kwargs)
        who = self.describe()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"{who}: padding must be 'valid' or 'same' (as in Keras), got "
                             f"{padding!r}")
        self.filters = kernels.as_int_tuple(filters, 1, "filters", who)[0]
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{who}: strides > 1 together with dilation_rate > 1 is not "
                             f"supported (as in Keras), got strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = kernels.as_int_tuple(output_padding, 2, "output_padding", who,
                                                       minimum=0)
            if any(p >= s for p, s in zip(self.output_padding, self.strides)):
                raise ValueError(f"{who}: output_padding {self.output_padding} must be smaller "
                                 f"than strides {self.strides} in each dimension (as in Keras)")
        self._configure_kernel(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, kernel_constraint,
                               bias_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(shape=(*self.kernel_size, self.filters, channels),
                                      initializer=self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = (self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                     name="bias", regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)

    def _output_shape_nhwc(self, shape):
        output_hw = tuple(
            conv_transpose_padding(n, k, s, self.padding,
                                   None if self.output_padding is None
                                   else self.output_padding[axis], d)[0]
            for axis, (n, k, s, d) in enumerate(zip(shape[1:3], self.kernel_size, self.strides,
                                                    self.dilation_rate)))
        if any(v is not None and v < 1 for v in output_hw):
            raise ValueError(f"{self.describe()}: kernel_size {self.kernel_size} with padding "
                             f"{self.padding!r} and output_padding {self.output_padding} makes "
                             f"an empty output {output_hw} from inputs of shape {tuple(shape)}")
        return (shape[0], *output_hw, self.filters)

    def _forward_nhwc(self, x, ctx):
        fused = self._fused_relu
        z = kernels.conv2d_transpose(x, self.kernel.value,
                                     None if self.bias is None else self.bias.value,
                                     self.strides, self.padding, self.output_padding,
                                     self.dilation_rate, relu=fused, name=self.describe())
        if ctx is not None:
            ctx["x"] = x
        return self._finish_forward(z, ctx, fused)

    def _backward_nhwc(self, ctx, grad_y, need_input_grad, skip_activation):
        if self._fused_relu and not skip_activation:
            return self._transpose_backward(ctx, grad_y, need_input_grad, relu_output=ctx["y"])
        return super()._backward_nhwc(ctx, grad_y, need_input_grad, skip_activation)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return self._transpose_backward(ctx, grad_z, need_input_grad)

    def _transpose_backward(self, ctx, grad, need_input_grad, relu_output=None):
        grad_x, grad_kernel, grad_bias = kernels.conv2d_transpose_backward(
            ctx["x"], self.kernel.value, grad, self.strides, self.padding, self.output_padding,
            self.dilation_rate, need_input_grad, relu_output, name=self.describe())
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def receptive_field_step(self):
        """An output pixel depends on at most ceil(k / s) neighbouring input pixels; the
        output grid is finer than the input's, which the integer (kernel, stride) pair
        cannot say, so the receptive field reported is an upper bound."""
        kernel = tuple(-(-(d * (k - 1) + 1) // s) for k, d, s
                       in zip(self.kernel_size, self.dilation_rate, self.strides))
        return kernel, (1, 1)

    def macs(self, input_shape):
        _, h, w, c = self._to_nhwc_shape(input_shape)
        if h is None or w is None:
            return None
        return h * w * math.prod(self.kernel_size) * c * self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._window_config(),
                "output_padding": (None if self.output_padding is None
                                   else list(self.output_padding)),
                **self._kernel_config(), **self._activity_config()}
