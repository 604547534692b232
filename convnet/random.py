"""One seeded source of randomness for initializers, dropout and shuffling.

``convnet.utils.set_random_seed(seed)`` (Keras' name) reseeds it, so the same
seed and data give the same weights and the same training run.
"""
import numpy as np

_generator = np.random.default_rng()


def set_seed(seed):
    """Reseed the generator that initializers, Dropout and fit's shuffling draw from."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def generator(seed=None):
    """A Generator: a fresh one for an explicit seed, else the shared seeded one."""
    return _generator if seed is None else np.random.default_rng(seed)
