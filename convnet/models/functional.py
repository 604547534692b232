"""Functional models: the graph of layer calls between keras.Input tensors and outputs.

``keras.Model(inputs, outputs)`` walks the call records (graph.CallNode) back
from the outputs once, checks that every path starts at one of the inputs, and
keeps the nodes in topological order. Calling the model runs them in that order
on real data; inside a training step each layer call records itself on the tape,
so the backward pass is the tape's, in reverse topological order, with the
gradients of a tensor used twice (a residual connection) summed and a layer
called twice (shared weights) getting the gradients of both calls.
"""
import numpy as np

from ..graph import KerasTensor, flatten, map_structure, pack_like
from ..layers.core import InputLayer
from .model import Model, input_layer_of


def _node_of(tensor):
    layer, index, _ = tensor._keras_history
    return layer._inbound_nodes[index]


def _structure_of_tensors(value, what, who):
    leaves = flatten(value)
    if not leaves:
        raise ValueError(f"{who}: {what} is empty")
    for leaf in leaves:
        if not isinstance(leaf, KerasTensor):
            raise TypeError(f"{who}: every entry of {what} must be a symbolic tensor "
                            f"(from keras.Input or a layer called on one), got "
                            f"{type(leaf).__name__}")
    return leaves


class Functional(Model):
    """A model defined by ``keras.Model(inputs, outputs)`` (lists or dicts of tensors)."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        who = f"Model '{self.name}'"
        if isinstance(inputs, dict):
            inputs = {k: inputs[k] for k in inputs}
        input_tensors = _structure_of_tensors(inputs, "inputs", who)
        output_tensors = _structure_of_tensors(outputs, "outputs", who)
        for tensor in input_tensors:
            if input_layer_of(tensor) is None:
                raise ValueError(f"{who}: inputs must be tensors returned by keras.Input; "
                                 f"{tensor!r} was made by layer "
                                 f"'{tensor._keras_history[0].name}'")
        object.__setattr__(self, "_inputs_struct", inputs)
        object.__setattr__(self, "_outputs_struct", outputs)
        object.__setattr__(self, "_input_tensors", input_tensors)
        object.__setattr__(self, "_output_tensors", output_tensors)
        object.__setattr__(self, "_nodes", self._topological_nodes(who))
        seen = set()
        for node in self._nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                self._layers.append(node.layer)
        self.built = True
        self.input_shape = map_structure(lambda t: t.shape, inputs)

    def _topological_nodes(self, who):
        """Every call node between the inputs and the outputs, each after its parents (the
        Input nodes first, in the order of the inputs); an output that depends on an Input
        not among `inputs` means a disconnected graph."""
        known = {id(t) for t in self._input_tensors}
        order = [_node_of(t) for t in self._input_tensors]
        done = {id(node) for node in order}

        def leaf(tensor, consumer):
            node = _node_of(tensor)
            if id(tensor) not in known:
                needed_by = f"layer '{consumer.name}'" if consumer else "an output"
                raise ValueError(
                    f"{who}: the graph is disconnected: {needed_by} needs input "
                    f"'{node.layer.name}' (shape {tensor.shape}), which is not among the "
                    f"model's inputs {[t.name for t in self._input_tensors]}")

        for output in self._output_tensors:
            root = _node_of(output)
            if isinstance(root.layer, InputLayer):
                leaf(output, None)
                continue
            if id(root) in done:
                continue
            stack = [(root, iter(root.input_tensors))]
            while stack:
                node, pending = stack[-1]
                for tensor in pending:
                    parent = _node_of(tensor)
                    if isinstance(parent.layer, InputLayer):
                        leaf(tensor, node.layer)
                    elif id(parent) not in done:
                        stack.append((parent, iter(parent.input_tensors)))
                        break
                else:
                    stack.pop()
                    if id(node) not in done:
                        done.add(id(node))
                        order.append(node)
        return order

    # -- structure ----------------------------------------------------------------------------

    @property
    def layers(self):
        """Every layer of the graph in topological order, Input layers included (as Keras)."""
        return list(self._layers)

    @property
    def inputs(self):
        return list(self._input_tensors)

    @property
    def outputs(self):
        return list(self._output_tensors)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_names(self):
        return [input_layer_of(t).name for t in self._input_tensors]

    @property
    def output_names(self):
        if isinstance(self._outputs_struct, dict):
            return sorted(self._outputs_struct)
        return [t._keras_history[0].name for t in self._output_tensors]

    @property
    def output_shape(self):
        return map_structure(lambda t: t.shape, self._outputs_struct)

    def compute_output_shape(self, input_shape):
        return map_structure(lambda t: t.shape, self._outputs_struct)

    def _build_from_data(self, x):
        pass

    # -- running -------------------------------------------------------------------------------

    def _flatten_inputs(self, inputs):
        """The model's inputs in the order of its input tensors, from whatever structure
        the user passed (one array, a list, or a dict by Input name)."""
        n = len(self._input_tensors)
        if isinstance(inputs, dict):
            if isinstance(self._inputs_struct, dict):
                keys = sorted(self._inputs_struct)
                missing = [k for k in keys if k not in inputs]
                if missing:
                    raise ValueError(f"Model '{self.name}': inputs dict lacks {missing}")
                return [inputs[k] for k in keys]
            names = self.input_names
            missing = [k for k in names if k not in inputs]
            if missing:
                raise ValueError(f"Model '{self.name}': inputs dict lacks {missing} (its "
                                 f"inputs are named {names})")
            return [inputs[k] for k in names]
        if n == 1:
            if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                return [inputs[0]]
            return [inputs]
        if not isinstance(inputs, (list, tuple)) or len(inputs) != n:
            raise ValueError(f"Model '{self.name}' has {n} inputs; pass a list of {n} arrays "
                             f"or a dict by input name")
        return list(inputs)

    def call(self, inputs, training=False):
        values = {}
        for tensor, value in zip(self._input_tensors, self._flatten_inputs(inputs)):
            values[id(tensor)] = value
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue

            def lookup(x):
                return values[id(x)] if isinstance(x, KerasTensor) else x

            args = map_structure(lookup, node.args)
            kwargs = {k: map_structure(lookup, v) for k, v in node.kwargs.items()}
            outputs = node.layer(*args, training=training, **kwargs)
            for tensor, value in zip(node.output_tensors, flatten(outputs)):
                values[id(tensor)] = value
        return pack_like(self._outputs_struct, [values[id(t)] for t in self._output_tensors])

    def _convert_python_input(self, x):
        return x

    # -- config ----------------------------------------------------------------------------

    def get_config(self):
        """Keras' functional config: each layer with the nodes that feed it, and the model's
        inputs and outputs as [layer name, node index, tensor index]."""
        from ..layers import serialize
        node_keys = {}
        layer_configs = []
        for layer in self._layers:
            kept = [n for n in layer._inbound_nodes if n in self._nodes]
            for i, node in enumerate(kept):
                node_keys[id(node)] = i
            entry = serialize(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = [
                {"args": _encode(node.args, node_keys), "kwargs": _encode(node.kwargs, node_keys)}
                for node in kept if not isinstance(layer, InputLayer)]
            layer_configs.append(entry)

        def ref(tensor):
            layer, index, t_index = tensor._keras_history
            return [layer.name, node_keys[id(layer._inbound_nodes[index])], t_index]

        return {"name": self.name, "trainable": self.trainable, "layers": layer_configs,
                "input_layers": map_structure(ref, self._inputs_struct),
                "output_layers": map_structure(ref, self._outputs_struct)}

    @classmethod
    def from_config(cls, config):
        """Rebuild the graph: make each layer, then call it on the tensors its nodes name,
        in the saved order (each layer's inputs precede it)."""
        from . import deserialize
        tensors, pending = {}, []
        for entry in config["layers"]:
            layer = deserialize({"class_name": entry["class_name"], "config": entry["config"]})
            if isinstance(layer, InputLayer):
                tensors[(entry["name"], 0)] = [layer.output]
            else:
                pending.append([layer, entry["name"], list(entry.get("inbound_nodes", [])), 0])
        # A shared layer's later calls may need tensors of layers listed after it: call each
        # layer's nodes in order, as soon as their inputs exist.
        while pending:
            progressed = False
            for item in pending:
                layer, name, nodes, done = item
                while done < len(nodes) and _ready(nodes[done], tensors):
                    node = nodes[done]
                    outputs = layer(*_decode(node["args"], tensors),
                                    **_decode(node["kwargs"], tensors))
                    tensors[(name, done)] = flatten(outputs)
                    done += 1
                    progressed = True
                item[3] = done
            pending = [item for item in pending if item[3] < len(item[2])]
            if pending and not progressed:
                raise ValueError(f"Model '{config['name']}': the saved graph refers to layer "
                                 f"outputs that no layer makes ({pending[0][1]})")

        def resolve(ref):
            name, node_index, tensor_index = ref
            return tensors[(name, node_index)][tensor_index]

        inputs = _map_refs(resolve, config["input_layers"])
        outputs = _map_refs(resolve, config["output_layers"])
        return cls(inputs, outputs, name=config["name"], trainable=config.get("trainable", True))


def _encode(structure, node_keys):
    """Node arguments as JSON: a tensor becomes {"keras_history": [layer, node, index]}."""
    def encode(x):
        if isinstance(x, KerasTensor):
            layer, index, t_index = x._keras_history
            return {"keras_history": [layer.name, node_keys[id(layer._inbound_nodes[index])],
                                      t_index]}
        if isinstance(x, (bool, int, float, str)) or x is None:
            return x
        if isinstance(x, np.generic):
            return x.item()
        raise TypeError(f"cannot save a layer argument of type {type(x).__name__}")
    if isinstance(structure, tuple):
        return [_encode(item, node_keys) for item in structure]
    return map_structure(encode, structure)


def _ready(node, tensors):
    refs = []

    def collect(structure):
        if isinstance(structure, dict) and set(structure) == {"keras_history"}:
            refs.append(tuple(structure["keras_history"][:2]))
        elif isinstance(structure, list):
            for item in structure:
                collect(item)
        elif isinstance(structure, dict):
            for item in structure.values():
                collect(item)

    collect([node.get("args"), node.get("kwargs")])
    return all(ref in tensors for ref in refs)


def _decode(structure, tensors):
    if isinstance(structure, dict) and set(structure) == {"keras_history"}:
        name, node_index, tensor_index = structure["keras_history"]
        return tensors[(name, node_index)][tensor_index]
    if isinstance(structure, list):
        return [_decode(item, tensors) for item in structure]
    if isinstance(structure, dict):
        return {k: _decode(v, tensors) for k, v in structure.items()}
    return structure


def _map_refs(fn, refs):
    """Apply fn to each [name, node, index] triple in a (possibly nested) list or dict."""
    if isinstance(refs, dict):
        return {k: _map_refs(fn, v) for k, v in refs.items()}
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return fn(refs)
    return [_map_refs(fn, r) for r in refs]
