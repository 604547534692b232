"""Losses: each returns the batch mean and its gradient with respect to the prediction.

Cross-entropy on a softmax output is computed from the logits (log-softmax),
which is exact where probabilities underflow; ``Sequential`` hands the logits
over whenever the last layer ends in a softmax.
"""
import numpy as np

from .utils import from_registry

_EPSILON = 1e-7  # Keras' clip for probabilities


def _numeric_targets(y_true, loss_name):
    y_true = np.asarray(y_true)
    if y_true.dtype.kind not in "biuf":
        raise TypeError(f"{loss_name}: targets must be numbers, got dtype {y_true.dtype}")
    return y_true


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Loss:
    name = None
    #: whether value/gradient can take softmax logits instead of probabilities
    fuses_softmax = False

    def __call__(self, y_true, y_pred):
        y_true, y_pred = self._check(y_true, np.asarray(y_pred))
        return float(self.value(y_true, y_pred))

    def _check(self, y_true, y_pred):
        raise NotImplementedError

    def get_config(self):
        return {}


class _CrossEntropy(Loss):
    fuses_softmax = True

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def value(self, y_true, y_pred, logits=False):
        if self.from_logits or logits:
            log_p = _log_softmax(y_pred)
        else:
            log_p = np.log(np.clip(y_pred, _EPSILON, 1 - _EPSILON))
        return -np.mean(self._pick(y_true, log_p))

    def gradient(self, y_true, y_pred, logits=False):
        """d(mean loss)/d(y_pred); with logits=True (or from_logits) the gradient w.r.t. logits."""
        n = y_pred.shape[0]
        if self.from_logits or logits:
            shifted = np.exp(y_pred - y_pred.max(axis=-1, keepdims=True))
            grad = shifted / shifted.sum(axis=-1, keepdims=True)
            grad -= self._one_hot(y_true, y_pred)
            return (grad / n).astype(y_pred.dtype, copy=False)
        clipped = np.clip(y_pred, _EPSILON, 1 - _EPSILON)
        inside = (y_pred > _EPSILON) & (y_pred < 1 - _EPSILON)
        grad = -self._one_hot(y_true, y_pred) / clipped * inside
        return (grad / n).astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {"from_logits": self.from_logits}


class SparseCategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy against integer class labels of shape (N,) or (N, 1)."""
    name = "sparse_categorical_crossentropy"

    def _check(self, y_true, y_pred):
        y_true = np.asarray(y_true)
        if y_true.ndim == 2 and y_true.shape[1] == 1:
            y_true = y_true[:, 0]
        if y_true.dtype.kind == "f" and np.all(y_true == np.round(y_true)):
            y_true = y_true.astype(np.int64)
        if y_true.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: labels must be integers, got dtype {y_true.dtype}")
        if y_pred.ndim != 2 or y_true.shape != (y_pred.shape[0],):
            raise ValueError(f"{self.name}: expected labels of shape ({y_pred.shape[0]},) for "
                             f"predictions of shape {y_pred.shape}, got {y_true.shape}")
        if y_true.size and (y_true.min() < 0 or y_true.max() >= y_pred.shape[1]):
            raise ValueError(f"{self.name}: labels must be in [0, {y_pred.shape[1]}), got "
                             f"values from {y_true.min()} to {y_true.max()}")
        return y_true.astype(np.int64, copy=False), y_pred

    def _pick(self, y_true, log_p):
        return log_p[np.arange(log_p.shape[0]), y_true]

    def _one_hot(self, y_true, y_pred):
        one_hot = np.zeros_like(y_pred)
        one_hot[np.arange(y_pred.shape[0]), y_true] = 1
        return one_hot


class CategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy against one-hot (or soft) targets of the prediction's shape."""
    name = "categorical_crossentropy"

    def _check(self, y_true, y_pred):
        y_true = _numeric_targets(y_true, self.name)
        if y_true.shape != y_pred.shape or y_pred.ndim != 2:
            hint = (" (integer labels? use sparse_categorical_crossentropy or to_categorical)"
                    if y_true.ndim == 1 else "")
            raise ValueError(f"{self.name}: targets of shape {y_true.shape} do not match "
                             f"predictions of shape {y_pred.shape}{hint}")
        return y_true.astype(y_pred.dtype, copy=False), y_pred

    def _pick(self, y_true, log_p):
        return np.sum(y_true * log_p, axis=-1)

    def _one_hot(self, y_true, y_pred):
        return y_true


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def _check(self, y_true, y_pred):
        y_true = _numeric_targets(y_true, self.name)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{self.name}: targets of shape {y_true.shape} do not match "
                             f"predictions of shape {y_pred.shape}")
        return y_true.astype(y_pred.dtype, copy=False), y_pred

    def value(self, y_true, y_pred, logits=False):
        return np.mean((y_pred - y_true) ** 2)

    def gradient(self, y_true, y_pred, logits=False):
        return (2 * (y_pred - y_true) / y_pred.size).astype(y_pred.dtype, copy=False)


_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
}
_CLASSES = {cls.__name__: cls for cls in set(_BY_NAME.values())}

sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
mean_squared_error = mse = MeanSquaredError()


def get(identifier):
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    return from_registry(identifier, Loss, _BY_NAME, "loss", " or a convnet.losses.Loss")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown loss in model file: {config!r}")
    return _CLASSES[config["class_name"]](**config.get("config", {}))
