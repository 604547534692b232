"""Keras' NumPy-like ops (keras.ops / keras.ops.numpy), each with its gradient rule.

Each op takes arrays, Python numbers, Variables, traced Tensors or symbolic
tensors, with Keras' names, arguments, defaults and dtype rules (see
``_base``); it returns a NumPy array, or a Tensor on the tape when an operand
needs a gradient. Ops that only move, repeat or drop elements share one
gradient rule, ``_gather_vjp``: the op is run once more on the elements'
indices, and the gradient is added back to where each element came from.
"""
import builtins

import numpy as np

from .. import backend, kernels
from ..autodiff import value_of
from ._base import (apply, axes_of, broadcast_back, convert, dtype_key, expand_reduced,
                    float_value, keras_op, numpy_axis, numpy_dtype, optional_dtype, promote,
                    reduce_to)

_builtin_sum, _builtin_max, _builtin_min, _builtin_abs = (builtins.sum, builtins.max,
                                                          builtins.min, builtins.abs)


def _shape(x):
    value = value_of(x)
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def _gather_vjp(trace, shape):
    """The gradient of an op that moves, repeats or drops the elements of an input of
    `shape` (and fills the rest with constants): ``trace(indices)`` runs the same op on the
    1-based indices of the input (filling with 0), and each output gradient is added to the
    element it came from."""
    size = int(np.prod(shape, dtype=np.int64))

    def vjp(g):
        source = np.asarray(trace(np.arange(1, size + 1, dtype=np.int64).reshape(shape)))
        g = np.broadcast_to(g, source.shape)
        grad = np.bincount(source.ravel(), weights=g.ravel().real, minlength=size + 1)[1:]
        return grad.reshape(shape).astype(g.dtype, copy=False)
    return vjp


def _rearranging(name, x, forward, trace=None):
    """An op that moves, repeats or drops x's elements: ``forward(array)``; ``trace`` is the
    same op filling with zeros (defaults to forward)."""
    a = convert(x)
    gather = _gather_vjp(trace or forward, a.shape)
    return apply(name, forward, lambda g, values, out, needs: (gather(g),), x, values=(a,))


def _unary(name, forward, derivative=None, to_float=True, doc=None):
    """An elementwise op of one tensor. ``derivative(x, y)`` is dy/dx (None: not
    differentiable); ``to_float``: integer inputs compute in floatx (Keras' rule)."""
    def op(x):
        a = float_value(x) if to_float else convert(x)
        vjp = None if derivative is None else \
            (lambda g, values, out, needs: (g * derivative(values[0], out),))
        return apply(name, forward, vjp, x, values=(a,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc or f"Keras' ops.{name}, elementwise."
    return keras_op(op)


def _binary(name, forward, d1=None, d2=None, extra=(), doc=None):
    """An elementwise op of two tensors, broadcast, in their Keras result dtype (with the
    ``extra`` dtypes, e.g. ``float`` for a floating result). ``d1(a, b, y, g)`` and
    ``d2(...)`` are the gradients of each operand before broadcasting is undone."""
    def op(x1, x2):
        a, b = promote(x1, x2, extra=extra)

        def vjp(g, values, out, needs):
            a, b = values
            return (reduce_to(d1(a, b, out, g), x1) if needs[0] else None,
                    reduce_to(d2(a, b, out, g), x2) if needs[1] else None)
        return apply(name, forward, None if d1 is None else vjp, x1, x2, values=(a, b))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc or f"Keras' ops.{name}, elementwise with broadcasting."
    return keras_op(op)


def _not_differentiable(name, forward, *operands, values=None):
    return apply(name, forward, None, *operands, values=values)


# ----------------------------------------------------------------------------- creation

def _creation_dtype(dtype):
    return numpy_dtype(dtype) if dtype is not None else np.dtype(backend.floatx())


@keras_op
def zeros(shape, dtype=None):
    """An array of zeros of `dtype` (floatx() by default)."""
    return np.zeros(shape, dtype=_creation_dtype(dtype))


@keras_op
def ones(shape, dtype=None):
    return np.ones(shape, dtype=_creation_dtype(dtype))


@keras_op
def empty(shape, dtype=None):
    """An uninitialised array of `dtype` (floatx() by default)."""
    return np.empty(shape, dtype=_creation_dtype(dtype))


@keras_op
def full(shape, fill_value, dtype=None):
    """An array filled with `fill_value`, of `dtype` (floatx() by default, as Keras)."""
    return np.full(shape, convert(fill_value), dtype=_creation_dtype(dtype))


@keras_op
def zeros_like(x, dtype=None):
    """Zeros of x's shape and dtype (a constant: no gradient flows through it)."""
    return np.zeros_like(convert(x), dtype=optional_dtype(dtype))


@keras_op
def ones_like(x, dtype=None):
    return np.ones_like(convert(x), dtype=optional_dtype(dtype))


@keras_op
def empty_like(x, dtype=None):
    return np.empty_like(convert(x), dtype=optional_dtype(dtype))


@keras_op
def full_like(x, fill_value, dtype=None):
    return np.full_like(convert(x), convert(fill_value), dtype=optional_dtype(dtype))


@keras_op
def array(x, dtype=None):
    """x as an array (Keras' ops.array is convert_to_tensor)."""
    from .core import convert_to_tensor
    return convert_to_tensor(x, dtype=dtype)


@keras_op
def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in [start, stop); the dtype follows the arguments (int32 for
    Python ints, floatx for floats), as Keras."""
    if dtype is None:
        dtype = backend.result_type(*(dtype_key(v) for v in (start, stop, step)
                                      if v is not None))
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    return np.arange(value_of(start), value_of(stop), value_of(step), dtype=numpy_dtype(dtype))


def _space_dtype(start, stop, dtype):
    if dtype is not None:
        return numpy_dtype(dtype)
    return np.dtype(backend.result_type(dtype_key(start), dtype_key(stop), float))


@keras_op
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    return np.linspace(convert(start), convert(stop), num=num, endpoint=endpoint,
                       retstep=retstep, dtype=_space_dtype(start, stop, dtype), axis=axis)


@keras_op
def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    return np.logspace(convert(start), convert(stop), num=num, endpoint=endpoint, base=base,
                       dtype=_space_dtype(start, stop, dtype), axis=axis)


@keras_op
def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    return np.geomspace(convert(start), convert(stop), num=num, endpoint=endpoint,
                        dtype=_creation_dtype(dtype), axis=axis)


@keras_op
def eye(N, M=None, k=0, dtype=None):  # noqa: N803 - Keras' names
    return np.eye(N, M=M, k=k, dtype=_creation_dtype(dtype))


@keras_op
def identity(n, dtype=None):
    return np.identity(n, dtype=_creation_dtype(dtype))


@keras_op
def tri(N, M=None, k=0, dtype=None):  # noqa: N803 - Keras' names
    return np.tri(N, M=M, k=k, dtype=_creation_dtype(dtype))


def _window(name, fn):
    def op(x, *args):
        return fn(int(value_of(x)), *args).astype(backend.floatx())
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"NumPy's {name} window of length x, in floatx()."
    return keras_op(op)


bartlett = _window("bartlett", np.bartlett)
blackman = _window("blackman", np.blackman)
hamming = _window("hamming", np.hamming)
hanning = _window("hanning", np.hanning)


@keras_op
def kaiser(x, beta):
    return np.kaiser(int(value_of(x)), beta).astype(backend.floatx())


# ----------------------------------------------------------------------------- arithmetic

def _ones(a, b, y, g):
    return g


add = _binary("add", np.add, _ones, _ones)
subtract = _binary("subtract", np.subtract, _ones, lambda a, b, y, g: -g)
multiply = _binary("multiply", np.multiply, lambda a, b, y, g: g * b, lambda a, b, y, g: g * a)
divide = _binary("divide", np.true_divide, lambda a, b, y, g: g / b,
                 lambda a, b, y, g: -g * y / b, extra=(float,),
                 doc="x1 / x2; integers divide to a float (floatx for Python ints, as Keras).")
true_divide = divide


def _divide_no_nan(a, b):
    zero = b == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(zero, np.zeros((), a.dtype), a / np.where(zero, 1, b))


divide_no_nan = _binary(
    "divide_no_nan", _divide_no_nan,
    lambda a, b, y, g: np.where(b == 0, 0, g / np.where(b == 0, 1, b)),
    lambda a, b, y, g: np.where(b == 0, 0, -g * y / np.where(b == 0, 1, b)), extra=(float,),
    doc="x1 / x2, and 0 where x2 is 0 (the gradient there is 0 too).")


def _power_d1(a, b, y, g):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0, g * b * np.power(a, b - 1))


def _power_d2(a, b, y, g):
    with np.errstate(divide="ignore", invalid="ignore"):
        log_a = np.log(np.where(a > 0, a, 1))
    return np.where(a > 0, g * y * log_a, 0)


power = _binary("power", np.power, _power_d1, _power_d2,
                doc="x1 ** x2. The gradient in x2 is taken as 0 where x1 <= 0 (log undefined), "
                    "as TensorFlow does.")


def _mod_d2(a, b, y, g):
    return -g * np.floor_divide(a, b)


def _mod(a, b):
    if a.dtype == bool:
        a, b = a.astype(np.int32), b.astype(np.int32)
    return np.mod(a, b)


mod = _binary("mod", _mod, _ones, _mod_d2)
fmod = _binary("fmod", lambda a, b: np.fmod(*(v.astype(np.int32) if v.dtype == bool else v
                                              for v in (a, b))),
               _ones, lambda a, b, y, g: -g * np.trunc(a / b))
floor_divide = _binary("floor_divide", np.floor_divide,
                       doc="x1 // x2 (not differentiable: piecewise constant).")


def _first_wins(compare):
    """Gradients of maximum/minimum: where the two tie the gradient goes to x1
    (TensorFlow's rule)."""
    return (lambda a, b, y, g: np.where(compare(a, b), g, 0),
            lambda a, b, y, g: np.where(compare(a, b), 0, g))


maximum = _binary("maximum", np.maximum, *_first_wins(np.greater_equal),
                  doc="Elementwise maximum (NaN wins); at a tie the gradient goes to x1.")
minimum = _binary("minimum", np.minimum, *_first_wins(np.less_equal),
                  doc="Elementwise minimum (NaN wins); at a tie the gradient goes to x1.")


def _fmax_choice(compare):
    def first(a, b):
        return np.isnan(b) | compare(a, b)
    return (lambda a, b, y, g: np.where(first(a, b), g, 0),
            lambda a, b, y, g: np.where(first(a, b), 0, g))


fmax = _binary("fmax", np.fmax, *_fmax_choice(np.greater_equal),
               doc="Elementwise maximum ignoring NaN.")
fmin = _binary("fmin", np.fmin, *_fmax_choice(np.less_equal),
               doc="Elementwise minimum ignoring NaN.")


def _arctan2_d(which):
    def d(a, b, y, g):
        r2 = a * a + b * b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r2 == 0, 0, g * (b if which == 0 else -a) / np.where(r2 == 0, 1, r2))
    return d


arctan2 = _binary("arctan2", np.arctan2, _arctan2_d(0), _arctan2_d(1), extra=(float,))


def _hypot(a, b):
    out = np.hypot(a, b)
    if out.dtype.kind != "f":
        out = out.astype(np.float64 if out.dtype == np.int64 else backend.floatx())
    return out


def _hypot_d(which):
    def d(a, b, y, g):
        v = a if which == 0 else b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y == 0, 0, g * v / np.where(y == 0, 1, y))
    return d


hypot = _binary("hypot", _hypot, _hypot_d(0), _hypot_d(1))
logaddexp = _binary("logaddexp", np.logaddexp, lambda a, b, y, g: g * np.exp(a - y),
                    lambda a, b, y, g: g * np.exp(b - y), extra=(float,))
logaddexp2 = _binary("logaddexp2", np.logaddexp2, lambda a, b, y, g: g * np.exp2(a - y),
                     lambda a, b, y, g: g * np.exp2(b - y), extra=(float,))


def _heaviside(a, b):
    out = np.heaviside(a, b)
    return out if a.dtype.kind == "f" else out.astype(np.float64 if a.dtype == np.int64
                                                       else backend.floatx())


heaviside = _binary("heaviside", _heaviside)
nextafter = _binary("nextafter", np.nextafter, extra=(float,))
gcd = _binary("gcd", np.gcd)
lcm = _binary("lcm", np.lcm)


@keras_op
def ldexp(x1, x2):
    """x1 * 2**x2 (x2 an integer tensor); differentiable in x1."""
    b = convert(x2)
    if b.dtype.kind not in "iu":
        raise TypeError(f"ldexp: the exponent x2 must be an integer tensor, got dtype {b.dtype}")
    dtype = np.dtype(backend.result_type(dtype_key(x1), b.dtype, float))
    a = convert(x1, dtype)

    def vjp(g, values, out, needs):
        return (reduce_to(g * np.exp2(values[1]).astype(g.dtype), x1) if needs[0] else None,
                None)
    return apply("ldexp", lambda a, b: np.ldexp(a, b).astype(dtype, copy=False), vjp,
                 x1, x2, values=(a, b))


@keras_op
def negative(x):
    return apply("negative", np.negative, lambda g, v, out, needs: (-g,), x,
                 values=(convert(x),))


@keras_op
def absolute(x):
    """|x|; its gradient at 0 is 0 (sign(0))."""
    return apply("absolute", np.absolute, lambda g, v, out, needs: (g * np.sign(v[0]),), x,
                 values=(convert(x),))


abs = absolute  # noqa: A001 - Keras' name


@keras_op
def fabs(x):
    return apply("fabs", np.fabs, lambda g, v, out, needs: (g * np.sign(v[0]),), x,
                 values=(float_value(x),))


@keras_op
def square(x):
    a = convert(x)
    if a.dtype == bool:
        a = a.astype(np.int32)
    return apply("square", np.square, lambda g, v, out, needs: (2 * g * v[0],), x, values=(a,))


@keras_op
def reciprocal(x):
    """1 / x (NumPy's reciprocal: integer inputs stay integers, as in Keras' NumPy backend)."""
    return apply("reciprocal", np.reciprocal, lambda g, v, out, needs: (-g * out * out,), x,
                 values=(convert(x),))


@keras_op
def sqrt(x):
    """Square root; integers compute in floatx. The gradient at 0 is inf, as 1/(2 sqrt(x))."""
    with np.errstate(divide="ignore"):
        return apply("sqrt", np.sqrt, lambda g, v, out, needs: (g / (2 * out),), x,
                     values=(float_value(x),))


def _wide_float_value(x):
    """Keras' rule for cbrt, i0, deg2rad, ...: int64 computes in float64, other integers and
    booleans in floatx."""
    a = convert(x)
    if a.dtype.kind in "fc":
        return a
    return a.astype(np.float64 if a.dtype == np.int64 else backend.floatx())


def _wide_unary(name, forward, derivative):
    def op(x):
        return apply(name, forward, lambda g, v, out, needs: (g * derivative(v[0], out),), x,
                     values=(_wide_float_value(x),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' ops.{name}; int64 input computes in float64, other integers in floatx."
    return keras_op(op)


def _safe_recip(v):
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 / v


exp = _unary("exp", np.exp, lambda x, y: y)
exp2 = _unary("exp2", np.exp2, lambda x, y: y * np.log(2).astype(y.dtype))
expm1 = _unary("expm1", np.expm1, lambda x, y: y + 1)
log = _unary("log", np.log, lambda x, y: _safe_recip(x))
log2 = _unary("log2", np.log2, lambda x, y: _safe_recip(x * np.log(2).astype(x.dtype)))
log10 = _unary("log10", np.log10, lambda x, y: _safe_recip(x * np.log(10).astype(x.dtype)))
log1p = _unary("log1p", np.log1p, lambda x, y: _safe_recip(1 + x))
sin = _unary("sin", np.sin, lambda x, y: np.cos(x))
cos = _unary("cos", np.cos, lambda x, y: -np.sin(x))
tan = _unary("tan", np.tan, lambda x, y: 1 + y * y)
arcsin = _unary("arcsin", np.arcsin, lambda x, y: _safe_recip(np.sqrt(1 - x * x)))
arccos = _unary("arccos", np.arccos, lambda x, y: -_safe_recip(np.sqrt(1 - x * x)))
arctan = _unary("arctan", np.arctan, lambda x, y: 1 / (1 + x * x))
sinh = _unary("sinh", np.sinh, lambda x, y: np.cosh(x))
cosh = _unary("cosh", np.cosh, lambda x, y: np.sinh(x))
tanh = _unary("tanh", np.tanh, lambda x, y: 1 - y * y)
arcsinh = _unary("arcsinh", np.arcsinh, lambda x, y: 1 / np.sqrt(x * x + 1))
arccosh = _unary("arccosh", np.arccosh, lambda x, y: _safe_recip(np.sqrt(x * x - 1)))
arctanh = _unary("arctanh", np.arctanh, lambda x, y: _safe_recip(1 - x * x))


def _sinc_derivative(x, y):
    px = np.pi * x
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (np.cos(px) - y) / x
    return np.where(x == 0, 0, d).astype(y.dtype, copy=False)


sinc = _unary("sinc", np.sinc, _sinc_derivative)
cbrt = _wide_unary("cbrt", np.cbrt, lambda x, y: _safe_recip(3 * y * y))
deg2rad = _wide_unary("deg2rad", np.deg2rad, lambda x, y: np.asarray(np.pi / 180, y.dtype))
rad2deg = _wide_unary("rad2deg", np.rad2deg, lambda x, y: np.asarray(180 / np.pi, y.dtype))


def _i1(x):
    from scipy import special
    return special.i1(x).astype(x.dtype, copy=False)


i0 = _wide_unary("i0", np.i0, lambda x, y: _i1(x))


@keras_op
def sign(x):
    """-1, 0 or 1 (not differentiable: piecewise constant)."""
    return _not_differentiable("sign", np.sign, x, values=(convert(x),))


def _floor_like(name, fn):
    def op(x):
        a = convert(x)
        if a.dtype.kind not in "fc":
            a = a.astype(backend.floatx())
        return _not_differentiable(name, fn, x, values=(a,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Keras' ops.{name}; integers give floatx. Not differentiable (piecewise "
                  f"constant).")
    return keras_op(op)


floor = _floor_like("floor", np.floor)
ceil = _floor_like("ceil", np.ceil)


@keras_op
def trunc(x):
    """x rounded toward zero; integers are returned as they are. Not differentiable."""
    a = convert(x)
    return _not_differentiable("trunc", (lambda v: v) if a.dtype.kind in "biu" else np.trunc,
                               x, values=(a,))


@keras_op
def round(x, decimals=0):  # noqa: A001 - Keras' name
    """x rounded half to even at `decimals`. Not differentiable (piecewise constant)."""
    return _not_differentiable("round", lambda a: np.round(a, decimals), x, values=(convert(x),))


@keras_op
def clip(x, x_min, x_max):
    """x limited to [x_min, x_max] (booleans clip as int32); the gradient passes where x is
    inside the interval, ends included."""
    a = convert(x)
    if a.dtype == bool:
        a = a.astype(np.int32)
    lo, hi = value_of(x_min), value_of(x_max)

    def vjp(g, values, out, needs):
        v = values[0]
        return (np.where((v >= lo) & (v <= hi), g, 0).astype(g.dtype, copy=False),)
    return apply("clip", lambda v: np.clip(v, lo, hi).astype(v.dtype, copy=False), vjp, x,
                 values=(a,))


@keras_op
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN and infinities replaced by numbers; the gradient flows only where x was finite."""
    return apply("nan_to_num", lambda a: np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf),
                 lambda g, v, out, needs: (np.where(np.isfinite(v[0]), g, 0),), x,
                 values=(convert(x),))


@keras_op
def copy(x):
    return apply("copy", np.copy, lambda g, v, out, needs: (g,), x, values=(convert(x),))


@keras_op
def real(x):
    return apply("real", np.real, lambda g, v, out, needs: (g,), x, values=(convert(x),))


@keras_op
def imag(x):
    return _not_differentiable("imag", np.imag, x, values=(convert(x),))


@keras_op
def conjugate(x):
    return apply("conjugate", np.conjugate, lambda g, v, out, needs: (np.conjugate(g),), x,
                 values=(convert(x),))


conj = conjugate


@keras_op
def angle(x):
    """The complex argument; of a real tensor, 0 or pi (not differentiable)."""
    a = convert(x)
    if a.dtype.kind not in "fc":
        a = a.astype(backend.floatx() if a.dtype == np.int64 else
                     backend.result_type(a.dtype, float))
    return _not_differentiable("angle", np.angle, x, values=(a,))


def _predicate(name, fn, doc):
    def op(x):
        return _not_differentiable(name, fn, x, values=(convert(x),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return keras_op(op)


isnan = _predicate("isnan", np.isnan, "Where x is NaN (a boolean tensor).")
isinf = _predicate("isinf", np.isinf, "Where x is infinite (a boolean tensor).")
isfinite = _predicate("isfinite", np.isfinite, "Where x is finite (a boolean tensor).")
isneginf = _predicate("isneginf", np.isneginf, "Where x is -inf (a boolean tensor).")
isposinf = _predicate("isposinf", np.isposinf, "Where x is +inf (a boolean tensor).")
isreal = _predicate("isreal", np.isreal, "Where x has no imaginary part (a boolean tensor).")
signbit = _predicate("signbit", np.signbit, "Where x's sign bit is set (a boolean tensor).")
logical_not = _predicate("logical_not", np.logical_not, "not x, elementwise (boolean).")
bitwise_invert = _predicate("bitwise_invert", np.bitwise_not, "~x on integer tensors.")
bitwise_not = bitwise_invert


def _compare(name, fn):
    def op(x1, x2):
        return _not_differentiable(name, fn, x1, x2, values=promote(x1, x2))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' ops.{name}: a boolean tensor (not differentiable)."
    return keras_op(op)


equal = _compare("equal", np.equal)
not_equal = _compare("not_equal", np.not_equal)
less = _compare("less", np.less)
less_equal = _compare("less_equal", np.less_equal)
greater = _compare("greater", np.greater)
greater_equal = _compare("greater_equal", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)
logical_xor = _compare("logical_xor", np.logical_xor)
bitwise_and = _compare("bitwise_and", np.bitwise_and)
bitwise_or = _compare("bitwise_or", np.bitwise_or)
bitwise_xor = _compare("bitwise_xor", np.bitwise_xor)


def _shift(name, fn):
    def op(x, y):
        if isinstance(y, int) and not isinstance(y, bool):
            a, b = convert(x), y
        else:
            a, b = promote(x, y)
        return _not_differentiable(name, fn, x, y, values=(a, b))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' ops.{name} on integer tensors."
    return keras_op(op)


bitwise_left_shift = _shift("bitwise_left_shift", np.left_shift)
left_shift = _shift("left_shift", np.left_shift)
bitwise_right_shift = _shift("bitwise_right_shift", np.right_shift)
right_shift = _shift("right_shift", np.right_shift)


@keras_op
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    a, b = promote(x1, x2)
    return _not_differentiable("isclose", lambda a, b: np.isclose(a, b, rtol, atol, equal_nan),
                               x1, x2, values=(a, b))


@keras_op
def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Whether every element is close (a boolean scalar)."""
    return np.allclose(convert(x1), convert(x2), rtol=rtol, atol=atol, equal_nan=equal_nan)


@keras_op
def isin(x1, x2, assume_unique=False, invert=False):
    return _not_differentiable(
        "isin", lambda a, b: np.isin(a, b, assume_unique=assume_unique, invert=invert),
        x1, x2, values=(convert(x1), convert(x2)))


# ----------------------------------------------------------------------------- reductions

def _sum_dtype(dtype):
    """Keras' (JAX's) accumulator for sums and products: small integers and booleans widen."""
    name = np.dtype(dtype).name
    if name in ("bool", "int8", "int16"):
        return np.dtype(np.int32)
    if name in ("uint8", "uint16"):
        return np.dtype(np.uint32)
    return np.dtype(dtype)


@keras_op
def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    """Sum over `axis` (all axes by default); booleans and small integers sum as int32."""
    a = convert(x)
    dtype = _sum_dtype(a.dtype)
    axis = numpy_axis(axis)

    def vjp(g, values, out, needs):
        return (broadcast_back(g, values[0].shape, axis, keepdims),)
    return apply("sum", lambda v: np.asarray(np.sum(v, axis=axis, keepdims=keepdims))
                 .astype(dtype, copy=False), vjp, x, values=(a,))


@keras_op
def nansum(x, axis=None, keepdims=False):
    """Sum ignoring NaN (no gradient reaches the NaN entries)."""
    a = convert(x)
    dtype = _sum_dtype(a.dtype)
    axis = numpy_axis(axis)

    def vjp(g, values, out, needs):
        v = values[0]
        return (np.where(np.isnan(v), 0, broadcast_back(g, v.shape, axis, keepdims)),)
    return apply("nansum", lambda v: np.asarray(np.nansum(v, axis=axis, keepdims=keepdims))
                 .astype(dtype, copy=False), vjp, x, values=(a,))


def _count(shape, axis):
    return int(np.prod([shape[i] for i in axes_of(axis, len(shape))], dtype=np.int64))


def _mean_value(x):
    """Keras' mean dtype: integers and booleans average in float32 (result_type with it)."""
    a = convert(x)
    if a.dtype.kind in "biu":
        a = a.astype(backend.result_type(a.dtype, "float32"))
    return a


@keras_op
def mean(x, axis=None, keepdims=False):
    """Mean over `axis`; integers and booleans average to float32, as Keras."""
    axis = numpy_axis(axis)

    def vjp(g, values, out, needs):
        shape = values[0].shape
        return (broadcast_back(g, shape, axis, keepdims) / g.dtype.type(_builtin_max(
            _count(shape, axis), 1)),)
    return apply("mean", lambda v: np.asarray(np.mean(v, axis=axis, keepdims=keepdims))
                 .astype(v.dtype, copy=False), vjp, x, values=(_mean_value(x),))


@keras_op
def nanmean(x, axis=None, keepdims=False):
    """Mean ignoring NaN; each non-NaN entry gets 1/count of the gradient."""
    a = float_value(x)
    axis = numpy_axis(axis)

    def vjp(g, values, out, needs):
        v = values[0]
        valid = ~np.isnan(v)
        count = np.sum(valid, axis=axis, keepdims=True)
        grad = expand_reduced(g, v.shape, axis, keepdims) / np.maximum(count, 1)
        return (np.where(valid, grad, 0).astype(g.dtype, copy=False),)
    return apply("nanmean", lambda v: np.asarray(np.nanmean(v, axis=axis, keepdims=keepdims))
                 .astype(v.dtype, copy=False), vjp, x, values=(a,))


def _extreme(name, fn, nan_aware=False):
    def op(x, axis=None, keepdims=False, initial=None):
        a = convert(x)
        axis_ = numpy_axis(axis)
        kwargs = {} if initial is None else {"initial": initial}

        def vjp(g, values, out, needs):
            v = values[0]
            winners = v == expand_reduced(out, v.shape, axis_, keepdims)
            if not nan_aware:
                winners |= np.isnan(v) & np.isnan(expand_reduced(out, v.shape, axis_, keepdims))
            # Ties share the gradient equally (TensorFlow's rule for reduce_max).
            count = np.sum(winners, axis=axis_, keepdims=True)
            grad = expand_reduced(g, v.shape, axis_, keepdims) / np.maximum(count, 1)
            return (np.where(winners, grad, 0).astype(g.dtype, copy=False),)
        return apply(name, lambda v: fn(v, axis=axis_, keepdims=keepdims, **kwargs), vjp, x,
                     values=(a,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"Keras' ops.{name} over `axis`; tied entries share the gradient equally "
                  f"(TensorFlow's rule).")
    return keras_op(op)


max = _extreme("max", np.max)  # noqa: A001 - Keras' name
min = _extreme("min", np.min)  # noqa: A001 - Keras' name


@keras_op
def amax(x, axis=None, keepdims=False):
    return max(x, axis=axis, keepdims=keepdims)


@keras_op
def amin(x, axis=None, keepdims=False):
    return min(x, axis=axis, keepdims=keepdims)


def _nan_extreme(name, fn):
    inner = _extreme(name, lambda v, axis, keepdims: fn(v, axis=axis, keepdims=keepdims),
                     nan_aware=True)

    def op(x, axis=None, keepdims=False):
        return inner(x, axis=axis, keepdims=keepdims)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' ops.{name}: the extreme ignoring NaN."
    return keras_op(op)


nanmax = _nan_extreme("nanmax", np.nanmax)
nanmin = _nan_extreme("nanmin", np.nanmin)


@keras_op
def ptp(x, axis=None, keepdims=False):
    """max - min over `axis`."""
    return subtract(max(x, axis=axis, keepdims=keepdims), min(x, axis=axis, keepdims=keepdims))


def _product_vjp(g, v, out, axis, keepdims):
    """The gradient of a product: the product of the other entries, exact with zeros (one
    zero: only it gets a gradient; two or more: none does)."""
    zero = v == 0
    zeros = np.sum(zero, axis=axis, keepdims=True)
    nonzero_product = np.prod(np.where(zero, 1, v), axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        others = np.where(zero, np.where(zeros == 1, nonzero_product, 0),
                          np.where(zeros == 0, nonzero_product / np.where(zero, 1, v), 0))
    return (expand_reduced(g, v.shape, axis, keepdims) * others).astype(g.dtype, copy=False)


@keras_op
def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over `axis`; small integers and booleans multiply as int32 unless `dtype`."""
    a = convert(x)
    out_dtype = optional_dtype(dtype) or _sum_dtype(a.dtype)
    axis = numpy_axis(axis)

    def vjp(g, values, out, needs):
        return (_product_vjp(g, values[0], out, axis, keepdims),)
    return apply("prod", lambda v: np.asarray(np.prod(v, axis=axis, keepdims=keepdims,
                                                      dtype=out_dtype)), vjp, x, values=(a,))


@keras_op
def nanprod(x, axis=None, keepdims=False):
    a = convert(x)
    out_dtype = _sum_dtype(a.dtype)
    axis = numpy_axis(axis)

    def vjp(g, values, out, needs):
        v = values[0]
        grad = _product_vjp(g, np.where(np.isnan(v), 1, v), out, axis, keepdims)
        return (np.where(np.isnan(v), 0, grad),)
    return apply("nanprod", lambda v: np.asarray(np.nanprod(v, axis=axis, keepdims=keepdims,
                                                            dtype=out_dtype)), vjp, x, values=(a,))


@keras_op
def var(x, axis=None, keepdims=False):
    """The biased variance over `axis` (NumPy's two-pass formula); integers give float32."""
    centred = subtract(_mean_input(x), mean(x, axis=axis, keepdims=True))
    return mean(square(centred), axis=axis, keepdims=keepdims)


def _mean_input(x):
    a = convert(x)
    if a.dtype.kind in "biu":
        from .core import cast
        return cast(x, backend.result_type(a.dtype, "float32"))
    return x


@keras_op
def std(x, axis=None, keepdims=False):
    """The biased standard deviation over `axis`; its gradient is infinite where it is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return sqrt(var(x, axis=axis, keepdims=keepdims))


@keras_op
def nanvar(x, axis=None, keepdims=False):
    """The variance ignoring NaN entries."""
    valid = logical_not(isnan(x))
    filled = where(valid, x, 0)
    count = sum(valid, axis=axis, keepdims=True)
    centre = divide(sum(filled, axis=axis, keepdims=True), count)
    deviations = where(valid, subtract(filled, centre), 0)
    out = divide(sum(square(deviations), axis=axis, keepdims=True), count)
    return out if keepdims else squeeze(out, axis=axis) if axis is not None else reshape(out, ())


@keras_op
def nanstd(x, axis=None, keepdims=False):
    with np.errstate(divide="ignore", invalid="ignore"):
        return sqrt(nanvar(x, axis=axis, keepdims=keepdims))


@keras_op
def average(x, axis=None, weights=None):
    """The mean of x over `axis` weighted by `weights` (NumPy's rules: 1-D weights run along
    `axis`); differentiable in x and the weights."""
    if weights is None:
        return mean(_cast_to_result(x, float), axis=axis)
    w = weights
    x_ndim, w_ndim = len(_shape(x)), len(_shape(weights))
    if axis is not None and w_ndim == 1 and x_ndim > 1:
        shape = [1] * x_ndim
        shape[axis] = -1
        w = reshape(weights, shape)
    dtype = backend.result_type(dtype_key(x), float, dtype_key(weights))
    from .core import cast
    x, w = cast(x, dtype), cast(w, dtype)
    return divide(sum(multiply(x, w), axis=axis), sum(multiply(ones_like(x), w), axis=axis))


def _cast_to_result(x, *extra):
    """x cast to Keras' result type of its dtype and `extra` (a traced value stays traced)."""
    from .core import cast
    dtype = backend.result_type(dtype_key(x), *extra)
    return cast(x, dtype) if np.dtype(dtype) != convert(x).dtype else x


def _scan_axis(a, axis):
    """(array, axis) for a cumulative op: axis None runs over the flattened array."""
    return (a.reshape(-1), 0) if axis is None else (a, axis)


def _cumulative_dtype(a, dtype):
    dtype = np.dtype(backend.result_type(dtype or a.dtype))
    return np.dtype(np.int32) if dtype == bool else dtype


@keras_op
def cumsum(x, axis=None, dtype=None):
    """Cumulative sum along `axis` (the flattened tensor for None)."""
    a = convert(x)
    out_dtype = _cumulative_dtype(a, dtype)

    def vjp(g, values, out, needs):
        gg, ax = _scan_axis(g, axis)
        grad = np.flip(np.cumsum(np.flip(gg, ax), axis=ax), ax)
        return (grad.reshape(values[0].shape),)
    return apply("cumsum", lambda v: np.cumsum(v, axis=axis, dtype=out_dtype), vjp, x,
                 values=(a,))


@keras_op
def cumprod(x, axis=None, dtype=None):
    """Cumulative product along `axis`; the gradient is exact with zeros."""
    a = convert(x)
    out_dtype = _cumulative_dtype(a, dtype)

    def vjp(g, values, out, needs):
        v, ax = _scan_axis(values[0], axis)
        gg, _ = _scan_axis(g, axis)
        y, _ = _scan_axis(out, axis)
        if not np.any(v == 0):
            grad = np.flip(np.cumsum(np.flip(gg * y, ax), axis=ax), ax) / v
        else:
            # d y_j / d v_i is the product of v_0..v_j without v_i: recompute it with v_i = 1.
            grad = np.zeros(v.shape, dtype=g.dtype)
            moved, g_moved = np.moveaxis(v, ax, -1), np.moveaxis(gg, ax, -1)
            out_moved = np.moveaxis(grad, ax, -1)
            for i in range(moved.shape[-1]):
                without = moved.copy()
                without[..., i] = 1
                partial = np.cumprod(without, axis=-1)
                out_moved[..., i] = np.sum((g_moved * partial)[..., i:], axis=-1)
        return (grad.reshape(values[0].shape).astype(g.dtype, copy=False),)
    return apply("cumprod", lambda v: np.cumprod(v, axis=axis, dtype=out_dtype), vjp, x,
                 values=(a,))


@keras_op
def nancumsum(x, axis=None, dtype=None):
    return cumsum(where(isnan(x), 0, x), axis=axis, dtype=dtype)


@keras_op
def nancumprod(x, axis=None, dtype=None):
    return cumprod(where(isnan(x), 1, x), axis=axis, dtype=dtype)


def _arg_reduce(name, fn, nan_fn=None):
    def op(x, axis=None, keepdims=False):
        a = convert(x)

        def compute(v):
            if nan_fn is not None and v.dtype.kind == "f":
                nan = np.isnan(v)
                filled = np.where(nan, -np.inf if name == "nanargmax" else np.inf, v)
                return np.where(np.all(nan, axis=axis, keepdims=keepdims), -1,
                                fn(filled, axis=axis, keepdims=keepdims)).astype(np.int32)
            if v.dtype.kind == "f" and v.ndim:
                # -0.0 ranks below +0.0, as in Keras.
                v = np.where((v == 0) & np.signbit(v), -np.finfo(v.dtype).tiny, v)
            return np.asarray(fn(v, axis=axis, keepdims=keepdims)).astype(np.int32)
        return _not_differentiable(name, compute, x, values=(a,))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' ops.{name}: int32 indices (not differentiable)."
    return keras_op(op)


argmax = _arg_reduce("argmax", np.argmax)
argmin = _arg_reduce("argmin", np.argmin)
nanargmax = _arg_reduce("nanargmax", np.argmax, nan_fn=True)
nanargmin = _arg_reduce("nanargmin", np.argmin, nan_fn=True)


def _bool_reduce(name, fn):
    def op(x, axis=None, keepdims=False):
        return _not_differentiable(name, lambda v: np.asarray(fn(v, axis=numpy_axis(axis),
                                                                 keepdims=keepdims)),
                                   x, values=(convert(x),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Keras' ops.{name}: a boolean reduction over `axis`."
    return keras_op(op)


all = _bool_reduce("all", np.all)  # noqa: A001 - Keras' name
any = _bool_reduce("any", np.any)  # noqa: A001 - Keras' name


@keras_op
def count_nonzero(x, axis=None):
    return _not_differentiable(
        "count_nonzero", lambda v: np.asarray(np.count_nonzero(v, axis=numpy_axis(axis)))
        .astype(np.int32), x, values=(convert(x),))


# ----------------------------------------------------------------------------- shapes

def _reshaping(name, x, forward):
    """An op that only changes x's shape: its gradient is reshaped back."""
    a = convert(x)
    return apply(name, forward, lambda g, v, out, needs: (np.reshape(g, v[0].shape),), x,
                 values=(a,))


@keras_op
def reshape(x, newshape):
    """x with a new shape (one entry may be -1)."""
    newshape = tuple(newshape) if isinstance(newshape, (list, tuple)) else newshape
    return _reshaping("reshape", x, lambda a: np.reshape(a, newshape))


@keras_op
def ravel(x):
    return _reshaping("ravel", x, np.ravel)


@keras_op
def expand_dims(x, axis):
    return _reshaping("expand_dims", x, lambda a: np.expand_dims(a, numpy_axis(axis)))


@keras_op
def squeeze(x, axis=None):
    return _reshaping("squeeze", x, lambda a: np.squeeze(a, axis=numpy_axis(axis)))


@keras_op
def transpose(x, axes=None):
    axes = None if axes is None else tuple(axes)

    def vjp(g, values, out, needs):
        return (np.transpose(g, None if axes is None else np.argsort(axes)),)
    return apply("transpose", lambda a: np.transpose(a, axes), vjp, x, values=(convert(x),))


@keras_op
def moveaxis(x, source, destination):
    return apply("moveaxis", lambda a: np.moveaxis(a, source, destination),
                 lambda g, v, out, needs: (np.moveaxis(g, destination, source),), x,
                 values=(convert(x),))


@keras_op
def swapaxes(x, axis1, axis2):
    return apply("swapaxes", lambda a: np.swapaxes(a, axis1, axis2),
                 lambda g, v, out, needs: (np.swapaxes(g, axis1, axis2),), x,
                 values=(convert(x),))


@keras_op
def broadcast_to(x, shape):
    """x broadcast to `shape`; the gradient is summed back over the broadcast axes."""
    shape = tuple(shape)
    return apply("broadcast_to", lambda a: np.broadcast_to(a, shape),
                 lambda g, v, out, needs: (reduce_to(g, x),), x, values=(convert(x),))


def _promote_all(xs):
    if len({np.dtype(d) if not isinstance(d, type) else d
            for d in (dtype_key(x) for x in xs)}) <= 1:
        return tuple(convert(x) for x in xs)
    return promote(*xs)


@keras_op
def concatenate(xs, axis=0):
    """The tensors of `xs` joined along `axis` (promoted to their Keras result dtype)."""
    xs = list(xs)
    values = _promote_all(xs)

    def vjp(g, values, out, needs):
        if axis is None:
            cuts = np.cumsum([v.size for v in values])[:-1]
            return tuple(p.reshape(v.shape) for p, v in zip(np.split(g, cuts), values))
        cuts = np.cumsum([v.shape[axis] for v in values])[:-1]
        return tuple(np.split(g, cuts, axis=axis))
    return apply("concatenate", lambda *vs: np.concatenate(vs, axis=axis), vjp, *xs,
                 values=values)


@keras_op
def stack(x, axis=0):
    """The tensors of `x` stacked along a new `axis`."""
    xs = list(x)
    values = _promote_all(xs)

    def vjp(g, values, out, needs):
        return tuple(np.take(g, i, axis=axis) for i in range(len(values)))
    return apply("stack", lambda *vs: np.stack(vs, axis=axis), vjp, *xs, values=values)


def _at_least(x, ndim, where_1d):
    shape = _shape(x)
    if len(shape) >= ndim:
        return x
    if len(shape) == 0:
        return reshape(x, (1,) * ndim)
    return reshape(x, where_1d(shape))


@keras_op
def hstack(xs):
    xs = [_at_least(x, 1, tuple) for x in xs]
    return concatenate(xs, axis=0 if len(_shape(xs[0])) == 1 else 1)


@keras_op
def vstack(xs):
    return concatenate([_at_least(x, 2, lambda s: (1,) + s) for x in xs], axis=0)


@keras_op
def dstack(xs):
    def three(s):
        return (1,) + s + (1,) if len(s) == 1 else s + (1,)
    return concatenate([_at_least(x, 3, three) for x in xs], axis=2)


@keras_op
def column_stack(xs):
    return concatenate([reshape(x, (-1, 1)) if len(_shape(x)) < 2 else x for x in xs], axis=1)


@keras_op
def append(x1, x2, axis=None):
    if axis is None:
        return concatenate([ravel(x1), ravel(x2)], axis=0)
    return concatenate([x1, x2], axis=axis)


def _split(name, x, sections, axis, numpy_fn):
    def vjp(g, values, out, needs):
        grads = g if isinstance(g, list) else [g]
        parts = [np.zeros(o.shape, o.dtype) if gi is None else gi for gi, o in zip(grads, out)]
        return (np.concatenate(parts, axis=axis),)
    return list(apply(name, lambda v: tuple(numpy_fn(v, sections, axis=axis)), vjp, x,
                      values=(convert(x),)))


@keras_op
def split(x, indices_or_sections, axis=0):
    """x split along `axis` into equal sections or at the given indices (a list)."""
    return _split("split", x, _sections(indices_or_sections), axis, np.split)


@keras_op
def array_split(x, indices_or_sections, axis=0):
    return _split("array_split", x, _sections(indices_or_sections), axis, np.array_split)


def _sections(indices_or_sections):
    value = value_of(indices_or_sections)
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else int(value)


@keras_op
def hsplit(x, indices_or_sections):
    return _split("hsplit", x, _sections(indices_or_sections),
                  0 if len(_shape(x)) == 1 else 1, np.split)


@keras_op
def vsplit(x, indices_or_sections):
    return _split("vsplit", x, _sections(indices_or_sections), 0, np.split)


@keras_op
def dsplit(x, indices_or_sections):
    return _split("dsplit", x, _sections(indices_or_sections), 2, np.split)


@keras_op
def tile(x, repeats):
    repeats = value_of(repeats)
    return _rearranging("tile", x, lambda a: np.tile(a, repeats))


@keras_op
def repeat(x, repeats, axis=None):
    repeats = value_of(repeats)
    return _rearranging("repeat", x, lambda a: np.repeat(a, repeats, axis=axis))


@keras_op
def flip(x, axis=None):
    axis = numpy_axis(axis)
    return apply("flip", lambda a: np.flip(a, axis=axis),
                 lambda g, v, out, needs: (np.flip(g, axis=axis),), x, values=(convert(x),))


@keras_op
def fliplr(x):
    return flip(x, axis=1)


@keras_op
def flipud(x):
    return flip(x, axis=0)


@keras_op
def rot90(array, k=1, axes=(0, 1)):
    """`array` rotated by 90 degrees k times in the plane of `axes`."""
    if len(_shape(array)) < 2:
        raise ValueError(f"rot90: the input must have at least 2 dimensions, got shape "
                         f"{_shape(array)}")
    axes = tuple(axes)
    if len(axes) != 2 or axes[0] == axes[1]:
        raise ValueError(f"rot90: axes must be two different axes, got {axes}")
    return apply("rot90", lambda a: np.rot90(a, k=k, axes=axes),
                 lambda g, v, out, needs: (np.rot90(g, k=-k, axes=axes),), array,
                 values=(convert(array),))


@keras_op
def roll(x, shift, axis=None):
    shift, axis = value_of(shift), numpy_axis(axis)
    negative_shift = tuple(-int(s) for s in shift) if isinstance(shift, (list, tuple)) \
        else -np.asarray(shift)
    return apply("roll", lambda a: np.roll(a, shift, axis=axis),
                 lambda g, v, out, needs: (np.roll(g, negative_shift, axis=axis),), x,
                 values=(convert(x),))


@keras_op
def pad(x, pad_width, mode="constant", constant_values=None):
    """x padded (NumPy's modes); the gradient of every mode adds back what was copied."""
    if constant_values is not None and mode != "constant":
        raise ValueError(f"pad: constant_values can only be given with mode='constant', got "
                         f"mode={mode!r}")
    pad_width = value_of(pad_width)
    kwargs = {} if constant_values is None else {"constant_values": value_of(constant_values)}
    trace_kwargs = {"constant_values": 0} if mode == "constant" else {}
    return _rearranging("pad", x, lambda a: np.pad(a, pad_width, mode=mode, **kwargs),
                        lambda i: np.pad(i, pad_width, mode=mode, **trace_kwargs))


def _indices(indices):
    indices = convert(indices)
    if indices.dtype.kind == "f":
        indices = indices.astype(np.int64)
    return indices


@keras_op
def take(x, indices, axis=None):
    """Elements of x at integer `indices` along `axis` (the flattened x for None); negative
    indices count from the end. Differentiable in x."""
    idx = _indices(indices)
    a = convert(x)
    gather = _gather_vjp(lambda i: np.take(i, idx, axis=axis), a.shape)
    return apply("take", lambda v, i: np.take(v, i, axis=axis),
                 lambda g, values, out, needs: (gather(g), None), x, indices, values=(a, idx))


@keras_op
def take_along_axis(x, indices, axis=None):
    idx = _indices(indices)
    a = convert(x)
    gather = _gather_vjp(lambda i: np.take_along_axis(i, idx, axis=axis), a.shape)
    return apply("take_along_axis", lambda v, i: np.take_along_axis(v, i, axis=axis),
                 lambda g, values, out, needs: (gather(g), None), x, indices, values=(a, idx))


def _index_value(key):
    """An index with tensors replaced by their arrays (indices are constants)."""
    if isinstance(key, tuple):
        return tuple(_index_value(k) for k in key)
    if isinstance(key, list) and builtins.any(hasattr(k, "value") for k in key):
        return [_index_value(k) for k in key]
    if isinstance(key, (slice, type(Ellipsis))) or key is None:
        return key
    value = value_of(key)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        raise IndexError(f"get_item: indices must be integers or booleans, got dtype "
                         f"{value.dtype}")
    return value


def _is_basic(key):
    parts = key if isinstance(key, tuple) else (key,)
    return builtins.all(isinstance(k, (int, np.integer, slice, type(Ellipsis))) or k is None
                        for k in parts if not isinstance(k, bool))


@keras_op
def get_item(x, key):
    """x[key] (NumPy's indexing); the gradient scatters back, adding where an index
    repeats."""
    key = _index_value(key)
    a = convert(x)

    def vjp(g, values, out, needs):
        grad = np.zeros(a.shape, dtype=g.dtype)
        if _is_basic(key):
            grad[key] = g
        else:
            np.add.at(grad, key, g)
        return (grad,)
    return apply("get_item", lambda v: v[key], vjp, x, values=(a,))


getitem = get_item


@keras_op
def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2 (promoted to their Keras result dtype); with one
    argument, the indices where it holds (as np.nonzero)."""
    if x1 is None and x2 is None:
        return _not_differentiable("where", lambda c: np.where(c), condition,
                                   values=(convert(condition),))
    if x1 is None or x2 is None:
        raise ValueError("where: give both x1 and x2, or neither")
    cond = convert(condition).astype(bool, copy=False)
    a, b = promote(x1, x2)

    def vjp(g, values, out, needs):
        return (None, reduce_to(np.where(cond, g, 0), x1) if needs[1] else None,
                reduce_to(np.where(cond, 0, g), x2) if needs[2] else None)
    return apply("where", np.where, vjp, condition, x1, x2, values=(cond, a, b))


@keras_op
def select(condlist, choicelist, default=0):
    """The choice of the first condition that holds at each element, else `default`."""
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: condlist has {len(condlist)} entries and choicelist "
                         f"{len(choicelist)}; they must match")
    if not condlist:
        raise ValueError("select: condlist must not be empty")
    result = default
    for cond, choice in zip(reversed(list(condlist)), reversed(list(choicelist))):
        result = where(cond, choice, result)
    return result


@keras_op
def tril(x, k=0):
    return apply("tril", lambda a: np.tril(a, k=k), lambda g, v, out, needs: (np.tril(g, k=k),),
                 x, values=(convert(x),))


@keras_op
def triu(x, k=0):
    return apply("triu", lambda a: np.triu(a, k=k), lambda g, v, out, needs: (np.triu(g, k=k),),
                 x, values=(convert(x),))


@keras_op
def diag(x, k=0):
    """The k-th diagonal of a matrix, or a matrix with a vector on its k-th diagonal."""
    return _rearranging("diag", x, lambda a: np.diag(a, k=k))


@keras_op
def diagflat(x, k=0):
    return _rearranging("diagflat", x, lambda a: np.diagflat(a, k=k))


@keras_op
def diagonal(x, offset=0, axis1=0, axis2=1):
    return _rearranging("diagonal", x,
                        lambda a: np.diagonal(a, offset=offset, axis1=axis1, axis2=axis2))


@keras_op
def trace(x, offset=0, axis1=0, axis2=1):
    """The sum of the offset diagonal; booleans and small integers sum as int32."""
    return sum(diagonal(x, offset=offset, axis1=axis1, axis2=axis2), axis=-1)


@keras_op
def meshgrid(*x, indexing="xy"):
    """Coordinate grids from 1-D tensors (NumPy's meshgrid), differentiable in each."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    sizes = [int(np.size(value_of(v))) for v in x]
    order = list(range(len(x)))
    if indexing == "xy" and len(x) >= 2:
        order[0], order[1] = 1, 0
    shape = [0] * len(x)
    for i, axis in enumerate(order):
        shape[axis] = sizes[i]
    grids = []
    for i, v in enumerate(x):
        view = [1] * len(x)
        view[order[i]] = sizes[i]
        grids.append(broadcast_to(reshape(v, view), shape))
    return grids


@keras_op
def sort(x, axis=-1):
    """x sorted along `axis` (the flattened x for None); the gradient follows each element."""
    a = convert(x)

    def vjp(g, values, out, needs):
        v = values[0].reshape(-1) if axis is None else values[0]
        order = np.argsort(v, axis=-1 if axis is None else axis, kind="stable")
        grad = np.zeros(v.shape, dtype=g.dtype)
        np.put_along_axis(grad, order, g, axis=-1 if axis is None else axis)
        return (grad.reshape(values[0].shape),)
    return apply("sort", lambda v: np.sort(v, axis=axis, kind="stable"), vjp, x, values=(a,))


@keras_op
def argsort(x, axis=-1):
    return _not_differentiable("argsort", lambda v: np.argsort(v, axis=axis, kind="stable")
                               .astype(np.int32), x, values=(convert(x),))


@keras_op
def argpartition(x, kth, axis=-1):
    return _not_differentiable("argpartition", lambda v: np.argpartition(v, kth, axis)
                               .astype(np.int32), x, values=(convert(x),))


@keras_op
def unique(x, sorted=True, return_index=False, return_inverse=False,  # noqa: A002
           return_counts=False, axis=None, size=None, fill_value=None):
    """The unique values of x (always sorted, as NumPy), optionally padded or cut to `size`.
    Not differentiable."""
    def compute(v):
        output = np.unique(v, return_index=return_index, return_inverse=return_inverse,
                           return_counts=return_counts, axis=axis)
        output = list(output) if isinstance(output, tuple) else [output]
        if size is not None:
            dim = 0 if axis is None else axis % v.ndim
            values, count = output[0], output[0].shape[dim]
            if count > size:
                output[0] = np.take(values, np.arange(size), axis=dim)
                if return_index:
                    output[1] = output[1][:size]
                if return_counts:
                    output[-1] = output[-1][:size]
            elif count < size:
                widths = [(0, 0)] * values.ndim
                widths[dim] = (0, size - count)
                output[0] = np.pad(values, widths,
                                   constant_values=0 if fill_value is None else fill_value)
                if return_index:
                    output[1] = np.pad(output[1], (0, size - count), constant_values=1)
                if return_counts:
                    output[-1] = np.pad(output[-1], (0, size - count))
        return output[0] if len(output) == 1 else tuple(output)
    return _not_differentiable("unique", compute, x, values=(convert(x),))


@keras_op
def nonzero(x):
    return _not_differentiable("nonzero", lambda v: tuple(i.astype(np.int32)
                                                          for i in np.nonzero(v)),
                               x, values=(convert(x),))


@keras_op
def searchsorted(sorted_sequence, values, side="left"):
    if len(_shape(sorted_sequence)) != 1:
        raise ValueError(f"searchsorted: sorted_sequence must be 1-D, got shape "
                         f"{_shape(sorted_sequence)}")
    return _not_differentiable(
        "searchsorted", lambda s, v: np.searchsorted(s, v, side=side).astype(np.int32),
        sorted_sequence, values, values=(convert(sorted_sequence), convert(values)))


@keras_op
def digitize(x, bins):
    return _not_differentiable("digitize", lambda v, b: np.digitize(v, b).astype(np.int32),
                               x, bins, values=(convert(x), convert(bins)))


@keras_op
def bincount(x, weights=None, minlength=0, sparse=False):
    """Counts of each non-negative integer in x (per row for 2-D x), or sums of `weights`
    (differentiable in the weights)."""
    if sparse:
        raise ValueError("bincount: sparse=True is not supported (convnet has no sparse "
                         "tensors)")
    idx = convert(x)
    if weights is None:
        def count(v):
            rows = v if v.ndim == 2 else [v]
            out = np.stack([np.bincount(r, minlength=minlength) for r in rows])
            return (out if v.ndim == 2 else out[0]).astype(np.int32)
        return _not_differentiable("bincount", count, x, values=(idx,))
    w = convert(weights)
    dtype = np.dtype(backend.result_type(idx.dtype, w.dtype))

    def weighted(v, wv):
        if v.ndim == 2:
            length = _builtin_max(minlength, int(v.max()) + 1 if v.size else 0)
            return np.stack([np.bincount(r, weights=rw, minlength=length)
                             for r, rw in zip(v, wv)]).astype(dtype)
        return np.bincount(v, weights=wv, minlength=minlength).astype(dtype)

    def vjp(g, values, out, needs):
        v = values[0]
        grad = np.take_along_axis(g, v, axis=-1) if v.ndim == 2 else g[v]
        return (None, reduce_to(grad, weights))
    return apply("bincount", weighted, vjp, x, weights, values=(idx, w))


@keras_op
def histogram(x, bins=10, range=None):  # noqa: A002 - Keras' name
    """(counts, bin edges) of a 1-D tensor (not differentiable)."""
    if len(_shape(x)) != 1:
        raise ValueError(f"histogram: the input must be 1-D, got shape {_shape(x)}")
    return _not_differentiable("histogram", lambda v: np.histogram(v, bins=bins, range=range),
                               x, values=(convert(x),))


@keras_op
def unravel_index(indices, shape):
    idx = convert(indices)
    return _not_differentiable("unravel_index",
                               lambda v: tuple(i.astype(v.dtype) for i in np.unravel_index(
                                   v, shape)), indices, values=(idx,))


def size(x):
    """The number of elements of x (None when a symbolic size is unknown)."""
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(value_of(x))
    if builtins.any(d is None for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


def ndim(x):
    return len(x.shape) if hasattr(x, "shape") else np.ndim(value_of(x))


@keras_op
def view(x, dtype=None):
    """x's bytes reinterpreted as `dtype` (not differentiable)."""
    return _not_differentiable("view", lambda v: v.view(optional_dtype(dtype) or v.dtype), x,
                               values=(convert(x),))


def vectorize(pyfunc, *, excluded=None, signature=None):
    """NumPy's vectorize: `pyfunc` called elementwise (eagerly, on values)."""
    return np.vectorize(pyfunc, excluded=excluded, signature=signature)


@keras_op
def rearrange(tensor, pattern, **axes_lengths):
    """einops' rearrange: 'b h w c -> b (h w) c', '(b n) c -> b n c' with n=..., as
    Keras' ops.rearrange (a reshape, a transpose and a reshape)."""
    import re
    source, _, target = pattern.partition("->")
    if not _:
        raise ValueError(f"rearrange: the pattern needs '->', got {pattern!r}")
    groups_in = [g.split() for g in _pattern_groups(source)]
    groups_out = [g.split() for g in _pattern_groups(target)]
    shape = _shape(tensor)
    if len(groups_in) != len(shape):
        raise ValueError(f"rearrange: {source.strip()!r} names {len(groups_in)} axes, the "
                         f"tensor has shape {shape}")
    lengths = dict(axes_lengths)
    for group, dim in zip(groups_in, shape):
        unknown = [a for a in group if a not in lengths]
        known = int(np.prod([lengths[a] for a in group if a in lengths], dtype=np.int64))
        if len(unknown) > 1:
            raise ValueError(f"rearrange: cannot infer the sizes of {unknown} in {pattern!r}; "
                             f"give them as keyword arguments")
        if unknown:
            lengths[unknown[0]] = dim // known
    flat_in = [a for g in groups_in for a in g]
    flat_out = [a for g in groups_out for a in g]
    if sorted(flat_in) != sorted(flat_out) or re.search(r"[^\w\s()]", pattern.replace("->", "")):
        raise ValueError(f"rearrange: both sides of {pattern!r} must name the same axes")
    x = reshape(tensor, [lengths[a] for a in flat_in])
    x = transpose(x, [flat_in.index(a) for a in flat_out])
    return reshape(x, [int(np.prod([lengths[a] for a in g], dtype=np.int64)) for g in groups_out])


def _pattern_groups(side):
    import re
    return [m.strip("()") for m in re.findall(r"\([^)]*\)|\w+", side)]


# ----------------------------------------------------------------------------- products

def _product_operands(x1, x2):
    """Keras' dtype for products: their result type, but int8 with int8 gives int32."""
    a, b = convert(x1), convert(x2)
    if a.dtype == np.int8 and b.dtype == np.int8:
        return a.astype(np.int32), b.astype(np.int32)
    return promote(x1, x2)


@keras_op
def matmul(x1, x2):
    """Matrix product with NumPy's broadcasting rules (1-D operands promoted, then dropped).

    Two 2-D float operands of one dtype multiply on convnet's threaded BLAS blocks
    (convnet.kernels.matmul), forward and backward, exactly as layers.Dense does, so a
    Dense written with ops.matmul trains to the same bits."""
    def product(a, b):
        return kernels.matmul(a, b, name="ops.matmul") if _blocked(a, b) else np.matmul(a, b)

    def vjp(g, values, out, needs):
        a, b = values
        if _blocked(a, b):
            return (kernels.matmul(g, b.T, name="ops.matmul") if needs[0] else None,
                    kernels.matmul(a.T, g, name="ops.matmul") if needs[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = np.asarray(g)
        if b.ndim == 1:
            g2 = g2[..., None]
        if a.ndim == 1:
            g2 = g2[..., None, :]
        ga = gb = None
        if needs[0]:
            ga = g2 @ np.swapaxes(b2, -1, -2)
            ga = reduce_to(ga[..., 0, :] if a.ndim == 1 else ga, x1)
        if needs[1]:
            gb = np.swapaxes(a2, -1, -2) @ g2
            gb = reduce_to(gb[..., 0] if b.ndim == 1 else gb, x2)
        return ga, gb
    return apply("matmul", product, vjp, x1, x2, values=_product_operands(x1, x2))


def _blocked(a, b):
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == 2
            and b.ndim == 2 and a.dtype == b.dtype and a.dtype in (np.float32, np.float64))


def _tensordot_axes(axes, a_ndim, b_ndim):
    if isinstance(axes, (int, np.integer)):
        return list(range(a_ndim - axes, a_ndim)), list(range(axes))
    ax_a, ax_b = axes
    ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
    ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    return [int(i) % a_ndim for i in ax_a], [int(i) % b_ndim for i in ax_b]


@keras_op
def tensordot(x1, x2, axes=2):
    """Sum of products over the given axes of x1 and x2 (NumPy's tensordot)."""
    a, b = _product_operands(x1, x2)
    ax_a, ax_b = _tensordot_axes(axes, a.ndim, b.ndim)

    def vjp(g, values, out, needs):
        a, b = values
        free_a = [i for i in range(a.ndim) if i not in ax_a]
        free_b = [i for i in range(b.ndim) if i not in ax_b]
        ga = gb = None
        if needs[0]:
            t = np.tensordot(g, b, axes=(list(range(len(free_a), g.ndim)), free_b))
            ga = reduce_to(np.transpose(t, np.argsort(free_a + _paired(ax_a, ax_b))), x1)
        if needs[1]:
            t = np.tensordot(a, g, axes=(free_a, list(range(len(free_a)))))
            gb = reduce_to(np.transpose(t, np.argsort(_paired(ax_b, ax_a) + free_b)), x2)
        return ga, gb
    return apply("tensordot", lambda u, v: np.tensordot(u, v, axes=(ax_a, ax_b)), vjp, x1, x2,
                 values=(a, b))


def _paired(own, other):
    """The contracted axes of one operand in the order tensordot leaves the other's
    contracted axes (ascending): where its gradient has them."""
    return [own[other.index(j)] for j in sorted(other)]


@keras_op
def dot(x1, x2):
    """np.dot: scalars multiply, vectors and matrices multiply as matmul, and an N-D tensor
    contracts its last axis with x2's second-to-last."""
    a_ndim, b_ndim = len(_shape(x1)), len(_shape(x2))
    if a_ndim == 0 or b_ndim == 0:
        return multiply(x1, x2)
    if a_ndim <= 2 and b_ndim <= 2:
        return matmul(x1, x2)
    return tensordot(x1, x2, axes=([a_ndim - 1], [b_ndim - 2 if b_ndim >= 2 else 0]))


@keras_op
def vdot(x1, x2):
    return sum(multiply(ravel(conjugate(x1)), ravel(x2)))


@keras_op
def inner(x1, x2):
    a_ndim, b_ndim = len(_shape(x1)), len(_shape(x2))
    if a_ndim == 0 or b_ndim == 0:
        return multiply(x1, x2)
    return tensordot(x1, x2, axes=([a_ndim - 1], [b_ndim - 1]))


@keras_op
def outer(x1, x2):
    return multiply(reshape(x1, (-1, 1)), reshape(x2, (1, -1)))


@keras_op
def kron(x1, x2):
    """The Kronecker product (NumPy's kron for any ranks)."""
    ndim = _builtin_max(len(_shape(x1)), len(_shape(x2)))
    a = reshape(x1, (1,) * (ndim - len(_shape(x1))) + _shape(x1))
    b = reshape(x2, (1,) * (ndim - len(_shape(x2))) + _shape(x2))
    sa, sb = _shape(a), _shape(b)
    a = reshape(a, tuple(d for n in sa for d in (n, 1)))
    b = reshape(b, tuple(d for n in sb for d in (1, n)))
    return reshape(multiply(a, b), tuple(p * q for p, q in zip(sa, sb)))


@keras_op
def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cross product of 3-vectors (or the z component of 2-vectors) along the given
    axes, as NumPy's cross."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(x1, axisa, -1), moveaxis(x2, axisb, -1)
    da, db = _shape(a)[-1], _shape(b)[-1]
    if da not in (2, 3) or db not in (2, 3):
        raise ValueError(f"cross: both inputs must hold 2- or 3-vectors along their axes, "
                         f"got {da} and {db}")

    def component(v, i, dim):
        return get_item(v, (Ellipsis, i)) if i < dim else 0

    a0, a1, a2 = (component(a, i, da) for i in range(3))
    b0, b1, b2 = (component(b, i, db) for i in range(3))
    z = subtract(multiply(a0, b1), multiply(a1, b0))
    if da == 2 and db == 2:
        return z
    c = stack([subtract(multiply(a1, b2), multiply(a2, b1)),
               subtract(multiply(a2, b0), multiply(a0, b2)), z], axis=-1)
    return moveaxis(c, -1, axisc)


@keras_op
def einsum(subscripts, *operands, **kwargs):
    """Einstein summation (NumPy's einsum, explicit or implicit output, with ellipses);
    differentiable in every operand."""
    values = [convert(v) for v in operands]
    dtypes = {v.dtype for v in values}
    if dtypes == {np.dtype(np.int8)}:
        values = [v.astype(np.int32) for v in values]
    elif len(dtypes) > 1:
        values = list(promote(*operands))
    inputs, output = _einsum_spec(subscripts, [v.ndim for v in values])
    spec = ",".join(inputs) + "->" + output

    def vjp(g, values, out, needs):
        grads = []
        for k, need in enumerate(needs):
            if not need:
                grads.append(None)
                continue
            others = [v for j, v in enumerate(values) if j != k]
            other_subs = [s for j, s in enumerate(inputs) if j != k]
            wanted = "".join(dict.fromkeys(inputs[k]))
            present = set(output).union(*other_subs)
            kept = "".join(c for c in wanted if c in present)
            grad = np.einsum(",".join([output] + other_subs) + "->" + kept, g, *others)
            sizes = dict(zip(inputs[k], values[k].shape))
            grad = grad.reshape(tuple(sizes[c] if c in kept else 1 for c in wanted))
            grad = np.broadcast_to(grad, tuple(sizes[c] for c in wanted))
            if wanted != inputs[k]:  # a repeated index: the gradient lives on a diagonal
                full = np.zeros(values[k].shape, g.dtype)
                np.einsum(f"{inputs[k]}->{wanted}", full)[...] = grad
                grad = full
            grads.append(reduce_to(grad, operands[k]))
        return tuple(grads)
    return apply("einsum", lambda *vs: np.asarray(np.einsum(spec, *vs, **kwargs)), vjp,
                 *operands, values=tuple(values))


def _einsum_spec(subscripts, ndims):
    """Explicit subscripts for each operand and the output, ellipses spelled out."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, rhs = subscripts.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(ndims):
        raise ValueError(f"einsum: {subscripts!r} names {len(inputs)} operands, got "
                         f"{len(ndims)}")
    used = set(subscripts) - set(".,->")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    longest = _builtin_max([n - len(s.replace("...", "")) for s, n in zip(inputs, ndims)] + [0])
    ellipsis = "".join(spare[:longest])
    expanded = []
    for s, n in zip(inputs, ndims):
        if "..." in s:
            count = n - len(s.replace("...", ""))
            s = s.replace("...", ellipsis[longest - count:])
        expanded.append(s)
    if arrow:
        output = rhs.replace("...", ellipsis)
    else:
        counts = {}
        for s in expanded:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        output = ellipsis + "".join(sorted(c for c, n in counts.items()
                                           if n == 1 and c not in ellipsis))
    return expanded, output


@keras_op
def correlate(x1, x2, mode="valid"):
    """The cross-correlation of two 1-D tensors (NumPy's modes 'valid', 'same', 'full');
    integers correlate in float32 (float64 for int64), as Keras."""
    dtype = backend.result_type(dtype_key(x1), dtype_key(x2))
    dtype = "float64" if dtype == "int64" else dtype if dtype in ("float16", "float64") \
        else "float32"
    from .core import cast
    a, v = cast(x1, dtype), cast(x2, dtype)
    n, m = _shape(a)[0], _shape(v)[0]
    if n == 0 or m == 0:
        raise ValueError("correlate: the inputs must not be empty")
    # full[k] = sum_i a[i] v[i - k + m - 1]: sum the outer product along its diagonals; the
    # other modes keep its middle (of the longer input's length for "same").
    products = outer(a, v)
    rows, cols = np.indices((n, m))
    from .math import segment_sum
    full = segment_sum(reshape(products, (-1,)), (rows - cols + m - 1).reshape(-1),
                       num_segments=n + m - 1)
    n, m = _builtin_max(n, m), _builtin_min(n, m)
    if mode == "full":
        return full
    if mode == "valid":
        return get_item(full, slice(m - 1, n))
    if mode == "same":
        start = (m - 1) // 2
        return get_item(full, slice(start, start + n))
    raise ValueError(f"correlate: mode must be 'valid', 'same' or 'full', got {mode!r}")


@keras_op
def corrcoef(x):
    """Pearson correlation coefficients of the rows of x (np.corrcoef)."""
    a = convert(x)
    dtype = "float64" if a.dtype in (np.int64, np.float64) else \
        a.dtype.name if a.dtype == np.float16 else backend.floatx()
    from .core import cast
    x = cast(x, dtype)
    if len(_shape(x)) == 1:
        x = reshape(x, (1, -1))
    centred = subtract(x, mean(x, axis=1, keepdims=True))
    cov = matmul(centred, transpose(centred))
    d = sqrt(diagonal(cov))
    out = clip(divide(divide(cov, reshape(d, (-1, 1))), reshape(d, (1, -1))), -1, 1)
    return out if _shape(out) != (1, 1) else reshape(out, ())


@keras_op
def vander(x, N=None, increasing=False):  # noqa: N803 - Keras' name
    """Columns of powers of x (np.vander); differentiable in x."""
    n = _shape(x)[0] if N is None else int(N)
    exponents = np.arange(n) if increasing else np.arange(n)[::-1]
    a = convert(x)
    from .core import cast
    compute = cast(x, backend.result_type(a.dtype, backend.floatx()))
    out = power(expand_dims(compute, -1), exponents.astype(convert(compute).dtype))
    return cast(out, a.dtype) if a.dtype != convert(out).dtype else out


@keras_op
def diff(a, n=1, axis=-1):
    """The n-th discrete difference along `axis`."""
    ndim = len(_shape(a))
    axis = axis % ndim
    for _ in range(n):
        length = _shape(a)[axis]
        upper = [slice(None)] * ndim
        lower = [slice(None)] * ndim
        upper[axis], lower[axis] = slice(1, length), slice(0, length - 1)
        a = subtract(get_item(a, tuple(upper)), get_item(a, tuple(lower)))
    return a


@keras_op
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """The integral of y by the trapezoidal rule (np.trapezoid); differentiable in y and x."""
    ndim = len(_shape(y))
    axis = axis % ndim
    n = _shape(y)[axis]
    upper = [slice(None)] * ndim
    lower = [slice(None)] * ndim
    upper[axis], lower[axis] = slice(1, n), slice(0, n - 1)
    y = _cast_to_result(y, float)
    if x is None:
        d = dx
    else:
        d = diff(x, axis=-1 if len(_shape(x)) == 1 else axis)
        if len(_shape(x)) == 1 and ndim > 1:
            shape = [1] * ndim
            shape[axis] = -1
            d = reshape(d, shape)
    halves = multiply(add(get_item(y, tuple(upper)), get_item(y, tuple(lower))), 0.5)
    return sum(multiply(halves, d), axis=axis)


@keras_op
def slogdet(x):
    """(sign, log|det|) of square matrices; log|det| is differentiable (its gradient is
    inv(x) transposed)."""
    a = float_value(x)

    def vjp(g, values, out, needs):
        g_log = g[1] if isinstance(g, list) else None
        if g_log is None:
            return (None,)
        inverse_t = np.swapaxes(np.linalg.inv(values[0]), -1, -2)
        return (np.asarray(g_log)[..., None, None] * inverse_t,)
    return tuple(apply("slogdet", lambda v: tuple(np.linalg.slogdet(v)), vjp, x, values=(a,)))


# ----------------------------------------------------------------------------- order statistics

_QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile_op(name, x, q, axis, method, keepdims, ignore_nan, scale):
    """np.quantile (or nanquantile) with its gradient: each output is a blend of at most two
    sorted entries of x, and the gradient goes to those entries with the blend's weights."""
    if method not in _QUANTILE_METHODS:
        raise ValueError(f"{name}: method must be one of {_QUANTILE_METHODS}, got {method!r}")
    a = convert(x)
    if a.dtype == bool:
        a = a.astype(backend.floatx())
    dtype = np.dtype(backend.floatx() if a.dtype == np.int64 and name == "quantile" else
                     backend.result_type(a.dtype, float))
    qs = convert(q).astype(np.float64) / scale
    axis = numpy_axis(axis)
    fn = np.nanquantile if ignore_nan else np.quantile

    def compute(v):
        return np.asarray(fn(v, qs, axis=axis, method=method, keepdims=keepdims)).astype(dtype)

    def vjp(g, values, out, needs):
        v = values[0]
        axes = axes_of(axis, v.ndim)
        rest = [i for i in range(v.ndim) if i not in axes]
        moved = np.transpose(v, rest + list(axes))
        flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
        order = np.argsort(flat, axis=-1, kind="stable")  # NaN sorts last
        count = np.sum(~np.isnan(flat), axis=-1, keepdims=True) if ignore_nan else \
            np.full(flat.shape[:-1] + (1,), flat.shape[-1])
        q_flat = qs.reshape(-1)
        # g as (q..., rest..., 1) after dropping kept reduced axes
        g_arr = np.asarray(g)
        if keepdims:
            kept = [i for i in range(v.ndim) if i in axes]
            g_arr = np.squeeze(g_arr, axis=tuple(qs.ndim + i for i in kept))
        g_arr = np.moveaxis(g_arr.reshape((q_flat.size,) + flat.shape[:-1]), 0, -1)
        grad_flat = np.zeros(flat.shape, g.dtype)
        for j, qv in enumerate(q_flat):
            pos = qv * (count[..., 0] - 1)
            lo, hi = np.floor(pos).astype(np.int64), np.ceil(pos).astype(np.int64)
            frac = pos - lo
            w_lo, w_hi = {"linear": (1 - frac, frac), "lower": (1.0, 0.0),
                          "higher": (0.0, 1.0), "midpoint": (0.5, 0.5),
                          "nearest": (np.where(np.around(pos) == lo, 1.0, 0.0),
                                      np.where(np.around(pos) == lo, 0.0, 1.0))}[method]
            if method == "midpoint":
                w_lo = np.where(lo == hi, 1.0, 0.5)
                w_hi = np.where(lo == hi, 0.0, 0.5)
            gj = g_arr[..., j]
            for index, weight in ((lo, w_lo), (hi, w_hi)):
                target = np.take_along_axis(order, np.clip(index, 0, flat.shape[-1] - 1)[
                    ..., None], axis=-1)
                contribution = (gj * weight)[..., None].astype(g.dtype)
                np.put_along_axis(grad_flat, target, np.take_along_axis(
                    grad_flat, target, axis=-1) + contribution, axis=-1)
        grad = grad_flat.reshape(moved.shape)
        return (np.transpose(grad, np.argsort(rest + list(axes))),)
    return apply(name, compute, vjp, x, values=(a,))


@keras_op
def quantile(x, q, axis=None, method="linear", keepdims=False):
    """The q-th quantiles of x over `axis` (NumPy's methods); differentiable in x."""
    return _quantile_op("quantile", x, q, axis, method, keepdims, False, 1.0)


@keras_op
def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile_op("nanquantile", x, q, axis, method, keepdims, True, 1.0)


@keras_op
def percentile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile_op("percentile", x, q, axis, method, keepdims, False, 100.0)


@keras_op
def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile_op("nanpercentile", x, q, axis, method, keepdims, True, 100.0)


@keras_op
def median(x, axis=None, keepdims=False):
    return _quantile_op("median", x, 0.5, axis, "linear", keepdims, False, 1.0)


@keras_op
def nanmedian(x, axis=None, keepdims=False):
    return _quantile_op("nanmedian", x, 0.5, axis, "linear", keepdims, True, 1.0)
