"""The base of every layer that takes images: NHWC inside, either layout outside."""
import numpy as np

from .. import backend
from .base import Layer


def padding_config(padding):
    """Padding in a JSON-friendly form (nested tuples become lists)."""
    if isinstance(padding, (str, int)):
        return padding
    return [padding_config(p) for p in padding]


class SpatialLayer(Layer):
    """A layer on 4-D image batches.

    Subclasses work on NHWC only (`_forward_nhwc`, `_backward_op_nhwc`,
    `_output_shape_nhwc`); with ``data_format="channels_first"`` this class
    transposes at the boundary, so NCHW users get NCHW back. The activation's
    derivative is taken in NHWC too, where `_forward_nhwc` kept z and y.
    """
    input_ndim = 4

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"{self.describe()}: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.data_format = backend.standardize_data_format(data_format)

    @property
    def channels_first(self):
        return self.data_format == "channels_first"

    def _to_nhwc_shape(self, shape):
        shape = tuple(shape)
        return (shape[0], shape[2], shape[3], shape[1]) if self.channels_first else shape

    def _from_nhwc_shape(self, shape):
        shape = tuple(shape)
        if self.channels_first and len(shape) == 4:
            return (shape[0], shape[3], shape[1], shape[2])
        return shape

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        return self._from_nhwc_shape(self._output_shape_nhwc(self._to_nhwc_shape(input_shape)))

    def _forward(self, x, training):
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        ctx = {} if training else None
        y = self._forward_nhwc(x, ctx)
        if self.channels_first and y.ndim == 4:
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return y, ctx

    def _backward(self, ctx, grad_y, need_input_grad, skip_activation=False):
        if self.channels_first and grad_y.ndim == 4:
            grad_y = np.ascontiguousarray(grad_y.transpose(0, 2, 3, 1))
        grad_x, grad_w = self._backward_nhwc(ctx, grad_y, need_input_grad, skip_activation)
        if self.channels_first and grad_x is not None:
            grad_x = np.ascontiguousarray(grad_x.transpose(0, 3, 1, 2))
        return grad_x, grad_w

    def _backward_nhwc(self, ctx, grad_y, need_input_grad, skip_activation):
        if not skip_activation:
            grad_y = self._through_activation(ctx, grad_y)
        return self._backward_op_nhwc(ctx, grad_y, need_input_grad)

    def _output_shape_nhwc(self, shape):
        raise NotImplementedError

    def _forward_nhwc(self, x, ctx):
        """The NHWC output; keep what backward needs in ctx (a dict, or None at inference)."""
        raise NotImplementedError

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        """(grad_x, weight grads) from the gradient of the pre-activation output."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
