"""Weights as Keras variables: an array with a name, a trainable flag and ``assign``."""
import contextlib
import threading

import numpy as np

from .autodiff import Operators

_deferred = threading.local()


@contextlib.contextmanager
def stateless_scope():
    """Writes to variables are dropped inside: shape inference runs a layer's call on zeros
    without changing its state (Keras traces call symbolically for the same purpose)."""
    saved = getattr(_deferred, "stateless", False)
    _deferred.stateless = True
    try:
        yield
    finally:
        _deferred.stateless = saved


def _stateless():
    return getattr(_deferred, "stateless", False)


@contextlib.contextmanager
def deferred_initialization():
    """Variables made inside take their shape and dtype but no value until their first
    ``assign``: a model file's architecture is built and checked against the file before
    any weight is allocated (a forged file cannot make convnet allocate what it declares)."""
    saved = getattr(_deferred, "on", False)
    _deferred.on = True
    try:
        yield
    finally:
        _deferred.on = saved


class Variable(Operators):
    """A layer's weight, as ``keras.Variable``.

    Its storage is one C-contiguous ndarray that never moves: ``np.asarray(v)`` and
    ``v.value`` are that array (no copy), optimizers update it in place, and a
    compiled kernel reads it directly. ``assign``, ``assign_add`` and
    ``assign_sub`` (and ``+=``-style operators) write into it and bump
    ``version``, which layers use to know when a cached transform of the weight is
    stale. Operators and indexing go through ``convnet.ops``: inside a training step
    they are recorded on the tape (a trainable variable is a leaf whose gradient the
    tape collects); elsewhere they give plain arrays.
    """
    __slots__ = ("_value", "_shape", "_dtype", "_trainable", "name", "path", "regularizer",
                 "constraint", "version", "__weakref__")

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, name=None,
                 regularizer=None, constraint=None):
        from . import backend, initializers
        dtype = np.dtype(backend.floatx() if dtype is None else backend.standardize_dtype(dtype))
        if isinstance(initializer, str):
            initializer = initializers.get(initializer)
        if callable(initializer) and not isinstance(initializer, np.ndarray):
            if shape is None:
                raise ValueError(f"Variable {name!r}: a shape is required with an initializer")
            shape = tuple(int(s) for s in shape)
            value = None if getattr(_deferred, "on", False) else initializer(shape, dtype=dtype)
        else:
            value = np.asarray(initializer.value if isinstance(initializer, Variable)
                               else initializer)
            if shape is not None and tuple(value.shape) != tuple(shape):
                raise ValueError(f"Variable {name!r}: initial value of shape {value.shape} does "
                                 f"not match shape {tuple(shape)}")
            shape = value.shape
        self._shape, self._dtype = tuple(shape), dtype
        self._value = None if value is None else np.array(value, dtype=dtype, order="C")
        self._trainable = bool(trainable)
        self.name = name or "variable"
        self.path = self.name
        self.regularizer = regularizer
        self.constraint = constraint
        self.version = 0

    # -- what it holds ---------------------------------------------------------------------

    @property
    def value(self):
        """The storage array itself (no copy)."""
        if self._value is None:
            raise ValueError(f"Variable {self.path} has no value yet (it was made while loading "
                             f"a model file and has not been assigned)")
        return self._value

    @property
    def shape(self):
        return self._shape

    @property
    def dtype(self):
        return self._dtype

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    def numpy(self):
        """A copy of the value, as a NumPy array."""
        return self.value.copy()

    def __array__(self, dtype=None, copy=None):
        value = self.value
        if dtype is not None and np.dtype(dtype) != value.dtype:
            return value.astype(dtype)
        return value.copy() if copy else value

    def __repr__(self):
        shown = "(deferred)" if self._value is None else np.array2string(
            self._value, threshold=6, edgeitems=2)
        return (f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype.name}, "
                f"value={shown}>")

    # -- writing ----------------------------------------------------------------------------

    def _incoming(self, value, method):
        array = np.asarray(value.value if isinstance(value, Variable) else value)
        if hasattr(value, "node"):  # a Tensor: take its value, off the tape
            array = np.asarray(value.value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"Variable {self.path}.{method}: expected numbers, got dtype "
                            f"{array.dtype}")
        if array.shape != self.shape:
            try:
                array = np.broadcast_to(array, self.shape)
            except ValueError:
                raise ValueError(f"Variable {self.path}.{method}: value of shape {array.shape} "
                                 f"does not match the variable's shape {self.shape}") from None
        return array

    def assign(self, value):
        incoming = self._incoming(value, "assign")
        if _stateless():
            return self
        if self._value is None:
            self._value = np.array(incoming, dtype=self._dtype, order="C")
        else:
            np.copyto(self._value, incoming, casting="unsafe")
        self.version += 1
        return self

    def assign_add(self, value):
        if _stateless():
            return self
        self.value[...] += self._incoming(value, "assign_add").astype(self.dtype, copy=False)
        self.version += 1
        return self

    def assign_sub(self, value):
        if _stateless():
            return self
        self.value[...] -= self._incoming(value, "assign_sub").astype(self.dtype, copy=False)
        self.version += 1
        return self

    def __iadd__(self, other):
        return self.assign_add(other)

    def __isub__(self, other):
        return self.assign_sub(other)

    def __imul__(self, other):
        self.value[...] *= self._incoming(other, "__imul__").astype(self.dtype, copy=False)
        self.version += 1
        return self

    def __itruediv__(self, other):
        self.value[...] /= self._incoming(other, "__itruediv__").astype(self.dtype, copy=False)
        self.version += 1
        return self

    def __setitem__(self, key, value):
        raise TypeError(f"Variable {self.path} does not support item assignment; use "
                        f"assign() (e.g. v.assign(convnet.ops.slice_update(v, start, update)))")
