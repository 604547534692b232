"""The layer normalization kernels against NumPy written out here, float64 finite
differences, and bit-identical results at 1, 2 and 3 threads."""
import numpy as np
import pytest

import convnet
from convnet import kernels
from convnet.utils import numerical_gradient

from conftest import TOLERANCE

DTYPES = [np.float32, np.float64]
# widths around the kernel's 8 running sums: fewer, exactly, a remainder, many
WIDTHS = [1, 7, 8, 9, 128, 301]


def reference(x, g, gamma, beta, eps):
    """Row by row: y, and the gradients from the textbook formula
    dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * gamma."""
    y, grad = np.zeros(x.shape), np.zeros(x.shape)
    grad_gamma, grad_beta = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for r in range(x.shape[0]):
        mean = x[r].sum() / x.shape[1]
        var = ((x[r] - mean) ** 2).sum() / x.shape[1]
        inv = 1 / np.sqrt(var + eps)
        xhat = (x[r] - mean) * inv
        y[r] = xhat * gamma + beta
        dxhat = g[r] * gamma
        grad[r] = inv * (dxhat - dxhat.mean() - xhat * (dxhat * xhat).mean())
        grad_gamma += g[r] * xhat
        grad_beta += g[r]
    return y, grad, grad_gamma, grad_beta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", WIDTHS)
def test_layer_norm_matches_numpy(rng, dtype, width):
    x = (rng.standard_normal((37, width)) * 3 + 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    gamma = rng.standard_normal(width).astype(dtype)
    beta = rng.standard_normal(width).astype(dtype)
    y, mean, inv = kernels.layer_norm(x, gamma, beta, 1e-3)
    grad, grad_gamma, grad_beta = kernels.layer_norm_backward(x, g, gamma, mean, inv)
    expected = reference(x.astype(np.float64), g.astype(np.float64), gamma.astype(np.float64),
                         beta.astype(np.float64), 1e-3)
    for got, want in zip((y, grad, grad_gamma, grad_beta), expected):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **TOLERANCE[dtype])
    without_input = kernels.layer_norm_backward(x, g, gamma, mean, inv, need_input_grad=False)
    assert without_input[0] is None
    assert without_input[1].tobytes() == grad_gamma.tobytes()
    assert without_input[2].tobytes() == grad_beta.tobytes()


def test_layer_norm_without_gamma_and_beta_is_plain_standardization(rng):
    x = rng.standard_normal((5, 9))
    y, _, _ = kernels.layer_norm(x, None, None, 0.0)
    np.testing.assert_allclose(y, (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True),
                               rtol=1e-12)


def test_layer_norm_gradients_match_finite_differences(rng):
    x = rng.standard_normal((4, 11))
    g = rng.standard_normal(x.shape)
    gamma, beta = rng.standard_normal(11), rng.standard_normal(11)
    _, mean, inv = kernels.layer_norm(x, gamma, beta, 0.01)
    grad, grad_gamma, grad_beta = kernels.layer_norm_backward(x, g, gamma, mean, inv)

    def loss(x_, gamma_, beta_):
        return float(np.sum(kernels.layer_norm(x_, gamma_, beta_, 0.01)[0] * g))

    np.testing.assert_allclose(grad, numerical_gradient(lambda v: loss(v, gamma, beta), x),
                               atol=1e-8)
    np.testing.assert_allclose(grad_gamma, numerical_gradient(lambda v: loss(x, v, beta),
                                                              gamma), atol=1e-8)
    np.testing.assert_allclose(grad_beta, numerical_gradient(lambda v: loss(x, gamma, v), beta),
                               atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [2, 3])
def test_layer_norm_is_bit_identical_at_any_thread_count(threads, dtype, count):
    rng = np.random.default_rng(9)
    # 45 rows: 15 uneven gradient blocks of 3, shared differently by 2 and 3 threads
    x = rng.standard_normal((45, 133)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    gamma, beta = rng.standard_normal((2, 133)).astype(dtype)
    results = []
    for n_threads in (1, count):
        convnet.set_num_threads(n_threads)
        y, mean, inv = kernels.layer_norm(x, gamma, beta, 1e-5)
        results.append([y, mean, inv, *kernels.layer_norm_backward(x, g, gamma, mean, inv)])
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


def test_layer_norm_of_no_rows(rng):
    x = np.zeros((0, 6))
    y, mean, inv = kernels.layer_norm(x)
    assert y.shape == (0, 6) and mean.shape == inv.shape == (0,)
    grad, grad_gamma, grad_beta = kernels.layer_norm_backward(x, x, None, mean, inv)
    assert grad.shape == (0, 6)
    np.testing.assert_array_equal(grad_gamma, 0)
    np.testing.assert_array_equal(grad_beta, 0)
