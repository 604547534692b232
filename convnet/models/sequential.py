"""Sequential: a stack of layers, each taking the previous one's output."""
import numpy as np

from ..graph import KerasTensor
from ..layers.base import Layer
from ..layers.core import InputLayer
from .model import Model, input_layer_of


class Sequential(Model):
    """A linear stack of layers, built from a list or with ``add``.

    Started with ``keras.Input(shape)`` (or a first layer given ``input_shape``) it is
    built at once, each layer as it is added; otherwise it is built on its first data.
    """

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name)
        object.__setattr__(self, "_input_layer", None)
        object.__setattr__(self, "_output_shape", None)
        for layer in layers or []:
            self.add(layer)

    # -- structure ----------------------------------------------------------------------------

    @property
    def layers(self):
        """The layers after the Input, in order."""
        return list(self._layers)

    def add(self, layer, rebuild=True):
        """Append a layer (or begin with an Input); the new layer is built right away when
        the input shape is known, so adding n layers costs n builds, not n**2."""
        if isinstance(layer, KerasTensor):
            origin = input_layer_of(layer)
            if origin is None:
                raise ValueError(f"Sequential '{self.name}'.add: only a keras.Input tensor can "
                                 f"be added, got {layer!r} (made by a layer)")
            layer = origin
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"Sequential '{self.name}': an Input can only be the first "
                                 f"layer")
            object.__setattr__(self, "_input_layer", layer)
            object.__setattr__(self, "_output_shape", (None,) + layer.shape)
            self.built = True
            self.input_shape = (None,) + layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}'.add expects a convnet layer, got "
                            f"{type(layer).__name__}")
        if not self._layers and self._input_layer is None and layer.declared_input_shape:
            self.add(InputLayer(layer.declared_input_shape, dtype=layer.dtype))
        self._layers.append(layer)
        if self._output_shape is not None and rebuild:
            object.__setattr__(self, "_output_shape", self._build_layer(layer,
                                                                        self._output_shape))
        elif self._input_layer is None:
            self.built = False

    def _build_layer(self, layer, shape):
        if not layer.built:
            layer._maybe_build(shape)
        else:
            layer._maybe_build(shape)  # only records the first input shape
            if layer._is_builtin:
                layer._check_compatible(shape)
        return layer.compute_output_shape(shape)

    def pop(self, rebuild=True):
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._layers.pop()
        if self._input_layer is not None:
            shape = (None,) + self._input_layer.shape
            for remaining in self._layers:
                shape = remaining.compute_output_shape(shape)
            object.__setattr__(self, "_output_shape", shape)
        return layer

    @property
    def input_shape(self):
        if self._input_layer is not None:
            return (None,) + self._input_layer.shape
        return self._layers[0].input_shape if self._layers and self._layers[0].built else None

    @input_shape.setter
    def input_shape(self, value):
        pass  # derived from the Input

    @property
    def inputs(self):
        return [self._input_layer.output] if self._input_layer is not None else None

    @property
    def input(self):
        return self._input_layer.output if self._input_layer is not None else None

    def build(self, input_shape=None):
        """Build every layer in turn from the input shape (batch axis first, may be None)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError(f"Sequential '{self.name}': give an input shape to build(), "
                                 f"or start the model with Input(shape)")
            input_shape = (None,) + self._input_layer.shape
        elif self._input_layer is None:
            # Remember the shape, so the saved config can rebuild the model (Keras keeps it).
            dtype = self._layers[0].dtype if self._layers else None
            object.__setattr__(self, "_input_layer",
                               InputLayer(tuple(input_shape)[1:], dtype=dtype))
        shape = (None,) + tuple(input_shape)[1:]
        for layer in self._layers:
            shape = self._build_layer(layer, shape)
        object.__setattr__(self, "_output_shape", shape)
        self.built = True

    def _build_from_data(self, x):
        if not self.built:
            self.build((None,) + tuple(np.shape(x))[1:])

    @property
    def output_shape(self):
        if not self.built or self._output_shape is None:
            raise ValueError(f"Sequential '{self.name}' has not been built: start it with "
                             f"Input(shape) or call build(input_shape)")
        return self._output_shape

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def count_params(self):
        if not self.built:
            raise ValueError(f"Sequential '{self.name}' has not been built: start it with "
                             f"Input(shape) or call build(input_shape)")
        return super().count_params()

    def call(self, inputs, training=False):
        x = inputs
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def __call__(self, *args, **kwargs):
        if not self.built and args and not isinstance(args[0], KerasTensor):
            self._build_from_data(args[0])
        return super().__call__(*args, **kwargs)

    # -- config ----------------------------------------------------------------------------

    def get_config(self):
        from ..layers import serialize
        layers = [serialize(layer) for layer in
                  ([self._input_layer] if self._input_layer else []) + self._layers]
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        model = cls(name=config["name"], trainable=config.get("trainable", True))
        for item in config["layers"]:
            model.add(deserialize(item))
        return model
