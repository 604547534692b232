"""Datasets that ship with convnet or a package: no download at run time."""
from . import digits, fashion_mnist

__all__ = ["fashion_mnist", "digits"]
