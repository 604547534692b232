"""Layers that move values without computing new ones (bilinear upsampling aside): Reshape,
Permute, UpSampling2D, Cropping2D and Identity, with Keras 3's arguments and rules."""
import math

import numpy as np

from .. import kernels
from .base import Layer
from .spatial import SpatialLayer, padding_config


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class Identity(Layer):
    """Returns its input unchanged (a placeholder Keras programs use, e.g. to switch a block
    off)."""

    def _forward(self, x, training):
        return x, None

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return grad_z, []


class Reshape(Layer):
    """Reshapes each example to `target_shape` (the batch axis is kept); one entry may be -1,
    inferred from the size of the example."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        who = self.describe()
        try:
            target = tuple(target_shape)
        except TypeError:
            raise TypeError(f"{who}: target_shape must be a tuple of ints, got "
                            f"{target_shape!r}") from None
        if not all(_is_int(d) for d in target):
            raise TypeError(f"{who}: target_shape must be a tuple of ints, got {target_shape!r}")
        if any(d < 1 and d != -1 for d in target) or list(target).count(-1) > 1:
            raise ValueError(f"{who}: every entry of target_shape must be a positive int, "
                             f"except one that may be -1 (inferred), got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        example = tuple(input_shape[1:])
        target = self.target_shape
        if None in example:
            return (input_shape[0], *(None if d == -1 else d for d in target))
        size = math.prod(example)
        known = abs(math.prod(target))  # the product of the sizes other than -1
        if size % known if -1 in target else size != known:
            raise ValueError(f"{self.describe()}: cannot reshape examples of shape {example} "
                             f"({size} values) to target_shape {target}")
        return (input_shape[0], *(size // known if d == -1 else d for d in target))

    def _forward(self, x, training):
        shape = self.compute_output_shape(x.shape)
        return x.reshape(x.shape[0], *shape[1:]), x.shape

    def _backward_op(self, shape, grad_z, need_input_grad):
        return grad_z.reshape(shape), []

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Permute(Layer):
    """Reorders the axes of each example: ``dims`` counts them from 1 (the batch axis stays
    first), e.g. ``Permute((2, 1))`` swaps the two axes of (batch, steps, features)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        who = self.describe()
        try:
            dims_tuple = tuple(dims)
        except TypeError:
            raise TypeError(f"{who}: dims must be a tuple of ints, got {dims!r}") from None
        if not all(_is_int(d) for d in dims_tuple):
            raise TypeError(f"{who}: dims must be a tuple of ints, got {dims!r}")
        if sorted(dims_tuple) != list(range(1, len(dims_tuple) + 1)):
            raise ValueError(f"{who}: dims must be a permutation of 1..{len(dims_tuple)} (the "
                             f"axes of an example, counted from 1), got {dims!r}")
        self.dims = tuple(int(d) for d in dims_tuple)
        self.input_ndim = len(self.dims) + 1

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def _forward(self, x, training):
        return np.ascontiguousarray(x.transpose(0, *self.dims)), None

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return np.ascontiguousarray(grad_z.transpose(np.argsort((0, *self.dims)))), []

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


#: what UpSampling2D and Resizing compute; Keras also takes "bicubic", "lanczos3",
#: "lanczos5" and "area", which convnet does not have
INTERPOLATIONS = ("nearest", "bilinear")


def check_interpolation(interpolation, who):
    if not isinstance(interpolation, str):
        raise TypeError(f"{who}: interpolation must be a string, got {interpolation!r}")
    mode = interpolation.lower()
    if mode not in INTERPOLATIONS:
        raise ValueError(f"{who}: interpolation must be one of {INTERPOLATIONS} (convnet has no "
                         f"{interpolation!r} resampling), got {interpolation!r}")
    return mode


class UpSampling2D(SpatialLayer):
    """Enlarges images `size` = (rows, columns) times. "nearest" repeats each pixel;
    "bilinear" interpolates as Keras' resize does: half-pixel centres, edges clamped (the
    same as PyTorch's ``interpolate(mode="bilinear", align_corners=False)``)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.size = kernels.as_int_tuple(size, 2, "size", self.describe())
        self.interpolation = check_interpolation(interpolation, self.describe())

    def _output_shape_nhwc(self, shape):
        n, h, w, c = shape
        return (n, None if h is None else h * self.size[0],
                None if w is None else w * self.size[1], c)

    def _forward_nhwc(self, x, ctx):
        n, h, w, c = x.shape
        sh, sw = self.size
        if ctx is not None:
            ctx["x_shape"] = x.shape
        if self.interpolation == "bilinear":
            return kernels.resize_bilinear(x, (h * sh, w * sw), name=self.describe())
        # every pixel broadcast to an sh x sw block, copied once
        blocks = np.broadcast_to(x[:, :, None, :, None, :], (n, h, sh, w, sw, c))
        return np.ascontiguousarray(blocks).reshape(n, h * sh, w * sw, c)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        n, h, w, c = ctx["x_shape"]
        if self.interpolation == "bilinear":
            return kernels.resize_bilinear_backward(grad_z, (n, h, w, c),
                                                    name=self.describe()), []
        sh, sw = self.size
        return grad_z.reshape(n, h, sh, w, sw, c).sum(axis=(2, 4)), []

    def get_config(self):
        return {**super().get_config(), "size": list(self.size),
                "interpolation": self.interpolation}


def _cropping_pairs(cropping, who):
    """((top, bottom), (left, right)) from an int, a pair or a pair of pairs (Keras' forms)."""
    message = (f"{who}: cropping must be an int >= 0, a pair (rows, columns) or "
               f"((top, bottom), (left, right)) of ints >= 0, got {cropping!r}")
    if _is_int(cropping):
        if cropping < 0:
            raise ValueError(message)
        return (int(cropping),) * 2, (int(cropping),) * 2
    try:
        parts = tuple(cropping)
    except TypeError:
        raise TypeError(message) from None
    if len(parts) != 2:
        raise ValueError(message)
    pairs = []
    for part in parts:
        pair = (part, part) if _is_int(part) else tuple(part) if isinstance(
            part, (tuple, list)) else None
        if pair is None or len(pair) != 2 or not all(_is_int(v) for v in pair):
            raise TypeError(message)
        if min(pair) < 0:
            raise ValueError(message)
        pairs.append(tuple(int(v) for v in pair))
    return tuple(pairs)


class Cropping2D(SpatialLayer):
    """Removes rows and columns at the edges of images: an int (all four), a pair
    (rows top and bottom, columns left and right) or ((top, bottom), (left, right))."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = _cropping_pairs(cropping, self.describe())

    def _output_shape_nhwc(self, shape):
        n, h, w, c = shape
        out = []
        for size, (before, after), what in zip((h, w), self.cropping, ("height", "width")):
            if size is not None and before + after >= size:
                raise ValueError(f"{self.describe()}: cropping {self.cropping} removes all of "
                                 f"the {what} ({size}) of inputs of shape "
                                 f"{self._from_nhwc_shape(shape)}")
            out.append(None if size is None else size - before - after)
        return (n, *out, c)

    def _forward_nhwc(self, x, ctx):
        _, h, w, _ = self._output_shape_nhwc(x.shape)
        (top, _), (left, _) = self.cropping
        return np.ascontiguousarray(x[:, top:top + h, left:left + w])

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return np.pad(grad_z, ((0, 0), *self.cropping, (0, 0))), []

    def get_config(self):
        return {**super().get_config(), "cropping": padding_config(self.cropping)}
