"""BatchNormalization as a layer: Keras' formulas for the output, the gradients and the
moving statistics written out here, step by step through train_on_batch and fit, frozen
layers, other axes, finite differences, files, threads, real Keras where importable, and
convnet.inference.fold_batch_norm."""
import json

import numpy as np
import pytest

import convnet
import convnet as keras
from convnet import layers
from convnet.inference import fold_batch_norm
from convnet.utils import numerical_gradient

from conftest import TOLERANCE, at_1_2_3_threads
from keras_reference import keras_or_skip, numpy_of

DTYPES = [np.float32, np.float64]

# (input shape, axis): NHWC, NCHW (after a channels_first convolution), a matrix, 3-D
LAYOUTS = {"NHWC": ((4, 5, 3, 6), -1), "NCHW": ((4, 6, 5, 3), 1), "matrix": ((9, 5), -1),
           "3-D axis 1": ((3, 4, 5), 1)}


def channel_view(shape, axis):
    """The reduction axes and the shape a per-channel vector broadcasts with."""
    axis %= len(shape)
    broadcast = [1] * len(shape)
    broadcast[axis] = shape[axis]
    return tuple(a for a in range(len(shape)) if a != axis), tuple(broadcast)


def keras_train_forward(x, gamma, beta, epsilon, axis):
    """Keras' training output: gamma * (x - mean) / sqrt(var + epsilon) + beta with the
    batch mean and biased variance (ops.moments); returns (y, mean, variance)."""
    reduce, shape = channel_view(x.shape, axis)
    x = x.astype(np.float64)
    mean = x.mean(axis=reduce)
    variance = ((x - mean.reshape(shape)) ** 2).mean(axis=reduce)
    y = (gamma.reshape(shape) * (x - mean.reshape(shape))
         / np.sqrt(variance.reshape(shape) + epsilon) + beta.reshape(shape))
    return y, mean, variance


def keras_train_backward(x, grad_y, gamma, epsilon, axis):
    """The gradients of that output, statistics included, in closed form:
    grad_x = gamma / std * (g - mean(g) - x_hat * mean(g * x_hat))."""
    reduce, shape = channel_view(x.shape, axis)
    x, g = x.astype(np.float64), grad_y.astype(np.float64)
    mean = x.mean(axis=reduce, keepdims=True)
    std = np.sqrt(((x - mean) ** 2).mean(axis=reduce, keepdims=True) + epsilon)
    x_hat = (x - mean) / std
    grad_x = gamma.reshape(shape) / std * (g - g.mean(axis=reduce, keepdims=True)
                                          - x_hat * (g * x_hat).mean(axis=reduce, keepdims=True))
    return grad_x, (g * x_hat).sum(axis=reduce), g.sum(axis=reduce)


def keras_inference(x, gamma, beta, moving_mean, moving_variance, epsilon, axis):
    _, shape = channel_view(x.shape, axis)
    return (gamma.reshape(shape) * (x.astype(np.float64) - moving_mean.reshape(shape))
            / np.sqrt(moving_variance.reshape(shape).astype(np.float64) + epsilon)
            + beta.reshape(shape))


def random_parameters(layer, rng):
    """Those of gamma, beta, moving_mean, moving_variance the layer has, drawn at random
    (gamma and the variance in [0.5, 2])."""
    c = layer.moving_mean.shape[0]
    draw = {"gamma": lambda: rng.uniform(0.5, 2, c), "beta": lambda: rng.standard_normal(c),
            "moving_mean": lambda: rng.standard_normal(c),
            "moving_variance": lambda: rng.uniform(0.5, 2, c)}
    values = [draw[w.name]().astype(layer.dtype) for w in layer.weights]
    layer.set_weights(values)
    return values


def assert_close(got, want, dtype):
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **TOLERANCE[dtype])


# ----------------------------------------------------------------------------- the formulas


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_training_output_and_gradients_follow_keras(rng, dtype, layout):
    shape, axis = LAYOUTS[layout]
    layer = layers.BatchNormalization(axis=axis, epsilon=0.01, dtype=dtype)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    layer.build(shape)
    gamma, beta, moving_mean, moving_variance = random_parameters(layer, rng)
    y = layer(x, training=True)
    want, _, _ = keras_train_forward(x, gamma, beta, 0.01, axis)
    assert_close(y, want, dtype)
    grad_y = rng.standard_normal(shape).astype(dtype)
    grad_x = layer.backward(grad_y)
    want_x, want_gamma, want_beta = keras_train_backward(x, grad_y, gamma, 0.01, axis)
    for got, expect in zip((grad_x, *layer.grads), (want_x, want_gamma, want_beta,
                                                     np.zeros_like(gamma), np.zeros_like(gamma))):
        assert_close(got, expect, dtype)
    # a training call outside fit / train_on_batch leaves the moving statistics alone
    assert layer.moving_mean.numpy().tobytes() == moving_mean.tobytes()
    assert layer.moving_variance.numpy().tobytes() == moving_variance.tobytes()
    assert_close(layer(x), keras_inference(x, gamma, beta, moving_mean, moving_variance, 0.01,
                                           axis), dtype)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_without_center_or_scale_the_weights_are_missing_and_count_as_0_and_1(rng, center,
                                                                              scale):
    layer = layers.BatchNormalization(center=center, scale=scale, dtype="float64")
    x = rng.standard_normal((6, 3, 2, 4)) * 2 + 1
    layer.build(x.shape)
    names = ["gamma"] * scale + ["beta"] * center + ["moving_mean", "moving_variance"]
    assert [w.name for w in layer.weights] == names
    gamma, beta = np.ones(4), np.zeros(4)
    want, _, _ = keras_train_forward(x, gamma, beta, 1e-3, -1)
    np.testing.assert_allclose(layer(x, training=True), want, rtol=1e-10, atol=1e-10)
    grad_y = rng.standard_normal(x.shape)
    want_x, want_gamma, want_beta = keras_train_backward(x, grad_y, gamma, 1e-3, -1)
    np.testing.assert_allclose(layer.backward(grad_y), want_x, rtol=1e-9, atol=1e-10)
    want_grads = [want_gamma] * scale + [want_beta] * center
    for got, expect in zip(layer.grads, want_grads):
        np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_training_gradients_match_finite_differences(rng, layout):
    shape, axis = LAYOUTS[layout]
    layer = layers.BatchNormalization(axis=axis, dtype="float64")
    x = rng.standard_normal(shape) * 2 + 1
    layer.build(shape)
    weights = random_parameters(layer, rng)
    grad_y = rng.standard_normal(shape)
    layer(x, training=True)
    grad_x = layer.backward(grad_y)
    grad_gamma, grad_beta = layer.grads[:2]

    def loss(x_, gamma, beta):
        layer.set_weights([gamma, beta, *weights[2:]])
        return float(np.sum(layer(x_, training=True) * grad_y))

    gamma, beta = weights[:2]
    np.testing.assert_allclose(grad_x, numerical_gradient(lambda v: loss(v, gamma, beta), x),
                               atol=1e-6)
    np.testing.assert_allclose(grad_gamma,
                               numerical_gradient(lambda v: loss(x, v, beta), gamma.copy()),
                               atol=1e-6)
    np.testing.assert_allclose(grad_beta,
                               numerical_gradient(lambda v: loss(x, gamma, v), beta.copy()),
                               atol=1e-6)


# ----------------------------------------------------------------------------- frozen


def test_a_frozen_layer_normalises_with_its_moving_statistics_in_training(rng):
    layer = layers.BatchNormalization(axis=1, dtype="float64")
    x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
    layer.build(x.shape)
    gamma, beta, moving_mean, moving_variance = random_parameters(layer, rng)
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    y = layer(x, training=True)
    np.testing.assert_allclose(y, keras_inference(x, gamma, beta, moving_mean, moving_variance,
                                                  1e-3, 1), rtol=1e-12)
    grad_y = rng.standard_normal(x.shape)
    grad_x = layer.backward(grad_y)
    np.testing.assert_allclose(grad_x, numerical_gradient(
        lambda v: float(np.sum(layer(v, training=True) * grad_y)), x), atol=1e-7)


def test_a_frozen_layer_changes_nothing_in_training_and_passes_the_right_gradient(rng):
    keras.utils.set_random_seed(2)
    norm = layers.BatchNormalization(dtype="float64")
    model = keras.Sequential([keras.Input((5,), dtype="float64"),
                              layers.Dense(4, dtype="float64"), norm,
                              layers.Dense(2, dtype="float64")])
    random_parameters(norm, rng)
    norm.trainable = False
    model.compile(keras.optimizers.SGD(learning_rate=1.0), "mse")
    x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
    frozen = norm.get_weights()
    before = model.get_weights()

    def loss_at(weights):
        model.set_weights(weights)
        return model.loss(y, model(x, training=True))

    model.train_on_batch(x, y)
    after = model.get_weights()
    for a, b in zip(frozen, norm.get_weights()):
        assert a.tobytes() == b.tobytes()
    # SGD with lr=1: each update is minus the gradient, through the moving statistics
    for i in (0, 1, 6, 7):  # the two Dense layers' kernels and biases
        def f(v, i=i):
            return loss_at([v if j == i else w for j, w in enumerate(before)])
        np.testing.assert_allclose(before[i] - after[i], numerical_gradient(f, before[i].copy()),
                                   atol=1e-7, rtol=1e-6)
    summary = []
    model.summary(print_fn=summary.append)
    assert "Non-trainable params: 16" in "\n".join(summary)


# ----------------------------------------------------------------------------- moving statistics


def _model(momentum=0.9, dtype="float32"):
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((4, 4, 3), dtype=dtype),
                              layers.BatchNormalization(momentum=momentum, dtype=dtype),
                              layers.Flatten(dtype=dtype), layers.Dense(2, dtype=dtype)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def test_moving_statistics_follow_keras_step_by_step_and_only_in_training_steps(rng):
    model = _model()
    norm = model.layers[0]
    moving_mean, moving_variance = np.zeros(3), np.ones(3)
    for step in range(4):
        x = (rng.standard_normal((8, 4, 4, 3)) * [1, 2, 3] + [0, -1, 5]).astype(np.float32)
        model.train_on_batch(x, rng.standard_normal((8, 2)).astype(np.float32))
        batch = x.reshape(-1, 3).astype(np.float64)
        moving_mean = moving_mean * 0.9 + batch.mean(axis=0) * (1 - 0.9)
        moving_variance = moving_variance * 0.9 + batch.var(axis=0) * (1 - 0.9)  # biased
        np.testing.assert_allclose(norm.moving_mean.numpy(), moving_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(norm.moving_variance.numpy(), moving_variance, rtol=1e-5)
        # inference, evaluate and a training call outside a training step change nothing
        saved = [w.numpy() for w in norm.weights]
        gamma, beta = saved[:2]
        np.testing.assert_allclose(
            norm(x), keras_inference(x, gamma, beta, saved[2], saved[3], 1e-3, -1),
            rtol=1e-5, atol=1e-5)
        model.evaluate(x, np.zeros((8, 2)), verbose=0)
        model(x, training=True)
        model.predict(x, verbose=0)
        assert all(a.tobytes() == b.numpy().tobytes() for a, b in zip(saved, norm.weights))


def test_fit_updates_the_moving_statistics_once_per_batch(rng):
    model = _model(momentum=0.5)
    x = (rng.standard_normal((12, 4, 4, 3)) + 3).astype(np.float32)
    model.fit(x, np.zeros((12, 2), np.float32), batch_size=4, shuffle=False, verbose=0)
    moving_mean, moving_variance = np.zeros(3), np.ones(3)
    for start in (0, 4, 8):
        batch = x[start:start + 4].reshape(-1, 3).astype(np.float64)
        moving_mean = moving_mean * 0.5 + batch.mean(axis=0) * 0.5
        moving_variance = moving_variance * 0.5 + batch.var(axis=0) * 0.5
    np.testing.assert_allclose(model.layers[0].moving_mean.numpy(), moving_mean, rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].moving_variance.numpy(), moving_variance,
                               rtol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_training_matches_real_keras_step_by_step(rng):
    """The same model, weights, batches and optimizer in Keras 3 (torch backend): moving
    statistics, parameters and predictions agree after each train_on_batch."""
    real_keras = keras_or_skip()

    def build(k):
        model = k.Sequential([k.Input((5, 4, 3)),
                              k.layers.Conv2D(4, 3, padding="same", use_bias=False),
                              k.layers.BatchNormalization(momentum=0.8, epsilon=0.01),
                              k.layers.ReLU(), k.layers.Flatten(), k.layers.Dense(3)])
        model.compile(k.optimizers.SGD(0.05), "mse")
        return model

    ours, theirs = build(convnet), build(real_keras)
    random_parameters(ours.layers[1], rng)
    theirs.set_weights(ours.get_weights())
    for _ in range(3):
        x = (rng.standard_normal((6, 5, 4, 3)) + 1).astype(np.float32)
        y = rng.standard_normal((6, 3)).astype(np.float32)
        ours.train_on_batch(x, y)
        theirs.train_on_batch(x, y)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, numpy_of(b), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.predict(x, verbose=0), numpy_of(theirs.predict(
            x, verbose=0)), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore")
def test_config_matches_keras_and_loads_keras_configs():
    real_keras = keras_or_skip()
    options = dict(axis=1, momentum=0.9, epsilon=0.01, center=False,
                   gamma_initializer="random_normal", beta_regularizer="l2",
                   gamma_constraint="non_neg")
    theirs = real_keras.layers.BatchNormalization(**options).get_config()
    ours = layers.BatchNormalization(**options).get_config()
    assert set(ours) - {"dtype"} == set(theirs) - {"dtype"}
    keras_config = {k: v for k, v in theirs.items() if k != "dtype"}
    clone = layers.BatchNormalization.from_config(keras_config)
    assert clone.axis == 1 and clone.momentum == 0.9 and clone.center is False


# ----------------------------------------------------------------------------- the layer API


def test_config_round_trips_through_json():
    layer = layers.BatchNormalization(axis=1, momentum=0.5, epsilon=0.1, scale=False,
                                      beta_initializer="ones", moving_variance_initializer="zeros",
                                      beta_regularizer=keras.regularizers.L2(0.1),
                                      beta_constraint=keras.constraints.MaxNorm(3), name="bn")
    config = json.loads(json.dumps(layer.get_config()))
    assert layers.BatchNormalization.from_config(config).get_config() == layer.get_config()
    assert config["momentum"] == 0.5 and config["synchronized"] is False


@pytest.mark.parametrize("shape, axis", [((None, None, 3), -1), ((3, 5, None), 1), ((7,), -1)])
def test_symbolic_shape_is_the_input_shape(shape, axis):
    layer = layers.BatchNormalization(axis=axis)
    out = layer(keras.Input(shape))
    assert out.shape == (None, *shape) == layer.compute_output_shape((None, *shape))
    assert layer.moving_mean.shape == ((None, *shape)[axis],)


def test_model_with_moving_statistics_round_trips_through_a_file(tmp_path, rng):
    model = _model()
    x = (rng.standard_normal((8, 4, 4, 3)) + 2).astype(np.float32)
    model.fit(x, np.zeros((8, 2)), batch_size=4, epochs=2, verbose=0)
    norm = model.layers[0]
    assert not np.allclose(norm.moving_mean.numpy(), 0)
    model.save(tmp_path / "m.cnet")
    loaded = keras.load_model(tmp_path / "m.cnet")
    for a, b in zip(norm.weights, loaded.layers[0].weights):
        assert a.name == b.name and a.trainable == b.trainable
        assert a.numpy().tobytes() == b.numpy().tobytes()
    assert loaded.predict(x, verbose=0).tobytes() == model.predict(x, verbose=0).tobytes()
    model.save_weights(tmp_path / "w.bin")
    other = _model()
    other.load_weights(tmp_path / "w.bin")
    assert other.layers[0].moving_variance.numpy().tobytes() == \
        norm.moving_variance.numpy().tobytes()


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("training", [True, False])
def test_bit_identical_at_1_2_and_3_threads(rng, layout, training):
    shape, axis = LAYOUTS[layout]
    layer = layers.BatchNormalization(axis=axis)
    x = (rng.standard_normal((64, *shape[1:])) + 1).astype(np.float32)
    grad_y = rng.standard_normal(x.shape).astype(np.float32)
    layer.build(x.shape)
    random_parameters(layer, rng)
    layer.trainable = training  # a frozen layer runs its inference path in training

    def compute():
        y = layer(x, training=True)
        return [y, layer.backward(grad_y), *layer.grads[:2]]

    at_1_2_3_threads(compute)


# ----------------------------------------------------------------------------- folding


def _randomized_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            random_parameters(layer, rng)
        elif layer.weights:
            layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) * 0.3
                               for w in layer.weights])
    return model


def _folded_matches(model, rng, dtype):
    x = rng.standard_normal((5, *model.input_shape[1:])).astype(dtype)
    expected = model.predict(x, verbose=0)
    weights = [w.numpy() for w in model.weights]
    folded = fold_batch_norm(model)
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected,
                               **{np.float32: dict(rtol=1e-4, atol=1e-5),
                                  np.float64: dict(rtol=1e-11, atol=1e-12)}[dtype])
    assert all(a.tobytes() == w.numpy().tobytes() for a, w in zip(weights, model.weights))
    return folded


@pytest.mark.parametrize("dtype", DTYPES)
def test_fold_batch_norm_into_every_linear_layer_of_a_sequential(rng, dtype):
    kw = dict(dtype=dtype)
    model = _randomized_norms(keras.Sequential([
        keras.Input((9, 8, 3), dtype=dtype),
        layers.Conv2D(6, 3, use_bias=False, groups=3, **kw), layers.BatchNormalization(**kw),
        layers.ReLU(**kw),
        layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, **kw),
        layers.BatchNormalization(center=False, **kw),
        layers.SeparableConv2D(4, 3, strides=2, **kw), layers.BatchNormalization(**kw),
        layers.Conv2DTranspose(3, 3, strides=2, padding="same", **kw),
        layers.BatchNormalization(scale=False, **kw),
        layers.Conv2D(3, 1, activation="relu", **kw), layers.BatchNormalization(**kw),
        layers.Flatten(**kw), layers.Dense(4, **kw), layers.BatchNormalization(**kw),
    ]), rng)
    folded = _folded_matches(model, rng, dtype)
    assert [type(layer).__name__ for layer in folded.layers] == [
        "Conv2D", "ReLU", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv2D",
        "BatchNormalization", "Flatten", "Dense"]  # a ReLU in between keeps its normalization
    assert folded.layers[0].use_bias and folded.layers[0].name == model.layers[0].name


def test_fold_batch_norm_channels_first_and_its_axis(rng):
    model = _randomized_norms(keras.Sequential([
        keras.Input((3, 7, 6)),
        layers.Conv2D(4, 3, data_format="channels_first"), layers.BatchNormalization(axis=1),
        layers.Conv2D(4, 3, data_format="channels_first"), layers.BatchNormalization(),
    ]), rng)
    folded = _folded_matches(model, rng, np.float32)
    # the second normalization is over the width, not the channels: kept
    assert [type(layer).__name__ for layer in folded.layers] == [
        "Conv2D", "Conv2D", "BatchNormalization"]


def test_fold_batch_norm_in_a_functional_graph(rng):
    inputs = keras.Input((8, 8, 4))
    a = layers.BatchNormalization(name="bn_a")(layers.Conv2D(4, 3, padding="same",
                                                             name="conv_a")(inputs))
    residual = layers.Add()([a, inputs])
    b = layers.Conv2D(4, 1, name="conv_b")(residual)   # feeds both a normalization and Add
    out = layers.Add()([b, layers.BatchNormalization(name="bn_b")(b)])
    shared = layers.Dense(4, name="shared")
    out = layers.BatchNormalization(name="bn_c")(shared(layers.GlobalAveragePooling2D()(out)))
    out = shared(out)
    model = _randomized_norms(keras.Model(inputs, out), rng)
    folded = _folded_matches(model, rng, np.float32)
    names = [layer.name for layer in folded.layers]
    assert "bn_a" not in names and "bn_b" in names and "bn_c" in names


def test_fold_batch_norm_refuses_what_it_cannot_rewrite():
    class Custom(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="fold_batch_norm: expected a Sequential or functional"):
        fold_batch_norm(Custom())
    with pytest.raises(ValueError, match="has not been built"):
        fold_batch_norm(keras.Sequential([layers.Dense(2), layers.BatchNormalization()]))
