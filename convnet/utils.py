"""Shape arithmetic, label encoding and numerical gradient checking."""
import math

import numpy as np


def from_registry(identifier, base, by_name, kind, alternatives=""):
    """``identifier`` if it is a ``base`` instance, else a new instance of the class
    registered under that (case-insensitive) name; ValueError naming ``kind`` otherwise."""
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in by_name:
        return by_name[identifier.lower()]()
    raise ValueError(f"Unknown {kind} {identifier!r}; expected one of {sorted(by_name)}"
                     f"{alternatives}")


def conv_output_length(length, kernel_size, stride, dilation=1, pad_total=0,
                       ceil_mode=False, pad_before=0):
    """Output length of a convolution or pooling window sliding over `length` cells.

    ``floor((n + pad_total - d*(k-1) - 1) / s) + 1``; with ``ceil_mode`` the
    ceiling, less one where the last window would start past the input and its
    left padding (PyTorch's rule). ``None`` (an unknown size) gives ``None``.
    A result below 1 means the window does not fit; callers raise on it.
    """
    if length is None:
        return None
    span = length + pad_total - dilation * (kernel_size - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= length + pad_before:
        out -= 1
    return out


def same_padding(length, kernel_size, stride, dilation=1):
    """TensorFlow/Keras "same" padding as (before, after); the odd cell goes after.

    An unknown length (None) has no padding to speak of yet: (0, 0).
    """
    if length is None:
        return 0, 0
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + (kernel_size - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def conv_transpose_padding(length, kernel_size, stride, padding, output_padding=None,
                           dilation=1):
    """(output length, crop) of a transposed convolution along one axis, by Keras' rule
    (keras/src/backend/common/backend_utils.py), the adjoint of a convolution whose input
    has that output length and whose padding before is ``crop``.

    With k = dilation*(kernel_size-1) + 1, the output length is (n-1)*s + k + output_padding
    for "valid" (output_padding None: max(k, s) - k) and, for "same", n*s (None) or
    (n-1)*s + k%2 + output_padding. ``crop`` is how much of the full (n-1)*s + k outputs
    the start loses: 0 for "valid"; for "same", k - 1 less Keras' left padding,
    min(ceil(total/2), k - 1) of a total padding of s + k - 2 (None) or
    k + k%2 - 2 + output_padding. An unknown length (None) gives (None, crop).
    """
    span = dilation * (kernel_size - 1) + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        left, right = span - 1, span - 1 + extra
    else:
        total = (stride + span - 2 if output_padding is None
                 else span + span % 2 - 2 + output_padding)
        left = min(total // 2 + total % 2, span - 1)
        right = total - left
    crop = span - 1 - left
    if length is None:
        return None, crop
    return (length - 1) * stride + 1 + left + right - (span - 1), crop


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels, like keras.utils.to_categorical."""
    y = np.asarray(y)
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"to_categorical: labels must be integers, got dtype {y.dtype}")
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {y.min()}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: label {y.max()} is out of range for "
                         f"num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def numerical_gradient(f, x, eps=1e-6):
    """Central finite-difference gradient of the scalar function f at x (float64, in place safe)."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + eps
        plus = f(x)
        flat_x[i] = saved - eps
        minus = f(x)
        flat_x[i] = saved
        flat_g[i] = (plus - minus) / (2 * eps)
    return grad


def set_random_seed(seed):
    """Seed convnet's randomness (initializers, Dropout, fit's shuffling), like keras.utils."""
    from . import random
    random.set_seed(seed)


def __getattr__(name):
    """``keras.utils.PyDataset`` (and its Keras 2 name ``Sequence``) live with the data
    adapters; imported on first use, as utils is imported by everything."""
    if name in ("PyDataset", "Sequence"):
        from .data_adapters import PyDataset
        return PyDataset
    raise AttributeError(f"module 'convnet.utils' has no attribute {name!r}")
