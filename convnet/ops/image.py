"""Keras' image ops (keras.ops.image) on batches (or single images), with gradients: resize
and the colour conversions are built from differentiable ops; map_coordinates and
affine_transform interpolate differentiably in the images and, bilinearly, in the
coordinates and the transform."""
import numpy as np

from .. import backend
from ..autodiff import value_of
from ._base import apply, convert, keras_op
from .numpy import (abs as absolute, add, broadcast_to, clip, expand_dims, get_item, maximum,
                    minimum, mod, multiply, pad, reshape, squeeze, stack, subtract, tensordot,
                    transpose, where)

RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "lanczos3", "lanczos5", "bicubic")
FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


def _check_rank(images, name):
    shape = np.shape(value_of(images))
    if len(shape) not in (3, 4):
        raise ValueError(f"image.{name}: expected a batch of images (rank 4) or one image "
                         f"(rank 3), got shape {shape}")
    return shape


def _spatial_axes(shape, data_format):
    """The (height, width) axes of images in `data_format`."""
    fmt = backend.standardize_data_format(data_format)
    rank = len(shape)
    return (rank - 3, rank - 2) if fmt == "channels_last" else (rank - 2, rank - 1)


# ----------------------------------------------------------------------------- resize

def _triangle(x):
    return np.maximum(0, 1 - np.abs(x))


def _keys_cubic(x):
    out = ((1.5 * x - 2.5) * x) * x + 1.0
    out = np.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
    return np.where(x >= 2.0, 0.0, out)


def _lanczos(radius):
    def kernel(x):
        y = radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(x > 1e-3, y / np.where(x != 0, np.pi ** 2 * x ** 2, 1), 1)
        return np.where(x > radius, 0.0, out)
    return kernel


_KERNELS = {"bilinear": _triangle, "bicubic": _keys_cubic, "lanczos3": _lanczos(3),
            "lanczos5": _lanczos(5)}


def _resize_weights(size_in, size_out, method, antialias):
    """The (size_in, size_out) matrix of a 1-D resize with half-pixel centres (JAX's
    scale_and_translate, which Keras' resize is): each output samples the kernel at its
    centre, with weights normalised to sum to 1 (so edges clamp); antialiasing stretches
    the kernel when shrinking."""
    scale = size_out / size_in
    kernel_scale = max(1 / scale, 1.0) if antialias else 1.0
    centres = (np.arange(size_out) + 0.5) / scale - 0.5
    distance = np.abs(centres[None, :] - np.arange(size_in)[:, None]) / kernel_scale
    weights = _KERNELS[method](distance)
    total = weights.sum(axis=0, keepdims=True)
    weights = np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps,
                       weights / np.where(total != 0, total, 1), 0)
    return np.where((centres >= -0.5) & (centres <= size_in - 0.5), weights, 0)


@keras_op
def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Images resized to `size` (height, width) as Keras: half-pixel centres, "nearest"
    taking the pixel under each centre, the others interpolating (optionally antialiased);
    optionally centre-cropped or padded to the target's aspect ratio first. Differentiable
    in the images."""
    if interpolation not in RESIZE_INTERPOLATIONS:
        raise ValueError(f"image.resize: interpolation must be one of {RESIZE_INTERPOLATIONS}, "
                         f"got {interpolation!r}")
    if fill_mode != "constant":
        raise ValueError(f"image.resize: fill_mode must be 'constant', got {fill_mode!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("image.resize: give only one of crop_to_aspect_ratio and "
                         "pad_to_aspect_ratio")
    if len(size) != 2:
        raise ValueError(f"image.resize: size must be (height, width), got {size!r}")
    shape = _check_rank(images, "resize")
    h_axis, w_axis = _spatial_axes(shape, data_format)
    target_h, target_w = (int(s) for s in size)
    height, width = shape[h_axis], shape[w_axis]
    if crop_to_aspect_ratio:
        crop_h = max(min(height, int(width * target_h / target_w)), 1)
        crop_w = max(min(width, int(height * target_w / target_h)), 1)
        top, left = int((height - crop_h) / 2), int((width - crop_w) / 2)
        index = [slice(None)] * len(shape)
        index[h_axis], index[w_axis] = slice(top, top + crop_h), slice(left, left + crop_w)
        images = get_item(images, tuple(index))
    elif pad_to_aspect_ratio:
        pad_h = max(height, int(width * target_h / target_w))
        pad_w = max(width, int(height * target_w / target_h))
        top, left = int((pad_h - height) / 2), int((pad_w - width) / 2)
        widths = [(0, 0)] * len(shape)
        widths[h_axis], widths[w_axis] = (top, top), (left, left)
        images = pad(images, widths, constant_values=fill_value)
    shape = np.shape(value_of(images))
    dtype = convert(images).dtype
    out = images
    for axis, target in ((h_axis, target_h), (w_axis, target_w)):
        n = shape[axis]
        if n == target:
            continue
        if interpolation == "nearest":
            offsets = np.floor((np.arange(target, dtype=np.float32) + 0.5) * n / target)
            index = [slice(None)] * len(shape)
            index[axis] = offsets.astype(np.int64)
            out = get_item(out, tuple(index))
            continue
        weights = _resize_weights(n, target, interpolation, antialias)
        compute = dtype if dtype.kind == "f" else np.dtype(backend.floatx())
        moved = tensordot(out, weights.astype(compute), axes=([axis], [0]))
        out = _move_last(moved, axis)
    if interpolation != "nearest" and dtype.kind != "f":
        out = _round_to(out, dtype)
    return out


def _move_last(x, axis):
    from .numpy import moveaxis
    return moveaxis(x, -1, axis)


def _round_to(x, dtype):
    from .core import cast
    from .numpy import round as round_
    info = np.iinfo(dtype)
    return cast(clip(round_(x), info.min, info.max), dtype)


# ----------------------------------------------------------------------------- sampling

def _fold_index(index, size, mode):
    """Integer positions mapped into [0, size) by the fill mode, and which are valid
    (constant mode: those outside are the fill value)."""
    if mode == "constant":
        return np.clip(index, 0, size - 1), (index >= 0) & (index < size)
    if mode == "nearest":
        return np.clip(index, 0, size - 1), None
    if mode == "wrap":
        return np.mod(index, size), None
    if size == 1:
        return np.zeros_like(index), None
    if mode == "mirror":  # ... 2 1 | 0 1 2 | 1 0 ...
        period = 2 * size - 2
        folded = np.mod(index, period)
        return np.where(folded >= size, period - folded, folded), None
    period = 2 * size  # reflect: ... 1 0 | 0 1 2 | 2 1 ...
    folded = np.mod(index, period)
    return np.where(folded >= size, period - 1 - folded, folded), None


@keras_op
def map_coordinates(inputs, coordinates, order, fill_mode="constant", fill_value=0):
    """inputs sampled at `coordinates` (one array of positions per axis of inputs), by
    nearest neighbour (order 0, halves rounding up) or linear interpolation (order 1);
    positions outside follow `fill_mode`. Differentiable in the inputs, and for order 1 in
    the coordinates."""
    a = convert(inputs)
    c = convert(coordinates)
    if c.shape[0] != a.ndim or c.ndim < 2:
        raise ValueError(f"image.map_coordinates: coordinates must have shape (rank of inputs, "
                         f"...) = ({a.ndim}, ...), got {c.shape}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"image.map_coordinates: fill_mode must be one of {FILL_MODES}, got "
                         f"{fill_mode!r}")
    if order not in (0, 1):
        raise ValueError(f"image.map_coordinates: order must be 0 or 1, got {order!r}")
    if order == 0:
        # Nearest sampling is piecewise constant in the coordinates: they enter as constants,
        # through an op the tape knows has no gradient.
        from .numpy import floor
        coordinates = floor(add(coordinates, 0.5))
        c = convert(coordinates)
    dtype = a.dtype if a.dtype.kind == "f" else np.dtype(backend.floatx())

    def corners(coords):
        """[(flat index, validity, weight per corner, weight derivative per axis)]."""
        lows = [np.floor(ci).astype(np.int64) for ci in coords]
        fracs = [ci - lo for ci, lo in zip(coords, lows)]
        result = []
        for corner in np.ndindex(*(2 if order == 1 else 1,) * a.ndim):
            flat = np.zeros(coords[0].shape, np.int64)
            valid = np.ones(coords[0].shape, bool)
            factors = []
            for axis, (bit, lo, frac) in enumerate(zip(corner, lows, fracs)):
                index, ok = _fold_index(lo + bit, a.shape[axis], fill_mode)
                flat = flat * a.shape[axis] + index
                if ok is not None:
                    valid &= ok
                factors.append((frac if bit else 1 - frac) if order == 1 else
                               np.ones_like(frac))
            result.append((flat, valid, factors, corner))
        return result

    def compute(v, coords):
        flat_v = v.reshape(-1)
        out = np.zeros(coords.shape[1:], dtype)
        for flat, valid, factors, _ in corners(coords):
            sample = np.where(valid, flat_v[flat], fill_value)
            out += np.prod(factors, axis=0) * sample
        return out.astype(v.dtype) if v.dtype.kind == "f" else \
            np.round(out).astype(v.dtype)

    def vjp(g, values, out, needs):
        v, coords = values
        grad_v = np.zeros(v.size, g.dtype) if needs[0] else None
        grad_c = np.zeros(coords.shape, g.dtype) if needs[1] and order == 1 else None
        flat_v = v.reshape(-1)
        for flat, valid, factors, corner in corners(coords):
            weight = np.prod(factors, axis=0)
            if grad_v is not None:
                np.add.at(grad_v, flat[valid], (g * weight)[valid])
            if grad_c is not None:
                sample = np.where(valid, flat_v[flat], fill_value)
                for axis in range(a.ndim):
                    others = np.prod([f for k, f in enumerate(factors) if k != axis], axis=0) \
                        if a.ndim > 1 else 1.0
                    sign = 1.0 if corner[axis] else -1.0
                    grad_c[axis] += g * sample * sign * others
        return (None if grad_v is None else grad_v.reshape(v.shape)), grad_c
    return apply("map_coordinates", compute, vjp, inputs, coordinates, values=(a, c))


@keras_op
def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                     fill_value=0, data_format=None):
    """Images resampled through projective transforms [a0, a1, a2, b0, b1, b2, c0, c1] (one per
    image, or one for all): output (x, y) reads input ((a0 x + a1 y + a2) / k,
    (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1 (Keras' and TensorFlow's convention).
    Differentiable in the images and, bilinearly, in the transform."""
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"image.affine_transform: interpolation must be 'nearest' or "
                         f"'bilinear', got {interpolation!r}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"image.affine_transform: fill_mode must be one of {FILL_MODES}, got "
                         f"{fill_mode!r}")
    shape = _check_rank(images, "affine_transform")
    fmt = backend.standardize_data_format(data_format)
    single = len(shape) == 3
    if single:
        images = expand_dims(images, 0)
    if fmt == "channels_first":
        images = transpose(images, (0, 2, 3, 1))
    t_shape = np.shape(value_of(transform))
    if len(t_shape) == 1:
        transform = expand_dims(transform, 0)
        t_shape = (1,) + t_shape
    if t_shape[-1] != 8:
        raise ValueError(f"image.affine_transform: transforms must have 8 entries, got shape "
                         f"{t_shape}")
    n, height, width, channels = np.shape(value_of(images))
    dtype = convert(images).dtype if convert(images).dtype.kind == "f" else \
        np.dtype(backend.floatx())
    from .core import cast
    transform = cast(transform, dtype)
    ys, xs = np.meshgrid(np.arange(height, dtype=dtype), np.arange(width, dtype=dtype),
                         indexing="ij")

    def coefficient(i):
        return reshape(get_item(transform, (slice(None), i)), (-1, 1, 1))
    k = coefficient(6) * xs + coefficient(7) * ys + 1
    x_in = (coefficient(0) * xs + coefficient(1) * ys + coefficient(2)) / k
    y_in = (coefficient(3) * xs + coefficient(4) * ys + coefficient(5)) / k
    outputs = []
    for b in range(n):
        index = b if t_shape[0] > 1 else 0
        full = (height, width, channels)
        rows = broadcast_to(reshape(get_item(y_in, index), (height, width, 1)), full)
        cols = broadcast_to(reshape(get_item(x_in, index), (height, width, 1)), full)
        channel = np.broadcast_to(np.arange(channels, dtype=dtype), full)
        coords = stack([rows, cols, channel], axis=0)
        outputs.append(map_coordinates(get_item(images, b), coords,
                                       0 if interpolation == "nearest" else 1, fill_mode,
                                       fill_value))
    out = stack(outputs, axis=0)
    if fmt == "channels_first":
        out = transpose(out, (0, 3, 1, 2))
    return squeeze(out, 0) if single else out


# ----------------------------------------------------------------------------- crop and pad

def _resolve(before, after, total, size, what):
    if before is None:
        before = total - after - size if what == "pad" else size - total - after
    if after is None:
        after = total - before - size if what == "pad" else size - total - before
    return before, after


@keras_op
def pad_images(images, top_padding=None, left_padding=None, bottom_padding=None,
               right_padding=None, target_height=None, target_width=None, data_format=None):
    """Images zero-padded by the given amounts, or to a target size with the rest inferred."""
    shape = _check_rank(images, "pad_images")
    h_axis, w_axis = _spatial_axes(shape, data_format)
    sides = {"height": (top_padding, bottom_padding, target_height),
             "width": (left_padding, right_padding, target_width)}
    widths = [(0, 0)] * len(shape)
    for axis, (name, (before, after, target)) in zip((h_axis, w_axis), sides.items()):
        if sum(v is not None for v in (before, after, target)) != 2:
            raise ValueError(f"image.pad_images: give exactly two of the {name}'s paddings and "
                             f"target_{name}, got {before}, {after}, {target}")
        before, after = _resolve(before, after, target, shape[axis], "pad")
        if before < 0 or after < 0:
            raise ValueError(f"image.pad_images: the {name} paddings must be >= 0, got "
                             f"({before}, {after}) for images of shape {shape}")
        widths[axis] = (before, after)
    return pad(images, widths)


@keras_op
def crop_images(images, top_cropping=None, left_cropping=None, bottom_cropping=None,
                right_cropping=None, target_height=None, target_width=None, data_format=None):
    """Images cropped by the given amounts, or to a target size with the rest inferred."""
    shape = _check_rank(images, "crop_images")
    h_axis, w_axis = _spatial_axes(shape, data_format)
    sides = {"height": (top_cropping, bottom_cropping, target_height),
             "width": (left_cropping, right_cropping, target_width)}
    index = [slice(None)] * len(shape)
    for axis, (name, (before, after, target)) in zip((h_axis, w_axis), sides.items()):
        if sum(v is not None for v in (before, after, target)) != 2:
            raise ValueError(f"image.crop_images: give exactly two of the {name}'s croppings "
                             f"and target_{name}, got {before}, {after}, {target}")
        if target is None:
            target = shape[axis] - before - after
        if before is None:
            before = shape[axis] - target - after
        if before < 0 or target < 0 or before + target > shape[axis]:
            raise ValueError(f"image.crop_images: cannot crop {target} rows/columns from "
                             f"{before} of the {name} {shape[axis]} (images of shape {shape})")
        index[axis] = slice(before, before + target)
    return get_item(images, tuple(index))


# ----------------------------------------------------------------------------- colour

def _channels_axis(images, data_format):
    return -1 if backend.standardize_data_format(data_format) == "channels_last" else -3


@keras_op
def rgb_to_grayscale(images, data_format=None):
    """Luma 0.2989 R + 0.5870 G + 0.1140 B (TensorFlow's weights), one channel, in the
    images' dtype."""
    shape = _check_rank(images, "rgb_to_grayscale")
    axis = _channels_axis(images, data_format)
    if shape[axis] not in (1, 3):
        raise ValueError(f"image.rgb_to_grayscale: expected 1 or 3 channels, got shape {shape}")
    if shape[axis] == 1:
        from .numpy import copy
        return copy(images)
    from .core import cast
    original = convert(images).dtype
    compute = backend.result_type(original, float)
    weights = np.array([0.2989, 0.5870, 0.1140], dtype=compute)
    gray = expand_dims(tensordot(cast(images, compute), weights, axes=([axis % len(shape)],
                                                                      [0])), axis)
    return cast(gray, original)


def _planes(images, axis):
    from .numpy import split
    return [squeeze(p, axis) for p in split(images, 3, axis=axis)]


@keras_op
def rgb_to_hsv(images, data_format=None):
    """RGB in [0, 1] to HSV (hue in [0, 1)), as Keras (dm_pix's formulas)."""
    _check_rank(images, "rgb_to_hsv")
    if convert(images).dtype.kind != "f":
        raise ValueError(f"image.rgb_to_hsv: expected float images, got dtype "
                         f"{convert(images).dtype}")
    axis = _channels_axis(images, data_format)
    eps = np.finfo(convert(images).dtype).eps
    images = where(absolute(images) < eps, 0.0, images)
    r, g, b = _planes(images, axis)
    value = maximum(maximum(r, g), b)
    range_ = subtract(value, minimum(minimum(r, g), b))
    safe_value = where(value > 0, value, 1.0)
    safe_range = where(range_ > 0, range_, 1.0)
    saturation = where(value > 0, range_ / safe_value, 0.0)
    norm = 1.0 / (6.0 * safe_range)
    hue = where(value == g, norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0)
    hue = where(value == r, norm * (g - b), hue)
    hue = where(range_ > 0, hue, 0.0) + where(hue < 0.0, 1.0, 0.0)
    return stack([hue, saturation, value], axis=axis)


@keras_op
def hsv_to_rgb(images, data_format=None):
    """HSV (hue in [0, 1)) to RGB, as Keras (dm_pix's formulas)."""
    _check_rank(images, "hsv_to_rgb")
    if convert(images).dtype.kind != "f":
        raise ValueError(f"image.hsv_to_rgb: expected float images, got dtype "
                         f"{convert(images).dtype}")
    axis = _channels_axis(images, data_format)
    hue, saturation, value = _planes(images, axis)
    dh = mod(hue, 1.0) * 6.0
    dr = clip(absolute(dh - 3.0) - 1.0, 0.0, 1.0)
    dg = clip(2.0 - absolute(dh - 2.0), 0.0, 1.0)
    db = clip(2.0 - absolute(dh - 4.0), 0.0, 1.0)
    one_minus_s = 1.0 - saturation
    planes = [multiply(value, one_minus_s + saturation * d) for d in (dr, dg, db)]
    return stack(planes, axis=axis)


# ----------------------------------------------------------------------------- patches and blur

@keras_op
def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid",
                    data_format=None):
    """Every size[0] x size[1] patch, flattened into the channel axis (patch row, column,
    channel order): (..., out_h, out_w, size_h * size_w * channels). Differentiable."""
    from .nn import conv
    shape = _check_rank(images, "extract_patches")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2:
        raise ValueError(f"image.extract_patches: size must be an int or (height, width), got "
                         f"{size!r}")
    fmt = backend.standardize_data_format(data_format)
    channels = shape[-1] if fmt == "channels_last" else shape[-3]
    single = len(shape) == 3
    if single:
        images = expand_dims(images, 0)
    dtype = convert(images).dtype if convert(images).dtype.kind == "f" else \
        np.dtype(backend.floatx())
    depth = size[0] * size[1] * channels
    kernel = np.eye(depth, dtype=dtype).reshape(size[0], size[1], channels, depth)
    from .core import cast
    out = conv(cast(images, dtype), kernel, strides=size if not strides else strides,
               padding=padding, data_format=fmt, dilation_rate=dilation_rate)
    return squeeze(out, 0) if single else out


@keras_op
def gaussian_blur(images, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None):
    """Each channel convolved with a normalised Gaussian, zero-padded to keep the size (as
    Keras; the kernel's rows use kernel_size[1] and sigma[1])."""
    from .core import cast
    from .nn import depthwise_conv
    shape = _check_rank(images, "gaussian_blur")
    fmt = backend.standardize_data_format(data_format)
    original = convert(images).dtype
    compute = np.dtype(backend.result_type(original, "float32"))
    single = len(shape) == 3
    if single:
        images = expand_dims(images, 0)
    if fmt == "channels_first":
        images = transpose(images, (0, 2, 3, 1))
    channels = np.shape(value_of(images))[-1]

    def kernel_1d(size, s):
        x = np.arange(size, dtype=compute) - (size - 1) / 2
        k = np.exp(-0.5 * (x / s) ** 2)
        return k / k.sum()
    kernel_size = tuple(value_of(kernel_size)) if not isinstance(kernel_size, int) else \
        (kernel_size, kernel_size)
    sigma = tuple(value_of(sigma)) if np.ndim(value_of(sigma)) else (sigma, sigma)
    kernel = np.outer(kernel_1d(int(kernel_size[1]), float(sigma[1])),
                      kernel_1d(int(kernel_size[0]), float(sigma[0])))
    kh, kw = kernel.shape
    weights = np.tile(kernel[:, :, None, None], (1, 1, channels, 1)).astype(compute)
    padded = pad(cast(images, compute), ((0, 0), ((kh - 1) // 2, kh - 1 - (kh - 1) // 2),
                                         ((kw - 1) // 2, kw - 1 - (kw - 1) // 2), (0, 0)))
    # A Gaussian is symmetric, so cross-correlation equals convolution here.
    out = depthwise_conv(padded, weights[::-1, ::-1].copy(), padding="valid")
    if fmt == "channels_first":
        out = transpose(out, (0, 3, 1, 2))
    out = squeeze(out, 0) if single else out
    return cast(out, original)

