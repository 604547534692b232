"""Max, average and global pooling layers."""
from .. import kernels
from .spatial import SpatialLayer, padding_config


class _Pooling2D(SpatialLayer):
    """What MaxPooling2D and AveragePooling2D share: the window and its geometry."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 ceil_mode=False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        who = self.describe()
        self.pool_size = kernels.as_int_tuple(pool_size, 2, "pool_size", who)
        self.strides = self.pool_size if strides is None else kernels.as_int_tuple(
            strides, 2, "strides", who)
        kernels.resolve_padding(padding, self.pool_size, self.strides, (1, 1), (None, None), who)
        self.padding = padding.lower() if isinstance(padding, str) else padding
        if not isinstance(ceil_mode, bool):
            raise TypeError(f"{who}: ceil_mode must be True or False, got {ceil_mode!r}")
        self.ceil_mode = ceil_mode

    def _output_shape_nhwc(self, shape):
        geometry = kernels.window_geometry(shape[1:3], self.pool_size, self.strides, self.padding,
                                       (1, 1), self.ceil_mode, self.describe(),
                                       kernel_arg="pool_size")
        return (shape[0], *geometry.output_hw, shape[3])

    def _window(self):
        return dict(pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                    ceil_mode=self.ceil_mode, name=self.describe())

    def receptive_field_step(self):
        return self.pool_size, self.strides

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": padding_config(self.padding),
                "ceil_mode": self.ceil_mode}


class MaxPooling2D(_Pooling2D):
    """Max pooling; a window holding a NaN outputs NaN (as in PyTorch)."""

    def _forward_nhwc(self, x, ctx):
        y, argmax = kernels.max_pool2d(x, **self._window(), with_argmax=ctx is not None)
        if ctx is not None:
            ctx.update(argmax=argmax, x_shape=x.shape)
        return y

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return kernels.max_pool2d_backward(grad_z, ctx["argmax"], ctx["x_shape"],
                                           name=self.describe()), []


class AveragePooling2D(_Pooling2D):
    """Average pooling. Padded cells count toward a window's mean only with
    ``count_include_pad=True`` (PyTorch's option; Keras/TensorFlow behave as False)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 ceil_mode=False, count_include_pad=False, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, ceil_mode, **kwargs)
        if not isinstance(count_include_pad, bool):
            raise TypeError(f"{self.describe()}: count_include_pad must be True or False, "
                            f"got {count_include_pad!r}")
        self.count_include_pad = count_include_pad

    def _forward_nhwc(self, x, ctx):
        if ctx is not None:
            ctx["x_shape"] = x.shape
        return kernels.avg_pool2d(x, count_include_pad=self.count_include_pad, **self._window())

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return kernels.avg_pool2d_backward(grad_z, ctx["x_shape"],
                                           count_include_pad=self.count_include_pad,
                                           **self._window()), []

    def get_config(self):
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


class _GlobalPooling2D(SpatialLayer):
    """Pooling over all of height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with
    keepdims. Works on any image size, so a model ending in it takes inputs of any size."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = bool(keepdims)

    def _output_shape_nhwc(self, shape):
        return (shape[0], 1, 1, shape[3]) if self.keepdims else (shape[0], shape[3])

    def _forward_nhwc(self, x, ctx):
        if ctx is not None:
            ctx["x_shape"] = x.shape
        y = self._pool(x, ctx)
        return y.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else y

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return self._unpool(ctx, grad_z.reshape(grad_z.shape[0], -1)), []

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    def _pool(self, x, ctx):
        return kernels.global_avg_pool2d(x, name=self.describe())

    def _unpool(self, ctx, grad_y):
        return kernels.global_avg_pool2d_backward(grad_y, ctx["x_shape"], name=self.describe())


class GlobalMaxPooling2D(_GlobalPooling2D):
    def _pool(self, x, ctx):
        y, argmax = kernels.global_max_pool2d(x, with_argmax=ctx is not None,
                                              name=self.describe())
        if ctx is not None:
            ctx["argmax"] = argmax
        return y

    def _unpool(self, ctx, grad_y):
        return kernels.global_max_pool2d_backward(grad_y, ctx["argmax"], ctx["x_shape"],
                                                  name=self.describe())


# Keras' aliases
MaxPool2D, AvgPool2D = MaxPooling2D, AveragePooling2D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D
