"""Preprocessing layers: Normalization (mean and variance given or learned with adapt),
Rescaling, Resizing and CenterCrop, with Keras 3's arguments, defaults and formulas. They
are differentiable, like any layer, so they can sit anywhere in a model."""
import math

import numpy as np

from .. import backend, kernels
from ..data_adapters import PyDataset, _to_numpy
from .base import Layer
from .reshaping import check_interpolation
from .spatial import SpatialLayer


def _finite_array(value, who, arg):
    """A number or nested list of numbers as a float64 array, or a clear error."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {arg} must be a number or an array of numbers, got "
                        f"{value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{who}: {arg} must be finite, got {value!r}")
    return array


def _as_config(array):
    """A float64 array as Keras writes it in a config: a number, or nested lists."""
    return None if array is None else array.tolist()


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), epsilon)`` with Keras' epsilon (1e-7), one mean and
    variance per index of `axis` (the axes kept; the others are averaged over); with
    ``invert=True`` the reverse, ``mean + x * max(sqrt(variance), epsilon)``.

    Give `mean` and `variance`, or learn them with ``adapt(data)``: then they are the
    layer's non-trainable weights ``mean``, ``variance`` and ``count`` (as in Keras, count is
    not updated by adapt; convnet stores it as a float, so the model file holds it)."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        who = self.describe()
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise TypeError(f"{who}: axis must be None, an int or a tuple of ints, got {axis!r}")
        self.axis = axis
        if (mean is None) != (variance is None):
            raise ValueError(f"{who}: give both mean and variance, or neither (to learn them "
                             f"with adapt); got mean={mean!r}, variance={variance!r}")
        self.input_mean = None if mean is None else _finite_array(mean, who, "mean")
        self.input_variance = None if variance is None else _finite_array(variance, who,
                                                                          "variance")
        if mean is not None:
            if self.input_mean.shape != self.input_variance.shape:
                raise ValueError(f"{who}: mean and variance must have the same shape, got "
                                 f"{self.input_mean.shape} and {self.input_variance.shape}")
            if self.input_mean.ndim > len(self.axis):
                raise ValueError(f"{who}: mean of shape {self.input_mean.shape} has more axes "
                                 f"than axis={self.axis} keeps")
            if np.any(self.input_variance < 0):
                raise ValueError(f"{who}: variance must be >= 0, got {variance!r}")
        if not isinstance(invert, (bool, np.bool_)):
            raise TypeError(f"{who}: invert must be True or False, got {invert!r}")
        self.invert = bool(invert)
        self._keep_axis = self._reduce_axis = self._broadcast_shape = None

    def build(self, input_shape):
        super().build(input_shape)
        ndim = len(input_shape)
        who = self.describe()
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(f"{who}: axis {self.axis} is out of range for inputs of shape "
                             f"{tuple(input_shape)}")
        keep = tuple(sorted(a % ndim for a in self.axis))
        if any(input_shape[a] is None for a in keep):
            raise ValueError(f"{who}: the axes kept, {keep}, of inputs of shape "
                             f"{tuple(input_shape)} must have known sizes")
        self._keep_axis = keep
        self._reduce_axis = tuple(a for a in range(ndim) if a not in keep)
        self._broadcast_shape = tuple(input_shape[a] if a in keep else 1 for a in range(ndim))
        shape = tuple(input_shape[a] for a in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(shape=shape, initializer="zeros", name="mean",
                                              trainable=False)
            self.adapt_variance = self.add_weight(shape=shape, initializer="ones",
                                                  name="variance", trainable=False)
            self.count = self.add_weight(shape=(), initializer="zeros", name="count",
                                         trainable=False)
        else:
            self._given = tuple(self._broadcast_given(v) for v in (self.input_mean,
                                                                   self.input_variance))

    def _broadcast_given(self, value):
        """A given mean or variance, its axes lined up with the last of the kept axes
        (Keras' rule), broadcast to the kept axes' sizes."""
        shape = [1] * len(self._broadcast_shape)
        for i in range(1, value.ndim + 1):
            shape[self._keep_axis[-i]] = value.shape[-i]
        try:
            return np.broadcast_to(value.reshape(shape), self._broadcast_shape).astype(self.dtype)
        except ValueError:
            raise ValueError(f"{self.describe()}: mean and variance of shape {value.shape} do "
                             f"not fit the kept axes {self._keep_axis} of inputs of shape "
                             f"{self.input_shape}") from None

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return tuple(input_shape)

    def _statistics(self):
        """(mean, max(sqrt(variance), epsilon)) shaped to broadcast against the inputs."""
        if self.input_mean is None:
            mean = self.adapt_mean.value.reshape(self._broadcast_shape)
            variance = self.adapt_variance.value.reshape(self._broadcast_shape)
        else:
            mean, variance = self._given
        return mean, np.maximum(np.sqrt(variance), self.dtype.type(backend.epsilon()))

    def _forward(self, x, training):
        mean, std = self._statistics()
        y = mean + x * std if self.invert else (x - mean) / std
        return y, (std if training else None)

    def _backward_op(self, std, grad_z, need_input_grad):
        grad_x = grad_z * std if self.invert else grad_z / std
        return grad_x, [None] * len(self.weights)

    def adapt(self, data):
        """Learn the mean and variance from `data`: an array (reduced at once), or a
        PyDataset or any iterable of batches (arrays, or (x, y) tuples whose x is taken),
        combined batch by batch by Keras' running formula. Computed in float64."""
        who = self.describe()
        if self.input_mean is not None:
            raise ValueError(f"{who} was given its mean and variance; adapt() learns them only "
                             f"for a layer made without them")
        if hasattr(data, "shape") and not isinstance(data, (list, tuple)):
            batches = None  # an array (or a tf / torch tensor): reduced at once
            first = self._batch_array(data)
        else:
            if isinstance(data, PyDataset):
                batches = (data[i] for i in range(len(data)))
            elif hasattr(data, "__iter__"):
                batches = iter(data)
            else:
                raise TypeError(f"{who}: adapt() takes an array, a PyDataset or an iterable of "
                                f"batches, got {type(data).__name__}")
            first = next(batches, None)
            if first is None:
                raise ValueError(f"{who}: adapt() received no batches")
            first = self._batch_array(first)
        self._check_adapt_shape(first.shape)
        if batches is None:
            total_mean = first.mean(axis=self._reduce_axis, dtype=np.float64)
            total_var = first.var(axis=self._reduce_axis, dtype=np.float64)
        else:
            total_mean = total_var = 0.0
            total_count = 0
            for batch in (first, *(self._batch_array(b) for b in batches)):
                self._check_adapt_shape(batch.shape)
                batch_mean = batch.mean(axis=self._reduce_axis, dtype=np.float64)
                batch_var = batch.var(axis=self._reduce_axis, dtype=np.float64)
                batch_count = math.prod(batch.shape[a] for a in self._reduce_axis)
                total_count += batch_count
                batch_weight = batch_count / total_count
                existing_weight = 1.0 - batch_weight
                new_mean = total_mean * existing_weight + batch_mean * batch_weight
                total_var = ((total_var + (total_mean - new_mean) ** 2) * existing_weight
                             + (batch_var + (batch_mean - new_mean) ** 2) * batch_weight)
                total_mean = new_mean
        self.adapt_mean.assign(np.asarray(total_mean).reshape(self.adapt_mean.shape))
        self.adapt_variance.assign(np.asarray(total_var).reshape(self.adapt_variance.shape))

    def _batch_array(self, batch):
        if isinstance(batch, (tuple, list)):
            batch = batch[0]  # the x of (x, y) or (x, y, sample_weight)
        array = _to_numpy(batch)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{self.describe()}: adapt() data must hold real numbers, got dtype "
                            f"{array.dtype}")
        return array

    def _check_adapt_shape(self, shape):
        if not self.built:
            self._maybe_build((None,) + tuple(shape[1:]))
        expected = self.input_shape
        if len(shape) != len(expected) or any(shape[a] != expected[a] for a in self._keep_axis):
            raise ValueError(f"{self.describe()} was built for inputs of shape {expected}; "
                             f"adapt() got data of shape {tuple(shape)}")

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": _as_config(self.input_mean),
                "variance": _as_config(self.input_variance)}


class Rescaling(Layer):
    """``x * scale + offset``: e.g. ``Rescaling(1 / 255)`` maps uint8 pixels to [0, 1].
    `scale` and `offset` may be arrays that broadcast against the inputs (per channel); with
    ``keras.config.image_data_format() == "channels_first"`` an array scale is lined up with
    the channel axis first, as in Keras."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _finite_array(scale, self.describe(), "scale")
        self.offset = _finite_array(offset, self.describe(), "offset")

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        self._check_broadcast(tuple(input_shape))
        return tuple(input_shape)

    def _check_broadcast(self, shape):
        """scale and offset must broadcast against the inputs without enlarging them."""
        for arg, value in (("scale", self._scale()), ("offset", self.offset)):
            if value.ndim > len(shape) or any(
                    v != 1 and s is not None and v != s
                    for v, s in zip(value.shape[::-1], shape[::-1])):
                shown = self.scale.shape if arg == "scale" else value.shape
                raise ValueError(f"{self.describe()}: {arg} of shape {shown} "
                                 f"does not broadcast against inputs of shape {shape} without "
                                 f"enlarging them")

    def _scale(self):
        scale = self.scale.astype(self.dtype)
        if scale.ndim and backend.image_data_format() == "channels_first":
            scale = scale.reshape(scale.shape + (1,) * (3 - scale.ndim))
        return scale

    def _forward(self, x, training):
        self._check_broadcast(x.shape)
        return x * self._scale() + self.offset.astype(self.dtype), None

    def _backward_op(self, ctx, grad_z, need_input_grad):
        return grad_z * self._scale(), []

    def get_config(self):
        return {**super().get_config(), "scale": _as_config(self.scale),
                "offset": _as_config(self.offset)}


def _positive_int(value, who, arg):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 \
            or value > np.iinfo(np.int32).max:
        raise ValueError(f"{who}: {arg} must be an int from 1 to 2**31 - 1, got {value!r}")
    return int(value)


class _Resampling(SpatialLayer):
    """What Resizing and CenterCrop share: images cropped or padded (a box computed from the
    input size), then resampled to (height, width); backward undoes each step's adjoint."""

    interpolation = "bilinear"

    def _configure_size(self, height, width):
        self.height = _positive_int(height, self.describe(), "height")
        self.width = _positive_int(width, self.describe(), "width")

    def _output_shape_nhwc(self, shape):
        return (shape[0], self.height, self.width, shape[3])

    def _box(self, h, w):
        """((top, bottom), (left, right)) to crop (>= 0) or pad (<= 0), or None."""
        raise NotImplementedError

    def _forward_nhwc(self, x, ctx):
        box = self._box(*x.shape[1:3])
        if ctx is not None:
            ctx.update(x_shape=x.shape, box=box)
        if box is not None:
            (top, bottom), (left, right) = box
            if min(top, bottom, left, right) >= 0:
                x = np.ascontiguousarray(x[:, top:x.shape[1] - bottom, left:x.shape[2] - right])
            else:
                x = np.pad(x, ((0, 0), (-top, -bottom), (-left, -right), (0, 0)),
                           constant_values=self.fill_value)
        if ctx is not None:
            ctx["resampled_shape"] = x.shape
        if x.shape[1:3] == (self.height, self.width):
            return x
        resize = (kernels.resize_bilinear if self.interpolation == "bilinear"
                  else kernels.resize_nearest)
        return resize(x, (self.height, self.width), name=self.describe())

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        shape = ctx["resampled_shape"]
        if shape[1:3] != (self.height, self.width):
            backward = (kernels.resize_bilinear_backward if self.interpolation == "bilinear"
                        else kernels.resize_nearest_backward)
            grad_z = backward(grad_z, shape, name=self.describe())
        box = ctx["box"]
        if box is None:
            return grad_z, []
        (top, bottom), (left, right) = box
        if min(top, bottom, left, right) >= 0:
            return np.pad(grad_z, ((0, 0), *box, (0, 0))), []
        h, w = ctx["x_shape"][1:3]
        return np.ascontiguousarray(grad_z[:, -top:-top + h, -left:-left + w]), []


def _aspect_crop(h, w, height, width):
    """Keras' crop_to_aspect_ratio box: the largest centred window of the target's aspect
    ratio (its sizes rounded down, as Keras' int(float(...)) does)."""
    crop_h = max(min(h, int(float(w * height) / width)), 1)
    crop_w = max(min(w, int(float(h * width) / height)), 1)
    top, left = int(float(h - crop_h) / 2), int(float(w - crop_w) / 2)
    return (top, h - crop_h - top), (left, w - crop_w - left)


class Resizing(_Resampling):
    """Resizes images to (height, width), by Keras' resize: "bilinear" (half-pixel centres,
    edges clamped, no antialiasing) or "nearest". With ``crop_to_aspect_ratio`` the largest
    centred window of the target's aspect ratio is resized; with ``pad_to_aspect_ratio`` the
    images are first padded on both sides with `fill_value` to that ratio (as Keras pads:
    the same number of rows, or columns, on each side).

    Keras' "bicubic", "lanczos" and "area" resampling and ``antialias=True`` are refused, as
    is any fill_mode but "constant" (the only one Keras' resize has)."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        who = self.describe()
        self._configure_size(height, width)
        self.interpolation = check_interpolation(interpolation, who)
        for arg, value in (("crop_to_aspect_ratio", crop_to_aspect_ratio),
                           ("pad_to_aspect_ratio", pad_to_aspect_ratio),
                           ("antialias", antialias)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{who}: {arg} must be True or False, got {value!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{who}: only one of crop_to_aspect_ratio and pad_to_aspect_ratio "
                             f"can be True")
        if antialias:
            raise ValueError(f"{who}: antialias=True is not supported (convnet resizes without "
                             f"antialiasing, Keras' default)")
        if fill_mode != "constant":
            raise ValueError(f"{who}: fill_mode must be 'constant', got {fill_mode!r}")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(_finite_array(fill_value, who, "fill_value"))
        self.antialias = False

    def _box(self, h, w):
        if self.crop_to_aspect_ratio:
            return _aspect_crop(h, w, self.height, self.width)
        if self.pad_to_aspect_ratio:
            pad_h = max(h, int(float(w * self.height) / self.width))
            pad_w = max(w, int(float(h * self.width) / self.height))
            rows, cols = int(float(pad_h - h) / 2), int(float(pad_w - w) / 2)
            return (-rows, -rows), (-cols, -cols)
        return None

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(_Resampling):
    """The centred (height, width) window of each image. An image smaller than that along
    either axis is resized instead, as Keras does: its largest centred window of the target's
    aspect ratio, bilinearly resampled to (height, width)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self._configure_size(height, width)

    def _box(self, h, w):
        if h >= self.height and w >= self.width:
            top, left = (h - self.height) // 2, (w - self.width) // 2
            return (top, h - self.height - top), (left, w - self.width - left)
        return _aspect_crop(h, w, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
