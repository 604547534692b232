"""Keras' core ops: conversions, dtype and shape queries, casting, stop_gradient."""
import builtins

import numpy as np

from .. import backend
from ..autodiff import Tensor, value_of
from ..graph import KerasTensor
from ..variables import Variable
from ._base import apply, convert_dtype, to_array


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """`x` as a tensor: a traced Tensor or symbolic tensor stays as it is (cast if asked); a
    Variable gives its value (recorded when a tape runs); anything else becomes an array of
    `dtype` (floats default to floatx, as Keras converts Python floats)."""
    if isinstance(x, (Tensor, KerasTensor)):
        return x if dtype is None else cast(x, dtype)
    if isinstance(x, Variable):
        return x if dtype is None else cast(x, dtype)
    array = np.asarray(x, dtype=convert_dtype(dtype))
    if dtype is None and array.dtype == np.float64 and not isinstance(x, np.ndarray):
        array = array.astype(backend.floatx())
    return array


def convert_to_numpy(x):
    """A NumPy copy of x's value (off the tape)."""
    return np.array(value_of(x))


def is_tensor(x):
    return isinstance(x, (np.ndarray, Tensor))


def shape(x):
    """The shape of x as a tuple (None for unknown sizes of a symbolic tensor)."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def dtype(x):
    return backend.standardize_dtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)


def cast(x, dtype):
    """x in another dtype; the gradient flows back (cast to x's dtype) between floats."""
    target = np.dtype(backend.standardize_dtype(dtype))

    def vjp(g, arrays, out, needs):
        source = np.asarray(arrays[0]).dtype
        return (g.astype(source) if source.kind == "f" and target.kind == "f" else None,)
    return apply("cast", lambda a: np.asarray(a).astype(target), vjp, x,
                 symbolic=(cast, {"dtype": target.name}))


def stop_gradient(variable):
    """Its value, off the tape: no gradient flows through it."""
    return to_array(variable)


def slice(inputs, start_indices, shape):  # noqa: A001 - Keras' name
    """inputs[start:start + shape] along every axis (Keras' ops.slice)."""
    from .numpy import get_item
    index = tuple(builtins.slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return get_item(inputs, index)


def unstack(x, num=None, axis=0):
    """The slices of x along `axis`, as a list."""
    from .numpy import get_item
    n = shape(x)[axis]
    index = [builtins.slice(None)] * len(shape(x))
    pieces = []
    for i in range(n if num is None else num):
        index[axis] = i
        pieces.append(get_item(x, tuple(index)))
    return pieces
