"""Conv2D with groups, DepthwiseConv2D, SeparableConv2D and Conv2DTranspose as layers:
forward and backward against per-group and per-channel loops over tests/reference.py's
conv2d, Conv2DTranspose against the gradient of a convolution (Keras' output size, written
out here), finite differences, symbolic shapes, configs, files, threads, constraints and,
where importable, Keras itself."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
import convnet as keras
from convnet import layers
from convnet.utils import numerical_gradient

import reference as ref
from conftest import TOLERANCE, at_1_2_3_threads
from keras_reference import keras_or_skip, numpy_of

DTYPES = [np.float32, np.float64]
FORMATS = ["channels_last", "channels_first"]

# activation: (f(z), f'(z))
ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    None: (lambda z: z, lambda z: np.ones_like(z)),
}


def same_padding(n, k, s, d=1):
    """TensorFlow's "same": total = max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0), the odd
    cell after."""
    total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def to_format(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)


def from_format(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)


def randomize(layer, rng):
    """Random weights, biases included (they start at zero)."""
    layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.5
                       for w in layer.get_weights()])
    return layer.get_weights()


def assert_close(got, want, dtype):
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **TOLERANCE[dtype])


def run(layer, x, grad_y, data_format):
    """(y, grad_x) in NHWC of a training call and its backward pass, given NHWC arrays."""
    y = layer(to_format(x, data_format), training=True)
    grad_x = layer.backward(to_format(grad_y, data_format))
    return from_format(y, data_format), from_format(grad_x, data_format)


# ----------------------------------------------------------------------------- Conv2D groups


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS, key=str))
def test_grouped_conv2d_layer_matches_per_group_loops(rng, dtype, data_format, activation):
    layer = layers.Conv2D(6, (3, 2), strides=(2, 1), padding="same", groups=3,
                          activation=activation, data_format=data_format, dtype=dtype)
    x = rng.standard_normal((2, 7, 6, 9)).astype(dtype)
    layer.build(to_format(x, data_format).shape)
    kernel, bias = randomize(layer, rng)
    assert kernel.shape == (3, 2, 3, 6)
    pad = (same_padding(7, 3, 2), same_padding(6, 2, 1))
    z = ref.grouped_conv2d(x, kernel, bias, (2, 1), pad, (1, 1), 3)
    grad_y = rng.standard_normal(z.shape).astype(dtype)
    y, grad_x = run(layer, x, grad_y, data_format)
    f, df = ACTIVATIONS[activation]
    assert_close(y, f(z), dtype)
    want = ref.grouped_conv2d_backward(x, kernel, grad_y * df(z), (2, 1), pad, (1, 1), 3)
    for got, expect in zip((grad_x, *layer.grads), want):
        assert_close(got, expect, dtype)


def test_groups_must_divide_the_input_channels_at_build():
    layer = layers.Conv2D(6, 3, groups=3, name="grouped")
    with pytest.raises(ValueError, match="Conv2D 'grouped': groups=3 must divide the input's "
                                         "4 channels"):
        layer(np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match="Conv2D 'g2': groups=4 must divide filters=6"):
        layers.Conv2D(6, 3, groups=4, name="g2")


# ----------------------------------------------------------------------------- depthwise


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS, key=str))
def test_depthwise_conv2d_layer_matches_per_channel_loops(rng, dtype, data_format, activation):
    layer = layers.DepthwiseConv2D((3, 2), strides=1, padding="same", depth_multiplier=2,
                                   dilation_rate=(2, 1), activation=activation,
                                   data_format=data_format, dtype=dtype)
    x = rng.standard_normal((2, 7, 6, 5)).astype(dtype)
    layer.build(to_format(x, data_format).shape)
    kernel, bias = randomize(layer, rng)
    assert kernel.shape == (3, 2, 5, 2) and bias.shape == (10,)
    pad = (same_padding(7, 3, 1, 2), same_padding(6, 2, 1))
    z = ref.depthwise_conv2d(x, kernel, bias, (1, 1), pad, (2, 1))
    grad_y = rng.standard_normal(z.shape).astype(dtype)
    y, grad_x = run(layer, x, grad_y, data_format)
    f, df = ACTIVATIONS[activation]
    assert_close(y, f(z), dtype)
    want = ref.depthwise_conv2d_backward(x, kernel, grad_y * df(z), (1, 1), pad, (2, 1))
    for got, expect in zip((grad_x, *layer.grads), want):
        assert_close(got, expect, dtype)


# ----------------------------------------------------------------------------- separable


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS, key=str))
def test_separable_conv2d_layer_is_depthwise_then_pointwise(rng, dtype, data_format, activation):
    layer = layers.SeparableConv2D(4, 3, strides=2, padding="valid", depth_multiplier=2,
                                   activation=activation, data_format=data_format, dtype=dtype)
    x = rng.standard_normal((2, 8, 7, 3)).astype(dtype)
    layer.build(to_format(x, data_format).shape)
    depthwise_kernel, pointwise_kernel, bias = randomize(layer, rng)
    assert depthwise_kernel.shape == (3, 3, 3, 2) and pointwise_kernel.shape == (1, 1, 6, 4)
    valid, one = ((0, 0), (0, 0)), (1, 1)
    depthwise = ref.depthwise_conv2d(x, depthwise_kernel, None, (2, 2), valid, one)
    z = ref.conv2d(depthwise, pointwise_kernel, bias, one, valid, one)
    grad_y = rng.standard_normal(z.shape).astype(dtype)
    y, grad_x = run(layer, x, grad_y, data_format)
    f, df = ACTIVATIONS[activation]
    assert_close(y, f(z), dtype)
    grad_depthwise, grad_pointwise, grad_bias = ref.conv2d_backward(
        depthwise, pointwise_kernel, grad_y * df(z), one, valid, one)
    want_x, want_depthwise, _ = ref.depthwise_conv2d_backward(
        x, depthwise_kernel, grad_depthwise, (2, 2), valid, one)
    for got, expect in zip((grad_x, *layer.grads),
                           (want_x, want_depthwise, grad_pointwise, grad_bias)):
        assert_close(got, expect, dtype)


# ----------------------------------------------------------------------------- transposed


def keras_transpose_geometry(n, k, s, padding, output_padding, d):
    """(output length, padding before, padding after) along one axis: Keras' output length
    (keras/src/backend/common/backend_utils.py, with k the dilated span) and the padding
    TensorFlow's convolution of that length has, of which the transposed one is the
    adjoint. "after" is negative where output cells lie past every window."""
    span = d * (k - 1) + 1
    if padding == "valid":
        length = (n - 1) * s + span + (max(span, s) - span if output_padding is None
                                       else output_padding)
        before = 0
    else:
        length = n * s if output_padding is None else (n - 1) * s + span % 2 + output_padding
        before = max((n - 1) * s + span - length, 0) // 2
    return length, before, (n - 1) * s + span - before - length


def transpose_reference(x, kernel, bias, strides, padding, output_padding, dilation, grad_y=None):
    """Conv2DTranspose as the gradient of <x, conv2d(v)> with respect to v (the kernel
    (kh, kw, filters, in) read as a convolution from filters to in channels); with `grad_y`,
    also its gradients (conv2d of grad_y; the kernel gradient of that convolution)."""
    geometry = [keras_transpose_geometry(n, k, s, padding,
                                         None if output_padding is None else output_padding[i],
                                         d)
                for i, (n, k, s, d) in enumerate(zip(x.shape[1:3], kernel.shape[:2], strides,
                                                     dilation))]
    out_hw = [length for length, _, _ in geometry]
    cut = [length + min(after, 0) for length, _, after in geometry]
    pads = tuple((before, max(after, 0)) for _, before, after in geometry)
    v = np.zeros((x.shape[0], *cut, kernel.shape[2]))
    grad_v, _, _ = ref.conv2d_backward(v, kernel, x, strides, pads, dilation)
    y = np.zeros((x.shape[0], *out_hw, kernel.shape[2]))
    y[:, :cut[0], :cut[1]] = grad_v
    y = y + (0 if bias is None else bias)
    if grad_y is None:
        return y
    g = grad_y[:, :cut[0], :cut[1]]
    grad_x = ref.conv2d(g, kernel, None, strides, pads, dilation)
    _, grad_kernel, _ = ref.conv2d_backward(g, kernel, x, strides, pads, dilation)
    return y, (grad_x, grad_kernel, grad_y.astype(np.float64).sum(axis=(0, 1, 2)))


TRANSPOSE_CASES = {
    "valid stride 2": dict(kernel_size=3, strides=2, padding="valid"),
    "valid stride 3 wider than the kernel": dict(kernel_size=2, strides=3, padding="valid"),
    "valid output_padding": dict(kernel_size=(3, 2), strides=(2, 3), padding="valid",
                                 output_padding=(1, 2)),
    "same stride 2": dict(kernel_size=3, strides=2, padding="same"),
    "same even kernel": dict(kernel_size=(4, 2), strides=2, padding="same"),
    "same output_padding 0": dict(kernel_size=3, strides=2, padding="same", output_padding=0),
    "same dilation": dict(kernel_size=3, strides=1, padding="same", dilation_rate=(2, 3)),
    "valid dilation": dict(kernel_size=(2, 3), padding="valid", dilation_rate=2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("case", sorted(TRANSPOSE_CASES))
def test_conv2d_transpose_layer_is_the_gradient_of_conv2d(rng, dtype, data_format, activation,
                                                          case):
    options = TRANSPOSE_CASES[case]
    layer = layers.Conv2DTranspose(3, activation=activation, data_format=data_format,
                                   dtype=dtype, **options)
    x = rng.standard_normal((2, 4, 5, 2)).astype(dtype)
    layer.build(to_format(x, data_format).shape)
    kernel, bias = randomize(layer, rng)
    assert kernel.shape == (*layer.kernel_size, 3, 2)
    output_padding = options.get("output_padding")
    output_padding = None if output_padding is None else layer.output_padding
    args = (layer.strides, layer.padding, output_padding, layer.dilation_rate)
    z = transpose_reference(x, kernel, bias, *args)
    grad_y = rng.standard_normal(z.shape).astype(dtype)
    f, df = ACTIVATIONS[activation]
    _, want = transpose_reference(x, kernel, bias, *args, grad_y=grad_y * df(z))
    y, grad_x = run(layer, x, grad_y, data_format)
    assert_close(y, f(z), dtype)
    for got, expect in zip((grad_x, *layer.grads), want):
        assert_close(got, expect, dtype)
    shape = (None, *to_format(x, data_format).shape[1:])
    assert layer.compute_output_shape(shape)[1:] == to_format(z, data_format).shape[1:]


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["valid", "same"]), st.integers(-1, 2), st.integers(1, 4),
       st.integers(1, 4), st.integers(0, 99))
def test_conv2d_transpose_output_size_and_values_over_configurations(kh, kw, sh, sw, padding,
                                                                     extra, h, w, seed):
    """Any kernel, strides, padding and output_padding (-1: None) Keras accepts."""
    dilation = (1, 1)
    output_padding = None if extra < 0 else (min(extra, sh - 1), min(extra, sw - 1))
    lengths = [keras_transpose_geometry(n, k, s, padding,
                                        None if output_padding is None else output_padding[i],
                                        1)[0]
               for i, (n, k, s) in enumerate(zip((h, w), (kh, kw), (sh, sw)))]
    layer = layers.Conv2DTranspose(2, (kh, kw), (sh, sw), padding, output_padding,
                                   dtype="float64")
    if min(lengths) < 1:
        with pytest.raises(ValueError, match="empty output"):
            layer.compute_output_shape((None, h, w, 3))
        return
    assert layer.compute_output_shape((None, h, w, 3)) == (None, *lengths, 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, h, w, 3))
    layer.build(x.shape)
    kernel, bias = randomize(layer, rng)
    np.testing.assert_allclose(layer(x), transpose_reference(
        x, kernel, bias, (sh, sw), padding, output_padding, dilation), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- finite differences

GRADIENT_CASES = {
    "Conv2D groups relu channels_first": (lambda **kw: layers.Conv2D(
        4, 3, padding="same", groups=2, activation="relu", data_format="channels_first", **kw),
        (2, 4, 5, 6)),
    "Conv2D groups sigmoid strided": (lambda **kw: layers.Conv2D(
        6, (2, 3), strides=2, groups=3, activation="sigmoid", **kw), (2, 7, 6, 3)),
    "DepthwiseConv2D multiplier 2 tanh": (lambda **kw: layers.DepthwiseConv2D(
        3, strides=(1, 2), padding="same", depth_multiplier=2, activation="tanh", **kw),
        (2, 5, 6, 3)),
    "DepthwiseConv2D channels_first dilated": (lambda **kw: layers.DepthwiseConv2D(
        2, dilation_rate=2, data_format="channels_first", **kw), (2, 3, 5, 5)),
    "SeparableConv2D relu": (lambda **kw: layers.SeparableConv2D(
        4, 3, padding="same", depth_multiplier=2, activation="relu", **kw), (2, 5, 5, 3)),
    "SeparableConv2D channels_first strided": (lambda **kw: layers.SeparableConv2D(
        3, 2, strides=2, data_format="channels_first", activation="elu", **kw), (2, 3, 6, 5)),
    "Conv2DTranspose same relu": (lambda **kw: layers.Conv2DTranspose(
        3, 3, strides=2, padding="same", activation="relu", **kw), (2, 3, 4, 2)),
    "Conv2DTranspose output_padding channels_first": (lambda **kw: layers.Conv2DTranspose(
        2, (3, 2), strides=(2, 3), output_padding=(1, 2), data_format="channels_first", **kw),
        (2, 2, 3, 3)),
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_layer_gradients_match_finite_differences(rng, case):
    make, shape = GRADIENT_CASES[case]
    layer = make(dtype="float64")
    x = rng.standard_normal(shape)
    layer.build(shape)
    weights = randomize(layer, rng)
    grad_y = rng.standard_normal(layer(x).shape)
    layer(x, training=True)
    grad_x = layer.backward(grad_y)
    grads = layer.grads

    def loss(x_, weights_):
        layer.set_weights(weights_)
        return float(np.sum(layer(x_) * grad_y))

    np.testing.assert_allclose(grad_x, numerical_gradient(lambda v: loss(v, weights), x),
                               atol=1e-6)
    for i, (w, g) in enumerate(zip(weights, grads)):
        def f(v, i=i):
            return loss(x, [v if j == i else u for j, u in enumerate(weights)])
        np.testing.assert_allclose(g, numerical_gradient(f, w.copy()), atol=1e-6,
                                   err_msg=layer.weights[i].name)


# ----------------------------------------------------------------------------- the layer API

LAYERS = {
    "Conv2D groups": (lambda: layers.Conv2D(
        6, 3, strides=2, padding="same", groups=2, activation="relu", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer="l2",
        activity_regularizer=keras.regularizers.L1(0.01),
        kernel_constraint=keras.constraints.MaxNorm(2.0), name="c"), (9, 8, 4)),
    "DepthwiseConv2D": (lambda: layers.DepthwiseConv2D(
        (3, 2), padding=((1, 0), (2, 1)), depth_multiplier=3, dilation_rate=(1, 2),
        depthwise_initializer="he_uniform", bias_initializer="ones",
        depthwise_regularizer=keras.regularizers.L1L2(0.1, 0.2), bias_regularizer="l1",
        depthwise_constraint="non_neg", bias_constraint=keras.constraints.UnitNorm(),
        activation="tanh", name="d"), (9, 8, 4)),
    "DepthwiseConv2D channels_first": (lambda: layers.DepthwiseConv2D(
        3, strides=2, padding="same", data_format="channels_first"), (4, 9, 8)),
    "SeparableConv2D": (lambda: layers.SeparableConv2D(
        5, 3, strides=(2, 1), padding="same", depth_multiplier=2, activation="relu",
        pointwise_initializer="orthogonal", pointwise_regularizer="l2",
        pointwise_constraint="non_neg", name="s"), (9, 8, 4)),
    "SeparableConv2D channels_first": (lambda: layers.SeparableConv2D(
        3, 2, data_format="channels_first", use_bias=False), (4, 9, 8)),
    "Conv2DTranspose": (lambda: layers.Conv2DTranspose(
        3, (3, 2), strides=(2, 3), padding="same", output_padding=(1, 0), activation="relu",
        bias_initializer="ones", bias_constraint="non_neg", name="t"), (5, 4, 4)),
    "Conv2DTranspose dilated channels_first": (lambda: layers.Conv2DTranspose(
        2, 3, dilation_rate=2, data_format="channels_first"), (4, 5, 6)),
    "Conv2DTranspose unknown size": (lambda: layers.Conv2DTranspose(2, 3, strides=2),
                                     (None, None, 4)),
    "DepthwiseConv2D unknown size": (lambda: layers.DepthwiseConv2D(3, padding="same"),
                                     (None, None, 4)),
}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_symbolic_shape_is_compute_output_shape_and_the_real_one(case):
    make, shape = LAYERS[case]
    layer = make()
    out = layer(keras.Input(shape))
    assert out.shape == layer.compute_output_shape((None, *shape))
    concrete = tuple(7 if d is None else d for d in shape)
    real = layer(np.ones((2, *concrete), np.float32))
    assert all(o is None or o == r for o, r in zip(out.shape[1:], real.shape[1:]))


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_config_round_trips_through_json(case):
    layer = LAYERS[case][0]()
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert clone.get_config() == layer.get_config()


def test_configs_have_keras_names_and_weights_keras_order():
    conv = layers.Conv2D(4, 3, groups=2)
    assert conv.get_config()["groups"] == 2
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2)
    separable = layers.SeparableConv2D(4, 3)
    transpose = layers.Conv2DTranspose(4, 3)
    for layer in (conv, depthwise, separable, transpose):
        layer.build((None, 6, 6, 4))
    assert [w.name for w in depthwise.weights] == ["kernel", "bias"]
    assert depthwise.kernel.shape == (3, 3, 4, 2)
    assert [w.name for w in separable.weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.shape for w in transpose.weights] == [(3, 3, 4, 4), (4,)]
    assert set(layers.DepthwiseConv2D(3).get_config()) >= {
        "depth_multiplier", "depthwise_initializer", "depthwise_regularizer",
        "depthwise_constraint", "activity_regularizer"}
    assert layers.Conv2DTranspose(2, 3).get_config()["output_padding"] is None
    assert layers.Convolution2DTranspose is layers.Conv2DTranspose
    assert layers.SeparableConvolution2D is layers.SeparableConv2D


def _all_layers_model():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((10, 9, 4)),
        layers.Conv2D(6, 3, padding="same", groups=2, activation="relu"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
        layers.SeparableConv2D(4, 3, strides=2, padding="same"),
        layers.Conv2DTranspose(3, 3, strides=2, output_padding=1),
        layers.BatchNormalization(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def test_save_and_load_round_trip_bit_exactly(tmp_path, rng):
    model = _all_layers_model()
    x = rng.standard_normal((6, 10, 9, 4)).astype(np.float32)
    model.fit(x, np.arange(6) % 3, epochs=2, batch_size=3, verbose=0)
    path = tmp_path / "m.cnet"
    model.save(path)
    loaded = keras.load_model(path)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert loaded.predict(x, verbose=0).tobytes() == model.predict(x, verbose=0).tobytes()


@pytest.mark.parametrize("case", sorted(set(LAYERS) - {"Conv2DTranspose unknown size",
                                                         "DepthwiseConv2D unknown size"}))
def test_forward_and_backward_are_bit_identical_at_1_2_and_3_threads(rng, case):
    make, shape = LAYERS[case]
    layer = make()
    x = rng.standard_normal((5, *shape)).astype(np.float32)
    grad_y = rng.standard_normal(layer(x).shape).astype(np.float32)

    def compute():
        y = layer(x, training=True)
        return [y, layer.backward(grad_y), *layer.grads]

    at_1_2_3_threads(compute)


CONSTRAINED = {
    "Conv2D": lambda: layers.Conv2D(3, 3, groups=1, kernel_constraint="non_neg",
                                    bias_constraint="non_neg"),
    "DepthwiseConv2D": lambda: layers.DepthwiseConv2D(3, depthwise_constraint="non_neg",
                                                      bias_constraint="non_neg"),
    "SeparableConv2D": lambda: layers.SeparableConv2D(3, 3, depthwise_constraint="non_neg",
                                                      pointwise_constraint="non_neg",
                                                      bias_constraint="non_neg"),
    "Conv2DTranspose": lambda: layers.Conv2DTranspose(3, 3, kernel_constraint="non_neg",
                                                      bias_constraint="non_neg"),
}


@pytest.mark.parametrize("case", sorted(CONSTRAINED))
def test_constraints_reach_every_weight_and_hold_after_a_step(rng, case):
    layer = CONSTRAINED[case]()
    model = keras.Sequential([keras.Input((6, 6, 2)), layer, layers.Flatten()])
    assert all(isinstance(w.constraint, keras.constraints.NonNeg) for w in layer.weights)
    model.compile(keras.optimizers.SGD(10.0), "mse")
    x = rng.standard_normal((4, 6, 6, 2)).astype(np.float32)
    target = model.predict(x, verbose=0) - 5  # a large step down drives weights negative
    model.train_on_batch(x, target)
    assert all(np.all(w.numpy() >= 0) for w in layer.weights)
    assert any(np.any(w.numpy() == 0) for w in layer.weights)


def test_regularizers_add_their_penalty_to_the_loss(rng):
    layer = layers.SeparableConv2D(2, 3, depthwise_regularizer=keras.regularizers.L2(0.5),
                                   pointwise_regularizer=keras.regularizers.L1(0.25))
    layer.build((None, 5, 5, 2))
    depthwise, pointwise, _ = layer.get_weights()
    want = 0.5 * np.sum(depthwise ** 2) + 0.25 * np.sum(np.abs(pointwise))
    np.testing.assert_allclose(sum(layer.losses), want, rtol=1e-6)


# ----------------------------------------------------------------------------- Keras itself

KERAS_CASES = {
    "Conv2D groups": (lambda m: m.layers.Conv2D(6, 3, padding="same", groups=3), (7, 6, 9)),
    "DepthwiseConv2D": (lambda m: m.layers.DepthwiseConv2D(
        (3, 2), strides=2, padding="same", depth_multiplier=2), (7, 6, 3)),
    "SeparableConv2D": (lambda m: m.layers.SeparableConv2D(
        4, 3, depth_multiplier=2, dilation_rate=2), (9, 8, 3)),
    "Conv2DTranspose valid": (lambda m: m.layers.Conv2DTranspose(
        4, 3, strides=2, output_padding=1), (5, 4, 3)),
    "Conv2DTranspose same": (lambda m: m.layers.Conv2DTranspose(
        4, (3, 4), strides=2, padding="same"), (5, 4, 3)),
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_layers_match_keras_on_the_same_weights(rng, case):
    real_keras = keras_or_skip()
    make, shape = KERAS_CASES[case]
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    theirs, ours = make(real_keras), make(convnet)
    theirs.build((None, *shape))
    ours.build((None, *shape))
    assert [tuple(w.shape) for w in theirs.weights] == [w.shape for w in ours.weights]
    weights = randomize(ours, rng)
    theirs.set_weights(weights)
    np.testing.assert_allclose(ours(x), numpy_of(theirs(x)), rtol=1e-4, atol=1e-4)
