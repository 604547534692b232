"""A table of bad inputs: each gets a ValueError/TypeError naming the layer and argument,
raised in Python before any compiled kernel runs (bounds checks are off in _core)."""
import numpy as np
import pytest

import convnet as keras
from convnet import kernels, layers

X = np.zeros((2, 8, 8, 3), dtype=np.float32)
W = np.zeros((3, 3, 3, 4), dtype=np.float32)

BAD_OPS = {
    "3-D input": (lambda: kernels.conv2d(X[0], W), ValueError, "4-D input"),
    "channel mismatch": (lambda: kernels.conv2d(np.zeros((1, 8, 8, 2)), W), ValueError,
                         "2 channels"),
    "kernel larger than the padded input": (lambda: kernels.conv2d(np.zeros((1, 2, 2, 3)), W),
                                            ValueError, "does not fit"),
    "zero stride": (lambda: kernels.conv2d(X, W, strides=0), ValueError, "strides must be >= 1"),
    "negative dilation": (lambda: kernels.conv2d(X, W, dilation_rate=-1), ValueError,
                          "dilation_rate"),
    "float stride": (lambda: kernels.conv2d(X, W, strides=1.5), TypeError, "strides"),
    "bool stride": (lambda: kernels.conv2d(X, W, strides=True), TypeError, "strides"),
    "negative padding": (lambda: kernels.conv2d(X, W, padding=-1), ValueError, "padding"),
    "unknown padding": (lambda: kernels.conv2d(X, W, padding="full"), ValueError, "padding"),
    "three-part padding": (lambda: kernels.conv2d(X, W, padding=(1, 2, 3)), ValueError, "padding"),
    "empty height": (lambda: kernels.conv2d(np.zeros((1, 0, 8, 3)), W), ValueError, "empty"),
    "complex input": (lambda: kernels.conv2d(X.astype(complex), W), TypeError, "real numbers"),
    "string input": (lambda: kernels.max_pool2d(np.full((1, 2, 2, 1), "a"), 2), TypeError,
                     "real numbers"),
    "integer kernel": (lambda: kernels.conv2d(X, W.astype(int)), TypeError, "dtype"),
    "bias of wrong size": (lambda: kernels.conv2d(X, W, np.zeros(3, np.float32)), ValueError,
                           "bias"),
    "gradient of wrong shape": (lambda: kernels.conv2d_backward(X, W, np.zeros((2, 6, 6, 5))),
                                ValueError, "output gradient"),
    "ReLU output of wrong shape": (lambda: kernels.conv2d_backward(
        X, W, np.zeros((2, 6, 6, 4), np.float32), relu_output=np.zeros((2, 6, 6, 5), np.float32)),
        ValueError, "relu_output"),
    "ReLU output of wrong dtype": (lambda: kernels.conv2d_backward(
        X, W, np.zeros((2, 6, 6, 4), np.float32), relu_output=np.zeros((2, 6, 6, 4))),
        ValueError, "relu_output"),
    "Winograd forced on a 5x5 kernel": (lambda: kernels.conv2d(
        X, np.zeros((5, 5, 3, 4), np.float32), algorithm="winograd"), ValueError,
        r"algorithm='winograd' computes 3x3 .* kernel_size=\(5, 5\)"),
    "Winograd forced at stride 2": (lambda: kernels.conv2d(X, W, strides=2, algorithm="winograd4"),
                                    ValueError, r"stride 1 .* strides=\(2, 2\)"),
    "Winograd forced at dilation 2": (lambda: kernels.conv2d_backward(
        X, W, np.zeros((2, 4, 4, 4), np.float32), dilation_rate=2, algorithm="winograd"),
        ValueError, r"dilation_rate=\(2, 2\)"),
    "unknown algorithm": (lambda: kernels.conv2d(X, W, algorithm="fft"), ValueError,
                          "algorithm must be one of"),
    "kernel_transforms not a dict": (lambda: kernels.conv2d(
        X, W, algorithm="winograd", kernel_transforms=[1]), TypeError, "kernel_transforms"),
    "kernel_transforms of another kernel shape": (lambda: kernels.conv2d(
        X, W, algorithm="winograd", kernel_transforms={
            "winograd": kernels.winograd_kernel_transform(np.zeros((3, 3, 3, 5), np.float32))}),
        ValueError, r"kernel_transforms\['winograd'\]"),
    "Winograd transform of a 5x5 kernel": (lambda: kernels.winograd_kernel_transform(
        np.zeros((5, 5, 3, 4))), ValueError, r"\(3, 3, in_channels, filters\)"),
    "pool window larger than input": (lambda: kernels.max_pool2d(X, 9), ValueError, "pool_size"),
    "pool padding as large as the window": (lambda: kernels.avg_pool2d(X, 2, padding=2),
                                            ValueError, "smaller than pool_size"),
    "forged argmax": (lambda: kernels.max_pool2d_backward(
        np.ones((1, 1, 1, 1)), np.full((1, 1, 1, 1), 99, np.int32), (1, 2, 2, 1)),
        ValueError, "outside"),
    "negative argmax": (lambda: kernels.max_pool2d_backward(
        np.ones((1, 1, 1, 1)), np.full((1, 1, 1, 1), -1, np.int32), (1, 2, 2, 1)),
        ValueError, "outside"),
    "argmax of wrong dtype": (lambda: kernels.max_pool2d_backward(
        np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64), (1, 2, 2, 1)), ValueError,
        "int32"),
    "matmul of mismatched shapes": (lambda: kernels.matmul(np.ones((2, 3)), np.ones((2, 3))),
                                    ValueError, "(2, 3)"),
    "matmul of mixed dtypes": (lambda: kernels.matmul(np.ones((2, 3)), np.ones((3, 2), np.float32)),
                               ValueError, "float32"),
    "matmul into a wrong out": (lambda: kernels.matmul(np.ones((2, 3)), np.ones((3, 2)),
                                                   out=np.empty((2, 3))), ValueError, "out"),
    "non-bool ceil_mode": (lambda: kernels.max_pool2d(X, 2, ceil_mode="yes"), TypeError,
                           "ceil_mode"),
}


BAD_LAYERS = {
    "zero filters": (lambda: layers.Conv2D(0, 3), ValueError, "filters"),
    "bad kernel_size": (lambda: layers.Conv2D(4, (3, 3, 3)), TypeError, "kernel_size"),
    "bad data_format": (lambda: layers.Conv2D(4, 3, data_format="nchw"), ValueError,
                        "data_format"),
    "unknown activation": (lambda: layers.Dense(4, activation="relu7"), ValueError,
                           "activation"),
    "dropout rate 1": (lambda: layers.Dropout(1.0), ValueError, "rate"),
    "bad dtype": (lambda: layers.Dense(4, dtype="int8"), TypeError, "dtype"),
    "unknown keyword": (lambda: layers.Dense(4, unitz=3), TypeError, "unitz"),
    "pool_size 0": (lambda: layers.MaxPooling2D(0), ValueError, "pool_size"),
    "wrong rank into Conv2D": (lambda: layers.Conv2D(2, 3)(np.zeros((4, 4, 3))), ValueError,
                               "Conv2D 'conv2d.*4-D"),
}


BAD_ARGUMENTS = {**{f"kernels: {case}": v for case, v in BAD_OPS.items()},
                 **{f"layers: {case}": v for case, v in BAD_LAYERS.items()}}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_raise_clear_errors(case):
    call, error, message = BAD_ARGUMENTS[case]
    with pytest.raises(error, match=message):
        call()


def _compiled():
    model = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(),
                              layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return model


BAD_DATA = {
    "labels out of range": (lambda m: m.fit(np.zeros((4, 4, 4, 1)), np.array([0, 1, 2, 3]),
                                            verbose=0), ValueError, r"in \[0, 3\)"),
    "negative labels": (lambda m: m.fit(np.zeros((2, 4, 4, 1)), np.array([0, -1]), verbose=0),
                        ValueError, "labels"),
    "labels of wrong shape": (lambda m: m.fit(np.zeros((2, 4, 4, 1)), np.zeros((2, 3)),
                                              verbose=0), ValueError, "labels of shape"),
    "mismatched lengths": (lambda m: m.fit(np.zeros((3, 4, 4, 1)), np.zeros(2, int),
                                           verbose=0), ValueError, "3 samples but y has 2"),
    "empty batch": (lambda m: m.fit(np.zeros((0, 4, 4, 1)), np.zeros(0, int), verbose=0),
                    ValueError, "empty"),
    "wrong image size": (lambda m: m.predict(np.zeros((1, 5, 5, 1))), ValueError,
                         "built for inputs"),
    "zero batch size": (lambda m: m.predict(np.zeros((1, 4, 4, 1)), batch_size=0), ValueError,
                        "batch_size"),
    "uncompiled fit": (lambda m: keras.Sequential([layers.Dense(2)]).fit(np.zeros((1, 2)),
                                                                         np.zeros(1)),
                       ValueError, "compile"),
    "one-hot targets for the sparse loss": (
        lambda m: m.fit(np.zeros((2, 4, 4, 1)), np.eye(3)[:2], verbose=0), ValueError,
        "labels of shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_training_data_raises_clear_errors(case):
    call, error, message = BAD_DATA[case]
    with pytest.raises(error, match=message):
        call(_compiled())


def test_nan_input_propagates_like_pytorch_instead_of_failing():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0] = np.nan
    y = layers.MaxPooling2D(2)(x)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 1, 1, 0])


def test_float16_and_bool_inputs_are_cast_to_the_layer_dtype():
    model = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(2)])
    expected = model.predict(np.ones((1, 4, 4, 1), np.float32))
    assert model.predict(np.ones((1, 4, 4, 1), np.float16)).tobytes() == expected.tobytes()
    assert model.predict(np.ones((1, 4, 4, 1), bool)).tobytes() == expected.tobytes()
