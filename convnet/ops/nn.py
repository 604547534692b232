"""Keras' neural-network ops (keras.ops.nn): activations, softmax, one_hot, losses, and the
convolution and pooling ops on convnet's compiled kernels, each with its gradient."""
import numpy as np

from .. import activations as _activations
from .. import backend, kernels
from ..autodiff import value_of
from ._base import apply, convert_dtype, not_differentiable, to_array
from .numpy import (add, clip, log, mean, multiply, negative, reshape, sqrt, subtract, sum,
                    transpose)


def _activation(name, make):
    """An op from an activation of convnet.activations (its forward and derivative)."""
    def op(x, **kwargs):
        fn = make(**kwargs)

        def compute(a):
            a = np.asarray(a)
            return fn.forward(a if a.dtype.kind == "f" else a.astype(backend.floatx()))

        def vjp(g, arrays, out, needs):
            a = np.asarray(arrays[0], dtype=out.dtype)
            return (fn.backward(a, out, g),)
        return apply(name, compute, vjp, x, symbolic=(op, kwargs))
    op.__name__ = name
    return op


relu = _activation("relu", lambda: _activations.ReLU())
sigmoid = _activation("sigmoid", lambda: _activations.Sigmoid())
softplus = _activation("softplus", lambda: _activations.Softplus())
silu = _activation("silu", lambda: _activations.SiLU())
swish = silu
elu_ = _activation("elu", lambda: _activations.ELU())


def relu6(x):
    return clip(relu(x), 0.0, 6.0)


def leaky_relu(x, negative_slope=0.2):
    return _activation("leaky_relu",
                       lambda: _activations.LeakyReLU(negative_slope))(x)


def elu(x, alpha=1.0):
    if alpha == 1.0:
        return elu_(x)
    positive = relu(x)
    return add(positive, multiply(alpha, subtract(_exp_min0(x), 1.0)))


def _exp_min0(x):
    from .numpy import exp, minimum
    return exp(minimum(x, 0.0))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, computed stably; its gradient is the softmax
    Jacobian-vector product."""
    def compute(a):
        a = np.asarray(a)
        a = a if a.dtype.kind == "f" else a.astype(backend.floatx())
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def vjp(g, arrays, out, needs):
        return (out * (g - np.sum(g * out, axis=axis, keepdims=True)),)
    return apply("softmax", compute, vjp, x, symbolic=(softmax, {"axis": axis}))


def log_softmax(x, axis=-1):
    def compute(a):
        a = np.asarray(a)
        a = a if a.dtype.kind == "f" else a.astype(backend.floatx())
        shifted = a - a.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def vjp(g, arrays, out, needs):
        return (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),)
    return apply("log_softmax", compute, vjp, x, symbolic=(log_softmax, {"axis": axis}))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Integer labels to one-hot vectors along `axis` (out-of-range labels give zeros)."""
    def compute(a):
        a = np.asarray(a).astype(np.int64)
        out = (a[..., None] == np.arange(num_classes)).astype(convert_dtype(dtype) or
                                                               backend.floatx())
        return np.moveaxis(out, -1, axis) if axis != -1 else out
    return not_differentiable("one_hot", compute, x,
                              symbolic=(one_hot, {"num_classes": num_classes, "axis": axis,
                                                  "dtype": dtype}))


# ----------------------------------------------------------------------------- losses

def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum(target * log(p)) over `axis`, p = softmax(output) with from_logits, else output
    renormalised and clipped to [epsilon, 1 - epsilon] as Keras does."""
    if from_logits:
        return negative(sum(multiply(target, log_softmax(output, axis=axis)), axis=axis))
    eps = backend.epsilon()
    probs = output / sum(output, axis=axis, keepdims=True)
    return negative(sum(multiply(target, log(clip(probs, eps, 1 - eps))), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    classes = np.shape(value_of(output))[axis]
    labels = to_array(target)
    if np.ndim(labels) == np.ndim(value_of(output)):
        labels = np.squeeze(labels, axis=axis)
    return categorical_crossentropy(one_hot(labels, classes, axis=axis,
                                            dtype=np.asarray(value_of(output)).dtype),
                                    output, from_logits=from_logits, axis=axis)


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary cross-entropy (Keras' ops.binary_crossentropy)."""
    if from_logits:
        # max(x, 0) - x * z + log(1 + exp(-|x|)), stable for any logit.
        from .numpy import absolute, exp, log1p
        return add(subtract(relu(output), multiply(output, target)),
                   log1p(exp(negative(absolute(output)))))
    eps = backend.epsilon()
    p = clip(output, eps, 1 - eps)
    return negative(add(multiply(target, log(p)),
                        multiply(subtract(1.0, target), log(subtract(1.0, p)))))


# ----------------------------------------------------------------------------- conv and pool

def _nhwc(x, data_format):
    fmt = backend.standardize_data_format(data_format)
    return transpose(x, (0, 2, 3, 1)) if fmt == "channels_first" else x, fmt


def _back(y, fmt):
    return transpose(y, (0, 3, 1, 2)) if fmt == "channels_first" else y


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """2-D convolution of a batch of images with an HWIO kernel (Keras' ops.conv), on the
    compiled im2col + BLAS kernels; differentiable in the inputs and the kernel."""
    if np.ndim(value_of(inputs)) != 4 and not hasattr(inputs, "_keras_history"):
        raise ValueError(f"conv: convnet runs 2-D convolutions; inputs must be 4-D "
                         f"(batch, height, width, channels), got shape "
                         f"{np.shape(value_of(inputs))}")
    x, fmt = _nhwc(inputs, data_format)

    def compute(a, w):
        w = np.asarray(w)
        return kernels.conv2d(np.asarray(a, dtype=w.dtype), w, None, strides, padding,
                              dilation_rate, name="ops.conv")

    def vjp(g, arrays, out, needs):
        a, w = arrays
        w = np.asarray(w)
        gx, gw, _ = kernels.conv2d_backward(np.asarray(a, dtype=w.dtype), w, g, strides,
                                            padding, dilation_rate, need_input_grad=needs[0],
                                            name="ops.conv")
        return gx, gw
    y = apply("conv", compute, vjp, x, kernel,
              symbolic=(conv, {"strides": strides, "padding": padding,
                               "data_format": data_format, "dilation_rate": dilation_rate}))
    return _back(y, fmt)


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    x, fmt = _nhwc(inputs, data_format)

    def compute(a):
        return kernels.max_pool2d(a, pool_size, strides, padding, with_argmax=False,
                                  name="ops.max_pool")[0]

    def vjp(g, arrays, out, needs):
        a = np.asarray(arrays[0])
        _, argmax = kernels.max_pool2d(a, pool_size, strides, padding, name="ops.max_pool")
        return (kernels.max_pool2d_backward(g, argmax, a.shape, name="ops.max_pool"),)
    y = apply("max_pool", compute, vjp, x,
              symbolic=(max_pool, {"pool_size": pool_size, "strides": strides,
                                   "padding": padding, "data_format": data_format}))
    return _back(y, fmt)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling; with "same" padding the padded cells do not count (TensorFlow's rule,
    which Keras follows)."""
    x, fmt = _nhwc(inputs, data_format)

    def compute(a):
        return kernels.avg_pool2d(a, pool_size, strides, padding, name="ops.average_pool")

    def vjp(g, arrays, out, needs):
        a = np.asarray(arrays[0])
        return (kernels.avg_pool2d_backward(g, a.shape, pool_size, strides, padding,
                                            name="ops.average_pool"),)
    y = apply("average_pool", compute, vjp, x,
              symbolic=(average_pool, {"pool_size": pool_size, "strides": strides,
                                       "padding": padding, "data_format": data_format}))
    return _back(y, fmt)


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, statistics broadcast along
    `axis` (Keras' ops.batch_normalization); differentiable in every argument."""
    ndim = np.ndim(value_of(x))
    axis = axis % ndim
    shape = [1] * ndim
    shape[axis] = -1

    def along(v):
        return reshape(v, shape)
    inv = 1.0 / sqrt(add(along(variance), epsilon))
    y = multiply(subtract(x, along(mean)), inv)
    if scale is not None:
        y = multiply(y, along(scale))
    if offset is not None:
        y = add(y, along(offset))
    return y


def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) over `axes` (the biased variance, as Keras)."""
    m = mean(x, axis=axes, keepdims=True)
    v = mean(multiply(subtract(x, m), subtract(x, m)), axis=axes, keepdims=keepdims)
    return (m if keepdims else reshape(m, np.shape(value_of(v)))), v


__all__ = ["relu", "relu6", "sigmoid", "softplus", "silu", "swish", "elu", "leaky_relu",
           "softmax", "log_softmax", "one_hot", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "binary_crossentropy", "conv", "max_pool",
           "average_pool", "batch_normalization", "moments"]
