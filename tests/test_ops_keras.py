"""convnet.ops against Keras 3 itself, where it is installed: the same calls on the same
arrays through keras.ops (PyTorch backend; Keras' NumPy backend needs JAX) give the same
numbers, and backend.result_type agrees with Keras' promotion table. Left out where the
backends of Keras disagree among themselves: bicubic and Lanczos resizing (PyTorch's cubic
kernel differs from JAX's; PyTorch has no Lanczos), argmax of -0.0, average pooling with
uneven "same" padding, Gaussian blurs (PyTorch's matches none of the others), cross
products of 3x3 matrices, and sparsemax (Keras 3.15's threshold sums the support's partial
sums; convnet's is the paper's, which sums to 1).

Keras runs in a subprocess so its backend choice and import time stay out of the other
tests. Keras' JAX-compatible backends turn 64-bit results into 32 bits where convnet
keeps them (as Keras does on TensorFlow), so the table is compared with that switched off,
and values are compared in float32.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None,
    reason="Keras 3 with PyTorch is not installed")

SCRIPT = textwrap.dedent(r'''
    import itertools, json, sys
    import numpy as np
    import keras
    from keras import ops as K
    from keras.src.backend.common import dtypes as keras_dtypes
    import convnet
    from convnet import backend, ops as C

    rng = np.random.default_rng(7)
    def n(*shape):
        return rng.standard_normal(shape).astype("float32")
    def u(lo, hi, *shape):
        return rng.uniform(lo, hi, shape).astype("float32")
    x, y, img = n(3, 4), n(3, 4), u(0, 1, 2, 5, 6, 3)
    seq, w1 = n(2, 9, 3), n(3, 3, 4)
    q, k, v = n(2, 4, 4, 3), n(2, 5, 2, 3), n(2, 5, 2, 3)
    labels = np.array([0, 2, 1])
    transforms = np.array([[1.07, 0.21, 0.33, -0.13, 0.91, 0.37, 0.0, 0.0],
                           [0.93, -0.11, 0.23, 0.09, 1.03, -0.29, 0.0, 0.0]], "float32")
    coords = np.stack([u(-1, 5, 3, 4), u(-1, 6, 3, 4)])
    CASES = {
        "gelu": lambda o: o.gelu(x), "gelu exact": lambda o: o.gelu(x, approximate=False),
        "hard_sigmoid": lambda o: o.hard_sigmoid(3 * x), "hard_silu": lambda o: o.hard_silu(3 * x),
        "selu": lambda o: o.selu(x), "celu": lambda o: o.celu(x, 0.5), "elu": lambda o: o.elu(x),
        "glu": lambda o: o.glu(x), "log_sigmoid": lambda o: o.log_sigmoid(x),
        "sparse_plus": lambda o: o.sparse_plus(x),
        "squareplus": lambda o: o.squareplus(x), "soft_shrink": lambda o: o.soft_shrink(x),
        "threshold": lambda o: o.threshold(x, 0.1, 2.0), "softmax tuple": lambda o: o.softmax(
            x, axis=(0, 1)), "log_softmax": lambda o: o.log_softmax(x, axis=0),
        "leaky_relu": lambda o: o.leaky_relu(x), "relu6": lambda o: o.relu6(8 * x),
        "logsumexp": lambda o: o.logsumexp(x, axis=1), "erfinv": lambda o: o.erfinv(x / 3),
        "normalize": lambda o: o.normalize(x, order=1), "rms": lambda o: o.rms_normalization(x),
        "layer_norm": lambda o: o.layer_normalization(x, x[0], y[0]),
        "moments": lambda o: o.moments(x, axes=[0]),
        "batch_norm": lambda o: o.batch_normalization(x, x[0], y[0] ** 2, 1, y[1], x[1]),
        "cce": lambda o: o.categorical_crossentropy(np.eye(4)[[0, 1, 3]].astype("float32"),
                                                    x, from_logits=True),
        "cce probs": lambda o: o.categorical_crossentropy(np.eye(4)[[0, 1, 3]].astype(
            "float32"), np.abs(x)),
        "scce": lambda o: o.sparse_categorical_crossentropy(labels, x, from_logits=True),
        "bce": lambda o: o.binary_crossentropy((y > 0).astype("float32"), x, from_logits=True),
        "one_hot": lambda o: o.one_hot(labels, 4, axis=0),
        "multi_hot": lambda o: o.multi_hot(np.array([[0, 2], [1, 1]]), 4),
        "psnr": lambda o: o.psnr(img[0], img[1], 1.0),
        "attention": lambda o: o.dot_product_attention(q, k, v, is_causal=True),
        "attention scale": lambda o: o.dot_product_attention(q, k, v, scale=0.3),
        "conv": lambda o: o.conv(img, n(3, 3, 3, 2), 2, "same"),
        "conv 1-D": lambda o: o.conv(seq, w1, 2, "same"),
        "conv dilated": lambda o: o.conv(img, n(2, 2, 3, 2), dilation_rate=2),
        "conv channels_first": lambda o: o.conv(img.transpose(0, 3, 1, 2), n(3, 3, 3, 2),
                                                data_format="channels_first"),
        "depthwise_conv": lambda o: o.depthwise_conv(img, n(3, 3, 3, 2), 1, "same"),
        "depthwise_conv strided": lambda o: o.depthwise_conv(img, n(2, 3, 3, 1), 2),
        "separable_conv": lambda o: o.separable_conv(img, n(3, 3, 3, 2), n(1, 1, 6, 4), 1,
                                                     "same"),
        "conv_transpose valid": lambda o: o.conv_transpose(img, n(3, 3, 2, 3), 2),
        "conv_transpose same": lambda o: o.conv_transpose(img, n(3, 2, 2, 3), 2, "same"),
        "conv_transpose output_padding": lambda o: o.conv_transpose(img, n(3, 3, 2, 3), 2,
                                                                    "same", 1),
        "conv_transpose stride 3": lambda o: o.conv_transpose(img, n(2, 2, 2, 3), 3),
        "conv_transpose dilated": lambda o: o.conv_transpose(img, n(2, 2, 2, 3), 1,
                                                             dilation_rate=2),
        "conv_transpose 1-D": lambda o: o.conv_transpose(seq, n(3, 2, 3), 2, "same"),
        "max_pool same": lambda o: o.max_pool(img, 3, 2, "same"),
        "average_pool same": lambda o: o.average_pool(img, 3, 1, "same"),
        "average_pool 1-D": lambda o: o.average_pool(seq, 2),
        "adaptive_average_pool": lambda o: o.adaptive_average_pool(img, (2, 4)),
        "adaptive_max_pool": lambda o: o.adaptive_max_pool(img, 3),
        "depth_to_space": lambda o: o.depth_to_space(n(1, 2, 3, 8), 2),
        "space_to_depth": lambda o: o.space_to_depth(n(1, 4, 6, 2), 2),
        "unfold": lambda o: o.unfold(o.convert_to_tensor(n(2, 3, 5, 4)), (2, 3), padding=1,
                                     stride=(2, 1)),
        "fold": lambda o: o.fold(o.convert_to_tensor(n(2, 18, 12)), (5, 4), (2, 3), padding=1,
                                 stride=(2, 1)),
        "resize bilinear up": lambda o: o.image.resize(img, (9, 7)),
        "resize bilinear down": lambda o: o.image.resize(img, (3, 4)),
        "resize antialias": lambda o: o.image.resize(img, (2, 3), antialias=True),
        "resize nearest": lambda o: o.image.resize(img, (7, 4), "nearest"),
        "resize crop": lambda o: o.image.resize(img, (4, 4), crop_to_aspect_ratio=True),
        "resize pad": lambda o: o.image.resize(img, (4, 4), pad_to_aspect_ratio=True),
        "affine bilinear": lambda o: o.image.affine_transform(img, transforms),
        "affine nearest reflect": lambda o: o.image.affine_transform(
            img, transforms, "nearest", "reflect"),
        "affine wrap": lambda o: o.image.affine_transform(img, transforms, fill_mode="wrap"),
        "map_coordinates": lambda o: o.image.map_coordinates(img[0, :, :, 0], coords, 1,
                                                             "mirror"),
        "map_coordinates nearest": lambda o: o.image.map_coordinates(img[0, :, :, 0], coords,
                                                                     0, "nearest"),
        "crop": lambda o: o.image.crop_images(img, 1, 2, target_height=3, target_width=3),
        "pad": lambda o: o.image.pad_images(img, 1, 2, target_height=8, target_width=9),
        "grayscale": lambda o: o.image.rgb_to_grayscale(img),
        "hsv": lambda o: o.image.rgb_to_hsv(img), "rgb": lambda o: o.image.hsv_to_rgb(img),
        "extract_patches": lambda o: o.image.extract_patches(img, (2, 3), strides=(2, 1)),
        "top_k": lambda o: o.top_k(x, 2), "in_top_k": lambda o: o.in_top_k(labels, x, 2),
        "segment_max": lambda o: o.segment_max(x, np.array([1, 0, 1]), 2),
        "unique": lambda o: o.unique(np.array([3, 1, 3, 2]), return_counts=True, size=5),
        "quantile": lambda o: o.quantile(x, [0.2, 0.7], axis=1, method="midpoint"),
        "norm nuc": lambda o: o.norm(x, "nuc"), "norm": lambda o: o.norm(x, 3, axis=0),
        "einsum": lambda o: o.einsum("ij,kj->ik", x, y), "kron": lambda o: o.kron(x[:2], y[:2]),
        "cross": lambda o: o.cross(n(4, 3), n(4, 3)), "correlate": lambda o: o.correlate(
            x[0], y[1, :3], "same"), "corrcoef": lambda o: o.corrcoef(x),
        "trapezoid": lambda o: o.trapezoid(x, dx=0.5), "vander": lambda o: o.vander(x[0], 3),
        "cdist": lambda o: o.cdist(x, y), "rearrange": lambda o: o.rearrange(
            img, "b (h h2) w c -> b h (w h2 c)", h2=1),
        "rfft": lambda o: o.rfft(x, 6), "irfft": lambda o: o.irfft((x, y)),
        "fft2": lambda o: o.fft2((x, y)),
        "stft": lambda o: o.stft(n(2, 16), 6, 3, 8),
        "istft": lambda o: o.istft(o.stft(n(2, 16), 6, 3, 8), 6, 3, 8),
        "extract_sequences": lambda o: o.extract_sequences(x, 2, 1),
        "slogdet": lambda o: o.slogdet(x[:3, :3]), "svd values": lambda o: o.svd(
            x, compute_uv=False), "solve_triangular": lambda o: o.solve_triangular(
            x[:3, :3] + 3 * np.eye(3, dtype="float32"), y[:3], lower=True),
        "cholesky_inverse": lambda o: o.cholesky_inverse(np.linalg.cholesky(
            x[:3] @ x[:3].T + np.eye(3, dtype="float32"))),
        "linspace": lambda o: o.linspace(0, 1, 5), "logspace": lambda o: o.logspace(0, 2, 4),
        "arange": lambda o: o.arange(1, 7, 2), "tri": lambda o: o.tri(3, 4, 1),
        "hanning": lambda o: o.hanning(5), "kaiser": lambda o: o.kaiser(5, 2.0),
        "histogram": lambda o: o.histogram(x[0], 4), "digitize": lambda o: o.digitize(x, [0, 1.0]),
        "bincount": lambda o: o.bincount(np.array([0, 3, 3])),
        "searchsorted": lambda o: o.searchsorted(np.array([1.0, 2.0, 3.0]), x),
        "nanargmax": lambda o: o.nanargmax(np.array([[np.nan, 1.0], [np.nan, np.nan]]), axis=1),
        "round": lambda o: o.round(x, 1), "divide_no_nan": lambda o: o.divide_no_nan(x, y * (
            x > 0)), "heaviside": lambda o: o.heaviside(x, 0.5), "sinc": lambda o: o.sinc(x),
        "select": lambda o: o.select([x > 1, x > 0], [x, y], 3.0),
        "nan_to_num": lambda o: o.nan_to_num(np.array([np.nan, np.inf, 1.0]), 2.0, 5.0),
        "clip int": lambda o: o.clip(np.arange(5), 1, 3),
        "saturate_cast": lambda o: o.saturate_cast(300 * x, "uint8"),
    }

    def flat(value):
        if isinstance(value, (list, tuple)):
            return [leaf for item in value for leaf in flat(item)]
        return [np.asarray(K.convert_to_numpy(value), dtype=np.float64)]

    def run(case, library):
        global rng
        rng = np.random.default_rng(11)  # the same fresh arrays for both libraries
        return flat(case(library))

    failures = {}
    for name, case in CASES.items():
        try:
            expected, got = run(case, K), run(case, C)
            if len(expected) != len(got):
                failures[name] = f"{len(got)} outputs, Keras gives {len(expected)}"
                continue
            for e, g in zip(expected, got):
                if e.shape != g.shape:
                    failures[name] = f"shape {g.shape}, Keras gives {e.shape}"
                elif not np.allclose(g, e, rtol=2e-4, atol=2e-5, equal_nan=True):
                    failures[name] = f"max difference {np.nanmax(np.abs(g - e)):.3g}"
        except Exception as error:  # a failure of either library is reported by name
            failures[name] = f"{type(error).__name__}: {error}"

    keras_dtypes.BIT64_TO_BIT32_DTYPE.clear()
    names = ["bool", "uint8", "uint16", "uint32", "int8", "int16", "int32", "int64", "float16",
             "float32", "float64", int, float]
    for a, b in itertools.product(names, repeat=2):
        if keras_dtypes.result_type(a, b) != backend.result_type(a, b):
            failures[f"result_type({a}, {b})"] = (f"{backend.result_type(a, b)}, Keras gives "
                                                  f"{keras_dtypes.result_type(a, b)}")
    json.dump(failures, sys.stdout)
''')


def test_ops_match_keras_3():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": root,
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=env, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{k}: {v}" for k, v in sorted(failures.items()))
