"""The augmentation layers and the resampling kernel under them.

kernels.affine_transform is held to a plain NumPy loop written here (every fill mode, both
interpolations, float32 and float64, odd and even sizes, hypothesis over transforms) and to
Keras 3's own ops.image.affine_transform and layers (torch backend, in a child process, where
installed). Each layer: identity at inference, seeded reproducibility, the transform its
parameters name, shapes (symbolic too), config round trip, float64 finite-difference
gradients, bit-identical results at 1, 2 and 3 threads, and training inside fit.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convnet
import convnet as keras
from convnet import kernels, layers
from convnet.utils import numerical_gradient

FILL_MODES = ("constant", "nearest", "reflect", "wrap", "mirror")
INTERPOLATIONS = ("nearest", "bilinear")
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ----------------------------------------------------------------------------- the reference

def _fold(i, n, fill_mode):
    """The cell index i reads in a row of n cells, by folding step by step (not the kernel's
    modular arithmetic); None for the fill value."""
    if fill_mode == "constant":
        return i if 0 <= i < n else None
    if fill_mode == "nearest":
        return min(max(i, 0), n - 1)
    if fill_mode == "wrap":
        return i % n
    if n == 1:
        return 0
    while not 0 <= i < n:
        if fill_mode == "reflect":      # d c b a | a b c d | d c b a
            i = -1 - i if i < 0 else 2 * n - 1 - i
        else:                           # mirror: d c b | a b c d | c b a
            i = -i if i < 0 else 2 * (n - 1) - i
    return i


def reference_affine(images, transforms, interpolation, fill_mode, fill_value=0.0,
                     output_size=None):
    """TensorFlow's projective transform, one output pixel at a time, in float64."""
    images = np.asarray(images, np.float64)
    n, h, w, c = images.shape
    oh, ow = output_size or (h, w)
    transforms = np.broadcast_to(np.asarray(transforms, np.float64).reshape(-1, 8), (n, 8))
    out = np.zeros((n, oh, ow, c))
    for b in range(n):
        a0, a1, a2, b0, b1, b2, c0, c1 = (float(v) for v in transforms[b])
        for y in range(oh):
            for x in range(ow):
                k = c0 * x + c1 * y + 1.0
                if k == 0:
                    out[b, y, x] = fill_value
                    continue
                sx, sy = (a0 * x + a1 * y + a2) / k, (b0 * x + b1 * y + b2) / k
                if interpolation == "nearest":
                    taps = [(round(sy), round(sx), 1.0)]   # round half to even
                else:
                    fy, fx = math.floor(sy), math.floor(sx)
                    wy, wx = sy - fy, sx - fx
                    taps = [(fy, fx, (1 - wy) * (1 - wx)), (fy, fx + 1, (1 - wy) * wx),
                            (fy + 1, fx, wy * (1 - wx)), (fy + 1, fx + 1, wy * wx)]
                for row, col, weight in taps:
                    r, q = _fold(row, h, fill_mode), _fold(col, w, fill_mode)
                    out[b, y, x] += weight * (fill_value if r is None or q is None
                                              else images[b, r, q])
    return out


def _assert_close(got, expected, dtype):
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    tol = TOLERANCE[np.dtype(dtype).type]
    np.testing.assert_allclose(got, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def _random_transforms(rng, n, h, w, projective=False):
    """Rotation, scale, shear and shift about the centre, some far outside the image."""
    angle = rng.uniform(-np.pi, np.pi, n)
    scale = rng.uniform(0.5, 2.0, (n, 2))
    shear = rng.uniform(-0.3, 0.3, n)
    t = np.zeros((n, 8))
    t[:, 0] = scale[:, 0] * np.cos(angle)
    t[:, 1] = -scale[:, 0] * np.sin(angle) + shear
    t[:, 3] = scale[:, 1] * np.sin(angle)
    t[:, 4] = scale[:, 1] * np.cos(angle)
    t[:, 2] = rng.uniform(-1.5, 1.5, n) * w
    t[:, 5] = rng.uniform(-1.5, 1.5, n) * h
    if projective:
        t[:, 6:] = rng.uniform(-0.05, 0.05, (n, 2))
    return t


# ----------------------------------------------------------------------------- the kernel

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("shape", [(3, 7, 5, 2), (2, 6, 8, 3), (2, 1, 4, 1), (1, 5, 1, 4)])
def test_affine_transform_matches_the_numpy_loop(shape, interpolation, fill_mode, dtype, rng):
    x = rng.normal(size=shape).astype(dtype)
    t = _random_transforms(rng, shape[0], *shape[1:3], projective=True)
    got = kernels.affine_transform(x, t, interpolation, fill_mode, fill_value=0.75)
    assert got.dtype == dtype and got.shape == shape
    _assert_close(got, reference_affine(x, t, interpolation, fill_mode, 0.75), dtype)


@given(data=st.data())
def test_affine_transform_over_hypothesis_transforms(data):
    n = data.draw(st.integers(1, 3))
    h, w, c = (data.draw(st.integers(1, 6)) for _ in range(3))
    number = st.floats(-4, 4, allow_nan=False, width=32)
    t = np.array([[data.draw(number) for _ in range(6)]
                  + [data.draw(st.floats(-0.25, 0.25, width=32)) for _ in range(2)]
                  for _ in range(n)])
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    interpolation = data.draw(st.sampled_from(INTERPOLATIONS))
    fill_mode = data.draw(st.sampled_from(FILL_MODES))
    output_size = data.draw(st.none() | st.tuples(st.integers(1, 6), st.integers(1, 6)))
    x = np.random.default_rng(n * h * w).normal(size=(n, h, w, c)).astype(dtype)
    got = kernels.affine_transform(x, t, interpolation, fill_mode, -2.0, output_size)
    _assert_close(got, reference_affine(x, t, interpolation, fill_mode, -2.0, output_size),
                  dtype)


def test_identity_and_integer_shifts_are_exact(rng):
    x = rng.normal(size=(2, 5, 6, 3))
    identity = [1, 0, 0, 0, 1, 0, 0, 0]
    for mode in FILL_MODES:
        for interpolation in INTERPOLATIONS:
            assert kernels.affine_transform(x, identity, interpolation, mode).tobytes() \
                == x.tobytes()
    # output (x, y) reads input (x - 2, y + 1): the image moves 2 right and 1 up
    shifted = kernels.affine_transform(x, [1, 0, -2, 0, 1, 1, 0, 0], fill_mode="constant",
                                       fill_value=9.0)
    np.testing.assert_array_equal(shifted[:, :4, 2:], x[:, 1:, :4])
    assert (shifted[:, 4] == 9).all() and (shifted[:, :, :2] == 9).all()


def test_fill_modes_extend_a_row_as_keras_documents():
    """Keras' pictures: reflect (d c b a | a b c d | d c b a), wrap (a b c d | a b c d),
    nearest (a a a a | a b c d | d d d d), mirror (d c b | a b c d | c b a), constant k."""
    row = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)

    def extended(mode):
        shift = [1, 0, -4, 0, 1, 0, 0, 0]   # output column x reads input column x - 4
        left = kernels.affine_transform(row, shift, "nearest", mode, fill_value=7.0)
        right = kernels.affine_transform(row, [1, 0, 4, 0, 1, 0, 0, 0], "nearest", mode,
                                         fill_value=7.0)
        return left.ravel().tolist(), right.ravel().tolist()

    assert extended("reflect") == ([4, 3, 2, 1], [4, 3, 2, 1])
    assert extended("wrap") == ([1, 2, 3, 4], [1, 2, 3, 4])
    assert extended("nearest") == ([1, 1, 1, 1], [4, 4, 4, 4])
    assert extended("mirror") == ([3, 4, 3, 2], [3, 2, 1, 2])
    assert extended("constant") == ([7, 7, 7, 7], [7, 7, 7, 7])


def test_nearest_rounds_half_to_even_and_a_point_at_infinity_is_fill():
    row = np.arange(6.0).reshape(1, 1, 6, 1)
    half = kernels.affine_transform(row, [1, 0, 0.5, 0, 1, 0, 0, 0], "nearest", "nearest")
    assert half.ravel().tolist() == [0, 2, 2, 4, 4, 5]   # 0.5->0, 1.5->2, 2.5->2, ...
    # k = 1 - x / 2 is 0 at x = 2: that pixel is the fill value in every mode
    for mode in FILL_MODES:
        out = kernels.affine_transform(row, [1, 0, 0, 0, 1, 0, -0.5, 0], "bilinear", mode,
                                       fill_value=-3.0)
        assert out[0, 0, 2, 0] == -3.0


def test_output_size_and_a_shared_transform(rng):
    x = rng.normal(size=(3, 4, 6, 2))
    t = [0.5, 0, 0.25, 0, 0.5, -0.25, 0, 0]
    got = kernels.affine_transform(x, t, output_size=(7, 9), fill_mode="nearest")
    assert got.shape == (3, 7, 9, 2)
    _assert_close(got, reference_affine(x, [t] * 3, "bilinear", "nearest", 0, (7, 9)),
                  np.float64)


def test_integer_images_are_cast_to_float32(rng):
    x = rng.integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    out = kernels.affine_transform(x, [1, 0, 0, 0, 1, 0, 0, 0])
    assert out.dtype == np.float32 and (out == x).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_backward_is_the_adjoint_of_forward(interpolation, fill_mode, dtype, rng):
    """<A x, g> == <x, A^T g> for the linear map A the transform is (fill value 0), and
    the adjoint equals the finite-difference gradient in float64."""
    x = rng.normal(size=(2, 4, 5, 2)).astype(dtype)
    t = _random_transforms(rng, 2, 4, 5, projective=True)
    g = rng.normal(size=(2, 4, 7, 2)).astype(dtype)
    ax = kernels.affine_transform(x, t, interpolation, fill_mode, output_size=(4, 7))
    atg = kernels.affine_transform_backward(g, t, x.shape, interpolation, fill_mode)
    assert atg.dtype == dtype and atg.shape == x.shape
    lhs, rhs = float(np.sum(ax.astype(np.float64) * g)), float(np.sum(x.astype(np.float64) * atg))
    assert abs(lhs - rhs) <= (1e-4 if dtype == np.float32 else 1e-10) * max(1.0, abs(lhs))
    if dtype == np.float64:
        numeric = numerical_gradient(lambda v: float(np.sum(kernels.affine_transform(
            v, t, interpolation, fill_mode, 5.0, output_size=(4, 7)) * g)), x.copy())
        np.testing.assert_allclose(atg, numeric, atol=1e-7)


def _at_thread_counts(compute, counts=(1, 2, 3)):
    before = convnet.get_num_threads()
    try:
        results = []
        for count in counts:
            convnet.set_num_threads(count)
            results.append([np.asarray(r).tobytes() for r in compute()])
        return results
    finally:
        convnet.set_num_threads(before)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_kernel_is_bit_identical_at_1_2_and_3_threads(interpolation, rng):
    # enough pixels that 3 threads each get their share (MIN_RESAMPLED_PIXELS_PER_THREAD)
    x = rng.normal(size=(7, 43, 45, 3)).astype(np.float32)
    t = _random_transforms(rng, 7, 43, 45, projective=True)
    g = rng.normal(size=x.shape).astype(np.float32)
    first, *others = _at_thread_counts(lambda: (
        kernels.affine_transform(x, t, interpolation, "reflect"),
        kernels.affine_transform_backward(g, t, x.shape, interpolation, "reflect")))
    assert all(o == first for o in others)


# ----------------------------------------------------------------------------- Keras itself

KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from keras import ops
    inputs = np.load(sys.argv[1])
    cases = json.loads(sys.argv[2])
    outputs = {}
    for name, case in cases.items():
        x = inputs[name]
        if case["kind"] == "op":
            y = ops.image.affine_transform(x, inputs[name + "/t"].copy(), case["interpolation"],
                                           case["fill_mode"], case["fill_value"])
        elif case["kind"] == "resize":
            y = ops.image.resize(x, case["size"], interpolation="bilinear", antialias=False)
        else:
            layer = getattr(keras.layers, case["kind"])(**case["config"])
            y = layer(x, training=True)
        outputs[name] = np.asarray(ops.convert_to_numpy(y))
    np.savez(sys.argv[3], **outputs)
""")


KERAS_LAYER_CASES = {
    "translation": ("RandomTranslation", dict(height_factor=(0.2, 0.2),
                                              width_factor=(-0.35, -0.35))),
    "translation constant nearest": ("RandomTranslation", dict(
        height_factor=(-0.3, -0.3), width_factor=(0.15, 0.15), fill_mode="constant",
        fill_value=3.0, interpolation="nearest")),
    "rotation": ("RandomRotation", dict(factor=(0.1, 0.1))),
    "rotation wrap": ("RandomRotation", dict(factor=(-0.3, -0.3), fill_mode="wrap")),
    "zoom": ("RandomZoom", dict(height_factor=(0.3, 0.3), width_factor=(-0.2, -0.2))),
    "zoom aspect kept": ("RandomZoom", dict(height_factor=(-0.4, -0.4), fill_mode="nearest")),
    "brightness": ("RandomBrightness", dict(factor=(0.1, 0.1))),
    "brightness to [0, 1]": ("RandomBrightness", dict(factor=(-0.3, -0.3),
                                                      value_range=(0, 1))),
    "crop of equal height: centre": ("RandomCrop", dict(height=9, width=4)),
}


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory):
    """Keras' own results (torch backend, one child process) for every op and layer case:
    {name: (input, transforms or None, Keras' output, the case)}."""
    if not all(importlib.util.find_spec(name) for name in ("keras", "torch")):
        pytest.skip("needs keras and torch (Keras' torch backend)")
    rng = np.random.default_rng(99)
    inputs, cases = {}, {}
    for dtype in ("float32", "float64"):
        for fill_mode in FILL_MODES:
            for interpolation in INTERPOLATIONS:
                name = f"op {dtype} {fill_mode} {interpolation}"
                inputs[name] = rng.normal(size=(3, 9, 8, 2)).astype(dtype)
                inputs[name + "/t"] = _random_transforms(rng, 3, 9, 8).astype(dtype)
                cases[name] = dict(kind="op", interpolation=interpolation,
                                   fill_mode=fill_mode, fill_value=0.5)
    for size in [(9, 11), (3, 4), (5, 2)]:
        name = f"resize 5x7 to {size[0]}x{size[1]}"
        inputs[name] = rng.normal(size=(2, 5, 7, 3))
        cases[name] = dict(kind="resize", size=size)
    for name, (kind, config) in KERAS_LAYER_CASES.items():
        shape = (2, 9, 5, 3) if kind == "RandomCrop" else (2, 9, 8, 3)
        scale = 1.0 if "[0, 1]" in name else 255.0
        inputs[name] = rng.uniform(0, scale, shape).astype(np.float32)
        cases[name] = dict(kind=kind, config=config)
    folder = tmp_path_factory.mktemp("keras")
    np.savez(folder / "in.npz", **inputs)
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(folder / "in.npz"),
                           json.dumps(cases), str(folder / "out.npz")],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"Keras failed:\n{done.stderr[-3000:]}")
    outputs = dict(np.load(folder / "out.npz"))
    return {name: (inputs[name], inputs.get(name + "/t"), outputs[name], case)
            for name, case in cases.items()}


def test_kernel_matches_keras_ops_image_affine_transform(keras_reference):
    """Keras' torch backend ignores c0 and c1 (only TensorFlow's uses them): affine only."""
    for name, (x, t, expected, case) in keras_reference.items():
        if case["kind"] != "op":
            continue
        ours = kernels.affine_transform(x, t, case["interpolation"], case["fill_mode"],
                                        case["fill_value"])
        # Keras computes float32 images' coordinates in float32
        np.testing.assert_allclose(ours, expected, atol=2e-4 if x.dtype == np.float32
                                   else 1e-9, err_msg=name)


def test_layers_with_pinned_factors_match_keras(keras_reference):
    """A factor (a, a) pins the draw, so Keras' layer and convnet's apply the same
    transform: its matrix conventions, signs and centres are Keras'."""
    for name, (kind, config) in KERAS_LAYER_CASES.items():
        x, _, expected, _ = keras_reference[name]
        ours = getattr(layers, kind)(**config)(x, training=True)
        assert ours.shape == expected.shape, name
        np.testing.assert_allclose(ours, expected, atol=2e-3, err_msg=name)


# ----------------------------------------------------------------------------- the layers

def _every_layer(seed=None):
    return [layers.RandomFlip(seed=seed),
            layers.RandomTranslation(0.2, (-0.1, 0.3), seed=seed),
            layers.RandomRotation(0.15, seed=seed),
            layers.RandomZoom((-0.3, 0.2), (0.1, 0.4), seed=seed),
            layers.RandomCrop(5, 4, seed=seed),
            layers.RandomContrast((0.2, 0.4), seed=seed),
            layers.RandomBrightness(0.3, seed=seed)]


IDS = ["flip", "translation", "rotation", "zoom", "crop", "contrast", "brightness"]


@pytest.fixture
def images(rng):
    return rng.uniform(0, 255, (6, 8, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("index", [i for i, name in enumerate(IDS) if name != "crop"],
                         ids=[name for name in IDS if name != "crop"])
def test_identity_at_inference_and_in_predict(index, images):
    """(RandomCrop centre-crops at inference: its own test below.) Seeded: unseeded, the
    six flips drew "none" about once in 64 runs, by the global state earlier tests left."""
    layer = _every_layer(seed=7)[index]
    assert layer(images, training=False).tobytes() == images.tobytes()
    model = keras.Sequential([keras.Input(images.shape[1:]), layer])
    assert model.predict(images, verbose=0).tobytes() == images.tobytes()
    assert model(images).tobytes() == images.tobytes()
    changed = layer(images, training=True)
    assert not np.array_equal(changed, images)


def test_a_layer_called_alone_augments_as_keras_does(images):
    """Keras' preprocessing layers default `training` to True in call()."""
    layer = layers.RandomBrightness(0.5, seed=1)
    assert not np.array_equal(layer(images), images)


@pytest.mark.parametrize("index", range(7), ids=IDS)
def test_seeded_layers_repeat_their_sequence(index, images):
    a, b = _every_layer(seed=7)[index], _every_layer(seed=7)[index]
    first, second = a(images), a(images)
    assert first.tobytes() == b(images).tobytes() and second.tobytes() == b(images).tobytes()
    assert first.tobytes() != second.tobytes()   # each call draws anew
    other = _every_layer(seed=8)[index]
    assert other(images).tobytes() != first.tobytes()


@pytest.mark.parametrize("index", range(7), ids=IDS)
def test_unseeded_layers_follow_set_random_seed(index, images):
    keras.utils.set_random_seed(11)
    first = _every_layer()[index](images)
    keras.utils.set_random_seed(11)
    assert _every_layer()[index](images).tobytes() == first.tobytes()


@pytest.mark.parametrize("mode, flip", [
    ("horizontal", lambda x: x[:, ::-1]), ("vertical", lambda x: x[::-1]),
    ("horizontal_and_vertical", lambda x: x[::-1, ::-1])])
def test_flip_flips(mode, flip, rng):
    x = rng.normal(size=(40, 5, 6, 2)).astype(np.float32)
    y = layers.RandomFlip(mode, seed=0)(x, training=True)
    flipped = [np.array_equal(b, flip(a)) for a, b in zip(x, y)]
    kept = [np.array_equal(b, a) for a, b in zip(x, y)]
    assert all(f != k for f, k in zip(flipped, kept))
    assert 5 < sum(flipped) < 35


def test_translation_by_a_pinned_factor_shifts_by_the_expected_pixels(rng):
    x = rng.normal(size=(3, 8, 8, 2))
    layer = layers.RandomTranslation((0.25, 0.25), (-0.125, -0.125), fill_mode="constant",
                                     fill_value=-5.0, seed=3)
    y = layer(x, training=True)
    # down 2 rows, left 1 column: out[r, c] = in[r - 2, c + 1]
    np.testing.assert_allclose(y[:, 2:, :7], x[:, :6, 1:], atol=1e-12)
    assert (y[:, :2] == -5).all() and (y[:, :, 7] == -5).all()


def test_rotation_by_a_quarter_turn_is_rot90_counter_clockwise(rng):
    x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    quarter = layers.RandomRotation((0.25, 0.25), interpolation="nearest")(x, training=True)
    np.testing.assert_array_equal(quarter, np.rot90(x, 1, axes=(1, 2)))
    half = layers.RandomRotation((-0.5, -0.5))(x, training=True)
    np.testing.assert_allclose(half, x[:, ::-1, ::-1], atol=1e-6)


def test_zoom_out_by_a_pinned_factor_shrinks_about_the_centre(rng):
    x = rng.normal(size=(2, 5, 5, 1)).astype(np.float32)
    y = layers.RandomZoom((1.0, 1.0), fill_mode="constant", interpolation="nearest")(
        x, training=True)   # each output pixel reads twice as far from the centre
    for r in range(5):
        for c in range(5):
            sr, sc = 2 * r - 2, 2 * c - 2
            expected = x[:, sr, sc] if 0 <= sr < 5 and 0 <= sc < 5 else 0.0
            np.testing.assert_array_equal(y[:, r, c], expected)


def test_zoom_with_width_factor_zooms_each_axis(rng):
    x = rng.normal(size=(1, 7, 9, 1)).astype(np.float32)
    layer = layers.RandomZoom((-0.5, -0.5), (0.0, 0.0), interpolation="nearest")
    y = layer(x, training=True)
    np.testing.assert_array_equal(y[0, :, :, 0], x[0, np.round(np.arange(7) * 0.5 + 1.5)
                                                      .astype(int)][:, np.arange(9)][:, :, 0])


def test_crop_in_training_takes_one_random_window_per_batch(rng):
    x = rng.normal(size=(4, 9, 10, 2)).astype(np.float32)
    layer = layers.RandomCrop(5, 4, seed=2)
    corners = set()
    for _ in range(12):
        y = layer(x, training=True)
        found = [(t, l) for t in range(5) for l in range(7)
                 if np.array_equal(y, x[:, t:t + 5, l:l + 4])]
        assert len(found) == 1
        corners.add(found[0])
    assert len(corners) > 3


def _half_pixel_resize(x, size):
    """Bilinear resize with half-pixel centres and clamped edges, axis by axis (PyTorch's
    interpolate(align_corners=False) and Keras' resize without antialiasing)."""
    for axis, target in zip((1, 2), size):
        n = x.shape[axis]
        src = np.clip((np.arange(target) + 0.5) * n / target - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        w = (src - lo).reshape([-1 if a == axis else 1 for a in range(4)])
        x = np.take(x, lo, axis) * (1 - w) + np.take(x, hi, axis) * w
    return x


def test_crop_at_inference_takes_the_centre_window_keras_documents(rng):
    x = rng.normal(size=(2, 6, 9, 2)).astype(np.float32)
    # one axis already the target's: the centred 6 x 5 window, no resizing
    np.testing.assert_array_equal(layers.RandomCrop(6, 5)(x, training=False), x[:, :, 2:7])
    # 8 x 10 to 4 x 4: the centred 8 x 8 square, halved (each output the mean of 2 x 2)
    x = rng.normal(size=(2, 8, 10, 3))
    y = layers.RandomCrop(4, 4, dtype="float64")(x, training=False)
    square = x[:, :, 1:9]
    np.testing.assert_allclose(y, square.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4)),
                               atol=1e-12)
    # a smaller input is enlarged (also in training): 3 x 5 to 6 x 7
    x = rng.normal(size=(2, 3, 5, 1))
    y = layers.RandomCrop(6, 7, dtype="float64")(x, training=True)
    cols = min(5, int(3 * 7 / 6))   # all 3 rows, the centred columns of a 6:7 window
    window = x[:, :, (5 - cols) // 2:(5 - cols) // 2 + cols]
    np.testing.assert_allclose(y, _half_pixel_resize(window, (6, 7)), atol=1e-12)


def test_crop_resize_is_keras_resize(keras_reference):
    """RandomCrop's resizing (an affine transform with "nearest" fill) is Keras' bilinear
    resize without antialiasing, and so is the NumPy reference above."""
    for name, (x, _, expected, case) in keras_reference.items():
        if case["kind"] != "resize":
            continue
        size = tuple(case["size"])
        ours = kernels.affine_transform(
            x, layers.RandomCrop(*size)._resize_transform(*x.shape[1:3]), "bilinear",
            "nearest", output_size=size)
        np.testing.assert_allclose(ours, expected, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(_half_pixel_resize(x, size), expected, atol=1e-9)


def test_contrast_applies_keras_formula_with_one_factor_per_image(rng):
    x = rng.uniform(0, 255, (20, 6, 5, 3))
    layer = layers.RandomContrast((0.5, 0.3), value_range=(0, 255), seed=4, dtype="float64")
    y = layer(x, training=True)
    mean = x.mean(axis=(1, 2), keepdims=True)
    factors = []
    for xi, yi, mi in zip(x, y, mean):
        inside = (yi > 0) & (yi < 255)
        f = ((yi - mi) / (xi - mi))[inside]
        assert np.ptp(f) < 1e-9     # one factor for every pixel and channel of the image
        factors.append(f[0])
        np.testing.assert_allclose(yi, np.clip((xi - mi) * f[0] + mi, 0, 255), atol=1e-9)
    assert 0.7 <= min(factors) and max(factors) <= 1.5 and np.ptp(factors) > 0.1   # sorted


def test_contrast_factor_is_read_as_keras_3_reads_it():
    """A number f is (0, f): a contrast in [1, 1 + f], Keras 3's code (not its docstring)."""
    assert layers.RandomContrast(0.2).factor == (0.0, 0.2)
    assert layers.RandomRotation(0.2).factor == (-0.2, 0.2)
    assert layers.RandomBrightness((0.3, -0.1)).factor == (-0.1, 0.3)


def test_brightness_by_a_pinned_factor_adds_it_and_clips(rng):
    x = rng.uniform(0, 255, (3, 4, 4, 3))
    y = layers.RandomBrightness((0.1, 0.1), value_range=(255, 0), dtype="float64")(
        x, training=True)
    np.testing.assert_allclose(y, np.clip(x + 25.5, 0, 255), atol=1e-12)


@pytest.mark.parametrize("index", range(7), ids=IDS)
def test_channels_first_is_the_transposed_channels_last(index, images):
    last = _every_layer(seed=5)[index]
    first = type(last).from_config({**last.get_config(), "data_format": "channels_first",
                                    "name": None})
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(first(nchw).transpose(0, 2, 3, 1), last(images))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_output_shapes_symbolic_and_real(data_format, images):
    x = images if data_format == "channels_last" else images.transpose(0, 3, 1, 2)
    for template in _every_layer():
        config = {**template.get_config(), "name": None, "data_format": data_format}
        crop = isinstance(template, layers.RandomCrop)
        for shape in [x.shape[1:], (None, None, 3) if data_format == "channels_last"
                      else (3, None, None)]:
            if crop:
                expected = (None, 5, 4, 3) if data_format == "channels_last" else (None, 3, 5, 4)
            else:
                expected = (None, *shape)
            layer = type(template).from_config(config)
            assert tuple(layer(keras.Input(shape)).shape) == expected
            assert layer.compute_output_shape((None, *shape)) == expected
        layer = type(template).from_config(config)
        real = (len(x), *expected[1:]) if crop else x.shape
        assert layer(x, training=True).shape == real
        assert layer(x, training=False).shape == real


@pytest.mark.parametrize("index", range(7), ids=IDS)
def test_config_round_trips_and_keeps_the_seeded_draws(index, images):
    layer = _every_layer(seed=3)[index]
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert json.loads(json.dumps(layer.get_config())) == layer.get_config()
    assert clone(images).tobytes() == layer(images).tobytes()


def test_a_model_of_every_augmentation_layer_saves_and_loads(tmp_path, images):
    model = keras.Sequential([keras.Input(images.shape[1:]), *_every_layer(seed=9),
                              layers.Flatten(), layers.Dense(2)])
    path = tmp_path / "augmented.keras"
    model.save(path)
    loaded = keras.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.predict(images, verbose=0).tobytes() == model.predict(images,
                                                                        verbose=0).tobytes()


@pytest.mark.parametrize("index", range(7), ids=IDS)
def test_layers_are_bit_identical_at_1_2_and_3_threads(index, rng):
    images = rng.uniform(0, 255, (8, 40, 41, 3)).astype(np.float32)   # 3 threads' worth
    grad = rng.normal(size=_every_layer()[index](images).shape).astype(np.float32)

    def compute():
        layer = _every_layer(seed=1)[index]
        y = layer(images, training=True)
        return y, layer.backward(grad)

    first, *others = _at_thread_counts(compute)
    assert all(o == first for o in others)


GRADIENT_CASES = {
    "flip": lambda: layers.RandomFlip(seed=2, dtype="float64"),
    "translation bilinear reflect": lambda: layers.RandomTranslation(
        0.3, 0.3, seed=2, dtype="float64"),
    "rotation nearest wrap": lambda: layers.RandomRotation(
        0.2, fill_mode="wrap", interpolation="nearest", seed=2, dtype="float64"),
    "rotation constant": lambda: layers.RandomRotation(
        0.4, fill_mode="constant", fill_value=2.0, seed=2, dtype="float64"),
    "zoom nearest fill": lambda: layers.RandomZoom(0.5, 0.3, fill_mode="nearest", seed=2,
                                                   dtype="float64"),
    "crop random window": lambda: layers.RandomCrop(3, 4, seed=2, dtype="float64"),
    "crop centre resized": lambda: layers.RandomCrop(7, 3, seed=2, dtype="float64"),
    "contrast, some clipped": lambda: layers.RandomContrast(
        (0.3, 0.6), value_range=(-1.5, 1.5), seed=2, dtype="float64"),
    "brightness, some clipped": lambda: layers.RandomBrightness(
        0.4, value_range=(-1.5, 1.5), seed=2, dtype="float64"),
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_gradients_match_finite_differences(case, data_format, rng):
    """The backward of a training call against the finite differences of fresh layers with
    the same seed (hence the same draw)."""
    def make():
        layer = GRADIENT_CASES[case]()
        return type(layer).from_config({**layer.get_config(), "data_format": data_format,
                                        "name": None})

    x = rng.normal(size=(2, 4, 5, 2))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = make()
    y = layer(x, training=True)
    g = rng.normal(size=y.shape)
    numeric = numerical_gradient(lambda v: float(np.sum(make()(v, training=True) * g)), x.copy())
    np.testing.assert_allclose(layer.backward(g), numeric, atol=1e-7)


def test_inference_gradients_on_the_tape_are_the_identity_and_the_centre_crop(rng):
    x = keras.Variable(rng.normal(size=(2, 6, 9, 1)))
    g = rng.normal(size=(2, 6, 9, 1))
    g_crop = rng.normal(size=(2, 6, 5, 1))
    with keras.GradientTape() as tape:
        loss = keras.ops.sum(layers.RandomRotation(0.3, dtype="float64")(x, training=False) * g)
        loss = loss + keras.ops.sum(
            layers.RandomCrop(6, 5, dtype="float64")(x, training=False) * g_crop)
    (grad,) = tape.gradient(loss, [x])
    expected = g.copy()
    expected[:, :, 2:7] += g_crop     # the centred 6 x 5 window
    np.testing.assert_allclose(grad, expected, atol=1e-12)


def test_fit_trains_a_model_with_flip_and_translation(rng):
    keras.utils.set_random_seed(0)
    x = rng.uniform(0, 1, (64, 10, 10, 1)).astype(np.float32)
    y = (x[:, :5].mean(axis=(1, 2, 3)) > x[:, 5:].mean(axis=(1, 2, 3))).astype(int)
    model = keras.Sequential([
        keras.Input((10, 10, 1)), layers.RandomFlip("horizontal"),
        layers.RandomTranslation(0.1, 0.1), layers.Conv2D(4, 3, activation="relu"),
        layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_fit_passes_gradients_through_augmentation_in_the_middle(rng):
    """Layers before an augmentation layer learn: its backward pass reaches them."""
    keras.utils.set_random_seed(1)
    x = rng.normal(size=(16, 9, 9, 2)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = keras.Sequential([
        keras.Input((9, 9, 2)), layers.Conv2D(3, 3, padding="same"),
        layers.RandomRotation(0.1), layers.RandomZoom(0.2), layers.RandomCrop(7, 7),
        layers.RandomContrast(0.2, value_range=(-10, 10)), layers.RandomBrightness(0.1),
        layers.RandomFlip(), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    kernel = model.layers[0].get_weights()[0].copy()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(kernel, model.layers[0].get_weights()[0])


def test_onnx_export_runs_augmentation_as_predict_does(rng):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    onnx_export = importlib.import_module("convnet.export.onnx")
    for data_format, shape in [("channels_last", (8, 10, 2)), ("channels_first", (2, 8, 10))]:
        for size in [(4, 4), (8, 3), (5, 7), (11, 12), (8, 10)]:
            stack = [layer for layer in _every_layer() if not isinstance(layer, layers.RandomCrop)]
            stack = [type(layer).from_config({**layer.get_config(), "name": None,
                                              "data_format": data_format}) for layer in stack]
            model = keras.Sequential([keras.Input(shape), *stack[:3],
                                      layers.RandomCrop(*size, data_format=data_format),
                                      *stack[3:]])
            proto = onnx_export.to_onnx(model)
            session = ort.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            x = rng.normal(size=(3, *shape)).astype(np.float32)
            (got,) = session.run(None, {"input": x})
            np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)


def test_onnx_export_of_random_crop_needs_the_image_size():
    pytest.importorskip("onnx")
    onnx_export = importlib.import_module("convnet.export.onnx")
    model = keras.Sequential([keras.Input((None, None, 3)), layers.RandomCrop(4, 4)])
    with pytest.raises(ValueError, match="RandomCrop 'random_crop.*height and width"):
        onnx_export.to_onnx(model)
