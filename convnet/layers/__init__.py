"""Keras-named layers; every one implements the Layer interface of layers/base.py."""
from .augmentation import (RandomBrightness, RandomContrast, RandomCrop, RandomFlip,
                           RandomRotation, RandomTranslation, RandomZoom)
from .base import Layer
from .batch_normalization import BatchNormalization
from .convolutional import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import (Activation, Dense, Dropout, Flatten, Input, InputLayer, ReLU, Softmax,
                   ZeroPadding2D)
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add,
                      average, concatenate, maximum, minimum, multiply, subtract)
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                      GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from ..ops.operation import Operation  # noqa: E402 - an op in a functional model
# -- shape, regularization, activation, normalization and preprocessing layers (issue 14) --
from .advanced_activations import ELU, LeakyReLU, PReLU
from .layer_normalization import LayerNormalization
from .preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from .regularization import (ActivityRegularization, GaussianDropout, GaussianNoise,
                             SpatialDropout2D)
from .reshaping import Cropping2D, Identity, Permute, Reshape, UpSampling2D

_MISC_LAYERS = (Reshape, Permute, UpSampling2D, Cropping2D, Identity, SpatialDropout2D,
                GaussianNoise, GaussianDropout, ActivityRegularization, LeakyReLU, PReLU, ELU,
                LayerNormalization, Normalization, Rescaling, Resizing, CenterCrop)
# -- end of the issue 14 layers --

Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D

#: every layer class a model file may name; nothing else is ever instantiated on load
LAYER_CLASSES = {cls.__name__: cls for cls in (
    InputLayer, Conv2D, Dense, Flatten, Activation, ReLU, Softmax, Dropout, ZeroPadding2D,
    MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D,
    Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Operation,
    *_MISC_LAYERS)}
# Batch normalization and the convolution variants (issue 14)
LAYER_CLASSES.update({cls.__name__: cls for cls in (
    BatchNormalization, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose)})


def serialize(layer):
    """{"class_name", "config"} of a layer (or a nested model)."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


# The data augmentation layers (layers/augmentation.py).
LAYER_CLASSES.update({cls.__name__: cls for cls in (
    RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomCrop, RandomContrast,
    RandomBrightness)})


__all__ = ["Layer", *LAYER_CLASSES, "Input", "Convolution2D", "Convolution2DTranspose",
           "SeparableConvolution2D", "MaxPool2D", "AvgPool2D",
           "GlobalAvgPool2D", "GlobalMaxPool2D", "add", "subtract", "multiply", "average",
           "maximum", "minimum", "concatenate", "serialize"]
