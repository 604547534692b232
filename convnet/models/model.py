"""Model: a Layer with the training loop (convnet.trainer) and files.

``keras.Model(inputs, outputs)`` makes a functional model (models/functional.py);
``class MyModel(keras.Model)`` with ``__init__`` creating layers and a ``call``
composing them is a subclassed model; ``keras.Sequential`` is a stack. All three
share everything here: compile, fit, evaluate, predict, summary, save, weights.
"""
import numpy as np

from .. import keras_format
from ..graph import map_structure
from ..layers.base import Layer, _TrainingContext
from ..layers.core import InputLayer
from ..trainer import Trainer
from ..variables import stateless_scope


def _functional_arguments(args, kwargs):
    return (len(args) == 2 or len(args) == 1 and "outputs" in kwargs
            or "inputs" in kwargs and "outputs" in kwargs)


def _inject_functional(cls):
    """Keras' inject_functional_model_class: put Functional where Model is among `cls`'s
    bases (and its Model-derived bases', recursively)."""
    from .functional import Functional
    if cls is Model:
        return Functional
    if issubclass(cls, Functional):
        return cls
    cls.__bases__ = tuple(_inject_functional(base) if isinstance(base, type)
                          and issubclass(base, Model) else base for base in cls.__bases__)
    return cls


class Model(Trainer, Layer):
    """A model: ``keras.Model(inputs, outputs)`` (functional) or a subclass with ``call``."""

    _UNTRACKED = frozenset({"optimizer", "history", "_loss_tracker", "_output_losses",
                            "_compiled_metrics", "loss"})

    def __new__(cls, *args, **kwargs):
        if cls is Model and _functional_arguments(args, kwargs):
            from .functional import Functional
            return object.__new__(Functional)
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        if type(self) is not Model and _functional_arguments(args, kwargs):
            # A subclass built as a functional model (Keras' guides: a class that overrides
            # train_step, made as CustomModel(inputs, outputs)): as Keras does, the class
            # becomes a subclass of Functional, whose __init__ builds the graph.
            from .functional import Functional
            if not isinstance(self, Functional):
                _inject_functional(type(self))
            Functional.__init__(self, *args, **kwargs)
            return
        if args:
            raise TypeError(f"{type(self).__name__}: unexpected positional arguments; a "
                            f"functional model is keras.Model(inputs, outputs)")
        allowed = {"name", "trainable", "dtype"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments "
                            f"{sorted(unknown)}")
        Layer.__init__(self, **kwargs)
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None

    # -- structure ----------------------------------------------------------------------------

    @property
    def layers(self):
        """The layers this model tracks, in the order they were assigned."""
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        """A layer by name or by index in ``layers`` (exactly one of the two)."""
        if (name is None) == (index is None):
            raise ValueError(f"{self.describe()}.get_layer: give either name or index")
        layers = self.layers
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not -len(layers) <= index < len(layers):
                raise ValueError(f"{self.describe()}.get_layer: index {index!r} is out of range "
                                 f"for {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.describe()}.get_layer: no layer named {name!r}; layers: "
                         f"{[layer.name for layer in layers]}")

    def _convert_python_input(self, x):
        # Each layer casts its own input; a model passes data through as it came.
        if isinstance(x, (list, tuple)) and x and all(np.isscalar(v) for v in x):
            return np.asarray(x)
        return x

    def build(self, input_shape=None):
        """Build a subclassed model by running call once on zeros of `input_shape`
        (None sizes taken as 1), as Keras builds it by tracing."""
        if input_shape is None:
            raise ValueError(f"{self.describe()}.build: give the input shape, e.g. "
                             f"(None, 28, 28, 1)")
        if type(self).call is Model.call:
            raise NotImplementedError(f"{self.describe()}: a Model subclass must define call()")

        def zeros(shape):
            return np.zeros(tuple(1 if d is None else d for d in shape), dtype=self.dtype)

        data = map_structure(zeros, input_shape) if not _is_shape(input_shape) \
            else zeros(input_shape)
        self.built = True
        self.input_shape = input_shape
        with _TrainingContext(False), stateless_scope():
            self(data, training=False)

    def _build_from_data(self, x):
        if not self.built:
            self.built = True  # a subclassed model builds its layers as call reaches them

    def call(self, inputs, training=False):
        raise NotImplementedError(f"{self.describe()}: a Model subclass must define call()")

    # -- summary and files ---------------------------------------------------------------------

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Keras' table, plus the receptive field (jump) and multiply-accumulates per example."""
        from .._summary import print_summary
        print_summary(self, print_fn)

    # The file's name picks the format it is written in, its first bytes the one it is read
    # in (convnet.keras_format.format_for_saving / format_for_loading).

    def save(self, filepath, overwrite=True, **kwargs):
        """Architecture, weights and compile settings in one file: ``.keras`` is Keras 3's
        format (convnet.keras_format), any other name convnet's own (``.cnet``,
        convnet.saving); ``.h5`` is refused."""
        keras_format.format_for_saving(filepath, "model").save_model(
            self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """``.weights.h5`` is Keras 3's weights file, any other name convnet's own."""
        keras_format.format_for_saving(filepath, "weights").save_weights(
            self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        keras_format.format_for_loading(filepath).load_weights(
            self, filepath, skip_mismatch=skip_mismatch)

    def export(self, filepath, format="onnx", **kwargs):
        """Keras' export for inference: ``format="onnx"`` (the ``onnx`` extra) takes
        ``opset_version``, ``input_signature`` and ``verbose``; see convnet.export."""
        from ..export import export_model
        return export_model(self, filepath, format, **kwargs)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self.dtype.name != "float32":
            config["dtype"] = self.dtype.name
        return config

    def to_json(self, **kwargs):
        import json
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in value)


def input_layer_of(tensor):
    """The InputLayer whose output `tensor` is, or None."""
    history = getattr(tensor, "_keras_history", None)
    if history is not None and isinstance(history[0], InputLayer):
        return history[0]
    return None
