"""The functional layer: the one caller of the compiled kernels in ``convnet._core``.

Every function here validates its arguments and shapes, resolves padding,
casts and makes inputs contiguous, allocates the outputs, and only then calls
a kernel (which runs with bounds checks off and trusts what it is given). The
convolution kernels call BLAS themselves, one single-threaded GEMM per block
and OpenMP thread; around them BLAS is held to one thread (see SequentialBlas).

Arrays are NHWC; conv kernels are (kh, kw, in_channels, filters). ``name``
is the layer's name, used to make error messages point at the right layer.
"""
import threading
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from ._core import conv as _conv
from ._core import linalg as _linalg
from ._core import pool as _pool
from ._core import threads as _threads
from ._core import winograd as _winograd
from .utils import conv_output_length, same_padding

set_num_threads = _threads.set_num_threads
get_num_threads = _threads.get_num_threads

# Each thread unfolds this many bytes of columns at a time, then multiplies them:
# small enough to stay in a core's L2 cache between the two. (On W1, 128 KiB to
# 1 MiB blocks were within 10% of each other; 512 KiB was among the fastest.)
COLUMN_BLOCK_BYTES = 512 << 10
# The kernel gradient is summed in at most this many partial buffers, one per
# group of images: enough to keep 16 threads busy, independent of the thread count.
MAX_GRADIENT_PARTIALS = 16
# The forward pass cuts its output pixels into a multiple of this many blocks, so that
# 1, 2, 4, 8 and 16 threads get equal shares, each block at least MIN_BLOCK_ROWS pixels.
BLOCK_COUNT_MULTIPLE = 16
MIN_BLOCK_ROWS = 64

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_workspace = threading.local()


# ----------------------------------------------------------------------------- validation

def as_int_tuple(value, n, arg, name, minimum=1):
    """`value` as a tuple of `n` ints >= minimum (an int is repeated), or a clear error."""
    items = (value,) * n if isinstance(value, (int, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{name}: {arg} must be an int or a tuple of {n} ints, "
                        f"got {value!r}") from None
    if len(items) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  for v in items):
        raise TypeError(f"{name}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name}: {arg} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def float_dtype(dtype, name):
    """np.dtype of float32 or float64, or a TypeError naming the layer."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dtype not in _FLOATS:
        raise TypeError(f"{name}: dtype must be 'float32' or 'float64', got {dtype}")
    return dtype


def as_batch(x, dtype, name, arg="input", ndim=4):
    """`x` as a C-contiguous, native-endian array of `dtype` with `ndim` dimensions.

    Booleans, integers and float16 are cast (exactly, for every uint8 image);
    complex, object and string data are refused. ``dtype=None`` keeps float32
    and float64 as they are and casts anything else to float32.
    """
    array = x if isinstance(x, np.ndarray) else np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: {arg} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != ndim:
        layout = "(batch, height, width, channels)" if ndim == 4 else f"{ndim}-D"
        raise ValueError(f"{name}: expected a {ndim}-D {arg} {layout}, got shape {array.shape}")
    if dtype is None:
        dtype = array.dtype if array.dtype in _FLOATS else np.dtype(np.float32)
    return np.ascontiguousarray(array, dtype=dtype)


def _check_spatial(shape, name, arg="input"):
    if shape[1] < 1 or shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{name}: {arg} of shape {tuple(shape)} has an empty height, width "
                         f"or channel dimension")


def resolve_padding(padding, kernel_size, strides, dilation, spatial, name):
    """Padding as ((top, bottom), (left, right)) from any accepted form.

    "valid"; "same" (TensorFlow's rule: the odd cell goes bottom/right); an int;
    a pair (height, width); or ((top, bottom), (left, right)).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return tuple(same_padding(n, k, s, d)
                         for n, k, s, d in zip(spatial, kernel_size, strides, dilation))
        raise ValueError(f"{name}: padding must be 'valid', 'same', an int, a pair or "
                         f"((top, bottom), (left, right)), got {padding!r}")
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        p = as_int_tuple(padding, 1, "padding", name, minimum=0)[0]
        return (p, p), (p, p)
    try:
        parts = tuple(padding)
    except TypeError:
        parts = ()
    if len(parts) == 2 and all(isinstance(p, (tuple, list)) for p in parts):
        top_bottom = as_int_tuple(parts[0], 2, "padding", name, minimum=0)
        left_right = as_int_tuple(parts[1], 2, "padding", name, minimum=0)
        return top_bottom, left_right
    if len(parts) == 2:
        ph, pw = as_int_tuple(parts, 2, "padding", name, minimum=0)
        return (ph, ph), (pw, pw)
    raise ValueError(f"{name}: padding must be 'valid', 'same', an int, a pair or "
                     f"((top, bottom), (left, right)), got {padding!r}")


@dataclass(frozen=True)
class WindowGeometry:
    """Where a (kh, kw) window slides over an (H, W) input, and the output it makes."""
    kernel: tuple
    strides: tuple
    dilation: tuple
    padding: tuple          # ((top, bottom), (left, right))
    input_hw: tuple
    output_hw: tuple


def window_geometry(input_hw, kernel_size, strides, padding, dilation, ceil_mode, name,
                    kernel_arg="kernel_size"):
    """Resolve padding and the output size; raise if the output would be empty."""
    (pt, pb), (pl, pr) = resolve_padding(padding, kernel_size, strides, dilation, input_hw, name)
    out = tuple(conv_output_length(n, k, s, d, before + after, ceil_mode, before)
                for n, k, s, d, (before, after)
                in zip(input_hw, kernel_size, strides, dilation, ((pt, pb), (pl, pr))))
    if any(v is not None and v < 1 for v in out):
        raise ValueError(
            f"{name}: {kernel_arg}={kernel_size} (dilation {dilation}) does not fit the input of "
            f"height x width {input_hw[0]}x{input_hw[1]} with padding {padding!r}: the output "
            f"would be {out[0]}x{out[1]}. Use a smaller {kernel_arg}, more padding or "
            f"padding='same'.")
    return WindowGeometry(tuple(kernel_size), tuple(strides), tuple(dilation),
                          ((pt, pb), (pl, pr)), tuple(input_hw), out)


def _scratch(rows, cols, dtype):
    """A (rows, cols) buffer reused across calls on this Python thread (never returned)."""
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buffer = buffers.get(dtype)
    if buffer is None or buffer.size < rows * cols:
        buffer = buffers[dtype] = np.empty(rows * cols, dtype=dtype)
    return buffer[:rows * cols].reshape(rows, cols)


class SequentialBlas:
    """Holds BLAS to one thread while a convolution kernel runs.

    The kernels call BLAS from every OpenMP thread; a multi-threaded BLAS there
    would start its own threads on cores that are already busy. BLAS's thread
    count is process-wide, so the first caller to enter lowers it and the last
    to leave restores it, whatever the number of Python threads in between.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None
        self._controller = None

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._controller is None:
                    # Made on first use: it finds the BLAS libraries loaded by then.
                    self._controller = ThreadpoolController().select(user_api="blas")
                self._saved = self._controller.limit(limits=1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._saved.restore_original_limits()
                self._saved = None


_sequential_blas = SequentialBlas()


def _block_rows(column_width, itemsize):
    """Output pixels whose columns fit in COLUMN_BLOCK_BYTES (at least one)."""
    return max(1, COLUMN_BLOCK_BYTES // (column_width * itemsize))


def _balanced_block_rows(rows, column_width, itemsize):
    """Pixels per forward block: blocks that fit in cache, as many as a multiple of
    BLOCK_COUNT_MULTIPLE (the threads share them evenly), but not under MIN_BLOCK_ROWS
    pixels. A function of the shapes alone, so the result is the same at any thread count."""
    cached = _block_rows(column_width, itemsize)
    blocks = -(-rows // cached)
    blocks = -(-blocks // BLOCK_COUNT_MULTIPLE) * BLOCK_COUNT_MULTIPLE
    return min(cached, max(-(-rows // blocks), MIN_BLOCK_ROWS))


# ----------------------------------------------------------------------------- convolution

# ----------------------------------------------------------------------------- algorithms

# Winograd's kernel transform G for each output tile m of F(m, 3): the kernel's 3 taps to
# m + 2 points (0, 1, -1, ..., infinity), scaled to match B^T and A^T in _core/winograd.pyx.
WINOGRAD_G = {
    2: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
    4: np.array([[1 / 2, 0, 0], [1 / 6, 1 / 6, 1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [-2 / 15, -1 / 15, -1 / 30], [1 / 30, -1 / 15, 2 / 15], [0, 0, 1 / 2]]),
}
# The convolution algorithms by name: im2col + GEMM, or Winograd F(m x m, 3 x 3) with its
# output tile m. "winograd4" does a quarter of im2col's multiplications, "winograd" 4/9,
# but F(4x4, 3x3) rounds too much in float32 for "auto" to pick it (see choose_algorithm).
WINOGRAD_TILES = {"winograd": 2, "winograd4": 4}
ALGORITHMS = ("auto", "im2col", *WINOGRAD_TILES)
# Each thread transforms this many bytes of tiles (input and output sides) at a time, then
# multiplies them: small enough to stay near its core between the steps, large enough that
# the 16 or 36 GEMMs of a block are not mostly call overhead (about 1 us each). On W1, 1.5
# MiB blocks (256 tiles) were the fastest for F(2x2, 3x3), 5% ahead of 768 KiB and 15% of
# 200 KiB; F(4x4, 3x3) ran alike from 0.4 to 1.7 MiB. The kernel gradient takes a third
# of it: its per-thread transformed-domain sum shares the cache, and its GEMMs (K = the
# tiles of a block) ran at half speed with 256 tiles on W1, not with 64 or 128.
WINOGRAD_BLOCK_BYTES = 3 << 19
# A partial sum of the kernel gradient takes at least this many tiles (W1 on 16 partials:
# 1,024 each; a batch of 16 4x4 images, 256 -> 256 channels: 4 each, and 1.7x im2col's time).
WINOGRAD_MIN_PARTIAL_TILES = 32


def winograd_serves(kernel_size, strides, dilation):
    """True for the convolutions Winograd F(m x m, 3 x 3) computes: 3x3, stride 1, dilation 1
    (any padding)."""
    return tuple(kernel_size) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)


def choose_algorithm(direction, input_shape, output_hw, kernel_shape, strides, dilation):
    """The algorithm "auto" runs: "winograd" or "im2col", for the "forward" or "backward"
    pass (both gradients) of a convolution of `input_shape` (N, H, W, C) to an output of
    height and width `output_hw`, with a kernel of `kernel_shape` (kh, kw, C, F).

    The rule, from the benchmarks (1 thread, this project's 2-core x86-64 machine):
    Winograd F(2x2, 3x3) serves 3x3 kernels at stride 1 and dilation 1 only, and pays
    where its 16 GEMMs per block are wide enough to run BLAS near full speed: forward
    (K = C, N = F) with C >= 32 and F >= 64 (W1: 0.6x im2col's time; 32 -> 32 channels:
    1.1x, 16 -> 64: 1.6x), backward (the input gradient's K = F, N = C) with C >= 16 and
    F >= 32 (W1: 0.75x; 8 -> 32 channels: 1.5x; 16 -> 16: 1.06x). The backward pass
    gains less, so it also needs the 2x2 tiles to cover the output and the input with
    at most 10% to spare (W7's 14x14: none, 0.83x im2col's time; W8's 13x13 input and
    11x11 output: 14% and 16%, 1.06x). Otherwise im2col.

    F(4x4, 3x3) ("winograd4") is never chosen: on W1-shaped data (inputs, kernels and
    gradients uniform in [-1, 1]) its float32 forward pass is off by 3.0x im2col's max abs
    error and 1.3x the PyTorch-parity tolerance (2e-5 + 2e-4 |exact|), its input gradient
    by 10.5x im2col's (its kernel gradient, 3.9x, would pass alone, but both gradients come
    from one algorithm). F(2x2, 3x3) is at 0.4x, 1.7x and 1.2x im2col's, inside the
    tolerance wherever im2col is (benchmarks/accuracy.py; BENCHMARKS.md, "Accuracy").
    """
    if not winograd_serves(kernel_shape[:2], strides, dilation):
        return "im2col"
    channels, filters = kernel_shape[2], kernel_shape[3]
    if direction == "forward":
        return "winograd" if channels >= 32 and filters >= 64 else "im2col"
    covered = min(_tile_coverage(output_hw), _tile_coverage(input_shape[1:3]))
    return "winograd" if channels >= 16 and filters >= 32 and covered >= 0.9 else "im2col"


def _tile_coverage(hw, tile=2):
    """The fraction of the tiles over an image of height and width `hw` that it fills."""
    tiled = [-(-n // tile) * tile for n in hw]
    return hw[0] * hw[1] / (tiled[0] * tiled[1])


def _algorithm(algorithm, direction, geometry, input_shape, kernel_shape, name):
    """The algorithm to run: `algorithm` checked against the convolution, or auto's choice."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"{name}: algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, "
                         f"got {algorithm!r}")
    if algorithm == "auto":
        return choose_algorithm(direction, input_shape, geometry.output_hw, kernel_shape,
                                geometry.strides, geometry.dilation)
    if algorithm != "im2col" and not winograd_serves(geometry.kernel, geometry.strides,
                                                     geometry.dilation):
        raise ValueError(
            f"{name}: algorithm={algorithm!r} computes 3x3 convolutions at stride 1 and "
            f"dilation 1 only, got kernel_size={geometry.kernel}, strides={geometry.strides}, "
            f"dilation_rate={geometry.dilation}; use algorithm='im2col' or 'auto'")
    return algorithm


@dataclass(frozen=True, eq=False)
class WinogradKernel:
    """A 3x3 kernel in Winograd's transformed domain, for one algorithm (tile size).

    ``forward`` is G g G^T, (cells, in_channels, filters), what the forward pass multiplies
    by; ``input_grad`` the same of the kernel rotated by 180 degrees with its channels
    swapped, (cells, filters, in_channels), what the input gradient multiplies by.
    """
    algorithm: str
    kernel_shape: tuple
    forward: np.ndarray
    input_grad: np.ndarray


def winograd_kernel_transform(kernel, algorithm="winograd", name="conv2d"):
    """`kernel` (3, 3, in, filters) transformed for Winograd `algorithm`, in float64 and
    rounded once to the kernel's dtype.

    conv2d and conv2d_backward compute this on every call unless they find it in their
    ``kernel_transforms`` argument; a layer whose kernel changes once per training step
    can compute it once per step there (see conv2d).
    """
    if algorithm not in WINOGRAD_TILES:
        raise ValueError(f"{name}: a Winograd algorithm is one of "
                         f"{', '.join(map(repr, WINOGRAD_TILES))}, got {algorithm!r}")
    kernel = np.asarray(kernel)
    dtype = float_dtype(kernel.dtype, name)
    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or min(kernel.shape) < 1:
        raise ValueError(f"{name}: Winograd transforms a (3, 3, in_channels, filters) kernel, "
                         f"got shape {kernel.shape}")
    g = WINOGRAD_G[WINOGRAD_TILES[algorithm]]
    cells = g.shape[0] ** 2

    def transform(k):
        transformed = np.einsum("ip,jq,pqcf->ijcf", g, g, k, dtype=np.float64)
        return np.ascontiguousarray(transformed.reshape(cells, *k.shape[2:]), dtype=dtype)

    rotated = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    return WinogradKernel(algorithm, kernel.shape, transform(kernel), transform(rotated))


def _winograd_kernel(kernel, algorithm, kernel_transforms, name):
    """The transformed kernel from the caller's cache, or computed (and cached there)."""
    if kernel_transforms is None:
        return winograd_kernel_transform(kernel, algorithm, name)
    if not isinstance(kernel_transforms, dict):
        raise TypeError(f"{name}: kernel_transforms must be a dict or None, got "
                        f"{type(kernel_transforms).__name__}")
    cached = kernel_transforms.get(algorithm)
    if cached is None:
        cached = kernel_transforms[algorithm] = winograd_kernel_transform(kernel, algorithm,
                                                                          name)
    elif (not isinstance(cached, WinogradKernel) or cached.algorithm != algorithm
          or cached.kernel_shape != kernel.shape or cached.forward.dtype != kernel.dtype):
        raise ValueError(f"{name}: kernel_transforms[{algorithm!r}] is not a transform of a "
                         f"{kernel.dtype} kernel of shape {kernel.shape} for {algorithm!r}")
    return cached


def _winograd_block_tiles(tile, in_channels, out_channels, itemsize):
    """Tiles per block: their transforms on both sides fit in WINOGRAD_BLOCK_BYTES."""
    cells = (tile + 2) ** 2
    lanes = 16  # channels are transformed 16 at a time, so each side is padded to that
    width = -(-in_channels // lanes) * lanes + -(-out_channels // lanes) * lanes
    return max(1, WINOGRAD_BLOCK_BYTES // (cells * width * itemsize))


def _winograd_conv(src, mask, transformed, bias, out, top, left, tile, relu):
    """out = the 3x3 convolution of src with a transformed kernel (see _core/winograd.pyx)."""
    threads = get_num_threads()
    in_channels, filters = transformed.shape[1:]
    block = _winograd_block_tiles(tile, in_channels, filters, src.itemsize)
    scratch = _scratch(threads, _winograd.scratch_floats(tile, tile, block, in_channels,
                                                         filters, False), src.dtype)
    with _sequential_blas:
        _winograd.winograd_conv(src, mask, transformed, bias, out, scratch, tile, tile, top,
                                left, block, relu, threads)


def _winograd_kernel_gradient(x, grad_out, relu_output, top, left, tile):
    """(grad_kernel (3, 3, C, F), grad_bias) by Winograd, summed over fixed partials in order."""
    threads = get_num_threads()
    n, channels, filters = x.shape[0], x.shape[3], grad_out.shape[3]
    block = max(1, _winograd_block_tiles(tile, channels, filters, x.itemsize) // 3)
    scratch = _scratch(threads, _winograd.scratch_floats(tile, tile, block, channels, filters,
                                                         True), x.dtype)
    tiles = n * -(-grad_out.shape[1] // tile) * -(-grad_out.shape[2] // tile)
    # Each partial sum costs a transformed-domain buffer of the whole kernel, cleared and
    # transformed back once: it needs enough tiles to be worth that.
    n_partials = max(1, min(n, MAX_GRADIENT_PARTIALS, tiles // WINOGRAD_MIN_PARTIAL_TILES))
    partials = np.empty((n_partials, 9, channels, filters), dtype=x.dtype)
    bias_partials = np.empty((n_partials, filters), dtype=x.dtype)
    g = WINOGRAD_G[tile]
    with _sequential_blas:
        _winograd.winograd_kernel_gradient(x, grad_out, relu_output, g, g, partials,
                                           bias_partials, scratch, tile, tile, top, left, block,
                                           threads)
    grad_kernel, grad_bias = partials[0], bias_partials[0]
    for p in range(1, n_partials):  # in order: the sums do not depend on the thread count
        grad_kernel += partials[p]
        grad_bias += bias_partials[p]
    return grad_kernel.reshape(3, 3, channels, filters), grad_bias


def _conv_setup(x, kernel, bias, strides, padding, dilation_rate, name):
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"{name}: kernel must be 4-D (kh, kw, in_channels, filters), "
                         f"got shape {kernel.shape}")
    dtype = float_dtype(kernel.dtype, name)
    kernel = np.ascontiguousarray(kernel)
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    kh, kw, in_channels, filters = kernel.shape
    if min(kernel.shape) < 1:
        raise ValueError(f"{name}: kernel of shape {kernel.shape} has an empty dimension")
    if x.shape[3] != in_channels:
        raise ValueError(f"{name}: input has {x.shape[3]} channels (shape {x.shape}) but the "
                         f"kernel expects {in_channels} (kernel shape {kernel.shape})")
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (filters,) or bias.dtype != dtype:
            raise ValueError(f"{name}: bias must have shape ({filters},) and dtype {dtype}, "
                             f"got {bias.shape} {bias.dtype}")
    strides = as_int_tuple(strides, 2, "strides", name)
    dilation = as_int_tuple(dilation_rate, 2, "dilation_rate", name)
    geometry = window_geometry(x.shape[1:3], (kh, kw), strides, padding, dilation, False, name)
    return x, kernel, bias, geometry


def _column_args(geometry):
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.strides, geometry.dilation
    (pt, _), (pl, _) = geometry.padding
    return kh, kw, sh, sw, dh, dw, pt, pl, geometry.output_hw[0], geometry.output_hw[1]


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, relu=False,
           algorithm="auto", kernel_transforms=None, name="conv2d"):
    """2-D convolution (cross-correlation, like Keras and PyTorch) of NHWC `x`.

    With ``relu=True`` the output is max(conv + bias, 0), applied while each
    block is in cache. Returns (N, out_h, out_w, filters) in the kernel's dtype.

    ``algorithm``: "im2col" (im2col + GEMM: any shape, im2col's summation order),
    "winograd" (F(2x2, 3x3)) or "winograd4" (F(4x4, 3x3), faster, less accurate in
    float32), which serve 3x3 kernels at stride 1 and dilation 1 only, or "auto"
    (choose_algorithm's rule).

    ``kernel_transforms``: None, or a dict the caller keeps beside the kernel. A Winograd
    algorithm transforms the kernel on every call, unless it finds the transform there
    under its name; it stores the one it computes there. The caller must empty the dict
    whenever the kernel changes (nothing here can tell), e.g. a layer keeps one per
    version of its kernel, so the kernel is transformed once per training step.
    """
    x, kernel, bias, geometry = _conv_setup(x, kernel, bias, strides, padding, dilation_rate,
                                            name)
    algorithm = _algorithm(algorithm, "forward", geometry, x.shape, kernel.shape, name)
    n = x.shape[0]
    filters = kernel.shape[3]
    weights = kernel.reshape(-1, filters)
    out = np.empty((n, *geometry.output_hw, filters), dtype=kernel.dtype)
    if out.size == 0:
        return out
    if algorithm in WINOGRAD_TILES:
        transformed = _winograd_kernel(kernel, algorithm, kernel_transforms, name)
        (top, _), (left, _) = geometry.padding
        _winograd_conv(x, None, transformed.forward, bias, out, top, left,
                       WINOGRAD_TILES[algorithm], bool(relu))
        return out
    threads = get_num_threads()
    block_rows = _balanced_block_rows(out.size // filters, weights.shape[0], x.itemsize)
    scratch = _scratch(threads, block_rows * weights.shape[0], x.dtype)
    with _sequential_blas:
        _conv.conv2d_forward(x, weights, bias, out.reshape(-1, filters), scratch,
                             *_column_args(geometry), block_rows, bool(relu), threads)
    return out


def conv2d_backward(x, kernel, grad_out, strides=1, padding="valid", dilation_rate=1,
                    need_input_grad=True, relu_output=None, algorithm="auto",
                    kernel_transforms=None, name="conv2d"):
    """Gradients of conv2d: (grad_x or None, grad_kernel, grad_bias).

    With ``relu_output``, the output of ``conv2d(..., relu=True)``, `grad_out` is the
    gradient of that output, and the ReLU's derivative is applied inside the kernel, a
    block at a time (the same numbers as ``relu_backward`` first, without its pass).

    ``algorithm`` and ``kernel_transforms`` as in conv2d; both gradients use the same
    algorithm. The kernel gradient is a sum of partial sums over fixed groups of images,
    added in a fixed order, so results are identical at any number of threads.
    """
    x, kernel, _, geometry = _conv_setup(x, kernel, None, strides, padding, dilation_rate, name)
    algorithm = _algorithm(algorithm, "backward", geometry, x.shape, kernel.shape, name)
    n = x.shape[0]
    filters = kernel.shape[3]
    expected = (n, *geometry.output_hw, filters)
    grad_out = as_batch(grad_out, kernel.dtype, name, arg="output gradient")
    if grad_out.shape != expected:
        raise ValueError(f"{name}: output gradient has shape {grad_out.shape}, expected "
                         f"{expected}")
    if relu_output is not None:
        relu_output = np.asarray(relu_output)
        if relu_output.shape != expected or relu_output.dtype != kernel.dtype:
            raise ValueError(f"{name}: relu_output must have shape {expected} and dtype "
                             f"{kernel.dtype}, got {relu_output.shape} {relu_output.dtype}")
        relu_output = np.ascontiguousarray(relu_output)
    weights = kernel.reshape(-1, filters)
    grad_rows = grad_out.reshape(-1, filters)
    grad_x = np.empty_like(x) if need_input_grad else None
    if grad_rows.shape[0] == 0:
        if grad_x is not None:
            grad_x[...] = 0
        return grad_x, np.zeros_like(kernel), np.zeros(filters, dtype=kernel.dtype)
    if algorithm in WINOGRAD_TILES:
        tile = WINOGRAD_TILES[algorithm]
        (top, _), (left, _) = geometry.padding
        grad_kernel, grad_bias = _winograd_kernel_gradient(x, grad_out, relu_output, top, left,
                                                           tile)
        if grad_x is not None:
            # The input gradient is a 3x3 convolution of the output gradient with the
            # kernel rotated by 180 degrees: the window of grad_x[i] starts 2 - top above.
            transformed = _winograd_kernel(kernel, algorithm, kernel_transforms, name)
            _winograd_conv(grad_out, relu_output, transformed.input_grad, None, grad_x,
                           2 - top, 2 - left, tile, False)
        return grad_x, grad_kernel, grad_bias
    if relu_output is not None:
        relu_output = relu_output.reshape(-1, filters)
    threads = get_num_threads()
    # A thread's scratch row holds a block's columns, then its gradient through the ReLU.
    row_width = weights.shape[0] + filters
    block_rows = _block_rows(row_width, x.itemsize)
    scratch = _scratch(threads, block_rows * row_width, x.dtype)
    n_partials = min(n, MAX_GRADIENT_PARTIALS)
    partials = np.empty((n_partials, *weights.shape), dtype=x.dtype)
    bias_partials = np.empty((n_partials, filters), dtype=x.dtype)
    with _sequential_blas:
        _conv.conv2d_backward(x, weights, grad_rows, relu_output, partials, bias_partials,
                              grad_x, scratch, *_column_args(geometry), block_rows, threads)
    grad_weights, grad_bias = partials[0], bias_partials[0]
    for p in range(1, n_partials):  # in order: the sums do not depend on the thread count
        grad_weights += partials[p]
        grad_bias += bias_partials[p]
    return grad_x, grad_weights.reshape(kernel.shape), grad_bias


def relu_backward(y, grad_y, name="relu"):
    """Gradient through max(z, 0) given its output y: grad_y where y > 0, else 0."""
    y, grad_y = np.asarray(y), np.asarray(grad_y)
    if y.shape != grad_y.shape or y.dtype != grad_y.dtype:
        raise ValueError(f"{name}: output {y.shape} {y.dtype} and its gradient {grad_y.shape} "
                         f"{grad_y.dtype} must match")
    float_dtype(y.dtype, name)
    grad_z = np.empty(y.shape, dtype=y.dtype)
    if y.size:
        _conv.relu_backward(np.ascontiguousarray(y).reshape(-1),
                            np.ascontiguousarray(grad_y).reshape(-1), grad_z.reshape(-1),
                            get_num_threads())
    return grad_z


# ----------------------------------------------------------------------------- matrix products

# A product is cut into at most this many blocks, each at least MATMUL_MIN_BLOCK rows or
# columns of the output (or of the inner dimension, when that is the longest) so BLAS still
# gets a sizeable product.
MATMUL_MAX_BLOCKS = 16
MATMUL_MIN_BLOCK = 32
# Cutting the inner dimension costs one output-sized partial product per block, so only
# outputs up to this many elements are cut that way (a Dense forward pass on a batch).
MATMUL_SPLIT_K_MAX_OUTPUT = 1 << 16


def _stored(m):
    """(array, transposed): a C-contiguous array that is `m` or whose transpose is `m`."""
    if m.flags.c_contiguous:
        return m, False
    if m.T.flags.c_contiguous:
        return m.T, True
    return np.ascontiguousarray(m), False


def matmul(a, b, out=None, name="matmul"):
    """a @ b for 2-D float arrays of one dtype (transposed views welcome), on convnet's threads.

    The output is cut into fixed blocks along its longer side, one single-threaded GEMM
    each; or, for a small output over a longer inner dimension, that is cut and the
    partial products are added in order. Either way the result does not depend on the thread count.
    """
    a, b = np.asarray(a), np.asarray(b)
    dtype = float_dtype(a.dtype, name)
    if a.ndim != 2 or b.ndim != 2 or b.dtype != dtype or a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: cannot multiply {a.shape} {a.dtype} by {b.shape} {b.dtype}")
    m, n = a.shape[0], b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=dtype)
    elif out.shape != (m, n) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{name}: out must be a C-contiguous {(m, n)} {dtype} array, got "
                         f"{out.shape} {out.dtype}")
    if out.size == 0 or a.shape[1] == 0:
        out[...] = 0
        return out
    (a_stored, trans_a), (b_stored, trans_b) = _stored(a), _stored(b)
    k = a.shape[1]
    if k > max(m, n) and m * n <= MATMUL_SPLIT_K_MAX_OUTPUT:
        # A small output over a long inner dimension (a Dense layer's forward pass): split
        # the inner dimension, and add the partial products in order.
        block = max(MATMUL_MIN_BLOCK, -(-k // MATMUL_MAX_BLOCKS))
        partials = np.empty((-(-k // block), m, n), dtype=dtype)
        with _sequential_blas:
            _linalg.matmul_split_k(a_stored, trans_a, b_stored, trans_b, partials, block,
                                   get_num_threads())
        np.copyto(out, partials[0])
        for partial in partials[1:]:
            out += partial
        return out
    by_rows = m >= n
    extent = m if by_rows else n
    block = max(MATMUL_MIN_BLOCK, -(-extent // MATMUL_MAX_BLOCKS))
    with _sequential_blas:
        _linalg.matmul(a_stored, trans_a, b_stored, trans_b, out, block, by_rows,
                       get_num_threads())
    return out


# ----------------------------------------------------------------------------- pooling

def _pool_geometry(input_shape, pool_size, strides, padding, ceil_mode, name):
    """Validate pooling arguments against an NHWC input shape; return its WindowGeometry."""
    _check_spatial(input_shape, name)
    pool_size = as_int_tuple(pool_size, 2, "pool_size", name)
    strides = pool_size if strides is None else as_int_tuple(strides, 2, "strides", name)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{name}: ceil_mode must be True or False, got {ceil_mode!r}")
    geometry = window_geometry(input_shape[1:3], pool_size, strides, padding, (1, 1),
                               bool(ceil_mode), name, kernel_arg="pool_size")
    (pt, pb), (pl, pr) = geometry.padding
    if max(pt, pb) >= pool_size[0] or max(pl, pr) >= pool_size[1]:
        raise ValueError(f"{name}: padding {geometry.padding} must be smaller than pool_size "
                         f"{pool_size} on each side, or some windows would see only padding")
    return geometry


def _pool_setup(x, pool_size, strides, padding, ceil_mode, dtype, name):
    x = as_batch(x, dtype, name)
    return x, _pool_geometry(x.shape, pool_size, strides, padding, ceil_mode, name)


def _pool_output(x, geometry, dtype=None):
    n, _, _, channels = x.shape
    return np.empty((n, *geometry.output_hw, channels), dtype=dtype or x.dtype)


def max_pool2d(x, pool_size, strides=None, padding="valid", ceil_mode=False, dtype=None,
               with_argmax=True, name="max_pooling2d"):
    """Max pooling; returns (output, argmax) where argmax[n, i, j, c] = h * W + w of the
    winner, an int32 array, or None when ``with_argmax`` is False (inference needs none).

    NaN propagates like PyTorch: a window holding a NaN outputs NaN.
    """
    x, geometry = _pool_setup(x, pool_size, strides, padding, ceil_mode, dtype, name)
    if x.shape[1] * x.shape[2] > np.iinfo(np.int32).max:
        raise ValueError(f"{name}: input of shape {x.shape} has more than 2**31 - 1 pixels "
                         f"per image, too many for argmax's int32 positions")
    out = _pool_output(x, geometry)
    argmax = _pool_output(x, geometry, np.int32) if with_argmax else None
    (kh, kw), (sh, sw) = geometry.kernel, geometry.strides
    (pt, _), (pl, _) = geometry.padding
    _pool.max_pool2d_forward(x, out, argmax, kh, kw, sh, sw, pt, pl, get_num_threads())
    return out, argmax


def max_pool2d_backward(grad_out, argmax, input_shape, name="max_pooling2d"):
    """Gradient of max_pool2d with respect to its input of `input_shape`."""
    argmax = np.asarray(argmax)
    grad_out = as_batch(grad_out, None, name, arg="output gradient")
    n, h, w, channels = (int(v) for v in input_shape)
    if (argmax.dtype != np.int32 or argmax.shape != grad_out.shape or grad_out.shape[0] != n
            or grad_out.shape[3] != channels):
        raise ValueError(f"{name}: output gradient {grad_out.shape} and argmax {argmax.shape} "
                         f"{argmax.dtype} (argmax must be int32) do not match the input shape "
                         f"{tuple(input_shape)}")
    # One pass: as unsigned, a negative position reads as a huge one.
    if argmax.size and argmax.view(np.uint32).max() >= h * w:
        raise ValueError(f"{name}: argmax holds positions outside the {h}x{w} input")
    grad_x = np.empty((n, h, w, channels), dtype=grad_out.dtype)
    _pool.max_pool2d_backward(grad_out, np.ascontiguousarray(argmax), grad_x, get_num_threads())
    return grad_x


def _avg_args(geometry, count_include_pad):
    (kh, kw), (sh, sw) = geometry.kernel, geometry.strides
    (pt, pb), (pl, pr) = geometry.padding
    return kh, kw, sh, sw, pt, pb, pl, pr, bool(count_include_pad)


def avg_pool2d(x, pool_size, strides=None, padding="valid", ceil_mode=False,
               count_include_pad=False, dtype=None, name="average_pooling2d"):
    """Average pooling; padded cells count in the divisor only with count_include_pad."""
    x, geometry = _pool_setup(x, pool_size, strides, padding, ceil_mode, dtype, name)
    out = _pool_output(x, geometry)
    _pool.avg_pool2d_forward(x, out, *_avg_args(geometry, count_include_pad), get_num_threads())
    return out


def avg_pool2d_backward(grad_out, input_shape, pool_size, strides=None, padding="valid",
                        ceil_mode=False, count_include_pad=False, name="average_pooling2d"):
    """Gradient of avg_pool2d with respect to its input of `input_shape`."""
    grad_out = as_batch(grad_out, None, name, arg="output gradient")
    shape = tuple(int(v) for v in input_shape)
    geometry = _pool_geometry(shape, pool_size, strides, padding, ceil_mode, name)
    expected = (shape[0], *geometry.output_hw, shape[3])
    if grad_out.shape != expected:
        raise ValueError(f"{name}: output gradient has shape {grad_out.shape}, expected {expected}")
    grad_x = np.empty(shape, dtype=grad_out.dtype)
    _pool.avg_pool2d_backward(grad_out, grad_x, *_avg_args(geometry, count_include_pad),
                              get_num_threads())
    return grad_x


def global_avg_pool2d(x, dtype=None, name="global_average_pooling2d"):
    """Mean over height and width: (N, H, W, C) -> (N, C)."""
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    h, w = x.shape[1:3]
    return avg_pool2d(x, (h, w), name=name).reshape(x.shape[0], x.shape[3])


def global_avg_pool2d_backward(grad_out, input_shape, name="global_average_pooling2d"):
    grad_out = as_batch(grad_out, None, name, arg="output gradient", ndim=2)
    n, h, w, c = (int(v) for v in input_shape)
    return avg_pool2d_backward(grad_out.reshape(n, 1, 1, c), (n, h, w, c), (h, w), name=name)


def global_max_pool2d(x, dtype=None, with_argmax=True, name="global_max_pooling2d"):
    """Maximum over height and width: (N, H, W, C) -> ((N, C), argmax or None)."""
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    out, argmax = max_pool2d(x, x.shape[1:3], with_argmax=with_argmax, name=name)
    return out.reshape(x.shape[0], x.shape[3]), argmax


def global_max_pool2d_backward(grad_out, argmax, input_shape, name="global_max_pooling2d"):
    grad_out = as_batch(grad_out, None, name, arg="output gradient", ndim=2)
    n, _, _, c = (int(v) for v in input_shape)
    return max_pool2d_backward(grad_out.reshape(n, 1, 1, c), argmax, input_shape, name=name)
