"""Sequential: a stack of layers with Keras' compile / fit / evaluate / predict."""
import math
import sys

import numpy as np

from . import activations, callbacks as callbacks_module, losses, metrics as metrics_module
from . import optimizers, random
from .layers import Layer
from .layers.base import _unique_name
from .layers.core import InputLayer


def _as_array(data, what, method):
    array = data if isinstance(data, np.ndarray) else np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{method}: {what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{method}: {what} must have a batch axis, got a scalar")
    return array


def _batches(n, batch_size, order=None):
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield slice(start, stop) if order is None else order[start:stop]


class Sequential:
    """A linear stack of layers, built from a list or with ``add``."""

    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name or _unique_name("sequential")
        self.trainable = trainable
        self.layers = []
        self._input_layer = None
        self.optimizer = self.loss = None
        self.metrics = []
        self.stop_training = False
        self.built = False
        self.history = None
        for layer in layers or []:
            self.add(layer)

    # -- structure ----------------------------------------------------------------------------

    def add(self, layer):
        if isinstance(layer, InputLayer):
            if self.layers or self._input_layer is not None:
                raise ValueError(f"Sequential '{self.name}': an Input can only be the first "
                                 f"layer")
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}'.add expects a convnet layer, got "
                            f"{type(layer).__name__}")
        if not self.layers and self._input_layer is None and layer.declared_input_shape:
            self._input_layer = InputLayer(layer.declared_input_shape, dtype=layer.dtype)
        self.layers.append(layer)
        self.built = False
        if self._input_layer is not None:
            self.build()

    def pop(self):
        if not self.layers:
            raise ValueError(f"Sequential '{self.name}' has no layers to pop")
        layer = self.layers.pop()
        self.built = False
        if self.layers and self._input_layer is not None:
            self.build()
        return layer

    @property
    def input_shape(self):
        if self._input_layer is not None:
            return (None,) + self._input_layer.shape
        return self.layers[0].input_shape if self.built else None

    def build(self, input_shape=None):
        """Build every layer in turn from the input shape (batch axis first, may be None)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError(f"Sequential '{self.name}': give an input shape to build(), "
                                 f"or start the model with Input(shape)")
            input_shape = (None,) + self._input_layer.shape
        elif self._input_layer is None:
            # Remember the shape, so the saved config can rebuild the model (Keras keeps it too).
            self._input_layer = InputLayer(tuple(input_shape)[1:], dtype=self.layers[0].dtype
                                           if self.layers else "float32")
        shape = (None,) + tuple(input_shape)[1:]
        for layer in self.layers:
            if not layer.built:
                layer._check_rank(shape)
                layer.build(shape)
            else:
                layer._check_compatible(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"Sequential '{self.name}' has not been built: start it with "
                             f"Input(shape) or call build(input_shape)")
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def __call__(self, x, training=False):
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"Sequential '{self.name}' has {expected} weight arrays, "
                             f"got {len(weights)}")
        start = 0
        for layer in self.layers:
            layer.set_weights(weights[start:start + len(layer.weights)])
            start += len(layer.weights)

    def count_params(self):
        if not self.built:
            raise ValueError(f"Sequential '{self.name}' has not been built: start it with "
                             f"Input(shape) or call build(input_shape)")
        return sum(layer.count_params() for layer in self.layers)

    # -- summary ------------------------------------------------------------------------------

    def summary(self, print_fn=None, line_length=None):
        """Keras' table plus the receptive field (jump) and multiply-accumulates per example."""
        from ._summary import summary_text
        text = summary_text(self)
        if print_fn is None:
            encoding = getattr(sys.stdout, "encoding", None) or "ascii"
            try:
                text.encode(encoding)
            except UnicodeEncodeError:
                text = summary_text(self, ascii_only=True)
            print(text)
        else:
            for line in text.split("\n"):
                print_fn(line)

    # -- training -----------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        if loss is None:
            raise ValueError(f"Sequential '{self.name}'.compile: a loss is required, e.g. "
                             f"loss='sparse_categorical_crossentropy'")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        self.metrics = [metrics_module.get(m, self.loss) for m in metrics or []]
        self._loss_tracker = metrics_module.Mean(name="loss")

    def _check_compiled(self, method):
        if self.optimizer is None:
            raise ValueError(f"Sequential '{self.name}': call compile(optimizer, loss) before "
                             f"{method}()")

    def _fuse_softmax(self):
        """Whether the loss can take the logits of a final softmax (exact, and faster)."""
        last = self.layers[-1]
        return (getattr(self.loss, "fuses_softmax", False) and not self.loss.from_logits
                and isinstance(last.activation, activations.Softmax)
                and last.activation.axis in (-1, len(last.output_shape) - 1))

    def _train_step(self, x, y):
        """One forward, loss, backward and optimizer update on a batch; returns the loss."""
        fused = self._fuse_softmax()
        out = self(x, training=True)
        y, out = self.loss._check(y, out)
        if fused:
            logits = self.layers[-1]._cache["z"]
            loss = self.loss.value(y, logits, logits=True)
            grad = self.loss.gradient(y, logits, logits=True)
        else:
            loss = self.loss.value(y, out)
            grad = self.loss.gradient(y, out)
        # Back-propagate down to the first layer with weights, and no further.
        first = next((i for i, layer in enumerate(self.layers) if layer.weights),
                     len(self.layers))
        last = len(self.layers) - 1
        for i in range(last, first - 1, -1):
            layer = self.layers[i]
            if fused and i == last:  # the loss gave the gradient of the softmax's input
                grad = layer._backward(grad, need_input_grad=i > first)
            else:
                grad = layer.backward(grad, need_input_grad=i > first)
        trainable = [layer for layer in self.layers if layer.trainable and layer.weights]
        self.optimizer.apply([g for layer in trainable for g in layer.grads],
                             [w for layer in trainable for w in layer.weights])
        for metric in self.metrics:
            metric.update_state(y, out)
        return float(loss)

    def _logs(self):
        logs = {"loss": self._loss_tracker.result()}
        logs.update((m.name, m.result()) for m in self.metrics)
        return logs

    def _reset_metrics(self):
        self._loss_tracker.reset_state()
        for metric in self.metrics:
            metric.reset_state()

    def _check_xy(self, x, y, method):
        x = _as_array(x, "x", method)
        if y is None:
            raise ValueError(f"{method}: y (the targets) is required")
        y = _as_array(y, "y", method)
        if len(x) != len(y):
            raise ValueError(f"{method}: x has {len(x)} samples but y has {len(y)}; they must "
                             f"match")
        if len(x) == 0:
            raise ValueError(f"{method}: x and y are empty")
        return x, y

    @staticmethod
    def _check_batch_size(batch_size, method):
        batch_size = 32 if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"{method}: batch_size must be a positive int, got {batch_size!r}")
        return int(batch_size)

    def _ensure_built(self, x):
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for `epochs` epochs; returns a History whose ``.history`` has one list per log."""
        self._check_compiled("fit")
        x, y = self._check_xy(x, y, "fit")
        batch_size = self._check_batch_size(batch_size, "fit")
        if not 0 <= validation_split < 1:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_data is None and validation_split:
            # Keras takes the last samples, before any shuffling.
            split = len(x) - int(math.floor(len(x) * validation_split))
            if split in (0, len(x)):
                raise ValueError(f"fit: validation_split={validation_split} of {len(x)} samples "
                                 f"leaves no training or no validation data")
            x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            validation_data = self._check_xy(*validation_data, "fit (validation_data)")
        self._ensure_built(x)
        verbose = 1 if verbose == "auto" else verbose
        steps = math.ceil(len(x) / batch_size)
        history = callbacks_module.History()
        callback_list = callbacks_module.CallbackList(
            ([callbacks_module.ProgbarLogger(verbose)] if verbose else []) + list(callbacks or [])
            + [history], self, {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            callback_list.on_epoch_begin(epoch)
            order = random.generator().permutation(len(x)) if shuffle else None
            for step, index in enumerate(_batches(len(x), batch_size, order)):
                callback_list.on_train_batch_begin(step)
                loss = self._train_step(x[index], y[index])
                self._loss_tracker.update_state(loss, len(x[index]))
                callback_list.on_train_batch_end(step, self._logs())
                if self.stop_training:
                    break
            logs = self._logs()
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=batch_size, verbose=0,
                                    return_dict=True)
                logs.update((f"val_{k}", v) for k, v in val.items())
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end()
        self.history = history
        return history

    def _test_step(self, x, y):
        out = self(x, training=False)
        y, out = self.loss._check(y, out)
        loss = self.loss.value(y, out)
        self._loss_tracker.update_state(float(loss), len(x))
        for metric in self.metrics:
            metric.update_state(y, out)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
                 callbacks=None):
        """The loss (and metrics) over the data: a scalar, a list, or a dict with return_dict."""
        self._check_compiled("evaluate")
        x, y = self._check_xy(x, y, "evaluate")
        batch_size = self._check_batch_size(batch_size, "evaluate")
        self._ensure_built(x)
        self._reset_metrics()
        for index in _batches(len(x), batch_size):
            self._test_step(x[index], y[index])
        if sys.stdout.isatty() if verbose == "auto" else verbose:
            print(callbacks_module.format_logs(self._logs()))
        return self._result(return_dict)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Outputs for every sample, computed batch by batch."""
        x = _as_array(x, "x", "predict")
        batch_size = self._check_batch_size(batch_size, "predict")
        if len(x) == 0:
            raise ValueError("predict: x is empty")
        self._ensure_built(x)
        outputs = None
        for index in _batches(len(x), batch_size):
            batch = self(x[index], training=False)
            if outputs is None:
                outputs = np.empty((len(x),) + batch.shape[1:], dtype=batch.dtype)
            outputs[index] = batch
        return outputs

    def predict_on_batch(self, x):
        return self(_as_array(x, "x", "predict_on_batch"), training=False)

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on (x, y); returns this batch's loss (and metrics)."""
        self._check_compiled("train_on_batch")
        x, y = self._check_xy(x, y, "train_on_batch")
        self._ensure_built(x)
        self._reset_metrics()
        self._loss_tracker.update_state(self._train_step(x, y), len(x))
        return self._result(return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        self._check_compiled("test_on_batch")
        x, y = self._check_xy(x, y, "test_on_batch")
        self._ensure_built(x)
        self._reset_metrics()
        self._test_step(x, y)
        return self._result(return_dict)

    def _result(self, return_dict):
        logs = self._logs()
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- config and files ---------------------------------------------------------------------

    def get_config(self):
        layers = [{"class_name": type(layer).__name__, "config": layer.get_config()}
                  for layer in ([self._input_layer] if self._input_layer else []) + self.layers]
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_config(cls, config):
        from .saving import layer_from_config
        return cls([layer_from_config(item) for item in config["layers"]], name=config["name"])

    def save(self, filepath):
        """Architecture, weights and compile settings in one file (see convnet.saving)."""
        from .saving import save_model
        save_model(self, filepath)

    def save_weights(self, filepath):
        from .saving import save_weights
        save_weights(self, filepath)

    def load_weights(self, filepath):
        from .saving import load_weights
        load_weights(self, filepath)

    # -- export -------------------------------------------------------------------------------

    def export(self, filepath, format="onnx", **kwargs):
        """Keras' export for inference: ``format="onnx"`` (the ``onnx`` extra) takes
        ``opset_version``, ``input_signature`` and ``verbose``; see convnet.export."""
        from .export import export_model
        return export_model(self, filepath, format, **kwargs)
