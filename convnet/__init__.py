"""convnet: a CNN layer engine for the CPU with a Keras-shaped API.

``import convnet as keras`` and ``from convnet import layers`` run Keras
scripts built from the layers convnet has.
"""
from . import (activations, callbacks, constraints, datasets, initializers, layers, losses,
               metrics, kernels, optimizers, regularizers, utils)
from .layers import Input
from .models import Sequential
from .kernels import get_num_threads, set_num_threads
from .saving import load_model

__version__ = "0.1.0"

__all__ = ["Sequential", "Input", "layers", "optimizers", "losses", "metrics", "callbacks",
           "initializers", "regularizers", "constraints", "activations", "datasets", "utils",
           "kernels", "load_model", "set_num_threads", "get_num_threads"]
