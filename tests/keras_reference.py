"""Keras 3 itself as a second reference, where it is installed (KERAS_BACKEND defaults to
torch here; numpy needs jax in recent Keras). Tests that use it skip when it is missing;
each also checks against a formula written out in the test."""
import functools
import os
import warnings

import numpy as np
import pytest


@functools.lru_cache(maxsize=1)
def _import():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as error:  # not installed, or its backend is not
        return None, str(error)
    return keras, None


def keras_or_skip():
    keras, problem = _import()
    if keras is None:
        pytest.skip(f"Keras is not importable: {problem}")
    return keras


def numpy_of(value):
    """A Keras result (a backend tensor or a number) as a NumPy array."""
    keras = keras_or_skip()
    with warnings.catch_warnings():  # Keras' torch backend trips a NumPy 2 deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(keras.ops.convert_to_numpy(value))
