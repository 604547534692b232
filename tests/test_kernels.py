"""convnet.kernels (and through it convnet._core) against plain NumPy loops in tests/reference.py."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet
from convnet import kernels
from convnet._core import linalg
from convnet._core import threads as _threads
from convnet.utils import numerical_gradient

import reference as ref
from conftest import TOLERANCE, needs_address_space, run_python

DTYPES = [np.float32, np.float64]
# CI draws 5,000 configurations for each of the two property tests below, every one run at
# 1 and 2 threads; a developer's run draws fewer.
PROPERTY_EXAMPLES = 5000 if os.environ.get("CI") else 100


def at_one_and_two_threads(compute):
    """compute() at 2 threads, checked byte for byte against the same at 1 thread."""
    before = convnet.get_num_threads()
    try:
        convnet.set_num_threads(2)
        results = compute()
        convnet.set_num_threads(1)
        for a, b in zip(results, compute()):
            assert a.tobytes() == b.tobytes(), "results differ between 1 and 2 threads"
    finally:
        convnet.set_num_threads(before)
    return results


@st.composite
def conv_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    min_h = max(1, dh * (kh - 1) + 1 - sum(pads[0]))
    min_w = max(1, dw * (kw - 1) + 1 - sum(pads[1]))
    h, w = draw(st.integers(min_h, min_h + 7)), draw(st.integers(min_w, min_w + 7))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    form = draw(st.sampled_from(["explicit", "same", "valid"]))
    padding = {"explicit": pads, "same": "same", "valid": "valid"}[form]
    if form == "valid" and (h < dh * (kh - 1) + 1 or w < dw * (kw - 1) + 1):
        padding = pads
    dtype = draw(st.sampled_from(DTYPES))
    return dict(shape=(n, h, w, c), kernel=(kh, kw, c, f), strides=(sh, sw),
                dilation=(dh, dw), padding=padding, dtype=dtype, seed=draw(st.integers(0, 99)))


def _explicit(padding, shape, kernel, strides, dilation):
    return kernels.resolve_padding(padding, kernel[:2], strides, dilation, shape[1:3], "test")


@settings(max_examples=PROPERTY_EXAMPLES)
@given(conv_configs())
def test_conv2d_forward_and_backward_match_loops(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["shape"]).astype(cfg["dtype"])
    w = rng.standard_normal(cfg["kernel"]).astype(cfg["dtype"])
    b = rng.standard_normal(cfg["kernel"][3]).astype(cfg["dtype"])
    pad = _explicit(cfg["padding"], cfg["shape"], cfg["kernel"], cfg["strides"], cfg["dilation"])
    expected = ref.conv2d(x, w, b, cfg["strides"], pad, cfg["dilation"])
    grad_y = rng.standard_normal(expected.shape).astype(cfg["dtype"])
    geometry = (cfg["strides"], cfg["padding"], cfg["dilation"])
    y, y_relu, gx, gw, gb = at_one_and_two_threads(lambda: (
        kernels.conv2d(x, w, b, *geometry),
        kernels.conv2d(x, w, b, *geometry, relu=True),
        *kernels.conv2d_backward(x, w, grad_y, *geometry)))
    assert y.dtype == cfg["dtype"]
    np.testing.assert_allclose(y, expected, **TOLERANCE[cfg["dtype"]])
    np.testing.assert_allclose(y_relu, np.maximum(expected, 0), **TOLERANCE[cfg["dtype"]])

    ex, ew, eb = ref.conv2d_backward(x, w, grad_y, cfg["strides"], pad, cfg["dilation"])
    for got, want in ((gx, ex), (gw, ew), (gb, eb)):
        assert got.dtype == cfg["dtype"]
        np.testing.assert_allclose(got, want, **TOLERANCE[cfg["dtype"]])

    # Through the fused ReLU: the gradient passes where its output is positive.
    relu_grads = at_one_and_two_threads(
        lambda: kernels.conv2d_backward(x, w, grad_y, *geometry, relu_output=y_relu))
    masked = np.where(y_relu > 0, grad_y, 0)
    for got, want in zip(relu_grads, ref.conv2d_backward(x, w, masked, cfg["strides"], pad,
                                                         cfg["dilation"])):
        np.testing.assert_allclose(got, want, **TOLERANCE[cfg["dtype"]])


@settings(max_examples=PROPERTY_EXAMPLES // 2)
@given(conv_configs(), st.sampled_from([0.0, 0.2, 0.6, 0.95, 1.0]), st.booleans())
def test_conv2d_backward_with_zero_gradient_pixels_matches_loops(cfg, zero_fraction, relu):
    """im2col's backward pass skips output pixels whose gradient is 0 in every channel
    (runs of them, whole blocks, whole images): the gradients are still the loops'."""
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["shape"]).astype(cfg["dtype"])
    w = rng.standard_normal(cfg["kernel"]).astype(cfg["dtype"])
    geometry = (cfg["strides"], cfg["padding"], cfg["dilation"])
    pad = _explicit(cfg["padding"], cfg["shape"], cfg["kernel"], cfg["strides"], cfg["dilation"])
    grad_y = rng.standard_normal(ref.conv2d(x, w, None, cfg["strides"], pad,
                                            cfg["dilation"]).shape).astype(cfg["dtype"])
    grad_y[rng.random(grad_y.shape[:3]) < zero_fraction] = 0
    grad_y[..., 0][rng.random(grad_y.shape[:3]) < 0.3] = 0  # rows zero but for a channel
    relu_output = None
    if relu:  # a ReLU output that zeroes some whole pixels and some single channels
        relu_output = np.where(rng.random(grad_y.shape) < 0.5, 0, 1).astype(cfg["dtype"])
        relu_output[rng.random(grad_y.shape[:3]) < 0.3] = 0
    got = at_one_and_two_threads(lambda: kernels.conv2d_backward(
        x, w, grad_y, *geometry, relu_output=relu_output, algorithm="im2col"))
    masked = grad_y if relu_output is None else np.where(relu_output > 0, grad_y, 0)
    for got, want in zip(got, ref.conv2d_backward(x, w, masked, cfg["strides"], pad,
                                                 cfg["dilation"])):
        np.testing.assert_allclose(got, want, **TOLERANCE[cfg["dtype"]])


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_conv2d_backward_keeps_nan_of_zero_gradient_times_nonfinite(rng, bad):
    """0 * Inf is NaN: a non-finite input or kernel value that only zero-gradient pixels
    read still makes NaN in the gradients, as the loops (and PyTorch) make it."""
    x = rng.standard_normal((2, 7, 7, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    grad_y = rng.standard_normal((2, 5, 5, 4))
    grad_y[:, 4, :, :] = 0  # the last output row, the only one to read input row 6
    grad_y[:, :, 4, :] = 0
    x[1, 6, 6, 2] = bad
    pad = ((0, 0), (0, 0))
    expected = ref.conv2d_backward(x, w, grad_y, (1, 1), pad, (1, 1))
    assert np.isnan(expected[1]).any()
    for got, want in zip(kernels.conv2d_backward(x, w, grad_y, algorithm="im2col"), expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want)
    x[1, 6, 6, 2] = 0
    w[2, 2, 1, 3] = bad
    expected = ref.conv2d_backward(x, w, grad_y, (1, 1), pad, (1, 1))
    assert np.isnan(expected[0]).any()
    for got, want in zip(kernels.conv2d_backward(x, w, grad_y, algorithm="im2col"), expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want)


@pytest.mark.parametrize("padding", ["valid", "same", ((2, 0), (1, 3))])
def test_conv2d_gradients_match_finite_differences(rng, padding):
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    b = rng.standard_normal(4)
    grad_y = rng.standard_normal(kernels.conv2d(x, w, b, (2, 1), padding, (1, 2)).shape)

    def loss(x_, w_, b_):
        return float(np.sum(kernels.conv2d(x_, w_, b_, (2, 1), padding, (1, 2)) * grad_y))

    gx, gw, gb = kernels.conv2d_backward(x, w, grad_y, (2, 1), padding, (1, 2))
    np.testing.assert_allclose(gx, numerical_gradient(lambda v: loss(v, w, b), x), atol=1e-6)
    np.testing.assert_allclose(gw, numerical_gradient(lambda v: loss(x, v, b), w), atol=1e-6)
    np.testing.assert_allclose(gb, numerical_gradient(lambda v: loss(x, w, v), b), atol=1e-6)


@pytest.mark.parametrize("channels", [1, 8, 20])
@pytest.mark.parametrize("dilation", [1, 2])
def test_conv2d_short_and_long_kernel_rows_match_loops(rng, channels, dilation):
    """im2col moves a kernel row of up to 16 floats by hand and a longer one with memcpy
    (as one piece at dilation 1 inside the image, else cell by cell): every case, and the
    padding around them, against the loops."""
    x = rng.standard_normal((2, 7, 9, channels))
    w = rng.standard_normal((3, 3, channels, 5))
    pad = ((2, 1), (1, 2))
    grad_y = rng.standard_normal(ref.conv2d(x, w, None, (1, 1), pad, (dilation,) * 2).shape)
    np.testing.assert_allclose(kernels.conv2d(x, w, None, 1, pad, dilation),
                               ref.conv2d(x, w, None, (1, 1), pad, (dilation,) * 2))
    for got, want in zip(kernels.conv2d_backward(x, w, grad_y, 1, pad, dilation),
                         ref.conv2d_backward(x, w, grad_y, (1, 1), pad, (dilation,) * 2)):
        np.testing.assert_allclose(got, want)


def test_conv2d_pointwise_shortcut_matches_loops(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    w = rng.standard_normal((1, 1, 6, 2))
    grad_y = rng.standard_normal((3, 4, 5, 2))
    pad = ((0, 0), (0, 0))
    np.testing.assert_allclose(kernels.conv2d(x, w), ref.conv2d(x, w, None, (1, 1), pad, (1, 1)))
    for got, want in zip(kernels.conv2d_backward(x, w, grad_y),
                         ref.conv2d_backward(x, w, grad_y, (1, 1), pad, (1, 1))):
        np.testing.assert_allclose(got, want)


def test_conv2d_fused_relu_keeps_nan_like_pytorch():
    x = np.array([np.nan, 1.0, -1.0]).reshape(3, 1, 1, 1)
    y = kernels.conv2d(x, np.ones((1, 1, 1, 1)), np.zeros(1), relu=True)
    np.testing.assert_array_equal(y.ravel(), [np.nan, 1.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_passes_gradient_where_output_is_positive(rng, dtype):
    y = np.maximum(rng.standard_normal((3, 50_000)), 0).astype(dtype)  # several chunks
    y[0, :3] = [np.nan, 0.0, 1e-30]
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    grad_z, = at_one_and_two_threads(lambda: (kernels.relu_backward(y, grad_y),))
    want = np.array([[g if v > 0 else 0.0 for v, g in zip(row_y, row_g)]
                     for row_y, row_g in zip(y, grad_y)], dtype)
    np.testing.assert_array_equal(grad_z, want)


@pytest.mark.parametrize("block_bytes, partials, min_rows",
                         [(1, 2, 64), (200, 3, 64), (1 << 20, 16, 64), (1 << 20, 16, 1)])
def test_conv2d_blocks_and_partials_match_loops(rng, monkeypatch, block_bytes, partials,
                                                min_rows):
    """Blocks of one pixel, blocks that straddle images (64 pixels, or 16 blocks of 12),
    and fewer partial sums than images: every way of cutting the work must give the same
    numbers, at 1 and 2 threads alike."""
    monkeypatch.setattr(kernels, "COLUMN_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(kernels, "MAX_GRADIENT_PARTIALS", partials)
    monkeypatch.setattr(kernels, "MIN_BLOCK_ROWS", min_rows)
    x = rng.standard_normal((5, 6, 6, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    grad_y = rng.standard_normal((5, 6, 6, 3))
    pad = ((1, 1), (1, 1))
    relu_output = np.maximum(rng.standard_normal(grad_y.shape), 0)
    y, *grads = at_one_and_two_threads(
        lambda: (kernels.conv2d(x, w, padding=1), *kernels.conv2d_backward(x, w, grad_y, padding=1),
                 *kernels.conv2d_backward(x, w, grad_y, padding=1, relu_output=relu_output)))
    np.testing.assert_allclose(y, ref.conv2d(x, w, None, (1, 1), pad, (1, 1)))
    masked = np.where(relu_output > 0, grad_y, 0)
    expected = (*ref.conv2d_backward(x, w, grad_y, (1, 1), pad, (1, 1)),
                *ref.conv2d_backward(x, w, masked, (1, 1), pad, (1, 1)))
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want)


def naive_matmul(a, b):
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            for k in range(a.shape[1]):
                out[i, j] += float(a[i, k]) * float(b[k, j])
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", [(70, 5, 3), (3, 5, 70), (5, 70, 3), (4, 37, 6), (1, 1, 1),
                                     (40, 33, 40)])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("split_k_max_output", [1 << 16, 0])
def test_matmul_matches_loops_in_any_layout(rng, monkeypatch, dtype, m, k, n, trans_a, trans_b,
                                            split_k_max_output):
    """Blocks along rows (m >= n), columns, or the inner dimension (k > m, n and a small
    output; the last block shorter), stored operands or transposed views."""
    monkeypatch.setattr(kernels, "MATMUL_MIN_BLOCK", 4)
    monkeypatch.setattr(kernels, "MATMUL_SPLIT_K_MAX_OUTPUT", split_k_max_output)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    a, b = (a.T if trans_a else a), (b.T if trans_b else b)
    out, = at_one_and_two_threads(lambda: (kernels.matmul(a, b),))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, naive_matmul(a, b), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("piece", [1, 2, 3, 64])
def test_gemm_cuts_a_product_into_pieces_blas_can_take(rng, dtype, trans_a, trans_b, piece):
    """gemm makes a product with m, n or k past BLAS's int in pieces of at most 2**31 - 1;
    the same code at a piece of a few rows, columns and inner elements, against the loops:
    C's pieces side by side, the inner ones added onto beta * C."""
    m, k, n = 7, 5, 6
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = naive_matmul(a.T if trans_a else a, b.T if trans_b else b) + 0.5 * c
    linalg.matmul_in_pieces(a, trans_a, b, trans_b, dtype(0.5), c, piece)
    np.testing.assert_allclose(c, expected, **TOLERANCE[dtype])


def test_gemm_with_an_empty_inner_dimension_still_scales_c_by_beta():
    c = np.ones((3, 2))
    linalg.matmul_in_pieces(np.zeros((3, 0)), False, np.zeros((0, 2)), False, 2.0, c, 2)
    np.testing.assert_array_equal(c, 2)


@needs_address_space
def test_matmul_past_2_31_elements_in_a_child_interpreter(tmp_path):
    """A (65600, 36000) float32 operand: its blocks start past element 2**31, which
    overflowed a C int and crashed. Zero pages (but its last row), so no 9 GB is used."""
    result = run_python("""
        import numpy as np
        from convnet import kernels
        a = np.zeros((65600, 36000), np.float32)
        a[-1] = 1
        b = np.ones((36000, 2), np.float32)
        out = kernels.matmul(a, b)
        assert (out[:-1] == 0).all() and (out[-1] == 36000).all(), out[-3:]
        print("ok")
    """, tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_an_operand_it_reads_gives_the_product(rng, dtype):
    """out=a used to be overwritten while it was still read, block after block (max error
    29). Big enough for several blocks; NumPy's float64 product is the reference."""
    a = rng.standard_normal((48, 48)).astype(dtype)
    b = rng.standard_normal((48, 48)).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    into_a, into_b = a.copy(), b.copy()
    np.testing.assert_allclose(kernels.matmul(into_a, b, out=into_a), a64 @ b64,
                               **TOLERANCE[dtype])
    np.testing.assert_allclose(kernels.matmul(a, into_b, out=into_b), a64 @ b64,
                               **TOLERANCE[dtype])
    # out overlapping a transposed view of itself, and a part of an operand.
    c = a.copy()
    np.testing.assert_allclose(kernels.matmul(c.T, b, out=c), a64.T @ b64, **TOLERANCE[dtype])
    both = np.concatenate([a, b])
    np.testing.assert_allclose(kernels.matmul(both[:48], both[48:], out=both[48:]),
                               a64 @ b64, **TOLERANCE[dtype])


@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pads = ((draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))),
            (draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))))
    h = draw(st.integers(max(1, kh - sum(pads[0])), 9))
    w = draw(st.integers(max(1, kw - sum(pads[1])), 9))
    form = draw(st.sampled_from(["explicit", "same", "valid"]))
    padding = {"explicit": pads, "same": "same", "valid": "valid"}[form]
    if form == "valid" and (h < kh or w < kw):
        padding = pads
    return dict(shape=(draw(st.integers(1, 3)), h, w, draw(st.integers(1, 5))),
                pool=(kh, kw), strides=(sh, sw), padding=padding,
                ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 99)))


@settings(max_examples=PROPERTY_EXAMPLES)
@given(pool_configs())
def test_pooling_forward_and_backward_match_loops(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["shape"]).astype(cfg["dtype"])
    pad = kernels.resolve_padding(cfg["padding"], cfg["pool"], cfg["strides"], (1, 1),
                              cfg["shape"][1:3], "test")
    common = dict(pool_size=cfg["pool"], strides=cfg["strides"], padding=cfg["padding"],
                  ceil_mode=cfg["ceil_mode"])
    tol = TOLERANCE[cfg["dtype"]]

    want_y, where = ref.max_pool2d(x, cfg["pool"], cfg["strides"], pad, cfg["ceil_mode"])
    grad_y = rng.standard_normal(want_y.shape).astype(cfg["dtype"])
    cip = cfg["count_include_pad"]

    def compute():
        y, argmax = kernels.max_pool2d(x, **common)
        y_inference, no_argmax = kernels.max_pool2d(x, with_argmax=False, **common)
        assert no_argmax is None
        avg = kernels.avg_pool2d(x, count_include_pad=cip, **common)
        return (y, y_inference, argmax, kernels.max_pool2d_backward(grad_y, argmax, x.shape), avg,
                kernels.avg_pool2d_backward(grad_y, x.shape, count_include_pad=cip, **common))

    y, y_inference, _, grad_max, avg, grad_avg = at_one_and_two_threads(compute)
    np.testing.assert_array_equal(y, want_y.astype(cfg["dtype"]))
    np.testing.assert_array_equal(y_inference, want_y.astype(cfg["dtype"]))
    np.testing.assert_allclose(grad_max, ref.max_pool2d_backward(x.shape, where, grad_y), **tol)
    np.testing.assert_allclose(
        avg, ref.avg_pool2d(x, cfg["pool"], cfg["strides"], pad, cfg["ceil_mode"], cip), **tol)
    np.testing.assert_allclose(
        grad_avg, ref.avg_pool2d_backward(x.shape, grad_y, cfg["pool"], cfg["strides"], pad,
                                          cfg["ceil_mode"], cip), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_propagates_nan_and_routes_like_pytorch(dtype):
    x = np.array([1.0, np.nan, 3.0, np.nan, -np.inf, -np.inf, 2.0, 0.5],
                 dtype=dtype).reshape(1, 2, 4, 1)
    y, argmax = kernels.max_pool2d(x, (1, 2))
    # A window with a NaN gives NaN; the last NaN wins; an all -inf window gives -inf
    # and routes its gradient to the window's first cell.
    np.testing.assert_array_equal(y.ravel(), np.array([np.nan, np.nan, -np.inf, 2.0], dtype))
    np.testing.assert_array_equal(argmax.ravel(), [1, 3, 4, 6])
    np.testing.assert_array_equal(kernels.max_pool2d(x, (1, 2), with_argmax=False)[0], y)
    grad_x = kernels.max_pool2d_backward(np.ones_like(y), argmax, x.shape)
    np.testing.assert_array_equal(grad_x.ravel(), [0, 1, 0, 1, 1, 0, 1, 0])


def test_max_pool_ties_go_to_the_first_cell():
    x = np.full((1, 2, 2, 1), 7.0)
    grad_x = kernels.max_pool2d_backward(np.ones((1, 1, 1, 1)), kernels.max_pool2d(x, 2)[1], x.shape)
    np.testing.assert_array_equal(grad_x.ravel(), [1, 0, 0, 0])


def test_global_pooling_matches_numpy(rng):
    x = rng.standard_normal((3, 5, 4, 6))
    np.testing.assert_allclose(kernels.global_avg_pool2d(x), x.mean(axis=(1, 2)))
    grad_y = rng.standard_normal((3, 6))
    np.testing.assert_allclose(kernels.global_avg_pool2d_backward(grad_y, x.shape),
                               np.broadcast_to(grad_y[:, None, None, :] / 20, x.shape))
    y, argmax = kernels.global_max_pool2d(x)
    np.testing.assert_array_equal(y, x.max(axis=(1, 2)))
    expected = (x == x.max(axis=(1, 2), keepdims=True)) * grad_y[:, None, None, :]
    np.testing.assert_array_equal(kernels.global_max_pool2d_backward(grad_y, argmax, x.shape),
                                  expected)


def test_pooling_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 7, 6, 3))
    grad_y = rng.standard_normal(kernels.avg_pool2d(x, 3, 2, 1, ceil_mode=True).shape)
    numeric = numerical_gradient(
        lambda v: float(np.sum(kernels.avg_pool2d(v, 3, 2, 1, ceil_mode=True) * grad_y)), x)
    np.testing.assert_allclose(kernels.avg_pool2d_backward(grad_y, x.shape, 3, 2, 1, True), numeric,
                               atol=1e-7)
    y, argmax = kernels.max_pool2d(x, 3, 2, 1)
    grad_y = rng.standard_normal(y.shape)
    numeric = numerical_gradient(lambda v: float(np.sum(kernels.max_pool2d(v, 3, 2, 1)[0] * grad_y)),
                                 x)
    np.testing.assert_allclose(kernels.max_pool2d_backward(grad_y, argmax, x.shape), numeric,
                               atol=1e-7)


def _all_kernels(rng, dtype):
    # 20 images: 14 forward blocks and 16 gradient partials of uneven size, and products
    # cut along k, rows and columns, so that 3 and 16 threads split the work differently.
    x = rng.standard_normal((20, 13, 11, 5)).astype(dtype)
    w = rng.standard_normal((3, 3, 5, 7)).astype(dtype)
    y = kernels.conv2d(x, w, None, 2, "same", 1)
    grads = kernels.conv2d_backward(x, w, np.ones_like(y) * 0.1, 2, "same", 1)
    y_relu = kernels.conv2d(x, w, None, 2, "same", 1, relu=True)
    relu_grads = kernels.conv2d_backward(x, w, y, 2, "same", 1, relu_output=y_relu)
    pooled, argmax = kernels.max_pool2d(x, 3, 2, "same")
    averaged = kernels.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    a = rng.standard_normal((40, 700)).astype(dtype)
    b = rng.standard_normal((700, 30)).astype(dtype)
    return [y, *grads, y_relu, *relu_grads, pooled, argmax,
            kernels.max_pool2d_backward(pooled, argmax, x.shape),
            averaged, kernels.avg_pool2d_backward(averaged, x.shape, 3, 2, 1),
            kernels.matmul(a, b), kernels.matmul(a.T, a[:, :30]), kernels.matmul(b.T[:, :40], a)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [2, 3, 16])
def test_results_are_bit_identical_at_any_thread_count(threads, monkeypatch, dtype, count):
    """More threads than this machine's cores (set_num_threads' bound, lifted here) is fine:
    only the split of the work changes."""
    monkeypatch.setattr(_threads, "available_cpus", lambda: 16)
    convnet.set_num_threads(1)
    single = _all_kernels(np.random.default_rng(5), dtype)
    convnet.set_num_threads(count)
    several = _all_kernels(np.random.default_rng(5), dtype)
    for a, b in zip(single, several):
        assert a.tobytes() == b.tobytes()


def test_read_only_and_strided_inputs_are_accepted(rng):
    x = rng.standard_normal((2, 8, 8, 3))
    w = rng.standard_normal((3, 3, 3, 2))
    expected = ref.conv2d(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1))
    x.flags.writeable = False
    w.flags.writeable = False
    np.testing.assert_allclose(kernels.conv2d(x, w), expected)
    flipped = np.ascontiguousarray(x[:, ::-1])[:, ::-1]       # a negative-stride view of x
    np.testing.assert_allclose(kernels.conv2d(flipped, w), expected)
    big_endian = x.astype(">f8")
    np.testing.assert_allclose(kernels.conv2d(big_endian, w), expected)


def test_big_endian_and_strided_weights_are_copied(rng):
    x = rng.standard_normal((2, 6, 6, 3))
    w = rng.standard_normal((3, 3, 3, 2))
    b = rng.standard_normal(4)[::2]                     # a strided bias
    expected = ref.conv2d(x, w, b, (1, 1), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_allclose(kernels.conv2d(x, w, b), expected)
    y = kernels.conv2d(x, w.astype(">f8"), b.astype(">f8"), relu=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, np.maximum(expected, 0))
    grad_y = rng.standard_normal(y.shape)
    want = ref.conv2d_backward(x, w, np.where(y > 0, grad_y, 0), (1, 1), ((0, 0), (0, 0)),
                               (1, 1))
    got = kernels.conv2d_backward(x, w.astype(">f8"), grad_y.astype(">f8"),
                                  relu_output=y.astype(">f8"))
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e)
    np.testing.assert_array_equal(kernels.relu_backward(y.astype(">f8"), grad_y.astype(">f8")),
                                  np.where(y > 0, grad_y, 0))
    a, c = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(kernels.matmul(a.astype(">f8"), c.astype(">f8")),
                               naive_matmul(a, c))


@pytest.mark.parametrize("dtype", [np.int32, np.float16, ">f4", ">f8", "<f8", bool])
def test_pooling_casts_or_copies_any_real_input(rng, dtype):
    """Integers, bools and float16 become float32; float32/float64 of either byte order
    keep their precision. Forward and backward, against the loops."""
    x = (rng.standard_normal((2, 5, 6, 3)) * 4).astype(dtype)
    want_dtype = np.dtype(dtype).newbyteorder("=") if np.dtype(dtype).kind == "f" \
        and np.dtype(dtype).itemsize >= 4 else np.dtype(np.float32)
    exact = x.astype(np.float64)
    pad = ((1, 1), (0, 1))
    y, argmax = kernels.max_pool2d(x, 2, 2, pad, ceil_mode=True)
    want, where = ref.max_pool2d(exact, (2, 2), (2, 2), pad, ceil_mode=True)
    assert y.dtype == want_dtype
    np.testing.assert_array_equal(y, want.astype(want_dtype))
    grad_y = (rng.standard_normal(y.shape) * 4).astype(dtype)
    grad_x = kernels.max_pool2d_backward(grad_y, argmax.astype(">i4"), x.shape)
    np.testing.assert_allclose(grad_x, ref.max_pool2d_backward(x.shape, where,
                                                               grad_y.astype(np.float64)),
                               rtol=1e-6)
    avg = kernels.avg_pool2d(x, 3, 1, 1)
    assert avg.dtype == want_dtype
    np.testing.assert_allclose(avg, ref.avg_pool2d(exact, (3, 3), (1, 1), ((1, 1), (1, 1))),
                               rtol=1e-5, atol=1e-5)
    grad_avg = (rng.standard_normal(avg.shape) * 4).astype(dtype)
    np.testing.assert_allclose(kernels.avg_pool2d_backward(grad_avg, x.shape, 3, 1, 1),
                               ref.avg_pool2d_backward(x.shape, grad_avg.astype(np.float64),
                                                       (3, 3), (1, 1), ((1, 1), (1, 1))),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kernels.global_avg_pool2d(x), exact.mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-5)


def test_uint8_input_is_cast_exactly():
    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1) * 7
    y, _ = kernels.max_pool2d(x, 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, ref.max_pool2d(x.astype(np.float64), (2, 2), (2, 2),
                                                    ((0, 0), (0, 0)))[0])


def test_set_num_threads_rejects_bad_values(threads):
    for bad in (0, -1):
        with pytest.raises(ValueError, match=">= 1"):
            convnet.set_num_threads(bad)
    for bad in (1.5, "2", True, None):
        with pytest.raises(TypeError, match="int"):
            convnet.set_num_threads(bad)
    convnet.set_num_threads(np.int64(1))
    assert convnet.get_num_threads() == 1


def test_set_num_threads_is_bounded_by_the_cpus_available(threads, monkeypatch):
    """Past the CPUs this process may use, the count is clipped with a warning: 10**6
    threads crashed libgomp, a thousand exhausted memory."""
    monkeypatch.setattr(_threads, "available_cpus", lambda: 3)
    convnet.set_num_threads(3)
    assert convnet.get_num_threads() == 3
    for asked in (4, 10 ** 6):
        with pytest.warns(RuntimeWarning, match=f"{asked} threads asked for.* 3 CPUs"):
            convnet.set_num_threads(asked)
        assert convnet.get_num_threads() == 3


def test_available_cpus_follows_the_affinity_mask_and_cgroup_quota(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity masks on this platform")
    mask = len(os.sched_getaffinity(0))
    quota = _threads._cgroup_cpu_quota()
    assert _threads.available_cpus() == (mask if quota is None else max(1, min(mask, quota)))
    monkeypatch.setattr(_threads, "_cgroup_cpu_quota", lambda: 1)
    assert _threads.available_cpus() == 1
