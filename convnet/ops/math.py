"""Keras' math ops (keras.ops.math): segment reductions, top_k, logsumexp, special functions,
and the Fourier transforms on (real, imaginary) pairs, with their gradients."""
import numpy as np

from .. import backend
from ..autodiff import value_of
from ._base import (apply, convert, dtype_key, expand_reduced, float_value, keras_op,
                    numpy_axis, promote)
from .numpy import multiply, pad, sqrt, square, subtract, sum, take_along_axis


# ----------------------------------------------------------------------------- segments

def _segments(data, segment_ids, num_segments, name):
    ids = convert(segment_ids).astype(np.int64)
    a = convert(data)
    if ids.ndim != 1 or ids.shape[0] != a.shape[0]:
        raise ValueError(f"{name}: segment_ids must be 1-D with one id per row of data, got "
                         f"shape {ids.shape} for data of shape {a.shape}")
    n = int(num_segments) if num_segments is not None else (int(ids.max()) + 1 if ids.size
                                                            else 0)
    return a, ids, n


def _segment_reduce(name, ufunc, initial, data, segment_ids, num_segments):
    a, ids, n = _segments(data, segment_ids, num_segments, name)
    valid = (ids >= 0) & (ids < n)  # id -1 (and ids past num_segments) are dropped

    def compute(v):
        out = np.full((n,) + v.shape[1:], initial, dtype=v.dtype)
        ufunc.at(out, ids[valid], v[valid])
        return out

    def vjp(g, values, out, needs):
        v = values[0]
        grad = np.zeros(v.shape, g.dtype)
        if ufunc is np.add:
            grad[valid] = g[ids[valid]]
        elif ufunc is np.multiply:
            grad[valid] = _segment_product_grad(v[valid], ids[valid], g, n)
        else:  # max / min: the winners of each segment share its gradient
            winners = np.zeros(v.shape, bool)
            winners[valid] = v[valid] == out[ids[valid]]
            counts = np.zeros(out.shape, g.dtype)
            np.add.at(counts, ids[valid], winners[valid].astype(g.dtype))
            grad[valid] = np.where(winners[valid], g[ids[valid]] / np.maximum(
                counts[ids[valid]], 1), 0)
        return (grad,)
    return apply(name, compute, vjp, data, values=(a,))


def _segment_product_grad(v, ids, g, n):
    """d prod(segment) / d v_i: the product of the others in its segment, exact with zeros."""
    zero = v == 0
    zeros = np.zeros((n,) + v.shape[1:], np.int64)
    np.add.at(zeros, ids, zero.astype(np.int64))
    nonzero_product = np.ones((n,) + v.shape[1:], v.dtype)
    np.multiply.at(nonzero_product, ids, np.where(zero, 1, v))
    z, p = zeros[ids], nonzero_product[ids]
    with np.errstate(divide="ignore", invalid="ignore"):
        others = np.where(zero, np.where(z == 1, p, 0), np.where(z == 0, p / np.where(zero, 1, v),
                                                                 0))
    return g[ids] * others


@keras_op
def segment_sum(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002
    """Sums of the rows of data with the same segment id (id -1 is dropped)."""
    return _segment_reduce("segment_sum", np.add, 0, data, segment_ids, num_segments)


@keras_op
def segment_max(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002
    """Maxima per segment (-inf for an empty one); tied rows share the gradient."""
    return _segment_reduce("segment_max", np.maximum, -np.inf, data, segment_ids, num_segments)


@keras_op
def segment_min(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002
    return _segment_reduce("segment_min", np.minimum, np.inf, data, segment_ids, num_segments)


@keras_op
def segment_prod(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002
    return _segment_reduce("segment_prod", np.multiply, 1, data, segment_ids, num_segments)


# ----------------------------------------------------------------------------- top k

@keras_op
def top_k(x, k, sorted=True):  # noqa: A002 - Keras' name
    """(values, indices) of the k largest entries along the last axis, largest first, ties
    in index order (Keras' stable order). The values are differentiable; the indices are
    int32 and not."""
    a = convert(x)
    n = a.shape[-1]
    reversed_order = np.argsort(np.flip(a, axis=-1), axis=-1, kind="stable")[..., ::-1]
    indices = (n - 1 - reversed_order)[..., :k].astype(np.int32)
    values = take_along_axis(x, indices, axis=-1)
    return values, apply("top_k", lambda v: indices, None, x, values=(a,))


@keras_op
def in_top_k(targets, predictions, k):
    """Whether each target's prediction is among the k largest (ties count as in)."""
    t = convert(targets).astype(np.int64)
    p = convert(predictions)

    def compute(t, p):
        kth = np.sort(p, axis=-1)[..., -k][..., None] if k > 0 else np.full(p.shape[:-1] + (1,),
                                                                             np.inf)
        return (np.take_along_axis(p, t[..., None], axis=-1) >= kth)[..., 0]
    return apply("in_top_k", compute, None, targets, predictions, values=(t, p))


# ----------------------------------------------------------------------------- special functions

@keras_op
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over `axis`, computed stably; its gradient is softmax(x)."""
    a = convert(x)
    dtype = np.dtype(backend.result_type(a.dtype, float))
    axis = numpy_axis(axis)

    def compute(v):
        from scipy import special
        return np.asarray(special.logsumexp(v, axis=axis, keepdims=keepdims)).astype(dtype)

    def vjp(g, values, out, needs):
        v = values[0]
        expanded = expand_reduced(out, v.shape, axis, keepdims)
        return ((expand_reduced(g, v.shape, axis, keepdims) * np.exp(v - expanded))
                .astype(g.dtype, copy=False),)
    return apply("logsumexp", compute, vjp, x, values=(a,))


def _special(name, fn, derivative, doc, keep_dtype=False):
    def op(x):
        a = convert(x) if keep_dtype else float_value(x)
        if keep_dtype and a.dtype.kind not in "f":
            a = a.astype(backend.floatx())
        return apply(name, lambda v: np.asarray(fn(v)).astype(v.dtype, copy=False),
                     lambda g, v, out, needs: ((g * derivative(v[0], out)).astype(g.dtype),),
                     x, values=(a,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return keras_op(op)


def _erf(v):
    from scipy import special
    return special.erf(v)


def _erfc(v):
    from scipy import special
    return special.erfc(v)


def _erfinv(v):
    from scipy import special
    return special.erfinv(v)


_TWO_OVER_SQRT_PI = 2 / np.sqrt(np.pi)
erf = _special("erf", _erf, lambda x, y: _TWO_OVER_SQRT_PI * np.exp(-x * x),
               "The error function (scipy.special.erf).")
erfc = _special("erfc", _erfc, lambda x, y: -_TWO_OVER_SQRT_PI * np.exp(-x * x),
                "1 - erf(x), accurate for large x.")
erfinv = _special("erfinv", _erfinv, lambda x, y: np.exp(y * y) / _TWO_OVER_SQRT_PI,
                  "The inverse error function.")


@keras_op
def rsqrt(x):
    """1 / sqrt(x)."""
    with np.errstate(divide="ignore"):
        return apply("rsqrt", lambda v: 1 / np.sqrt(v),
                     lambda g, v, out, needs: (-0.5 * g * out ** 3,), x,
                     values=(float_value(x),))


@keras_op
def logdet(x):
    """log(det(x)) of (positive definite) matrices, via slogdet; gradient inv(x)^T."""
    from .numpy import slogdet
    return slogdet(x)[1]


@keras_op
def gammainc(x1, x2):
    """The regularized lower incomplete gamma function P(a, x) (not differentiable here)."""
    from scipy import special
    a, b = promote(x1, x2, extra=(float,))
    return apply("gammainc", lambda u, v: special.gammainc(u, v).astype(u.dtype), None, x1, x2,
                 values=(a, b))


@keras_op
def cdist(x, y):
    """Euclidean distances between the rows of x and of y (rank >= 2, batched)."""
    sx, sy = np.shape(value_of(x)), np.shape(value_of(y))
    if len(sx) < 2 or len(sy) < 2:
        raise ValueError(f"cdist: the inputs must have rank >= 2, got shapes {sx} and {sy}")
    if sx[-1] != sy[-1]:
        raise ValueError(f"cdist: the last axes must match, got shapes {sx} and {sy}")
    from .core import cast
    from .numpy import expand_dims
    dtype = backend.result_type(dtype_key(x), dtype_key(y), float)
    diff = subtract(expand_dims(cast(x, dtype), -2), expand_dims(cast(y, dtype), -3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return sqrt(sum(square(diff), axis=-1))


@keras_op
def extract_sequences(x, sequence_length, sequence_stride):
    """Frames of `sequence_length` taken every `sequence_stride` along the last axis:
    (..., frames, sequence_length); differentiable (overlapping frames add up)."""
    from .numpy import _rearranging
    n = np.shape(value_of(x))[-1]
    frames = (n - (sequence_length - sequence_stride)) // sequence_stride
    index = np.arange(frames)[:, None] * sequence_stride + np.arange(sequence_length)[None]
    return _rearranging("extract_sequences", x, lambda a: a[..., index])


# ----------------------------------------------------------------------------- Fourier transforms

def _complex_pair(x, name):
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(f"{name}: x must be a pair (real, imaginary) of float tensors, got "
                         f"{type(x).__name__}")
    real, imag = convert(x[0]), convert(x[1])
    if real.shape != imag.shape:
        raise ValueError(f"{name}: the real and imaginary parts must have the same shape, got "
                         f"{real.shape} and {imag.shape}")
    if real.dtype.kind != "f" or imag.dtype.kind != "f":
        raise ValueError(f"{name}: the real and imaginary parts must be floats, got "
                         f"{real.dtype} and {imag.dtype}")
    return real, imag


def _linear_complex(name, x, forward, adjoint):
    """A linear map of complex tensors given as (real, imag) pairs. The gradient of a real
    loss is the adjoint map applied to (g_real + i g_imag)."""
    real, imag = _complex_pair(x, name)
    dtype = np.result_type(real.dtype, imag.dtype)

    def compute(r, i):
        out = forward(r + 1j * i)
        return out.real.astype(dtype), out.imag.astype(dtype)

    def vjp(g, values, out, needs):
        gr = np.zeros(out[0].shape, dtype) if g[0] is None else g[0]
        gi = np.zeros(out[1].shape, dtype) if g[1] is None else g[1]
        back = adjoint(gr + 1j * gi)
        return back.real.astype(dtype), back.imag.astype(dtype)
    return apply(name, compute, vjp, x[0], x[1], values=(real, imag))


@keras_op
def fft(x):
    """The FFT along the last axis of a complex tensor given as (real, imag)."""
    return _linear_complex("fft", x, lambda z: np.fft.fft(z, axis=-1),
                           lambda g: np.fft.ifft(g, axis=-1) * g.shape[-1])


@keras_op
def fft2(x):
    """The 2-D FFT over the last two axes of (real, imag)."""
    return _linear_complex("fft2", x, lambda z: np.fft.fft2(z, axes=(-2, -1)),
                           lambda g: np.fft.ifft2(g, axes=(-2, -1)) * g.shape[-1] * g.shape[-2])


@keras_op
def ifft2(x):
    """The inverse 2-D FFT over the last two axes of (real, imag)."""
    return _linear_complex("ifft2", x, lambda z: np.fft.ifft2(z, axes=(-2, -1)),
                           lambda g: np.fft.fft2(g, axes=(-2, -1)) / (g.shape[-1] * g.shape[-2]))


@keras_op
def rfft(x, fft_length=None):
    """The FFT of a real signal along its last axis: (real, imag) of fft_length // 2 + 1
    bins (the signal cut or zero-padded to fft_length)."""
    a = float_value(x)
    n = a.shape[-1] if fft_length is None else int(fft_length)

    def compute(v):
        out = np.fft.rfft(v, n=n, axis=-1)
        return out.real.astype(v.dtype), out.imag.astype(v.dtype)

    def vjp(g, values, out, needs):
        v = values[0]
        gr = np.zeros(out[0].shape, v.dtype) if g[0] is None else g[0]
        gi = np.zeros(out[1].shape, v.dtype) if g[1] is None else g[1]
        spectrum = np.zeros(v.shape[:-1] + (n,), complex)
        spectrum[..., :gr.shape[-1]] = gr + 1j * gi
        grad = (np.fft.ifft(spectrum, axis=-1) * n).real
        if v.shape[-1] <= n:
            grad = grad[..., :v.shape[-1]]
        else:
            grad = np.concatenate([grad, np.zeros(v.shape[:-1] + (v.shape[-1] - n,))], axis=-1)
        return (grad.astype(v.dtype),)
    return apply("rfft", compute, vjp, x, values=(a,))


@keras_op
def irfft(x, fft_length=None):
    """The real signal whose rfft is (real, imag), of fft_length (default 2 (bins - 1))."""
    real, imag = _complex_pair(x, "irfft")
    bins = real.shape[-1]
    n = 2 * (bins - 1) if fft_length is None else int(fft_length)

    def compute(r, i):
        return np.fft.irfft(r + 1j * i, n=n, axis=-1).astype(r.dtype)

    def vjp(g, values, out, needs):
        spectrum = np.fft.rfft(g, axis=-1) / n
        used = n // 2 + 1
        weights = np.full(used, 2.0)
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0
        spectrum = spectrum * weights
        grad = np.zeros(real.shape[:-1] + (bins,), complex)
        count = min(bins, used)
        grad[..., :count] = spectrum[..., :count]
        grad_imag = grad.imag.copy()
        grad_imag[..., 0] = 0
        if n % 2 == 0 and n // 2 < bins:
            grad_imag[..., n // 2] = 0
        return grad.real.astype(real.dtype), grad_imag.astype(real.dtype)
    return apply("irfft", compute, vjp, x[0], x[1], values=(real, imag))


def _window(window, sequence_length, fft_length, dtype, name):
    left = (fft_length - sequence_length) // 2
    right = fft_length - sequence_length - left
    if window is None:
        return np.ones(fft_length, dtype)
    if isinstance(window, str):
        if window not in ("hann", "hamming"):
            raise ValueError(f"{name}: window must be 'hann', 'hamming', a tensor or None, got "
                             f"{window!r}")
        from scipy import signal
        win = signal.get_window(window, sequence_length).astype(dtype)
    else:
        win = convert(window).astype(dtype)
    if win.shape != (sequence_length,):
        raise ValueError(f"{name}: the window must have shape ({sequence_length},), got "
                         f"{win.shape}")
    return np.pad(win, (left, right))


@keras_op
def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """The short-time Fourier transform along the last axis: (real, imag) of shape
    (..., frames, fft_length // 2 + 1), unscaled windowed FFTs of the frames (Keras' rule);
    differentiable."""
    a = convert(x)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"stft: the input must be float32 or float64, got {a.dtype}")
    if fft_length < sequence_length:
        raise ValueError(f"stft: fft_length ({fft_length}) must be at least sequence_length "
                         f"({sequence_length})")
    win = _window(window, sequence_length, fft_length, a.dtype, "stft")
    if center:
        widths = [(0, 0)] * (a.ndim - 1) + [(fft_length // 2, fft_length // 2)]
        x = pad(x, widths, mode="reflect")
    frames = extract_sequences(x, fft_length, sequence_stride)
    return rfft(multiply(frames, win), fft_length=fft_length)


@keras_op
def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann",
          center=True):
    """The inverse of stft by windowed overlap-add (scipy.signal.istft with Keras' scaling).
    Not differentiable here."""
    real, imag = _complex_pair(x, "istft")
    win = _window(window, sequence_length, fft_length, real.dtype, "istft")
    frames = real.shape[-2]
    expected = fft_length + sequence_stride * (frames - 1)

    def compute(r, i):
        from scipy import signal
        out = signal.istft(r + 1j * i, fs=1.0, window=win, nperseg=fft_length,
                           noverlap=fft_length - sequence_stride, nfft=fft_length,
                           boundary=False, time_axis=-2, freq_axis=-1)[-1]
        out = out / win.sum() if window is not None else out / sequence_stride
        start = fft_length // 2 if center else 0
        end = start + length if length is not None else \
            expected - fft_length // 2 if center else expected
        return out[..., start:end].astype(r.dtype)
    return apply("istft", compute, None, x[0], x[1], values=(real, imag))


@keras_op
def view_as_complex(x):
    """A complex tensor from a real one whose last axis holds (real, imag)."""
    a = convert(x)
    if a.shape[-1:] != (2,):
        raise ValueError(f"view_as_complex: the last axis must have size 2, got shape {a.shape}")
    return apply("view_as_complex", lambda v: v[..., 0] + 1j * v[..., 1], None, x, values=(a,))


@keras_op
def view_as_real(x):
    """A real tensor whose last axis holds (real, imag) of complex x."""
    a = convert(x)
    return apply("view_as_real", lambda v: np.stack([v.real, v.imag], axis=-1), None, x,
                 values=(a,))

