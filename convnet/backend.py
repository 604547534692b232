"""Keras' small backend helpers: default float type, fuzz factor, image layout, dtypes.

convnet has one backend, NumPy (plus its compiled kernels); ``backend()`` says so.
"""
import functools
import itertools

import numpy as np

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
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
    data_format = str(data_format).lower()
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


#: Every dtype name Keras knows. NumPy has no bfloat16, float8 or string tensors: convnet
#: accepts their names here (as Keras does) and refuses to make arrays of them.
ALLOWED_DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64",
                  "int8", "int16", "int32", "int64", "bfloat16", "bool", "string",
                  "float8_e4m3fn", "float8_e5m2", "complex64", "complex128")
#: Python's types as Keras names them (its JAX, PyTorch and NumPy backends: int is int32).
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string",
                  complex: "complex64"}


def standardize_dtype(dtype):
    """A dtype's name as Keras spells it ("float32", "int64", "bool", ...): NumPy dtypes and
    scalar types, Python's bool/int/float (int32 and float32, as Keras), torch and TensorFlow
    dtypes; None is floatx(). Anything else is a ValueError."""
    if dtype is None:
        return floatx()
    try:
        # Keyed with the type too: np.dtype("float64") == float, yet they name different types.
        key = (type(dtype), dtype)
        name = _standardized.get(key)
    except TypeError:  # unhashable
        return _standardize(dtype)
    if name is None:
        name = _standardized[key] = _standardize(dtype)
    return name


_standardized = {}


def _standardize(dtype):
    if isinstance(dtype, str):
        dtype = "int32" if dtype == "int" else dtype
    elif any(dtype is python_type for python_type in _PYTHON_DTYPES):
        dtype = _PYTHON_DTYPES[dtype]
    if isinstance(dtype, np.dtype):
        dtype = dtype.name
    elif hasattr(dtype, "name") and isinstance(dtype.name, str):
        dtype = dtype.name  # a tf.DType
    elif isinstance(dtype, type) and issubclass(dtype, np.generic):
        dtype = np.dtype(dtype).name
    elif str(dtype).startswith(("torch.", "jax.numpy.")):
        dtype = str(dtype).split(".")[-1]
    if dtype == "bool_":
        dtype = "bool"
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r}")
    return dtype


def is_float_dtype(dtype):
    return standardize_dtype(dtype).startswith(("float", "bfloat"))


def is_int_dtype(dtype):
    return standardize_dtype(dtype).startswith(("int", "uint"))


# Keras' type promotion lattice (JAX's): each type and the types just above it. "int" and
# "float" are the weak types of Python numbers, which give way to any array's type.
_LATTICE = {
    "bool": ["int"], "uint8": ["int16", "uint16"], "uint16": ["int32", "uint32"],
    "uint32": ["int64", "uint64"], "uint64": ["float"], "int": ["uint8", "int8", "complex64"],
    "int8": ["int16"], "int16": ["int32"], "int32": ["int64"], "int64": ["float"],
    "float": ["bfloat16", "float16"], "bfloat16": ["float32"], "float16": ["float32"],
    "float32": ["float64", "complex64"], "float64": ["complex128"],
    "complex64": ["complex128"], "complex128": [],
}


def _upper_bounds():
    bounds = {node: {node} for node in _LATTICE}
    changed = True
    while changed:
        changed = False
        for node in _LATTICE:
            grown = bounds[node].union(*(_LATTICE[b] for b in bounds[node]))
            if grown != bounds[node]:
                bounds[node], changed = grown, True
    return bounds


_UPPER_BOUNDS = _upper_bounds()


@functools.lru_cache(maxsize=1024)
def _least_upper_bound(*nodes):
    nodes = set(nodes)
    common = set.intersection(*(_UPPER_BOUNDS[n] for n in nodes))
    least = (common & nodes) or {c for c in common if common <= _UPPER_BOUNDS[c]}
    if len(least) != 1:
        raise ValueError(f"result_type: dtypes {sorted(nodes)} have no common type; cast "
                         f"them explicitly")
    return least.pop()


def _weak(name):
    if name == "bool":
        return name
    if "float" in name:
        return "float"
    if "complex" in name:
        return "complex64"
    return "int"


@functools.lru_cache(maxsize=1024)
def _lattice_result(entries, floatx_name):
    """entries: (name, weak) pairs."""
    names = [n for n, _ in entries]
    weak = [w for _, w in entries]
    if len(entries) == 1:
        out, out_weak = names[0], weak[0]
    elif len(set(names)) == 1 and not all(weak):
        out, out_weak = names[0], False
    elif all(weak):
        out, out_weak = _least_upper_bound(*set(names)), True
    else:
        out = _least_upper_bound(*{_weak(n) if w else n for n, w in entries})
        out_weak = out in ("int", "float")
    if out_weak and out != "bool":
        bits = floatx_name[-2:]
        first = "f" if out == "bfloat16" else out[0]
        out = {"i": f"int{bits}", "u": f"uint{bits}"}.get(first, f"float{bits}")
    return out


def result_type(*dtypes):
    """The dtype Keras' type promotion gives these dtypes (JAX's lattice): Python's int and
    float are weak (an array's type wins: float16 + 1.0 is float16), an integer meeting a
    float gives the float (int64 + float32 is float32, where NumPy says float64), uint8 +
    int8 is int16, no dtypes is floatx().

    One difference from Keras' JAX, PyTorch and NumPy backends, which turn every 64-bit
    result into 32 bits (JAX's default): convnet keeps int64 and float64, as Keras does on
    TensorFlow, so float64 models and gradient checks stay in float64.
    """
    if not dtypes:
        return floatx()
    entries = []
    for dtype in dtypes:
        weak = dtype is int or dtype is float
        name = standardize_dtype(floatx() if dtype is None else dtype)
        if name.startswith("float8") or name == "string":
            raise ValueError(f"result_type: no implicit conversion from {name}; cast it "
                             f"explicitly (got {dtypes})")
        entries.append((name, weak))
    return _lattice_result(tuple(entries), floatx())


def is_keras_tensor(x):
    """Whether `x` is a symbolic tensor of a functional model (what keras.Input returns)."""
    from .graph import KerasTensor
    return isinstance(x, KerasTensor)


def is_tensor(x):
    from .autodiff import Tensor
    return isinstance(x, (np.ndarray, Tensor))


def shape(x):
    """The shape of `x` as a tuple (None for unknown sizes of a symbolic tensor)."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def get_uid(prefix=""):
    """1, 2, 3, ... for each prefix, as Keras numbers its layer names."""
    counter = _uids.setdefault(prefix, itertools.count(1))
    return next(counter)


def clear_session(free_memory=True):
    """Forget the layer-name counters, so new layers are named as in a fresh session; with
    ``free_memory`` also run Python's garbage collector, as Keras does."""
    from .layers import base
    _uids.clear()
    base._name_counts.clear()
    if free_memory:
        import gc
        gc.collect()
