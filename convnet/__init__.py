"""convnet: a CNN layer engine for the CPU with a Keras-shaped API.

``import convnet as keras`` and ``from convnet import layers`` run Keras
scripts built from the layers convnet has.
"""
# First: it sets how OpenMP threads wait, which the runtime reads once, when it loads.
from . import _wait_policy  # noqa: F401  (isort: skip)
from . import (activations, callbacks, datasets, initializers, layers, losses, metrics, kernels,
               optimizers, utils)
from .layers import Input
from .models import Sequential
from .kernels import get_num_threads, set_num_threads
from .saving import load_model

__version__ = "0.1.0"

__all__ = ["Sequential", "Input", "layers", "optimizers", "losses", "metrics", "callbacks",
           "initializers", "activations", "datasets", "utils", "kernels", "load_model",
           "set_num_threads", "get_num_threads"]
