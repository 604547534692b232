"""An op used on symbolic tensors becomes a node of the functional graph: an Operation
layer that calls the op again on real data (``x = layers.Dense(8)(inputs); x = x * 2``).

The node keeps the op's arguments with each symbolic tensor replaced by a slot; the
tensors are the layer's inputs. Files store the op's name and those arguments as plain
JSON (numbers, strings, lists, tuples, slices, small constant arrays); loading looks the
name up among convnet.ops' public ops only, so a file can never name other code.
"""
import numpy as np

from ..graph import KerasTensor, flatten, map_structure, pack_like
from ..layers.base import Layer, _TrainingContext, _unique_name

#: the largest constant array an Operation stores in a model file's header
MAX_SAVED_CONSTANT = 1 << 16
_SUBMODULES = ("image", "linalg")


class _Slot:
    """Where the i-th symbolic input goes in an op's arguments."""
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def symbolic_call(op, args, kwargs):
    """``op(*args, **kwargs)`` on symbolic tensors: a new Operation node, called on them."""
    tensors = []

    def take(x):
        if isinstance(x, KerasTensor):
            tensors.append(x)
            return _Slot(len(tensors) - 1)
        return x

    template_args = map_structure(take, list(args))
    template_kwargs = {k: map_structure(take, v) for k, v in kwargs.items()}
    return Operation(op, template_args, template_kwargs)(*tensors)


class Operation(Layer):
    """Calls ``convnet.ops.<op>`` with the saved arguments and its inputs in their slots; it
    has no weights and never casts its inputs."""

    def __init__(self, op, args=None, kwargs=None, name=None, **layer_kwargs):
        fn = _lookup(op) if isinstance(op, str) else op
        layer_kwargs["autocast"] = False
        super().__init__(name=name or _unique_name(fn.__name__), **layer_kwargs)
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "op_args", list(args or []))
        object.__setattr__(self, "op_kwargs", dict(kwargs or {}))
        self.built = True

    def _fill(self, tensors):
        def put(x):
            return tensors[x.index] if isinstance(x, _Slot) else x
        args = map_structure(put, self.op_args)
        kwargs = {k: map_structure(put, v) for k, v in self.op_kwargs.items()}
        return args, kwargs

    def call(self, *tensors):
        args, kwargs = self._fill(tensors)
        return self.fn(*args, **kwargs)

    def _check_on_tape(self, args, kwargs, outputs):
        """Ops record themselves (or are constants on purpose: zeros_like, stop_gradient)."""

    def _infer_outputs(self, args, kwargs, training):
        """Output specs: run the op on concrete probes twice, every unknown size set to 2 and
        then to 3; a dimension that follows the probe is unknown (None). Probes are seeded
        normal values (zeros for integers), then zeros, then identity matrices, so that
        ops undefined at some inputs (cholesky, inv, log) still find their shapes."""
        runs, error = [], None
        for fill in ("normal", "zeros", "eye"):
            try:
                with np.errstate(all="ignore"), _TrainingContext(False):
                    runs = [self.call(*[_probe(t, size, fill) for t in args])
                            for size in (2, 3)]
                break
            except Exception as e:  # noqa: BLE001 - any failure: try the next probe
                error = e
        if not runs:
            raise ValueError(f"ops.{self.fn.__name__} on symbolic inputs "
                             f"{[t.shape for t in args]}: {type(error).__name__}: "
                             f"{error}") from error
        first, second = (flatten(r) for r in runs)

        def spec(a, b):
            a, b = np.asarray(a), np.asarray(b)
            shape = tuple(da if da == db else None for da, db in zip(a.shape, b.shape))
            return KerasTensor(shape, a.dtype)

        return pack_like(runs[0], [spec(a, b) for a, b in zip(first, second)])

    def get_config(self):
        config = super().get_config()
        who = f"Operation '{self.name}' (ops.{self.fn.__name__})"
        return {**config, "op": _qualified_name(self.fn),
                "args": _encode(self.op_args, who), "kwargs": _encode(self.op_kwargs, who)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        op = config.pop("op")
        args = _decode(config.pop("args", []))
        kwargs = _decode(config.pop("kwargs", {}))
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError(f"Operation {op!r}: args must be a list and kwargs a dict")
        return cls(op, args, kwargs, **config)


def _probe(tensor, size, fill):
    shape = tuple(size if d is None else d for d in tensor.shape)
    dtype = tensor.dtype
    if fill == "normal" and dtype.kind in "fc":
        return np.random.default_rng(size).standard_normal(shape).astype(dtype)
    if fill == "eye" and len(shape) >= 2:
        return np.broadcast_to(np.eye(shape[-2], shape[-1], dtype=dtype), shape).copy()
    if fill == "eye":
        return np.ones(shape, dtype)
    return np.zeros(shape, dtype)


def _qualified_name(fn):
    module = fn.__module__.rsplit(".", 1)[-1]
    return f"{module}.{fn.__name__}" if module in _SUBMODULES else fn.__name__


def _lookup(name):
    """The public op a file names: a function of convnet.ops' __all__ (or of ops.image /
    ops.linalg), nothing else."""
    from .. import ops
    if not isinstance(name, str):
        raise ValueError(f"a saved Operation must name an op, got {name!r:.100}")
    module, _, short = name.rpartition(".")
    namespace = getattr(ops, module) if module in _SUBMODULES else ops if not module else None
    fn = getattr(namespace, short, None) if namespace is not None and \
        short in getattr(namespace, "__all__", ()) else None
    if fn is None or not getattr(fn, "is_keras_op", False):
        raise ValueError(f"unknown op {name!r:.100}; a saved Operation must name a public op "
                         f"of convnet.ops")
    return fn


# ----------------------------------------------------------------------------- arguments as JSON

def _encode(x, who):
    if isinstance(x, _Slot):
        return {"__tensor__": x.index}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.dtype) or isinstance(x, type) and issubclass(x, np.generic):
        return np.dtype(x).name
    if x is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(x, slice):
        return {"__slice__": [_encode(v, who) for v in (x.start, x.stop, x.step)]}
    if isinstance(x, tuple):
        return {"__tuple__": [_encode(v, who) for v in x]}
    if isinstance(x, list):
        return [_encode(v, who) for v in x]
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        return {"__dict__": {k: _encode(v, who) for k, v in x.items()}}
    if isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
        if x.size > MAX_SAVED_CONSTANT:
            raise TypeError(f"{who}: cannot save a constant array of {x.size} elements in the "
                            f"model file; make it a layer weight (add_weight) instead")
        return {"__array__": x.tolist(), "dtype": x.dtype.name}
    raise TypeError(f"{who}: cannot save an argument of type {type(x).__name__} (a model file "
                    f"holds numbers, strings, tuples, lists, slices and small arrays)")


def _decode(x):
    if isinstance(x, list):
        return [_decode(v) for v in x]
    if not isinstance(x, dict):
        return x
    if not x:
        return {}
    if set(x) == {"__tensor__"} and isinstance(x["__tensor__"], int):
        return _Slot(x["__tensor__"])
    if set(x) == {"__ellipsis__"}:
        return Ellipsis
    if set(x) == {"__slice__"} and isinstance(x["__slice__"], list) and len(x["__slice__"]) == 3:
        return slice(*(_decode(v) for v in x["__slice__"]))
    if set(x) == {"__tuple__"} and isinstance(x["__tuple__"], list):
        return tuple(_decode(v) for v in x["__tuple__"])
    if set(x) == {"__dict__"} and isinstance(x["__dict__"], dict):
        return {k: _decode(v) for k, v in x["__dict__"].items()}
    if set(x) == {"__array__", "dtype"}:
        dtype = np.dtype(x["dtype"])
        if dtype.kind not in "biuf":
            raise ValueError(f"a saved constant array must be numeric, got dtype {dtype}")
        return np.asarray(x["__array__"], dtype=dtype)
    raise ValueError(f"invalid op argument in the model file: {x!r:.100}")
