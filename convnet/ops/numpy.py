"""Keras' NumPy-like ops (keras.ops / keras.ops.numpy) with their gradient rules.

Each op takes arrays, Python numbers, Variables or traced Tensors; it returns a
NumPy array, or a Tensor on the tape when an operand needs a gradient. The rule
beside each forward is its vector-Jacobian product; where an op broadcasts, the
gradient is summed back to each operand's shape.
"""
import numpy as np

from .. import kernels
from ._base import apply, binary_arrays, convert_dtype, not_differentiable, reduce_to, to_array


def _sym(fn, **kwargs):
    return (fn, kwargs)


# ----------------------------------------------------------------------------- arithmetic

def add(x1, x2):
    def vjp(g, arrays, out, needs):
        return (reduce_to(g, x1) if needs[0] else None, reduce_to(g, x2) if needs[1] else None)
    return apply("add", lambda a, b: np.add(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(add))


def subtract(x1, x2):
    def vjp(g, arrays, out, needs):
        return (reduce_to(g, x1) if needs[0] else None,
                reduce_to(-g, x2) if needs[1] else None)
    return apply("subtract", lambda a, b: np.subtract(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(subtract))


def multiply(x1, x2):
    def vjp(g, arrays, out, needs):
        a, b = arrays
        return (reduce_to(g * b, x1) if needs[0] else None,
                reduce_to(g * a, x2) if needs[1] else None)
    return apply("multiply", lambda a, b: np.multiply(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(multiply))


def _float_operands(a, b):
    a, b = binary_arrays(a, b)
    if np.result_type(a, b).kind in "biu":
        a = np.asarray(a, dtype=np.float32) if not isinstance(a, float) else a
    return a, b


def divide(x1, x2):
    """x1 / x2; integers divide to float32 (Keras' rule, where NumPy gives float64)."""
    def vjp(g, arrays, out, needs):
        a, b = _float_operands(*arrays)
        return (reduce_to(g / b, x1) if needs[0] else None,
                reduce_to(-g * out / b, x2) if needs[1] else None)
    return apply("divide", lambda a, b: np.true_divide(*_float_operands(a, b)), vjp, x1, x2,
                 symbolic=_sym(divide))


true_divide = divide


def divide_no_nan(x1, x2):
    """x1 / x2, and 0 where x2 is 0."""
    def compute(a, b):
        a, b = _float_operands(a, b)
        safe = np.where(b == 0, 1, b)
        return np.where(b == 0, 0, a / safe).astype(np.result_type(a, b), copy=False)

    def vjp(g, arrays, out, needs):
        a, b = _float_operands(*arrays)
        zero = b == 0
        safe = np.where(zero, 1, b)
        return (reduce_to(np.where(zero, 0, g / safe), x1) if needs[0] else None,
                reduce_to(np.where(zero, 0, -g * out / safe), x2) if needs[1] else None)
    return apply("divide_no_nan", compute, vjp, x1, x2, symbolic=_sym(divide_no_nan))


def floor_divide(x1, x2):
    return not_differentiable("floor_divide", lambda a, b: np.floor_divide(*binary_arrays(a, b)),
                              x1, x2, symbolic=_sym(floor_divide))


def mod(x1, x2):
    def vjp(g, arrays, out, needs):
        a, b = binary_arrays(*arrays)
        return (reduce_to(g, x1) if needs[0] else None,
                reduce_to(-g * np.floor_divide(a, b), x2) if needs[1] else None)
    return apply("mod", lambda a, b: np.mod(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(mod))


def power(x1, x2):
    def vjp(g, arrays, out, needs):
        a, b = binary_arrays(*arrays)
        ga = gb = None
        if needs[0]:
            ga = reduce_to(g * b * np.power(a, b - 1), x1)
        if needs[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0)
            gb = reduce_to(g * out * log_a, x2)
        return ga, gb
    return apply("power", lambda a, b: np.power(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(power))


def negative(x):
    return apply("negative", np.negative, lambda g, arrays, out, needs: (-g,), x,
                 symbolic=_sym(negative))


def absolute(x):
    return apply("absolute", np.abs, lambda g, arrays, out, needs: (g * np.sign(arrays[0]),), x,
                 symbolic=_sym(absolute))


abs = absolute  # noqa: A001 - Keras' name


def square(x):
    return apply("square", np.square, lambda g, arrays, out, needs: (2 * g * arrays[0],), x,
                 symbolic=_sym(square))


def sqrt(x):
    def compute(a):
        return np.sqrt(a if np.asarray(a).dtype.kind == "f" else np.asarray(a, np.float32))
    return apply("sqrt", compute, lambda g, arrays, out, needs: (g / (2 * out),), x,
                 symbolic=_sym(sqrt))


def exp(x):
    return apply("exp", _float_unary(np.exp), lambda g, arrays, out, needs: (g * out,), x,
                 symbolic=_sym(exp))


def _float_unary(fn):
    def compute(a):
        a = np.asarray(a)
        return fn(a if a.dtype.kind == "f" else a.astype(np.float32))
    return compute


def log(x):
    def vjp(g, arrays, out, needs):
        return (g / np.asarray(arrays[0], out.dtype),)
    return apply("log", _float_unary(np.log), vjp, x, symbolic=_sym(log))


def log1p(x):
    def vjp(g, arrays, out, needs):
        return (g / (1 + np.asarray(arrays[0], out.dtype)),)
    return apply("log1p", _float_unary(np.log1p), vjp, x, symbolic=_sym(log1p))


def expm1(x):
    return apply("expm1", _float_unary(np.expm1), lambda g, arrays, out, needs: (g * (out + 1),),
                 x, symbolic=_sym(expm1))


def tanh(x):
    return apply("tanh", _float_unary(np.tanh),
                 lambda g, arrays, out, needs: (g * (1 - out * out),), x, symbolic=_sym(tanh))


def sin(x):
    return apply("sin", _float_unary(np.sin),
                 lambda g, arrays, out, needs: (g * np.cos(arrays[0]),), x, symbolic=_sym(sin))


def cos(x):
    return apply("cos", _float_unary(np.cos),
                 lambda g, arrays, out, needs: (-g * np.sin(arrays[0]),), x, symbolic=_sym(cos))


def maximum(x1, x2):
    """Elementwise maximum; where the two tie, the gradient goes to x1 (TensorFlow's rule)."""
    def vjp(g, arrays, out, needs):
        a, b = binary_arrays(*arrays)
        first = a >= b
        return (reduce_to(np.where(first, g, 0), x1) if needs[0] else None,
                reduce_to(np.where(first, 0, g), x2) if needs[1] else None)
    return apply("maximum", lambda a, b: np.maximum(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(maximum))


def minimum(x1, x2):
    """Elementwise minimum; where the two tie, the gradient goes to x1."""
    def vjp(g, arrays, out, needs):
        a, b = binary_arrays(*arrays)
        first = a <= b
        return (reduce_to(np.where(first, g, 0), x1) if needs[0] else None,
                reduce_to(np.where(first, 0, g), x2) if needs[1] else None)
    return apply("minimum", lambda a, b: np.minimum(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(minimum))


def clip(x, x_min, x_max):
    def vjp(g, arrays, out, needs):
        a = arrays[0]
        return (np.where((a >= x_min) & (a <= x_max), g, 0).astype(g.dtype, copy=False),)
    return apply("clip", lambda a: np.clip(a, x_min, x_max), vjp, x,
                 symbolic=_sym(clip, x_min=x_min, x_max=x_max))


def sign(x):
    return not_differentiable("sign", np.sign, x, symbolic=_sym(sign))


def floor(x):
    return not_differentiable("floor", np.floor, x, symbolic=_sym(floor))


def ceil(x):
    return not_differentiable("ceil", np.ceil, x, symbolic=_sym(ceil))


def round(x, decimals=0):  # noqa: A001 - Keras' name
    return not_differentiable("round", lambda a: np.round(a, decimals), x,
                              symbolic=_sym(round, decimals=decimals))


# ----------------------------------------------------------------------------- products

def matmul(x1, x2):
    """Matrix product with NumPy's broadcasting rules (1-D operands promoted and dropped).

    Two 2-D float operands of one dtype multiply on convnet's threaded BLAS blocks
    (convnet.kernels.matmul), forward and backward, exactly as layers.Dense does, so a
    Dense written with ops.matmul trains to the same bits."""
    def product(a, b):
        if _blocked(a, b):
            return kernels.matmul(a, b, name="ops.matmul")
        return np.matmul(a, b)

    def vjp(g, arrays, out, needs):
        a, b = binary_arrays(*arrays)
        if _blocked(a, b):
            return (kernels.matmul(g, b.T, name="ops.matmul") if needs[0] else None,
                    kernels.matmul(a.T, g, name="ops.matmul") if needs[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if needs[0]:
            ga = g2 @ np.swapaxes(b2, -1, -2)
            ga = reduce_to(ga.reshape(ga.shape[:-2] + (ga.shape[-1],)) if a.ndim == 1 else ga,
                           x1)
        if needs[1]:
            gb = np.swapaxes(a2, -1, -2) @ g2
            gb = reduce_to(gb[..., 0] if b.ndim == 1 else gb, x2)
        return ga, gb
    return apply("matmul", lambda a, b: product(*binary_arrays(a, b)), vjp, x1, x2,
                 symbolic=_sym(matmul))


def _blocked(a, b):
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == 2
            and b.ndim == 2 and a.dtype == b.dtype and a.dtype in (np.float32, np.float64))


def dot(x1, x2):
    """np.dot semantics; for 1-D/2-D operands it is matmul (the common case)."""
    a, b = to_array(x1), to_array(x2)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return multiply(x1, x2)
    if np.ndim(a) <= 2 and np.ndim(b) <= 2:
        return matmul(x1, x2)
    return tensordot(x1, x2, axes=([-1], [-2]))


def tensordot(x1, x2, axes=2):
    def normalise(a, b):
        if isinstance(axes, int):
            return list(range(a.ndim - axes, a.ndim)), list(range(axes))
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
        return [i % a.ndim for i in ax_a], [i % b.ndim for i in ax_b]

    def vjp(g, arrays, out, needs):
        a, b = binary_arrays(*arrays)
        ax_a, ax_b = normalise(a, b)
        free_a = [i for i in range(a.ndim) if i not in ax_a]
        free_b = [i for i in range(b.ndim) if i not in ax_b]
        ga = gb = None
        if needs[0]:
            # g (free_a..., free_b...) . b over free_b -> (free_a..., ax_b order of a's axes)
            t = np.tensordot(g, b, axes=(list(range(len(free_a), g.ndim)), free_b))
            order = free_a + ax_a
            ga = reduce_to(np.transpose(t, np.argsort(order)), x1)
        if needs[1]:
            t = np.tensordot(a, g, axes=(free_a, list(range(len(free_a)))))
            order = ax_b + free_b
            gb = reduce_to(np.transpose(t, np.argsort(order)), x2)
        return ga, gb
    return apply("tensordot", lambda a, b: np.tensordot(*binary_arrays(a, b),
                                                        axes=normalise(*binary_arrays(a, b))),
                 vjp, x1, x2, symbolic=_sym(tensordot, axes=axes))


# ----------------------------------------------------------------------------- reductions

def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        return (axis % ndim,) if ndim else ()
    return tuple(a % ndim for a in axis)


def _expand_back(g, shape, axis, keepdims):
    """A reduced gradient reshaped to broadcast against the input again."""
    if keepdims or axis is None and np.ndim(g) == len(shape):
        return g
    axes = _axes(axis, len(shape))
    return np.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))


def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras' name
    def vjp(g, arrays, out, needs):
        a = np.asarray(arrays[0])
        return (np.broadcast_to(_expand_back(g, a.shape, axis, keepdims), a.shape).copy(),)
    return apply("sum", lambda a: np.sum(a, axis=_axis_arg(axis), keepdims=keepdims), vjp, x,
                 symbolic=_sym(sum, axis=axis, keepdims=keepdims))


def _axis_arg(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def mean(x, axis=None, keepdims=False):
    def compute(a):
        a = np.asarray(a)
        if a.dtype.kind != "f":
            a = a.astype(np.float32)
        return np.mean(a, axis=_axis_arg(axis), keepdims=keepdims)

    def vjp(g, arrays, out, needs):
        a = np.asarray(arrays[0])
        count = np.prod([a.shape[i] for i in _axes(axis, a.ndim)], dtype=np.int64)
        grad = _expand_back(g, a.shape, axis, keepdims) / g.dtype.type(max(count, 1))
        return (np.broadcast_to(grad, a.shape).copy(),)
    return apply("mean", compute, vjp, x, symbolic=_sym(mean, axis=axis, keepdims=keepdims))


def _extreme(name, fn, self_fn):
    def op(x, axis=None, keepdims=False, initial=None):
        def compute(a):
            kwargs = {} if initial is None else {"initial": initial}
            return fn(a, axis=_axis_arg(axis), keepdims=keepdims, **kwargs)

        def vjp(g, arrays, out, needs):
            a = np.asarray(arrays[0])
            expanded = _expand_back(out, a.shape, axis, keepdims)
            winners = (a == expanded).astype(g.dtype)
            # Ties share the gradient equally, as TensorFlow's reduce_max does.
            count = np.sum(winners, axis=_axis_arg(axis), keepdims=True) if axis is not None \
                else np.sum(winners)
            grad = _expand_back(g, a.shape, axis, keepdims)
            return (winners * grad / np.maximum(count, 1),)
        return apply(name, compute, vjp, x,
                     symbolic=_sym(self_fn(), axis=axis, keepdims=keepdims, initial=initial))
    op.__name__ = name
    return op


max = _extreme("max", np.max, lambda: max)  # noqa: A001 - Keras' name
min = _extreme("min", np.min, lambda: min)  # noqa: A001 - Keras' name
amax, amin = max, min


def var(x, axis=None, keepdims=False):
    centred = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(centred), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def prod(x, axis=None, keepdims=False, dtype=None):
    def vjp(g, arrays, out, needs):
        a = np.asarray(arrays[0])
        expanded = _expand_back(out, a.shape, axis, keepdims)
        grad = _expand_back(g, a.shape, axis, keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(a != 0, expanded / np.where(a != 0, a, 1), 0)
        return (grad * ratio,)
    return apply("prod", lambda a: np.prod(a, axis=_axis_arg(axis), keepdims=keepdims,
                                           dtype=convert_dtype(dtype)), vjp, x,
                 symbolic=_sym(prod, axis=axis, keepdims=keepdims, dtype=dtype))


def argmax(x, axis=None, keepdims=False):
    return not_differentiable("argmax", lambda a: np.argmax(a, axis=axis, keepdims=keepdims)
                              .astype(np.int32), x,
                              symbolic=_sym(argmax, axis=axis, keepdims=keepdims))


def argmin(x, axis=None, keepdims=False):
    return not_differentiable("argmin", lambda a: np.argmin(a, axis=axis, keepdims=keepdims)
                              .astype(np.int32), x,
                              symbolic=_sym(argmin, axis=axis, keepdims=keepdims))


# ----------------------------------------------------------------------------- shapes

def reshape(x, newshape):
    def vjp(g, arrays, out, needs):
        return (np.reshape(g, np.shape(arrays[0])),)
    return apply("reshape", lambda a: np.reshape(a, newshape), vjp, x,
                 symbolic=_sym(reshape, newshape=newshape))


def transpose(x, axes=None):
    def vjp(g, arrays, out, needs):
        return (np.transpose(g, None if axes is None else np.argsort(axes)),)
    return apply("transpose", lambda a: np.transpose(a, axes), vjp, x,
                 symbolic=_sym(transpose, axes=axes))


def expand_dims(x, axis):
    def vjp(g, arrays, out, needs):
        return (np.reshape(g, np.shape(arrays[0])),)
    return apply("expand_dims", lambda a: np.expand_dims(a, axis), vjp, x,
                 symbolic=_sym(expand_dims, axis=axis))


def squeeze(x, axis=None):
    def vjp(g, arrays, out, needs):
        return (np.reshape(g, np.shape(arrays[0])),)
    return apply("squeeze", lambda a: np.squeeze(a, axis=_axis_arg(axis)), vjp, x,
                 symbolic=_sym(squeeze, axis=axis))


def concatenate(xs, axis=0):
    xs = list(xs)

    def vjp(g, arrays, out, needs):
        cuts = np.cumsum([np.shape(a)[axis] for a in arrays])[:-1]
        return tuple(np.split(g, cuts, axis=axis))

    def compute(*arrays):
        return np.concatenate(arrays, axis=axis)
    return apply("concatenate", compute, vjp, *xs, symbolic=(concatenate, {"axis": axis},
                                                              "list"))


def stack(x, axis=0):
    xs = list(x)

    def vjp(g, arrays, out, needs):
        return tuple(np.take(g, i, axis=axis) for i in range(len(arrays)))
    return apply("stack", lambda *arrays: np.stack(arrays, axis=axis), vjp, *xs,
                 symbolic=(stack, {"axis": axis}, "list"))


def where(condition, x1=None, x2=None):
    if x1 is None and x2 is None:
        return not_differentiable("where", lambda c: np.nonzero(c), condition)
    cond = to_array(condition).astype(bool)

    def vjp(g, arrays, out, needs):
        return (None, reduce_to(np.where(cond, g, 0), x1) if needs[1] else None,
                reduce_to(np.where(cond, 0, g), x2) if needs[2] else None)
    return apply("where", lambda c, a, b: np.where(c, *binary_arrays(a, b)), vjp,
                 condition, x1, x2, symbolic=_sym(where))


def get_item(x, key):
    """x[key]; the gradient scatters back (added where an index repeats)."""
    key = _index_arrays(key)

    def vjp(g, arrays, out, needs):
        a = np.asarray(arrays[0])
        grad = np.zeros(a.shape, dtype=g.dtype)
        np.add.at(grad, key, g)
        return (grad,)
    return apply("get_item", lambda a: np.asarray(a)[key], vjp, x)


getitem = get_item


def _index_arrays(key):
    """An index with Tensors/Variables replaced by their arrays (indices are constants)."""
    if isinstance(key, tuple):
        return tuple(_index_arrays(k) for k in key)
    if hasattr(key, "value") and not isinstance(key, (slice, np.ndarray)):
        return np.asarray(key.value)
    return key


def pad(x, pad_width, mode="constant", constant_values=None):
    def vjp(g, arrays, out, needs):
        widths = np.broadcast_to(np.asarray(pad_width), (np.ndim(arrays[0]), 2))
        index = tuple(slice(int(before), g.shape[i] - int(after))
                      for i, (before, after) in enumerate(widths))
        return (g[index],) if mode == "constant" else (None,)
    kwargs = {} if constant_values is None else {"constant_values": constant_values}
    return apply("pad", lambda a: np.pad(a, pad_width, mode=mode, **kwargs),
                 vjp if mode == "constant" else None, x,
                 symbolic=_sym(pad, pad_width=pad_width, mode=mode,
                               constant_values=constant_values))


# ----------------------------------------------------------------------------- comparisons

def _compare(name, fn):
    def op(x1, x2):
        return not_differentiable(name, lambda a, b: fn(*binary_arrays(a, b)), x1, x2,
                                  symbolic=(op, {}))
    op.__name__ = name
    return op


equal = _compare("equal", np.equal)
not_equal = _compare("not_equal", np.not_equal)
less = _compare("less", np.less)
less_equal = _compare("less_equal", np.less_equal)
greater = _compare("greater", np.greater)
greater_equal = _compare("greater_equal", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)
logical_xor = _compare("logical_xor", np.logical_xor)


def logical_not(x):
    return not_differentiable("logical_not", np.logical_not, x, symbolic=_sym(logical_not))


# ----------------------------------------------------------------------------- creation

def zeros(shape, dtype=None):
    return np.zeros(shape, dtype=convert_dtype(dtype) or np.float32)


def ones(shape, dtype=None):
    return np.ones(shape, dtype=convert_dtype(dtype) or np.float32)


def full(shape, fill_value, dtype=None):
    return np.full(shape, to_array(fill_value), dtype=convert_dtype(dtype))


def zeros_like(x, dtype=None):
    return np.zeros(np.shape(to_array(x)), dtype=convert_dtype(dtype) or to_array(x).dtype)


def ones_like(x, dtype=None):
    return np.ones(np.shape(to_array(x)), dtype=convert_dtype(dtype) or to_array(x).dtype)


def arange(start, stop=None, step=1, dtype=None):
    return np.arange(start, stop, step, dtype=convert_dtype(dtype))


def eye(N, M=None, k=0, dtype=None):  # noqa: N803 - Keras' names
    return np.eye(N, M, k, dtype=convert_dtype(dtype) or np.float32)
