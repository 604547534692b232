"""Keras 3's ops (``from keras import ops``) on NumPy arrays, differentiable on convnet's tape.

Outside a training step every op takes and returns NumPy arrays. Inside one,
an op whose operand needs a gradient (a trainable weight, or a value computed
from one) returns a traced Tensor and records its gradient rule, so a layer or
model written with these ops trains with no backward pass of its own. On the
symbolic tensors of a functional model an op becomes a node of the graph.
Not differentiable: ops whose results are integers, booleans or piecewise
constant (argmax, comparisons, floor, ...); see ``convnet.ops._base``.

The namespaces are Keras': ``ops`` (NumPy-like, nn, core, math and linalg
ops), ``ops.numpy``, ``ops.nn``, ``ops.core``, ``ops.math``, ``ops.linalg``
and ``ops.image``. The compiled kernels and their validation live in
``convnet.kernels``; the ops that need them (conv, max_pool, ...) call it.
"""
import builtins as _builtins
import inspect as _inspect

import numpy as _np

from . import core, image, linalg, math, nn, numpy  # Keras' submodules


def _public(module, exclude=()):
    """The ops a module defines: public callables whose home is that module."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and callable(value) and not isinstance(value, type)
                  and getattr(value, "__module__", None) == module.__name__
                  and name not in exclude)


for _module in (core, image, linalg, math, nn, numpy):
    _module.__all__ = _public(_module, exclude=("getitem",))

from .core import *  # noqa: E402,F401,F403
from .linalg import *  # noqa: E402,F401,F403
from .math import *  # noqa: E402,F401,F403
from .nn import *  # noqa: E402,F401,F403
from .numpy import *  # noqa: E402,F401,F403
from .numpy import getitem  # noqa: E402,F401 - what Tensor.__getitem__ calls

# gammainc is in keras.ops.math only, as in Keras.
__all__ = sorted(set(core.__all__ + linalg.__all__ + nn.__all__ + numpy.__all__ +
                     math.__all__) - {"gammainc"})
del gammainc  # noqa: F821 - brought in by the star import of .math

# ----------------------------------------------------------------------------- NumPy's protocols

# NumPy ufuncs whose convnet.ops function has another name.
_UFUNC_NAMES = {"true_divide": "divide", "remainder": "mod", "invert": "bitwise_invert",
                "rint": "round", "radians": "deg2rad", "degrees": "rad2deg",
                "float_power": "power", "conjugate": "conjugate"}
_REDUCTIONS = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
               "logical_and": "all", "logical_or": "any"}
_ACCUMULATIONS = {"add": "cumsum", "multiply": "cumprod"}


def _live(args, kwargs):
    """Whether a NumPy call must run as an op: an operand is symbolic or needs a gradient."""
    from ._base import is_symbolic, recording
    from ..graph import flatten
    return is_symbolic((args, kwargs)) or recording(*flatten((list(args), kwargs)))


def _values(structure):
    from ..graph import map_structure
    from ..autodiff import value_of
    return map_structure(value_of, structure)


def _refuse_symbolic(what, args, kwargs):
    from ._base import is_symbolic
    if is_symbolic((args, kwargs)):
        raise TypeError(f"{what} on a symbolic tensor (keras.Input) has no convnet.ops "
                        f"equivalent, so it cannot be part of a functional model; use "
                        f"convnet.ops, or a Layer whose call() computes it")


def _refuse_lost_gradient(what, result):
    """A NumPy call with no op of its own on traced operands: fine if its result holds no
    floats (a shape, a boolean mask); otherwise it would silently drop the gradient."""
    from ..graph import flatten
    for leaf in flatten(result if isinstance(result, (list, tuple, dict)) else [result]):
        if _np.asarray(leaf).dtype.kind in "fc":
            raise TypeError(f"{what} on a traced tensor is not recorded on the tape, so no "
                            f"gradient would flow through it; use the convnet.ops function "
                            f"instead, or convnet.ops.stop_gradient / convert_to_numpy if no "
                            f"gradient is wanted")
    return result


def _numpy_ufunc(ufunc, method, inputs, kwargs):
    """A NumPy ufunc on Tensors, Variables or symbolic tensors (``np.exp(t)``, ``array + t``):
    the op of the same name where an operand is symbolic or needs a gradient, else NumPy on
    the values. Writing into a traced tensor or a Variable (``out=``, ``ufunc.at``) is
    refused: the tape keeps those arrays for the backward pass."""
    from ..autodiff import Tensor
    from ..variables import Variable
    outs = kwargs.get("out") or ()
    targets = list(outs) + ([inputs[0]] if method == "at" else [])
    if _builtins.any(isinstance(t, (Tensor, Variable)) for t in targets):
        raise TypeError(f"numpy.{ufunc.__name__} cannot write into a traced tensor or a "
                        f"Variable in place: the tape keeps the tensor for the backward pass, "
                        f"so its gradient would be wrong (use the result instead, or "
                        f"Variable.assign)")
    name = _UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__)
    if method == "reduce":
        name = _REDUCTIONS.get(ufunc.__name__)
    elif method == "accumulate":
        name = _ACCUMULATIONS.get(ufunc.__name__)
    elif method != "__call__":
        name = None
    op = globals().get(name) if name in __all__ or name == "getitem" else None
    live = _live(inputs, kwargs)
    extra = {k: v for k, v in kwargs.items() if not (k == "out" and v is None)}
    what = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if live and op is not None:
        if method == "__call__" and not extra:
            return op(*inputs)
        if method in ("reduce", "accumulate") and set(extra) <= {"axis", "keepdims"}:
            axis = extra.get("axis", 0)
            kept = {"keepdims": extra["keepdims"]} if "keepdims" in extra else {}
            return op(inputs[0], axis=axis, **kept)
    if live:
        _refuse_symbolic(what, inputs, kwargs)
    result = getattr(ufunc, method)(*_values(list(inputs)), **_values(kwargs))
    return _refuse_lost_gradient(what, result) if live else result


def _numpy_function(func, args, kwargs):
    """A NumPy function on Tensors, Variables or symbolic tensors (``np.sum(t)``): the
    convnet.ops function of the same name where an operand is symbolic or needs a
    gradient (numpy.linalg's through ops.linalg), else NumPy on the values."""
    live = _live(args, kwargs)
    if live:
        namespace = linalg if func.__module__ == "numpy.linalg" else None
        name = func.__name__
        op = getattr(namespace, name, None) if namespace is not None else \
            (globals().get(name) if name in __all__ else None)
        if op is not None:
            try:
                _inspect.signature(op).bind(*args, **kwargs)
            except TypeError:
                op = None
        if op is not None:
            return op(*args, **kwargs)
        _refuse_symbolic(f"numpy.{name}", args, kwargs)
        result = func(*_values(list(args)), **_values(kwargs))
        return _refuse_lost_gradient(f"numpy.{name}", result)
    return func(*_values(list(args)), **_values(kwargs))
