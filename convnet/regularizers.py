"""Weight regularizers with Keras 3's names, arguments and penalties, each with its gradient.

``regularizer(w)`` is the penalty added to the loss, ``regularizer.gradient(w)`` is
d penalty / d w, added to the weight's gradient (or, for an activity regularizer, to the
gradient of the layer's output: see ``activity_penalty``).
"""
import numpy as np

from . import _checks
from ._naming import snake_case

_EPSILON = 1e-7  # keras.backend.epsilon(): the floor of a norm we divide by


class Regularizer:
    def __call__(self, x):
        raise NotImplementedError

    def gradient(self, x):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; the gradient of ``|x|`` at 0 is taken as 0."""

    def __init__(self, l1=0.0, l2=0.0):
        owner = type(self).__name__
        self.l1 = _checks.real(owner, "l1", 0.0 if l1 is None else l1, low=0)
        self.l2 = _checks.real(owner, "l2", 0.0 if l2 is None else l2, low=0)

    def __call__(self, x):
        x = np.asarray(x)
        return float(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def gradient(self, x):
        x = np.asarray(x)
        return (self.l1 * np.sign(x) + 2 * self.l2 * x).astype(x.dtype, copy=False)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2=0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """``factor * 0.5 * sum(|N N^T - diag|) / (n (n - 1) / 2)`` for the rows (or columns) N of
    a 2-D weight normalised to unit length (norms floored at 1e-7): how far the rows are from
    being orthogonal to each other."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _checks.real("OrthogonalRegularizer", "factor", factor, low=0)
        self.mode = _checks.choice("OrthogonalRegularizer", "mode", mode, ("rows", "columns"))

    def _rows(self, x):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer: the weight must be 2-D, got shape "
                             f"{x.shape}")
        return x if self.mode == "rows" else x.T

    def _scale(self, n):
        return self.factor * 0.5 / (n * (n - 1) / 2)

    def __call__(self, x):
        rows = self._rows(x)
        norms = np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), _EPSILON)
        unit = rows / norms
        product = unit @ unit.T
        np.fill_diagonal(product, 0)
        return float(self._scale(rows.shape[0]) * np.abs(product).sum())

    def gradient(self, x):
        rows = self._rows(x)
        norms = np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), _EPSILON)
        unit = rows / norms
        product = unit @ unit.T
        np.fill_diagonal(product, 0)
        grad_product = self._scale(rows.shape[0]) * np.sign(product)
        grad_unit = (grad_product + grad_product.T) @ unit
        # Through unit = rows / max(|rows|, eps): the radial part vanishes where the norm is
        # above the floor.
        unfloored = np.linalg.norm(rows, axis=1, keepdims=True) > _EPSILON
        radial = np.where(unfloored, (grad_unit * unit).sum(axis=1, keepdims=True), 0) * unit
        grad = (grad_unit - radial) / norms
        return (grad if self.mode == "rows" else grad.T).astype(rows.dtype, copy=False)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


def activity_penalty(regularizer, outputs):
    """(penalty, d penalty / d outputs) of an activity regularizer on a layer's outputs.

    Keras 3 divides the penalty by the batch size (the first axis), so its strength does not
    depend on how the data is batched.
    """
    outputs = np.asarray(outputs)
    batch = outputs.shape[0] if outputs.ndim else 1
    if batch == 0:
        return 0.0, np.zeros_like(outputs)
    return regularizer(outputs) / batch, regularizer.gradient(outputs) / batch


_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2, OrthogonalRegularizer)}
# Keras' names (class names and their snake_case: "l1", "l2", "l1l2", ...) and "l1_l2".
_BY_NAME = {**_CLASSES, **{snake_case(name): cls for name, cls in _CLASSES.items()},
            "l1_l2": L1L2}


def get(identifier):
    """A Regularizer from a Keras name ("l2", "L1L2", ...), a {"class_name", "config"} dict,
    a Regularizer class or instance, or None (no regularization)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        config = identifier.get("config", {})
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"Unknown regularizer config {identifier!r}; expected a "
                             f"class_name among {sorted(_CLASSES)}")
        return cls.from_config(config)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"Unknown regularizer {identifier!r}; expected None, one of "
                     f"{sorted(_BY_NAME)} or a convnet.regularizers.Regularizer")


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def deserialize(config):
    return get(config)
