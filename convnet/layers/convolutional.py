"""Conv2D."""
from .. import activations, kernels
from .base import KernelMixin
from .spatial import SpatialLayer, padding_config


class Conv2D(KernelMixin, SpatialLayer):
    """2-D convolution over NHWC images with a (kh, kw, in, filters) kernel, like Keras.

    ``padding`` takes "valid", "same" (TensorFlow's rule), an int, a pair, or
    ((top, bottom), (left, right)).
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        who = self.describe()
        self.filters = kernels.as_int_tuple(filters, 1, "filters", who)[0]
        self.kernel_size = kernels.as_int_tuple(kernel_size, 2, "kernel_size", who)
        self.strides = kernels.as_int_tuple(strides, 2, "strides", who)
        self.dilation_rate = kernels.as_int_tuple(dilation_rate, 2, "dilation_rate", who)
        # Validates the form of padding now; the amounts depend on the input size.
        kernels.resolve_padding(padding, self.kernel_size, self.strides, self.dilation_rate,
                            (None, None), who)
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self._configure_kernel(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer, bias_regularizer, kernel_constraint,
                               bias_constraint)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self._to_nhwc_shape(input_shape)[3]
        if channels is None:
            raise ValueError(f"{self.describe()}: the channel dimension of the input must be "
                             f"known to build, got shape {tuple(input_shape)}")
        self._add_kernel_and_bias((*self.kernel_size, channels, self.filters))

    def _output_shape_nhwc(self, shape):
        geometry = kernels.window_geometry(shape[1:3], self.kernel_size, self.strides, self.padding,
                                       self.dilation_rate, False, self.describe())
        return (shape[0], *geometry.output_hw, self.filters)

    @property
    def _fused_relu(self):
        """A plain ReLU runs inside the kernels, forward and backward, on each block
        while it is in cache."""
        return isinstance(self.activation, activations.ReLU) and self.activation.plain

    def _forward_nhwc(self, x, ctx):
        fused = self._fused_relu
        z = kernels.conv2d(x, self.kernel.value, None if self.bias is None else self.bias.value,
                           self.strides, self.padding, self.dilation_rate, relu=fused,
                           name=self.describe())
        if ctx is not None:
            ctx["x"] = x
            if fused:
                # Its derivative needs only the output, which stands in for z as well.
                ctx.update(z=z, y=z)
        if self.activation is None or fused:
            return z
        return self._activate(z, ctx)

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
            self.dilation_rate, need_input_grad, relu_output, name=self.describe())
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def receptive_field_step(self):
        kernel = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
        return kernel, self.strides

    def macs(self, input_shape):
        n, h, w, c = self._to_nhwc_shape(input_shape)
        _, out_h, out_w, _ = self._output_shape_nhwc((n, h, w, c))
        if out_h is None or out_w is None:
            return None
        return out_h * out_w * self.kernel_size[0] * self.kernel_size[1] * c * self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": padding_config(self.padding),
                "dilation_rate": list(self.dilation_rate), **self._kernel_config()}

