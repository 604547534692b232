"""Keras' small backend helpers: default float type, fuzz factor, image layout, dtypes.

convnet has one backend, NumPy (plus its compiled kernels); ``backend()`` says so.
"""
import itertools

import numpy as np

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_FLOAT_TYPES = ("float16", "float32", "float64", "bfloat16")
_uids = {}


def backend():
    """The name of the backend: "numpy" (convnet's kernels run on NumPy arrays)."""
    return "numpy"


def floatx():
    """The default float type of layers and variables: "float32" unless set_floatx changed it."""
    return _FLOATX


def set_floatx(value):
    """Set the default float type: "float32" or "float64" (convnet's kernels run in both)."""
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ValueError(f"set_floatx: convnet computes in 'float32' or 'float64', got {value!r}")
    _FLOATX = str(value)


def epsilon():
    """Keras' fuzz factor (1e-7), used where a value must not be zero."""
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    value = float(value)
    if not value > 0 or not np.isfinite(value):
        raise ValueError(f"set_epsilon: epsilon must be a positive finite number, got {value!r}")
    _EPSILON = value


def image_data_format():
    """The default data_format of image layers: "channels_last" (NHWC)."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    global _IMAGE_DATA_FORMAT
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"set_image_data_format: expected 'channels_last' or 'channels_first', "
                         f"got {data_format!r}")
    _IMAGE_DATA_FORMAT = data_format


def standardize_data_format(data_format):
    if data_format is None:
        return image_data_format()
    data_format = str(data_format).lower()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    return data_format


def standardize_dtype(dtype):
    """A dtype's name as Keras spells it ("float32", "int64", "bool", ...)."""
    if dtype is None:
        return floatx()
    if hasattr(dtype, "name") and not isinstance(dtype, np.dtype) and hasattr(dtype, "is_floating"):
        dtype = dtype.name  # a tf.DType
    if str(dtype).startswith("torch."):
        dtype = str(dtype)[len("torch."):]
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"Invalid dtype: {dtype!r}") from None


def is_float_dtype(dtype):
    return standardize_dtype(dtype).startswith(("float", "bfloat"))


def is_int_dtype(dtype):
    return standardize_dtype(dtype).startswith(("int", "uint"))


def result_type(*dtypes):
    """The dtype of an operation on these dtypes by Keras' rules: Python scalars are weak,
    integers meeting floats give the float, and no integer/bool mix alone widens a float
    to float64 (NumPy would make int64 + float32 a float64)."""
    names = [standardize_dtype(d) for d in dtypes if d is not None]
    if not names:
        return floatx()
    floats = [n for n in names if is_float_dtype(n)]
    if floats:
        return np.result_type(*floats).name
    return np.result_type(*names).name


def is_keras_tensor(x):
    """Whether `x` is a symbolic tensor of a functional model (what keras.Input returns)."""
    from .graph import KerasTensor
    return isinstance(x, KerasTensor)


def is_tensor(x):
    from .autodiff import Tensor
    return isinstance(x, (np.ndarray, Tensor))


def shape(x):
    """The shape of `x` as a tuple (None for unknown sizes of a symbolic tensor)."""
    return tuple(x.shape)


def get_uid(prefix=""):
    """1, 2, 3, ... for each prefix, as Keras numbers its layer names."""
    counter = _uids.setdefault(prefix, itertools.count(1))
    return next(counter)


def clear_session():
    """Forget the layer-name counters, so new layers are named as in a fresh session."""
    from .layers import base
    _uids.clear()
    base._name_counts.clear()
