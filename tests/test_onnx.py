"""ONNX export: every layer and option, exported and run in ONNX Runtime against the model's
own predict (the reference is convnet's forward pass, itself tested against NumPy loops),
at opsets 13, 17 and 22 and batches 1 and 7; the layout and padding traps; refusals."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import convnet as keras
from convnet import layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
onnx_export = importlib.import_module("convnet.export.onnx")

OPSETS = (13, 17, 22)
BATCHES = (1, 7)
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "elu", "leaky_relu",
               "silu", "swish")


def _session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _randomized(model, seed=0):
    """Random biases too (they start at zero), so a bias in the wrong place shows."""
    rng = np.random.default_rng(seed)
    model.set_weights([w if w.ndim > 1 else rng.normal(0, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def _seq(*stack, dtype="float32"):
    return _randomized(keras.Sequential([keras.Input(stack[0], dtype=dtype), *stack[1:]]))


def _exported_matches(model, opset, sizes=None, atol=1e-5, rtol=0.0, input_signature=None):
    """Export, check, run at batches 1 and 7 (and each of `sizes` for free input sizes);
    returns the largest difference from model.predict."""
    proto = onnx_export.to_onnx(model, opset, input_signature)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == opset
    session = _session(proto)
    rng = np.random.default_rng(opset)
    dtype = model.layers[0].dtype
    worst = 0.0
    for size in sizes or [model.input_shape[1:]]:
        for batch in BATCHES:
            x = rng.normal(size=(batch, *size)).astype(dtype)
            (got,) = session.run(None, {"input": x})
            expected = model.predict(x, verbose=0)
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
            worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


CASES = {
    # Conv2D: padding forms, strides, dilation, layouts, bias, every activation
    "conv valid relu": lambda: _seq((8, 8, 3), layers.Conv2D(4, 3, activation="relu")),
    "conv same stride 2, asymmetric pads": lambda: _seq(
        (8, 9, 2), layers.Conv2D(3, 3, strides=2, padding="same")),
    "conv same even kernel": lambda: _seq((6, 7, 2), layers.Conv2D(3, (2, 4), padding="same")),
    "conv same dilation 2": lambda: _seq(
        (9, 8, 2), layers.Conv2D(3, 3, padding="same", dilation_rate=2)),
    "conv same dilation and stride": lambda: _seq(
        (9, 10, 2), layers.Conv2D(3, 3, strides=2, padding="same", dilation_rate=(2, 3))),
    "conv valid dilation, uneven strides": lambda: _seq(
        (11, 9, 2), layers.Conv2D(3, (3, 2), strides=(2, 1), dilation_rate=(2, 3))),
    "conv explicit asymmetric pads": lambda: _seq(
        (6, 5, 2), layers.Conv2D(3, 3, padding=((1, 2), (0, 3)))),
    "conv int pad": lambda: _seq((5, 5, 2), layers.Conv2D(3, 3, strides=2, padding=2)),
    "conv pair pad": lambda: _seq((5, 6, 2), layers.Conv2D(3, 3, padding=(1, 0))),
    "conv channels_first": lambda: _seq(
        (2, 7, 6), layers.Conv2D(3, 3, padding="same", data_format="channels_first",
                                 activation="tanh"),
        layers.MaxPooling2D(2, data_format="channels_first")),
    "conv without bias": lambda: _seq((6, 6, 2), layers.Conv2D(3, 3, use_bias=False)),
    **{f"conv activation {name}": (lambda name=name: _seq(
        (5, 6, 2), layers.Conv2D(4, 3, padding="same", activation=name)))
       for name in ACTIVATIONS},
    # activation layers on 2-D tensors (on images: the conv activations above)
    **{f"Activation {name}": (lambda name=name: _seq(
        (6,), layers.Dense(5), layers.Activation(name))) for name in ACTIVATIONS},
    "Activation softmax on images": lambda: _seq(
        (4, 5, 3), layers.Conv2D(3, 1), layers.Activation("softmax")),
    "ReLU max_value": lambda: _seq((6,), layers.Dense(8), layers.ReLU(max_value=0.5)),
    "ReLU negative_slope": lambda: _seq((6,), layers.Dense(8), layers.ReLU(negative_slope=0.1)),
    "ReLU threshold on images": lambda: _seq(
        (4, 4, 2), layers.Conv2D(3, 1), layers.ReLU(threshold=0.3)),
    "ReLU all options": lambda: _seq(
        (6,), layers.Dense(8), layers.ReLU(max_value=0.8, negative_slope=0.2, threshold=0.3)),
    "Softmax axis 1 of NHWC images": lambda: _seq(
        (4, 5, 3), layers.Conv2D(3, 1), layers.Softmax(axis=1)),
    "Softmax axis 2 of 3-D": lambda: _seq((4, 5), layers.Softmax(axis=2)),
    "Softmax axis -1 of 2-D": lambda: _seq((6,), layers.Dense(4), layers.Softmax()),
    # Dense on 2-D and N-D
    "Dense 2-D": lambda: _seq((6,), layers.Dense(4, activation="relu"), layers.Dense(3)),
    "Dense 3-D": lambda: _seq((4, 5), layers.Dense(3), layers.Dense(2, use_bias=False)),
    "Dense on images": lambda: _seq((5, 4, 3), layers.Conv2D(2, 1), layers.Dense(4)),
    # Flatten: NHWC order
    "Flatten after conv": lambda: _seq(
        (6, 5, 3), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(3)),
    "Flatten channels_first after channels_first conv": lambda: _seq(
        (3, 6, 5), layers.Conv2D(4, 3, data_format="channels_first"),
        layers.Flatten(data_format="channels_first"), layers.Dense(3)),
    "Flatten channels_first of NHWC": lambda: _seq(
        (6, 5, 3), layers.Conv2D(4, 3), layers.Flatten(data_format="channels_first"),
        layers.Dense(3)),
    "Flatten 3-D": lambda: _seq((4, 5), layers.Flatten(), layers.Dense(3)),
    "a small CNN": lambda: _seq(
        (12, 12, 1), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, padding="same", activation="relu"), layers.AveragePooling2D(2),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")),
    # Dropout is the identity at inference
    "Dropout": lambda: _seq((6,), layers.Dense(5), layers.Dropout(0.5), layers.Dense(2)),
    "Dropout alone": lambda: _seq((3,), layers.Dropout(0.3)),
    # ZeroPadding2D
    "ZeroPadding2D int": lambda: _seq((4, 5, 2), layers.ZeroPadding2D(2)),
    "ZeroPadding2D asymmetric": lambda: _seq(
        (4, 5, 2), layers.ZeroPadding2D(((1, 2), (0, 3))), layers.Conv2D(2, 3)),
    "ZeroPadding2D channels_first": lambda: _seq(
        (2, 4, 5), layers.ZeroPadding2D((1, 2), data_format="channels_first")),
    # MaxPooling2D
    "MaxPool 2": lambda: _seq((6, 7, 3), layers.MaxPooling2D(2)),
    "MaxPool uneven window and strides": lambda: _seq(
        (7, 8, 3), layers.MaxPooling2D((3, 2), strides=(1, 2))),
    "MaxPool same stride 2": lambda: _seq((7, 8, 3), layers.MaxPooling2D(3, 2, padding="same")),
    "MaxPool explicit pads": lambda: _seq(
        (7, 8, 3), layers.MaxPooling2D(3, 2, padding=((1, 2), (0, 1)))),
    # AveragePooling2D
    "AvgPool same stride 2": lambda: _seq(
        (7, 8, 3), layers.AveragePooling2D(3, 2, padding="same")),
    "AvgPool pads excluded": lambda: _seq(
        (7, 8, 3), layers.AveragePooling2D(3, 2, padding=((1, 2), (0, 1)))),
    "AvgPool pads counted": lambda: _seq(
        (7, 8, 3), layers.AveragePooling2D(3, 2, padding=((1, 2), (0, 1)),
                                           count_include_pad=True)),
    "AvgPool channels_first": lambda: _seq(
        (3, 7, 8), layers.AveragePooling2D(2, data_format="channels_first")),
    # global pooling
    **{f"{cls.__name__} keepdims={keep} {fmt}": (lambda cls=cls, keep=keep, fmt=fmt: _seq(
        (5, 6, 3) if fmt == "channels_last" else (3, 5, 6),
        cls(data_format=fmt, keepdims=keep), layers.Flatten(), layers.Dense(2)))
       for cls in (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
       for keep in (False, True) for fmt in ("channels_last", "channels_first")},
}

# -- shape, regularization, activation, normalization and preprocessing layers (issue 14) --


def _adapted(shape, **kwargs):
    norm = layers.Normalization(**kwargs)
    norm.adapt(np.random.default_rng(4).normal(1.0, 3.0, size=(20, *shape)).astype("float32"))
    return norm


CASES.update({
    "Reshape -1 after conv": lambda: _seq((4, 6, 2), layers.Conv2D(3, 1),
                                          layers.Reshape((-1, 6)), layers.Dense(2)),
    "Reshape to images": lambda: _seq((12,), layers.Reshape((2, 3, 2)), layers.Conv2D(2, 1)),
    "Permute of conv output": lambda: _seq((4, 6, 2), layers.Conv2D(3, 1),
                                           layers.Permute((3, 1, 2)), layers.Flatten(),
                                           layers.Dense(3)),
    "Cropping2D": lambda: _seq((5, 6, 2), layers.Cropping2D(((1, 0), (2, 1))),
                               layers.Conv2D(2, 1)),
    "Cropping2D channels_first": lambda: _seq(
        (2, 5, 6), layers.Cropping2D((1, 2), data_format="channels_first")),
    "UpSampling2D nearest": lambda: _seq((4, 5, 2), layers.UpSampling2D((2, 3))),
    "UpSampling2D bilinear": lambda: _seq(
        (4, 5, 2), layers.Conv2D(3, 1), layers.UpSampling2D((3, 2), interpolation="bilinear")),
    "UpSampling2D bilinear channels_first": lambda: _seq(
        (2, 4, 5), layers.UpSampling2D(2, data_format="channels_first",
                                       interpolation="bilinear")),
    "noise and regularization layers": lambda: _seq(
        (4, 5, 3), layers.SpatialDropout2D(0.3), layers.GaussianNoise(0.2),
        layers.GaussianDropout(0.2), layers.ActivityRegularization(0.1, 0.1), layers.Identity()),
    "LeakyReLU": lambda: _seq((6,), layers.Dense(8), layers.LeakyReLU()),
    "ELU alpha": lambda: _seq((6,), layers.Dense(8), layers.ELU(0.5)),
    "PReLU per value": lambda: _seq(
        (6,), layers.Dense(8), layers.PReLU(alpha_initializer="random_normal")),
    "PReLU shared on conv output": lambda: _seq(
        (4, 5, 3), layers.Conv2D(3, 1), layers.PReLU(alpha_initializer="random_normal",
                                                      shared_axes=[1, 2])),
    "LayerNormalization": lambda: _seq((5, 6), layers.LayerNormalization(), layers.Dense(2)),
    "LayerNormalization on conv output, two axes": lambda: _seq(
        (4, 5, 3), layers.Conv2D(3, 1), layers.LayerNormalization(axis=[1, 3], center=False)),
    "Normalization given": lambda: _seq(
        (4, 5, 3), layers.Normalization(mean=[1, 2, 3], variance=[1, 4, 9]),
        layers.Conv2D(2, 1)),
    # (not _seq: its random 1-D weights would make the variance negative)
    "Normalization adapted, invert": lambda: keras.Sequential(
        [keras.Input((6,)), _adapted((6,), invert=True)]),
    "Rescaling per channel": lambda: _seq((4, 5, 3), layers.Rescaling([1.0, 0.5, 2.0], 0.1),
                                          layers.Conv2D(2, 1)),
    "Resizing down": lambda: _seq((5, 6, 2), layers.Conv2D(2, 1), layers.Resizing(3, 4)),
    "Resizing up": lambda: _seq((5, 6, 2), layers.Resizing(9, 13)),
    "Resizing nearest": lambda: _seq((7, 9, 2), layers.Resizing(14, 3,
                                                                interpolation="nearest")),
    "Resizing pad_to_aspect_ratio": lambda: _seq(
        (5, 6, 2), layers.Resizing(8, 3, pad_to_aspect_ratio=True, fill_value=0.5)),
    "Resizing crop_to_aspect_ratio channels_first": lambda: _seq(
        (2, 5, 8), layers.Resizing(4, 4, crop_to_aspect_ratio=True,
                                   data_format="channels_first")),
    "CenterCrop": lambda: _seq((5, 6, 2), layers.CenterCrop(3, 3)),
    "CenterCrop of a small image": lambda: _seq((5, 6, 2), layers.CenterCrop(7, 2)),
})


def test_nearest_resizing_picks_keras_cells_at_every_size():
    """ONNX's half_pixel source rounded half up is Keras' floor((dst + 0.5) * in / out):
    checked cell for cell at every size from 1 to 12 into 1 to 24."""
    for size in range(1, 13):
        for target in range(1, 25):
            model = _seq((size, 2, 1), layers.Resizing(target, 2, interpolation="nearest"))
            x = np.arange(size * 2, dtype=np.float32).reshape(1, size, 2, 1)
            (got,) = _session(onnx_export.to_onnx(model)).run(None, {"input": x})
            np.testing.assert_array_equal(got, model.predict(x, verbose=0))


MISC_REFUSED = {
    "LayerNormalization rms_scaling": (
        lambda: _seq((5,), layers.LayerNormalization(rms_scaling=True)),
        "rms_scaling=True .* has no ONNX form"),
    "Resizing of an unknown size": (
        lambda: _seq((None, None, 2), layers.Resizing(3, 3)),
        "Resizing 'resizing.*needs the input's height and width"),
    "Resizing in float64": (
        lambda: _seq((5, 6, 2), layers.Resizing(3, 3, dtype="float64"), dtype="float64"),
        "float64 kernel for the Resize"),
    "ELU in float64": (lambda: _seq((6,), layers.ELU(dtype="float64"), dtype="float64"),
                       "float64 kernel for the Elu"),
}


@pytest.mark.filterwarnings("ignore:LayerNormalization. rms_scaling")
@pytest.mark.parametrize("case", sorted(MISC_REFUSED))
def test_misc_layers_onnx_cannot_express_exactly_are_refused(case):
    make, message = MISC_REFUSED[case]
    with pytest.raises(ValueError, match=message):
        onnx_export.to_onnx(make())

# The activations Keras 3 names beyond ACTIVATIONS, as strings and with settings.
MORE_ACTIVATIONS = ("gelu", "selu", "celu", "softsign", "hard_sigmoid", "hard_silu",
                    "hard_swish", "mish", "relu6", "hard_tanh", "exponential", "log_sigmoid",
                    "tanh_shrink", "log_softmax")
CASES.update({
    **{f"Activation {name}": (lambda name=name: _seq(
        (6,), layers.Dense(5), layers.Activation(name))) for name in MORE_ACTIVATIONS},
    **{f"conv activation {name}": (lambda name=name: _seq(
        (5, 6, 2), layers.Conv2D(4, 3, padding="same", activation=name)))
       for name in MORE_ACTIVATIONS},
    "gelu approximate": lambda: _seq(
        (6,), layers.Dense(5, activation=keras.activations.GELU(approximate=True))),
    "elu alpha as an activation": lambda: _seq(
        (6,), layers.Dense(5, activation=keras.activations.ELU(alpha=0.4))),
    "log_softmax axis 1 of NHWC images": lambda: _seq(
        (4, 5, 3), layers.Conv2D(3, 1),
        layers.Activation(keras.activations.LogSoftmax(axis=1))),
})
# -- end of the issue 14 layers --


def _normalized(model):
    """Positive moving variances (the random 1-D weights of _randomized may be negative)."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_variance.assign(np.abs(layer.moving_variance.numpy()) + 0.5)
    return model


# Issue 14: grouped, depthwise, separable and transposed convolutions, batch normalization
CASES.update({
    "conv groups relu": lambda: _seq((6, 7, 4), layers.Conv2D(6, 3, groups=2,
                                                              activation="relu")),
    "conv groups channels_first same stride 2": lambda: _seq(
        (8, 7, 6), layers.Conv2D(4, 3, strides=2, padding="same", groups=4,
                                 data_format="channels_first")),
    "depthwise multiplier 2 same stride 2": lambda: _seq(
        (7, 8, 3), layers.DepthwiseConv2D(3, 2, "same", depth_multiplier=2, activation="relu")),
    "depthwise channels_first dilated": lambda: _seq(
        (3, 9, 8), layers.DepthwiseConv2D((3, 2), dilation_rate=(2, 1),
                                          data_format="channels_first")),
    "depthwise without bias": lambda: _seq((6, 6, 3), layers.DepthwiseConv2D(3, use_bias=False)),
    "separable relu": lambda: _seq(
        (8, 8, 3), layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2,
                                          activation="relu")),
    "separable channels_first strided without bias": lambda: _seq(
        (3, 9, 8), layers.SeparableConv2D(5, (3, 2), strides=2, use_bias=False,
                                          data_format="channels_first")),
    "transpose valid stride 2 relu": lambda: _seq(
        (5, 4, 3), layers.Conv2DTranspose(4, 3, strides=2, activation="relu")),
    "transpose valid stride 3 past the kernel": lambda: _seq(
        (5, 4, 3), layers.Conv2DTranspose(4, 2, strides=3)),
    "transpose valid output_padding": lambda: _seq(
        (5, 4, 3), layers.Conv2DTranspose(4, (3, 2), strides=(2, 3), output_padding=(1, 2))),
    "transpose same stride 2": lambda: _seq(
        (5, 4, 3), layers.Conv2DTranspose(4, 3, strides=2, padding="same")),
    "transpose same even kernel output_padding": lambda: _seq(
        (5, 4, 3), layers.Conv2DTranspose(4, (4, 2), strides=2, padding="same",
                                          output_padding=(1, 0))),
    "transpose same dilation": lambda: _seq(
        (5, 6, 3), layers.Conv2DTranspose(2, 3, padding="same", dilation_rate=(2, 3))),
    "transpose channels_first": lambda: _seq(
        (3, 5, 4), layers.Conv2DTranspose(2, 3, strides=2, padding="same",
                                          data_format="channels_first", activation="tanh")),
    "batch norm after conv": lambda: _normalized(_seq(
        (6, 6, 3), layers.Conv2D(4, 3, use_bias=False), layers.BatchNormalization(),
        layers.ReLU())),
    "batch norm axis 1 after channels_first conv": lambda: _normalized(_seq(
        (3, 6, 6), layers.Conv2D(4, 3, data_format="channels_first"),
        layers.BatchNormalization(axis=1, epsilon=0.1))),
    "batch norm without center and scale on a matrix": lambda: _normalized(_seq(
        (6,), layers.Dense(4), layers.BatchNormalization(center=False, scale=False))),
    "batch norm of the input": lambda: _normalized(_seq((5, 4, 3), layers.BatchNormalization())),
})

# ceil_mode: (input size, pool, stride, padding). Each was chosen for its last window:
CEIL_CASES = {
    "adds a window past the input": (6, 3, 2, "valid"),            # 3 windows, floor has 2
    "adds a window into the declared padding": (6, 3, 2, 1),       # 4 windows, floor has 3
    "drops a window starting in the padding": (5, 2, 2, 1),        # 3, the ceiling would be 4
    "no change": (7, 3, 2, "valid"),
    "with same padding": (5, 2, 2, "same"),
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_layer_runs_in_onnx_runtime_like_predict(case, opset):
    _exported_matches(CASES[case](), opset)


CEIL_POOLS = {
    "max": lambda *args, **kw: layers.MaxPooling2D(*args, **kw),
    "average": lambda *args, **kw: layers.AveragePooling2D(*args, **kw),
    "average counting pads": lambda *args, **kw: layers.AveragePooling2D(
        *args, count_include_pad=True, **kw),
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("pool", sorted(CEIL_POOLS))
@pytest.mark.parametrize("case", sorted(CEIL_CASES))
def test_ceil_mode_is_exact(case, pool, opset):
    size, window, stride, padding = CEIL_CASES[case]
    _exported_matches(_seq((size, size + 1, 2), CEIL_POOLS[pool](
        window, stride, padding=padding, ceil_mode=True)), opset)


def test_ceil_mode_cases_are_the_corner_cases_they_claim():
    """Counted by the NumPy reference's rule, independently of convnet."""
    from reference import output_length

    def windows(name, ceil_mode):
        n, k, s, p = CEIL_CASES[name]
        p = 0 if p == "valid" else p
        return output_length(n, k, s, 1, p, p, ceil_mode)

    assert windows("adds a window past the input", True) == 3
    assert windows("adds a window past the input", False) == 2
    assert windows("adds a window into the declared padding", True) == 4
    assert windows("adds a window into the declared padding", False) == 3
    # (5 + 2 - 2) / 2 rounded up, plus one, is 4, but that window would start at the end
    # padding's first cell: dropped
    assert windows("drops a window starting in the padding", True) == 3
    assert windows("no change", True) == windows("no change", False) == 3
    model = _seq((5, 6, 2), layers.MaxPooling2D(2, 2, padding="same", ceil_mode=True))
    assert model.output_shape == (None, 3, 3, 2)


@pytest.mark.parametrize("opset", OPSETS)
def test_free_image_size_and_dynamic_batch(opset):
    # an even kernel: "same" pads one cell more after than before, whatever the size
    model = _seq((None, None, 3), layers.Conv2D(4, (2, 4), padding="same", activation="relu"),
                 layers.MaxPooling2D(2), layers.Conv2D(5, 3, dilation_rate=2, padding="same"),
                 layers.GlobalAveragePooling2D(), layers.Dense(3))
    model.build((None, None, None, 3))
    _exported_matches(model, opset, sizes=[(9, 9, 3), (12, 7, 3)])
    proto = onnx_export.to_onnx(model, opset)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[3].dim_value == 3
    assert not dims[1].HasField("dim_value") and not dims[2].HasField("dim_value")


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("padding, output_padding", [("valid", None), ("same", None),
                                                     ("same", 1), ("valid", 1)])
def test_transposed_convolution_on_free_image_sizes(opset, padding, output_padding):
    """Its pads and output_padding do not depend on the input size."""
    model = _seq((None, None, 3), layers.Conv2DTranspose(
        2, 3, strides=2, padding=padding, output_padding=output_padding),
        layers.DepthwiseConv2D(3, padding="same"))
    _exported_matches(model, opset, sizes=[(4, 5, 3), (7, 3, 3)])


@pytest.mark.parametrize("stack, op", [
    ((layers.DepthwiseConv2D(3, dtype="float64"),), "Conv"),
    ((layers.Conv2DTranspose(2, 3, dtype="float64"),), "ConvTranspose"),
])
def test_float64_convolution_variants_are_refused(stack, op):
    model = _seq((5, 5, 2), *stack, dtype="float64")
    with pytest.raises(ValueError, match=f"{stack[0].describe()}.*float64 kernel for the {op}"):
        onnx_export.to_onnx(model)


@pytest.mark.parametrize("opset", OPSETS)
def test_float64_batch_normalization_runs_in_double(opset):
    model = _normalized(_seq((4, 3), layers.BatchNormalization(axis=1, dtype="float64"),
                             dtype="float64"))
    _exported_matches(model, opset, atol=1e-12, rtol=1e-12)


def test_flatten_negative_control_a_plain_nchw_flatten_is_wrong(monkeypatch):
    """The test above would catch the trap: flattening the NCHW tensor the convolution
    leaves, without going back to NHWC, gives a Dense the wrong rows."""
    def nchw_flatten(layer, builder, inputs):
        (x,) = inputs
        info = builder.info[x]
        return [builder.node("Flatten", [x], layer.name, layer.compute_output_shape(info.shape),
                             (0, 1), layer.dtype, axis=1)]

    model = CASES["Flatten after conv"]()
    assert _exported_matches(model, 17) < 1e-5
    monkeypatch.setitem(onnx_export.EMITTERS, layers.Flatten, nchw_flatten)
    with pytest.raises(AssertionError):
        _exported_matches(model, 17)
    x = np.random.default_rng(1).normal(size=(7, 6, 5, 3)).astype("float32")
    (wrong,) = _session(onnx_export.to_onnx(model, 17)).run(None, {"input": x})
    assert np.max(np.abs(wrong - model.predict(x, verbose=0))) > 1e-2


def test_one_transpose_at_the_input_and_one_before_flatten():
    model = CASES["a small CNN"]()
    ops = [node.op_type for node in onnx_export.to_onnx(model).graph.node]
    assert ops.count("Transpose") == 2
    assert ops.index("Transpose") == 0 and ops[ops.index("Flatten") - 1] == "Transpose"
    model = _seq((8, 8, 3), layers.Conv2D(4, 3), layers.MaxPooling2D(2),
                 layers.GlobalMaxPooling2D(), layers.Dense(2))
    ops = [node.op_type for node in onnx_export.to_onnx(model).graph.node]
    assert ops.count("Transpose") == 1


@pytest.mark.parametrize("opset", OPSETS)
def test_ir_version_is_the_oldest_that_carries_the_opset(opset):
    proto = onnx_export.to_onnx(CASES["Dense 2-D"](), opset)
    expected = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    assert proto.ir_version == expected


def test_default_opset_is_17():
    proto = onnx_export.to_onnx(CASES["Dense 2-D"]())
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]


def test_explicit_pads_are_written_never_auto_pad():
    model = CASES["conv same dilation and stride"]()
    (conv,) = [n for n in onnx_export.to_onnx(model).graph.node if n.op_type == "Conv"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert "auto_pad" not in attributes
    # TensorFlow's rule by hand: out = ceil(n / s), total = (out - 1) * s + (k - 1) * d + 1 - n
    assert attributes["pads"] == [2, 2, 2, 3]     # H: total 4; W: total 5, odd cell after
    assert attributes["dilations"] == [2, 3] and attributes["strides"] == [2, 2]


# ----------------------------------------------------------------------------- float64

FLOAT64_CASES = {
    "MLP": lambda: _seq((6,), layers.Dense(5, activation="relu", dtype="float64"),
                        layers.Dropout(0.2, dtype="float64"),
                        layers.Dense(4, activation="leaky_relu", dtype="float64"),
                        layers.Activation("sigmoid", dtype="float64"),
                        layers.ReLU(0.7, 0.1, 0.2, dtype="float64"),
                        layers.Dense(3, activation="softmax", dtype="float64"), dtype="float64"),
    "images without Conv": lambda: _seq(
        (6, 5, 2), layers.ZeroPadding2D(1, dtype="float64"),
        layers.MaxPooling2D(2, ceil_mode=True, dtype="float64"),
        layers.Activation("tanh", dtype="float64"), layers.Flatten(dtype="float64"),
        layers.Dense(3, dtype="float64"), dtype="float64"),
    "float32 into float64": lambda: _seq((6,), layers.Dense(4), layers.Dense(3, dtype="float64")),
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", sorted(FLOAT64_CASES))
def test_float64_models_run_in_double(case, opset):
    model = FLOAT64_CASES[case]()
    assert model.predict(np.zeros((1, *model.input_shape[1:])), verbose=0).dtype == np.float64
    _exported_matches(model, opset, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("stack, op", [
    ((layers.Conv2D(2, 3, dtype="float64"),), "Conv"),
    ((layers.AveragePooling2D(2, dtype="float64"),), "AveragePool"),
    ((layers.GlobalMaxPooling2D(dtype="float64"),), "GlobalMaxPool"),
    ((layers.Activation("elu", dtype="float64"),), "Elu"),
])
def test_float64_ops_onnx_runtime_lacks_are_refused(stack, op):
    model = _seq((5, 5, 2), *stack, dtype="float64")
    with pytest.raises(ValueError, match=f"{stack[0].describe()}.*float64 kernel for the {op}"):
        onnx_export.to_onnx(model)


# ----------------------------------------------------------------------------- the API

def test_model_export_writes_a_file_onnx_runtime_runs(tmp_path, capsys):
    model = CASES["a small CNN"]()
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx", opset_version=13)
    assert f"Saved artifact at '{path}'" in capsys.readouterr().out
    assert onnx.load(str(path)).opset_import[0].version == 13
    x = np.random.default_rng(2).normal(size=(3, 12, 12, 1)).astype("float32")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=0)
    model.export(path, verbose=False)
    assert capsys.readouterr().out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left


def test_input_signature_fixes_the_size_same_padding_needs():
    model = _seq((None, None, 2), layers.Conv2D(3, 3, strides=2, padding="same"))
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d.*padding='same' with strides \(2, 2\) "
                                         r"needs the input's height and width"):
        onnx_export.to_onnx(model)
    for signature in ([(None, 9, 8, 2)], (None, 9, 8, 2), [np.zeros((1, 9, 8, 2))]):
        proto = onnx_export.to_onnx(model, input_signature=signature)
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [9, 8, 2]
    proto = onnx_export.to_onnx(model, input_signature=[(4, 9, 8, 2)])  # a fixed batch
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    _exported_matches(model, 17, sizes=[(9, 8, 2)], input_signature=[(None, 9, 8, 2)])


def test_ceil_mode_needs_the_size_too():
    model = _seq((None, 8, 2), layers.MaxPooling2D(2, ceil_mode=True))
    with pytest.raises(ValueError, match="ceil_mode=True with strides.*height and width"):
        onnx_export.to_onnx(model)


class Doubling(layers.Layer):
    def call(self, x, training=False):
        return 2 * x


class MyConv2D(layers.Conv2D):
    pass


class Cube(keras.activations.Activation):
    name = "cube"

    def forward(self, x):
        return x ** 3


def _unbuilt():
    return keras.Sequential([layers.Dense(2)])


REFUSED = {
    "unknown layer": (lambda: _seq((3,), Doubling()), {}, ValueError,
                      r"'doubling.*class Doubling, which the ONNX exporter does not know"),
    "a subclass of a known layer": (lambda: _seq((4, 4, 1), MyConv2D(2, 3)), {}, ValueError,
                                    "class MyConv2D"),
    "unknown activation": (lambda: _seq((3,), layers.Dense(2, activation=Cube())), {},
                           ValueError, "Dense 'dense.*the activation 'cube' has no ONNX form"),
    "opset 12": (lambda: CASES["Dense 2-D"](), {"opset_version": 12}, ValueError,
                 "opset_version must be an int from 13 to 22"),
    "opset 23": (lambda: CASES["Dense 2-D"](), {"opset_version": 23}, ValueError,
                 "got 23"),
    "opset as a string": (lambda: CASES["Dense 2-D"](), {"opset_version": "17"}, ValueError,
                          "opset_version"),
    "opset True": (lambda: CASES["Dense 2-D"](), {"opset_version": True}, ValueError,
                   "opset_version"),
    "unbuilt model": (_unbuilt, {}, ValueError, "has not been built"),
    "signature of another rank": (lambda: CASES["Dense 2-D"](),
                                  {"input_signature": [(None, 6, 1)]}, ValueError,
                                  "input_signature"),
    "signature that disagrees": (lambda: CASES["Dense 2-D"](),
                                 {"input_signature": [(None, 5)]}, ValueError,
                                 r"agrees with its input shape \(None, 6\)"),
    "unknown keyword": (lambda: CASES["Dense 2-D"](), {"opset": 17}, TypeError, "opset"),
    "unknown format": (lambda: CASES["Dense 2-D"](), {"format": "tf_saved_model"}, ValueError,
                       "unsupported format 'tf_saved_model'; convnet exports to 'onnx'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_exports_say_why(case, tmp_path):
    make, kwargs, error, message = REFUSED[case]
    with pytest.raises(error, match=message):
        make().export(tmp_path / "m.onnx", verbose=False, **kwargs)
    assert not list(tmp_path.iterdir())


def test_only_sequential_and_functional_models():
    with pytest.raises(TypeError, match="Sequential or functional"):
        onnx_export.to_onnx(layers.Dense(2))


def _residual_two_input_model():
    """A residual block with a shared conv, a second input concatenated, two outputs."""
    keras.utils.set_random_seed(3)
    image = keras.Input((8, 8, 3), name="image")
    extra = keras.Input((8, 8, 2), name="extra")
    shared = layers.Conv2D(3, 3, padding="same", activation="relu", name="shared")
    x = shared(image)
    x = layers.add([shared(x), image], name="residual")
    x = layers.concatenate([x, extra], name="joined")
    x = layers.MaxPooling2D(2)(x)
    pooled = layers.GlobalAveragePooling2D()(x)
    probs = layers.Dense(4, activation="softmax", name="probs")(pooled)
    stats = layers.average([layers.Dense(2)(pooled), layers.Dense(2)(pooled)], name="stats")
    other = layers.subtract([layers.maximum([x, x]), layers.minimum([x, x])], name="diff")
    flat = layers.Dense(1, name="flat")(layers.Flatten()(layers.multiply([other, x])))
    return keras.Model([image, extra], [probs, stats, flat])


@pytest.mark.parametrize("opset", OPSETS)
def test_functional_model_with_shared_layer_merges_and_outputs(opset):
    model = _residual_two_input_model()
    session = _session(onnx_export.to_onnx(model, opset))
    assert [i.name for i in session.get_inputs()] == ["image", "extra"]
    assert [o.name for o in session.get_outputs()] == ["probs", "stats", "flat"]
    rng = np.random.default_rng(opset)
    for batch in BATCHES:
        feed = {"image": rng.normal(size=(batch, 8, 8, 3)).astype(np.float32),
                "extra": rng.normal(size=(batch, 8, 8, 2)).astype(np.float32)}
        expected = model.predict([feed["image"], feed["extra"]], verbose=0)
        for got, want in zip(session.run(None, feed), expected):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_the_core_never_imports_onnx(tmp_path):
    code = "import convnet, sys; assert 'onnx' not in sys.modules, 'onnx imported'"
    # cwd: a source checkout's convnet/ (without compiled kernels) must not shadow the
    # installed package, as `python -c` puts the working directory first on sys.path.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_missing_onnx_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.delitem(sys.modules, "convnet.export.onnx")
    with pytest.raises(ImportError, match=r'pip install "convnet\[onnx\]"'):
        importlib.import_module("convnet.export.onnx")


def test_readme_deploy_snippet_runs(tmp_path, monkeypatch):
    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    deploy = readme.split("## Deploy", 1)[1]
    snippet = deploy.split("```python\n", 1)[1].split("```", 1)[0]
    model = CASES["a small CNN"]()
    x_test = np.random.default_rng(3).random((9, 12, 12, 1), dtype=np.float32)
    monkeypatch.chdir(tmp_path)
    namespace = {"model": model, "x_test": x_test}
    exec(snippet, namespace)
    np.testing.assert_allclose(namespace["probabilities"], model.predict(x_test[:5], verbose=0),
                               atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- operations
# The operations the layers still to come will emit, held to NumPy's formula of each
# operation, on inputs stored in the model's order and in the NCHW order a convolution leaves.

NHWC, NCHW = (0, 1, 2, 3), (0, 3, 1, 2)


def _run_op(build, arrays, orders=None, opset=17):
    """ONNX Runtime's output of the graph `build(builder, *inputs)` on `arrays` (batch axis
    first), each input met stored in its order from `orders`."""
    builder = onnx_export.GraphBuilder(opset)
    names = []
    for i, array in enumerate(arrays):
        name = builder.add_input(f"x{i}", (None, *array.shape[1:]), array.dtype)
        names.append(builder.stored(name, orders[i]) if orders else name)
    y = build(builder, *names)
    recorded = builder.info[y].shape
    builder.add_output(y, "y")
    proto = builder.model("operation")
    onnx.checker.check_model(proto, full_check=True)
    (out,) = _session(proto).run(None, {f"x{i}": a for i, a in enumerate(arrays)})
    assert recorded[1:] == out.shape[1:], "the builder's shape differs from the result's"
    return out


def _images(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _close(got, expected):
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("order", (NHWC, NCHW))
@pytest.mark.parametrize("groups", (1, 2, 3))
def test_grouped_conv2d(groups, order):
    import reference as ref
    x, kernel = _images(2, 7, 8, 6), _images(3, 2, 6 // groups, 12, seed=1)
    bias = _images(12, seed=2)
    pads, strides, dilation = [1, 0, 2, 1], (2, 1), (1, 2)
    padding = ((pads[0], pads[2]), (pads[1], pads[3]))
    c, f = 6 // groups, 12 // groups    # each group's channels and filters, in blocks
    blocks = [ref.conv2d(x[..., g * c:(g + 1) * c], kernel[..., g * f:(g + 1) * f],
                         bias[g * f:(g + 1) * f], strides, padding, dilation)
              for g in range(groups)]
    got = _run_op(lambda b, t: onnx_export.conv2d(b, t, kernel, bias, strides, dilation, pads,
                                                  "channels_last", "conv", groups=groups),
                  [x], [order])
    _close(got, np.concatenate(blocks, axis=-1))


@pytest.mark.parametrize("order", (NHWC, NCHW))
def test_depthwise_conv2d(order):
    """y[..., c * m + j] is channel c alone convolved with kernel[:, :, c, j]."""
    import reference as ref
    x, kernel = _images(2, 6, 7, 3), _images(3, 3, 3, 2, seed=1)
    padding = ((1, 1), (0, 2))
    expected = np.concatenate([ref.conv2d(x[..., c:c + 1], kernel[:, :, c:c + 1], None, (1, 2),
                                          padding, (1, 1)) for c in range(3)], axis=-1)
    got = _run_op(lambda b, t: onnx_export.conv2d(
        b, t, onnx_export.depthwise_kernel(kernel), None, (1, 2), (1, 1), [1, 0, 1, 2],
        "channels_last", "depthwise", groups=3), [x], [order])
    _close(got, expected)


def _conv_transpose_reference(x, kernel, bias, strides, dilation, pads, output_padding):
    """Each input pixel adds kernel-weighted copies to the output, then the crop."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    full = np.zeros((n, sh * (h - 1) + dh * (kh - 1) + 1 + output_padding[0],
                     sw * (w - 1) + dw * (kw - 1) + 1 + output_padding[1], filters))
    for i in range(h):
        for j in range(w):
            for p in range(kh):
                for q in range(kw):
                    full[:, i * sh + p * dh, j * sw + q * dw] += x[:, i, j] @ kernel[p, q].T
    top, left, bottom, right = pads
    return full[:, top:full.shape[1] - bottom, left:full.shape[2] - right] + bias


@pytest.mark.parametrize("data_format", ("channels_last", "channels_first"))
@pytest.mark.parametrize("strides, dilation, pads, output_padding", [
    ((2, 2), (1, 1), [0, 0, 0, 0], (0, 0)),
    ((2, 3), (1, 1), [1, 0, 0, 1], (1, 2)),
    ((1, 2), (2, 1), [1, 1, 2, 0], (0, 1)),
])
def test_conv2d_transpose(strides, dilation, pads, output_padding, data_format):
    x, kernel, bias = _images(2, 4, 5, 3), _images(3, 2, 4, 3, seed=1), _images(4, seed=2)
    expected = _conv_transpose_reference(x, kernel, bias, strides, dilation, pads,
                                         output_padding)
    if data_format == "channels_first":
        x, expected = x.transpose(0, 3, 1, 2), expected.transpose(0, 3, 1, 2)
    got = _run_op(lambda b, t: onnx_export.conv2d_transpose(
        b, t, kernel, bias, strides, dilation, pads, output_padding, data_format, "deconv"), [x])
    _close(got, expected)


@pytest.mark.parametrize("order, axis", [(NHWC, -1), (NCHW, -1), (NCHW, 1), (None, 1)])
def test_batch_normalization(order, axis):
    x = _images(3, 4, 5, 6) if order else _images(3, 5)
    size = x.shape[axis]
    mean, gamma, beta = _images(size, seed=1), _images(size, seed=2), _images(size, seed=3)
    variance = np.abs(_images(size, seed=4)) + 0.1
    shape = [1] * x.ndim
    shape[axis] = size
    expected = ((x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + 1e-3)
                * gamma.reshape(shape) + beta.reshape(shape))
    got = _run_op(lambda b, t: onnx_export.batch_normalization(
        b, t, axis, mean, variance, gamma, beta, 1e-3, "bn"), [x], [order] if order else None)
    _close(got, expected)
    # without gamma and beta: plain standardization
    got = _run_op(lambda b, t: onnx_export.batch_normalization(
        b, t, axis, mean, variance, None, None, 1e-3, "bn"), [x], [order] if order else None)
    _close(got, (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + 1e-3))


@pytest.mark.parametrize("opset", (13, 18, 22))      # ReduceMean's axes moved at opset 18
@pytest.mark.parametrize("order, axes", [(NHWC, -1), (NCHW, -1), (NCHW, (1, 2)),
                                         (NHWC, (1, 2, 3))])
def test_layer_normalization(order, axes, opset):
    x = _images(3, 4, 5, 6) * 3 + 1
    axes_tuple = (axes,) if isinstance(axes, int) else axes
    sizes = [x.shape[a] for a in axes_tuple]
    gamma, beta = _images(*sizes, seed=2), _images(*sizes, seed=3)
    mean = x.mean(axis=axes_tuple, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes_tuple, keepdims=True)
    shape = [x.shape[a] if a % 4 in [b % 4 for b in axes_tuple] else 1 for a in range(4)]
    expected = (x - mean) / np.sqrt(variance + 1e-3) * gamma.reshape(shape) + beta.reshape(shape)
    got = _run_op(lambda b, t: onnx_export.layer_normalization(
        b, t, axes, gamma, beta, 1e-3, "ln"), [x], [order], opset)
    _close(got, expected)


@pytest.mark.parametrize("op, formula", [
    ("Add", lambda a, b, c: a + b + c), ("Sub", lambda a, b, c: a - b - c),
    ("Mul", lambda a, b, c: a * b * c), ("Max", lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    ("Min", lambda a, b, c: np.minimum(np.minimum(a, b), c)),
])
def test_merge_of_tensors_stored_in_different_orders(op, formula):
    arrays = [_images(2, 3, 4, 5, seed=i) for i in range(3)]
    got = _run_op(lambda b, *ts: onnx_export.merge(b, op, list(ts), "merged"), arrays,
                  [NCHW, NHWC, NCHW])
    _close(got, formula(*arrays))


def test_average_and_concatenate():
    arrays = [_images(2, 3, 4, 5, seed=i) for i in range(3)]
    got = _run_op(lambda b, *ts: onnx_export.average(b, list(ts), "mean"), arrays,
                  [NHWC, NCHW, NCHW])
    _close(got, (arrays[0] + arrays[1] + arrays[2]) / 3)
    for axis in (-1, 1, 2):
        got = _run_op(lambda b, *ts: onnx_export.concatenate(b, list(ts), axis, "joined"),
                      arrays, [NCHW, NHWC, NCHW])
        _close(got, np.concatenate(arrays, axis=axis))


@pytest.mark.parametrize("order", (NHWC, NCHW))
def test_reshape_and_permute(order):
    x = _images(2, 3, 4, 6)
    got = _run_op(lambda b, t: onnx_export.reshape(b, t, (12, -1), "reshaped"), [x], [order])
    _close(got, x.reshape(2, 12, 6))
    got = _run_op(lambda b, t: onnx_export.permute(b, t, (3, 1, 2), "permuted"), [x], [order])
    _close(got, x.transpose(0, 3, 1, 2))
    # a permuted tensor feeds a Dense-like product over its last axis
    got = _run_op(lambda b, t: onnx_export.reshape(
        b, onnx_export.permute(b, t, (2, 3, 1), "permuted"), (-1,), "flat"), [x], [order])
    _close(got, x.transpose(0, 2, 3, 1).reshape(2, -1))


@pytest.mark.parametrize("data_format", ("channels_last", "channels_first"))
@pytest.mark.parametrize("order", (NHWC, NCHW))
def test_crop2d(order, data_format):
    x = _images(2, 7, 8, 5)
    h_axis = 1 if data_format == "channels_last" else 2

    def cropped(top, bottom, left, right):
        rows = np.arange(top, x.shape[h_axis] - bottom)
        cols = np.arange(left, x.shape[h_axis + 1] - right)
        return np.take(np.take(x, rows, axis=h_axis), cols, axis=h_axis + 1)

    for (top, bottom), (left, right) in (((1, 2), (0, 3)), ((0, 0), (2, 0))):
        got = _run_op(lambda b, t: onnx_export.crop2d(
            b, t, ((top, bottom), (left, right)), data_format, "crop"), [x], [order])
        _close(got, cropped(top, bottom, left, right))


def _bilinear_reference(x, factors):
    """Half-pixel centres, edges clamped, one axis at a time (NHWC)."""
    for axis, factor in zip((1, 2), factors):
        n = x.shape[axis]
        source = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, n - 1)
        weight = (source - low).reshape([-1 if a == axis else 1 for a in range(4)])
        x = np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight
    return x


@pytest.mark.parametrize("order", (NHWC, NCHW))
def test_upsample2d(order):
    x = _images(2, 3, 4, 5)
    got = _run_op(lambda b, t: onnx_export.upsample2d(b, t, (2, 3), "nearest", "channels_last",
                                                      "up"), [x], [order])
    _close(got, np.repeat(np.repeat(x, 2, axis=1), 3, axis=2))
    got = _run_op(lambda b, t: onnx_export.upsample2d(b, t, (2, 3), "bilinear", "channels_last",
                                                      "up"), [x], [order])
    _close(got, _bilinear_reference(x, (2, 3)))
    with pytest.raises(ValueError, match="interpolation 'lanczos3'"):
        _run_op(lambda b, t: onnx_export.upsample2d(b, t, (2, 2), "lanczos3", "channels_last",
                                                    "up"), [x])


@pytest.mark.parametrize("order", (NHWC, NCHW))
def test_prelu_and_elu(order):
    x = _images(2, 3, 4, 5)
    alpha = _images(1, 4, 5, seed=1)            # shared over the height axis
    got = _run_op(lambda b, t: onnx_export.below_threshold(b, t, alpha, 0, "prelu"), [x],
                  [order])
    _close(got, np.where(x > 0, x, alpha * x))
    got = _run_op(lambda b, t: onnx_export.elu(b, t, 0.7, "elu"), [x], [order])
    _close(got, np.where(x > 0, x, 0.7 * np.expm1(x)))
