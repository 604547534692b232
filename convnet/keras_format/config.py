"""config.json both ways: convnet's Sequential and functional models in Keras 3's
serialization schema, Keras' back into the configs convnet's own loader builds from; the
compile settings; and the order in which Keras walks a model's layers, which names each
layer's group in the weights file.

Keras' schema, as ``serialization_lib.serialize_keras_object`` writes it: every object is
``{"module", "class_name", "config", "registered_name"}`` plus ``build_config`` (layers with
a ``build``) and ``compile_config`` (models). A functional model's layers also carry their
``name`` and ``inbound_nodes``: one ``{"args", "kwargs"}`` per call, where a tensor is
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history": [layer,
node, index]}}``. Keras counts a nested functional model's calls from 1 in
``input_layers``/``output_layers`` (its own graph is node 0) and from 0 in call arguments;
convnet counts from 0 everywhere.
"""
import inspect

from .. import losses, optimizers, saving
from ..graph import KerasTensor, flatten, map_structure
from ..layers import InputLayer
from ..saving import ModelFileError
from .registry import (LAYERS_MODULE, dtype_policy, format_named, format_of, is_keras_module,
                       keras_object, keras_snake_case, known_classes)

MODEL_CLASSES = ("Sequential", "Functional")
FUNCTIONAL_MODULE = "keras.src.models.functional"


def _model_kind(obj):
    """"Sequential", "Functional", None for a layer; a subclassed model is refused."""
    from ..models import Functional, Model, Sequential
    if isinstance(obj, Sequential):
        return "Sequential"
    if isinstance(obj, Functional):
        return "Functional"
    if isinstance(obj, Model):
        raise ValueError(f"{obj.describe()} is a subclassed model ({type(obj).__name__}); its "
                         f"architecture is Python code, which a Keras file holds only as a "
                         f"class name. Save its weights with save_weights() and rebuild it in "
                         f"code")
    return None


# ----------------------------------------------------------------------------- layer order

def _node_of(tensor):
    layer, index, _ = tensor._keras_history
    return layer._inbound_nodes[index]


def functional_layers(model):
    """(layers in Keras' order, {id(node): index among the layer's nodes in the graph}).

    Keras' ops/function.py map_graph: a depth-first walk back from each output (in
    ``tree.flatten`` order, dict keys sorted) numbers each layer when first reached; each
    node's depth is the longest path from it to an output; layers run from the deepest down,
    ties in the order they were reached. Unused inputs come at depth 0, first."""
    finished, order, reached = set(), [], {}
    for output in model._output_tensors:
        root = _node_of(output)
        if id(root) in finished:
            continue
        reached.setdefault(id(root.layer), len(reached))
        stack = [(root, iter(root.input_tensors))]
        while stack:
            node, pending = stack[-1]
            for tensor in pending:
                parent = _node_of(tensor)
                if id(parent) not in finished:
                    reached.setdefault(id(parent.layer), len(reached))
                    stack.append((parent, iter(parent.input_tensors)))
                    break
            else:
                stack.pop()
                finished.add(id(node))
                order.append(node)
    node_depth, layer_depth, layers = {}, {}, {}
    for node in reversed(order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers[id(node.layer)] = node.layer
        for parent in node.parent_nodes:
            if id(parent) in finished:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for tensor in model._input_tensors:
        layer = tensor._keras_history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)], reached[id(layer)], layers[id(layer)] = 0, -1, layer
            finished.add(id(_node_of(tensor)))
    ordered = sorted(layers.values(), key=lambda l: (-layer_depth[id(l)], reached[id(l)]))
    node_index = {}
    for layer in ordered:
        kept = [node for node in layer._inbound_nodes if id(node) in finished]
        node_index.update((id(node), i) for i, node in enumerate(kept))
    return ordered, node_index


def model_layers(model):
    """The layers Keras' ``model.layers`` lists, in its order (Sequential: no InputLayer)."""
    if _model_kind(model) == "Sequential":
        return model.layers
    return functional_layers(model)[0]


def weight_groups(model, container="layers"):
    """(path of the "vars" group, object name, variables in stored order) for the model and
    each layer, as Keras' saving_lib walks them: a container's layers are named by their
    class in snake_case, numbered from the second of a class on (``dense``, ``dense_1``); a
    layer met twice is stored once."""
    groups, seen = [], set()

    def walk(obj, path):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        vars_path = f"{path}/vars" if path else "vars"
        if _model_kind(obj) is None:
            groups.append((vars_path, obj.name, list(format_of(obj).variables(obj))))
            return
        groups.append((vars_path, obj.name, []))
        used = {}
        for layer in model_layers(obj):
            base = keras_snake_case(_keras_class(layer))
            count = used.get(base)
            used[base] = 0 if count is None else count + 1
            name = base if count is None else f"{base}_{count + 1}"
            walk(layer, f"{path}/{container}/{name}" if path else f"{container}/{name}")

    walk(model, "")
    return groups


def _keras_class(obj):
    return _model_kind(obj) or format_of(obj).keras_class


# ----------------------------------------------------------------------------- writing

def to_keras(obj, compile_config=None):
    """The Keras serialization of a model or layer (compile_config for the top model)."""
    kind = _model_kind(obj)
    if kind is None:
        layer_format = format_of(obj)
        entry = {"module": LAYERS_MODULE, "class_name": layer_format.keras_class,
                 "config": layer_format.keras_config(obj), "registered_name": None}
        shape = obj.input_shape if obj.input_shape is not None else getattr(
            obj, "first_input_shape", None)
        if layer_format.build_config and obj.built and shape is not None:
            entry["build_config"] = {"input_shape": shape}
        return entry
    if kind == "Sequential":
        entry = {"module": "keras", "class_name": "Sequential",
                 "config": _sequential_config(obj), "registered_name": None}
        if obj._input_layer is not None:
            entry["build_config"] = {"input_shape": list(obj._input_layer.batch_shape)}
    else:
        entry = {"module": FUNCTIONAL_MODULE, "class_name": "Functional",
                 "config": _functional_config(obj), "registered_name": "Functional",
                 "build_config": {"input_shape": None}}
    entry["compile_config"] = compile_config or {}
    return entry


def _sequential_config(model):
    if not model.built or model._input_layer is None:
        raise ValueError(f"save: Sequential '{model.name}' has not been built yet: start it "
                         f"with Input(shape) or call build(input_shape) before saving")
    first = model._input_layer
    config = {"name": model.name, "trainable": model.trainable,
              "dtype": dtype_policy(model.dtype.name),
              "layers": [to_keras(layer) for layer in [first, *model.layers]],
              "build_input_shape": [first.batch_size, *first.shape]}
    return config


def _functional_config(model):
    ordered, node_index = functional_layers(model)
    functional = {id(layer) for layer in ordered if _model_kind(layer) == "Functional"}

    def tensor(x):
        layer, index, t_index = x._keras_history
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(x.shape), "dtype": x.dtype.name,
                           "keras_history": [layer.name,
                                             node_index[id(layer._inbound_nodes[index])],
                                             t_index]}}

    def encode(value):
        if isinstance(value, KerasTensor):
            return tensor(value)
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError(f"save: Model '{model.name}' calls a layer with a {type(value).__name__}"
                         f" argument, which Keras' format cannot hold")

    def ref(x):
        layer, index, t_index = x._keras_history
        shift = 1 if id(layer) in functional else 0
        return [layer.name, node_index[id(layer._inbound_nodes[index])] + shift, t_index]

    entries = []
    for layer in ordered:
        entry = to_keras(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [] if isinstance(layer, InputLayer) else [
            {"args": encode(node.args), "kwargs": encode(node.kwargs)}
            for node in layer._inbound_nodes if id(node) in node_index]
        entries.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": map_structure(ref, model._inputs_struct),
            "output_layers": map_structure(ref, model._outputs_struct)}


def compile_to_keras(model):
    """Keras' compile_config from convnet's compile settings ({} when not compiled)."""
    settings = saving._compile_config(model)
    if settings is None:
        return {}
    optimizer = settings["optimizer"]
    config = dict(optimizer["config"])
    schedule = config.get("learning_rate")
    if isinstance(schedule, dict):
        config["learning_rate"] = _keras_entry("keras.optimizers.schedules", schedule)

    def loss(entry):
        return entry if entry is None else _keras_entry("keras.losses", entry)

    loss_config = settings["loss"]
    if isinstance(loss_config, dict) and "class_name" not in loss_config:
        loss_config = {k: loss(v) for k, v in loss_config.items()}
    elif isinstance(loss_config, list):
        loss_config = [loss(v) for v in loss_config]
    else:
        loss_config = loss(loss_config)
    return {"optimizer": _keras_entry("keras.optimizers",
                                      {"class_name": optimizer["class_name"], "config": config}),
            "loss": loss_config, "loss_weights": settings["loss_weights"],
            "metrics": settings["metrics"],
            "weighted_metrics": saving._serialize_metrics(model._user_weighted_metrics),
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _keras_entry(module, entry):
    return {"module": module, "class_name": entry["class_name"], "config": entry["config"],
            "registered_name": None}


# ----------------------------------------------------------------------------- reading

def _entry_parts(entry, who):
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) \
            or not isinstance(entry.get("config"), dict):
        raise ModelFileError(f"{who}: a layer entry is not a {{class_name, config}} object: "
                             f"{entry!r:.200}")
    return entry["class_name"], entry["config"]


def from_keras(entry, who="the model"):
    """convnet's {"class_name", "config"} for a Keras serialized model or layer, from a fixed
    list of classes: anything else is refused, named."""
    class_name, config = _entry_parts(entry, who)
    module, registered = entry.get("module"), entry.get("registered_name")
    who = f"{who}: layer {config.get('name', class_name)!r}"
    if class_name in MODEL_CLASSES and registered in (None, class_name) \
            and _from(module, "keras", "keras.models", "keras.src.models."):
        return (_sequential_from_keras if class_name == "Sequential"
                else _functional_from_keras)(config, who)
    layer_format = format_named(class_name)
    # Keras writes its layers under their public module; a keras.ops operation in a
    # functional model (module keras.src.ops.*) may share a layer's class name.
    keras_layer = _from(module, LAYERS_MODULE, "keras.src.layers.")
    if layer_format is None or not keras_layer or registered not in (None, class_name):
        origin = "" if keras_layer else f" from module {module!r}"
        why = (" (a Lambda layer holds Python code, which convnet never loads)"
               if class_name == "Lambda" else
               " (keras.ops in a functional model are not read yet: use layers)"
               if isinstance(module, str) and module.startswith("keras.src.ops") else "")
        raise ModelFileError(
            f"{who}: class {class_name!r}{origin} is not supported{why}; convnet reads Keras' "
            f"{', '.join(known_classes())} and the models {', '.join(MODEL_CLASSES)}")
    return {"class_name": layer_format.cls.__name__,
            "config": layer_format.convnet_config(config, who)}


def _from(module, *places):
    """Whether `module` (None in Keras' short form) is one of `places` (or under one ending
    in a dot)."""
    return module is None or isinstance(module, str) and any(
        module == place or place.endswith(".") and module.startswith(place) for place in places)


def _sequential_from_keras(config, who):
    items = config.get("layers")
    if not isinstance(items, list):
        raise ModelFileError(f"{who}: the Sequential has no list of layers")
    converted = [from_keras(item, who) for item in items]
    shape = config.get("build_input_shape")
    if (not converted or converted[0]["class_name"] != "InputLayer") and isinstance(shape, list) \
            and shape:
        converted.insert(0, {"class_name": "InputLayer",
                             "config": {"shape": shape[1:], "batch_size": shape[0]}})
    return {"class_name": "Sequential",
            "config": {"name": config.get("name"), "trainable": config.get("trainable", True),
                       "layers": converted}}


def _functional_from_keras(config, who):
    items = config.get("layers")
    if not isinstance(items, list):
        raise ModelFileError(f"{who}: the functional model has no list of layers")
    functional, converted = set(), []
    for item in items:
        entry = from_keras(item, who)
        name = item.get("name")
        if not isinstance(name, str):
            raise ModelFileError(f"{who}: a layer of the functional model has no name")
        if entry["class_name"] == "Functional":
            functional.add(name)
        nodes = item.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ModelFileError(f"{who}: layer {name!r} has no list of inbound nodes")
        converted.append({**entry, "name": name,
                          "inbound_nodes": [_node_from_keras(node, f"{who}: layer {name!r}")
                                            for node in nodes]})

    def ref(triple):
        if not (isinstance(triple, list) and len(triple) == 3 and isinstance(triple[0], str)
                and all(_is_index(i) for i in triple[1:])):
            raise ModelFileError(f"{who}: {triple!r:.100} is not a [layer, node, tensor] "
                                 f"reference")
        shift = 1 if triple[0] in functional else 0
        return [triple[0], triple[1] - shift, triple[2]]

    return {"class_name": "Functional",
            "config": {"name": config.get("name"), "trainable": config.get("trainable", True),
                       "layers": converted,
                       "input_layers": _map_refs(ref, config.get("input_layers"), who),
                       "output_layers": _map_refs(ref, config.get("output_layers"), who)}}


def _is_index(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 31


def _map_refs(fn, refs, who):
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return fn(refs)
    if isinstance(refs, dict):
        return {k: _map_refs(fn, v, who) for k, v in refs.items()}
    if isinstance(refs, list) and refs:
        return [_map_refs(fn, r, who) for r in refs]
    raise ModelFileError(f"{who}: the model's inputs or outputs are not [layer, node, tensor] "
                         f"references: {refs!r:.200}")


def _node_from_keras(node, who):
    """One call: its args with each Keras tensor as {"keras_history": [...]}. A layer convnet
    reads is called on one tensor, or a list (or dict) of them, and nothing else."""
    if not isinstance(node, dict) or not isinstance(node.get("args"), list) \
            or not isinstance(node.get("kwargs", {}), dict):
        raise ModelFileError(f"{who}: an inbound node is not an {{args, kwargs}} object: "
                             f"{node!r:.200}")
    kwargs = {k: v for k, v in node.get("kwargs", {}).items() if not (k == "mask" and v is None)}
    if kwargs:
        raise ModelFileError(f"{who}: a call with keyword arguments {sorted(kwargs)}, which "
                             f"convnet's layers do not take")

    def tensor(value):
        if not isinstance(value, dict) or value.get("class_name") != "__keras_tensor__":
            raise ModelFileError(f"{who}: a call argument is not a tensor: {value!r:.100}")
        config = value.get("config")
        history = config.get("keras_history") if isinstance(config, dict) else None
        if not (isinstance(history, list) and len(history) == 3
                and isinstance(history[0], str) and all(map(_is_index, history[1:]))):
            raise ModelFileError(f"{who}: a tensor argument has no valid keras_history")
        return {"keras_history": history}

    args = node["args"]
    if len(args) != 1:
        raise ModelFileError(f"{who}: a call with {len(args)} positional arguments (convnet's "
                             f"layers take one: a tensor, or a list of tensors)")
    inputs = args[0]
    if isinstance(inputs, list) and inputs:
        return {"args": [[tensor(v) for v in inputs]], "kwargs": {}}
    if isinstance(inputs, dict) and inputs and "class_name" not in inputs:
        return {"args": [{k: tensor(v) for k, v in inputs.items()}], "kwargs": {}}
    return {"args": [tensor(inputs)], "kwargs": {}}


# ----------------------------------------------------------------------------- compile settings

#: Keras optimizer arguments convnet's optimizers may not take, with the value that
#: behaves as convnet does (ema_momentum matters only with use_ema)
KERAS_OPTIMIZER_DEFAULTS = {
    "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
    "ema_overwrite_frequency": None, "loss_scale_factor": None,
    "gradient_accumulation_steps": None, "momentum": 0.0, "centered": False,
}
KERAS_IGNORED = {"ema_momentum", "name"}
KERAS_LOSS_DEFAULTS = {"reduction": "sum_over_batch_size", "ignore_class": None, "axis": -1,
                       "label_smoothing": 0.0, "dtype": None}
KERAS_SCHEDULE_DEFAULTS = {"warmup_target": None, "warmup_steps": 0}


def _arguments(cls, config, defaults, who, what):
    """config reduced to what cls's constructor takes; an argument it does not take must
    hold the Keras value that behaves as convnet does."""
    takes = inspect.signature(cls.__init__).parameters
    kept = {}
    for key, value in config.items():
        if key in takes:
            kept[key] = value
        elif key in KERAS_IGNORED or defaults.get(key, object()) == value:
            continue
        else:
            raise ModelFileError(f"{who}: the {what} {cls.__name__} with {key}={value!r} is not "
                                 f"supported by convnet (load with compile=False to skip the "
                                 f"compile settings)")
    return kept


def _optimizer_from_keras(value, who):
    class_name, config = keras_object(value, "optimizers", who, "optimizer")
    if config is None:
        try:
            optimizer = optimizers.get(class_name)
        except ValueError as error:
            raise ModelFileError(f"{who}: {error}") from None
        class_name, config = type(optimizer).__name__, {}
    cls = saving._OPTIMIZERS.get(class_name)
    if cls is None:
        raise ModelFileError(f"{who}: the optimizer {class_name!r} is not one of convnet's "
                             f"({sorted(saving._OPTIMIZERS)}); load with compile=False")
    schedule = config.get("learning_rate")
    if isinstance(schedule, dict):
        name, schedule_config = keras_object(schedule, "schedules", who, "learning_rate")
        schedule_cls = saving._SCHEDULES.get(name)
        if schedule_cls is None or schedule_config is None:
            raise ModelFileError(f"{who}: the learning-rate schedule {name!r} is not one of "
                                 f"convnet's ({sorted(saving._SCHEDULES)})")
        config["learning_rate"] = {
            "class_name": name, "config": _arguments(schedule_cls, schedule_config,
                                                     KERAS_SCHEDULE_DEFAULTS, who, "schedule")}
    return {"class_name": class_name,
            "config": _arguments(cls, config, KERAS_OPTIMIZER_DEFAULTS, who, "optimizer")}


def _function_name(value):
    """The name of one of Keras' own functions serialized as {"class_name": "function"}."""
    if value.get("class_name") == "function" and isinstance(value.get("config"), str) \
            and is_keras_module(value.get("module")):
        return value["config"]
    return None


def _loss_from_keras(value, who):
    if value is None:
        return None
    if isinstance(value, dict) and _function_name(value):
        value = _function_name(value)
    class_name, config = keras_object(value, "losses", who, "loss")
    if config is None:
        try:
            return losses.serialize(losses.get(class_name))
        except ValueError as error:
            raise ModelFileError(f"{who}: {error}") from None
    cls = losses._CLASSES.get(class_name)
    if cls is None:
        raise ModelFileError(f"{who}: the loss {class_name!r} is not one of convnet's "
                             f"({sorted(losses._CLASSES)}); load with compile=False")
    return {"class_name": class_name,
            "config": _arguments(cls, config, KERAS_LOSS_DEFAULTS, who, "loss")}


def _metric_from_keras(value, who):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_metric_from_keras(v, who) for v in value]
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _metric_from_keras(v, who) for k, v in value.items()}
    if _function_name(value):
        return _function_name(value)
    class_name, _ = keras_object(value, "metrics", who, "metric")
    return keras_snake_case(class_name)


def compile_from_keras(settings, who):
    """convnet's compile arguments (optimizer and loss objects, metric names) from Keras'
    compile_config."""
    if not isinstance(settings, dict):
        raise ModelFileError(f"{who}: compile_config is not an object")
    loss = settings.get("loss")
    if isinstance(loss, dict) and "class_name" not in loss:
        loss = {k: _loss_from_keras(v, who) for k, v in loss.items()}
    elif isinstance(loss, list):
        loss = [_loss_from_keras(v, who) for v in loss]
    else:
        loss = _loss_from_keras(loss, who)
    weights = settings.get("loss_weights")
    if not all(w is None or isinstance(w, (int, float)) and not isinstance(w, bool)
               for w in (flatten(weights) if isinstance(weights, (list, dict)) else [weights])):
        raise ModelFileError(f"{who}: loss_weights {weights!r:.200} are not numbers")
    optimizer = saving._optimizer_from_config(
        _optimizer_from_keras(settings.get("optimizer"), who))
    return {"optimizer": optimizer, "loss": saving._deserialize_losses(loss),
            "loss_weights": weights, "metrics": _metric_from_keras(settings.get("metrics"), who),
            "weighted_metrics": _metric_from_keras(settings.get("weighted_metrics"), who)}

