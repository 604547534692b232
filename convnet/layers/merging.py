"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, and their
functional forms (``layers.add([a, b])``, ...), as in Keras.

Elementwise merges broadcast like NumPy (a size-1 or missing axis stretches), so a
gradient is summed back over the axes an input was stretched along.
"""
import numpy as np

from ..autodiff import unbroadcast
from .base import Layer


def _broadcast_shapes(shapes, who):
    """The broadcast of shapes that may hold None (unknown) sizes, or a clear error."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        known = {d for d in sizes if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"{who}: inputs of shapes {[tuple(s) for s in shapes]} cannot be "
                             f"merged elementwise (axis {axis - rank} has sizes {sorted(known)})")
        if known:
            out.append(known.pop())
        elif any(d is None for d in sizes):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


class _Merge(Layer):
    """The shared part: a list of at least two inputs, elementwise, with broadcasting."""
    min_inputs = 2
    max_inputs = None

    def _check_inputs(self, shapes):
        who = self.describe()
        if not isinstance(shapes, (list, tuple)) or not shapes or not all(
                isinstance(s, (list, tuple)) for s in shapes):
            raise ValueError(f"{who} must be called on a list of tensors, e.g. "
                             f"{type(self).__name__}()([a, b])")
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            expected = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                        else f"at least {self.min_inputs}")
            raise ValueError(f"{who} takes {expected} inputs, got {n}")

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        return _broadcast_shapes([tuple(s) for s in input_shape], self.describe())

    def _forward(self, xs, training):
        # A merge has no weights, so it is built at construction and takes any inputs that
        # broadcast together: they are checked here, on every call.
        self.compute_output_shape([x.shape for x in xs])
        y = self._merge(xs)
        return y, ({"xs": xs, "y": y} if training else None)

    def _backward_op(self, ctx, grad_y, need_input_grad):
        xs = ctx["xs"]
        grads = self._merge_grads(xs, ctx["y"], grad_y)
        return [unbroadcast(g, x.shape).astype(x.dtype, copy=False) for g, x in zip(grads, xs)], []


class Add(_Merge):
    """Elementwise sum of the inputs."""

    def _merge(self, xs):
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y = y + x
        return y

    def _merge_grads(self, xs, y, g):
        return [g] * len(xs)


class Subtract(_Merge):
    """inputs[0] - inputs[1] (exactly two inputs)."""
    max_inputs = 2

    def _merge(self, xs):
        return xs[0] - xs[1]

    def _merge_grads(self, xs, y, g):
        return [g, -g]


class Multiply(_Merge):
    """Elementwise product of the inputs."""

    def _merge(self, xs):
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        return y

    def _merge_grads(self, xs, y, g):
        grads = []
        for i in range(len(xs)):
            others = g
            for j, x in enumerate(xs):
                if j != i:
                    others = others * x
            grads.append(others)
        return grads


class Average(_Merge):
    """Elementwise mean of the inputs."""

    def _merge(self, xs):
        return Add._merge(self, xs) / xs[0].dtype.type(len(xs))

    def _merge_grads(self, xs, y, g):
        return [g / g.dtype.type(len(xs))] * len(xs)


class _Extremum(_Merge):
    """Maximum / Minimum, taken pairwise left to right as Keras does, so where inputs tie
    the earliest one wins and alone gets the gradient."""

    def _merge(self, xs):
        y = xs[0]
        for x in xs[1:]:
            y = self._pick(y, x)
        return y

    def _merge_grads(self, xs, y, g):
        shape = np.broadcast_shapes(*[x.shape for x in xs])
        winner = np.zeros(shape, dtype=np.int64)
        best = np.broadcast_to(xs[0], shape)
        for i, x in enumerate(xs[1:], start=1):
            better = self._beats(x, best)
            winner = np.where(better, i, winner)
            best = np.where(better, x, best)
        return [np.where(winner == i, g, 0).astype(g.dtype, copy=False) for i in range(len(xs))]


class Maximum(_Extremum):
    """Elementwise maximum of the inputs (NaN propagates)."""

    def _pick(self, a, b):
        return np.maximum(a, b)

    def _beats(self, x, best):
        return x > best


class Minimum(_Extremum):
    """Elementwise minimum of the inputs (NaN propagates)."""

    def _pick(self, a, b):
        return np.minimum(a, b)

    def _beats(self, x, best):
        return x < best


class Concatenate(_Merge):
    """Joins the inputs along `axis` (default the last: channels in NHWC); every other
    dimension must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self.describe()}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0])
        who = self.describe()
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"{who}: inputs must have the same rank, got shapes {shapes}")
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"{who}: axis {self.axis} is out of range for inputs of rank "
                             f"{rank} (the batch axis 0 cannot be joined)")
        out = []
        for i in range(rank):
            sizes = [s[i] for s in shapes]
            if i == axis:
                out.append(None if None in sizes else sum(sizes))
                continue
            known = {d for d in sizes if d is not None}
            if len(known) > 1 and i != 0:
                raise ValueError(f"{who}: inputs of shapes {shapes} differ on axis {i}; only "
                                 f"axis {self.axis} may differ")
            out.append(known.pop() if known else None)
        return tuple(out)

    def _forward(self, xs, training):
        self.compute_output_shape([x.shape for x in xs])
        y = np.concatenate(xs, axis=self.axis)
        return y, ([x.shape[self.axis] for x in xs] if training else None)

    def _backward_op(self, sizes, grad_y, need_input_grad):
        cuts = np.cumsum(sizes)[:-1]
        return [np.ascontiguousarray(g) for g in np.split(grad_y, cuts, axis=self.axis)], []

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """The functional form of Add: ``layers.add([a, b])``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """The functional form of Concatenate: ``layers.concatenate([a, b], axis=-1)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
