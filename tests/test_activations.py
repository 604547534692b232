"""Activations: forward against their formulas and Keras 3, backward against float64 finite
differences."""
import math

import numpy as np
import pytest
from scipy import stats

import convnet as keras
from convnet import activations, layers
from convnet.utils import numerical_gradient

from keras_reference import keras_or_skip, numpy_of

KINKS = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0]
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0)


# One formula per activation, for a single number, written independently of convnet's code.
FORMULAS = {
    "linear": lambda x: x,
    "relu": lambda x: max(x, 0.0),
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "softplus": _softplus,
    "elu": lambda x: x if x > 0 else math.exp(x) - 1,
    "selu": lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * (math.exp(x) - 1)),
    "celu": lambda x: max(x, 0) + min(0.0, math.exp(x) - 1),
    "leaky_relu": lambda x: x if x > 0 else 0.2 * x,
    "relu6": lambda x: min(max(x, 0.0), 6.0),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "gelu": lambda x: x * stats.norm.cdf(x),
    "mish": lambda x: x * math.tanh(_softplus(x)),
    "softsign": lambda x: x / (1 + abs(x)),
    "hard_sigmoid": lambda x: 0.0 if x <= -3 else 1.0 if x >= 3 else x / 6 + 0.5,
    "hard_silu": lambda x: x * (0.0 if x <= -3 else 1.0 if x >= 3 else x / 6 + 0.5),
    "hard_swish": lambda x: x * (0.0 if x <= -3 else 1.0 if x >= 3 else x / 6 + 0.5),
    "hard_tanh": lambda x: min(max(x, -1.0), 1.0),
    "exponential": math.exp,
    "log_sigmoid": lambda x: math.log(_sigmoid(x)),
    "tanh_shrink": lambda x: x - math.tanh(x),
    "hard_shrink": lambda x: x if abs(x) > 0.5 else 0.0,
    "soft_shrink": lambda x: x - 0.5 if x > 0.5 else x + 0.5 if x < -0.5 else 0.0,
    "squareplus": lambda x: (x + math.sqrt(x * x + 4)) / 2,
    "sparse_plus": lambda x: 0.0 if x <= -1 else x if x >= 1 else (x + 1) ** 2 / 4,
    "sparse_sigmoid": lambda x: 0.0 if x <= -1 else 1.0 if x >= 1 else (x + 1) / 2,
}


def _points(rng):
    x = rng.uniform(-7, 7, 60)
    return x[np.min(np.abs(x[:, None] - np.array(KINKS)), axis=1) > 1e-3].reshape(-1, 4)[:10]


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_forward_formula_and_backward_finite_differences(name, rng):
    activation = activations.get(name)
    x = _points(rng)
    y = activation.forward(x)
    expected = np.vectorize(FORMULAS[name])(x)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)
    grad_y = rng.normal(size=x.shape)
    numeric = numerical_gradient(lambda v: float(np.sum(activation.forward(v) * grad_y)),
                                 x.copy())
    # (exp(7) makes the finite differences of "exponential" good to ~1e-7 only)
    np.testing.assert_allclose(activation.backward(x, y, grad_y), numeric, rtol=1e-6, atol=1e-6)
    x32 = x.astype(np.float32)
    y32 = activation.forward(x32)
    assert y32.dtype == np.float32
    assert activation.backward(x32, y32, grad_y.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("name, kwargs", [("gelu", {"approximate": True}),
                                          ("log_softmax", {}), ("log_softmax", {"axis": 0}),
                                          ("softmax", {}), ("leaky_relu", {"negative_slope": 0.1}),
                                          ("elu", {"alpha": 0.5}), ("celu", {"alpha": 2.0}),
                                          ("hard_shrink", {"threshold": 1.5}),
                                          ("squareplus", {"b": 1.0})])
def test_settings_forward_and_backward(name, kwargs, rng):
    activation = type(activations.get(name))(**kwargs)
    x = _points(rng)
    y = activation.forward(x)
    if name == "gelu":
        c = math.sqrt(2 / math.pi)
        np.testing.assert_allclose(y, 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x ** 3))))
    elif name in ("log_softmax", "softmax"):
        axis = kwargs.get("axis", -1)
        log_p = x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))
        np.testing.assert_allclose(y, log_p if name == "log_softmax" else np.exp(log_p))
    grad_y = rng.normal(size=x.shape)
    numeric = numerical_gradient(lambda v: float(np.sum(activation.forward(v) * grad_y)),
                                 x.copy())
    np.testing.assert_allclose(activation.backward(x, y, grad_y), numeric, rtol=1e-6, atol=1e-8)


def test_activations_match_keras(rng):
    keras_ref = keras_or_skip()
    x = _points(rng).astype(np.float32)
    for name in sorted(FORMULAS):
        theirs = numpy_of(getattr(keras_ref.activations, name)(keras_ref.ops.convert_to_tensor(x)))
        np.testing.assert_allclose(activations.get(name)(x), theirs, rtol=2e-5, atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(activations.gelu(x, approximate=True),
                               numpy_of(keras_ref.activations.gelu(x, approximate=True)),
                               rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(activations.log_softmax(x),
                               numpy_of(keras_ref.activations.log_softmax(x)), rtol=2e-5,
                               atol=1e-6)


def test_activation_strings_work_in_layers_and_round_trip(rng, tmp_path):
    x = rng.normal(size=(4, 5)).astype(np.float32)
    for name in ["gelu", "silu", "swish", "elu", "selu", "leaky_relu", "softplus", "softsign",
                 "hard_sigmoid", "hard_silu", "hard_swish", "exponential", "log_softmax",
                 "relu6", "mish", "linear"]:
        model = keras.Sequential([keras.Input((5,)), layers.Dense(3, activation=name)])
        model.compile("sgd", "mse")
        assert np.isfinite(model.train_on_batch(x, np.zeros((4, 3))))
    dense = layers.Dense(3, activation=activations.GELU(approximate=True))
    config = dense.get_config()
    assert config["activation"] == {"class_name": "gelu", "config": {"approximate": True}}
    assert layers.Dense.from_config(config).activation.approximate is True
    assert layers.Dense(3, activation="gelu").get_config()["activation"] == "gelu"
    assert activations.leaky_relu.negative_slope == 0.2
