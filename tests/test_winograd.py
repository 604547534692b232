"""Winograd convolution (kernels.conv2d / conv2d_backward with algorithm="winograd" or
"winograd4") against the plain NumPy loops in tests/reference.py and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet
from convnet import kernels, layers
from convnet.utils import numerical_gradient

import reference as ref
from conftest import TOLERANCE, assert_conv_matches_loops
from test_kernels import PROPERTY_EXAMPLES, at_one_and_two_threads

WINOGRAD = ["winograd", "winograd4"]


@st.composite
def winograd_configs(draw):
    """3x3 stride-1 convolutions: every padding form, images of 1 pixel and up (so that
    tiles are partial at the right and bottom edges, or wholly padding), channel counts
    below, at and past the 16 the transforms take at a time."""
    form = draw(st.sampled_from(["explicit", "int", "pair", "same", "valid"]))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    if form == "int":
        pads = ((pads[0][0],) * 2,) * 2
    elif form == "pair":
        pads = ((pads[0][0],) * 2, (pads[1][0],) * 2)
    elif form == "valid":
        pads = ((0, 0), (0, 0))
    min_h, min_w = (max(1, 3 - sum(p)) for p in pads)
    h, w = draw(st.integers(min_h, min_h + 8)), draw(st.integers(min_w, min_w + 8))
    padding = {"explicit": pads, "int": pads[0][0], "pair": (pads[0][0], pads[1][0]),
               "same": "same", "valid": "valid"}[form]
    channels = st.sampled_from([1, 2, 3, 5, 15, 16, 17, 33])
    return dict(shape=(draw(st.integers(1, 3)), h, w, draw(channels)), filters=draw(channels),
                padding=padding, algorithm=draw(st.sampled_from(WINOGRAD)),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 99)))


@settings(max_examples=PROPERTY_EXAMPLES)
@given(winograd_configs())
def test_winograd_forward_and_backward_match_loops(cfg):
    rng = np.random.default_rng(cfg["seed"])
    dtype, algorithm = cfg["dtype"], cfg["algorithm"]
    x = rng.standard_normal(cfg["shape"]).astype(dtype)
    w = rng.standard_normal((3, 3, cfg["shape"][3], cfg["filters"])).astype(dtype)
    b = rng.standard_normal(cfg["filters"]).astype(dtype)
    pad = kernels.resolve_padding(cfg["padding"], (3, 3), (1, 1), (1, 1), cfg["shape"][1:3],
                                  "test")
    expected = ref.conv2d(x, w, b, (1, 1), pad, (1, 1))
    grad_y = rng.standard_normal(expected.shape).astype(dtype)
    common = dict(padding=cfg["padding"], algorithm=algorithm)
    y, y_relu, gx, gw, gb = at_one_and_two_threads(lambda: (
        kernels.conv2d(x, w, b, **common),
        kernels.conv2d(x, w, b, relu=True, **common),
        *kernels.conv2d_backward(x, w, grad_y, **common)))
    assert_conv_matches_loops((y, y_relu, gx, gw, gb), x, w, b, grad_y, (1, 1), pad, (1, 1))
    tol = TOLERANCE[dtype]

    # Through the fused ReLU, with the kernel transform cached between the calls.
    cache = {}
    relu_grads = at_one_and_two_threads(lambda: kernels.conv2d_backward(
        x, w, grad_y, relu_output=y_relu, kernel_transforms=cache, **common))
    assert list(cache) == [algorithm]
    masked = np.where(y_relu > 0, grad_y, 0)
    for got, want in zip(relu_grads, ref.conv2d_backward(x, w, masked, (1, 1), pad, (1, 1))):
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("padding", ["same", "valid", ((2, 0), (3, 1))])
def test_conv2d_layer_on_winograd_matches_finite_differences(rng, monkeypatch, algorithm,
                                                             padding):
    """A float64 Conv2D with a fused ReLU whose "auto" picks Winograd, forward and backward."""
    picked = []

    def choose(direction, *args):
        picked.append(direction)
        return algorithm

    monkeypatch.setattr(kernels, "choose_algorithm", choose)
    layer = layers.Conv2D(4, 3, padding=padding, activation="relu", dtype="float64")
    x = rng.standard_normal((2, 5, 6, 3))
    layer.build(x.shape)
    # A bias away from zero: outputs whose window is all padding sit off the ReLU's kink.
    layer.set_weights([layer.get_weights()[0], rng.uniform(-1, 1, 4)])
    grad_y = rng.standard_normal(layer(x, training=True).shape)
    grad_x = layer.backward(grad_y)
    assert picked == ["forward", "backward"]
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


@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("block_bytes, min_partial_tiles", [(1, 1), (40_000, 5), (1 << 22, 32)])
def test_winograd_blocks_and_partials_match_loops(rng, monkeypatch, algorithm, block_bytes,
                                                  min_partial_tiles):
    """Blocks of one tile, blocks that straddle images, one block for everything; partial
    sums of the kernel gradient over 1 to 5 images: the same numbers every way."""
    monkeypatch.setattr(kernels, "WINOGRAD_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(kernels, "WINOGRAD_MIN_PARTIAL_TILES", min_partial_tiles)
    x = rng.standard_normal((5, 9, 7, 20))
    w = rng.standard_normal((3, 3, 20, 18))
    grad_y = rng.standard_normal((5, 9, 7, 18))
    pad = ((1, 1), (1, 1))
    y, *grads = at_one_and_two_threads(lambda: (
        kernels.conv2d(x, w, padding=1, algorithm=algorithm),
        *kernels.conv2d_backward(x, w, grad_y, padding=1, algorithm=algorithm)))
    np.testing.assert_allclose(y, ref.conv2d(x, w, None, (1, 1), pad, (1, 1)))
    for got, want in zip(grads, ref.conv2d_backward(x, w, grad_y, (1, 1), pad, (1, 1))):
        np.testing.assert_allclose(got, want)


def test_winograd_kernel_transform_is_reused_from_the_cache(rng):
    """What conv2d finds in kernel_transforms is what it multiplies by: a transform of
    another kernel gives that kernel's convolution (so the caller must empty the cache
    when its kernel changes)."""
    x = rng.standard_normal((2, 6, 6, 4))
    w, other = rng.standard_normal((2, 3, 3, 4, 5))
    cache = {"winograd": kernels.winograd_kernel_transform(other, "winograd")}
    np.testing.assert_allclose(
        kernels.conv2d(x, w, padding="same", algorithm="winograd", kernel_transforms=cache),
        ref.conv2d(x, other, None, (1, 1), ((1, 1), (1, 1)), (1, 1)))
    kernels.conv2d(x, w, padding="same", algorithm="winograd4", kernel_transforms=cache)
    assert sorted(cache) == ["winograd", "winograd4"]


@pytest.mark.parametrize("direction, image, shape, strides, dilation, expected", [
    ("forward", 32, (3, 3, 32, 64), 1, 1, "winograd"),     # W1's convolution
    ("backward", 32, (3, 3, 32, 64), 1, 1, "winograd"),
    ("forward", 32, (3, 3, 32, 32), 1, 1, "im2col"),       # too few filters for its GEMMs
    ("backward", 32, (3, 3, 8, 32), 1, 1, "im2col"),       # too few channels
    ("forward", 28, (3, 3, 1, 32), 1, 1, "im2col"),        # one input channel
    ("backward", 13, (3, 3, 32, 64), 1, 1, "im2col"),      # 2x2 tiles spill 14% over 13x13
    ("forward", 32, (5, 5, 32, 64), 1, 1, "im2col"),
    ("forward", 32, (3, 3, 32, 64), 2, 1, "im2col"),
    ("forward", 32, (3, 3, 32, 64), 1, 2, "im2col"),
])
def test_auto_chooses_winograd_only_where_it_serves(direction, image, shape, strides,
                                                    dilation, expected):
    output = image - (shape[0] - 1) * dilation  # "valid"
    assert kernels.choose_algorithm(direction, (64, image, image, shape[2]), (output,) * 2,
                                    shape, (strides,) * 2, (dilation,) * 2) == expected


def _winograd_kernels(rng, dtype):
    # 20 images of 13x11, 20 -> 18 channels: 40 forward blocks, 16 gradient partials of
    # uneven size; with the fused ReLU and without, both tile sizes.
    x = rng.standard_normal((20, 13, 11, 20)).astype(dtype)
    w = rng.standard_normal((3, 3, 20, 18)).astype(dtype)
    results = []
    for algorithm in WINOGRAD:
        y = kernels.conv2d(x, w, None, 1, "same", algorithm=algorithm, relu=True)
        grads = kernels.conv2d_backward(x, w, y - 0.5, 1, "same", relu_output=y,
                                        algorithm=algorithm)
        results += [y, *grads]
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [2, 3, 16])
def test_winograd_is_bit_identical_at_any_thread_count(threads, monkeypatch, dtype, count):
    monkeypatch.setattr(kernels, "WINOGRAD_BLOCK_BYTES", 30_000)
    convnet.set_num_threads(1)
    single = _winograd_kernels(np.random.default_rng(5), dtype)
    convnet.set_num_threads(count)
    several = _winograd_kernels(np.random.default_rng(5), dtype)
    for a, b in zip(single, several):
        assert a.tobytes() == b.tobytes()


def test_conv2d_layer_transforms_its_kernel_once_per_value(rng, monkeypatch):
    """Conv2D keeps Winograd's transform of its kernel while the kernel is unchanged: one
    per training step (its forward pass and both gradients), one for all of predict's
    batches; and never convolves with a stale one, even after the kernel is written in place
    behind the variable's back."""
    made = []
    transform = kernels.winograd_kernel_transform

    def counted(*args, **kwargs):
        made.append(1)
        return transform(*args, **kwargs)

    monkeypatch.setattr(kernels, "winograd_kernel_transform", counted)
    monkeypatch.setattr(kernels, "choose_algorithm", lambda *args: "winograd")
    model = convnet.Sequential([convnet.Input((6, 7, 3)),
                                layers.Conv2D(4, 3, padding="same", dtype="float64")])
    conv = model.layers[0]
    x = rng.standard_normal((8, 6, 7, 3))

    def expected():
        kernel, bias = conv.get_weights()
        return ref.conv2d(x, kernel, bias, (1, 1), ((1, 1), (1, 1)), (1, 1))

    np.testing.assert_allclose(model.predict(x, batch_size=2, verbose=0), expected(), atol=1e-12)
    assert len(made) == 1  # four batches, one transform
    np.asarray(conv.kernel)[...] *= -2.0  # no assign(): the version stays as it was
    np.testing.assert_allclose(model.predict(x, batch_size=2, verbose=0), expected(), atol=1e-12)
    assert len(made) == 2
    model.compile("sgd", "mse")
    made.clear()
    model.fit(x, rng.standard_normal((8, 6, 7, 4)), batch_size=2, epochs=1, shuffle=False,
              verbose=0)
    # Four steps: the first reuses predict's transform (the kernel is as it was), each
    # later one makes one for its forward pass, which its gradients reuse.
    assert len(made) == 3
    np.testing.assert_allclose(model.predict(x, verbose=0), expected(), atol=1e-12)
