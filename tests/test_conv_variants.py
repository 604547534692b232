"""Grouped, depthwise and transposed convolutions in convnet.kernels against plain NumPy
loops (tests/reference.py), finite differences and, where importable, Keras itself."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convnet import kernels
from convnet.utils import numerical_gradient

import reference as ref
from conftest import TOLERANCE, at_1_2_3_threads

DTYPES = [np.float32, np.float64]


def assert_close(got, want, dtype):
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **TOLERANCE[dtype])


@st.composite
def window_configs(draw, channels, filters):
    """A window, strides, dilation, a padding form and an input that fits them, with
    `channels` and `filters` drawn by the given strategies."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    min_h = max(1, dh * (kh - 1) + 1 - sum(pads[0]))
    min_w = max(1, dw * (kw - 1) + 1 - sum(pads[1]))
    h, w = draw(st.integers(min_h, min_h + 6)), draw(st.integers(min_w, min_w + 6))
    form = draw(st.sampled_from(["explicit", "same", "valid"]))
    padding = {"explicit": pads, "same": "same", "valid": "valid"}[form]
    if form == "valid" and (h < dh * (kh - 1) + 1 or w < dw * (kw - 1) + 1):
        padding = pads
    c, f = draw(channels), draw(filters)
    explicit = kernels.resolve_padding(padding, (kh, kw), (sh, sw), (dh, dw), (h, w), "test")
    return dict(shape=(draw(st.integers(1, 3)), h, w, c), window=(kh, kw), strides=(sh, sw),
                dilation=(dh, dw), padding=padding, explicit=explicit, filters=f,
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 99)))


# ----------------------------------------------------------------------------- grouped


@given(window_configs(st.integers(1, 3), st.integers(1, 3)), st.integers(1, 4))
def test_grouped_conv2d_forward_and_backward_match_per_group_loops(cfg, groups):
    rng = np.random.default_rng(cfg["seed"])
    dtype, stride, dilation = cfg["dtype"], cfg["strides"], cfg["dilation"]
    per_group = cfg["shape"][3]
    x = rng.standard_normal((*cfg["shape"][:3], per_group * groups)).astype(dtype)
    w = rng.standard_normal((*cfg["window"], per_group, cfg["filters"] * groups)).astype(dtype)
    b = rng.standard_normal(w.shape[3]).astype(dtype)
    expected = ref.grouped_conv2d(x, w, b, stride, cfg["explicit"], dilation, groups)
    grad_y = rng.standard_normal(expected.shape).astype(dtype)
    geometry = (stride, cfg["padding"], dilation)
    y, y_relu, gx, gw, gb, gx_only = at_1_2_3_threads(lambda: (
        kernels.conv2d(x, w, b, *geometry, groups=groups),
        kernels.conv2d(x, w, b, *geometry, relu=True, groups=groups),
        *kernels.conv2d_backward(x, w, grad_y, *geometry, groups=groups),
        kernels.conv2d_backward_input(grad_y, w, x.shape, *geometry, groups=groups)))
    assert_close(y, expected, dtype)
    assert_close(y_relu, np.maximum(expected, 0), dtype)
    want = ref.grouped_conv2d_backward(x, w, grad_y, stride, cfg["explicit"], dilation, groups)
    for got, expect in zip((gx, gw, gb), want):
        assert_close(got, expect, dtype)
    assert_close(gx_only, want[0], dtype)

    masked = np.where(y_relu > 0, grad_y, 0)
    relu_grads = at_1_2_3_threads(lambda: kernels.conv2d_backward(
        x, w, grad_y, *geometry, relu_output=y_relu, groups=groups))
    for got, expect in zip(relu_grads, ref.grouped_conv2d_backward(
            x, w, masked, stride, cfg["explicit"], dilation, groups)):
        assert_close(got, expect, dtype)


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_pointwise_conv2d_matches_per_group_loops(rng, groups):
    """A 1x1 stride-1 kernel multiplies the input rows in place: each group reads its
    channels at an offset within the row."""
    x = rng.standard_normal((3, 4, 5, 8))
    w = rng.standard_normal((1, 1, 8 // groups, 8))
    pad = ((0, 0), (0, 0))
    grad_y = rng.standard_normal((3, 4, 5, 8))
    np.testing.assert_allclose(kernels.conv2d(x, w, groups=groups),
                               ref.grouped_conv2d(x, w, None, (1, 1), pad, (1, 1), groups))
    want = ref.grouped_conv2d_backward(x, w, grad_y, (1, 1), pad, (1, 1), groups)
    for got, expect in zip(kernels.conv2d_backward(x, w, grad_y, groups=groups), want):
        np.testing.assert_allclose(got, expect)
    np.testing.assert_allclose(kernels.conv2d_backward_input(grad_y, w, x.shape, groups=groups),
                               want[0])


def test_grouped_conv2d_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 5, 6, 4))
    w = rng.standard_normal((3, 2, 2, 6))
    b = rng.standard_normal(6)
    args = ((2, 1), "same", (1, 2))
    grad_y = rng.standard_normal(kernels.conv2d(x, w, b, *args, groups=2).shape)

    def loss(x_, w_, b_):
        return float(np.sum(kernels.conv2d(x_, w_, b_, *args, groups=2) * grad_y))

    gx, gw, gb = kernels.conv2d_backward(x, w, grad_y, *args, groups=2)
    np.testing.assert_allclose(gx, numerical_gradient(lambda v: loss(v, w, b), x), atol=1e-6)
    np.testing.assert_allclose(gw, numerical_gradient(lambda v: loss(x, v, b), w), atol=1e-6)
    np.testing.assert_allclose(gb, numerical_gradient(lambda v: loss(x, w, v), b), atol=1e-6)


# ----------------------------------------------------------------------------- depthwise


@given(window_configs(st.sampled_from([1, 3, 16, 20]), st.integers(1, 3)))
def test_depthwise_conv2d_forward_and_backward_match_per_channel_loops(cfg):
    """Channel counts below, at and past the 16-channel register chunks, and depth
    multipliers 1 (the chunked loops) to 3."""
    rng = np.random.default_rng(cfg["seed"])
    dtype, stride, dilation = cfg["dtype"], cfg["strides"], cfg["dilation"]
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    w = rng.standard_normal((*cfg["window"], cfg["shape"][3], cfg["filters"])).astype(dtype)
    b = rng.standard_normal(w.shape[2] * w.shape[3]).astype(dtype)
    expected = ref.depthwise_conv2d(x, w, b, stride, cfg["explicit"], dilation)
    grad_y = rng.standard_normal(expected.shape).astype(dtype)
    geometry = (stride, cfg["padding"], dilation)
    y, y_plain, gx, gw, gb = at_1_2_3_threads(lambda: (
        kernels.depthwise_conv2d(x, w, b, *geometry),
        kernels.depthwise_conv2d(x, w, None, *geometry),
        *kernels.depthwise_conv2d_backward(x, w, grad_y, *geometry)))
    assert_close(y, expected, dtype)
    assert_close(y_plain, expected - b, dtype)
    want = ref.depthwise_conv2d_backward(x, w, grad_y, stride, cfg["explicit"], dilation)
    for got, expect in zip((gx, gw, gb), want):
        assert_close(got, expect, dtype)
    no_input_grad = kernels.depthwise_conv2d_backward(x, w, grad_y, *geometry,
                                                      need_input_grad=False)
    assert no_input_grad[0] is None
    assert no_input_grad[1].tobytes() == gw.tobytes()


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv2d_gradients_match_finite_differences(rng, multiplier):
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3, 3, 3, multiplier))
    b = rng.standard_normal(3 * multiplier)
    args = ((2, 1), ((1, 2), (0, 1)), (1, 2))
    grad_y = rng.standard_normal(kernels.depthwise_conv2d(x, w, b, *args).shape)

    def loss(x_, w_, b_):
        return float(np.sum(kernels.depthwise_conv2d(x_, w_, b_, *args) * grad_y))

    gx, gw, gb = kernels.depthwise_conv2d_backward(x, w, grad_y, *args)
    np.testing.assert_allclose(gx, numerical_gradient(lambda v: loss(v, w, b), x), atol=1e-6)
    np.testing.assert_allclose(gw, numerical_gradient(lambda v: loss(x, v, b), w), atol=1e-6)
    np.testing.assert_allclose(gb, numerical_gradient(lambda v: loss(x, w, v), b), atol=1e-6)


def test_separable_conv2d_composes_depthwise_and_pointwise(rng):
    """SeparableConv2D is a depthwise conv then a 1x1 conv (with the bias): both pieces,
    forward and backward, against the loops."""
    x = rng.standard_normal((2, 7, 6, 3))
    depthwise = rng.standard_normal((3, 3, 3, 2))
    pointwise = rng.standard_normal((1, 1, 6, 4))
    b = rng.standard_normal(4)
    pad = ((1, 1), (1, 1))
    z = kernels.depthwise_conv2d(x, depthwise, None, 1, "same")
    y = kernels.conv2d(z, pointwise, b)
    zero = ((0, 0), (0, 0))
    want_z = ref.depthwise_conv2d(x, depthwise, None, (1, 1), pad, (1, 1))
    np.testing.assert_allclose(y, ref.conv2d(want_z, pointwise, b, (1, 1), zero, (1, 1)))
    grad_y = rng.standard_normal(y.shape)
    grad_z, grad_pointwise, grad_b = kernels.conv2d_backward(z, pointwise, grad_y)
    grad_x, grad_depthwise, _ = kernels.depthwise_conv2d_backward(x, depthwise, grad_z, 1, "same")
    want_gz, want_gp, want_gb = ref.conv2d_backward(want_z, pointwise, grad_y, (1, 1), zero,
                                                    (1, 1))
    want_gx, want_gd, _ = ref.depthwise_conv2d_backward(x, depthwise, want_gz, (1, 1), pad,
                                                        (1, 1))
    for got, want in ((grad_pointwise, want_gp), (grad_b, want_gb), (grad_x, want_gx),
                      (grad_depthwise, want_gd)):
        np.testing.assert_allclose(got, want)


# ----------------------------------------------------------------------------- transposed


def keras_transpose_length(n, k, s, padding, output_padding, d):
    """Keras' documented output length of a transposed convolution."""
    span = d * (k - 1) + 1
    if padding == "valid":
        return (n - 1) * s + span + (max(span, s) - span if output_padding is None
                                     else output_padding)
    return n * s if output_padding is None else (n - 1) * s + span % 2 + output_padding


@st.composite
def transpose_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same"]))
    output_padding = draw(st.one_of(st.none(), st.tuples(st.integers(0, sh - 1),
                                                         st.integers(0, sw - 1))))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)),
             draw(st.integers(1, 4)))
    if padding == "same" and output_padding is not None and 1 in shape[1:3]:
        # An even kernel, output_padding 0 and one input row would make an empty output.
        output_padding = None
    out_hw = tuple(keras_transpose_length(n, k, s, padding,
                                          None if output_padding is None else output_padding[i], d)
                   for i, (n, k, s, d) in enumerate(zip(shape[1:3], (kh, kw), (sh, sw),
                                                        (dh, dw))))
    return dict(shape=shape, kernel=(kh, kw, draw(st.integers(1, 4)), shape[3]),
                strides=(sh, sw), dilation=(dh, dw), padding=padding,
                output_padding=output_padding, out_hw=out_hw,
                dtype=draw(st.sampled_from(DTYPES)), seed=draw(st.integers(0, 99)))


def _crop(cfg):
    """Keras' crop of the full output, from its "same" padding rule (0 for "valid")."""
    crops = []
    for i, (k, s, d) in enumerate(zip(cfg["kernel"][:2], cfg["strides"], cfg["dilation"])):
        span = d * (k - 1) + 1
        if cfg["padding"] == "valid":
            crops.append(0)
            continue
        op = None if cfg["output_padding"] is None else cfg["output_padding"][i]
        total = s + span - 2 if op is None else span + span % 2 - 2 + op
        crops.append(span - 1 - min(total // 2 + total % 2, span - 1))
    return crops


@given(transpose_configs())
def test_conv2d_transpose_forward_and_backward_match_loops(cfg):
    rng = np.random.default_rng(cfg["seed"])
    dtype = cfg["dtype"]
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    w = rng.standard_normal(cfg["kernel"]).astype(dtype)
    b = rng.standard_normal(w.shape[2]).astype(dtype)
    crop = _crop(cfg)
    expected = ref.conv2d_transpose(x, w, b, cfg["strides"], cfg["dilation"], cfg["out_hw"], crop)
    grad_y = rng.standard_normal(expected.shape).astype(dtype)
    args = (cfg["strides"], cfg["padding"], cfg["output_padding"], cfg["dilation"])
    y, y_relu, gx, gw, gb = at_1_2_3_threads(lambda: (
        kernels.conv2d_transpose(x, w, b, *args),
        kernels.conv2d_transpose(x, w, b, *args, relu=True),
        *kernels.conv2d_transpose_backward(x, w, grad_y, *args)))
    assert y.shape == (cfg["shape"][0], *cfg["out_hw"], w.shape[2])
    assert_close(y, expected, dtype)
    assert_close(y_relu, np.maximum(expected, 0), dtype)
    want = ref.conv2d_transpose_backward(x, w, grad_y, cfg["strides"], cfg["dilation"], crop)
    for got, expect in zip((gx, gw, gb), want):
        assert_close(got, expect, dtype)

    masked = np.where(y_relu > 0, grad_y, 0)
    relu_grads = kernels.conv2d_transpose_backward(x, w, grad_y, *args, relu_output=y_relu)
    for got, expect in zip(relu_grads, ref.conv2d_transpose_backward(
            x, w, masked, cfg["strides"], cfg["dilation"], crop)):
        assert_close(got, expect, dtype)


@pytest.mark.parametrize("padding, output_padding", [("valid", None), ("valid", (1, 0)),
                                                     ("same", None), ("same", (0, 1))])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(rng, padding, output_padding):
    """<conv2d(z), x> = <z, conv2d_transpose(x)> for the convolution of z (the transposed
    output's shape) whose padding before is Keras' crop; rows of z past the last window
    are never read, so they are cut instead of padding by a negative amount."""
    x = rng.standard_normal((2, 4, 3, 3))
    w = rng.standard_normal((3, 2, 5, 3))
    cfg = dict(kernel=w.shape, strides=(2, 3), dilation=(1, 1), padding=padding,
               output_padding=output_padding)
    y = kernels.conv2d_transpose(x, w, None, (2, 3), padding, output_padding)
    z = rng.standard_normal(y.shape)
    (top, left), pads, cut = _crop(cfg), [], []
    for axis, (n, k, s, before) in enumerate(zip(x.shape[1:3], w.shape[:2], (2, 3), (top, left))):
        after = (n - 1) * s + k - before - y.shape[1 + axis]
        pads.append((before, max(after, 0)))
        cut.append(y.shape[1 + axis] + min(after, 0))
    conv = ref.conv2d(z[:, :cut[0], :cut[1]], w, None, (2, 3), tuple(pads), (1, 1))
    assert conv.shape == x.shape
    np.testing.assert_allclose(np.sum(conv * x), np.sum(z * y))


def test_conv2d_transpose_gradients_match_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4, 2))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    args = ((2, 1), "same", (1, 0), 1)
    grad_y = rng.standard_normal(kernels.conv2d_transpose(x, w, b, *args).shape)

    def loss(x_, w_, b_):
        return float(np.sum(kernels.conv2d_transpose(x_, w_, b_, *args) * grad_y))

    gx, gw, gb = kernels.conv2d_transpose_backward(x, w, grad_y, *args)
    np.testing.assert_allclose(gx, numerical_gradient(lambda v: loss(v, w, b), x), atol=1e-6)
    np.testing.assert_allclose(gw, numerical_gradient(lambda v: loss(x, v, b), w), atol=1e-6)
    np.testing.assert_allclose(gb, numerical_gradient(lambda v: loss(x, w, v), b), atol=1e-6)


# ----------------------------------------------------------------------------- threads


def test_larger_shapes_are_bit_identical_at_1_2_3_threads(rng, monkeypatch):
    """Many blocks, 16 gradient partials of uneven size, images that 3 threads share
    unevenly: every kernel of this file gives the same bytes at 1, 2 and 3 threads."""
    monkeypatch.setattr(kernels, "COLUMN_BLOCK_BYTES", 4096)
    x = rng.standard_normal((7, 13, 11, 24)).astype(np.float32)
    grouped = rng.standard_normal((3, 3, 8, 12)).astype(np.float32)
    depthwise = rng.standard_normal((3, 3, 24, 1)).astype(np.float32)
    transpose = rng.standard_normal((3, 3, 5, 24)).astype(np.float32)

    def compute():
        y = kernels.conv2d(x, grouped, None, 2, "same", groups=3)
        d = kernels.depthwise_conv2d(x, depthwise, None, 1, "same")
        t = kernels.conv2d_transpose(x, transpose, None, 2, "same")
        return (y, *kernels.conv2d_backward(x, grouped, y, 2, "same", groups=3), d,
                *kernels.depthwise_conv2d_backward(x, depthwise, d, 1, "same"), t,
                *kernels.conv2d_transpose_backward(x, transpose, t, 2, "same"))

    at_1_2_3_threads(compute)


# ----------------------------------------------------------------------------- Keras


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kernel_size, strides, padding, output_padding, dilation", [
    (3, 2, "same", None, 1), (3, 2, "same", 1, 1), (4, 2, "same", None, 1),
    (3, 3, "valid", None, 1), (2, 3, "valid", 2, 1), (3, 1, "same", None, 2),
    ((3, 2), (2, 3), "same", (1, 2), 1), (5, 1, "valid", None, 2)])
def test_conv2d_transpose_matches_keras(keras_ops, kernel_size, strides, padding,
                                        output_padding, dilation):
    rng = np.random.default_rng(0)
    kh, kw = (kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    w = rng.standard_normal((kh, kw, 4, 3)).astype(np.float32)
    want = keras_ops.convert_to_numpy(keras_ops.conv_transpose(
        x, w, strides, padding, output_padding, "channels_last", dilation))
    got = kernels.conv2d_transpose(x, w, None, strides, padding, output_padding, dilation)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("strides, padding, dilation", [(1, "same", 1), (2, "valid", 1),
                                                        (1, "same", 2)])
def test_depthwise_and_grouped_conv2d_match_keras(keras_ops, strides, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 6)).astype(np.float32)
    depthwise = rng.standard_normal((3, 3, 6, 2)).astype(np.float32)
    grouped = rng.standard_normal((3, 3, 2, 9)).astype(np.float32)  # groups inferred: 3
    np.testing.assert_allclose(
        kernels.depthwise_conv2d(x, depthwise, None, strides, padding, dilation),
        keras_ops.convert_to_numpy(keras_ops.depthwise_conv(x, depthwise, strides, padding,
                                                            "channels_last", dilation)),
        rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        kernels.conv2d(x, grouped, None, strides, padding, dilation, groups=3),
        keras_ops.convert_to_numpy(keras_ops.conv(x, grouped, strides, padding, "channels_last",
                                                  dilation)),
        rtol=1e-4, atol=1e-4)
