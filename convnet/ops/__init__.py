"""Keras 3's ops (``from keras import ops``) on NumPy arrays, differentiable on convnet's tape.

Outside a training step every op takes and returns NumPy arrays. Inside one,
an op whose operand needs a gradient (a trainable weight, or a value computed
from one) returns a traced Tensor and records its gradient rule, so a layer or
model written with these ops trains with no backward pass of its own. On the
symbolic tensors of a functional model an op becomes a node of the graph.

The compiled kernels and their validation live in ``convnet.kernels``; the
ops here that need them (conv, max_pool, ...) call it.
"""
from . import core, nn, numpy  # noqa: F401 - keras.ops.nn, keras.ops.numpy
from .core import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
from .numpy import *  # noqa: F401,F403

_NUMPY_OPS = [name for name in dir(numpy) if not name.startswith("_")
              and callable(getattr(numpy, name)) and getattr(numpy, name).__module__ ==
              numpy.__name__]
_CORE_OPS = ["convert_to_tensor", "convert_to_numpy", "is_tensor", "shape", "dtype", "cast",
             "stop_gradient", "slice", "unstack"]
__all__ = sorted(set(_NUMPY_OPS + ["abs", "amax", "amin", "max", "min", "getitem",
                                   "true_divide", "sum", "round"]
                     + _CORE_OPS + nn.__all__))


def _numpy_ufunc(ufunc, method, inputs, kwargs):
    """A NumPy ufunc called on a traced Tensor runs as the op of the same name, so it is
    recorded; one with no gradient rule here is refused with the op to use instead."""
    import numpy as np
    names = {np.add: "add", np.subtract: "subtract", np.multiply: "multiply",
             np.true_divide: "divide", np.negative: "negative", np.absolute: "absolute",
             np.square: "square", np.sqrt: "sqrt", np.exp: "exp", np.log: "log",
             np.log1p: "log1p", np.expm1: "expm1", np.tanh: "tanh", np.sin: "sin",
             np.cos: "cos", np.maximum: "maximum", np.minimum: "minimum", np.power: "power",
             np.matmul: "matmul", np.equal: "equal", np.not_equal: "not_equal",
             np.less: "less", np.less_equal: "less_equal", np.greater: "greater",
             np.greater_equal: "greater_equal", np.sign: "sign", np.floor: "floor",
             np.ceil: "ceil", np.mod: "mod", np.floor_divide: "floor_divide"}
    name = names.get(ufunc)
    if method != "__call__" or name is None or kwargs:
        raise TypeError(f"numpy.{ufunc.__name__} ({method}) on a traced tensor cannot be "
                        f"differentiated here; use the convnet.ops function instead (e.g. "
                        f"convnet.ops.{ufunc.__name__})")
    return globals()[name](*inputs)

