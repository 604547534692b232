"""The functional layer: the one caller of the compiled kernels in ``convnet._core``.

Every function here validates its arguments and shapes, resolves padding,
casts and makes inputs contiguous, allocates the outputs, and only then calls
a kernel (which runs with bounds checks off and trusts what it is given). The
convolution kernels call BLAS themselves, one single-threaded GEMM per block
and OpenMP thread; around them BLAS is held to one thread (see SequentialBlas).

Arrays are NHWC; conv kernels are (kh, kw, in_channels, filters). ``name``
is the layer's name, used to make error messages point at the right layer.
"""
import os
import threading
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from ._core import conv as _conv
from ._core import depthwise as _depthwise
from ._core import direct as _direct
from ._core import image as _image
from ._core import layer_norm as _layer_norm
from ._core import linalg as _linalg
from ._core import norm as _norm
from ._core import pool as _pool
from ._core import resize as _resize
from ._core import threads as _threads
from ._core import winograd as _winograd
from .utils import conv_output_length, conv_transpose_padding, same_padding

set_num_threads = _threads.set_num_threads
get_num_threads = _threads.get_num_threads
threads_now = _threads.threads_now

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
# The kernels take sizes, strides and padding as C ints, and BLAS its sizes and leading
# dimensions: nothing that reaches them may pass this.
INT_MAX = 2**31 - 1
_workspace = threading.local()


# ----------------------------------------------------------------------------- validation

def as_int_tuple(value, n, arg, name, minimum=1, maximum=INT_MAX):
    """`value` as a tuple of `n` ints in [minimum, maximum] (an int is repeated), or a clear
    error. The default maximum is the kernels' C int."""
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
    if any(v > maximum for v in items):
        raise ValueError(f"{name}: {arg} must be <= {maximum}, got {value!r}")
    return tuple(int(v) for v in items)


def input_shape_tuple(input_shape, name):
    """An NHWC `input_shape` (a backward pass's) as a tuple of 4 ints >= 0, or a clear error."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  for v in shape):
        raise TypeError(f"{name}: input_shape must be 4 ints (batch, height, width, channels), "
                        f"got {input_shape!r}")
    if any(v < 0 for v in shape):
        raise ValueError(f"{name}: input_shape must not be negative, got {input_shape!r}")
    return tuple(int(v) for v in shape)


def float_dtype(dtype, name):
    """np.dtype of float32 or float64 in the machine's byte order, or a TypeError naming the
    layer."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dtype.newbyteorder("=") in _FLOATS:
        dtype = dtype.newbyteorder("=")
    if dtype not in _FLOATS:
        raise TypeError(f"{name}: dtype must be 'float32' or 'float64', got {dtype}")
    return dtype


def as_batch(x, dtype, name, arg="input", ndim=4):
    """`x` as a C-contiguous, native-endian array of `dtype` with `ndim` dimensions.

    Booleans, integers and float16 are cast (exactly, for every uint8 image);
    complex, object and string data are refused. ``dtype=None`` keeps float32
    and float64 as they are (in either byte order) and casts anything else to float32.
    """
    array = x if isinstance(x, np.ndarray) else np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: {arg} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != ndim:
        layout = "(batch, height, width, channels)" if ndim == 4 else f"{ndim}-D"
        raise ValueError(f"{name}: expected a {ndim}-D {arg} {layout}, got shape {array.shape}")
    if dtype is None:
        native = array.dtype.newbyteorder("=")
        dtype = native if native in _FLOATS else np.dtype(np.float32)
    return np.ascontiguousarray(array, dtype=float_dtype(dtype, name))


def _native(array):
    """`array`, or a copy in the machine's byte order: the kernels read native numbers only."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


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
    if max(pt, pb, pl, pr) > INT_MAX:  # "same" with a huge dilation
        raise ValueError(f"{name}: padding {padding!r} comes to {((pt, pb), (pl, pr))}, more "
                         f"than the kernels' limit of {INT_MAX} cells a side")
    out = tuple(conv_output_length(n, k, s, d, before + after, ceil_mode, before)
                for n, k, s, d, (before, after)
                in zip(input_hw, kernel_size, strides, dilation, ((pt, pb), (pl, pr))))
    if any(v is not None and v > INT_MAX for v in out):
        raise ValueError(f"{name}: the output would be {out[0]}x{out[1]} (input {input_hw[0]}x"
                         f"{input_hw[1]}, padding {padding!r}), more than the kernels' limit of "
                         f"{INT_MAX} rows or columns")
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
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self):
        # The child has only the thread that forked: a lock held or a depth counted by any
        # other thread would never be released here. Start over, with BLAS's threads back.
        self._lock = threading.Lock()
        self._depth = 0
        if self._saved is not None:
            self._saved.restore_original_limits()
            self._saved = None

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._controller is None:
                    # Made on first use: it finds the BLAS libraries loaded by then.
                    self._controller = ThreadpoolController().select(user_api="blas")
                self._saved = self._controller.limit(limits=1)
            self._depth += 1
        _warm_up_blas()
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._saved.restore_original_limits()
                self._saved = None


_sequential_blas = SequentialBlas()

# The most threads whose OpenBLAS buffers _warm_up_blas prepares (more would cost memory
# and time on machines few programs use fully).
WARM_UP_THREADS = 16


def _warm_up_blas():
    """Before a Python thread's first kernel that calls BLAS (and again when its thread
    count rises), run one 512**3 float32 GEMM on each of its OpenMP threads at once.

    On this project's 2-core machine a single-threaded OpenBLAS GEMM ran at a third to a
    half of its speed (12 GFLOP/s for 256 x 1024 x 256 against 34; a Winograd forward pass
    17-20 ms instead of 10) until the buffer OpenBLAS hands that call had served a product
    of about that size or larger, and threads calling BLAS at the same time each get a
    buffer of their own: the kernels' second thread stayed slow, so 2 threads ran W1's
    products only 1.2-1.5x as fast as 1 (two processes: 2x each). No more page faults or
    context switches; 2.3x the cycles in the microkernel. A program whose first product on
    every thread was large never saw it. The cause lies inside OpenBLAS (or the virtual
    machine's memory) and was not found; one large product per thread, all at once so that
    each takes a buffer of its own, avoids it: 2 threads then ran those products 2.0x as
    fast as 1. It costs about 10 ms, once. BLAS is held to one thread (the caller's
    SequentialBlas)."""
    # Counted per Python thread (each has a libgomp pool of its own), in its _workspace.
    threads = min(_threads.threads_now(), WARM_UP_THREADS)
    if _workspace.__dict__.get("blas_threads_warmed", 0) >= threads:
        return
    _workspace.blas_threads_warmed = threads
    n = 512
    a = np.ones((n * threads, n), dtype=np.float32)
    _linalg.matmul(a, False, a[:n], False, np.empty_like(a), n, True, threads)


def _add_in_order(partials):
    """partials[0] + partials[1] + ..., added one after another in that order (into
    partials[0]): partial sums over fixed groups, so the total does not depend on the thread
    count."""
    total = partials[0]
    for partial in partials[1:]:
        total += partial
    return total


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
# "direct" sums each output pixel's taps in a loop, for single-channel inputs only, of
# kernels of at most DIRECT_MAX_TAPS taps (_core/direct.pyx's MAX_TAPS: a pixel's list).
DIRECT_MAX_TAPS = 1024
ALGORITHMS = ("auto", "im2col", "direct", *WINOGRAD_TILES)
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
    """The algorithm "auto" runs: "winograd", "direct" or "im2col", for the "forward" or
    "backward" pass (both gradients) of a convolution of `input_shape` (N, H, W, C) to an
    output of height and width `output_hw`, with a kernel of `kernel_shape` (kh, kw, C, F).

    The rule, from the benchmarks (1 thread, this project's 2-core x86-64 machine): the
    backward pass of a single-channel input (in_channels 1: a network's first layer on grey
    images) is "direct"'s, any kernel size, stride and dilation: im2col's GEMM has an inner
    dimension of only kh * kw there, and BLAS packs more than it multiplies (W7's first
    layer, 64 images 28x28, 3x3, 1 -> 32, through its ReLU: kernel gradient 4.4 -> 2.3 ms at
    1 thread, 2.2 -> 1.9 at 2; W8's, 128 images: 7.2 -> 3.9 and 4.0 -> 3.4; W2's 5x5
    backward 6.9 -> 5.9 and 4.1 -> 3.2). Its forward pass stays im2col's: the direct sum was
    no faster there (4.7 ms both on W8's first layer at 1 thread, slower at 2), as writing
    the 32-channel output bounds both. Otherwise Winograd F(2x2, 3x3) serves 3x3 kernels at
    stride 1 and dilation 1 only, and pays where its 16 GEMMs per block are wide enough to
    run BLAS near full speed: forward (K = C, N = F) with C >= 32 and F >= 64 (W1: 0.6x
    im2col's time; 32 -> 32 channels: 1.1x, 16 -> 64: 1.6x), backward (the input gradient's
    K = F, N = C) with C >= 16 and F >= 32 (W1: 0.75x; 8 -> 32 channels: 1.5x; 16 -> 16:
    1.06x). The backward pass gains less, so it also needs the 2x2 tiles to cover the output
    and the input with at most 10% to spare (W7's 14x14: none, 0.83x im2col's time; W8's
    13x13 input and 11x11 output: 14% and 16%, 1.06x). Otherwise im2col.

    F(4x4, 3x3) ("winograd4") is never chosen: on W1-shaped data (inputs, kernels and
    gradients uniform in [-1, 1]) its float32 forward pass is off by 3.0x im2col's max abs
    error and 1.3x the PyTorch-parity tolerance (2e-5 + 2e-4 |exact|), its input gradient
    by 10.5x im2col's (its kernel gradient, 3.9x, would pass alone, but both gradients come
    from one algorithm). F(2x2, 3x3) is at 0.4x, 1.7x and 1.2x im2col's, inside the
    tolerance wherever im2col is (benchmarks/accuracy.py; BENCHMARKS.md, "Accuracy").
    """
    channels, filters = kernel_shape[2], kernel_shape[3]
    if channels == 1 and kernel_shape[0] * kernel_shape[1] <= DIRECT_MAX_TAPS:
        return "direct" if direction == "backward" else "im2col"
    if not winograd_serves(kernel_shape[:2], strides, dilation):
        return "im2col"
    if direction == "forward":
        return "winograd" if channels >= 32 and filters >= 64 else "im2col"
    covered = min(_tile_coverage(output_hw), _tile_coverage(input_shape[1:3]))
    return "winograd" if channels >= 16 and filters >= 32 and covered >= 0.9 else "im2col"


def _tile_coverage(hw, tile=2):
    """The fraction of the tiles over an image of height and width `hw` that it fills."""
    tiled = [-(-n // tile) * tile for n in hw]
    return hw[0] * hw[1] / (tiled[0] * tiled[1])


def _algorithm(algorithm, direction, geometry, input_shape, kernel_shape, name, groups=1):
    """The algorithm to run: `algorithm` checked against the convolution, or auto's choice.
    Grouped convolutions (groups > 1) are im2col's only."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"{name}: algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, "
                         f"got {algorithm!r}")
    if groups != 1:
        if algorithm not in ("auto", "im2col"):
            raise ValueError(f"{name}: algorithm={algorithm!r} computes ungrouped convolutions "
                             f"only, got groups={groups}; use algorithm='im2col' or 'auto'")
        return "im2col"
    if algorithm == "auto":
        return choose_algorithm(direction, input_shape, geometry.output_hw, kernel_shape,
                                geometry.strides, geometry.dilation)
    if algorithm == "direct":
        if kernel_shape[2] != 1 or kernel_shape[0] * kernel_shape[1] > DIRECT_MAX_TAPS:
            raise ValueError(f"{name}: algorithm='direct' computes convolutions of one input "
                             f"channel with at most {DIRECT_MAX_TAPS} taps only, got a kernel "
                             f"of shape {tuple(kernel_shape)}; use algorithm='im2col' or 'auto'")
        return algorithm
    if algorithm != "im2col" and not winograd_serves(geometry.kernel, geometry.strides,
                                                     geometry.dilation):
        raise ValueError(
            f"{name}: algorithm={algorithm!r} computes 3x3 convolutions at stride 1 and "
            f"dilation 1 only, got kernel_size={geometry.kernel}, strides={geometry.strides}, "
            f"dilation_rate={geometry.dilation}; use algorithm='im2col' or 'auto'")
    return algorithm


class WinogradKernel:
    """A 3x3 kernel in Winograd's transformed domain, for one algorithm (tile size).

    ``forward`` is G g G^T, (cells, in_channels, filters), what the forward pass multiplies
    by; ``input_grad`` the same of the kernel rotated by 180 degrees with its channels
    swapped, (cells, filters, in_channels), what the input gradient multiplies by. That one
    is computed on first use (an inference never needs it), from a copy of the kernel
    taken with ``forward``, so both always belong to the same kernel.
    """

    def __init__(self, algorithm, kernel):
        self.algorithm = algorithm
        self.kernel_shape = kernel.shape
        self._g = WINOGRAD_G[WINOGRAD_TILES[algorithm]]
        self._rotated = kernel[::-1, ::-1].transpose(0, 1, 3, 2).copy()
        self.forward = self._transform(kernel)
        self._input_grad = None

    @property
    def input_grad(self):
        if self._input_grad is None:
            self._input_grad = self._transform(self._rotated)
            self._rotated = None
        return self._input_grad

    def _transform(self, k):
        # G k G^T over the two 3-tap axes, as two matrix products in float64 (4x faster
        # than one einsum), rounded once to the kernel's dtype.
        g = self._g
        cells, rest = g.shape[0], k.shape[2:]
        half = (g @ k.astype(np.float64).reshape(3, -1)).reshape(cells, 3, -1)
        # (cells, cells, in * out): [a, b] = sum over q of g[b, q] half[a, q]
        transformed = np.matmul(g, half)
        return np.ascontiguousarray(transformed.reshape(cells * cells, *rest), dtype=k.dtype)


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
    return WinogradKernel(algorithm, kernel.astype(dtype, copy=False))


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
    threads = _threads.threads_now()
    in_channels, filters = transformed.shape[1:]
    block = _winograd_block_tiles(tile, in_channels, filters, src.itemsize)
    scratch = _scratch(threads, _winograd.scratch_floats(tile, tile, block, in_channels,
                                                         filters, False), src.dtype)
    with _sequential_blas:
        _winograd.winograd_conv(src, mask, transformed, bias, out, scratch, tile, tile, top,
                                left, block, relu, threads)


def _winograd_kernel_gradient(x, grad_out, relu_output, top, left, tile):
    """(grad_kernel (3, 3, C, F), grad_bias) by Winograd, summed over fixed partials in order."""
    threads = _threads.threads_now()
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
    return (_add_in_order(partials).reshape(3, 3, channels, filters),
            _add_in_order(bias_partials))


# ----------------------------------------------------------------------------- convolution

def _check_kernel(kernel, input_shape, bias, groups, depthwise, name):
    """Check a conv kernel against an NHWC input shape: (kernel, bias, groups)."""
    if min(kernel.shape) < 1:
        raise ValueError(f"{name}: kernel of shape {kernel.shape} has an empty dimension")
    kh, kw, kernel_in, filters = kernel.shape
    if kh * kw * kernel_in > INT_MAX or filters > INT_MAX:
        # The column matrix (rows of kh*kw*in_channels) and the kernel are BLAS operands
        # whose leading dimensions are C ints.
        raise ValueError(f"{name}: kernel of shape {kernel.shape} has kh*kw*in_channels = "
                         f"{kh * kw * kernel_in} and {filters} filters; each must be at most "
                         f"{INT_MAX}")
    groups = as_int_tuple(groups, 1, "groups", name)[0]
    kernel_in, filters = kernel.shape[2:]
    channels = input_shape[3]
    if depthwise:
        expected, out_channels = kernel_in, kernel_in * filters
    else:
        expected, out_channels = kernel_in * groups, filters
    if channels != expected:
        per_group = f" ({kernel_in} per group x groups={groups})" if groups > 1 else ""
        raise ValueError(f"{name}: input has {channels} channels (shape {tuple(input_shape)}) "
                         f"but the kernel expects {expected}{per_group} (kernel shape "
                         f"{kernel.shape})")
    if filters % groups:
        raise ValueError(f"{name}: groups={groups} must divide the kernel's {filters} filters "
                         f"(kernel shape {kernel.shape})")
    if bias is not None:
        bias = _native(np.asarray(bias))
        if bias.shape != (out_channels,) or bias.dtype != kernel.dtype:
            raise ValueError(f"{name}: bias must have shape ({out_channels},) and dtype "
                             f"{kernel.dtype}, got {bias.shape} {bias.dtype}")
        bias = np.ascontiguousarray(bias)
    return kernel, bias, groups


def _as_kernel(kernel, name, layout="(kh, kw, in_channels, filters)"):
    kernel = _native(np.asarray(kernel))
    if kernel.ndim != 4:
        raise ValueError(f"{name}: kernel must be 4-D {layout}, got shape {kernel.shape}")
    float_dtype(kernel.dtype, name)
    return np.ascontiguousarray(kernel)


def _conv_setup(x, kernel, bias, strides, padding, dilation_rate, name, groups=1,
                depthwise=False):
    kernel = _as_kernel(kernel, name, "(kh, kw, in_channels, depth_multiplier)" if depthwise
                        else "(kh, kw, in_channels, filters)")
    x = as_batch(x, kernel.dtype, name)
    _check_spatial(x.shape, name)
    kernel, bias, groups = _check_kernel(kernel, x.shape, bias, groups, depthwise, name)
    strides = as_int_tuple(strides, 2, "strides", name)
    dilation = as_int_tuple(dilation_rate, 2, "dilation_rate", name)
    geometry = window_geometry(x.shape[1:3], kernel.shape[:2], strides, padding, dilation, False,
                               name)
    return x, kernel, bias, geometry, groups


def _column_args(geometry):
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.strides, geometry.dilation
    (pt, _), (pl, _) = geometry.padding
    return kh, kw, sh, sw, dh, dw, pt, pl, geometry.output_hw[0], geometry.output_hw[1]


def _output_gradient(grad_out, expected, dtype, name, relu_output=None):
    """grad_out (and relu_output) checked against the output shape `expected`."""
    grad_out = as_batch(grad_out, dtype, name, arg="output gradient")
    if grad_out.shape != expected:
        raise ValueError(f"{name}: output gradient has shape {grad_out.shape}, expected "
                         f"{expected}")
    if relu_output is not None:
        relu_output = _native(np.asarray(relu_output))
        if relu_output.shape != expected or relu_output.dtype != dtype:
            raise ValueError(f"{name}: relu_output must have shape {expected} and dtype "
                             f"{dtype}, got {relu_output.shape} {relu_output.dtype}")
        relu_output = np.ascontiguousarray(relu_output)
    return grad_out, relu_output


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, relu=False,
           groups=1, algorithm="auto", kernel_transforms=None, name="conv2d"):
    """2-D convolution (cross-correlation, like Keras and PyTorch) of NHWC `x`.

    With ``relu=True`` the output is max(conv + bias, 0), applied while each
    block is in cache. With ``groups`` > 1 (Keras' Conv2D ``groups``) the kernel is
    (kh, kw, in_channels/groups, filters) and filters f*filters/groups .. see only
    input channels f*in_channels/groups ..; each group is unfolded and multiplied on its
    own. Returns (N, out_h, out_w, filters) in the kernel's dtype.

    ``algorithm``: "im2col" (im2col + GEMM: any shape, im2col's summation order),
    "direct" (each pixel's taps summed in a loop: single-channel inputs only),
    "winograd" (F(2x2, 3x3)) or "winograd4" (F(4x4, 3x3), faster, less accurate in
    float32), which serve ungrouped 3x3 kernels at stride 1 and dilation 1 only, or "auto"
    (choose_algorithm's rule).

    ``kernel_transforms``: None, or a dict the caller keeps beside the kernel. A Winograd
    algorithm transforms the kernel on every call, unless it finds the transform there
    under its name; it stores the one it computes there. The caller must empty the dict
    whenever the kernel changes (nothing here can tell), e.g. a layer keeps one per
    version of its kernel, so the kernel is transformed once per training step.
    """
    x, kernel, bias, geometry, groups = _conv_setup(x, kernel, bias, strides, padding,
                                                    dilation_rate, name, groups)
    algorithm = _algorithm(algorithm, "forward", geometry, x.shape, kernel.shape, name, groups)
    if algorithm in WINOGRAD_TILES:
        out = np.empty((x.shape[0], *geometry.output_hw, kernel.shape[3]), dtype=kernel.dtype)
        if out.size == 0:
            return out
        transformed = _winograd_kernel(kernel, algorithm, kernel_transforms, name)
        (top, _), (left, _) = geometry.padding
        _winograd_conv(x, None, transformed.forward, bias, out, top, left,
                       WINOGRAD_TILES[algorithm], bool(relu))
        return out
    if algorithm == "direct":
        return _direct_conv(x, kernel, bias, geometry, relu)
    return _conv_forward(x, kernel, bias, geometry, groups, relu)


def _direct_conv(x, kernel, bias, geometry, relu):
    """The convolution of a single-channel x, tap by tap (see _core/direct.pyx)."""
    filters = kernel.shape[3]
    out = np.empty((x.shape[0], *geometry.output_hw, filters), dtype=kernel.dtype)
    if out.size:
        _direct.conv1_forward(x, kernel.reshape(-1, filters), bias, out,
                              *_column_args(geometry)[:8], bool(relu), _threads.threads_now())
    return out


def _direct_kernel_gradient(x, grad_out, relu_output, geometry):
    """(grad_kernel (kh*kw, F), grad_bias) of _direct_conv, summed over fixed partials in order."""
    n, filters = x.shape[0], grad_out.shape[3]
    (kh, kw) = geometry.kernel
    threads = _threads.threads_now()
    scratch = _scratch(threads, grad_out.shape[2] * filters, x.dtype)
    n_partials = min(n, MAX_GRADIENT_PARTIALS)
    partials = np.empty((n_partials, kh * kw, filters), dtype=x.dtype)
    bias_partials = np.empty((n_partials, filters), dtype=x.dtype)
    _direct.conv1_kernel_gradient(x, grad_out, relu_output, partials, bias_partials, scratch,
                                  *_column_args(geometry)[:8], threads)
    return _add_in_order(partials), _add_in_order(bias_partials)


def _conv_forward(x, kernel, bias, geometry, groups, relu):
    n = x.shape[0]
    filters = kernel.shape[3]
    weights = kernel.reshape(-1, filters)
    out = np.empty((n, *geometry.output_hw, filters), dtype=kernel.dtype)
    if out.size == 0:
        return out
    threads = _threads.threads_now()
    block_rows = _balanced_block_rows(out.size // filters, weights.shape[0], x.itemsize)
    scratch = _scratch(threads, block_rows * weights.shape[0], x.dtype)
    with _sequential_blas:
        _conv.conv2d_forward(x, weights, bias, out.reshape(-1, filters), scratch,
                             *_column_args(geometry), groups, block_rows, bool(relu), threads)
    return out


def conv2d_backward(x, kernel, grad_out, strides=1, padding="valid", dilation_rate=1,
                    need_input_grad=True, relu_output=None, groups=1, algorithm="auto",
                    kernel_transforms=None, name="conv2d"):
    """Gradients of conv2d: (grad_x or None, grad_kernel, grad_bias).

    With ``relu_output``, the output of ``conv2d(..., relu=True)``, `grad_out` is the
    gradient of that output, and the ReLU's derivative is applied inside the kernel, a
    block at a time (the same numbers as ``relu_backward`` first, without its pass).

    ``algorithm`` and ``kernel_transforms`` as in conv2d; both gradients use the same
    algorithm, but for "direct", whose input gradient (which a network's first layer never
    asks for) is im2col's. The kernel gradient is a sum of partial sums over fixed groups of images,
    added in a fixed order, so results are identical at any number of threads.
    """
    x, kernel, _, geometry, groups = _conv_setup(x, kernel, None, strides, padding,
                                                 dilation_rate, name, groups)
    algorithm = _algorithm(algorithm, "backward", geometry, x.shape, kernel.shape, name, groups)
    expected = (x.shape[0], *geometry.output_hw, kernel.shape[3])
    grad_out, relu_output = _output_gradient(grad_out, expected, kernel.dtype, name,
                                             relu_output)
    if algorithm in WINOGRAD_TILES and grad_out.size:
        tile = WINOGRAD_TILES[algorithm]
        (top, _), (left, _) = geometry.padding
        grad_kernel, grad_bias = _winograd_kernel_gradient(x, grad_out, relu_output, top, left,
                                                           tile)
        grad_x = None
        if need_input_grad:
            grad_x = np.empty_like(x)
            # The input gradient is a 3x3 convolution of the output gradient with the
            # kernel rotated by 180 degrees: the window of grad_x[i] starts 2 - top above.
            transformed = _winograd_kernel(kernel, algorithm, kernel_transforms, name)
            _winograd_conv(grad_out, relu_output, transformed.input_grad, None, grad_x,
                           2 - top, 2 - left, tile, False)
        return grad_x, grad_kernel, grad_bias
    if algorithm == "direct" and grad_out.size:
        grad_kernel, grad_bias = _direct_kernel_gradient(x, grad_out, relu_output, geometry)
        grad_x = None
        if need_input_grad:  # im2col's: a network's first layer never asks for this one
            if relu_output is not None:
                grad_out = relu_backward(relu_output, grad_out, name)
            grad_x = _conv_input_gradient(grad_out, kernel, None, x.shape, geometry, 1, False)
        return grad_x, grad_kernel.reshape(kernel.shape), grad_bias
    return _conv_backward(x, kernel, grad_out, relu_output, geometry, groups, need_input_grad)


def _conv_backward(x, kernel, grad_out, relu_output, geometry, groups, need_input_grad):
    n = x.shape[0]
    filters = kernel.shape[3]
    weights = kernel.reshape(-1, filters)
    grad_rows = grad_out.reshape(-1, filters)
    if relu_output is not None:
        relu_output = relu_output.reshape(-1, filters)
    grad_x = np.empty_like(x) if need_input_grad else None
    if grad_rows.shape[0] == 0:
        if grad_x is not None:
            grad_x[...] = 0
        return grad_x, np.zeros_like(kernel), np.zeros(filters, dtype=kernel.dtype)
    threads = _threads.threads_now()
    # A thread's scratch row holds a block's columns, then its gradient through the ReLU.
    row_width = weights.shape[0] + filters
    block_rows = _block_rows(row_width, x.itemsize)
    scratch = _scratch(threads, block_rows * row_width, x.dtype)
    n_partials = min(n, MAX_GRADIENT_PARTIALS)
    partials = np.empty((n_partials, *weights.shape), dtype=x.dtype)
    bias_partials = np.empty((n_partials, filters), dtype=x.dtype)
    with _sequential_blas:
        _conv.conv2d_backward(x, weights, grad_rows, relu_output, partials, bias_partials,
                              grad_x, scratch, *_column_args(geometry), groups, block_rows,
                              threads)
    return grad_x, _add_in_order(partials).reshape(kernel.shape), _add_in_order(bias_partials)


def _input_shape(input_shape, name):
    shape = as_int_tuple(input_shape, 4, "input_shape", name, minimum=0)
    _check_spatial(shape, name, "input_shape")
    return shape


def conv2d_backward_input(grad_out, kernel, input_shape, strides=1, padding="valid",
                          dilation_rate=1, groups=1, name="conv2d"):
    """The input gradient of conv2d alone, for an input of `input_shape` (N, H, W, C):
    no kernel gradient is computed (a frozen layer's backward pass)."""
    kernel = _as_kernel(kernel, name)
    shape = _input_shape(input_shape, name)
    kernel, _, groups = _check_kernel(kernel, shape, None, groups, False, name)
    geometry = window_geometry(shape[1:3], kernel.shape[:2],
                               as_int_tuple(strides, 2, "strides", name), padding,
                               as_int_tuple(dilation_rate, 2, "dilation_rate", name), False, name)
    grad_out, _ = _output_gradient(grad_out, (shape[0], *geometry.output_hw, kernel.shape[3]),
                                   kernel.dtype, name)
    return _conv_input_gradient(grad_out, kernel, None, shape, geometry, groups, False)


def _conv_input_gradient(grad_out, kernel, bias, input_shape, geometry, groups, relu):
    """col2im of grad_out @ kernel^T (+ bias, then ReLU): the input gradient of a
    convolution, and the forward pass of a transposed one."""
    grad_x = np.empty(input_shape, dtype=kernel.dtype)
    if grad_x.size == 0:
        return grad_x
    filters = kernel.shape[3]
    weights = kernel.reshape(-1, filters)
    threads = _threads.threads_now()
    block_rows = _block_rows(weights.shape[0], grad_x.itemsize)
    scratch = _scratch(threads, block_rows * weights.shape[0], grad_x.dtype)
    with _sequential_blas:
        _conv.conv2d_backward_input(grad_out.reshape(-1, filters), weights, bias, grad_x,
                                    scratch, *_column_args(geometry), groups, block_rows,
                                    bool(relu), threads)
    return grad_x


def _transpose_setup(x, kernel, bias, strides, padding, output_padding, dilation_rate, name):
    """Check a transposed convolution's arguments; return x, kernel, bias and the
    WindowGeometry of the convolution it is the adjoint of (whose input is the
    transposed convolution's output, and whose padding after may be negative)."""
    kernel = _as_kernel(kernel, name, "(kh, kw, filters, in_channels)")
    x = as_batch(x, kernel.dtype, name)
    _check_spatial(x.shape, name)
    kh, kw, filters, in_channels = kernel.shape
    if min(kernel.shape) < 1:
        raise ValueError(f"{name}: kernel of shape {kernel.shape} has an empty dimension")
    if x.shape[3] != in_channels:
        raise ValueError(f"{name}: input has {x.shape[3]} channels (shape {x.shape}) but the "
                         f"kernel (kh, kw, filters, in_channels) expects {in_channels} "
                         f"(kernel shape {kernel.shape})")
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (filters,) or bias.dtype != kernel.dtype:
            raise ValueError(f"{name}: bias must have shape ({filters},) and dtype "
                             f"{kernel.dtype}, got {bias.shape} {bias.dtype}")
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{name}: padding must be 'valid' or 'same' (as in Keras' "
                         f"Conv2DTranspose), got {padding!r}")
    padding = padding.lower()
    strides = as_int_tuple(strides, 2, "strides", name)
    dilation = as_int_tuple(dilation_rate, 2, "dilation_rate", name)
    if output_padding is not None:
        output_padding = as_int_tuple(output_padding, 2, "output_padding", name, minimum=0)
        if any(p >= s for p, s in zip(output_padding, strides)):
            raise ValueError(f"{name}: output_padding {output_padding} must be smaller than "
                             f"strides {strides} in each dimension, as in Keras")
    sizes = [conv_transpose_padding(n, k, s, padding,
                                    None if output_padding is None else output_padding[axis], d)
             for axis, (n, k, s, d) in enumerate(zip(x.shape[1:3], (kh, kw), strides, dilation))]
    output_hw = tuple(length for length, _ in sizes)
    if min(output_hw) < 1:
        raise ValueError(f"{name}: kernel_size {(kh, kw)} with padding {padding!r} and "
                         f"output_padding {output_padding} makes an empty output "
                         f"{output_hw} from the input of shape {x.shape}")
    padding_pairs = tuple(
        (crop, (n - 1) * s + d * (k - 1) + 1 - crop - length)
        for (length, crop), n, k, s, d in zip(sizes, x.shape[1:3], (kh, kw), strides, dilation))
    geometry = WindowGeometry((kh, kw), strides, dilation, padding_pairs, output_hw,
                              tuple(x.shape[1:3]))
    return x, kernel, bias, geometry


def conv2d_transpose(x, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1, relu=False, name="conv2d_transpose"):
    """Transposed 2-D convolution of NHWC `x` with a Keras (kh, kw, filters, in_channels)
    kernel: the adjoint of conv2d with that kernel (no flip), the output size and
    padding by Keras' rule (see ``utils.conv_transpose_padding``; "valid" or "same",
    ``output_padding`` < strides). Computed as the input gradient of that convolution
    (col2im), then + bias and, with ``relu``, max(., 0) on each image while in cache.
    Strides > 1 with dilation > 1 work here as in keras.ops.conv_transpose (Keras'
    Conv2DTranspose layer refuses them). Returns (N, out_h, out_w, filters)."""
    x, kernel, bias, geometry = _transpose_setup(x, kernel, bias, strides, padding,
                                                 output_padding, dilation_rate, name)
    shape = (x.shape[0], *geometry.input_hw, kernel.shape[2])
    return _conv_input_gradient(x, kernel, bias, shape, geometry, 1, relu)


def conv2d_transpose_backward(x, kernel, grad_out, strides=1, padding="valid",
                              output_padding=None, dilation_rate=1, need_input_grad=True,
                              relu_output=None, name="conv2d_transpose"):
    """Gradients of conv2d_transpose: (grad_x or None, grad_kernel, grad_bias).

    The input gradient is conv2d of `grad_out` with the same kernel; the kernel gradient
    is conv2d's kernel gradient with the roles swapped (`grad_out` as the input, `x` as
    the output gradient); the bias gradient is grad_out summed per channel in fixed
    blocks. With ``relu_output`` (the output of ``conv2d_transpose(..., relu=True)``)
    `grad_out` first goes through the ReLU's derivative."""
    x, kernel, _, geometry = _transpose_setup(x, kernel, None, strides, padding,
                                              output_padding, dilation_rate, name)
    expected = (x.shape[0], *geometry.input_hw, kernel.shape[2])
    grad_out, relu_output = _output_gradient(grad_out, expected, kernel.dtype, name,
                                             relu_output)
    if relu_output is not None:
        grad_out = relu_backward(relu_output, grad_out, name)
    grad_x = _conv_forward(grad_out, kernel, None, geometry, 1, False) if need_input_grad else None
    _, grad_kernel, _ = _conv_backward(grad_out, kernel, x, None, geometry, 1, False)
    grad_bias, _ = _channel_sums(grad_out.reshape(-1, kernel.shape[2]))
    return grad_x, grad_kernel, grad_bias.astype(kernel.dtype)


def depthwise_conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
                     name="depthwise_conv2d"):
    """Depthwise convolution of NHWC `x` with a Keras (kh, kw, in_channels, depth_multiplier)
    kernel: output channel c*depth_multiplier + m is input channel c filtered by
    kernel[:, :, c, m] (+ bias[c*depth_multiplier + m]). Direct loops over the channels,
    no im2col. Padding and dilation as conv2d. Returns (N, out_h, out_w, in*depth_multiplier)."""
    x, kernel, bias, geometry, _ = _conv_setup(x, kernel, bias, strides, padding,
                                               dilation_rate, name, depthwise=True)
    kh, kw, channels, multiplier = kernel.shape
    out = np.empty((x.shape[0], *geometry.output_hw, channels * multiplier), dtype=kernel.dtype)
    _depthwise.depthwise_conv2d_forward(x, kernel.reshape(kh, kw, -1), bias, out,
                                        *_depthwise_args(geometry), _threads.threads_now())
    return out


def _depthwise_args(geometry):
    (sh, sw), (dh, dw), ((pt, _), (pl, _)) = geometry.strides, geometry.dilation, geometry.padding
    return sh, sw, dh, dw, pt, pl


def depthwise_conv2d_backward(x, kernel, grad_out, strides=1, padding="valid", dilation_rate=1,
                              need_input_grad=True, name="depthwise_conv2d"):
    """Gradients of depthwise_conv2d: (grad_x or None, grad_kernel, grad_bias).

    Each input cell gathers its gradient itself (no scatter); the kernel and bias
    gradients are partial sums over fixed ranges of output rows, added in order, so
    the results are identical at any number of threads."""
    x, kernel, _, geometry, _ = _conv_setup(x, kernel, None, strides, padding, dilation_rate,
                                            name, depthwise=True)
    kh, kw, channels, multiplier = kernel.shape
    expected = (x.shape[0], *geometry.output_hw, channels * multiplier)
    grad_out, _ = _output_gradient(grad_out, expected, kernel.dtype, name)
    taps = kernel.reshape(kh, kw, -1)
    threads = _threads.threads_now()
    grad_x = None
    if need_input_grad:
        grad_x = np.empty_like(x)
        h, w = x.shape[1:3]
        _depthwise.depthwise_conv2d_backward_input(
            grad_out, taps, grad_x, np.empty((h, kh, 2), np.intp), np.empty(h, np.intp),
            np.empty((w, kw, 2), np.intp), np.empty(w, np.intp), *_depthwise_args(geometry),
            threads)
    n_partials = min(x.shape[0] * geometry.output_hw[0], MAX_GRADIENT_PARTIALS)
    if n_partials == 0:
        return grad_x, np.zeros_like(kernel), np.zeros(taps.shape[2], dtype=kernel.dtype)
    partials = np.empty((n_partials, *taps.shape), dtype=kernel.dtype)
    bias_partials = np.empty((n_partials, taps.shape[2]), dtype=kernel.dtype)
    _depthwise.depthwise_conv2d_backward_kernel(x, grad_out, partials, bias_partials,
                                                *_depthwise_args(geometry), threads)
    return grad_x, _add_in_order(partials).reshape(kernel.shape), _add_in_order(bias_partials)


def relu_backward(y, grad_y, name="relu"):
    """Gradient through max(z, 0) given its output y: grad_y where y > 0, else 0."""
    y, grad_y = _native(np.asarray(y)), _native(np.asarray(grad_y))
    if y.shape != grad_y.shape or y.dtype != grad_y.dtype:
        raise ValueError(f"{name}: output {y.shape} {y.dtype} and its gradient {grad_y.shape} "
                         f"{grad_y.dtype} must match")
    float_dtype(y.dtype, name)
    grad_z = np.empty(y.shape, dtype=y.dtype)
    if y.size:
        _conv.relu_backward(np.ascontiguousarray(y).reshape(-1),
                            np.ascontiguousarray(grad_y).reshape(-1), grad_z.reshape(-1),
                            _threads.threads_now())
    return grad_z


# ----------------------------------------------------------------------------- normalization

# Rows of a (rows, channels) reduction block: this many bytes, so that a block, reduced
# twice (its sum, then its squared deviations), is read from memory once and stays in
# a core's L1 cache between the two.
NORM_BLOCK_BYTES = 32 << 10


def _norm_block_rows(channels, itemsize):
    """Rows per block: a function of the shape alone, so the sums are too."""
    return max(1, NORM_BLOCK_BYTES // (channels * itemsize))


def _channel_rows(x, dtype, name, arg="input"):
    """`x` (any shape (..., C), at least 2-D) as a C-contiguous (rows, C) array."""
    array = x if isinstance(x, np.ndarray) else np.asarray(x)
    if array.ndim < 2:
        raise ValueError(f"{name}: expected an {arg} of at least 2 dimensions (batch, ..., "
                         f"channels), got shape {array.shape}")
    array = as_batch(array, dtype, name, arg, ndim=array.ndim)
    if array.shape[-1] < 1:
        raise ValueError(f"{name}: {arg} of shape {array.shape} has no channels")
    return array, array.reshape(-1, array.shape[-1])


def _channel_vectors(name, channels, dtype, **vectors):
    """Each given per-channel vector as a contiguous (channels,) array of `dtype`; None stays."""
    checked = []
    for arg, value in vectors.items():
        if value is not None:
            value = np.asarray(value)
            if value.shape != (channels,) or value.dtype != dtype:
                raise ValueError(f"{name}: {arg} must have shape ({channels},) and dtype "
                                 f"{dtype}, got {value.shape} {value.dtype}")
            value = np.ascontiguousarray(value)
        checked.append(value)
    return checked


def _epsilon(epsilon, name):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating,
                                                             np.integer)):
        raise TypeError(f"{name}: epsilon must be a number, got {epsilon!r}")
    if not epsilon >= 0:
        raise ValueError(f"{name}: epsilon must be >= 0, got {epsilon!r}")
    return float(epsilon)


def _channel_sums(grad, relu_output=None, x=None, center=None):
    """(sum of grad, sum of grad * (x - center) or None) over the rows, in float64,
    reduced in fixed blocks in a fixed order."""
    channels = grad.shape[1]
    block_rows = _norm_block_rows(channels, grad.itemsize)
    blocks = max(1, -(-grad.shape[0] // block_rows))
    block_sums = np.empty((blocks, 2, channels))
    grad_sum, grad_x_sum = np.empty(channels), np.empty(channels)
    scratch = _scratch(blocks, 2 * channels, grad.dtype)
    _norm.channel_gradient_sums(grad, relu_output, x, center, block_sums, grad_sum, grad_x_sum,
                                scratch, block_rows, _threads.threads_now())
    return grad_sum, (None if x is None else grad_x_sum)


def _affine(rows, scale, shift, relu, out):
    block_rows = _norm_block_rows(rows.shape[1], rows.itemsize)
    _norm.channel_affine(rows, scale.astype(rows.dtype), shift.astype(rows.dtype),
                         out.reshape(rows.shape), bool(relu), block_rows, _threads.threads_now())
    return out


def _relu_rows(relu_output, shape, dtype, name):
    if relu_output is None:
        return None
    relu_output = np.asarray(relu_output)
    if relu_output.shape != shape or relu_output.dtype != dtype:
        raise ValueError(f"{name}: relu_output must have shape {shape} and dtype {dtype}, got "
                         f"{relu_output.shape} {relu_output.dtype}")
    return np.ascontiguousarray(relu_output).reshape(-1, shape[-1])


def _grad_rows(grad_y, x, name):
    grad_y, grad_rows = _channel_rows(grad_y, x.dtype, name, "output gradient")
    if grad_y.shape != x.shape:
        raise ValueError(f"{name}: output gradient has shape {grad_y.shape}, expected {x.shape}")
    return grad_rows


def batch_norm_train(x, gamma=None, beta=None, epsilon=1e-3, relu=False, dtype=None,
                     name="batch_normalization"):
    """Batch normalisation in training mode over the last axis of `x` (NHWC, or (N, C)):
    (y, mean, variance, inv_std).

    mean and the biased variance (sum of squared deviations / rows, as Keras' ``moments``,
    which the moving variance is updated with too; PyTorch updates its running variance
    with the unbiased one) are over all other axes, reduced in fixed blocks merged in order
    (Chan et al.), so they do not depend on the thread count. Keras' numpy and torch
    backends compute the same variance as E[x^2] - E[x]^2, which loses its digits when the
    mean is large against the spread; here it keeps them.
    y = gamma * (x - mean) * inv_std + beta, inv_std = 1 / sqrt(variance + epsilon), and
    max(y, 0) with ``relu``. gamma and beta are optional (Keras' ``scale`` and ``center``).
    ``mean`` and ``inv_std`` are what ``batch_norm_train_backward`` needs. `x` is cast to
    `dtype` (None: float32 and float64 stay, anything else becomes float32), and every
    vector must have that dtype.
    """
    x, rows = _channel_rows(x, dtype, name)
    channels = rows.shape[1]
    gamma, beta = _channel_vectors(name, channels, x.dtype, gamma=gamma, beta=beta)
    epsilon = _epsilon(epsilon, name)
    if rows.shape[0] == 0:
        raise ValueError(f"{name}: cannot take batch statistics of an empty input of shape "
                         f"{x.shape}")
    block_rows = _norm_block_rows(channels, x.itemsize)
    blocks = -(-rows.shape[0] // block_rows)
    block_stats = np.empty((2, blocks, channels))
    mean, variance = np.empty(channels, x.dtype), np.empty(channels, x.dtype)
    _norm.channel_moments(rows, block_stats[0], block_stats[1], mean, variance,
                          _scratch(blocks, 3 * channels, x.dtype), block_rows,
                          _threads.threads_now())
    inv_std = 1 / np.sqrt(variance.astype(np.float64) + epsilon)
    scale = inv_std if gamma is None else inv_std * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    y = _affine(rows, scale, shift, relu, np.empty_like(x))
    return y, mean, variance, inv_std.astype(x.dtype)


def batch_norm_train_backward(x, grad_y, mean, inv_std, gamma=None, relu_output=None,
                              dtype=None, name="batch_normalization"):
    """Gradients of batch_norm_train given its `mean` and `inv_std`:
    (grad_x, grad_gamma, grad_beta) (the layer takes those of the weights it has).

    grad_beta = sum(g), grad_gamma = sum(g * x_hat) with x_hat = (x - mean) * inv_std, and
    grad_x = gamma * inv_std * (g - grad_beta/R - x_hat * grad_gamma/R) over R rows: the
    statistics' own gradients included. With ``relu_output`` (y of
    ``batch_norm_train(..., relu=True)``) g is grad_y through the ReLU's derivative,
    applied on the fly. Sums in fixed blocks added in order, as in batch_norm_train.
    """
    x, rows = _channel_rows(x, dtype, name)
    grad_rows = _grad_rows(grad_y, x, name)
    channels = rows.shape[1]
    mean, inv_std, gamma = _channel_vectors(name, channels, x.dtype, mean=mean, inv_std=inv_std,
                                            gamma=gamma)
    relu_rows = _relu_rows(relu_output, x.shape, x.dtype, name)
    count = rows.shape[0]
    if count == 0:
        zeros = np.zeros(channels, x.dtype)
        return np.empty_like(x), zeros, zeros.copy()
    grad_sum, centered_sum = _channel_sums(grad_rows, relu_rows, rows, mean)
    inv = inv_std.astype(np.float64)
    grad_scale = inv if gamma is None else inv * gamma
    x_scale = -grad_scale * inv * inv * centered_sum / count
    offset = -grad_scale * grad_sum / count
    grad_x = np.empty_like(x)
    _norm.channel_affine_gradient(grad_rows, relu_rows, rows, mean, grad_scale.astype(x.dtype),
                                  x_scale.astype(x.dtype), offset.astype(x.dtype),
                                  grad_x.reshape(rows.shape),
                                  _norm_block_rows(channels, x.itemsize), _threads.threads_now())
    return grad_x, (centered_sum * inv).astype(x.dtype), grad_sum.astype(x.dtype)


def _inference_affine(name, channels, dtype, gamma, beta, moving_mean, moving_variance,
                      epsilon, statistics=("moving_mean", "moving_variance")):
    """(scale, shift) in float64 of Keras' inference map, x * scale + shift with
    scale = gamma / sqrt(moving_variance + epsilon), shift = beta - moving_mean * scale.
    ``statistics`` names the two statistics in errors."""
    gamma, beta, moving_mean, moving_variance = _channel_vectors(
        name, channels, dtype, gamma=gamma, beta=beta,
        **dict(zip(statistics, (moving_mean, moving_variance))))
    if moving_mean is None or moving_variance is None:
        raise ValueError(f"{name}: {' and '.join(statistics)} are required")
    scale = 1 / np.sqrt(moving_variance.astype(np.float64) + _epsilon(epsilon, name))
    if gamma is not None:
        scale = scale * gamma
    shift = -moving_mean * scale
    return scale, (shift if beta is None else shift + beta)


def batch_norm_inference(x, gamma, beta, moving_mean, moving_variance, epsilon=1e-3,
                         relu=False, dtype=None, name="batch_normalization"):
    """Batch normalisation in inference mode over the last axis: Keras'
    (x - moving_mean) * gamma / sqrt(moving_variance + epsilon) + beta as one per-channel
    scale and shift (then max(., 0) with ``relu``); gamma and beta may be None."""
    x, rows = _channel_rows(x, dtype, name)
    scale, shift = _inference_affine(name, rows.shape[1], x.dtype, gamma, beta, moving_mean,
                                     moving_variance, epsilon)
    return _affine(rows, scale, shift, relu, np.empty_like(x))


def batch_norm_inference_backward(x, grad_y, gamma, moving_mean, moving_variance,
                                  epsilon=1e-3, need_parameter_grads=True, relu_output=None,
                                  dtype=None, name="batch_normalization"):
    """Gradients of batch_norm_inference: (grad_x, grad_gamma, grad_beta), the last two
    None unless ``need_parameter_grads`` (a frozen layer needs only grad_x).

    The moving statistics are constants here: grad_x = g * gamma / sqrt(moving_variance +
    epsilon), grad_beta = sum(g), grad_gamma = sum(g * (x - moving_mean)) / sqrt(...), with
    g = grad_y through the ReLU's derivative when ``relu_output`` is given. `x` is read
    only for grad_gamma."""
    x, rows = _channel_rows(x, dtype, name)
    grad_rows = _grad_rows(grad_y, x, name)
    channels = rows.shape[1]
    scale, _ = _inference_affine(name, channels, x.dtype, gamma, None, moving_mean,
                                 moving_variance, epsilon)
    relu_rows = _relu_rows(relu_output, x.shape, x.dtype, name)
    grad_x = np.empty_like(x)
    _norm.channel_affine_gradient(grad_rows, relu_rows, None, None, scale.astype(x.dtype), None,
                                  np.zeros(channels, x.dtype), grad_x.reshape(rows.shape),
                                  _norm_block_rows(channels, x.itemsize), _threads.threads_now())
    if not need_parameter_grads:
        return grad_x, None, None
    grad_sum, centered_sum = _channel_sums(grad_rows, relu_rows, rows,
                                           np.ascontiguousarray(moving_mean))
    inv = 1 / np.sqrt(np.asarray(moving_variance, np.float64) + epsilon)
    return grad_x, (centered_sum * inv).astype(x.dtype), grad_sum.astype(x.dtype)


def fold_batch_norm(kernel, bias, gamma, beta, mean, variance, epsilon=1e-3,
                    name="batch_normalization"):
    """(kernel, bias) of one layer equal to that layer followed by inference-mode batch
    normalisation with these statistics: kernel * scale and (bias - mean) * scale + beta,
    scale = gamma / sqrt(variance + epsilon), over the kernel's last axis (its output
    channels: Conv2D's and Dense's; a DepthwiseConv2D kernel (kh, kw, C, M) folds as
    kernel.reshape(kh, kw, 1, C*M)). bias, gamma and beta may be None (no bias, Keras'
    scale=False and center=False). Computed in float64, returned in the kernel's dtype."""
    kernel = np.asarray(kernel)
    dtype = float_dtype(kernel.dtype, name)
    if kernel.ndim < 1:
        raise ValueError(f"{name}: kernel must have an output-channel axis, got shape "
                         f"{kernel.shape}")
    channels = kernel.shape[-1]
    scale, shift = _inference_affine(name, channels, dtype, gamma, beta, mean, variance,
                                     epsilon, ("mean", "variance"))
    bias, = _channel_vectors(name, channels, dtype, bias=bias)
    folded_bias = shift if bias is None else shift + bias * scale
    return (kernel * scale).astype(dtype), folded_bias.astype(dtype)


# ----------------------------------------------------------------------------- matrix products

# A product is cut into at most this many blocks, each at least MATMUL_MIN_BLOCK rows or
# columns of the output (or of the inner dimension, when that is the longest) so BLAS still
# gets a sizeable product.
MATMUL_MAX_BLOCKS = 16
MATMUL_MIN_BLOCK = 32
# Cutting the inner dimension costs one output-sized partial product per block, so only
# outputs up to this many elements are cut that way (a Dense forward pass on a batch).
MATMUL_SPLIT_K_MAX_OUTPUT = 1 << 16


def _describe_array(value):
    if isinstance(value, np.ndarray):
        flags = [f for f, on in (("read-only", not value.flags.writeable),
                                 ("non-contiguous", not value.flags.c_contiguous)) if on]
        return " ".join([*flags, f"{value.shape} {value.dtype} array"])
    return type(value).__name__


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

    ``out`` may overlap `a` or `b` (``matmul(a, b, out=a)``): the product is then made in a
    temporary and copied in. A matrix whose rows (as stored) are longer than BLAS's int,
    2**31 - 1 elements, is refused; any other size is cut into products BLAS can take.
    """
    a, b = _native(np.asarray(a)), _native(np.asarray(b))
    dtype = float_dtype(a.dtype, name)
    if a.ndim != 2 or b.ndim != 2 or b.dtype != dtype or a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: cannot multiply {a.shape} {a.dtype} by {b.shape} {b.dtype}")
    m, n = a.shape[0], b.shape[1]
    if out is not None and (not isinstance(out, np.ndarray) or out.shape != (m, n)
                            or out.dtype != dtype or not out.flags.c_contiguous
                            or not out.flags.writeable):
        raise ValueError(f"{name}: out must be a writeable C-contiguous {(m, n)} {dtype} array, "
                         f"got {_describe_array(out)}")
    if out is not None and (np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        np.copyto(out, matmul(a, b, name=name))
        return out
    (a_stored, trans_a), (b_stored, trans_b) = _stored(a), _stored(b)
    # BLAS reads every matrix through a leading dimension (its stored row length) that is
    # a C int; sizes beyond that are cut into pieces in _core, leading dimensions cannot be.
    if max(a_stored.shape[1], b_stored.shape[1], n) > INT_MAX:
        raise ValueError(f"{name}: cannot multiply {a.shape} by {b.shape}: a matrix stored with "
                         f"rows longer than {INT_MAX} elements is beyond BLAS")
    if out is None:
        out = np.empty((m, n), dtype=dtype)
    if out.size == 0 or a.shape[1] == 0:
        out[...] = 0
        return out
    k = a.shape[1]
    if k > max(m, n) and m * n <= MATMUL_SPLIT_K_MAX_OUTPUT:
        # A small output over a long inner dimension (a Dense layer's forward pass): split
        # the inner dimension, and add the partial products in order.
        block = max(MATMUL_MIN_BLOCK, -(-k // MATMUL_MAX_BLOCKS))
        partials = np.empty((-(-k // block), m, n), dtype=dtype)
        with _sequential_blas:
            _linalg.matmul_split_k(a_stored, trans_a, b_stored, trans_b, partials, block,
                                   _threads.threads_now())
        np.copyto(out, partials[0])
        for partial in partials[1:]:
            out += partial
        return out
    by_rows = m >= n
    extent = m if by_rows else n
    block = max(MATMUL_MIN_BLOCK, -(-extent // MATMUL_MAX_BLOCKS))
    with _sequential_blas:
        _linalg.matmul(a_stored, trans_a, b_stored, trans_b, out, block, by_rows,
                       _threads.threads_now())
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


def _check_argmax_range(input_shape, name):
    if input_shape[1] * input_shape[2] > INT_MAX:
        raise ValueError(f"{name}: input of shape {tuple(input_shape)} has more than 2**31 - 1 "
                         f"pixels per image, too many for argmax's int32 positions")


def max_pool2d(x, pool_size, strides=None, padding="valid", ceil_mode=False, dtype=None,
               with_argmax=True, name="max_pooling2d"):
    """Max pooling; returns (output, argmax) where argmax[n, i, j, c] = h * W + w of the
    winner, an int32 array, or None when ``with_argmax`` is False (inference needs none).

    NaN propagates like PyTorch: a window holding a NaN outputs NaN.
    """
    x, geometry = _pool_setup(x, pool_size, strides, padding, ceil_mode, dtype, name)
    _check_argmax_range(x.shape, name)
    out = _pool_output(x, geometry)
    argmax = _pool_output(x, geometry, np.int32) if with_argmax else None
    (kh, kw), (sh, sw) = geometry.kernel, geometry.strides
    (pt, _), (pl, _) = geometry.padding
    _pool.max_pool2d_forward(x, out, argmax, kh, kw, sh, sw, pt, pl, _threads.threads_now())
    return out, argmax


def max_pool2d_backward(grad_out, argmax, input_shape, name="max_pooling2d"):
    """Gradient of max_pool2d with respect to its input of `input_shape`."""
    argmax = _native(np.asarray(argmax))
    grad_out = as_batch(grad_out, None, name, arg="output gradient")
    shape = input_shape_tuple(input_shape, name)
    _check_spatial(shape, name, arg="input_shape")
    _check_argmax_range(shape, name)
    n, h, w, channels = shape
    if (argmax.dtype != np.int32 or argmax.shape != grad_out.shape or grad_out.shape[0] != n
            or grad_out.shape[3] != channels):
        raise ValueError(f"{name}: output gradient {grad_out.shape} and argmax {argmax.shape} "
                         f"{argmax.dtype} (argmax must be int32) do not match the input shape "
                         f"{shape}")
    # One pass: as unsigned, a negative position reads as one >= 2**31, past any h * w.
    if argmax.size and argmax.view(np.uint32).max() >= h * w:
        raise ValueError(f"{name}: argmax holds positions outside the {h}x{w} input")
    grad_x = np.empty((n, h, w, channels), dtype=grad_out.dtype)
    _pool.max_pool2d_backward(grad_out, np.ascontiguousarray(argmax), grad_x,
                              _threads.threads_now())
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
    _pool.avg_pool2d_forward(x, out, *_avg_args(geometry, count_include_pad),
                             _threads.threads_now())
    return out


def avg_pool2d_backward(grad_out, input_shape, pool_size, strides=None, padding="valid",
                        ceil_mode=False, count_include_pad=False, name="average_pooling2d"):
    """Gradient of avg_pool2d with respect to its input of `input_shape`."""
    grad_out = as_batch(grad_out, None, name, arg="output gradient")
    shape = input_shape_tuple(input_shape, name)
    geometry = _pool_geometry(shape, pool_size, strides, padding, ceil_mode, name)
    expected = (shape[0], *geometry.output_hw, shape[3])
    if grad_out.shape != expected:
        raise ValueError(f"{name}: output gradient has shape {grad_out.shape}, expected {expected}")
    grad_x = np.empty(shape, dtype=grad_out.dtype)
    _pool.avg_pool2d_backward(grad_out, grad_x, *_avg_args(geometry, count_include_pad),
                              _threads.threads_now())
    return grad_x


def global_avg_pool2d(x, dtype=None, name="global_average_pooling2d"):
    """Mean over height and width: (N, H, W, C) -> (N, C)."""
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    h, w = x.shape[1:3]
    return avg_pool2d(x, (h, w), name=name).reshape(x.shape[0], x.shape[3])


def _global_pool_gradient(grad_out, input_shape, name):
    """The (N, C) gradient of a global pooling as (N, 1, 1, C), and the input shape."""
    grad_out = as_batch(grad_out, None, name, arg="output gradient", ndim=2)
    shape = input_shape_tuple(input_shape, name)
    _check_spatial(shape, name, arg="input_shape")
    if grad_out.shape != (shape[0], shape[3]):
        raise ValueError(f"{name}: output gradient has shape {grad_out.shape}, expected "
                         f"{(shape[0], shape[3])} for the input shape {shape}")
    return grad_out.reshape(shape[0], 1, 1, shape[3]), shape


def global_avg_pool2d_backward(grad_out, input_shape, name="global_average_pooling2d"):
    grad_out, shape = _global_pool_gradient(grad_out, input_shape, name)
    return avg_pool2d_backward(grad_out, shape, shape[1:3], name=name)


def global_max_pool2d(x, dtype=None, with_argmax=True, name="global_max_pooling2d"):
    """Maximum over height and width: (N, H, W, C) -> ((N, C), argmax or None)."""
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    out, argmax = max_pool2d(x, x.shape[1:3], with_argmax=with_argmax, name=name)
    return out.reshape(x.shape[0], x.shape[3]), argmax


def global_max_pool2d_backward(grad_out, argmax, input_shape, name="global_max_pooling2d"):
    grad_out, shape = _global_pool_gradient(grad_out, input_shape, name)
    return max_pool2d_backward(grad_out, argmax, shape, name=name)


# ----------------------------------------------------------------------------- resampling

#: Keras' names, in the order its errors list them
AFFINE_INTERPOLATIONS = tuple(_image.INTERPOLATIONS)
AFFINE_FILL_MODES = tuple(_image.FILL_MODES)
# Each resampling thread gets at least this many output pixels (some 0.1 ms of work at
# about 30 ns a pixel): starting and joining a thread costs more than a few hundred pixels.
MIN_RESAMPLED_PIXELS_PER_THREAD = 4096


def _resampling_threads(pixels, parts):
    """Threads for `pixels` output pixels split into `parts` independent pieces."""
    return max(1, min(_threads.threads_now(), parts, pixels // MIN_RESAMPLED_PIXELS_PER_THREAD))


def _affine_setup(transforms, batch, interpolation, fill_mode, name):
    """Transforms as a C-contiguous float64 (batch, 8) array, and the kernel's mode codes."""
    if interpolation not in _image.INTERPOLATIONS:
        raise ValueError(f"{name}: interpolation must be one of {AFFINE_INTERPOLATIONS}, "
                         f"got {interpolation!r}")
    if fill_mode not in _image.FILL_MODES:
        raise ValueError(f"{name}: fill_mode must be one of {AFFINE_FILL_MODES}, "
                         f"got {fill_mode!r}")
    array = np.asarray(transforms)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: transforms must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 8 or array.shape[0] not in (1, batch):
        raise ValueError(f"{name}: transforms must have shape (8,), (1, 8) or ({batch}, 8) "
                         f"for {batch} images, got {np.shape(transforms)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: transforms must be finite, got {array.tolist()}")
    array = np.ascontiguousarray(np.broadcast_to(array, (batch, 8)), dtype=np.float64)
    return array, _image.INTERPOLATIONS[interpolation], _image.FILL_MODES[fill_mode]


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0, output_size=None, name="affine_transform"):
    """Keras' ``ops.image.affine_transform`` on an NHWC batch.

    A row [a0, a1, a2, b0, b1, b2, c0, c1] of `transforms` (one per image, or one for all)
    maps each output pixel (x, y) = (column, row) to the input point
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, which is read with
    `interpolation` ("nearest" rounds half to even, "bilinear") and, outside the image,
    `fill_mode`: "constant" (`fill_value`), "nearest" (the edge), "reflect"
    (d c b a | a b c d | d c b a), "wrap", or "mirror" (d c b | a b c d | c b a).
    Keras' JAX, NumPy and torch backends ignore c0 and c1; here they act as in TensorFlow's,
    and a pixel with k = 0 is `fill_value`.

    The output is (N, *output_size, C), by default the input's size. Integer images are
    cast to float32; float32 and float64 images stay as they are.
    """
    images = as_batch(images, None, name, arg="images")
    _check_spatial(images.shape, name, arg="images")
    transforms, interpolation, fill_mode = _affine_setup(
        transforms, images.shape[0], interpolation, fill_mode, name)
    if isinstance(fill_value, (bool, np.bool_)) or not isinstance(
            fill_value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: fill_value must be a number, got {fill_value!r}")
    out_hw = (images.shape[1:3] if output_size is None
              else as_int_tuple(output_size, 2, "output_size", name))
    out = np.empty((images.shape[0], *out_hw, images.shape[3]), dtype=images.dtype)
    n, out_h, out_w, _ = out.shape
    _image.affine_transform_forward(images, transforms, out, interpolation, fill_mode,
                                    float(fill_value),
                                    _resampling_threads(n * out_h * out_w, n * out_h))
    return out


def affine_transform_backward(grad_out, transforms, input_shape, interpolation="bilinear",
                              fill_mode="constant", name="affine_transform"):
    """Gradient of affine_transform with respect to its images of `input_shape`: each
    output pixel's gradient added back to the cells it read, with the same weights."""
    grad_out = as_batch(grad_out, None, name, arg="output gradient")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or grad_out.shape[0] != shape[0] or grad_out.shape[3] != shape[3]:
        raise ValueError(f"{name}: output gradient of shape {grad_out.shape} does not match "
                         f"images of shape {shape}")
    _check_spatial(shape, name, arg="images")
    _check_spatial(grad_out.shape, name, arg="output gradient")
    transforms, interpolation, fill_mode = _affine_setup(
        transforms, shape[0], interpolation, fill_mode, name)
    grad_images = np.empty(shape, dtype=grad_out.dtype)
    n, out_h, out_w, _ = grad_out.shape
    _image.affine_transform_backward(grad_out, transforms, grad_images, interpolation,
                                     fill_mode, _resampling_threads(n * out_h * out_w, n))
    return grad_images
# ----------------------------------------------------------------------------- resizing

def _bilinear_taps(in_size, out_size, dtype):
    """Keras' bilinear sampling of `in_size` cells at `out_size` points, one axis: for each
    output cell the two input cells it reads and the weight of the second.

    Half-pixel centres, ``src = (dst + 0.5) * in_size / out_size - 0.5``, clamped into the
    input, computed in `dtype` as PyTorch does (Keras' torch backend calls it; TensorFlow's
    resize makes the same weights).
    """
    dtype = np.dtype(dtype)
    one_half = dtype.type(0.5)
    scale = dtype.type(in_size) / dtype.type(out_size)
    source = np.maximum(scale * (np.arange(out_size, dtype=dtype) + one_half) - one_half,
                        dtype.type(0))
    first = np.minimum(np.floor(source).astype(np.intp), in_size - 1)
    frac = np.clip(source - first.astype(dtype), 0, 1).astype(dtype)
    second = np.minimum(first + 1, in_size - 1)
    return first, second, frac


def _resize_gradient_setup(grad_out, input_shape, name):
    """The output gradient of a resize as an array, and the input shape as 4 ints."""
    grad_out = as_batch(grad_out, None, name, arg="output gradient")
    shape = input_shape_tuple(input_shape, name)
    _check_spatial(shape, name, arg="input_shape")
    if grad_out.shape[0] != shape[0] or grad_out.shape[3] != shape[3] \
            or min(grad_out.shape[1:3]) < 1:
        raise ValueError(f"{name}: output gradient of shape {grad_out.shape} does not match "
                         f"the input shape {shape}")
    return grad_out, shape


def resize_bilinear(x, size, dtype=None, name="resize"):
    """Keras' bilinear resize of NHWC `x` to `size` = (height, width): half-pixel centres,
    no antialiasing (Keras' default), edges clamped. Returns (N, height, width, C)."""
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    out_h, out_w = as_int_tuple(size, 2, "size", name)
    out = np.empty((x.shape[0], out_h, out_w, x.shape[3]), dtype=x.dtype)
    _resize.resize_bilinear_forward(x, out, *_bilinear_taps(x.shape[1], out_h, x.dtype),
                                    *_bilinear_taps(x.shape[2], out_w, x.dtype),
                                    _threads.threads_now())
    return out


def resize_bilinear_backward(grad_out, input_shape, name="resize"):
    """Gradient of resize_bilinear with respect to its input of `input_shape` (N, H, W, C)."""
    grad_out, (n, h, w, channels) = _resize_gradient_setup(grad_out, input_shape, name)
    rows = _bilinear_taps(h, grad_out.shape[1], grad_out.dtype)
    # The output rows reading input row ih form one run: row0 <= ih <= row1 (both sorted).
    first_row = np.searchsorted(rows[1], np.arange(h), side="left").astype(np.intp)
    end_row = np.searchsorted(rows[0], np.arange(h), side="right").astype(np.intp)
    grad_x = np.empty((n, h, w, channels), dtype=grad_out.dtype)
    _resize.resize_bilinear_backward(grad_out, grad_x, *rows, first_row, end_row,
                                     *_bilinear_taps(w, grad_out.shape[2], grad_out.dtype),
                                     _threads.threads_now())
    return grad_x


def _nearest_taps(in_size, out_size, dtype):
    """Keras' nearest sampling of `in_size` cells at `out_size` points, one axis:
    ``min(floor((dst + 0.5) * in_size / out_size), in_size - 1)``, in `dtype` as PyTorch's
    "nearest-exact" (which Keras' torch backend calls)."""
    dtype = np.dtype(dtype)
    scale = dtype.type(in_size) / dtype.type(out_size)
    source = np.floor((np.arange(out_size, dtype=dtype) + dtype.type(0.5)) * scale)
    return np.minimum(source.astype(np.intp), in_size - 1)


def resize_nearest(x, size, dtype=None, name="resize"):
    """Keras' nearest-neighbour resize of NHWC `x` to `size` = (height, width)."""
    x = as_batch(x, dtype, name)
    _check_spatial(x.shape, name)
    out_h, out_w = as_int_tuple(size, 2, "size", name)
    rows = _nearest_taps(x.shape[1], out_h, x.dtype)
    cols = _nearest_taps(x.shape[2], out_w, x.dtype)
    return np.take(np.take(x, rows, axis=1), cols, axis=2)


def _sum_runs(grad, taps, in_size, axis):
    """Adjoint of np.take(x, taps, axis) for sorted taps: each input cell gets the sum of
    the run of output cells that copied it, summed in order."""
    cells, starts = np.unique(taps, return_index=True)
    shape = list(grad.shape)
    shape[axis] = in_size
    out = np.zeros(shape, dtype=grad.dtype)
    index = [slice(None)] * grad.ndim
    index[axis] = cells
    out[tuple(index)] = np.add.reduceat(grad, starts, axis=axis)
    return out


def resize_nearest_backward(grad_out, input_shape, name="resize"):
    """Gradient of resize_nearest with respect to its input of `input_shape` (N, H, W, C)."""
    grad_out, (_, h, w, _) = _resize_gradient_setup(grad_out, input_shape, name)
    rows = _nearest_taps(h, grad_out.shape[1], grad_out.dtype)
    cols = _nearest_taps(w, grad_out.shape[2], grad_out.dtype)
    return _sum_runs(_sum_runs(grad_out, cols, w, 2), rows, h, 1)


# ----------------------------------------------------------------------------- layer normalization

def _layer_norm_weights(gamma, beta, width, dtype, name):
    """gamma and beta as (width,) arrays of `dtype`; ones and zeros where not given."""
    out = []
    for arg, value, default in (("gamma", gamma, 1), ("beta", beta, 0)):
        if value is None:
            out.append(np.full(width, default, dtype=dtype))
            continue
        value = _native(np.asarray(value))
        if value.shape != (width,) or value.dtype != dtype:
            raise ValueError(f"{name}: {arg} must have shape ({width},) and dtype {dtype}, got "
                             f"{value.shape} {value.dtype}")
        out.append(np.ascontiguousarray(value))
    return out


def layer_norm(x, gamma=None, beta=None, epsilon=1e-3, name="layer_normalization"):
    """Keras' layer normalization of each row of the 2-D `x` (rows, M):
    ``(x - mean) / sqrt(variance + epsilon) * gamma + beta``, gamma and beta (M,) or None.
    Returns (y, mean, inv): the per-row mean and 1 / sqrt(variance + epsilon) are what
    layer_norm_backward needs."""
    x = as_batch(x, None, name, ndim=2)
    if isinstance(epsilon, bool) or not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"{name}: epsilon must be a finite number >= 0, got {epsilon!r}")
    gamma, beta = _layer_norm_weights(gamma, beta, x.shape[1], x.dtype, name)
    if x.shape[1] == 0:
        raise ValueError(f"{name}: cannot normalize rows of 0 values (input shape {x.shape})")
    y = np.empty_like(x)
    mean = np.empty(x.shape[0], dtype=x.dtype)
    inv = np.empty(x.shape[0], dtype=x.dtype)
    _layer_norm.layer_norm_forward(x, gamma, beta, float(epsilon), y, mean, inv,
                                   _threads.threads_now())
    return y, mean, inv


def layer_norm_backward(x, grad_out, gamma, mean, inv, need_input_grad=True,
                        name="layer_normalization"):
    """Gradients of layer_norm: (grad_x or None, grad_gamma, grad_beta), from the forward
    pass's input, mean and inv. The weight gradients are partial sums over fixed blocks of
    rows, added in order, so they do not depend on the thread count."""
    x = as_batch(x, None, name, ndim=2)
    grad_out = as_batch(grad_out, x.dtype, name, arg="output gradient", ndim=2)
    rows, width = x.shape
    if grad_out.shape != x.shape:
        raise ValueError(f"{name}: output gradient of shape {grad_out.shape} does not match "
                         f"the input shape {x.shape}")
    gamma = _layer_norm_weights(gamma, None, width, x.dtype, name)[0]
    stats = []
    for arg, value in (("mean", mean), ("inv", inv)):
        value = _native(np.asarray(value))
        if value.shape != (rows,) or value.dtype != x.dtype:
            raise ValueError(f"{name}: {arg} must have shape ({rows},) and dtype {x.dtype}, got "
                             f"{value.shape} {value.dtype}")
        stats.append(np.ascontiguousarray(value))
    blocks = max(1, min(rows, MAX_GRADIENT_PARTIALS))
    block_rows = max(1, -(-rows // blocks))
    grad_gamma = np.empty((blocks, width), dtype=x.dtype)
    grad_beta = np.empty((blocks, width), dtype=x.dtype)
    grad_x = np.empty_like(x) if need_input_grad else None
    _layer_norm.layer_norm_backward(x, grad_out, gamma, *stats, grad_x, grad_gamma, grad_beta,
                                    block_rows, _threads.threads_now())
    return grad_x, _add_in_order(grad_gamma), _add_in_order(grad_beta)
