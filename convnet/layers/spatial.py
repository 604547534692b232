"""The base of every layer that takes images: NHWC inside, either layout outside."""
import numpy as np

from .base import Layer


def padding_config(padding):
    """Padding in a JSON-friendly form (nested tuples become lists)."""
    if isinstance(padding, (str, int)):
        return padding
    return [padding_config(p) for p in padding]


class SpatialLayer(Layer):
    """A layer on 4-D image batches.

    Subclasses work on NHWC only (`_call_nhwc`, `_backward_nhwc`,
    `_output_shape_nhwc`); with ``data_format="channels_first"`` this class
    transposes at the boundary, so NCHW users get NCHW back. The activation's
    derivative is taken in NHWC too, where `_call_nhwc` cached z and y.
    """
    input_ndim = 4

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        data_format = "channels_last" if data_format is None else data_format
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"{self.describe()}: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.data_format = data_format

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

    def call(self, x, training=False):
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        y = self._call_nhwc(x, training)
        if self.channels_first and y.ndim == 4:
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return y

    def _backward_from_output(self, grad_y, need_input_grad):
        # In NHWC, where _call_nhwc cached the pre-activation output and the output.
        return self._in_nhwc(self._backward_from_output_nhwc, grad_y, need_input_grad)

    def _backward(self, grad_z, need_input_grad=True):
        return self._in_nhwc(self._backward_nhwc, grad_z, need_input_grad)

    def _in_nhwc(self, backward, grad, need_input_grad):
        """backward(grad, need_input_grad) on NHWC, whatever the layer's data_format."""
        if self.channels_first and grad.ndim == 4:
            grad = np.ascontiguousarray(grad.transpose(0, 2, 3, 1))
        grad_x = backward(grad, need_input_grad)
        if self.channels_first and grad_x is not None:
            grad_x = np.ascontiguousarray(grad_x.transpose(0, 3, 1, 2))
        return grad_x

    def _backward_from_output_nhwc(self, grad_y, need_input_grad):
        return self._backward_nhwc(self._through_activation(grad_y), need_input_grad)

    def _output_shape_nhwc(self, shape):
        raise NotImplementedError

    def _call_nhwc(self, x, training):
        raise NotImplementedError

    def _backward_nhwc(self, grad_y, need_input_grad):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
