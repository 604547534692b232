"""Layers against NumPy references, and float64 gradient checks through a whole model."""
import numpy as np
import pytest

import convnet as keras
from convnet import layers
from convnet.utils import numerical_gradient

import reference as ref


def test_dense_forward_and_backward_match_numpy(rng):
    layer = layers.Dense(3, activation="tanh", dtype="float64")
    x = rng.standard_normal((4, 5))
    y = layer(x, training=True)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(y, np.tanh(x @ kernel + bias))
    grad_y = rng.standard_normal((4, 3))
    grad_x = layer.backward(grad_y)
    grad_z = grad_y * (1 - np.tanh(x @ kernel + bias) ** 2)
    np.testing.assert_allclose(grad_x, grad_z @ kernel.T)
    np.testing.assert_allclose(layer.grads[0], x.T @ grad_z)
    np.testing.assert_allclose(layer.grads[1], grad_z.sum(axis=0))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_layer_matches_loop_reference(rng, data_format):
    layer = layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same", dilation_rate=1,
                          activation="relu", data_format=data_format, dtype="float64")
    x = rng.standard_normal((2, 7, 6, 3))
    given = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    y = layer(given, training=True)
    kernel, bias = layer.get_weights()
    pad = ((1, 1), (0, 1))  # TensorFlow's "same" for 7x6, kernel 3x2, strides 2x1
    expected = np.maximum(ref.conv2d(x, kernel, bias, (2, 1), pad, (1, 1)), 0)
    if data_format == "channels_first":
        expected = expected.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, expected)
    assert layer.compute_output_shape((None,) + given.shape[1:]) == (None,) + expected.shape[1:]


@pytest.mark.parametrize("activation", ["relu", "sigmoid", None])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_layer_gradients_match_finite_differences(rng, activation, data_format):
    # 4 filters, 3x3 "valid" on 6x6: the output is 4x4x4 in either layout, so a gradient
    # taken in the wrong layout would not even fail a shape check.
    layer = layers.Conv2D(4, 3, activation=activation, data_format=data_format,
                          dtype="float64")
    x = rng.standard_normal((2, 3, 6, 6) if data_format == "channels_first" else (2, 6, 6, 3))
    grad_y = rng.standard_normal(layer(x, training=True).shape)
    grad_x = layer.backward(grad_y)
    (kernel, bias), (grad_kernel, grad_bias) = layer.get_weights(), layer.grads

    def loss(x_, kernel_, bias_):
        layer.set_weights([kernel_, bias_])
        return float(np.sum(layer(x_) * grad_y))

    np.testing.assert_allclose(grad_x, numerical_gradient(lambda v: loss(v, kernel, bias), x),
                               atol=1e-6)
    np.testing.assert_allclose(grad_kernel,
                               numerical_gradient(lambda v: loss(x, v, bias), kernel), atol=1e-6)
    np.testing.assert_allclose(grad_bias,
                               numerical_gradient(lambda v: loss(x, kernel, v), bias), atol=1e-6)


def test_pooling_and_padding_layers_match_references(rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    y = layers.MaxPooling2D(2, padding="same")(x)
    np.testing.assert_array_equal(y, ref.max_pool2d(x, (2, 2), (2, 2), ((0, 0), (0, 1)))[0])
    y = layers.AveragePooling2D(3, strides=2, padding=1, count_include_pad=True)(x)
    np.testing.assert_allclose(y, ref.avg_pool2d(x, (3, 3), (2, 2), ((1, 1), (1, 1)),
                                                 count_include_pad=True), rtol=1e-6)
    np.testing.assert_allclose(layers.GlobalAveragePooling2D()(x), x.mean(axis=(1, 2)),
                               rtol=1e-6)
    np.testing.assert_array_equal(layers.GlobalMaxPooling2D(keepdims=True)(x),
                                  x.max(axis=(1, 2), keepdims=True))
    padded = layers.ZeroPadding2D(((1, 0), (2, 3)))(x)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (1, 0), (2, 3), (0, 0))))


def test_activation_layers_match_formulas():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(layers.ReLU(max_value=1.0, negative_slope=0.1)(x),
                               [[-0.2, -0.05, 0.0, 0.5, 1.0]], rtol=1e-6)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(layers.Softmax()(x), e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(layers.Activation("sigmoid")(x), 1 / (1 + np.exp(-x)), rtol=1e-6)


def test_dropout_scales_kept_units_and_is_identity_in_inference():
    keras.utils.set_random_seed(3)
    x = np.ones((1000, 10))
    layer = layers.Dropout(0.4)
    y = layer(x, training=True)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.6)}
    assert abs((y == 0).mean() - 0.4) < 0.02
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)
    np.testing.assert_array_equal(layer(x), x)


def _small_model(activation="softmax"):
    return keras.Sequential([
        keras.Input((7, 6, 2), dtype="float64"),
        layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float64"),
        layers.MaxPooling2D(2, padding="same", dtype="float64"),
        layers.Conv2D(4, 2, strides=1, padding=((1, 0), (0, 1)), dilation_rate=(1, 2),
                      activation="elu", dtype="float64"),
        layers.AveragePooling2D(2, dtype="float64"),
        layers.ZeroPadding2D(1, dtype="float64"),
        layers.GlobalAveragePooling2D(dtype="float64"),
        layers.Dense(5, activation="sigmoid", dtype="float64"),
        layers.Dense(3, activation=activation, dtype="float64"),
    ])


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "mse"])
def test_whole_model_gradients_match_finite_differences(rng, loss):
    keras.utils.set_random_seed(0)
    model = _small_model()
    model.compile(keras.optimizers.SGD(learning_rate=1.0), loss)
    x = rng.standard_normal((3, 7, 6, 2))
    y = np.eye(3)[[0, 2, 1]]
    loss_fn = model.loss

    def loss_at(weights):
        model.set_weights(weights)
        return loss_fn(y, model(x))

    before = model.get_weights()
    model.train_on_batch(x, y)       # SGD with lr=1: the update is minus the gradient
    analytic = [b - a for a, b in zip(model.get_weights(), before)]
    for i, w in enumerate(before):
        def f(v, i=i):
            weights = [p.copy() for p in before]
            weights[i] = v
            return loss_at(weights)
        np.testing.assert_allclose(analytic[i], numerical_gradient(f, w.copy()), atol=1e-6,
                                   rtol=1e-5)


def test_input_gradient_of_a_model_matches_finite_differences(rng):
    keras.utils.set_random_seed(1)
    model = _small_model(activation=None)
    x = rng.standard_normal((2, 7, 6, 2))
    grad_y = rng.standard_normal((2, 3))
    model(x, training=True)
    grad = grad_y
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    numeric = numerical_gradient(lambda v: float(np.sum(model(v) * grad_y)), x)
    np.testing.assert_allclose(grad, numeric, atol=1e-7)


def test_layer_config_round_trips():
    layer = layers.Conv2D(8, (3, 5), strides=2, padding=((1, 2), (0, 3)), activation="relu",
                          kernel_initializer="he_normal", name="c")
    clone = layers.Conv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
