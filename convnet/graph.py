"""Symbolic tensors and the call records that make a functional model's graph.

``keras.Input(shape)`` returns a ``KerasTensor``: a shape (batch axis None)
and a dtype, with no value. Calling a layer on KerasTensors records a
``CallNode`` (which layer, on which tensors, with which other arguments) and
returns new KerasTensors whose shapes the layer inferred; each remembers the
node that made it (``_keras_history``). ``convnet.models.Functional`` walks
those records back from its outputs once, when the model is made.
"""
import numpy as np

from .autodiff import Operators


# ----------------------------------------------------------------------------- nested structures

def flatten(structure):
    """The leaves of nested lists, tuples and dicts (dicts in sorted key order), in order."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return [structure]


def map_structure(fn, structure):
    """The same nesting with fn applied to every leaf."""
    if isinstance(structure, list):
        return [map_structure(fn, item) for item in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_structure(fn, value) for key, value in structure.items()}
    return fn(structure)


def pack_like(structure, leaves):
    """`leaves` (in flatten's order) put back into the nesting of `structure`."""
    leaves = iter(leaves)

    def rebuild(item):
        if isinstance(item, list):
            return [rebuild(x) for x in item]
        if isinstance(item, tuple):
            return tuple(rebuild(x) for x in item)
        if isinstance(item, dict):
            rebuilt = {key: rebuild(item[key]) for key in sorted(item)}
            return {key: rebuilt[key] for key in item}
        return next(leaves)

    return rebuild(structure)


# ----------------------------------------------------------------------------- symbolic tensors

class KerasTensor(Operators):
    """A symbolic tensor: shape and dtype, and the call that made it (None for an Input)."""

    def __init__(self, shape, dtype="float32", name=None, history=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self._keras_history = history  # (layer, node index, tensor index)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is symbolic: it has no value. Build a model with "
                        f"keras.Model(inputs, outputs) and call it on data")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value (a Python `if` on it "
                        f"cannot be recorded in a functional model)")

    def __repr__(self):
        source = f", name={self.name}" if self.name else ""
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}{source}>"


class CallNode:
    """One call of a layer on symbolic tensors: the layer, the arguments (KerasTensors
    where tensors went), and the output tensors. A layer called twice has two nodes and
    one set of weights."""

    def __init__(self, layer, args, kwargs, outputs):
        self.layer = layer
        self.args, self.kwargs = args, kwargs
        self.input_tensors = [x for x in flatten((args, kwargs)) if isinstance(x, KerasTensor)]
        self.outputs = outputs
        self.output_tensors = flatten(outputs)
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for i, tensor in enumerate(self.output_tensors):
            tensor._keras_history = (layer, self.index, i)

    @property
    def parent_nodes(self):
        """The nodes that made this node's inputs (Input tensors have none)."""
        parents = []
        for tensor in self.input_tensors:
            layer, index, _ = tensor._keras_history
            parents.append(layer._inbound_nodes[index])
        return parents

    def __repr__(self):
        return f"<CallNode {self.layer.name}#{self.index}>"


def has_symbolic(structure):
    return any(isinstance(x, KerasTensor) for x in flatten(structure))
