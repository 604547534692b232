"""The bilinear resize kernels against a plain loop written from Keras' rule (half-pixel
centres, edges clamped), their adjoint identity, PyTorch's interpolate (which Keras' torch
backend calls), and bit-identical results at 1, 2 and 3 threads."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
from convnet import kernels

from conftest import TOLERANCE

DTYPES = [np.float32, np.float64]


def taps(in_size, out_size, i):
    """The two cells output cell i reads, and their weights, by Keras' rule in float64."""
    source = max((i + 0.5) * in_size / out_size - 0.5, 0.0)
    low = min(math.floor(source), in_size - 1)
    high = min(low + 1, in_size - 1)
    frac = min(source - low, 1.0)
    return (low, 1 - frac), (high, frac)


def resize_loop(x, out_h, out_w):
    n, h, w, c = x.shape
    out = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            for r, wr in taps(h, out_h, i):
                for s, ws in taps(w, out_w, j):
                    out[:, i, j] += wr * ws * x[:, r, s]
    return out


def resize_adjoint_loop(g, h, w):
    n, out_h, out_w, c = g.shape
    grad = np.zeros((n, h, w, c))
    for i in range(out_h):
        for j in range(out_w):
            for r, wr in taps(h, out_h, i):
                for s, ws in taps(w, out_w, j):
                    grad[:, r, s] += wr * ws * g[:, i, j]
    return grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(3, 4, 6, 8), (5, 7, 3, 2), (4, 4, 9, 13), (1, 1, 3, 2),
                                   (6, 5, 6, 5), (2, 9, 7, 1)])
def test_resize_matches_the_loop_forward_and_backward(rng, dtype, sizes):
    h, w, out_h, out_w = sizes
    x = rng.standard_normal((2, h, w, 3)).astype(dtype)
    y = kernels.resize_bilinear(x, (out_h, out_w))
    assert y.shape == (2, out_h, out_w, 3) and y.dtype == dtype
    np.testing.assert_allclose(y, resize_loop(x.astype(np.float64), out_h, out_w),
                               **TOLERANCE[dtype])
    g = rng.standard_normal(y.shape).astype(dtype)
    grad = kernels.resize_bilinear_backward(g, x.shape)
    assert grad.shape == x.shape and grad.dtype == dtype
    np.testing.assert_allclose(grad, resize_adjoint_loop(g.astype(np.float64), h, w),
                               **TOLERANCE[dtype])


def test_an_integer_upsampling_is_the_classic_quarter_weights():
    """Doubling: every output cell sits a quarter pixel from two input cells per axis (Keras'
    half-pixel centres, not the corner-aligned 1/3, 2/3)."""
    x = np.array([0.0, 4.0, 8.0]).reshape(1, 1, 3, 1)
    y = kernels.resize_bilinear(x, (1, 6))
    np.testing.assert_allclose(y.ravel(), [0.0, 1.0, 3.0, 5.0, 7.0, 8.0])


@given(h=st.integers(1, 7), w=st.integers(1, 7), out_h=st.integers(1, 12),
       out_w=st.integers(1, 12), channels=st.integers(1, 5), batch=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_backward_is_the_adjoint_of_forward(h, w, out_h, out_w, channels, batch, seed):
    """<resize(x), g> == <x, resize_backward(g)> at any sizes, shrinking or enlarging."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, h, w, channels))
    g = rng.standard_normal((batch, out_h, out_w, channels))
    y = kernels.resize_bilinear(x, (out_h, out_w))
    grad = kernels.resize_bilinear_backward(g, x.shape)
    assert math.isclose(float(np.sum(y * g)), float(np.sum(x * grad)), rel_tol=1e-10,
                        abs_tol=1e-10)
    if batch:
        np.testing.assert_allclose(y, resize_loop(x, out_h, out_w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_resize_matches_pytorch_interpolate(rng, dtype):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5, 7, 4)).astype(dtype)
    for size in [(10, 14), (15, 21), (3, 4), (8, 5)]:
        tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
        ty = torch.nn.functional.interpolate(tx, size=size, mode="bilinear",
                                             align_corners=False)
        g = rng.standard_normal((3, *size, 4)).astype(dtype)
        ty.backward(torch.tensor(g.transpose(0, 3, 1, 2)))
        np.testing.assert_allclose(kernels.resize_bilinear(x, size),
                                   ty.detach().numpy().transpose(0, 2, 3, 1), **TOLERANCE[dtype])
        np.testing.assert_allclose(kernels.resize_bilinear_backward(g, x.shape),
                                   tx.grad.numpy().transpose(0, 2, 3, 1), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [2, 3])
def test_resize_is_bit_identical_at_any_thread_count(threads, dtype, count):
    rng = np.random.default_rng(7)
    # 5 images of 11 rows: 55 forward rows and 33 (shrunk) or 110 gradient rows to share
    x = rng.standard_normal((5, 11, 9, 6)).astype(dtype)
    results = []
    for n_threads in (1, count):
        convnet.set_num_threads(n_threads)
        up = kernels.resize_bilinear(x, (22, 27))
        down = kernels.resize_bilinear(x, (6, 4))
        results.append([up, down, kernels.resize_bilinear_backward(up, x.shape),
                        kernels.resize_bilinear_backward(down, x.shape)])
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


def test_resize_takes_read_only_strided_and_integer_inputs(rng):
    x = rng.standard_normal((2, 4, 5, 3))
    expected = resize_loop(x, 7, 3)
    x.flags.writeable = False
    np.testing.assert_allclose(kernels.resize_bilinear(x, (7, 3)), expected, rtol=1e-12)
    flipped = np.ascontiguousarray(x[:, ::-1])[:, ::-1]
    np.testing.assert_allclose(kernels.resize_bilinear(flipped, (7, 3)), expected, rtol=1e-12)
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 1) * 13
    np.testing.assert_allclose(kernels.resize_bilinear(images, (6, 6)),
                               resize_loop(images.astype(np.float64), 6, 6), rtol=1e-6)
