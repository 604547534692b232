"""Keras' core ops: conversion, dtype and shape queries, casting, stop_gradient, scatter and
slice updates, and control flow (run eagerly: Python's own if and for, with every op inside
recorded as usual, so gradients flow through the branch taken and every iteration)."""
import builtins
import inspect

import numpy as np

from .. import backend
from ..autodiff import Tensor, current_tape, needs_grad, record, value_of
from ..graph import KerasTensor, flatten, map_structure, pack_like
from ..variables import Variable
from ._base import apply, convert, keras_op, numpy_dtype, reduce_to


@keras_op
def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """x as a tensor: a traced Tensor stays one (cast if asked); a Variable gives its value
    array, or, while a tape records, stays the Variable so that what is computed from it is
    recorded; anything else becomes an array of `dtype` or of Keras' type for the data
    (int32 for Python ints, floatx for Python floats)."""
    if sparse:
        raise ValueError("convert_to_tensor: sparse=True is not supported (convnet has no "
                         "sparse tensors)")
    if ragged:
        raise ValueError("convert_to_tensor: ragged=True is not supported (convnet has no "
                         "ragged tensors)")
    if isinstance(x, Variable) and current_tape() is None:
        return convert(x, dtype)
    if isinstance(x, (Tensor, Variable)):
        return x if dtype is None or numpy_dtype(dtype) == x.dtype else cast(x, dtype)
    return convert(x, dtype)


def convert_to_numpy(x):
    """A NumPy copy of x's value (off the tape)."""
    if isinstance(x, KerasTensor):
        raise TypeError(f"convert_to_numpy: {x!r} is symbolic and has no value")
    return np.array(value_of(x))


def is_tensor(x):
    """Whether x is a tensor of this backend: a NumPy array or a traced Tensor."""
    return isinstance(x, (np.ndarray, np.generic, Tensor))


def shape(x):
    """x's shape as a tuple (None for an unknown size of a symbolic tensor)."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def dtype(x):
    """x's dtype name, as Keras spells it."""
    return backend.standardize_dtype(x.dtype if hasattr(x, "dtype") else convert(x).dtype)


@keras_op
def cast(x, dtype):
    """x in another dtype. The gradient flows back (in x's dtype) from a floating result to
    a floating x; casting to an integer is not differentiable."""
    target = numpy_dtype(dtype)

    def vjp(g, values, out, needs):
        return (reduce_to(g, x),)
    return apply("cast", lambda a: np.asarray(a).astype(target),
                 vjp if target.kind in "fc" else None, x, values=(convert(x),))


@keras_op
def saturate_cast(x, dtype):
    """x cast to `dtype` with values beyond its range clipped to the range first."""
    target = numpy_dtype(dtype)
    source = convert(x).dtype
    if target.kind in "iu" or target.kind == "f" and source.kind == "f" and \
            np.finfo(target).max < np.finfo(source).max:
        info = np.iinfo(target) if target.kind in "iu" else np.finfo(target)
        from .numpy import clip
        x = clip(x, info.min, info.max)
    return cast(x, target)


@keras_op
def stop_gradient(variable):
    """Its value, as a constant: no gradient flows back through it (a zero gradient, on
    purpose). While a tape records, a traced value comes back as an untraced Tensor."""
    if isinstance(variable, Variable):  # its value now, not the storage the optimizer updates
        value = variable.numpy()
    else:
        value = value_of(variable)
    if isinstance(variable, (Tensor, Variable)) and current_tape() is not None:
        return Tensor(value)
    return value


@keras_op
def slice(inputs, start_indices, shape):  # noqa: A001 - Keras' name
    """inputs[start:start + shape] along every axis."""
    from .numpy import get_item
    start_indices, shape = value_of(start_indices), value_of(shape)
    if len(start_indices) != len(shape):
        raise ValueError(f"slice: start_indices {tuple(start_indices)} and shape {tuple(shape)} "
                         f"must have the same length")
    index = tuple(builtins.slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return get_item(inputs, index)


@keras_op
def slice_update(inputs, start_indices, updates):
    """A copy of inputs with `updates` written at `start_indices` (Keras' NumPy backend writes
    in place; here the inputs are left as they are, which is what a tape needs)."""
    a = convert(inputs)
    u = convert(updates, a.dtype)
    start_indices = value_of(start_indices)
    index = tuple(builtins.slice(int(s), int(s) + n) for s, n in zip(start_indices, u.shape))

    def compute(a, u):
        out = a.copy()
        out[index] = u
        return out

    def vjp(g, values, out, needs):
        grad_inputs = None
        if needs[0]:
            grad_inputs = g.copy()
            grad_inputs[index] = 0
        return grad_inputs, reduce_to(g[index], updates) if needs[1] else None
    return apply("slice_update", compute, vjp, inputs, updates, values=(a, u))


@keras_op
def scatter(indices, values, shape):
    """Zeros of `shape` with `values` added at `indices` (the last axis of indices indexes
    the leading axes of shape); differentiable in the values."""
    idx = convert(indices)
    v = convert(values)
    shape = tuple(int(d) for d in value_of(shape))
    depth = idx.shape[-1]

    def compute(i, v):
        out = np.zeros(shape, dtype=v.dtype)
        np.add.at(out, tuple(i.reshape(-1, depth).T),
                  v.reshape((-1,) + shape[depth:]))
        return out

    def vjp(g, vals, out, needs):
        gathered = g[tuple(idx.reshape(-1, depth).T)]
        return None, gathered.reshape(vals[1].shape)
    return apply("scatter", compute, vjp, indices, values, values=(idx, v))


@keras_op
def scatter_update(inputs, indices, updates, reduction=None):
    """A copy of inputs with `updates` written (reduction None) or combined ("add", "max",
    "min", "mul") at `indices`. Differentiable in both for None and "add"; the other
    reductions are not differentiable here."""
    a = convert(inputs)
    idx = convert(indices)
    u = convert(updates, a.dtype)
    where = tuple(np.asarray(idx).T)
    combine = {None: None, "add": np.add, "max": np.maximum, "min": np.minimum,
               "mul": np.multiply}
    if reduction not in combine:
        raise ValueError(f"scatter_update: reduction must be None, 'add', 'max', 'min' or 'mul', "
                         f"got {reduction!r}")

    def compute(a, i, u):
        out = a.copy()
        if reduction is None:
            out[where] = u
        else:
            combine[reduction].at(out, where, u)
        return out

    def vjp(g, values, out, needs):
        grad_inputs = None
        if needs[0]:
            grad_inputs = g.copy()
            if reduction is None:
                grad_inputs[where] = 0
        return grad_inputs, None, reduce_to(g[where], updates) if needs[2] else None
    return apply("scatter_update", compute, vjp if reduction in (None, "add") else None,
                 inputs, indices, updates, values=(a, idx, u))


@keras_op
def unstack(x, num=None, axis=0):
    """The slices of x along `axis`, as a list (one op: the gradient stacks them back)."""
    a = convert(x)
    n = a.shape[axis]
    if num is not None and num != n:
        raise ValueError(f"unstack: num={num} does not match the size {n} of axis {axis} "
                         f"(shape {a.shape})")

    def vjp(g, values, out, needs):
        grads = g if isinstance(g, list) else [g]
        return (np.stack([np.zeros(o.shape, o.dtype) if gi is None else gi
                          for gi, o in zip(grads, out)], axis=axis),)
    return list(apply("unstack", lambda v: tuple(np.moveaxis(v, axis, 0)), vjp, x,
                      values=(a,)))


# ----------------------------------------------------------------------------- control flow

def _concrete_predicate(pred, op):
    if isinstance(pred, KerasTensor):
        raise TypeError(f"{op}: the predicate is symbolic ({pred!r}); convnet runs control flow "
                        f"eagerly, so use it inside a layer's call(), where it is a value")
    return bool(np.asarray(value_of(pred)))


def cond(pred, true_fn, false_fn):
    """true_fn() if pred else false_fn(), run eagerly (the branch taken is recorded)."""
    return true_fn() if _concrete_predicate(pred, "cond") else false_fn()


def switch(index, branches, *operands):
    """``branches[index](*operands)``: the index clipped to the branches, run eagerly."""
    if isinstance(index, KerasTensor):
        raise TypeError("switch: the index is symbolic; convnet runs control flow eagerly")
    i = int(np.clip(np.asarray(value_of(index)), 0, len(branches) - 1))
    return branches[i](*operands)


def while_loop(cond, body, loop_vars, maximum_iterations=None):  # noqa: A002 - Keras' name
    """Apply body while cond holds (at most `maximum_iterations` times), eagerly."""
    is_tuple = isinstance(loop_vars, (tuple, list))
    state = tuple(loop_vars) if is_tuple else (loop_vars,)
    done = 0
    while (maximum_iterations is None or done < maximum_iterations) and \
            _concrete_predicate(cond(*state), "while_loop"):
        state = body(*state)
        state = tuple(state) if isinstance(state, (list, tuple)) else (state,)
        done += 1
    return state if is_tuple else state[0]


def fori_loop(lower, upper, body_fun, init_val):
    """val = body_fun(i, val) for i in range(lower, upper), eagerly."""
    val = init_val
    for i in range(int(value_of(lower)), int(value_of(upper))):
        val = body_fun(i, val)
    return val


def _stack_outputs(outputs, template):
    from .numpy import stack
    leaves = [flatten(o) for o in outputs]
    stacked = [stack([row[i] for row in leaves]) for i in range(len(leaves[0]))]
    return pack_like(template, stacked)


def map(f, xs):  # noqa: A001 - Keras' name
    """f applied to each slice of xs along its first axis, results stacked (eagerly)."""
    leaves = flatten(xs)
    n = shape(leaves[0])[0]
    outputs = [f(pack_like(xs, [leaf[i] for leaf in leaves])) for i in range(n)]
    return _stack_outputs(outputs, outputs[0]) if outputs else []


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """carry, y = f(carry, x) over the slices of xs (JAX's scan), eagerly; returns the
    last carry and the stacked ys."""
    if not callable(f):
        raise TypeError(f"scan: f must be callable, got {f!r}")
    if xs is None and length is None:
        raise ValueError("scan: give xs to scan over, or length")
    leaves = [] if xs is None else flatten(xs)
    n = int(length) if length is not None else shape(leaves[0])[0]
    steps = reversed(range(n)) if reverse else range(n)
    carry, ys = init, []
    for i in steps:
        x = None if xs is None else pack_like(xs, [leaf[i] for leaf in leaves])
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or flatten(ys[0]) == [] or ys[0] is None:
        return carry, None if not ys or ys[0] is None else ys[0]
    return carry, _stack_outputs(ys, ys[0])


def associative_scan(f, elems, reverse=False, axis=0):
    """Prefix combination with an associative f along `axis` (jax.lax.associative_scan),
    computed left to right, eagerly."""
    from .numpy import concatenate, expand_dims, get_item
    leaves = flatten(elems)
    n = shape(leaves[0])[axis]
    for leaf in leaves[1:]:
        if shape(leaf)[axis] != n:
            raise ValueError(f"associative_scan: every input needs {n} entries along axis "
                             f"{axis}, got shape {shape(leaf)}")

    def at(leaf, i):
        index = [builtins.slice(None)] * len(shape(leaf))
        index[axis] = i
        return get_item(leaf, tuple(index))

    order = list(range(n))[::-1] if reverse else list(range(n))
    carry = [at(leaf, order[0]) for leaf in leaves]
    results = [carry]
    for i in order[1:]:
        current = [at(leaf, i) for leaf in leaves]
        combined = f(pack_like(elems, current), pack_like(elems, carry)) if reverse else \
            f(pack_like(elems, carry), pack_like(elems, current))
        carry = flatten(combined)
        results.append(carry)
    if reverse:
        results.reverse()
    stacked = [concatenate([expand_dims(r[k], axis) for r in results], axis=axis)
               for k in range(len(leaves))]
    return pack_like(elems, stacked)


def vectorized_map(function, elements):
    """function applied to each slice along the first axis (of a tensor, or of every tensor
    of a list, passed together), results stacked; run as a Python loop."""
    if isinstance(elements, (list, tuple)):
        n = shape(elements[0])[0]
        outputs = [function([x[i] for x in elements]) for i in range(n)]
    else:
        outputs = [function(elements[i]) for i in range(shape(elements)[0])]
    return _stack_outputs(outputs, outputs[0])


def custom_gradient(f):
    """Decorate ``f(*args) -> (outputs, grad_fn)`` so its gradient is ``grad_fn(upstream)``:
    f runs on values (nothing inside it is recorded) and the call is one node on the tape.
    ``grad_fn`` returns one gradient per argument; it may take the upstream gradient
    positionally (JAX, TensorFlow) or as ``upstream=`` (Keras' PyTorch style)."""
    def wrapped(*args, **kwargs):
        if current_tape() is None:
            return f(*args, **kwargs)[0]
        leaves = flatten(list(args))
        positions = [i for i, a in enumerate(leaves) if needs_grad(a)]
        with _paused_tape():
            outputs, grad_fn = f(*map_structure(value_of, list(args)), **kwargs)
        if not positions:
            return outputs
        flat_out = [np.asarray(value_of(o)) for o in flatten(outputs)]
        parameter = inspect.signature(grad_fn).parameters.get("upstream")
        by_keyword = parameter is not None and parameter.kind == inspect.Parameter.KEYWORD_ONLY

        def vjp(g, needs):
            upstream = g if len(flat_out) == 1 else [
                np.zeros_like(o) if gi is None else gi for gi, o in zip(g, flat_out)]
            with _paused_tape():
                grads = grad_fn(upstream=upstream) if by_keyword else grad_fn(upstream)
            grads = list(grads) if isinstance(grads, (list, tuple)) else [grads]
            if len(grads) != len(leaves):
                raise ValueError(f"custom_gradient: {wrapped.__name__}'s grad_fn returned "
                                 f"{len(grads)} gradients for {len(leaves)} arguments")
            return tuple(None if grads[i] is None else np.asarray(value_of(grads[i]))
                         for i in positions)
        result = record(tuple(flat_out) if len(flat_out) > 1 else flat_out[0],
                        [leaves[i] for i in positions], vjp, wrapped.__name__)
        return pack_like(outputs, list(result) if len(flat_out) > 1 else [result])
    wrapped.__name__ = getattr(f, "__name__", "custom_gradient")
    wrapped.__doc__ = f.__doc__
    return wrapped


class _paused_tape:  # noqa: N801 - used as a context manager
    """Stop recording on this thread for a while (custom_gradient's forward and rule)."""

    def __enter__(self):
        from .. import autodiff
        self.saved = getattr(autodiff._local, "stack", None)
        autodiff._local.stack = []

    def __exit__(self, *exc):
        from .. import autodiff
        autodiff._local.stack = self.saved
