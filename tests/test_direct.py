"""The direct convolution of single-channel inputs (algorithm="direct", and what "auto"
runs for their backward pass) against the plain NumPy loops in tests/reference.py."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet import kernels

import reference as ref
from conftest import TOLERANCE, assert_conv_matches_loops, at_1_2_3_threads
from test_kernels import PROPERTY_EXAMPLES


@st.composite
def direct_configs(draw):
    """Any kernel size, stride, dilation and padding; filter counts below, at and past the
    16 and 32 summed together; images down to one pixel."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["valid", "same", "explicit"]))
    if padding == "same":
        strides = (1, 1)  # Keras' "same" with strides > 1 is also fine, but stay simple
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    span_h, span_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    extra_h = sum(pads[0]) if padding == "explicit" else 0
    extra_w = sum(pads[1]) if padding == "explicit" else 0
    h = draw(st.integers(max(1, span_h - extra_h) if padding != "same" else 1, 12))
    w = draw(st.integers(max(1, span_w - extra_w) if padding != "same" else 1, 12))
    return dict(shape=(draw(st.integers(1, 4)), h, w, 1), kernel=(kh, kw),
                filters=draw(st.sampled_from([1, 3, 15, 16, 17, 31, 32, 33, 48, 70])),
                strides=strides, dilation=dilation,
                padding=pads if padding == "explicit" else padding,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 99)))


@settings(max_examples=min(PROPERTY_EXAMPLES, 1000))
@given(direct_configs())
def test_direct_forward_and_backward_match_loops(cfg):
    rng = np.random.default_rng(cfg["seed"])
    dtype = cfg["dtype"]
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    w = rng.standard_normal((*cfg["kernel"], 1, cfg["filters"])).astype(dtype)
    b = rng.uniform(-1, 1, cfg["filters"]).astype(dtype)
    pad = kernels.resolve_padding(cfg["padding"], cfg["kernel"], cfg["strides"],
                                  cfg["dilation"], cfg["shape"][1:3], "test")
    expected = ref.conv2d(x, w, b, cfg["strides"], pad, cfg["dilation"])
    grad_y = rng.standard_normal(expected.shape).astype(dtype)
    common = dict(strides=cfg["strides"], padding=cfg["padding"],
                  dilation_rate=cfg["dilation"], algorithm="direct")
    y, y_relu, gx, gw, gb = at_1_2_3_threads(lambda: (
        kernels.conv2d(x, w, b, **common),
        kernels.conv2d(x, w, b, relu=True, **common),
        *kernels.conv2d_backward(x, w, grad_y, **common)))
    assert_conv_matches_loops((y, y_relu, gx, gw, gb), x, w, b, grad_y, cfg["strides"], pad,
                              cfg["dilation"])

    # Through the fused ReLU's derivative, and without the input gradient.
    masked = np.where(y_relu > 0, grad_y, 0)
    gx, gw, gb = at_1_2_3_threads(lambda: kernels.conv2d_backward(
        x, w, grad_y, relu_output=y_relu, **common))
    gx_none, gw_only, gb_only = kernels.conv2d_backward(x, w, grad_y, relu_output=y_relu,
                                                        need_input_grad=False, **common)
    assert gx_none is None
    want = ref.conv2d_backward(x, w, masked, cfg["strides"], pad, cfg["dilation"])
    for got, expect in zip((gx, gw, gb), want):
        np.testing.assert_allclose(got, expect, **TOLERANCE[dtype])
    assert gw_only.tobytes() == gw.tobytes() and gb_only.tobytes() == gb.tobytes()


def test_auto_runs_direct_for_the_backward_pass_of_one_input_channel(monkeypatch, rng):
    x = rng.standard_normal((3, 9, 8, 1)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 20)).astype(np.float32)
    assert kernels.choose_algorithm("backward", x.shape, (9, 8), w.shape, (1, 1), (1, 1)) \
        == "direct"
    assert kernels.choose_algorithm("forward", x.shape, (9, 8), w.shape, (1, 1), (1, 1)) \
        == "im2col"
    assert kernels.choose_algorithm("backward", (3, 9, 8, 2), (9, 8), (3, 3, 2, 20), (1, 1),
                                    (1, 1)) != "direct"
    ran = []
    real = kernels._direct_kernel_gradient
    monkeypatch.setattr(kernels, "_direct_kernel_gradient",
                        lambda *args: ran.append(True) or real(*args))
    grad_y = rng.standard_normal((3, 9, 8, 20)).astype(np.float32)
    auto = kernels.conv2d_backward(x, w, grad_y, padding="same")
    assert ran
    forced = kernels.conv2d_backward(x, w, grad_y, padding="same", algorithm="im2col")
    for a, b in zip(auto, forced):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kernel_shape, groups", [((3, 3, 2, 4), 1), ((3, 3, 1, 4), 2)])
def test_direct_refuses_more_than_one_input_channel(kernel_shape, groups):
    x = np.zeros((1, 5, 5, 2), np.float32)
    w = np.zeros(kernel_shape, np.float32)
    with pytest.raises(ValueError, match="conv2d: algorithm='direct' computes"):
        kernels.conv2d(x, w, groups=groups, algorithm="direct")
    with pytest.raises(ValueError, match="conv2d: algorithm='direct' computes"):
        kernels.conv2d_backward(x, w, np.zeros((1, 3, 3, 4), np.float32), groups=groups,
                                algorithm="direct")


def test_a_kernel_with_more_taps_than_a_pixel_list_holds_is_refused():
    with pytest.raises(ValueError, match="algorithm='direct'"):
        kernels.conv2d(np.zeros((1, 40, 40, 1), np.float32),
                       np.zeros((33, 32, 1, 2), np.float32), algorithm="direct")
    # 32 x 32 = 1024 taps is the most
    y = kernels.conv2d(np.ones((1, 32, 32, 1), np.float32), np.ones((32, 32, 1, 2), np.float32),
                       algorithm="direct")
    np.testing.assert_array_equal(y, np.full((1, 1, 1, 2), 1024, np.float32))
