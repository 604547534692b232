"""Weight constraints with Keras 3's names, arguments and axis defaults: ``constraint(w)``
returns the projected weight, which the optimizer writes back after each update.

The norms are taken over ``axis`` (0 by default: each output unit of a Dense kernel
(in, out); for a Conv2D kernel (kh, kw, in, out) use axis=[0, 1, 2] for each filter).
"""
import numpy as np

from . import _checks
from ._naming import snake_case

_EPSILON = 1e-7  # keras.backend.epsilon(), added to a norm before dividing by it


class Constraint:
    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _axis(owner, axis):
    if isinstance(axis, (list, tuple)):
        return [_checks.integer(owner, "axis", a) for a in axis]
    return _checks.integer(owner, "axis", axis)


def _norms(owner, w, axis):
    w = np.asarray(w)
    axes = axis if isinstance(axis, list) else [axis]
    if any(not -w.ndim <= a < w.ndim for a in axes):
        raise ValueError(f"{owner}: axis={axis} is out of range for a weight of shape "
                         f"{w.shape}")
    return w, np.sqrt(np.sum(np.square(w), axis=tuple(axes), keepdims=True))


class MaxNorm(Constraint):
    """Rescales each slice whose norm exceeds ``max_value`` down to that norm."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _checks.real("MaxNorm", "max_value", max_value, low=0, low_open=True)
        self.axis = _axis("MaxNorm", axis)

    def __call__(self, w):
        w, norms = _norms("MaxNorm", w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each slice's norm into [min_value, max_value]: ``rate`` of the way there (1:
    all the way)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _checks.real("MinMaxNorm", "min_value", min_value, low=0)
        self.max_value = _checks.real("MinMaxNorm", "max_value", max_value, low=self.min_value)
        self.rate = _checks.real("MinMaxNorm", "rate", rate, 0, 1)
        self.axis = _axis("MinMaxNorm", axis)

    def __call__(self, w):
        w, norms = _norms("MinMaxNorm", w, self.axis)
        desired = (self.rate * np.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative entries to 0."""

    def __call__(self, w):
        w = np.asarray(w)
        return np.maximum(w, 0).astype(w.dtype, copy=False)


class UnitNorm(Constraint):
    """Scales each slice to norm 1 (``w / (1e-7 + norm)``)."""

    def __init__(self, axis=0):
        self.axis = _axis("UnitNorm", axis)

    def __call__(self, w):
        w, norms = _norms("UnitNorm", w, self.axis)
        return (w / (_EPSILON + norms)).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


_CLASSES = {cls.__name__: cls for cls in (MaxNorm, MinMaxNorm, NonNeg, UnitNorm)}
# Keras' names: class names and their snake_case ("max_norm", "non_neg", ...).
_BY_NAME = {**_CLASSES, **{snake_case(name): cls for name, cls in _CLASSES.items()}}


def get(identifier):
    """A Constraint from a Keras name ("max_norm", "NonNeg", ...), a {"class_name", "config"}
    dict, a Constraint class or instance, or None (unconstrained)."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        config = identifier.get("config", {})
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"Unknown constraint config {identifier!r}; expected a "
                             f"class_name among {sorted(_CLASSES)}")
        return cls.from_config(config)
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"Unknown constraint {identifier!r}; expected None, one of "
                     f"{sorted(_BY_NAME)} or a convnet.constraints.Constraint")


def serialize(constraint):
    if constraint is None:
        return None
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


def deserialize(config):
    return get(config)
