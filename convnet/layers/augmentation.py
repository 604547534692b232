"""Keras 3's image augmentation layers: RandomFlip, RandomTranslation, RandomRotation,
RandomZoom, RandomCrop, RandomContrast and RandomBrightness.

They change images only in training (``fit`` calls them with ``training=True``) and are the
identity at inference (``predict``, ``evaluate``, ``model(x)``), except RandomCrop, which
centre-crops at inference. As in Keras, whose ``call`` defaults ``training`` to True, a layer
called on its own, outside any model and without ``training=``, augments.

Randomness is Keras' contract in kind, not in numbers: each call draws fresh values per image
(one crop window per batch for RandomCrop); an int ``seed`` gives the layer its own generator,
so the same seed gives the same sequence of calls, and without one the layer draws from
convnet's global generator, which ``convnet.utils.set_random_seed`` reseeds. The draws are
NumPy's, so they are not the numbers Keras' backends draw.

Translation, rotation and zoom resample every pixel through one projective transform per
image (``convnet.kernels.affine_transform``, Cython). Each layer has its exact gradient, so a
layer in the middle of a model trains: the resampling layers pass the gradient back through
the adjoint of their interpolation (``kernels.affine_transform_backward``).
"""
import math
import numbers

import numpy as np

from .. import kernels, random
from .base import outer_training
from .spatial import SpatialLayer

#: the fill modes and interpolations Keras' augmentation layers accept
FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _factor_bounds(factor, arg, who, low, high, open_low=False):
    """(lower, upper) from a number or a pair, each within [low, high] ((low, high] with
    `open_low`), as Keras reads it: a pair is sorted; a number f gives (-|f|, |f|), cut at
    `low` (so a number is an upper bound only where `low` is 0, as in RandomContrast)."""
    lowest = "(" if open_low else "["
    message = (f"{who}: {arg} must be a number or a pair of numbers in "
               f"{lowest}{low}, {high}], got {factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) for v in factor):
            raise ValueError(message)
        values = [float(v) for v in factor]
    elif _is_number(factor):
        values = [float(factor)]
    else:
        raise ValueError(message)
    if any(math.isnan(v) or v > high or v < low or (open_low and v == low) for v in values):
        raise ValueError(message)
    if len(values) == 2:
        return tuple(sorted(values))
    magnitude = abs(values[0])
    return max(-magnitude, low), magnitude


def _plain(value):
    """A number as a Python int or float (a NumPy scalar would not go into JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _config_value(value):
    """A factor as the user gave it, JSON-friendly (a tuple becomes a list)."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else _plain(value)


def _value_range(value_range, who):
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in value_range)):
        raise ValueError(f"{who}: value_range must be a pair of finite numbers [low, high], "
                         f"got {value_range!r}")
    return [_plain(v) for v in value_range]


def _check_seed(seed, who):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"{who}: seed must be a non-negative int or None, got {seed!r}")
    return None if seed is None else int(seed)


class RandomLayer(SpatialLayer):
    """What the augmentation layers share: a seeded generator, Keras' ``training`` default,
    the identity (and its gradient) at inference, and NHWC inside."""

    #: whether the layer leaves its input as it is at inference (RandomCrop does not)
    identity_at_inference = True

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.seed = _check_seed(seed, self.describe())
        self._generator = None if seed is None else np.random.default_rng(self.seed)

    def __call__(self, *args, **kwargs):
        # Keras' preprocessing layers declare call(data, training=True): with no flag from the
        # caller or an enclosing call, they augment. Models always pass theirs.
        if kwargs.get("training") is None and outer_training() is None:
            kwargs["training"] = True
        return super().__call__(*args, **kwargs)

    @property
    def generator(self):
        """The layer's own generator (seeded), else convnet's global one, looked up at each
        call so that set_random_seed takes effect."""
        return self._generator if self._generator is not None else random.generator()

    def _output_shape_nhwc(self, shape):
        return shape

    def _forward(self, x, training):
        if not training and self.identity_at_inference:
            return x, None
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        ctx = {}
        y = self._augment_nhwc(x, training, ctx)
        if self.channels_first:
            y = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
        return y, ctx

    def _backward(self, ctx, grad_y, need_input_grad, skip_activation=False):
        if ctx is None:
            return grad_y, []
        return super()._backward(ctx, grad_y, need_input_grad, skip_activation)

    def _augment_nhwc(self, x, training, ctx):
        """The NHWC output; keep what the backward pass needs in ctx."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(RandomLayer):
    """Flips each image with probability 1/2: left-right ("horizontal"), top-bottom
    ("vertical"), or, with "horizontal_and_vertical", both at once (one draw per image for
    both axes, as in Keras: a half-turn or nothing)."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"{self.describe()}: mode must be one of {self.MODES}, "
                             f"got {mode!r}")
        self.mode = mode

    def _flip(self, x, flips):
        flipped = x
        if self.mode != "vertical":
            flipped = flipped[:, :, ::-1]
        if self.mode != "horizontal":
            flipped = flipped[:, ::-1]
        return np.where(flips[:, None, None, None], flipped, x)

    def _augment_nhwc(self, x, training, ctx):
        flips = self.generator.random(x.shape[0]) <= 0.5
        ctx["flips"] = flips
        return self._flip(x, flips)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return self._flip(grad_z, ctx["flips"]), []   # a flip is its own inverse

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class AffineLayer(RandomLayer):
    """A layer that resamples each image through a random projective transform (Keras'
    8-number form, see ``kernels.affine_transform``): RandomTranslation, RandomRotation and
    RandomZoom. Its gradient is the transform's adjoint."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"{self.describe()}: fill_mode must be one of {FILL_MODES}, "
                             f"got {fill_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"{self.describe()}: interpolation must be one of "
                             f"{INTERPOLATIONS}, got {interpolation!r}")
        if not _is_number(fill_value):
            raise TypeError(f"{self.describe()}: fill_value must be a number, "
                            f"got {fill_value!r}")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)

    def _transforms(self, n, height, width):
        """(n, 8) transforms drawn for a batch of n images of height x width."""
        raise NotImplementedError

    def _augment_nhwc(self, x, training, ctx):
        n, height, width, _ = x.shape
        transforms = self._transforms(n, height, width)
        ctx["transforms"] = transforms
        return kernels.affine_transform(x, transforms, self.interpolation, self.fill_mode,
                                        self.fill_value, name=self.describe())

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        if not need_input_grad:
            return None, []
        return kernels.affine_transform_backward(
            grad_z, ctx["transforms"], grad_z.shape, self.interpolation, self.fill_mode,
            name=self.describe()), []

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomTranslation(AffineLayer):
    """Shifts each image by a random fraction of its height and width: `height_factor` and
    `width_factor` are a number f (a shift in [-f, f]) or a pair (lower, upper), in [-1, 1];
    positive shifts move the image down and right (Keras' signs)."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.height_factor = _config_value(height_factor)
        self.width_factor = _config_value(width_factor)
        self.height_lower, self.height_upper = _factor_bounds(
            height_factor, "height_factor", self.describe(), -1.0, 1.0)
        self.width_lower, self.width_upper = _factor_bounds(
            width_factor, "width_factor", self.describe(), -1.0, 1.0)

    def _transforms(self, n, height, width):
        generator = self.generator
        dy = generator.uniform(self.height_lower, self.height_upper, n) * height
        dx = generator.uniform(self.width_lower, self.width_upper, n) * width
        transforms = np.zeros((n, 8))
        transforms[:, 0] = transforms[:, 4] = 1.0
        transforms[:, 2] = -dx   # output (x, y) reads input (x - dx, y - dy)
        transforms[:, 5] = -dy
        return transforms

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomRotation(AffineLayer):
    """Rotates each image about its centre by a random angle; `factor` is a fraction of a
    full turn (2 pi): a number f (an angle in [-f, f] turns) or a pair (lower, upper), in
    [-1, 1]. Positive angles turn counter-clockwise, as the image is displayed."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.factor = _factor_bounds(factor, "factor", self.describe(), -1.0, 1.0)

    def _transforms(self, n, height, width):
        degrees = self.generator.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, n)
        angle = np.deg2rad(degrees)
        cos, sin = np.cos(angle), np.sin(angle)
        # Keras' matrix (BaseImagePreprocessingLayer._compute_affine_matrix) about the
        # centre ((width - 1) / 2, (height - 1) / 2), without scale, shear or translation.
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        transforms = np.zeros((n, 8))
        transforms[:, 0], transforms[:, 1] = cos, -sin
        transforms[:, 2] = cx - cx * cos + cy * sin
        transforms[:, 3], transforms[:, 4] = sin, cos
        transforms[:, 5] = cy - cx * sin - cy * cos
        return transforms

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


class RandomZoom(AffineLayer):
    """Zooms each image about its centre: `height_factor` is a number f (a zoom in
    [-f, f]) or a pair (lower, upper), in (-1, 1]; a positive value zooms out (the image
    shrinks), a negative one zooms in, as in Keras. With ``width_factor=None`` the width
    follows the height (aspect ratio kept)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.height_factor = _config_value(height_factor)
        self.width_factor = _config_value(width_factor)
        self.height_lower, self.height_upper = _factor_bounds(
            height_factor, "height_factor", self.describe(), -1.0, 1.0, open_low=True)
        self.width_lower, self.width_upper = (None, None) if width_factor is None else \
            _factor_bounds(width_factor, "width_factor", self.describe(), -1.0, 1.0,
                           open_low=True)

    def _transforms(self, n, height, width):
        generator = self.generator
        zoom_y = generator.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, n)
        zoom_x = zoom_y if self.width_factor is None else generator.uniform(
            1.0 + self.width_lower, 1.0 + self.width_upper, n)
        transforms = np.zeros((n, 8))
        transforms[:, 0], transforms[:, 4] = zoom_x, zoom_y
        transforms[:, 2] = (width - 1) / 2.0 * (1.0 - zoom_x)   # the centre stays put
        transforms[:, 5] = (height - 1) / 2.0 * (1.0 - zoom_y)
        return transforms

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomCrop(RandomLayer):
    """Crops the batch to `height` x `width` at one random place in training, when the images
    are larger on both axes. Otherwise (images not larger, and at inference) it takes the
    largest centred window of the target's aspect ratio and resizes it to height x width
    (bilinear, half-pixel centres, edges clamped), as Keras documents and as Keras 2 did
    (smart_resize). Keras 3.15's code differs on that path: at inference it returns the
    images uncropped (keras-team/keras#21868), breaking the shape its compute_output_shape
    declares, and in training it resizes a height x width slice from the window's corner
    instead of the window; convnet follows the documentation."""

    identity_at_inference = False

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        for arg, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{self.describe()}: {arg} must be a positive int, "
                                 f"got {value!r}")
        self.height, self.width = int(height), int(width)

    def _output_shape_nhwc(self, shape):
        return (shape[0], self.height, self.width, shape[3])

    def crop_window(self, height, width, training):
        """(top, left, rows, columns) of the window a batch of height x width images is cut
        to: a random one in training where the images are larger on both axes (Keras' strict
        rule), else the largest centred window of the target's aspect ratio (the arithmetic
        of Keras' smart_resize), which is then resized to height x width."""
        if training and height > self.height and width > self.width:
            top = int(self.generator.integers(0, height - self.height + 1))
            left = int(self.generator.integers(0, width - self.width + 1))
            return top, left, self.height, self.width
        rows = max(min(height, int(float(width * self.height) / self.width)), 1)
        columns = max(min(width, int(float(height * self.width) / self.height)), 1)
        return int((height - rows) / 2), int((width - columns) / 2), rows, columns

    def _resize_transform(self, rows, columns):
        """Output (x, y) reads the window at half-pixel centres: ((x + 0.5) * s - 0.5)."""
        sx, sy = columns / self.width, rows / self.height
        return np.array([sx, 0.0, 0.5 * sx - 0.5, 0.0, sy, 0.5 * sy - 0.5, 0.0, 0.0])

    def _augment_nhwc(self, x, training, ctx):
        height, width = x.shape[1:3]
        top, left, rows, columns = self.crop_window(height, width, training)
        ctx.update(input_shape=x.shape, window=(top, left, rows, columns))
        window = np.ascontiguousarray(x[:, top:top + rows, left:left + columns])
        if (rows, columns) == (self.height, self.width):
            return window
        # The "nearest" fill clamps at the window's edges, as Keras' bilinear resize does.
        return kernels.affine_transform(window, self._resize_transform(rows, columns),
                                        "bilinear", "nearest",
                                        output_size=(self.height, self.width),
                                        name=self.describe())

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        if not need_input_grad:
            return None, []
        n, _, _, channels = ctx["input_shape"]
        top, left, rows, columns = ctx["window"]
        if (rows, columns) != (self.height, self.width):
            grad_z = kernels.affine_transform_backward(
                grad_z, self._resize_transform(rows, columns), (n, rows, columns, channels),
                "bilinear", "nearest", name=self.describe())
        grad_x = np.zeros(ctx["input_shape"], grad_z.dtype)
        grad_x[:, top:top + rows, left:left + columns] = grad_z
        return grad_x, []

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class RandomContrast(RandomLayer):
    """Scales each image's deviation from its per-channel mean by a random factor in
    [1 - lower, 1 + upper], then clips to `value_range`. `factor` is a pair (lower, upper) in
    [0, 1], or a number f, which Keras 3 reads as (0, f): a contrast in [1, 1 + f] (its
    docstring says [1 - f, 1 + f]; convnet follows its code)."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _factor_bounds(factor, "factor", self.describe(), 0.0, 1.0)
        self.value_range = _value_range(value_range, self.describe())
        if self.value_range[0] > self.value_range[1]:
            raise ValueError(f"{self.describe()}: value_range must be [low, high] with "
                             f"low <= high, got {value_range!r}")

    def _augment_nhwc(self, x, training, ctx):
        low, high = self.value_range
        factor = self.generator.uniform(1.0 - self.factor[0], 1.0 + self.factor[1],
                                        x.shape[0]).astype(x.dtype)[:, None, None, None]
        mean = x.mean(axis=(1, 2), keepdims=True)
        z = (x - mean) * factor + mean
        ctx.update(factor=factor, inside=(z >= low) & (z <= high))
        return np.clip(z, low, high).astype(x.dtype, copy=False)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        # z = f x + (1 - f) mean(x): the mean spreads (1 - f) * mean(g) over every pixel.
        g = grad_z * ctx["inside"]
        factor = ctx["factor"]
        return (factor * g + (1 - factor) * g.mean(axis=(1, 2), keepdims=True)).astype(
            grad_z.dtype, copy=False), []

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}


class RandomBrightness(RandomLayer):
    """Adds to each image a random delta of (a fraction in [lower, upper]) * (high - low),
    then clips to `value_range` = [low, high] (sorted, as Keras does). `factor` is a number f
    (a fraction in [-f, f]) or a pair, in [-1, 1]."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _factor_bounds(factor, "factor", self.describe(), -1.0, 1.0)
        self.value_range = sorted(_value_range(value_range, self.describe()))

    def _augment_nhwc(self, x, training, ctx):
        low, high = self.value_range
        delta = self.generator.uniform(self.factor[0], self.factor[1], x.shape[0]) * (high - low)
        z = x + delta.astype(x.dtype)[:, None, None, None]
        ctx["inside"] = (z >= low) & (z <= high)
        return np.clip(z, low, high).astype(x.dtype, copy=False)

    def _backward_op_nhwc(self, ctx, grad_z, need_input_grad):
        return grad_z * ctx["inside"], []

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}
