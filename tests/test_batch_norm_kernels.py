"""Batch normalisation kernels in convnet.kernels against plain NumPy (tests/reference.py),
finite differences, Keras' formulas and, where importable, keras.ops itself."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convnet import kernels
from convnet.utils import numerical_gradient

import reference as ref
from conftest import TOLERANCE, at_1_2_3_threads

DTYPES = [np.float32, np.float64]


@st.composite
def batches(draw):
    """An NHWC batch or a (batch, channels) matrix, the block size small enough to make
    one block, several, or one per row, and the optional parameters present or not."""
    shape = draw(st.sampled_from([
        (draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6)),
         draw(st.integers(1, 40))),
        (draw(st.integers(2, 50)), draw(st.integers(1, 20)))]))
    return dict(shape=shape, dtype=draw(st.sampled_from(DTYPES)),
                block_bytes=draw(st.sampled_from([1, 100, 1 << 15])),
                scale=draw(st.booleans()), center=draw(st.booleans()),
                epsilon=draw(st.sampled_from([1e-3, 1e-5, 0.5])), seed=draw(st.integers(0, 99)))


@given(batches())
def test_batch_norm_train_forward_and_backward_match_numpy(cfg):
    rng = np.random.default_rng(cfg["seed"])
    dtype, channels, eps = cfg["dtype"], cfg["shape"][-1], cfg["epsilon"]
    x = (rng.standard_normal(cfg["shape"]) * 2 + 3).astype(dtype)
    gamma = rng.standard_normal(channels).astype(dtype) if cfg["scale"] else None
    beta = rng.standard_normal(channels).astype(dtype) if cfg["center"] else None
    grad_y = rng.standard_normal(cfg["shape"]).astype(dtype)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "NORM_BLOCK_BYTES", cfg["block_bytes"])
        y, mean, variance, inv_std, y_relu, gx, gg, gb = at_1_2_3_threads(lambda: (
            *kernels.batch_norm_train(x, gamma, beta, eps),
            kernels.batch_norm_train(x, gamma, beta, eps, relu=True)[0],
            *kernels.batch_norm_train_backward(x, grad_y, mean_of(x), inv_std_of(x, eps),
                                               gamma)))
        relu_grads = at_1_2_3_threads(lambda: kernels.batch_norm_train_backward(
            x, grad_y, mean, inv_std, gamma, relu_output=y_relu))
    g = np.ones(channels) if gamma is None else gamma.astype(np.float64)
    b = np.zeros(channels) if beta is None else beta.astype(np.float64)
    want_y, want_mean, want_var = ref.batch_norm_train(x, g, b, eps)
    tol = dict(TOLERANCE[dtype])
    # The kernels apply the normalization as one affine map, x * scale + shift, as PyTorch
    # does: its rounding is relative to |x * scale|, which a nearly constant channel (a batch
    # of one: inv_std = 1 / sqrt(eps)) makes hundreds of times |y|.
    scale = np.abs(g) / np.sqrt(want_var + eps)
    tol["atol"] += 8 * np.finfo(dtype).eps * float(np.max(np.abs(x) * scale))
    for got, want in ((y, want_y), (mean, want_mean), (variance, want_var),
                      (inv_std, 1 / np.sqrt(want_var + eps)), (y_relu, np.maximum(want_y, 0))):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
    for got, want in zip((gx, gg, gb), ref.batch_norm_train_backward(x, grad_y, g, eps)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
    masked = np.where(y_relu > 0, grad_y, 0)
    for got, want in zip(relu_grads, ref.batch_norm_train_backward(x, masked, g, eps)):
        np.testing.assert_allclose(got, want, **tol)


def mean_of(x):
    return x.astype(np.float64).mean(axis=tuple(range(x.ndim - 1))).astype(x.dtype)


def inv_std_of(x, eps):
    variance = x.astype(np.float64).var(axis=tuple(range(x.ndim - 1)))
    return (1 / np.sqrt(variance + eps)).astype(x.dtype)


@given(batches())
def test_batch_norm_inference_forward_and_backward_match_keras_formula(cfg):
    """Keras' inference: (x - moving_mean) * gamma / sqrt(moving_variance + eps) + beta; the
    moving statistics are constants, so the gradients are those of a per-channel affine map."""
    rng = np.random.default_rng(cfg["seed"])
    dtype, channels, eps = cfg["dtype"], cfg["shape"][-1], cfg["epsilon"]
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    gamma = rng.standard_normal(channels).astype(dtype) if cfg["scale"] else None
    beta = rng.standard_normal(channels).astype(dtype) if cfg["center"] else None
    moving_mean = rng.standard_normal(channels).astype(dtype)
    moving_var = rng.random(channels).astype(dtype) + 0.1
    grad_y = rng.standard_normal(cfg["shape"]).astype(dtype)
    stats = (moving_mean, moving_var, eps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "NORM_BLOCK_BYTES", cfg["block_bytes"])
        y, y_relu, gx, gg, gb = at_1_2_3_threads(lambda: (
            kernels.batch_norm_inference(x, gamma, beta, *stats),
            kernels.batch_norm_inference(x, gamma, beta, *stats, relu=True),
            *kernels.batch_norm_inference_backward(x, grad_y, gamma, *stats)))
        relu_grads = kernels.batch_norm_inference_backward(x, grad_y, gamma, *stats,
                                                           relu_output=y_relu)
        frozen = kernels.batch_norm_inference_backward(x, grad_y, gamma, *stats,
                                                       need_parameter_grads=False)
    g = np.ones(channels) if gamma is None else gamma.astype(np.float64)
    b = np.zeros(channels) if beta is None else beta.astype(np.float64)
    std = np.sqrt(moving_var.astype(np.float64) + eps)
    x_hat = (x - moving_mean.astype(np.float64)) / std
    tol = TOLERANCE[dtype]
    axes = tuple(range(x.ndim - 1))
    np.testing.assert_allclose(y, x_hat * g + b, **tol)
    np.testing.assert_allclose(y_relu, np.maximum(x_hat * g + b, 0), **tol)
    for gradient, (got_x, got_gamma, got_beta) in ((grad_y, (gx, gg, gb)),
                                                   (np.where(y_relu > 0, grad_y, 0), relu_grads)):
        np.testing.assert_allclose(got_x, gradient * g / std, **tol)
        np.testing.assert_allclose(got_gamma, (gradient * x_hat).sum(axis=axes), **tol)
        np.testing.assert_allclose(got_beta, gradient.sum(axis=axes), **tol)
    assert frozen[1] is None and frozen[2] is None
    assert frozen[0].tobytes() == gx.tobytes()


@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_train_gradients_match_finite_differences(rng, monkeypatch, relu):
    """Through the batch statistics, over several blocks."""
    monkeypatch.setattr(kernels, "NORM_BLOCK_BYTES", 64)
    x = rng.standard_normal((3, 4, 2, 5))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    grad_y = rng.standard_normal(x.shape)

    def loss(x_, gamma_, beta_):
        return float(np.sum(kernels.batch_norm_train(x_, gamma_, beta_, 0.01, relu)[0] * grad_y))

    y, mean, _, inv_std = kernels.batch_norm_train(x, gamma, beta, 0.01, relu)
    gx, gg, gb = kernels.batch_norm_train_backward(x, grad_y, mean, inv_std, gamma,
                                                   relu_output=y if relu else None)
    np.testing.assert_allclose(gx, numerical_gradient(lambda v: loss(v, gamma, beta), x),
                               atol=1e-6)
    np.testing.assert_allclose(gg, numerical_gradient(lambda v: loss(x, v, beta), gamma),
                               atol=1e-6)
    np.testing.assert_allclose(gb, numerical_gradient(lambda v: loss(x, gamma, v), beta),
                               atol=1e-6)


def test_batch_norm_inference_gradients_match_finite_differences(rng):
    x = rng.standard_normal((4, 3, 3, 4))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    stats = (rng.standard_normal(4), rng.random(4) + 0.5, 1e-3)
    grad_y = rng.standard_normal(x.shape)

    def loss(x_, gamma_, beta_):
        return float(np.sum(kernels.batch_norm_inference(x_, gamma_, beta_, *stats) * grad_y))

    gx, gg, gb = kernels.batch_norm_inference_backward(x, grad_y, gamma, *stats)
    np.testing.assert_allclose(gx, numerical_gradient(lambda v: loss(v, gamma, beta), x),
                               atol=1e-6)
    np.testing.assert_allclose(gg, numerical_gradient(lambda v: loss(x, v, beta), gamma),
                               atol=1e-6)
    np.testing.assert_allclose(gb, numerical_gradient(lambda v: loss(x, gamma, v), beta),
                               atol=1e-6)


def test_batch_statistics_stay_accurate_far_from_zero(monkeypatch):
    """float32 data around 10^4 with a spread of 10^-2: E[x^2] - E[x]^2 would lose every
    digit of the variance (and can go negative); block means and squared deviations merged
    by Chan's formula keep it to float32 precision."""
    monkeypatch.setattr(kernels, "NORM_BLOCK_BYTES", 256)
    rng = np.random.default_rng(3)
    x = (10_000 + 0.01 * rng.standard_normal((64, 8, 8, 4))).astype(np.float32)
    _, mean, variance, _ = kernels.batch_norm_train(x, epsilon=0.0)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 1, 2)), rtol=1e-7)
    np.testing.assert_allclose(variance, exact.var(axis=(0, 1, 2)), rtol=1e-3)


def test_moving_statistics_update_follows_keras(rng):
    """Keras' layer: moving = moving * momentum + batch * (1 - momentum), the batch variance
    being the biased one that also normalises the batch."""
    x = rng.standard_normal((8, 3, 3, 2)) * [1.0, 4.0] + [0.5, -2.0]
    moving_mean, moving_var, momentum = np.zeros(2), np.ones(2), 0.99
    for _ in range(3):
        _, mean, variance, _ = kernels.batch_norm_train(x)
        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_var = moving_var * momentum + variance * (1 - momentum)
    want_mean = (1 - momentum ** 3) * x.mean(axis=(0, 1, 2))
    want_var = momentum ** 3 + (1 - momentum ** 3) * x.reshape(-1, 2).var(axis=0, ddof=0)
    np.testing.assert_allclose(moving_mean, want_mean)
    np.testing.assert_allclose(moving_var, want_var)


@pytest.mark.filterwarnings("ignore")
def test_batch_norm_matches_keras_ops(keras_ops, rng):
    x = (rng.standard_normal((4, 5, 5, 6)) * 3 + 1).astype(np.float32)
    gamma = rng.standard_normal(6).astype(np.float32)
    beta = rng.standard_normal(6).astype(np.float32)
    y, mean, variance, _ = kernels.batch_norm_train(x, gamma, beta, 1e-3)
    want_mean, want_var = (keras_ops.convert_to_numpy(v)
                           for v in keras_ops.moments(x, axes=[0, 1, 2]))
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, want_var, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y, keras_ops.convert_to_numpy(keras_ops.batch_normalization(
        x, want_mean, want_var, axis=-1, offset=beta, scale=gamma, epsilon=1e-3)),
        rtol=1e-4, atol=1e-4)
    moving_mean, moving_var = rng.standard_normal(6).astype(np.float32), np.full(6, 2, np.float32)
    np.testing.assert_allclose(
        kernels.batch_norm_inference(x, gamma, beta, moving_mean, moving_var, 1e-3),
        keras_ops.convert_to_numpy(keras_ops.batch_normalization(
            x, moving_mean, moving_var, axis=-1, offset=beta, scale=gamma, epsilon=1e-3)),
        rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fold_batch_norm_equals_conv_then_batch_norm(rng, dtype):
    x = rng.standard_normal((2, 6, 5, 3)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype)
    gamma, beta = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    mean, var = rng.standard_normal(4).astype(dtype), (rng.random(4) + 0.1).astype(dtype)
    pad = ((1, 1), (1, 1))
    z = ref.conv2d(x, kernel, bias, (1, 1), pad, (1, 1))
    want = (z - mean) * gamma / np.sqrt(var.astype(np.float64) + 1e-3) + beta
    folded_kernel, folded_bias = kernels.fold_batch_norm(kernel, bias, gamma, beta, mean, var,
                                                         1e-3)
    assert folded_kernel.dtype == dtype and folded_bias.dtype == dtype
    np.testing.assert_allclose(kernels.conv2d(x, folded_kernel, folded_bias, 1, "same"), want,
                               **TOLERANCE[dtype])
    # No bias, scale=False and center=False: the missing pieces are 0, 1 and 0.
    folded_kernel, folded_bias = kernels.fold_batch_norm(kernel, None, None, None, mean, var)
    want = (ref.conv2d(x, kernel, None, (1, 1), pad, (1, 1)) - mean) / np.sqrt(
        var.astype(np.float64) + 1e-3)
    np.testing.assert_allclose(kernels.conv2d(x, folded_kernel, folded_bias, 1, "same"), want,
                               **TOLERANCE[dtype])


def test_fold_batch_norm_into_depthwise_kernel(rng):
    x = rng.standard_normal((2, 5, 5, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    mean, var = rng.standard_normal(6), rng.random(6) + 0.1
    pad = ((0, 0), (0, 0))
    want = ((ref.depthwise_conv2d(x, kernel, None, (1, 1), pad, (1, 1)) - mean) * gamma
            / np.sqrt(var + 1e-3) + beta)
    folded, bias = kernels.fold_batch_norm(kernel.reshape(3, 3, 1, 6), None, gamma, beta, mean,
                                           var)
    np.testing.assert_allclose(kernels.depthwise_conv2d(x, folded.reshape(kernel.shape), bias),
                               want)
