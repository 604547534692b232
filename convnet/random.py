"""Randomness: Keras' ``keras.random`` ops and the one seeded source behind layers.

Keras' seed semantics: an int ``seed`` gives the same draw every call; a
``SeedGenerator`` gives a new, reproducible draw each call (its state
advances); ``seed=None`` draws from the shared generator that initializers,
Dropout and fit's shuffling use too, which ``convnet.utils.set_random_seed``
(Keras' name) reseeds. A draw with seed state ``[s, n]`` is NumPy's
``default_rng([s, n])``, as in Keras' NumPy backend, so an int seed gives the
same numbers there and here.
"""
import itertools
import math
import threading

import numpy as np

_generator = np.random.default_rng()
_names = itertools.count(1)


def set_seed(seed):
    """Reseed the generator that initializers, Dropout, fit's shuffling and unseeded
    random ops draw from."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def generator(seed=None):
    """A Generator: a fresh one for an explicit seed, else the shared seeded one."""
    return _generator if seed is None else np.random.default_rng(seed)


class SeedGenerator:
    """A seed that advances: each random op given it draws new numbers, and the same initial
    seed replays the same sequence (``keras.random.SeedGenerator``). Its state is a
    non-trainable Variable [seed, counter]; ``seed=None`` picks the seed from the shared
    generator (so ``set_random_seed`` makes it reproducible)."""

    def __init__(self, seed=None, name=None, **kwargs):
        from .variables import Variable
        kwargs.pop("backend", None)
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognized keyword arguments {sorted(kwargs)}")
        self.name = name or f"seed_generator_{next(_names)}"
        self._initial_seed = seed
        if seed is None:
            seed = int(_generator.integers(1, 10 ** 9))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"SeedGenerator: seed must be an int, got {seed!r}")
        self._lock = threading.Lock()
        self.state = Variable(np.array([int(seed) & 0xFFFFFFFF, 0], dtype=np.uint32),
                              dtype="uint32", trainable=False, name="seed_generator_state")

    def next(self, ordered=True):
        """The current state (a copy); the state then advances."""
        with self._lock:
            current = self.state.numpy()
            if ordered:
                self.state.assign(current + np.array([0, 1], np.uint32))
            else:
                self.state.assign((current.astype(np.int64) + 1) * 5387 % 933199)
        return current

    def get_config(self):
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<SeedGenerator {self.name} state={self.state.numpy().tolist()}>"


def draw_seed(seed):
    """The [seed, counter] pair a draw uses: from a SeedGenerator (which advances), an int,
    or such a pair; None draws one from the shared generator."""
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if seed is None:
        return _generator.integers(0, 2 ** 32, size=2, dtype=np.uint64).astype(np.uint32)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.array([int(seed) & 0xFFFFFFFF, 0], dtype=np.uint32)
    array = np.asarray(getattr(seed, "value", seed))
    if array.shape == (2,) and array.dtype.kind in "iu":
        return array.astype(np.uint32)
    raise ValueError(f"seed must be an int, a SeedGenerator or None, got {seed!r} "
                     f"({type(seed).__name__})")


def _rng(seed):
    return np.random.default_rng(draw_seed(seed))


def _float_dtype(dtype, op):
    from . import backend
    name = backend.standardize_dtype(dtype)
    if not backend.is_float_dtype(name):
        raise ValueError(f"keras.random.{op} requires a floating point dtype, got dtype={dtype}")
    return np.dtype(name)


def _shape(shape):
    return tuple(int(d) for d in shape) if isinstance(shape, (list, tuple)) else (int(shape),)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of a normal distribution (floatx() by default)."""
    return _rng(seed).normal(mean, stddev, _shape(shape)).astype(_float_dtype(dtype, "normal"))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples of the uniform distribution on [minval, maxval) (floatx() by default)."""
    return _rng(seed).uniform(minval, maxval, _shape(shape)).astype(
        _float_dtype(dtype, "uniform"))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples redrawn until within two standard deviations of the mean."""
    dtype = _float_dtype(dtype, "truncated_normal")
    rng = _rng(seed)
    size = math.prod(_shape(shape))
    kept = np.empty(0)
    while kept.size < size:
        batch = rng.normal(mean, stddev, size)
        kept = np.append(kept, batch[np.abs(batch - mean) <= 2 * stddev])
    return kept[:size].astype(dtype).reshape(_shape(shape))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers uniform in [minval, maxval)."""
    from . import backend
    if dtype and not backend.is_int_dtype(dtype):
        raise ValueError(f"keras.random.randint requires an integer dtype, got dtype={dtype}")
    return _rng(seed).integers(minval, maxval, _shape(shape),
                               dtype=np.dtype(backend.standardize_dtype(dtype)))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """For each row of 2-D `logits`, `num_samples` class indices drawn with probabilities
    softmax(logits)."""
    from .autodiff import value_of
    logits = np.asarray(value_of(logits), dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"keras.random.categorical: logits must be 2-D (batch_size, "
                         f"num_classes), got shape {logits.shape}")
    rng = _rng(seed)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    samples = [rng.choice(logits.shape[-1], size=num_samples, p=p) for p in probabilities]
    return np.array(samples, dtype=dtype).reshape(len(logits), num_samples)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """inputs with each entry (or each slice, by `noise_shape`) zeroed with probability
    `rate`, the rest scaled by 1 / (1 - rate); differentiable in the inputs."""
    from . import ops
    from .autodiff import value_of
    if not 0 <= rate <= 1:
        raise ValueError(f"keras.random.dropout: rate must be in [0, 1], got {rate}")
    shape = np.shape(value_of(inputs))
    if rate == 1:
        return ops.zeros_like(inputs)
    if rate == 0:
        return inputs
    if noise_shape is None:
        noise_shape = shape
    noise_shape = tuple(shape[i] if d is None else int(d) for i, d in enumerate(noise_shape))
    keep = np.broadcast_to(_rng(seed).uniform(size=noise_shape) < 1 - rate, shape)
    dtype = np.asarray(value_of(inputs)).dtype
    return ops.where(keep, ops.divide(inputs, np.asarray(1 - rate, dtype)), np.zeros((), dtype))


def shuffle(x, axis=0, seed=None):
    """x with its slices along `axis` in a random order (the slices move whole, as in Keras'
    TensorFlow, JAX and PyTorch backends); differentiable."""
    from . import ops
    from .autodiff import value_of
    n = np.shape(value_of(x))[axis]
    return ops.take(x, _rng(seed).permutation(n), axis=axis)


def gamma(shape, alpha, dtype=None, seed=None):
    """Samples of the gamma distribution with concentration `alpha` (scale 1)."""
    return _rng(seed).gamma(alpha, 1.0, _shape(shape)).astype(_float_dtype(dtype, "gamma"))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Samples of binomial distributions (as floats of `dtype`, floatx() by default)."""
    return _rng(seed).binomial(counts, probabilities, _shape(shape)).astype(
        _float_dtype(dtype, "binomial"))


def beta(shape, alpha, beta, dtype=None, seed=None):  # noqa: A002 - Keras' name
    """Samples of the beta distribution."""
    return _rng(seed).beta(alpha, beta, _shape(shape)).astype(_float_dtype(dtype, "beta"))


__all__ = ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "categorical",
           "dropout", "shuffle", "gamma", "binomial", "beta"]
