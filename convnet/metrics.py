"""Metrics that accumulate over batches: update_state, result, reset_state (Keras' protocol)."""
import numpy as np


class Metric:
    name = None

    def __init__(self, name=None):
        self.name = name or self.name
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred):
        values = self.values(np.asarray(y_true), np.asarray(y_pred))
        self.total += float(np.sum(values))
        self.count += int(np.size(values))

    def result(self):
        return self.total / self.count if self.count else 0.0


class SparseCategoricalAccuracy(Metric):
    name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        return np.argmax(y_pred, axis=-1) == y_true.reshape(y_pred.shape[:-1])


class CategoricalAccuracy(Metric):
    name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        return np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)


class BinaryAccuracy(Metric):
    name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(name)

    def values(self, y_true, y_pred):
        return (y_pred > self.threshold) == (y_true.reshape(y_pred.shape) > 0.5)


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def values(self, y_true, y_pred):
        return (y_pred - y_true.reshape(y_pred.shape)) ** 2


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

    def values(self, y_true, y_pred):
        return np.abs(y_pred - y_true.reshape(y_pred.shape))


class Mean(Metric):
    """The running mean of the values given to update_state (the loss, in fit's logs)."""
    name = "mean"

    def update_state(self, value, weight=1):
        self.total += float(value) * weight
        self.count += weight


_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy, "binary_accuracy": BinaryAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}


def get(identifier, loss=None):
    """A Metric; "accuracy"/"acc" picks the variant that fits the loss, as Keras does."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            loss_name = getattr(loss, "name", "") or ""
            if loss_name.startswith("sparse"):
                cls = SparseCategoricalAccuracy
            elif loss_name == "categorical_crossentropy":
                cls = CategoricalAccuracy
            else:
                cls = BinaryAccuracy
            return cls(name="accuracy")
        if key in _BY_NAME:
            return _BY_NAME[key](name=identifier)
    raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of "
                     f"{sorted(_BY_NAME)}")
