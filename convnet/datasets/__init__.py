"""Keras' dataset loaders: a verified copy in Keras' cache, else one download into it.

``mnist``, ``cifar10`` and ``fashion_mnist`` have Keras 3's ``load_data()`` and
return format; ``digits`` (scikit-learn's 8x8 digits) is convnet's own.
"""
from . import cifar10, digits, fashion_mnist, mnist

__all__ = ["mnist", "cifar10", "fashion_mnist", "digits"]
