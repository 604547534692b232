"""How each convnet layer class is written in Keras 3's config.json and weights file, and
read back: one ``LayerFormat`` per class, registered by ``register``.

Most of a layer's config is the same in both libraries (Keras 3's names and defaults are
convnet's contract); what differs is said per class:

- ``keras_only``: entries Keras writes that convnet's class does not take, each with the one
  value convnet's behaviour matches. Written with that value; a file with any other value is
  refused, naming the entry. Once convnet's class takes the argument (``inspect`` tells), its
  value passes through both ways instead.
- ``keras_newer``: entries recent Keras versions write (and older Keras 3 refuses): accepted
  at that value on reading, never written.
- ``convnet_only``: convnet options Keras has not; a layer is written only while the option
  holds the value that behaves as Keras does, else refused naming it.
- ``build_config``: whether Keras writes ``{"input_shape": ...}`` for the class (layers with
  a ``build``); loading never needs it (convnet builds from the graph).
- ``variables``: the layer's variables in the order Keras stores them (``vars/0``,
  ``vars/1``, ...): Keras' ``save_own_variables`` writes the trainable ones in creation
  order, then the non-trainable ones, which is ``layer.weights`` for a layer without
  sublayers. A class whose order differs passes its own function.

Adding a layer class is one ``register`` call below.
"""
import importlib.util
import inspect
import re

from .. import initializers, layers
from ..saving import ModelFileError

LAYERS_MODULE = "keras.layers"


def keras_snake_case(name):
    """Keras' naming.to_snake_case: the weights file names each layer's group with it."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def own_variables(layer):
    return layer.weights


class LayerFormat:
    """How one convnet layer class is written in Keras' format (see the module docstring)."""

    def __init__(self, cls, keras_class=None, keras_only=None, keras_newer=None,
                 convnet_only=None, build_config=False, variables=own_variables,
                 to_keras=None, from_keras=None):
        self.cls = cls
        self.keras_class = keras_class or cls.__name__
        self.keras_only = dict(keras_only or {})
        self.keras_newer = dict(keras_newer or {})
        self.convnet_only = dict(convnet_only or {})
        self.build_config = build_config
        self.variables = variables
        self._to_keras = to_keras
        self._from_keras = from_keras

    def takes(self, argument):
        """Whether the convnet class's constructor names `argument`."""
        return any(argument in inspect.signature(klass.__init__).parameters
                   for klass in self.cls.__mro__ if "__init__" in vars(klass))

    # -- writing -------------------------------------------------------------------------------

    def keras_config(self, layer):
        """The layer's config as Keras writes it."""
        config = dict(layer.get_config())
        config.pop("input_shape", None)   # a Keras model file says it with an InputLayer
        for key, keras_value in self.convnet_only.items():
            if key in config and config.pop(key) != keras_value:
                raise ValueError(
                    f"{layer.describe()}: {key}={getattr(layer, key)!r} has no equivalent in "
                    f"Keras' format (Keras' {self.keras_class} behaves as {key}="
                    f"{keras_value!r}); save the model in convnet's own format (.cnet) instead")
        for key, value in self.keras_only.items():
            config.setdefault(key, value)
        if layer.activity_regularizer is not None:
            config["activity_regularizer"] = layer.activity_regularizer
        config = {key: to_keras_value(key, value) for key, value in config.items()}
        return config if self._to_keras is None else self._to_keras(layer, config)

    # -- reading -------------------------------------------------------------------------------

    def convnet_config(self, config, who):
        """The constructor arguments of convnet's class for a Keras config."""
        if self._from_keras is not None:
            config = self._from_keras(config, who)
        config = dict(config)
        for key, value in {**self.keras_newer, **self.keras_only}.items():
            if key in config and not self.takes(key):
                given = config.pop(key)
                if given != value:
                    raise ModelFileError(f"{who}: {key}={given!r} is not supported by convnet's "
                                         f"{self.cls.__name__} (only {key}={value!r})")
        return {key: from_keras_value(key, value, who) for key, value in config.items()}


_BY_CLASS = {}
_BY_KERAS_NAME = {}


def register(cls, **options):
    layer_format = LayerFormat(cls, **options)
    _BY_CLASS[cls] = layer_format
    _BY_KERAS_NAME[layer_format.keras_class] = layer_format
    return layer_format


def format_of(layer):
    """The LayerFormat of a layer object; a class without one is refused, named."""
    layer_format = _BY_CLASS.get(type(layer))
    if layer_format is None:
        raise ValueError(
            f"{layer.describe()}: convnet cannot write a {type(layer).__name__} in Keras' "
            f"format (it writes {sorted(_BY_KERAS_NAME)}); save the model in convnet's own "
            f"format (a .cnet file) instead")
    return layer_format


def format_named(keras_class):
    """The LayerFormat for a Keras class name, or None."""
    return _BY_KERAS_NAME.get(keras_class)


def known_classes():
    return sorted(_BY_KERAS_NAME)


# ----------------------------------------------------------------------------- values

def dtype_policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _keras_object(module, class_name, config):
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": None}


def to_keras_value(key, value):
    """One config entry as Keras writes it: dtype policies, initializers, regularizers and
    constraints as Keras objects."""
    if key == "dtype" and isinstance(value, str):
        return dtype_policy(value)
    if value is None:
        return None
    if key.endswith("_initializer"):
        name = value["class_name"]  # Keras' class name ("GlorotUniform"), or its snake_case
        if "_" in name or name.islower():
            name = "".join(part.capitalize() for part in name.split("_"))
        return _keras_object("keras.initializers", name, dict(value["config"]))
    if key.endswith("_regularizer") or key.endswith("_constraint"):
        kind = "regularizers" if key.endswith("_regularizer") else "constraints"
        if not isinstance(value, dict):
            value = {"class_name": type(value).__name__, "config": value.get_config()}
        return _keras_object(f"keras.{kind}", value["class_name"], dict(value["config"]))
    return value


def is_keras_module(module):
    """Whether a serialized object's module is Keras' own (None: Keras' older short form)."""
    return module is None or isinstance(module, str) and (module == "keras"
                                                          or module.startswith("keras."))


def keras_object(value, kind, who, key):
    """(class_name, config) of a serialized Keras object of `kind` ("initializers", ...), which
    must be one of Keras' own (a custom class or a function is code, never loaded)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and value.get("class_name") == "function":
        raise ModelFileError(f"{who}: {key} is a Python function ({value.get('config')!r:.80} "
                             f"from module {value.get('module')!r}), which convnet never loads")
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str) \
            or not isinstance(value.get("config", {}), dict):
        raise ModelFileError(f"{who}: {key} is not a Keras {kind[:-1]}: {value!r:.200}")
    module, registered = value.get("module"), value.get("registered_name")
    if not is_keras_module(module) or registered not in (None, value["class_name"]):
        raise ModelFileError(f"{who}: {key} is a custom {kind[:-1]} ({value['class_name']!r} "
                             f"from module {module!r}); convnet loads only Keras' own")
    return value["class_name"], dict(value.get("config") or {})


def _initializer_from_keras(value, who, key):
    class_name, config = keras_object(value, "initializers", who, key)
    if config is None:
        return class_name
    cls = initializers._BY_NAME.get(class_name)
    if cls is None:
        raise ModelFileError(f"{who}: {key} {class_name!r} is not one of convnet's initializers "
                             f"({sorted(initializers._BY_NAME)})")
    takes = inspect.signature(cls.__init__).parameters
    for extra in [k for k in config if k not in takes]:
        if config[extra] is not None:
            raise ModelFileError(f"{who}: {key} {class_name} with {extra}={config[extra]!r} is "
                                 f"not supported")
        del config[extra]
    return {"class_name": class_name, "config": config}


def dtype_name(value, who):
    """A dtype name from Keras' policy object (or a plain name)."""
    if value is None or isinstance(value, str):
        return value
    class_name, config = keras_object(value, "dtype policies", who, "dtype")
    if class_name not in ("DTypePolicy", "FloatDTypePolicy") or not isinstance(
            (config or {}).get("name"), str):
        raise ModelFileError(f"{who}: dtype policy {value!r:.200} is not supported (convnet "
                             f"computes in float32 or float64)")
    return config["name"]


def from_keras_value(key, value, who):
    """One Keras config entry as convnet's constructor takes it."""
    if key == "dtype":
        return dtype_name(value, who)
    if value is None:
        return None
    if key.endswith("_initializer"):
        return _initializer_from_keras(value, who, key)
    if key.endswith("_regularizer") or key.endswith("_constraint"):
        kind = "regularizers" if key.endswith("_regularizer") else "constraints"
        class_name, config = keras_object(value, kind, who, key)
        if importlib.util.find_spec(f"convnet.{kind}") is None:
            raise ModelFileError(f"{who}: {key} {class_name!r}: this convnet has no {kind}")
        return class_name if config is None else {"class_name": class_name, "config": config}
    if key == "activation" and not isinstance(value, str):
        raise ModelFileError(f"{who}: the activation {value!r:.200} is not one of Keras' named "
                             f"activations (a function would be code, which convnet never "
                             f"loads)")
    _check_plain(value, who, key)
    return value


def _check_plain(value, who, key):
    """Config values are JSON numbers, strings, booleans, null and lists of them; any object
    left (Keras' __lambda__, __bytes__, __numpy__, a function, a custom class) is refused."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("class_name")
            what = "a Python lambda (code)" if name == "__lambda__" else f"a {name!r} object"
            raise ModelFileError(f"{who}: {key} holds {what}, which convnet does not load")
        if isinstance(item, list):
            stack.extend(item)


# ----------------------------------------------------------------------------- the layers

def _input_to_keras(layer, config):
    return {"batch_shape": [layer.batch_size, *layer.shape], "dtype": layer.dtype.name,
            "sparse": False, "ragged": False, "name": layer.name, "optional": False}


def _input_from_keras(config, who):
    config = dict(config)
    batch_shape = config.pop("batch_shape", config.pop("batch_input_shape", None))
    if not isinstance(batch_shape, list) or len(batch_shape) < 2:
        raise ModelFileError(f"{who}: the InputLayer has no batch_shape of a batch axis and "
                             f"at least one more: {batch_shape!r:.100}")
    for flag in ("sparse", "ragged", "optional"):
        if config.pop(flag, False):
            raise ModelFileError(f"{who}: {flag} inputs are not supported")
    return {**config, "shape": batch_shape[1:], "batch_size": batch_shape[0]}


def _string_padding(layer, config):
    """Keras' Conv2D and pooling take "valid" or "same" only."""
    if config["padding"] not in ("valid", "same"):
        raise ValueError(f"{layer.describe()}: padding={layer.padding!r} has no equivalent in "
                         f"Keras' format (Keras takes 'valid' or 'same'); save the model in "
                         f"convnet's own format (.cnet) instead")
    return config


KERNEL_NEWER = {"lora_rank": None, "lora_alpha": None}
POOLING = {"ceil_mode": False}

register(layers.InputLayer, to_keras=_input_to_keras, from_keras=_input_from_keras)
register(layers.Conv2D, keras_only={"groups": 1, "activity_regularizer": None},
         keras_newer=KERNEL_NEWER, build_config=True, to_keras=_string_padding)
register(layers.Dense, build_config=True,
         keras_newer={**KERNEL_NEWER, "quantization_config": None})
register(layers.Flatten, build_config=True)
register(layers.Activation)
register(layers.ReLU)
register(layers.Softmax)
register(layers.Dropout)
register(layers.ZeroPadding2D, build_config=True)
register(layers.MaxPooling2D, convnet_only=POOLING, to_keras=_string_padding)
register(layers.AveragePooling2D, convnet_only={**POOLING, "count_include_pad": False},
         to_keras=_string_padding)
register(layers.GlobalAveragePooling2D)
register(layers.GlobalMaxPooling2D)
for _merge in (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum,
               layers.Minimum, layers.Concatenate):
    register(_merge, build_config=True)
# Keras' augmentation layers keep no variables in the file (their seed generators' state
# is not saved).
for _augmentation in (layers.RandomFlip, layers.RandomTranslation, layers.RandomRotation,
                      layers.RandomZoom, layers.RandomCrop, layers.RandomContrast,
                      layers.RandomBrightness):
    register(_augmentation, build_config=True)
