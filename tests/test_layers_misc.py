"""The shape, regularization, activation, normalization and preprocessing layers (issue 14):
forward and backward against NumPy written out here, in float32 and float64; float64 finite
differences for inputs and weights; symbolic shapes; configs; training in Sequential and
functional models; saving; and Keras 3 itself where it is importable."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet as keras
from convnet import layers
from convnet.utils import numerical_gradient

from conftest import TOLERANCE
from keras_reference import keras_or_skip
from test_resize import resize_adjoint_loop, resize_loop

DTYPES = [np.float32, np.float64]
# the rms_scaling cases exercise a setting Keras 3 deprecates, and warns about
pytestmark = pytest.mark.filterwarnings("ignore:LayerNormalization. rms_scaling")


# ----------------------------------------------------------------------------- references

def upsample_nearest_loop(x, sh, sw):
    n, h, w, c = x.shape
    y = np.zeros((n, h * sh, w * sw, c))
    for i in range(h * sh):
        for j in range(w * sw):
            y[:, i, j] = x[:, i // sh, j // sw]
    return y


def upsample_nearest_adjoint_loop(g, sh, sw):
    n, oh, ow, c = g.shape
    grad = np.zeros((n, oh // sh, ow // sw, c))
    for i in range(oh):
        for j in range(ow):
            grad[:, i // sh, j // sw] += g[:, i, j]
    return grad


def nearest_index(in_size, out_size, i):
    """Keras' nearest rule (PyTorch's nearest-exact): floor((i + 0.5) * in / out)."""
    return min(math.floor((i + 0.5) * in_size / out_size), in_size - 1)


def resize_nearest_loop(x, out_h, out_w):
    n, h, w, c = x.shape
    y = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            y[:, i, j] = x[:, nearest_index(h, out_h, i), nearest_index(w, out_w, j)]
    return y


def resize_nearest_adjoint_loop(g, h, w):
    n, out_h, out_w, c = g.shape
    grad = np.zeros((n, h, w, c))
    for i in range(out_h):
        for j in range(out_w):
            grad[:, nearest_index(h, out_h, i), nearest_index(w, out_w, j)] += g[:, i, j]
    return grad


def crop_loop(x, top, bottom, left, right):
    n, h, w, c = x.shape
    y = np.zeros((n, h - top - bottom, w - left - right, c))
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            y[:, i, j] = x[:, top + i, left + j]
    return y


def uncrop_loop(g, top, bottom, left, right):
    n, h, w, c = g.shape
    grad = np.zeros((n, h + top + bottom, w + left + right, c))
    for i in range(h):
        for j in range(w):
            grad[:, top + i, left + j] = g[:, i, j]
    return grad


def blocks(shape, axes):
    """Index tuples selecting each block of values normalized together: every combination
    of the other axes, with a full slice on the normalized ones."""
    others = [a for a in range(len(shape)) if a not in axes]
    for combo in np.ndindex(*[shape[a] for a in others]):
        index = [slice(None)] * len(shape)
        for a, i in zip(others, combo):
            index[a] = i
        yield tuple(index)


def layer_norm_loop(x, g, axes, gamma, beta, eps, rms=False):
    """Per block of normalized values: the output, and the input gradient as J^T g with the
    Jacobian J written out entry by entry; and the weight gradients."""
    y, grad = np.zeros(x.shape), np.zeros(x.shape)
    grad_gamma, grad_beta = np.zeros(gamma.shape), np.zeros(gamma.shape)
    for index in blocks(x.shape, axes):
        v, gv = x[index].ravel(), g[index].ravel()
        gm, bt = gamma.ravel(), beta.ravel()
        m = v.size
        mean = sum(v) / m
        var = sum((v - mean) ** 2) / m
        inv = 1 / math.sqrt(var + eps)
        if rms:
            out = v * inv * gm
            jac = np.array([[gm[i] * ((i == j) * inv - inv ** 3 * v[i] * (v[j] - mean) / m)
                             for j in range(m)] for i in range(m)])
            grad_gamma += (gv * v * inv).reshape(gamma.shape)
        else:
            xhat = (v - mean) * inv
            out = xhat * gm + bt
            jac = np.array([[gm[i] * inv * ((i == j) - 1 / m - xhat[i] * xhat[j] / m)
                             for j in range(m)] for i in range(m)])
            grad_gamma += (gv * xhat).reshape(gamma.shape)
            grad_beta += gv.reshape(gamma.shape)
        y[index] = out.reshape(x[index].shape)
        grad[index] = (jac.T @ gv).reshape(x[index].shape)
    return y, grad, grad_gamma, grad_beta


# ----------------------------------------------------------------------------- the table
# name -> (make(dtype), input shape, reference(layer, x, g) -> (y, grad_x, weight grads))

def _identity(layer, x, g):
    return x, g, []


def _prelu_reference(layer, x, g):
    (alpha,) = layer.get_weights()
    y = np.where(x > 0, x, alpha * x)
    grad = g * np.where(x > 0, 1.0, np.where(x < 0, alpha, 0.0))
    grad_alpha = (g * np.minimum(x, 0)).sum(axis=0)
    for axis in layer.shared_axes or []:
        grad_alpha = grad_alpha.sum(axis=axis - 1, keepdims=True)
    return y, grad, [grad_alpha]


def _layer_norm_reference(layer, x, g):
    weights = layer.get_weights()
    gamma = weights[0] if layer.scale or layer.rms_scaling else np.ones(
        [x.shape[a] for a in layer.axis])
    beta = weights[-1] if layer.center and not layer.rms_scaling else np.zeros(gamma.shape)
    y, grad, grad_gamma, grad_beta = layer_norm_loop(x, g, layer.axis, gamma, beta,
                                                     layer.epsilon, layer.rms_scaling)
    grads = ([grad_gamma] if layer.scale or layer.rms_scaling else []) + (
        [grad_beta] if layer.center and not layer.rms_scaling else [])
    return y, grad, grads


def _normalization_reference(mean, variance, invert=False):
    def reference(layer, x, g):
        std = np.maximum(np.sqrt(np.asarray(variance, float)), 1e-7)
        if invert:
            return np.asarray(mean) + x * std, g * std, []
        return (x - np.asarray(mean)) / std, g / std, []
    return reference


def _aspect_crop_box(h, w, height, width):
    crop_h = max(min(h, int(w * height / width)), 1)
    crop_w = max(min(w, int(h * width / height)), 1)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return top, h - crop_h - top, left, w - crop_w - left


def _crop_then_resize(box, size, nearest=False):
    def reference(layer, x, g):
        top, bottom, left, right = box(x.shape[1], x.shape[2])
        cropped = crop_loop(x, top, bottom, left, right)
        if cropped.shape[1:3] == size:
            return cropped, uncrop_loop(g, top, bottom, left, right), []
        resize, adjoint = ((resize_nearest_loop, resize_nearest_adjoint_loop) if nearest
                           else (resize_loop, resize_adjoint_loop))
        return (resize(cropped, *size),
                uncrop_loop(adjoint(g, *cropped.shape[1:3]), top, bottom, left, right), [])
    return reference


def _pad_then_resize(rows, cols, fill, size):
    def reference(layer, x, g):
        padded = np.pad(x, ((0, 0), (rows, rows), (cols, cols), (0, 0)), constant_values=fill)
        grad = resize_adjoint_loop(g, *padded.shape[1:3])
        return resize_loop(padded, *size), grad[:, rows:rows + x.shape[1],
                                                cols:cols + x.shape[2]], []
    return reference


def _channels_first(reference):
    """A channels_last reference applied to NCHW data."""
    def wrapped(layer, x, g):
        y, grad, w = reference(layer, x.transpose(0, 2, 3, 1), g.transpose(0, 2, 3, 1))
        return y.transpose(0, 3, 1, 2), grad.transpose(0, 3, 1, 2), w
    return wrapped


CASES = {
    "Identity": (lambda d: layers.Identity(dtype=d), (2, 3, 4), _identity),
    "Reshape -1": (lambda d: layers.Reshape((-1, 4), dtype=d), (2, 3, 2, 4),
                   lambda l, x, g: (x.reshape(2, 6, 4), g.reshape(x.shape), [])),
    "Reshape full": (lambda d: layers.Reshape((4, 6), dtype=d), (2, 3, 2, 4),
                     lambda l, x, g: (x.reshape(2, 4, 6), g.reshape(x.shape), [])),
    "Permute": (lambda d: layers.Permute((3, 1, 2), dtype=d), (2, 3, 4, 5),
                lambda l, x, g: (np.einsum("nhwc->nchw", x), np.einsum("nchw->nhwc", g), [])),
    "UpSampling2D nearest": (lambda d: layers.UpSampling2D((2, 3), dtype=d), (2, 3, 4, 2),
                             lambda l, x, g: (upsample_nearest_loop(x, 2, 3),
                                              upsample_nearest_adjoint_loop(g, 2, 3), [])),
    "UpSampling2D bilinear": (
        lambda d: layers.UpSampling2D((3, 2), interpolation="bilinear", dtype=d), (2, 3, 4, 2),
        lambda l, x, g: (resize_loop(x, 9, 8), resize_adjoint_loop(g, 3, 4), [])),
    "UpSampling2D bilinear channels_first": (
        lambda d: layers.UpSampling2D(2, data_format="channels_first", interpolation="bilinear",
                                      dtype=d), (2, 2, 3, 4),
        _channels_first(lambda l, x, g: (resize_loop(x, 6, 8), resize_adjoint_loop(g, 3, 4),
                                         []))),
    "Cropping2D": (lambda d: layers.Cropping2D(((1, 0), (2, 1)), dtype=d), (2, 5, 6, 2),
                   lambda l, x, g: (crop_loop(x, 1, 0, 2, 1), uncrop_loop(g, 1, 0, 2, 1), [])),
    "Cropping2D channels_first": (
        lambda d: layers.Cropping2D((1, 2), data_format="channels_first", dtype=d),
        (2, 3, 5, 6),
        _channels_first(lambda l, x, g: (crop_loop(x, 1, 1, 2, 2), uncrop_loop(g, 1, 1, 2, 2),
                                         []))),
    "LeakyReLU": (lambda d: layers.LeakyReLU(dtype=d), (3, 7),
                  lambda l, x, g: (np.where(x > 0, x, 0.3 * x), g * np.where(x > 0, 1, 0.3),
                                   [])),
    "ELU": (lambda d: layers.ELU(alpha=0.7, dtype=d), (3, 7),
            lambda l, x, g: (np.where(x > 0, x, 0.7 * (np.exp(x) - 1)),
                             g * np.where(x > 0, 1, 0.7 * np.exp(x)), [])),
    "PReLU": (lambda d: layers.PReLU(alpha_initializer="random_normal", dtype=d), (3, 4, 5),
              _prelu_reference),
    "PReLU shared": (lambda d: layers.PReLU(alpha_initializer="random_normal",
                                            shared_axes=[1, 2], dtype=d), (2, 3, 4, 5),
                     _prelu_reference),
    "LayerNormalization": (lambda d: layers.LayerNormalization(dtype=d), (3, 4, 5),
                           _layer_norm_reference),
    "LayerNormalization two axes": (
        lambda d: layers.LayerNormalization(axis=[1, 3], epsilon=0.1, dtype=d), (2, 3, 2, 4),
        _layer_norm_reference),
    "LayerNormalization no center": (
        lambda d: layers.LayerNormalization(axis=(-2, -1), center=False, dtype=d), (2, 3, 4),
        _layer_norm_reference),
    "LayerNormalization rms_scaling": (
        lambda d: layers.LayerNormalization(rms_scaling=True, dtype=d), (3, 6),
        _layer_norm_reference),
    "Normalization given": (
        lambda d: layers.Normalization(mean=[1.0, -2.0, 0.5], variance=[4.0, 0.25, 2.0],
                                       dtype=d), (2, 4, 3),
        _normalization_reference([1.0, -2.0, 0.5], [4.0, 0.25, 2.0])),
    "Normalization of a zero variance": (   # divides by Keras' epsilon, 1e-7
        lambda d: layers.Normalization(mean=[1.0, 0.5], variance=[0.25, 0.0], dtype=d),
        (2, 2), _normalization_reference([1.0, 0.5], [0.25, 0.0])),
    "Normalization invert": (
        lambda d: layers.Normalization(axis=None, mean=2.0, variance=9.0, invert=True,
                                       dtype=d), (2, 5),
        _normalization_reference(2.0, 9.0, invert=True)),
    "Rescaling": (lambda d: layers.Rescaling([0.5, 2.0], offset=-1.0, dtype=d), (2, 3, 2),
                  lambda l, x, g: (x * np.array([0.5, 2.0]) - 1, g * np.array([0.5, 2.0]), [])),
    "Resizing bilinear": (lambda d: layers.Resizing(4, 9, dtype=d), (2, 6, 5, 2),
                          _crop_then_resize(lambda h, w: (0, 0, 0, 0), (4, 9))),
    "Resizing nearest": (lambda d: layers.Resizing(7, 3, interpolation="nearest", dtype=d),
                         (2, 5, 6, 2),
                         _crop_then_resize(lambda h, w: (0, 0, 0, 0), (7, 3), nearest=True)),
    "Resizing crop_to_aspect_ratio": (
        lambda d: layers.Resizing(4, 4, crop_to_aspect_ratio=True, dtype=d), (2, 5, 8, 2),
        _crop_then_resize(lambda h, w: _aspect_crop_box(h, w, 4, 4), (4, 4))),
    "Resizing pad_to_aspect_ratio": (
        lambda d: layers.Resizing(8, 4, pad_to_aspect_ratio=True, fill_value=0.5, dtype=d),
        (2, 5, 4, 2), _pad_then_resize(1, 0, 0.5, (8, 4))),   # pads 5 rows to 8 -> 1 each
    "CenterCrop": (lambda d: layers.CenterCrop(3, 4, dtype=d), (2, 6, 7, 2),
                   _crop_then_resize(lambda h, w: (1, 2, 1, 2), (3, 4))),
    "CenterCrop of a small image": (
        lambda d: layers.CenterCrop(7, 3, dtype=d), (2, 5, 6, 2),
        _crop_then_resize(lambda h, w: _aspect_crop_box(h, w, 7, 3), (7, 3))),
    "ActivityRegularization": (lambda d: layers.ActivityRegularization(0.1, 0.2, dtype=d),
                               (2, 5), _identity),
}

# The layers whose training output is random: their inference output is the identity.
NOISE = {
    "SpatialDropout2D": lambda d: layers.SpatialDropout2D(0.4, dtype=d),
    "GaussianNoise": lambda d: layers.GaussianNoise(0.3, dtype=d),
    "GaussianDropout": lambda d: layers.GaussianDropout(0.3, dtype=d),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_backward_match_numpy(case, dtype, rng):
    make, shape, reference = CASES[case]
    keras.utils.set_random_seed(3)
    layer = make(np.dtype(dtype).name)
    x = rng.standard_normal(shape).astype(dtype)
    y = layer(x, training=True)
    g = rng.standard_normal(y.shape).astype(dtype)
    grad = layer.backward(g)
    expected_y, expected_grad, expected_w = reference(layer, x.astype(np.float64),
                                                      g.astype(np.float64))
    assert y.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
    np.testing.assert_allclose(y, expected_y, **TOLERANCE[dtype])
    np.testing.assert_allclose(grad, expected_grad, **TOLERANCE[dtype])
    assert len(layer.grads) == len(expected_w)
    for got, expected in zip(layer.grads, expected_w):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **TOLERANCE[dtype])
    np.testing.assert_allclose(layer(x), expected_y, **TOLERANCE[dtype])  # inference alike


# a gradient of 1e7 (1 / epsilon) is beyond what finite differences resolve
NO_FINITE_DIFFERENCES = {"Normalization of a zero variance"}


@pytest.mark.parametrize("case", sorted(set(CASES) - NO_FINITE_DIFFERENCES))
def test_gradients_match_finite_differences(case, rng):
    make, shape, _ = CASES[case]
    keras.utils.set_random_seed(4)
    layer = make("float64")
    # away from the kinks of LeakyReLU / ELU / PReLU at 0
    x = rng.standard_normal(shape)
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    g = rng.standard_normal(layer(x, training=True).shape)
    grad = layer.backward(g)
    weights = layer.get_weights()
    grads = layer.grads

    def loss(x_, weights_):
        layer.set_weights(weights_)
        return float(np.sum(layer(x_) * g))

    np.testing.assert_allclose(grad, numerical_gradient(lambda v: loss(v, weights), x),
                               atol=1e-7, rtol=1e-6)
    for i, (w, gw) in enumerate(zip(weights, grads)):
        def loss_w(v, i=i):
            changed = [p.copy() for p in weights]
            changed[i] = v
            return loss(x, changed)
        np.testing.assert_allclose(gw, numerical_gradient(loss_w, w.copy()), atol=1e-7,
                                   rtol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES) + sorted(NOISE))
def test_symbolic_shape_is_compute_output_shape_and_the_real_one(case, rng):
    if case in NOISE:
        make, shape = NOISE[case], (2, 3, 4, 5)
    else:
        make, shape, _ = CASES[case]
    symbolic = make("float32")(keras.Input(shape[1:])).shape
    layer = make("float32")
    assert symbolic == layer.compute_output_shape((None, *shape[1:]))
    assert symbolic == (None, *layer(rng.standard_normal(shape)).shape[1:])


@pytest.mark.parametrize("case", sorted(CASES) + sorted(NOISE))
def test_config_round_trips_through_json(case):
    make = NOISE[case] if case in NOISE else CASES[case][0]
    layer = make("float64")
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert clone.get_config() == layer.get_config()
    assert clone.dtype == np.float64


def test_config_round_trip_keeps_every_setting():
    for layer in [layers.UpSampling2D((2, 3), "channels_first", "bilinear"),
                  layers.Resizing(5, 6, "nearest", pad_to_aspect_ratio=True, fill_value=2.0,
                                  data_format="channels_first"),
                  layers.PReLU("ones", shared_axes=2),
                  layers.LayerNormalization([1, 2], 1e-5, center=False,
                                            gamma_initializer="he_normal"),
                  layers.Normalization((1, 2), mean=[[1.0, 2.0]], variance=[[3.0, 4.0]],
                                       invert=True),
                  layers.SpatialDropout2D(0.2, "channels_first", seed=4),
                  layers.GaussianNoise(0.5, seed=1), layers.Rescaling([1.0, 2.0], [0.5, 0.0])]:
        config = layer.get_config()
        clone = type(layer).from_config(json.loads(json.dumps(config)))
        assert clone.get_config() == config
    assert layers.PReLU(shared_axes=2).get_config()["shared_axes"] == [2]
    assert layers.LeakyReLU().get_config()["negative_slope"] == 0.3   # Keras 3's default


def test_layers_without_weights_are_built_at_construction():
    weightless = [layers.Reshape((4,)), layers.Permute((2, 1)), layers.UpSampling2D(),
                  layers.Cropping2D(1), layers.Identity(), layers.SpatialDropout2D(0.1),
                  layers.GaussianNoise(0.1), layers.GaussianDropout(0.1),
                  layers.ActivityRegularization(), layers.LeakyReLU(), layers.ELU(),
                  layers.Rescaling(2.0), layers.Resizing(2, 2), layers.CenterCrop(2, 2),
                  layers.Flatten(), layers.Dropout(0.5), layers.Activation("relu"),
                  layers.ReLU(), layers.Softmax(), layers.ZeroPadding2D(),
                  layers.MaxPooling2D(), layers.AveragePooling2D(),
                  layers.GlobalAveragePooling2D(), layers.GlobalMaxPooling2D(), layers.Add(),
                  layers.Concatenate()]
    for layer in weightless:
        assert layer.built and layer.count_params() == 0, layer
    for layer in [layers.PReLU(), layers.LayerNormalization(), layers.Normalization(),
                  layers.Dense(2)]:
        assert not layer.built
    # built at construction, such a layer takes inputs of any size
    pool = layers.MaxPooling2D()
    assert pool(np.zeros((1, 4, 4, 1))).shape == (1, 2, 2, 1)
    assert pool(np.zeros((1, 8, 6, 2))).shape == (1, 4, 3, 2)


def test_prelu_weights_follow_shared_axes():
    layer = layers.PReLU(shared_axes=[1, 2])
    layer.build((None, 5, 6, 3))
    assert layer.alpha.shape == (1, 1, 3) and layer.count_params() == 3
    np.testing.assert_array_equal(layer.alpha.numpy(), 0)     # Keras' "Zeros"
    layer = layers.PReLU()
    layer.build((None, 5, 6, 3))
    assert layer.count_params() == 90


def test_layer_normalization_weights_and_options():
    layer = layers.LayerNormalization(axis=[1, 2])
    layer.build((None, 3, 4, 5))
    assert layer.axis == [1, 2] and [w.name for w in layer.weights] == ["gamma", "beta"]
    assert layer.gamma.shape == (3, 4)
    np.testing.assert_array_equal(layer.gamma.numpy(), 1)
    np.testing.assert_array_equal(layer.beta.numpy(), 0)
    assert layers.LayerNormalization(scale=False, center=False).__class__(
        scale=False, center=False)(np.ones((2, 3))).shape == (2, 3)
    with pytest.warns(UserWarning, match="deprecated"):
        rms = layers.LayerNormalization(rms_scaling=True)
    rms.build((None, 4))
    assert [w.name for w in rms.weights] == ["gamma"]


# ----------------------------------------------------------------------------- noise layers

@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_dropout_drops_whole_channels(data_format):
    keras.utils.set_random_seed(0)
    layer = layers.SpatialDropout2D(0.4, data_format=data_format)
    x = np.ones((200, 3, 4, 10), np.float32)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    y = layer(x, training=True)
    maps = y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)   # (N, C, H, W)
    per_map = maps.reshape(200, 10, -1)
    # each feature map is all zero or all 1 / (1 - rate)
    assert np.all(per_map.min(axis=2) == per_map.max(axis=2))
    assert set(np.unique(per_map)) == {0.0, np.float32(1 / 0.6)}
    assert abs((per_map[:, :, 0] == 0).mean() - 0.4) < 0.03
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(g), g * y, rtol=1e-6)   # y is the mask here
    np.testing.assert_array_equal(layer(x), x)


def test_gaussian_noise_adds_noise_of_stddev_in_training_only():
    layer = layers.GaussianNoise(0.5, seed=3)
    x = np.full((400, 50), 2.0, np.float32)
    noise = layer(x, training=True) - x
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.5) < 0.01
    g = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(g), g)
    np.testing.assert_array_equal(layer(x), x)
    again = layers.GaussianNoise(0.5, seed=3)(x, training=True) - x
    np.testing.assert_array_equal(again, noise)      # a seed fixes the draws


def test_gaussian_dropout_multiplies_by_noise_around_one():
    layer = layers.GaussianDropout(0.2, seed=5)
    x = np.full((400, 50), 3.0)
    y = layer(x, training=True)
    factor = y / 3.0
    assert abs(factor.mean() - 1) < 0.01
    assert abs(factor.std() - math.sqrt(0.2 / 0.8)) < 0.01
    g = np.random.default_rng(0).standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(g), g * factor, rtol=1e-5)
    np.testing.assert_array_equal(layer(x), x.astype(np.float32))


def test_activity_regularization_penalty_is_keras_formula_over_the_batch():
    x = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    layer = layers.ActivityRegularization(l1=0.1, l2=0.01, dtype="float64")
    np.testing.assert_array_equal(layer(x), x)
    (loss,) = layer.losses
    expected = (0.1 * np.abs(x).sum() + 0.01 * np.square(x).sum()) / 2   # / batch size
    assert math.isclose(loss, expected, rel_tol=1e-12)


def test_activity_penalty_gradient_reaches_the_weights():
    """One SGD step at learning rate 1 moves the weights by minus the gradient of the loss
    plus the penalty; checked against finite differences of that sum."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,), dtype="float64"),
                              layers.Dense(4, dtype="float64"),
                              layers.ActivityRegularization(l1=0.05, l2=0.2, dtype="float64"),
                              layers.Dense(2, dtype="float64")])
    model.compile(keras.optimizers.SGD(learning_rate=1.0), "mse")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    before = model.get_weights()

    def total(weights):
        model.set_weights(weights)
        hidden = x @ weights[0] + weights[1]
        penalty = (0.05 * np.abs(hidden).sum() + 0.2 * np.square(hidden).sum()) / len(x)
        return float(np.mean((model(x) - y) ** 2)) + penalty

    reported = model.train_on_batch(x, y)
    after = model.get_weights()
    assert math.isclose(float(np.ravel(reported)[0]), total(before), rel_tol=1e-9)
    for i, w in enumerate(before):
        def f(v, i=i):
            weights = [p.copy() for p in before]
            weights[i] = v
            return total(weights)
        np.testing.assert_allclose(w - after[i], numerical_gradient(f, w.copy()),
                                   atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- Normalization

def test_normalization_adapt_on_an_array_and_on_batches():
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((60, 4, 3)) * [1.0, 2.0, 3.0] + [0.0, 5.0, -1.0])
    mean, var = data.mean(axis=(0, 1)), data.var(axis=(0, 1))
    whole = layers.Normalization(dtype="float64")
    whole.adapt(data)
    batched = layers.Normalization(dtype="float64")
    batched.adapt([(data[i:i + 7], np.zeros(7)) for i in range(0, 60, 7)])  # (x, y) batches
    generated = layers.Normalization(dtype="float64")
    generated.adapt(data[i:i + 11] for i in range(0, 60, 11))
    for layer in (whole, batched, generated):
        assert [w.name for w in layer.weights] == ["mean", "variance", "count"]
        assert not layer.trainable_weights
        np.testing.assert_allclose(layer.adapt_mean.numpy(), mean, rtol=1e-12)
        np.testing.assert_allclose(layer.adapt_variance.numpy(), var, rtol=1e-12)
        np.testing.assert_allclose(layer(data), (data - mean) / np.sqrt(var), rtol=1e-10)


def test_normalization_keeps_several_axes_and_broadcasts_given_statistics():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((30, 2, 3)) + np.arange(6).reshape(2, 3)
    layer = layers.Normalization(axis=(1, 2), dtype="float64")
    layer.adapt(data)
    assert layer.adapt_mean.shape == (2, 3)
    np.testing.assert_allclose(layer.adapt_mean.numpy(), data.mean(axis=0), rtol=1e-12)
    # a given mean of lower rank lines up with the last kept axes (Keras' rule)
    given = layers.Normalization(axis=(1, 2), mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0],
                                 dtype="float64")
    np.testing.assert_allclose(given(data), (data - [1.0, 2.0, 3.0]) / [1.0, 2.0, 3.0])


def test_normalization_counts_as_weights_in_models_and_files(tmp_path):
    data = np.random.default_rng(2).standard_normal((20, 3)) * 4 + 1
    norm = layers.Normalization()
    norm.adapt(data)
    model = keras.Sequential([keras.Input((3,)), norm, layers.Dense(2)])
    assert model.count_params() == 3 + 3 + 1 + 8
    model.save(tmp_path / "m.cnet")
    loaded = keras.load_model(tmp_path / "m.cnet")
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))


# ----------------------------------------------------------------------------- hypothesis

@given(h=st.integers(1, 6), w=st.integers(1, 6), sh=st.integers(1, 4), sw=st.integers(1, 4),
       channels=st.integers(1, 3), channels_first=st.booleans(), seed=st.integers(0, 2**16))
def test_upsampling_bilinear_at_any_size(h, w, sh, sw, channels, channels_first, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, h, w, channels))
    layer = layers.UpSampling2D((sh, sw), interpolation="bilinear", dtype="float64",
                                data_format="channels_first" if channels_first else None)
    given_x = x.transpose(0, 3, 1, 2) if channels_first else x
    y = layer(given_x, training=True)
    g = rng.standard_normal(y.shape)
    grad = layer.backward(g)
    if channels_first:
        y, g, grad = (a.transpose(0, 2, 3, 1) for a in (y, g, grad))
    np.testing.assert_allclose(y, resize_loop(x, h * sh, w * sw), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, resize_adjoint_loop(g, h, w), rtol=1e-12, atol=1e-12)
    assert layer.compute_output_shape((None, *given_x.shape[1:])) == (None, *y.shape[1:]) \
        if not channels_first else (None, channels, h * sh, w * sw)


@given(h=st.integers(1, 8), w=st.integers(1, 8), data=st.data())
def test_cropping_at_any_size(h, w, data):
    top = data.draw(st.integers(0, h - 1))
    bottom = data.draw(st.integers(0, h - 1 - top))
    left = data.draw(st.integers(0, w - 1))
    right = data.draw(st.integers(0, w - 1 - left))
    x = np.random.default_rng(h * 10 + w).standard_normal((2, h, w, 3))
    layer = layers.Cropping2D(((top, bottom), (left, right)), dtype="float64")
    y = layer(x, training=True)
    np.testing.assert_array_equal(y, crop_loop(x, top, bottom, left, right))
    g = np.ones_like(y)
    np.testing.assert_array_equal(layer.backward(g), uncrop_loop(g, top, bottom, left, right))
    assert layer.compute_output_shape((None, h, w, 3)) == (None, *y.shape[1:])
    with pytest.raises(ValueError, match="Cropping2D.*removes all"):
        layers.Cropping2D(((top, h - top), (0, 0)))(x)


# ----------------------------------------------------------------------------- in models

def _every_layer():
    return [
        layers.Rescaling(0.5, 0.1),
        layers.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0]),
        layers.Conv2D(4, 3, padding="same"),
        layers.LayerNormalization(),
        layers.PReLU(shared_axes=[1, 2]),
        layers.UpSampling2D(interpolation="bilinear"),
        layers.Cropping2D(1),
        layers.SpatialDropout2D(0.2, seed=1),
        layers.GaussianNoise(0.1, seed=2),
        layers.LeakyReLU(),
        layers.ELU(),
        layers.UpSampling2D(),
        layers.Resizing(9, 7),
        layers.CenterCrop(6, 6),
        layers.Permute((2, 1, 3)),
        layers.Reshape((-1, 4)),
        layers.GaussianDropout(0.1, seed=3),
        layers.ActivityRegularization(0.001, 0.001),
        layers.Identity(),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ]


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 5, 5, 3)).astype(np.float32), rng.integers(0, 3, 8)


def test_every_layer_trains_in_a_sequential_model_and_round_trips_a_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 5, 3)), *_every_layer()])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x, y = _data()
    before = model.get_weights()
    losses = [float(np.ravel(model.train_on_batch(x, y))[0]) for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "every.cnet")
    loaded = keras.load_model(tmp_path / "every.cnet")
    assert loaded.predict(x, verbose=0).tobytes() == model.predict(x, verbose=0).tobytes()
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.get_config() == model.get_config()


def test_every_layer_trains_in_a_functional_model(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 5, 3))
    h = inputs
    for layer in _every_layer()[:12]:
        h = layer(h)
    skip = layers.Conv2D(4, 1)(layers.UpSampling2D(interpolation="bilinear")(inputs))
    h = layers.Add()([layers.Resizing(8, 8)(h), layers.Cropping2D(1)(skip)])
    for layer in _every_layer()[13:]:
        h = layer(h)
    model = keras.Model(inputs, h)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x, y = _data()
    losses = [float(np.ravel(model.train_on_batch(x, y))[0]) for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    model.save(tmp_path / "functional.cnet")
    loaded = keras.load_model(tmp_path / "functional.cnet")
    assert loaded.predict(x, verbose=0).tobytes() == model.predict(x, verbose=0).tobytes()


# ----------------------------------------------------------------------------- Keras 3 itself

@pytest.fixture(scope="module")
def real_keras():
    """Keras 3 on its torch backend, where importable (it is the reference implementation)."""
    real = keras_or_skip()
    if real.backend.backend() != "torch":
        pytest.skip("these comparisons use Keras' torch backend")
    return real


KERAS_PAIRS = {
    "UpSampling2D bilinear": lambda m: m.UpSampling2D((2, 3), interpolation="bilinear"),
    "UpSampling2D nearest": lambda m: m.UpSampling2D((3, 2)),
    "Resizing down": lambda m: m.Resizing(3, 4),
    "Resizing up": lambda m: m.Resizing(9, 13),
    "Resizing nearest": lambda m: m.Resizing(8, 3, interpolation="nearest"),
    "Resizing pad_to_aspect_ratio": lambda m: m.Resizing(8, 3, pad_to_aspect_ratio=True,
                                                         fill_value=0.5),
    "Resizing crop_to_aspect_ratio": lambda m: m.Resizing(4, 4, crop_to_aspect_ratio=True),
    "CenterCrop": lambda m: m.CenterCrop(3, 3),
    "CenterCrop of a small image": lambda m: m.CenterCrop(7, 2),
    "Cropping2D": lambda m: m.Cropping2D(((1, 0), (2, 1))),
    "LayerNormalization": lambda m: m.LayerNormalization(axis=[1, 3], epsilon=0.1),
    "LeakyReLU": lambda m: m.LeakyReLU(),
    "ELU": lambda m: m.ELU(0.5),
    "Normalization": lambda m: m.Normalization(mean=[1, 2, 3], variance=[1, 4, 0]),
    "Rescaling": lambda m: m.Rescaling([1, 2, 3], 0.5),
    "Reshape": lambda m: m.Reshape((-1, 3)),
    "Permute": lambda m: m.Permute((3, 1, 2)),
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' torch backend on NumPy 2
@pytest.mark.parametrize("case", sorted(KERAS_PAIRS))
def test_forward_and_input_gradient_match_keras(case, real_keras):
    import torch
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype(np.float32)
    ours = KERAS_PAIRS[case](layers)
    y = ours(x, training=True)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = KERAS_PAIRS[case](real_keras.layers)(tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOLERANCE[np.float32])
    np.testing.assert_allclose(ours.backward(g), tx.grad.numpy(), **TOLERANCE[np.float32])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_prelu_and_normalization_adapt_match_keras(real_keras):
    import torch
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    alpha = rng.standard_normal((1, 6, 3)).astype(np.float32)
    ours, theirs = layers.PReLU(shared_axes=1), real_keras.layers.PReLU(shared_axes=1)
    ours.build(x.shape)
    theirs.build(x.shape)
    ours.set_weights([alpha])
    theirs.set_weights([alpha])
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.sum().backward()
    np.testing.assert_allclose(ours(x, training=True), ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.backward(np.ones_like(x)), tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.grads[0], theirs.alpha.value.grad.numpy(), rtol=1e-5)
    data = rng.standard_normal((40, 4)).astype(np.float32) * 3 + 1
    ours, theirs = layers.Normalization(), real_keras.layers.Normalization()
    ours.adapt(data)
    theirs.adapt(data)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours(data), np.asarray(theirs(data)), rtol=1e-5, atol=1e-6)
