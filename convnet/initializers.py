"""Weight initializers with Keras 3's names, arguments, fan rules and seeding.

A conv kernel (kh, kw, in, out) has fan_in = kh*kw*in and fan_out = kh*kw*out;
a dense kernel (in, out) has fan_in = in and fan_out = out.

Seeding follows Keras 3: an initializer draws from a generator seeded with its ``seed``, so
calling it twice gives the same values. Without a seed it picks one from convnet's shared
generator (``convnet.utils.set_random_seed`` makes that reproducible) and then also repeats
itself across calls; layers make one initializer per weight, from the name or config they
are given, so their weights differ. Keras picks that seed when the initializer is made;
convnet picks it at the first call, so weights are drawn in the order they are built (a layer
written in Python with add_weight gets the same weights as the built-in layer it imitates).
"""
import math

import numpy as np

from . import _checks, random
from ._naming import snake_case


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) of a weight of ``shape``; with input_axes/output_axes, the products
    of those axes' sizes (Keras 3's einsum-friendly rule)."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (math.prod(shape[axis] for axis in input_axes),
                math.prod(shape[axis] for axis in output_axes))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _shape(owner, shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{owner}: shape must be a tuple of ints, got {shape!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"{owner}: shape must not have negative sizes, got {shape}")
    return shape


def _dtype(owner, dtype):
    dtype = np.dtype("float32" if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"{owner}: dtype must be a float type, got {dtype}")
    return dtype


class Initializer:
    """``initializer(shape, dtype=None) -> ndarray`` (float32 by default)."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(_shape("Zeros", shape), _dtype("Zeros", dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(_shape("Ones", shape), _dtype("Ones", dtype))


class Constant(Initializer):
    """Every entry ``value`` (a number, or an array that broadcasts to the shape)."""

    def __init__(self, value=0.0):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or not np.all(np.isfinite(array)):
            raise ValueError(f"Constant: value must be finite numbers, got {value!r}")
        self.value = float(array) if array.ndim == 0 else array.tolist()

    def __call__(self, shape, dtype=None):
        shape = _shape("Constant", shape)
        try:
            return np.broadcast_to(np.asarray(self.value, _dtype("Constant", dtype)),
                                   shape).copy()
        except ValueError:
            raise ValueError(f"Constant: a value of shape {np.shape(self.value)} does not "
                             f"broadcast to {shape}") from None

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """``gain * eye(rows, cols)`` for a 2-D weight."""

    def __init__(self, gain=1.0):
        self.gain = _checks.real("Identity", "gain", gain)

    def __call__(self, shape, dtype=None):
        shape = _shape("Identity", shape)
        if len(shape) != 2:
            raise ValueError(f"Identity: only 2-D weights can be identity matrices, got shape "
                             f"{shape}")
        return (self.gain * np.eye(*shape)).astype(_dtype("Identity", dtype))

    def get_config(self):
        return {"gain": self.gain}


class RandomInitializer(Initializer):
    def __init__(self, seed=None):
        if seed is not None:
            seed = _checks.integer(type(self).__name__, "seed", seed, low=0)
        self._init_seed = seed
        self.seed = seed      # unseeded: drawn at the first call, then kept

    def _generator(self):
        if self.seed is None:
            self.seed = int(random.generator().integers(1, 10 ** 9))
        return np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self._init_seed}


def _truncated_normal(rng, mean, stddev, shape):
    """Normal samples kept only within two standard deviations of the mean (redrawn)."""
    count = math.prod(shape)
    kept = np.empty(0)
    while kept.size < count:
        batch = rng.normal(mean, stddev, count)
        kept = np.concatenate([kept, batch[np.abs(batch - mean) <= 2 * stddev]])
    return kept[:count].reshape(shape)


class RandomNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _checks.real("RandomNormal", "mean", mean)
        self.stddev = _checks.real("RandomNormal", "stddev", stddev, low=0)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape("RandomNormal", shape)
        values = self._generator().normal(self.mean, self.stddev, shape)
        return values.astype(_dtype("RandomNormal", dtype))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """A normal distribution cut at two standard deviations (values beyond are redrawn); the
    spread of what is kept is 0.88 * stddev."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _checks.real("TruncatedNormal", "mean", mean)
        self.stddev = _checks.real("TruncatedNormal", "stddev", stddev, low=0)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape("TruncatedNormal", shape)
        values = _truncated_normal(self._generator(), self.mean, self.stddev, shape)
        return values.astype(_dtype("TruncatedNormal", dtype))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = _checks.real("RandomUniform", "minval", minval)
        self.maxval = _checks.real("RandomUniform", "maxval", maxval, low=self.minval)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape("RandomUniform", shape)
        values = self._generator().uniform(self.minval, self.maxval, shape)
        return values.astype(_dtype("RandomUniform", dtype))

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Variance ``scale / fan`` (fan_in, fan_out or their mean, at least 1): a normal cut at two
    standard deviations whose stddev is raised by 1/0.8796... so the kept values have that
    variance, an untruncated normal, or a uniform on +-sqrt(3 * variance)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        owner = type(self).__name__
        self.scale = _checks.real(owner, "scale", scale, low=0, low_open=True)
        self.mode = _checks.choice(owner, "mode", mode, ("fan_in", "fan_out", "fan_avg"))
        distribution = distribution.lower() if isinstance(distribution, str) else distribution
        if distribution == "normal":
            distribution = "truncated_normal"
        self.distribution = _checks.choice(owner, "distribution", distribution,
                                           ("truncated_normal", "untruncated_normal",
                                            "uniform"))
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        owner = type(self).__name__
        shape = _shape(owner, shape)
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        variance = self.scale / max(1.0, fan[self.mode])
        rng = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), shape)
        else:
            # 0.8796... is the standard deviation of a unit normal truncated at +-2.
            values = _truncated_normal(rng, 0.0, math.sqrt(variance) / 0.87962566103423978,
                                       shape)
        return values.astype(_dtype(owner, dtype))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class _PresetVarianceScaling(VarianceScaling):
    """A VarianceScaling whose (scale, mode, distribution) the subclass fixes."""
    preset = None

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(*self.preset, seed=seed, input_axes=input_axes,
                         output_axes=output_axes)

    def get_config(self):
        return {"seed": self._init_seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class GlorotUniform(_PresetVarianceScaling):
    preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_PresetVarianceScaling):
    preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_PresetVarianceScaling):
    preset = (2.0, "fan_in", "uniform")


class HeNormal(_PresetVarianceScaling):
    preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_PresetVarianceScaling):
    preset = (1.0, "fan_in", "uniform")


class LecunNormal(_PresetVarianceScaling):
    preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal one, times ``gain``;
    a weight of more than two axes is flattened to (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain=1.0, seed=None):
        self.gain = _checks.real("Orthogonal", "gain", gain)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape("Orthogonal", shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the weight must have at least two axes, got shape "
                             f"{shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._generator().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # makes the decomposition unique (uniformly distributed q)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(_dtype("Orthogonal", dtype))

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


_CLASSES = {cls.__name__: cls for cls in (
    Zeros, Ones, Constant, Identity, RandomNormal, TruncatedNormal, RandomUniform,
    VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform,
    LecunNormal, Orthogonal)}
# Keras' names: class names, their snake_case, and its aliases.
_BY_NAME = {**_CLASSES, **{snake_case(name): cls for name, cls in _CLASSES.items()},
            "normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
            "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal}


def get(identifier):
    """An Initializer from a Keras name ("he_normal" or "HeNormal"), a {"class_name",
    "config"} dict, an Initializer class or instance, or a function (shape, dtype=None)."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        config = identifier.get("config", {})
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"Unknown initializer config {identifier!r}; expected a "
                             f"class_name among {sorted(_CLASSES)}")
        return cls.from_config(config)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower())
        if cls is not None:
            return cls()
    elif callable(identifier):
        return identifier
    raise ValueError(f"Unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)}")


def serialize(initializer):
    if not isinstance(initializer, Initializer):
        raise ValueError(f"Cannot serialize the initializer {initializer!r}: only "
                         f"convnet.initializers classes can be saved")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config):
    return get(config)
