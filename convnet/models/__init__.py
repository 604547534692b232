"""Models: the Model base (model.py, with the training loop of convnet.trainer), Sequential,
functional models (functional.py), cloning, and loading a model from a file.

Dependencies run one way: models -> saving and keras_format (the file formats) ->
optimizers/losses; neither imports models when imported.
"""
import json

from .. import keras_format
from ..layers import LAYER_CLASSES
from ..saving import ModelFileError
from ..variables import deferred_initialization
from .functional import Functional
from .model import Model
from .sequential import Sequential

#: the model classes a file may name, beside the layers
MODEL_CLASSES = {"Sequential": Sequential, "Functional": Functional, "Model": Functional}


def deserialize(item):
    """A layer or a nested model from {"class_name", "config"}, only for classes convnet
    defines (a fixed list: nothing a file names is imported or run)."""
    if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
        raise ModelFileError(f"invalid layer entry in the model config: {item!r:.200}")
    name = item.get("class_name")
    cls = MODEL_CLASSES.get(name) or LAYER_CLASSES.get(name)
    if cls is None:
        raise ModelFileError(f"unknown layer {name!r} in the model config; known layers are "
                             f"{sorted(LAYER_CLASSES)} and models {sorted(MODEL_CLASSES)}")
    try:
        return cls.from_config(item["config"])
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError) as error:
        raise ModelFileError(f"invalid config for {name}: {error}") from None


def model_from_config(config):
    """A model from {"class_name", "config"}."""
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        raise ModelFileError(f"the file's model config names no known model class "
                             f"({sorted(MODEL_CLASSES)})")
    return deserialize(config)


def model_from_json(json_string):
    return model_from_config(json.loads(json_string))


def load_model(filepath, compile=True, safe_mode=True):
    """A model from a file written by ``model.save``, compiled as it was saved.

    The architecture is rebuilt with its weights' shapes only (no weight is
    allocated or initialised), those shapes are compared with the file's, and only
    then does each weight take the array the file holds.

    The file's first bytes pick the reader: a Keras 3 ``.keras`` archive
    (convnet.keras_format), else convnet's own format (convnet.saving).
    """
    source = keras_format.format_for_loading(filepath)
    header, arrays = source.read_model_file(filepath)
    with deferred_initialization():
        try:
            # Files from before functional models name no class: they hold a Sequential.
            model = model_from_config({"class_name": header.get("class_name", "Sequential"),
                                       "config": header["config"]})
            if isinstance(model, Sequential) and model._layers and not model.built:
                model.build()
        except ModelFileError as error:
            source.fail(filepath, str(error))
        except (TypeError, ValueError, KeyError, RecursionError) as error:
            source.fail(filepath, f"the architecture does not build ({error})")
    source.assign_weights(model, arrays, filepath)
    settings = header.get("compile")
    if compile and settings:
        source.compile_from_file(model, settings, filepath)
    return model


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False):
    """A new model with the same architecture and freshly initialised weights (Keras'
    clone_model): each layer is remade from its config (``clone_function(layer)`` if
    given), a functional graph is called again on new Inputs."""
    clone_function = clone_function or _clone_layer
    if isinstance(model, Sequential):
        layers = [clone_function(layer) for layer in model.layers]
        clone = Sequential(name=model.name, trainable=model.trainable)
        if model._input_layer is not None:
            clone.add(_clone_layer(model._input_layer))
        for layer in layers:
            clone.add(layer)
        return clone
    if isinstance(model, Functional):
        clones = {layer.name: _clone_layer(layer) if isinstance(layer, _input_layer_class())
                  else clone_function(layer) for layer in model.layers}
        return _rebuild(model, clones, call_function)
    raise ValueError(f"clone_model: {type(model).__name__} is a subclassed model; Keras "
                     f"clones only Sequential and functional models. Make a new instance of "
                     f"your class instead")


def _input_layer_class():
    from ..layers.core import InputLayer
    return InputLayer


def _clone_layer(layer):
    return type(layer).from_config(layer.get_config())


def _rebuild(model, clones, call_function):
    """Call the cloned layers along the original graph."""
    from ..graph import KerasTensor, flatten, map_structure, pack_like
    values = {}
    for tensor in model._input_tensors:
        layer = clones[tensor._keras_history[0].name]
        values[id(tensor)] = layer.output
    for node in model._nodes:
        if isinstance(node.layer, _input_layer_class()):
            continue
        layer = clones[node.layer.name]

        def lookup(x):
            return values[id(x)] if isinstance(x, KerasTensor) else x

        args = map_structure(lookup, node.args)
        kwargs = {k: map_structure(lookup, v) for k, v in node.kwargs.items()}
        outputs = call_function(layer, *args, **kwargs) if call_function else layer(*args,
                                                                                      **kwargs)
        for tensor, value in zip(node.output_tensors, flatten(outputs)):
            values[id(tensor)] = value
    inputs = pack_like(model._inputs_struct, [values[id(t)] for t in model._input_tensors])
    outputs = pack_like(model._outputs_struct, [values[id(t)] for t in model._output_tensors])
    return Functional(inputs, outputs, name=model.name, trainable=model.trainable)


__all__ = ["Model", "Sequential", "Functional", "clone_model", "load_model", "deserialize",
           "model_from_config", "model_from_json"]
