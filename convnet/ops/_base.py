"""How an op runs: on arrays, on the tape, or on symbolic tensors.

Every public function of ``convnet.ops`` is wrapped by ``keras_op``: called on
the symbolic tensors of a functional model (``keras.Input`` and what layers
made from it) it becomes one node of the graph, an ``Operation`` layer that
calls the op again on real data. Otherwise the op computes with NumPy through
``apply``: where an operand needs a gradient on the active tape (a trainable
Variable, or a Tensor computed from one) the result is recorded with the op's
vector-Jacobian product, written beside the forward; otherwise the plain
result comes back and nothing is recorded.

Not differentiable (``apply`` with ``vjp=None``): ops whose result is an
integer or boolean (argmax, comparisons, ...) or piecewise constant (floor,
round, sign, ...). On a traced operand their result is still recorded, as a
node the gradient cannot cross; the tape raises a TypeError naming the op when
a gradient reaches it and some trainable variable behind it gets no gradient
from any other path (``convnet.autodiff``), because training that variable
would silently use zeros. ``stop_gradient`` is the way to ask for a zero
gradient on purpose.

dtypes follow Keras' promotion (``convnet.backend.result_type``): Python
numbers are weak, an integer meeting a float gives the float, and ops of
float results (exp, mean, divide, ...) compute integers in floatx().
"""
import functools

import numpy as np

from .. import backend
from ..autodiff import current_tape, needs_grad, record, unbroadcast, value_of
from ..graph import KerasTensor, flatten


# ----------------------------------------------------------------------------- dispatch

def is_symbolic(structure):
    """Whether a (nested) structure holds a symbolic tensor."""
    if isinstance(structure, KerasTensor):
        return True
    if isinstance(structure, (list, tuple)):
        return any(is_symbolic(x) for x in structure)
    if isinstance(structure, dict):
        return any(is_symbolic(x) for x in structure.values())
    return False


def keras_op(fn):
    """Make `fn` a public op: on symbolic tensors it becomes a graph node (an Operation)."""
    @functools.wraps(fn)
    def op(*args, **kwargs):
        if is_symbolic(args) or kwargs and is_symbolic(kwargs):
            from .operation import symbolic_call
            return symbolic_call(op, args, kwargs)
        return fn(*args, **kwargs)
    op.is_keras_op = True
    return op


def apply(name, compute, vjp, *operands, values=None):
    """``compute(*values)``, recorded on the active tape when an operand needs a gradient.

    ``operands`` are what the caller passed (Tensors, Variables, arrays, numbers): the tape
    links the result to them. ``values`` are the arrays to compute with (the operands'
    values by default; ops pass them cast to the result dtype). ``vjp(g, values, out,
    needs)`` returns one gradient (or None) per operand; ``vjp=None`` records an op that
    is not differentiable (see the module docstring).
    """
    if values is None:
        values = tuple(value_of(x) for x in operands)
    out = compute(*values)
    if current_tape() is None or not any(needs_grad(x) for x in operands):
        return out
    out = _frozen(out, values)
    if vjp is None:
        return record(out, operands, None, name)

    def rule(g, needs):
        return vjp(g, values, out, needs)

    return record(out, operands, rule, name)


def _frozen(out, values):
    """A recorded result as read-only arrays: the tape keeps them for the backward pass, so
    an in-place write (``np.asarray(t)[...] = 0``) would make the gradient wrong. A result
    that is one of the inputs is frozen as a view, leaving the caller's array writable."""
    if isinstance(out, tuple):
        return tuple(_frozen(o, values) for o in out)
    if isinstance(out, list):
        return [_frozen(o, values) for o in out]
    out = np.asarray(out)
    if any(out is v for v in values):
        out = out.view()
    out.flags.writeable = False
    return out


def recording(*operands):
    """Whether an op on these operands would be recorded (a tape is active and one of
    them needs a gradient)."""
    return current_tape() is not None and any(needs_grad(x) for x in operands)


# ----------------------------------------------------------------------------- values and dtypes

def dtype_key(x):
    """What Keras' result_type is given for a value: Python numbers as their (weak) type."""
    x = value_of(x)
    if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
        return type(x)
    if hasattr(x, "dtype"):
        return x.dtype
    return convert(x).dtype


def numpy_dtype(dtype):
    """A Keras dtype name as a NumPy dtype; the few Keras types NumPy lacks are refused."""
    if isinstance(dtype, np.dtype):
        return dtype
    name = backend.standardize_dtype(dtype)
    found = _NUMPY_DTYPES.get(name)
    if found is None:
        if name in ("bfloat16", "string") or name.startswith("float8"):
            raise TypeError(f"dtype {name!r}: convnet computes with NumPy, which has no {name} "
                            f"arrays; use float16, float32 or float64")
        found = _NUMPY_DTYPES[name] = np.dtype(name)
    return found


_NUMPY_DTYPES = {}


def optional_dtype(dtype):
    return None if dtype is None else numpy_dtype(dtype)


def convert(x, dtype=None):
    """x's value as an array, Keras' way: a given dtype, else an array's own, else Keras'
    type of the Python data (int32 for ints, floatx for floats)."""
    x = value_of(x)
    if dtype is not None:
        dtype = numpy_dtype(dtype)
        if isinstance(x, np.ndarray) and x.dtype == dtype:
            return x
        return np.asarray(x, dtype=dtype)
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        return np.asarray(x)
    leaves = flatten(x) if isinstance(x, (list, tuple)) else [x]
    if not leaves:
        return np.asarray(x, dtype=backend.floatx())
    return np.asarray(x, dtype=backend.result_type(*(dtype_key(v) for v in leaves)))


def promote(*xs, extra=()):
    """The operands' values cast to their Keras result dtype (plus ``extra`` dtypes, e.g.
    ``float`` for an op whose result is always floating)."""
    values = tuple(value_of(x) for x in xs)
    first = values[0]
    if isinstance(first, np.ndarray) and (not extra or first.dtype.kind == "f"):
        # The common case, arrays of one dtype (or an array and a Python number of its
        # kind): nothing to promote.
        kind = first.dtype.kind
        if all(isinstance(v, np.ndarray) and v.dtype == first.dtype or
               kind == "f" and isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in values[1:]):
            return tuple(v if isinstance(v, np.ndarray) else np.asarray(v, first.dtype)
                         for v in values)
    dtype = numpy_dtype(backend.result_type(*(dtype_key(x) for x in values), *extra))
    return tuple(convert(x, dtype) for x in values)


def float_value(x):
    """x's value as an array of a floating type: floats (and complex) keep theirs, integers
    and booleans become floatx() (Keras' rule for exp, log, sin, ...)."""
    a = convert(x)
    if a.dtype.kind in "fc":
        return a
    return a.astype(backend.floatx())


# ----------------------------------------------------------------------------- gradients

def reduce_to(grad, x):
    """`grad` summed back to the shape of operand x (undoing broadcasting), in x's dtype
    when x is floating."""
    value = value_of(x)
    grad = unbroadcast(grad, np.shape(value))
    dtype = getattr(value, "dtype", None)
    if dtype is not None and dtype.kind == "f" and grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def axes_of(axis, ndim):
    """`axis` (None, an int or a sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    axes = []
    for a in axis:
        a = int(a)
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of bounds for a tensor of rank {ndim}")
        axes.append(a % ndim if ndim else 0)
    return tuple(sorted(set(axes)))


def numpy_axis(axis):
    """An axis argument as NumPy takes it (a list becomes a tuple)."""
    return tuple(axis) if isinstance(axis, list) else axis


def expand_reduced(g, shape, axis, keepdims):
    """A reduction's output (or its gradient) reshaped to broadcast against the input."""
    if keepdims:
        return g
    axes = axes_of(axis, len(shape))
    return np.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))


def broadcast_back(g, shape, axis, keepdims):
    """The gradient of a sum over `axis`: g spread over the reduced axes."""
    return np.broadcast_to(expand_reduced(g, shape, axis, keepdims), shape)
