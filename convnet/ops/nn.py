"""Keras' neural-network ops (keras.ops.nn): activations, softmax, one-hot encodings, losses,
normalizations, attention, and convolution and pooling on convnet's compiled kernels, each
with its gradient.

Convolutions and pooling are 2-D (the kernels' NHWC layout) and 1-D (run as 2-D over a
height of 1); 3-D ones are refused with an error naming the op. Integer inputs of the
activations compute in floatx().
"""
import math as _math

import numpy as np

from .. import backend, kernels
from ..autodiff import value_of
from ._base import apply, convert, float_value, keras_op, numpy_dtype
from .numpy import (absolute, add, clip, concatenate, divide, einsum, exp, expand_dims,
                    get_item, log, log1p, maximum, mean, multiply, negative, reshape, sqrt,
                    square, squeeze, stack, subtract, sum, transpose, where)
from .numpy import max as reduce_max

_SQRT_2_OVER_PI = np.sqrt(2 / np.pi)


def _activation(name, forward, derivative, doc):
    """An elementwise activation: ``forward(x)``, ``derivative(x, y)`` = dy/dx."""
    def op(x):
        return apply(name, forward, lambda g, v, out, needs: (g * derivative(v[0], out),), x,
                     values=(float_value(x),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return keras_op(op)


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _cast_like(value, x):
    return np.asarray(value, dtype=x.dtype)


relu = _activation("relu", lambda x: np.maximum(x, _cast_like(0, x)),
                   lambda x, y: (x > 0).astype(x.dtype), "max(x, 0); the gradient at 0 is 0.")
relu6 = _activation("relu6", lambda x: np.minimum(np.maximum(x, _cast_like(0, x)),
                                                  _cast_like(6, x)),
                    lambda x, y: ((x > 0) & (x < 6)).astype(x.dtype), "min(max(x, 0), 6).")
sigmoid = _activation("sigmoid", _sigmoid, lambda x, y: y * (1 - y), "1 / (1 + exp(-x)).")
sparse_sigmoid = _activation(
    "sparse_sigmoid", lambda x: np.clip(0.5 * (x + 1), 0, 1).astype(x.dtype, copy=False),
    lambda x, y: np.where((x > -1) & (x < 1), 0.5, 0).astype(x.dtype),
    "0 below -1, 1 above 1, (x + 1) / 2 between.")
softplus = _activation("softplus", lambda x: np.logaddexp(x, _cast_like(0, x)),
                       lambda x, y: _sigmoid(x), "log(1 + exp(x)), computed stably.")
softsign = _activation("softsign", lambda x: x / (1 + np.abs(x)),
                       lambda x, y: 1 / np.square(1 + np.abs(x)), "x / (1 + |x|).")
silu = _activation("silu", lambda x: x * _sigmoid(x),
                   lambda x, y: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))),
                   "x * sigmoid(x) (Swish).")
swish = silu
log_sigmoid = _activation("log_sigmoid", lambda x: -np.logaddexp(-x, _cast_like(0, x)),
                          lambda x, y: _sigmoid(-x), "log(sigmoid(x)), computed stably.")
hard_sigmoid = _activation(
    "hard_sigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False),
    lambda x, y: np.where((x > -3) & (x < 3), 1 / 6, 0).astype(x.dtype),
    "relu6(x + 3) / 6, as Keras 3 defines it.")
hard_silu = _activation(
    "hard_silu", lambda x: x * np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False),
    lambda x, y: np.where(x < -3, 0, np.where(x > 3, 1, x / 3 + 0.5)).astype(x.dtype),
    "x * hard_sigmoid(x) (hard swish).")
hard_swish = hard_silu
tanh_shrink = _activation("tanh_shrink", lambda x: x - np.tanh(x),
                          lambda x, y: np.square(np.tanh(x)), "x - tanh(x).")
hard_tanh = _activation("hard_tanh", lambda x: np.clip(x, -1, 1).astype(x.dtype, copy=False),
                        lambda x, y: ((x >= -1) & (x <= 1)).astype(x.dtype),
                        "x clipped to [-1, 1].")
sparse_plus = _activation(
    "sparse_plus", lambda x: np.where(x <= -1, 0, np.where(x < 1, 0.25 * np.square(x + 1), x))
    .astype(x.dtype, copy=False),
    lambda x, y: np.where(x <= -1, 0, np.where(x < 1, 0.5 * (x + 1), 1)).astype(x.dtype),
    "0 below -1, x above 1, (x + 1)**2 / 4 between.")


@keras_op
def leaky_relu(x, negative_slope=0.2):
    """x above 0, negative_slope * x below; the gradient at 0 is negative_slope."""
    return apply("leaky_relu", lambda a: np.where(a > 0, a, a * negative_slope).astype(a.dtype),
                 lambda g, v, out, needs: (g * np.where(v[0] > 0, 1, negative_slope)
                                           .astype(g.dtype),), x, values=(float_value(x),))


@keras_op
def elu(x, alpha=1.0):
    """x for x >= 0, alpha * (exp(x) - 1) below."""
    def forward(a):
        return np.where(a >= 0, a, alpha * np.expm1(np.minimum(a, 0))).astype(a.dtype)
    return apply("elu", forward, lambda g, v, out, needs: (
        g * np.where(v[0] > 0, 1, alpha * np.exp(np.minimum(v[0], 0))).astype(g.dtype),),
        x, values=(float_value(x),))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@keras_op
def selu(x):
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return multiply(_SELU_SCALE, elu(x, _SELU_ALPHA))


@keras_op
def celu(x, alpha=1.0):
    """max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)."""
    def forward(a):
        return (np.maximum(a, 0) + alpha * np.expm1(np.minimum(a, 0) / alpha)).astype(a.dtype)
    return apply("celu", forward, lambda g, v, out, needs: (
        g * np.where(v[0] > 0, 1, np.exp(np.minimum(v[0], 0) / alpha)).astype(g.dtype),),
        x, values=(float_value(x),))


@keras_op
def gelu(x, approximate=True):
    """x * Phi(x); with ``approximate=True`` (Keras' default for ops.gelu) the tanh form
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))."""
    if approximate:
        def forward(a):
            t = np.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a ** 3))
            return (0.5 * a * (1 + t)).astype(a.dtype, copy=False)

        def derivative(a):
            t = np.tanh(_SQRT_2_OVER_PI * (a + 0.044715 * a ** 3))
            return 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * _SQRT_2_OVER_PI * (
                1 + 3 * 0.044715 * a * a)
    else:
        from scipy import special

        def forward(a):
            return (a * (special.erf(a / np.sqrt(2)) + 1) / 2).astype(a.dtype, copy=False)

        def derivative(a):
            return (special.erf(a / np.sqrt(2)) + 1) / 2 + a * np.exp(-a * a / 2) / np.sqrt(
                2 * np.pi)
    return apply("gelu", forward, lambda g, v, out, needs: (
        (g * derivative(v[0])).astype(g.dtype, copy=False),), x, values=(float_value(x),))


@keras_op
def squareplus(x, b=4):
    """(x + sqrt(x**2 + b)) / 2."""
    return apply("squareplus", lambda a: ((a + np.sqrt(a * a + b)) / 2).astype(a.dtype),
                 lambda g, v, out, needs: ((g * (1 + v[0] / np.sqrt(v[0] * v[0] + b)) / 2)
                                           .astype(g.dtype),), x, values=(float_value(x),))


@keras_op
def soft_shrink(x, threshold=0.5):
    """x - threshold above it, x + threshold below -threshold, 0 between."""
    def forward(a):
        return np.where(a > threshold, a - threshold,
                        np.where(a < -threshold, a + threshold, 0)).astype(a.dtype)
    return apply("soft_shrink", forward, lambda g, v, out, needs: (
        np.where(np.abs(v[0]) > threshold, g, 0),), x, values=(float_value(x),))


@keras_op
def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, else 0."""
    return apply("hard_shrink", lambda a: np.where(np.abs(a) > threshold, a, 0).astype(a.dtype),
                 lambda g, v, out, needs: (np.where(np.abs(v[0]) > threshold, g, 0),), x,
                 values=(float_value(x),))


@keras_op
def threshold(x, threshold, default_value):
    """x where x > threshold, else default_value."""
    return apply("threshold", lambda a: np.where(a > threshold, a, default_value).astype(a.dtype),
                 lambda g, v, out, needs: (np.where(v[0] > threshold, g, 0),), x,
                 values=(float_value(x),))


@keras_op
def glu(x, axis=-1):
    """a * sigmoid(b) for the two halves a, b of x along `axis`."""
    size = np.shape(value_of(x))[axis]
    if size % 2:
        raise ValueError(f"glu: the size of axis {axis} must be even, got shape "
                         f"{np.shape(value_of(x))}")
    from .numpy import split
    a, b = split(x, 2, axis=axis)
    return multiply(a, sigmoid(b))


def _softmax_axis(axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


@keras_op
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over `axis` (an int or a tuple of axes), computed stably; its
    gradient is the softmax Jacobian-vector product."""
    axis = _softmax_axis(axis)

    def forward(a):
        e = np.exp(a - np.max(a, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    def vjp(g, values, out, needs):
        return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)
    return apply("softmax", forward, vjp, x, values=(float_value(x),))


@keras_op
def log_softmax(x, axis=-1):
    """x - logsumexp(x) over `axis`, computed stably."""
    axis = _softmax_axis(axis)

    def forward(a):
        shifted = a - np.max(a, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    def vjp(g, values, out, needs):
        return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)
    return apply("log_softmax", forward, vjp, x, values=(float_value(x),))


@keras_op
def sparsemax(x, axis=-1):
    """The Euclidean projection of x onto the simplex along `axis` (Martins & Astudillo):
    the threshold is (sum of the k largest - 1) / k over the support. Keras 3.15 sums the
    support's partial sums instead, which sums to 1 only when the support is one element;
    convnet follows the paper (and Keras' docstring). The gradient is g minus its mean over
    the support, on the support."""
    def forward(a):
        ordered = -np.sort(-a, axis=axis)
        cumulative = np.cumsum(ordered, axis=axis)
        r = np.arange(1, a.shape[axis] + 1, dtype=a.dtype)
        shape = [1] * a.ndim
        shape[axis] = -1
        r = r.reshape(shape)
        support = ordered - (cumulative - 1) / r > 0
        k = np.sum(support, axis=axis, keepdims=True)
        tau = (np.sum(np.where(support, cumulative, 0) * (r == k), axis=axis,
                      keepdims=True) - 1) / k
        return np.maximum(a - tau, 0).astype(a.dtype, copy=False)

    def vjp(g, values, out, needs):
        support = out > 0
        count = np.maximum(np.sum(support, axis=axis, keepdims=True), 1)
        centre = np.sum(np.where(support, g, 0), axis=axis, keepdims=True) / count
        return (np.where(support, g - centre, 0).astype(g.dtype, copy=False),)
    return apply("sparsemax", forward, vjp, x, values=(float_value(x),))


# ----------------------------------------------------------------------------- encodings

@keras_op
def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Integer labels as one-hot vectors along `axis` (float32 unless `dtype`); negative or
    out-of-range labels give all zeros. Not differentiable."""
    if sparse:
        raise ValueError("one_hot: sparse=True is not supported (convnet has no sparse "
                         "tensors)")
    out_dtype = numpy_dtype(dtype or "float32")

    def compute(labels):
        labels = labels.astype(np.int64)
        n = int(num_classes) if num_classes else int(labels.max()) + 1
        out = (labels[..., None] == np.arange(n)).astype(out_dtype)
        return np.moveaxis(out, -1, axis) if axis != -1 else out
    return apply("one_hot", compute, None, x, values=(convert(x),))


@keras_op
def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    """Multi-hot vectors: 1 for every label present in a row (the last axis of 2-D inputs,
    or the whole of 1-D inputs)."""
    if num_classes is None and "num_tokens" in kwargs:
        num_classes = kwargs.pop("num_tokens")
    if kwargs:
        raise TypeError(f"multi_hot: unexpected keyword arguments {sorted(kwargs)}")
    if num_classes is None:
        raise ValueError("multi_hot: num_classes is required")
    labels = convert(inputs).astype(np.int32)
    reduction = 1 if labels.ndim > 1 else 0
    return reduce_max(one_hot(labels, num_classes, axis=axis, dtype=dtype, sparse=sparse),
                      axis=reduction)


# ----------------------------------------------------------------------------- losses

def _same_shapes(op, target, output):
    ts, os_ = np.shape(value_of(target)), np.shape(value_of(output))
    if ts != os_:
        raise ValueError(f"{op}: target and output must have the same shape, got "
                         f"target.shape={ts} and output.shape={os_}")
    if len(ts) < 1:
        raise ValueError(f"{op}: target and output must be at least rank 1, got shape {ts}")


def _log_probabilities(output, from_logits, axis):
    if from_logits:
        return log_softmax(output, axis=axis)
    eps = backend.epsilon()
    probs = divide(output, sum(output, axis=axis, keepdims=True))
    return log(clip(probs, eps, 1 - eps))


@keras_op
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum(target * log(p)) over `axis`: p = softmax(output) with from_logits, else output
    renormalised to sum to 1 and clipped to [epsilon, 1 - epsilon], as Keras."""
    _same_shapes("categorical_crossentropy", target, output)
    return negative(sum(multiply(target, _log_probabilities(output, from_logits, axis)),
                        axis=axis))


@keras_op
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """categorical_crossentropy with integer labels (a trailing axis of 1 is dropped)."""
    labels = convert(target).astype(np.int32)
    out_shape = np.shape(value_of(output))
    if labels.ndim == len(out_shape) and labels.shape[-1] == 1:
        labels = np.squeeze(labels, axis=-1)
    if len(out_shape) < 1:
        raise ValueError(f"sparse_categorical_crossentropy: output must be at least rank 1, "
                         f"got shape {out_shape}")
    if labels.shape != out_shape[:-1]:
        raise ValueError(f"sparse_categorical_crossentropy: target must have the output's shape "
                         f"without its last axis, got target.shape={labels.shape} and "
                         f"output.shape={out_shape}")
    log_probs = _log_probabilities(output, from_logits, axis)
    encoded = one_hot(labels, out_shape[axis], axis=axis, dtype=convert(log_probs).dtype)
    return negative(sum(multiply(encoded, log_probs), axis=axis))


@keras_op
def binary_crossentropy(target, output, from_logits=False):
    """Elementwise -(t log p + (1 - t) log(1 - p)), p clipped to [epsilon, 1 - epsilon].
    From logits it is max(x, 0) - x t + log(1 + exp(-|x|)), exact for any logit (Keras'
    TensorFlow form; its NumPy backend clips sigmoid(x) instead)."""
    _same_shapes("binary_crossentropy", target, output)
    if from_logits:
        return add(subtract(relu(output), multiply(output, target)),
                   log1p(exp(negative(absolute(output)))))
    eps = backend.epsilon()
    p = clip(output, eps, 1 - eps)
    return negative(add(multiply(target, log(p)),
                        multiply(subtract(1.0, target), log(subtract(1.0, p)))))


# ----------------------------------------------------------------------------- normalization

def _keras_axes(axes):
    return tuple(axes) if isinstance(axes, (list, tuple)) else axes


@keras_op
def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) over `axes`, the variance as mean(x**2) - mean(x)**2 (Keras' formula);
    float16 computes in float32. ``synchronized`` is accepted: convnet runs on one device,
    where it changes nothing."""
    from .core import cast
    axes = _keras_axes(axes)
    ori = convert(x).dtype
    if ori == np.float16:
        x = cast(x, "float32")
    m = mean(x, axis=axes, keepdims=True)
    v = subtract(mean(square(x), axis=axes, keepdims=True), square(m))
    if not keepdims:
        m, v = squeeze(m, axis=axes), squeeze(v, axis=axes)
    if ori == np.float16:
        limit = float(np.finfo(np.float16).max)
        m, v = (cast(clip(t, -limit, limit), "float16") for t in (m, v))
    return m, v


@keras_op
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, the statistics laid along
    `axis` (Keras' formula); differentiable in every argument."""
    ndim = len(np.shape(value_of(x)))
    shape = [1] * ndim
    shape[axis] = np.shape(value_of(mean))[0]
    inv = divide(1.0, sqrt(add(reshape(variance, shape), epsilon)))
    if scale is not None:
        inv = multiply(inv, reshape(scale, shape))
    res = multiply(negative(reshape(mean, shape)), inv)
    if offset is not None:
        res = add(res, reshape(offset, shape))
    return add(multiply(x, inv), res)


@keras_op
def normalize(x, axis=-1, order=2, epsilon=None):
    """x divided by its `order`-norm along `axis` (at least epsilon)."""
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"normalize: order must be an int >= 1, got {order!r}")
    eps = backend.epsilon() if epsilon is None else epsilon
    if not np.shape(value_of(x)):
        x = expand_dims(x, 0)
    if order == 2:
        squares = sum(square(x), axis=axis, keepdims=True)
        from .math import rsqrt
        return multiply(x, rsqrt(maximum(squares, eps * eps)))
    from .linalg import norm
    return divide(x, maximum(norm(x, ord=order, axis=axis, keepdims=True), eps))


@keras_op
def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over `axis`, computed in at least
    float32 and returned in x's dtype."""
    from .core import cast
    from .math import rsqrt
    rms_scaling = kwargs.pop("rms_scaling", False)
    if kwargs:
        raise TypeError(f"layer_normalization: unexpected keyword arguments {sorted(kwargs)}")
    eps = backend.epsilon() if epsilon is None else epsilon
    original = convert(x).dtype
    compute = backend.result_type(original, "float32")
    x = cast(x, compute)
    ndim = len(np.shape(value_of(x)))
    axes = sorted(a % ndim for a in ([axis] if isinstance(axis, int) else axis))
    shape = [1] * ndim
    for a in axes:
        shape[a] = np.shape(value_of(x))[a]

    def broadcast(v):
        if v is None:
            return None
        v = cast(v, compute)
        return reshape(v, shape) if len(np.shape(value_of(v))) != ndim and \
            axes != [ndim - 1] else v
    if rms_scaling:
        from .numpy import var
        out = multiply(x, rsqrt(add(var(x, axis=axes, keepdims=True), eps)))
        if gamma is not None:
            out = multiply(out, broadcast(gamma))
        return cast(out, original)
    m, v = moments(x, axes=axes, keepdims=True)
    inv = rsqrt(add(v, eps))
    if gamma is not None:
        inv = multiply(inv, broadcast(gamma))
    res = multiply(negative(m), inv)
    if beta is not None:
        res = add(res, broadcast(beta))
    return cast(add(multiply(x, inv), res), original)


@keras_op
def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """x / sqrt(mean(x**2) + epsilon) * scale over `axis`, in at least float32."""
    from .core import cast
    from .math import rsqrt
    eps = backend.epsilon() if epsilon is None else epsilon
    original = convert(x).dtype
    x = cast(x, backend.result_type(original, "float32"))
    if not np.shape(value_of(x)):
        x = expand_dims(x, 0)
    axis = tuple(sorted(axis)) if isinstance(axis, (list, tuple)) else axis
    out = multiply(x, rsqrt(add(mean(square(x), axis=axis, keepdims=True), eps)))
    if scale is not None:
        out = multiply(out, cast(scale, convert(out).dtype))
    return cast(out, original)


@keras_op
def psnr(x1, x2, max_val):
    """Peak signal-to-noise ratio: 20 log10(max_val) - 10 log10(mean((x1 - x2)**2))."""
    s1, s2 = np.shape(value_of(x1)), np.shape(value_of(x2))
    if s1 != s2:
        raise ValueError(f"psnr: the inputs must have the same shape, got {s1} and {s2}")
    from .numpy import log10
    mse = mean(square(subtract(x1, x2)))
    peak = np.asarray(value_of(max_val), dtype=convert(x2).dtype)
    return subtract(20 * np.log10(peak), multiply(10.0, log10(mse)))


@keras_op
def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """softmax(q k^T * scale + bias, masked) v for (batch, length, heads, head_dim) inputs;
    keys and values with fewer heads are shared by groups of query heads (grouped-query
    attention). Masked logits get a large negative number, as Keras."""
    if flash_attention:
        raise ValueError("dot_product_attention: flash attention is not supported on the CPU")
    shapes = [np.shape(value_of(t)) for t in (query, key, value)]
    if any(len(s) != 4 for s in shapes):
        raise ValueError(f"dot_product_attention: query, key and value must be 4-D (batch, "
                         f"length, heads, head_dim), got {shapes}")
    from .core import cast
    dtype = backend.result_type(*(convert(t).dtype for t in (query, key, value)))
    query, key, value = (cast(t, dtype) for t in (query, key, value))
    heads, kv_heads = shapes[0][2], shapes[1][2]
    if heads % kv_heads:
        raise ValueError(f"dot_product_attention: {heads} query heads cannot share {kv_heads} "
                         f"key/value heads")
    if kv_heads != heads:
        from .numpy import repeat
        key = repeat(key, heads // kv_heads, axis=2)
        value = repeat(value, heads // kv_heads, axis=2)
    scale = 1.0 / _math.sqrt(shapes[1][-1]) if scale is None else scale
    logits = multiply(einsum("BTNH,BSNH->BNTS", query, key), scale)
    if attn_logits_soft_cap is not None:
        from .numpy import tanh
        logits = multiply(tanh(divide(logits, attn_logits_soft_cap)), attn_logits_soft_cap)
    if bias is not None:
        logits = add(logits, cast(bias, dtype))
    keep = None
    if mask is not None:
        keep = convert(mask).astype(bool)
    if is_causal:
        t, s = np.shape(value_of(logits))[2:]
        causal = np.tril(np.ones((t, s), dtype=bool))[None, None]
        keep = causal if keep is None else keep & causal
    if keep is not None:
        large = 65500.0 if np.dtype(dtype) == np.float16 else 3.38953e38
        logits = where(keep, logits, np.asarray(-0.7 * large, dtype=dtype))
    probs = softmax(logits, axis=-1)
    return einsum("BNTS,BSNH->BTNH", probs, value)


# ----------------------------------------------------------------------------- conv and pool

def _spatial(op, inputs, data_format):
    """(NHWC tensor, data_format, rank) for a 1-D or 2-D op: channels_first is transposed
    in, and a 1-D input becomes an image of height 1."""
    fmt = backend.standardize_data_format(data_format)
    rank = len(np.shape(value_of(inputs))) - 2
    if rank not in (1, 2):
        raise ValueError(f"ops.{op}: convnet runs 1-D and 2-D {op.split('_')[0]}s; inputs of "
                         f"shape {np.shape(value_of(inputs))} ({rank}-D) are not supported")
    x = inputs
    if fmt == "channels_first":
        x = transpose(x, (0,) + tuple(range(2, rank + 2)) + (1,))
    if rank == 1:
        x = expand_dims(x, 1)
    return x, fmt, rank


def _back(y, fmt, rank):
    if rank == 1:
        y = squeeze(y, axis=1)
    if fmt == "channels_first":
        y = transpose(y, (0, rank + 1) + tuple(range(1, rank + 1)))
    return y


def _pair(value, rank, arg, op):
    if rank == 1:
        items = value if isinstance(value, (list, tuple)) else (value,)
        return (1,) + tuple(kernels.as_int_tuple(tuple(items), 1, arg, f"ops.{op}"))
    return kernels.as_int_tuple(value, 2, arg, f"ops.{op}")


def _kernel_2d(kernel, rank):
    return expand_dims(kernel, 0) if rank == 1 else kernel


def _conv2d(x, kernel, strides, padding, dilation, op):
    """One 2-D convolution on the tape: NHWC x, HWIO kernel."""
    def compute(a, w):
        return kernels.conv2d(a.astype(w.dtype, copy=False), w, None, strides, padding,
                              dilation, name=f"ops.{op}")

    def vjp(g, values, out, needs):
        a, w = values
        gx, gw, _ = kernels.conv2d_backward(a.astype(w.dtype, copy=False), w, g, strides,
                                            padding, dilation, need_input_grad=needs[0],
                                            name=f"ops.{op}")
        return gx, gw if needs[1] else None
    return apply(op, compute, vjp, x, kernel, values=(convert(x), float_value(kernel)))


@keras_op
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution (cross-correlation) with a (*window, in_channels, filters) kernel, on
    the compiled im2col + BLAS kernels, for 1-D and 2-D inputs. When the input has more
    channels than the kernel's in_channels it is a grouped convolution (channels /
    in_channels groups), as Keras. Differentiable in the inputs and the kernel."""
    x, fmt, rank = _spatial("conv", inputs, data_format)
    w = _kernel_2d(kernel, rank)
    strides, dilation = _pair(strides, rank, "strides", "conv"), \
        _pair(dilation_rate, rank, "dilation_rate", "conv")
    padding = _padding(padding, "conv")
    channels = np.shape(value_of(x))[-1]
    in_channels, filters = np.shape(value_of(w))[-2:]
    if channels % in_channels:
        raise ValueError(f"ops.conv: the input's {channels} channels are not a multiple of the "
                         f"kernel's in_channels {in_channels} (kernel shape "
                         f"{np.shape(value_of(kernel))})")
    groups = channels // in_channels
    if groups == 1:
        y = _conv2d(x, w, strides, padding, dilation, "conv")
    else:
        if filters % groups:
            raise ValueError(f"ops.conv: {filters} filters cannot be split into {groups} "
                             f"groups of the input's {channels} channels")
        per = filters // groups
        y = concatenate([_conv2d(get_item(x, (Ellipsis, slice(i * in_channels,
                                                                (i + 1) * in_channels))),
                                 get_item(w, (Ellipsis, slice(i * per, (i + 1) * per))),
                                 strides, padding, dilation, "conv")
                         for i in range(groups)], axis=-1)
    return _back(y, fmt, rank)


def _padding(padding, op):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"ops.{op}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def _windows(a, kernel_hw, strides, dilation, padding):
    """Every (kh, kw) window of NHWC `a` as a strided view (N, Ho, Wo, kh, kw, C), over the
    padded input, and the padding used."""
    pads = kernels.window_geometry(a.shape[1:3], kernel_hw, strides, padding, dilation, False,
                                   "ops.depthwise_conv").padding
    padded = np.pad(a, ((0, 0), pads[0], pads[1], (0, 0)))
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, strides, dilation
    n, h, w, c = padded.shape
    out_h = (h - (kh - 1) * dh - 1) // sh + 1
    out_w = (w - (kw - 1) * dw - 1) // sw + 1
    s = padded.strides
    view = np.lib.stride_tricks.as_strided(
        padded, (n, out_h, out_w, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1] * dh,
                                               s[2] * dw, s[3]), writeable=False)
    return view, pads, padded.shape


@keras_op
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """Each input channel convolved with its own (*window, 1, multiplier) filters: a kernel
    of shape (*window, in_channels, multiplier) gives in_channels * multiplier outputs,
    channel c's filters first. 1-D and 2-D; differentiable in the inputs and the kernel."""
    x, fmt, rank = _spatial("depthwise_conv", inputs, data_format)
    w = _kernel_2d(kernel, rank)
    strides = _pair(strides, rank, "strides", "depthwise_conv")
    dilation = _pair(dilation_rate, rank, "dilation_rate", "depthwise_conv")
    padding = _padding(padding, "depthwise_conv")
    kshape = np.shape(value_of(w))
    channels = np.shape(value_of(x))[-1]
    if kshape[2] != channels:
        raise ValueError(f"ops.depthwise_conv: the kernel's in_channels {kshape[2]} must equal "
                         f"the input's channels {channels} (kernel shape {kshape})")

    def compute(a, k):
        view, _, _ = _windows(a.astype(k.dtype, copy=False), kshape[:2], strides, dilation,
                              padding)
        out = np.einsum("nhwijc,ijcm->nhwcm", view, k)
        return out.reshape(out.shape[:3] + (-1,))

    def vjp(g, values, out, needs):
        a, k = values
        a = a.astype(k.dtype, copy=False)
        view, pads, padded_shape = _windows(a, kshape[:2], strides, dilation, padding)
        g5 = g.reshape(g.shape[:3] + kshape[2:])
        grad_k = np.einsum("nhwijc,nhwcm->ijcm", view, g5) if needs[1] else None
        grad_x = None
        if needs[0]:
            padded = np.zeros(padded_shape, g.dtype)
            taps = np.einsum("nhwcm,ijcm->nhwijc", g5, k)
            (kh, kw), (sh, sw), (dh, dw) = kshape[:2], strides, dilation
            oh, ow = g.shape[1:3]
            for i in range(kh):
                for j in range(kw):
                    padded[:, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                           j * dw:j * dw + (ow - 1) * sw + 1:sw] += taps[:, :, :, i, j]
            (pt, _), (pl, _) = pads
            grad_x = padded[:, pt:pt + a.shape[1], pl:pl + a.shape[2]]
        return grad_x, grad_k
    y = apply("depthwise_conv", compute, vjp, x, w, values=(convert(x), float_value(w)))
    return _back(y, fmt, rank)


@keras_op
def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid",
                   data_format=None, dilation_rate=1):
    """depthwise_conv followed by a 1x1 conv with `pointwise_kernel`."""
    y = depthwise_conv(inputs, depthwise_kernel, strides=strides, padding=padding,
                       data_format=data_format, dilation_rate=dilation_rate)
    return conv(y, pointwise_kernel, strides=1, padding="valid", data_format=data_format,
                dilation_rate=1)


def _transpose_padding(length, kernel, stride, dilation, padding, output_padding):
    """Keras' conv_transpose geometry along one axis: (output length, the forward
    convolution's (before, after) padding, and the zeros added after it when the output
    reaches beyond what any input touches)."""
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        left, right = k - 1, k - 1 + extra
    else:
        total = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, k - 1)
        right = total - left
    out = (length - 1) * stride + left + right - k + 2
    before, after = k - 1 - left, k - 1 - right
    return out, (before, max(after, 0)), max(-after, 0)


@keras_op
def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1):
    """The transpose (gradient) of conv, with a (*window, out_channels, in_channels) kernel,
    Keras' output size rule; 1-D and 2-D. Computed by the compiled convolution's backward
    pass; differentiable in the inputs and the kernel."""
    x, fmt, rank = _spatial("conv_transpose", inputs, data_format)
    w = _kernel_2d(kernel, rank)
    strides = _pair(strides, rank, "strides", "conv_transpose")
    dilation = _pair(dilation_rate, rank, "dilation_rate", "conv_transpose")
    padding = _padding(padding, "conv_transpose")
    if output_padding is not None and rank == 1:
        output_padding = (0,) + tuple(output_padding if isinstance(output_padding, (list, tuple))
                                      else (output_padding,))
    out_pad = (None, None) if output_padding is None else \
        kernels.as_int_tuple(output_padding, 2, "output_padding", "ops.conv_transpose", 0)
    kshape = np.shape(value_of(w))
    xshape = np.shape(value_of(x))
    if kshape[3] != xshape[3]:
        raise ValueError(f"ops.conv_transpose: the kernel's last axis {kshape[3]} must equal the "
                         f"input's channels {xshape[3]} (kernel shape {kshape})")
    geometry = [_transpose_padding(xshape[1 + i], kshape[i], strides[i], dilation[i], padding,
                                   out_pad[i]) for i in range(2)]
    (out_h, pad_h, tail_h), (out_w, pad_w, tail_w) = geometry
    core_hw = (out_h - tail_h, out_w - tail_w)
    pads = (pad_h, pad_w)

    def compute(a, k):
        a = a.astype(k.dtype, copy=False)
        zeros = np.zeros((a.shape[0], *core_hw, k.shape[2]), k.dtype)
        y, _, _ = kernels.conv2d_backward(zeros, k, a, strides, pads, dilation,
                                          name="ops.conv_transpose")
        return np.pad(y, ((0, 0), (0, tail_h), (0, tail_w), (0, 0)))

    def vjp(g, values, out, needs):
        a, k = values
        g_core = np.ascontiguousarray(g[:, :core_hw[0], :core_hw[1]])
        grad_x = kernels.conv2d(g_core, k, None, strides, pads, dilation,
                                name="ops.conv_transpose") if needs[0] else None
        grad_k = kernels.conv2d_backward(g_core, k, a.astype(k.dtype, copy=False), strides,
                                         pads, dilation, need_input_grad=False,
                                         name="ops.conv_transpose")[1] if needs[1] else None
        return grad_x, grad_k
    y = apply("conv_transpose", compute, vjp, x, w, values=(convert(x), float_value(w)))
    return _back(y, fmt, rank)


@keras_op
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over 1-D or 2-D windows ("same" pads with -inf); the gradient goes to
    each window's first maximum."""
    x, fmt, rank = _spatial("max_pool", inputs, data_format)
    pool = _pair(pool_size, rank, "pool_size", "max_pool")
    stride = pool if strides is None else _pair(strides, rank, "strides", "max_pool")
    padding = _padding(padding, "max_pool")

    def compute(a):
        return kernels.max_pool2d(a, pool, stride, padding, with_argmax=False,
                                  name="ops.max_pool")[0]

    def vjp(g, values, out, needs):
        a = values[0]
        _, argmax = kernels.max_pool2d(a, pool, stride, padding, name="ops.max_pool")
        return (kernels.max_pool2d_backward(g, argmax, a.shape, name="ops.max_pool")
                .astype(g.dtype, copy=False),)
    y = apply("max_pool", compute, vjp, x, values=(convert(x),))
    return _back(y, fmt, rank)


@keras_op
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling over 1-D or 2-D windows; with "same" padding the padded cells do not
    count (TensorFlow's rule, which Keras follows)."""
    x, fmt, rank = _spatial("average_pool", inputs, data_format)
    pool = _pair(pool_size, rank, "pool_size", "average_pool")
    stride = pool if strides is None else _pair(strides, rank, "strides", "average_pool")
    padding = _padding(padding, "average_pool")

    def vjp(g, values, out, needs):
        return (kernels.avg_pool2d_backward(g, values[0].shape, pool, stride, padding,
                                            name="ops.average_pool"),)
    y = apply("average_pool", lambda a: kernels.avg_pool2d(a, pool, stride, padding,
                                                           name="ops.average_pool"),
              vjp, x, values=(convert(x),))
    return _back(y, fmt, rank)


def _adaptive_pool(op, inputs, output_size, data_format, reduce):
    x, fmt, rank = _spatial(op, inputs, data_format)
    sizes = _pair(output_size, rank, "output_size", op)
    _, h, w, _ = np.shape(value_of(x))
    rows = []
    for i in range(sizes[0]):
        top, bottom = (i * h) // sizes[0], -((-(i + 1) * h) // sizes[0])
        cells = []
        for j in range(sizes[1]):
            left, right = (j * w) // sizes[1], -((-(j + 1) * w) // sizes[1])
            cells.append(reduce(get_item(x, (slice(None), slice(top, bottom),
                                             slice(left, right))), axis=(1, 2)))
        rows.append(stack(cells, axis=1))
    return _back(stack(rows, axis=1), fmt, rank)


@keras_op
def adaptive_average_pool(inputs, output_size, data_format=None):
    """Average pooling to a fixed output size (PyTorch's adaptive windows: cell i covers
    [floor(i n / out), ceil((i + 1) n / out)))."""
    return _adaptive_pool("adaptive_average_pool", inputs, output_size, data_format, mean)


@keras_op
def adaptive_max_pool(inputs, output_size, data_format=None):
    """Max pooling to a fixed output size (PyTorch's adaptive windows)."""
    return _adaptive_pool("adaptive_max_pool", inputs, output_size, data_format, reduce_max)


@keras_op
def depth_to_space(x, block_size, data_format="channels_last"):
    """Channels moved into block_size x block_size spatial blocks (pixel shuffle)."""
    n, a, b, c = np.shape(value_of(x))
    if data_format == "channels_last":
        y = reshape(x, (n, a, b, block_size, block_size, c // block_size ** 2))
        y = transpose(y, (0, 1, 3, 2, 4, 5))
        return reshape(y, (n, a * block_size, b * block_size, c // block_size ** 2))
    y = reshape(x, (n, a // block_size ** 2, block_size, block_size, b, c))
    y = transpose(y, (0, 1, 4, 2, 5, 3))
    return reshape(y, (n, a // block_size ** 2, b * block_size, c * block_size))


@keras_op
def space_to_depth(x, block_size, data_format="channels_last"):
    """block_size x block_size spatial blocks moved into channels (pixel unshuffle)."""
    n, a, b, c = np.shape(value_of(x))
    if data_format == "channels_last":
        y = reshape(x, (n, a // block_size, block_size, b // block_size, block_size, c))
        y = transpose(y, (0, 1, 3, 2, 4, 5))
        return reshape(y, (n, a // block_size, b // block_size, c * block_size ** 2))
    y = reshape(x, (n, a, b // block_size, block_size, c // block_size, block_size))
    y = transpose(y, (0, 1, 3, 5, 2, 4))
    return reshape(y, (n, a * block_size ** 2, b // block_size, c // block_size))


def _unfold_geometry(kernel_size, dilation, padding, stride):
    return tuple(tuple(v) if isinstance(v, (list, tuple)) else (v, v)
                 for v in (kernel_size, dilation, padding, stride))


def _unfold_indices(shape, kernel_size, dilation, padding, stride):
    """For NCHW `shape`: the flat (padded) input position each column entry reads,
    shaped (C * kh * kw, L), and the padded shape."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = _unfold_geometry(kernel_size, dilation, padding,
                                                              stride)
    _, c, h, w = shape
    hp, wp = h + 2 * ph, w + 2 * pw
    oh, ow = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
    rows = (np.arange(oh) * sh)[None, :, None] + (np.arange(kh) * dh)[:, None, None]
    cols = (np.arange(ow) * sw)[None, None, :] + (np.arange(kw) * dw)[:, None, None]
    pos = (rows[:, None] * wp + cols[None]).reshape(kh, kw, oh * ow)
    channel = np.arange(c)[:, None, None, None] * hp * wp
    return (channel + pos[None]).reshape(c * kh * kw, oh * ow), (hp, wp), (ph, pw)


@keras_op
def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of an NCHW batch as columns (N, C * kh * kw, L) (im2col, as
    PyTorch's unfold); differentiable."""
    shape = np.shape(value_of(x))
    index, (hp, wp), (ph, pw) = _unfold_indices(shape, kernel_size, dilation, padding, stride)

    def forward(a):
        padded = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        return padded.reshape(a.shape[0], -1)[:, index]

    def trace(i):
        padded = np.pad(i, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        return padded.reshape(i.shape[0], -1)[:, index]
    from .numpy import _rearranging
    return _rearranging("unfold", x, forward, trace)


@keras_op
def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Columns (N, C * kh * kw, L) summed back into an NCHW image (col2im, the adjoint of
    unfold); differentiable."""
    oh, ow = output_size if isinstance(output_size, (list, tuple)) else (output_size,) * 2
    n, ckk, _ = np.shape(value_of(x))
    (kh, kw), _, _, _ = _unfold_geometry(kernel_size, dilation, padding, stride)
    c = ckk // (kh * kw)
    index, (hp, wp), (ph, pw) = _unfold_indices((n, c, oh, ow), kernel_size, dilation, padding,
                                                stride)

    def forward(a):
        out = np.zeros((a.shape[0], c * hp * wp), a.dtype)
        for b in range(a.shape[0]):
            np.add.at(out[b], index, a[b])
        return out.reshape(a.shape[0], c, hp, wp)[:, :, ph:ph + oh, pw:pw + ow]

    def vjp(g, values, out, needs):
        padded = np.pad(g, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        return (padded.reshape(g.shape[0], -1)[:, index],)
    return apply("fold", forward, vjp, x, values=(float_value(x),))


@keras_op
def polar(abs_, angle):
    """abs_ * exp(1j * angle), a complex tensor (not differentiable)."""
    return apply("polar", lambda r, t: r * np.exp(1j * t), None, abs_, angle,
                 values=(convert(abs_), convert(angle)))
