"""Rewriting a trained model for inference: ``fold_batch_norm``.

Nothing here runs on its own: ``predict`` computes what the model says, layer by layer,
and a folded model is a new model the user asks for.
"""
import numpy as np

from . import kernels
from .layers import (BatchNormalization, Conv2D, Conv2DTranspose, Dense, DepthwiseConv2D,
                     SeparableConv2D)
from .models import Functional, Sequential, clone_model

_FOLDABLE = (Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, Dense)


def fold_batch_norm(model):
    """A new model that computes what `model` computes at inference, with every
    BatchNormalization that directly follows a Conv2D, DepthwiseConv2D, SeparableConv2D,
    Conv2DTranspose or Dense folded into that layer's kernel and bias.

    At inference batch normalization is a fixed per-channel affine map, x * scale + shift
    with scale = gamma / sqrt(moving_variance + epsilon) and shift = beta - moving_mean *
    scale, so a linear layer followed by it is one linear layer with its kernel's output
    channels multiplied by scale and the bias (bias - moving_mean) * scale + beta
    (``kernels.fold_batch_norm``, in float64): one pass over the activations fewer.

    A pair is folded when the layer has no activation (a ReLU after the normalization
    stays where it is), the normalization's axis is the layer's channel axis and both
    compute in the same dtype; in a functional model, also when neither layer is shared
    and the layer's output goes to the normalization only. Everything else is copied,
    weights included (nested models as they are). The folded layer keeps its name and gets
    a bias. The result is not compiled, and `model` is left as it was; it matches `model`'s
    inference (``training=False``) output to rounding, and is meant for inference only:
    training it would no longer normalise with batch statistics.
    """
    if isinstance(model, Sequential):
        return _fold_sequential(model)
    if isinstance(model, Functional):
        return _fold_functional(model)
    raise ValueError(f"fold_batch_norm: expected a Sequential or functional model, got "
                     f"{type(model).__name__} (a subclassed model's call() cannot be rewritten)")


def _channel_axis(layer, ndim):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return ndim - 1


def _foldable(layer, norm, output_shape):
    return (type(layer) in _FOLDABLE and isinstance(norm, BatchNormalization)
            and layer.activation is None and layer.dtype == norm.dtype and norm.built
            and norm.axis % len(output_shape) == _channel_axis(layer, len(output_shape)))


def _copy(layer):
    return type(layer).from_config(layer.get_config())


def _with_bias(layer):
    return type(layer).from_config({**layer.get_config(), "use_bias": True})


def _folded_weights(layer, norm):
    """The weights of `layer` with `norm` folded in, in the order of its weights."""
    statistics = [None if norm.gamma is None else norm.gamma.value,
                  None if norm.beta is None else norm.beta.value,
                  norm.moving_mean.value, norm.moving_variance.value, norm.epsilon]
    bias = None if layer.bias is None else layer.bias.value
    name = norm.describe()
    if isinstance(layer, SeparableConv2D):
        kernel, bias = kernels.fold_batch_norm(layer.pointwise_kernel.value, bias, *statistics,
                                               name=name)
        return [layer.depthwise_kernel.numpy(), kernel, bias]
    kernel = layer.kernel.value
    if isinstance(layer, DepthwiseConv2D):
        # Output channel c * multiplier + m is kernel[:, :, c, m]: the last two axes, flat.
        kh, kw, channels, multiplier = kernel.shape
        folded, bias = kernels.fold_batch_norm(kernel.reshape(kh, kw, 1, -1), bias,
                                               *statistics, name=name)
        return [folded.reshape(kernel.shape), bias]
    if isinstance(layer, Conv2DTranspose):
        # Its kernel is (kh, kw, filters, in_channels): the output channels are axis 2.
        folded, bias = kernels.fold_batch_norm(np.moveaxis(kernel, 2, -1), bias, *statistics,
                                               name=name)
        return [np.ascontiguousarray(np.moveaxis(folded, -1, 2)), bias]
    return list(kernels.fold_batch_norm(kernel, bias, *statistics, name=name))


def _fold_sequential(model):
    if not model.built or model._input_layer is None:
        raise ValueError(f"fold_batch_norm: Sequential '{model.name}' has not been built; "
                         f"start it with Input(shape) or build it first")
    layers, shape = model.layers, model.input_shape
    copies, weights = [], []
    index = 0
    while index < len(layers):
        layer = layers[index]
        output_shape = layer.compute_output_shape(shape)
        following = layers[index + 1] if index + 1 < len(layers) else None
        if _foldable(layer, following, output_shape):
            copies.append(_with_bias(layer))
            weights.append(_folded_weights(layer, following))
            index += 2
        else:
            copies.append(_copy(layer))
            weights.append(layer.get_weights())
            index += 1
        shape = output_shape
    folded = Sequential([_copy(model._input_layer), *copies], name=model.name)
    for copy, values in zip(copies, weights):
        copy.set_weights(values)
    return folded


def _fold_functional(model):
    consumers = {}
    for node in model._nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    outputs = {id(tensor) for tensor in model._output_tensors}
    pairs = {}  # the producer's name -> the normalization folded into it
    for node in model._nodes:
        layer = node.layer
        if len(layer._inbound_nodes) != 1 or len(node.output_tensors) != 1:
            continue
        (tensor,) = node.output_tensors
        users = consumers.get(id(tensor), [])
        if len(users) != 1 or id(tensor) in outputs:
            continue
        norm = users[0].layer
        if len(norm._inbound_nodes) == 1 and _foldable(layer, norm, tensor.shape):
            pairs[layer.name] = norm
    folded_norms = {norm.name for norm in pairs.values()}

    def clone(layer):
        return _with_bias(layer) if layer.name in pairs else _copy(layer)

    def call(layer, *args, **kwargs):
        if layer.name in folded_norms:
            return args[0]
        return layer(*args, **kwargs)

    folded = clone_model(model, clone_function=clone, call_function=call)
    originals = {layer.name: layer for layer in model.layers}
    for layer in folded.layers:
        original = originals[layer.name]
        layer.set_weights(_folded_weights(original, pairs[layer.name]) if layer.name in pairs
                          else original.get_weights())
    return folded
