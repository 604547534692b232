"""convnet: a CNN engine for the CPU with Keras 3's API.

``import convnet as keras``, ``from convnet import layers`` and ``from convnet import ops``
run Keras programs built from what convnet has: Sequential, functional and subclassed
models, trained with compiled Cython + OpenMP kernels.
"""
# First: it sets how OpenMP threads wait, which the runtime reads once, when it loads.
from . import _wait_policy  # noqa: F401  (isort: skip)
from . import (activations, backend, callbacks, constraints, datasets, initializers, kernels,
               layers, losses, metrics, ops, optimizers, regularizers, utils)
from . import random
from .autodiff import GradientTape
from .kernels import get_num_threads, set_num_threads
from .layers import Input, Layer
from .models import Model, Sequential, clone_model, load_model
from .variables import Variable
from . import models

config = backend

__version__ = "0.2.0"

__all__ = ["Sequential", "Model", "Input", "Layer", "Variable", "GradientTape", "layers",
           "models", "optimizers", "losses", "metrics", "callbacks", "initializers",
           "regularizers", "constraints", "activations", "datasets", "utils", "ops", "kernels",
           "backend", "config", "random", "load_model", "clone_model", "set_num_threads",
           "get_num_threads"]
