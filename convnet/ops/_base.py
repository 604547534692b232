"""How an op runs: on arrays, on the tape, or on symbolic tensors.

Every function of ``convnet.ops`` goes through ``apply``: its arguments'
values are taken (Tensors and Variables give their arrays), the NumPy
computation runs, and where an argument needs a gradient on the active tape
the result is recorded with the op's vector-Jacobian product. Called on the
symbolic tensors of a functional model, an op becomes a node of the graph (an
``Operation`` layer that calls the op again on real data).
"""
import numpy as np

from .. import backend
from ..autodiff import Tensor, record, unbroadcast, value_of
from ..graph import KerasTensor, flatten, map_structure
from ..variables import Variable

_FLOAT_KINDS = "f"


def is_symbolic(*args, **kwargs):
    return any(isinstance(x, KerasTensor) for x in flatten((list(args), kwargs)))


def to_array(x, dtype=None):
    """The array behind x (Tensor, Variable, array, list or Python scalar)."""
    x = value_of(x)
    if isinstance(x, np.ndarray) and (dtype is None or x.dtype == dtype):
        return x
    if isinstance(x, (bool, int, float)) and dtype is None:
        return x  # NumPy 2 treats Python scalars as weak: float32 stays float32
    return np.asarray(x, dtype=dtype)


def binary_arrays(x1, x2):
    """Both operands as arrays of Keras' result dtype: an integer array meeting a float array
    takes the float's dtype (NumPy would widen int64 + float32 to float64); Python scalars
    are weak."""
    a, b = to_array(x1), to_array(x2)
    a_arr, b_arr = isinstance(a, np.ndarray), isinstance(b, np.ndarray)
    if a_arr and b_arr and a.dtype != b.dtype:
        kinds = (a.dtype.kind, b.dtype.kind)
        if kinds[0] == "f" and kinds[1] in "biu":
            b = b.astype(a.dtype)
        elif kinds[1] == "f" and kinds[0] in "biu":
            a = a.astype(b.dtype)
    return a, b


def shape_of(x):
    return x.shape if hasattr(x, "shape") else np.shape(x)


def reduce_to(grad, x):
    """`grad` summed back to the shape of operand x (undoing broadcasting), in x's dtype
    when x is floating."""
    shape = shape_of(value_of(x))
    grad = unbroadcast(grad, shape)
    dtype = getattr(value_of(x), "dtype", None)
    if dtype is not None and np.dtype(dtype).kind == "f" and grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def apply(name, compute, vjp, *operands, symbolic=None):
    """compute(*arrays) recorded on the tape with vjp(g, arrays, out) -> input grads.

    ``symbolic`` is the op function itself and its keyword arguments, used when an operand
    is a symbolic tensor.
    """
    if symbolic is not None and any(isinstance(x, KerasTensor) for x in operands):
        return symbolic_call(symbolic, operands)
    arrays = [to_array(x) for x in operands]
    out = compute(*arrays)
    if vjp is None:
        return out

    def rule(g, needs):
        return vjp(g, arrays, out, needs)

    return record(out, operands, rule, name)


def not_differentiable(name, compute, *operands, symbolic=None):
    """An op with no gradient (comparisons, argmax, integer ops): its result is a constant."""
    if symbolic is not None and any(isinstance(x, KerasTensor) for x in operands):
        return symbolic_call(symbolic, operands)
    return compute(*[to_array(x) for x in operands])


# ----------------------------------------------------------------------------- symbolic ops

def symbolic_call(symbolic, args):
    """An op on symbolic tensors: a graph node of an Operation layer wrapping the op.
    `symbolic` is (op, keyword arguments) or (op, keyword arguments, "list") for an op whose
    first argument is a list of tensors (concatenate, stack)."""
    from .operation import Operation
    fn, kwargs = symbolic[:2]
    return Operation(fn, kwargs, takes_list=len(symbolic) > 2)(*args)


def convert_dtype(dtype):
    return None if dtype is None else np.dtype(backend.standardize_dtype(dtype))


def is_variable(x):
    return isinstance(x, Variable)


def is_taped(x):
    return isinstance(x, Tensor)


__all__ = ["apply", "not_differentiable", "to_array", "binary_arrays", "reduce_to",
           "symbolic_call", "map_structure"]
