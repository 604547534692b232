"""A table of bad inputs: each gets a ValueError/TypeError naming the layer and argument,
raised in Python before any compiled kernel runs (bounds checks are off in _core)."""
import numpy as np
import pytest

import convnet as keras
from convnet import kernels, layers

from conftest import needs_address_space, run_python

X = np.zeros((2, 8, 8, 3), dtype=np.float32)
W = np.zeros((3, 3, 3, 4), dtype=np.float32)
READ_ONLY = np.zeros((2, 2))
READ_ONLY.flags.writeable = False
BIG = 2 ** 31  # one more than the kernels' C int holds

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
    # Sizes past the kernels' C ints: refused before any output is allocated.
    "stride past int32": (lambda: kernels.conv2d(X, W, strides=BIG), ValueError,
                          "strides must be <= 2147483647"),
    "pool stride past int32": (lambda: kernels.max_pool2d(X, 2, strides=(1, BIG)), ValueError,
                               "strides must be <= 2147483647"),
    "average pool stride past int32": (lambda: kernels.avg_pool2d(X, 2, strides=BIG),
                                       ValueError, "strides"),
    "dilation past int32": (lambda: kernels.conv2d(X, W, dilation_rate=BIG), ValueError,
                            "dilation_rate must be <="),
    "padding past int32": (lambda: kernels.conv2d(X, W, padding=((0, BIG), (0, 0))), ValueError,
                           "padding must be <="),
    "'same' padding past int32": (lambda: kernels.conv2d(
        X, np.zeros((4, 4, 3, 1), np.float32), dilation_rate=BIG - 1, padding="same"),
        ValueError, "padding 'same' comes to"),
    "output past int32": (lambda: kernels.conv2d(X, W, padding=BIG // 2), ValueError,
                          "output would be"),
    # dtype= asks for a dtype the kernels have no version of.
    "pooling to int32": (lambda: kernels.max_pool2d(X, 2, dtype="int32"), TypeError, "dtype"),
    "pooling to float16": (lambda: kernels.avg_pool2d(X, 2, dtype=np.float16), TypeError,
                           "dtype"),
    "global pooling to complex": (lambda: kernels.global_avg_pool2d(X, dtype=complex),
                                  TypeError, "dtype"),
    # A backward pass's input_shape.
    "input_shape of 3 entries": (lambda: kernels.avg_pool2d_backward(
        np.ones((2, 4, 4, 3)), (2, 8, 8), 2), TypeError, "input_shape must be 4 ints"),
    "input_shape of floats": (lambda: kernels.max_pool2d_backward(
        np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32), (1, 2.5, 2, 1)), TypeError,
        "input_shape"),
    "input_shape of strings": (lambda: kernels.avg_pool2d_backward(
        np.ones((2, 4, 4, 3)), (2, "8", 8, 3), 2), TypeError, "input_shape"),
    "input_shape as an int": (lambda: kernels.global_avg_pool2d_backward(
        np.ones((2, 3)), 8), TypeError, "input_shape"),
    "negative input_shape": (lambda: kernels.max_pool2d_backward(
        np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32), (1, -2, 2, 1)), ValueError,
        "input_shape must not be negative"),
    "empty input_shape": (lambda: kernels.max_pool2d_backward(
        np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32), (1, 0, 2, 1)), ValueError,
        "empty"),
    "global pooling gradient of wrong shape": (lambda: kernels.global_avg_pool2d_backward(
        np.ones((2, 4)), X.shape), ValueError, r"output gradient has shape \(2, 4\)"),
    "global max pooling gradient of wrong shape": (lambda: kernels.global_max_pool2d_backward(
        np.ones((3, 3)), np.zeros((2, 1, 1, 3), np.int32), X.shape), ValueError,
        "output gradient"),
    # matmul's out.
    "matmul into a read-only out": (lambda: kernels.matmul(np.ones((2, 2)), np.ones((2, 2)),
                                                           out=READ_ONLY), ValueError,
                                    "writeable.*got read-only"),
    "matmul into a strided out": (lambda: kernels.matmul(np.ones((2, 2)), np.ones((2, 2)),
                                                         out=np.empty((2, 4))[:, ::2]),
                                  ValueError, "C-contiguous"),
    "matmul into a list": (lambda: kernels.matmul(np.ones((2, 2)), np.ones((2, 2)),
                                                  out=[[0, 0], [0, 0]]), ValueError, "got list"),
    "matmul into a big-endian out": (lambda: kernels.matmul(np.ones((2, 2)), np.ones((2, 2)),
                                                            out=np.empty((2, 2), ">f8")),
                                     ValueError, "out must be"),
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
    "units past int32": (lambda: layers.Dense(BIG), ValueError, "units must be <="),
    "ReLU max_value NaN": (lambda: layers.ReLU(max_value=float("nan")), ValueError,
                           "max_value must be a number >= 0, got nan"),
    "ReLU threshold inf": (lambda: layers.ReLU(threshold=float("inf")), ValueError,
                           "threshold must be a finite number"),
    "ReLU negative_slope NaN": (lambda: layers.ReLU(negative_slope=float("nan")), ValueError,
                                "negative_slope must be a finite number"),
    "ReLU negative_slope inf": (lambda: layers.ReLU(negative_slope=float("inf")), ValueError,
                                "negative_slope"),
    "ReLU negative_slope None": (lambda: layers.ReLU(negative_slope=None), ValueError,
                                 "negative_slope"),
    "ReLU threshold string": (lambda: layers.ReLU(threshold="1"), ValueError, "threshold"),
    "ZeroPadding2D of 10**9": (lambda: layers.ZeroPadding2D(10 ** 9), ValueError,
                               "padding 1000000000 would make even a 1x1 image"),
    "ZeroPadding2D past int32": (lambda: layers.ZeroPadding2D(((0, BIG), (0, 0))), ValueError,
                                 "padding"),
    "Dropout noise_shape of floats": (lambda: layers.Dropout(0.5, noise_shape=[1.5, None]),
                                      TypeError, "noise_shape must be a tuple of ints"),
    "Dropout noise_shape as a string": (lambda: layers.Dropout(0.5, noise_shape="ab"),
                                        TypeError, "noise_shape"),
    "Dropout noise_shape of zero": (lambda: layers.Dropout(0.5, noise_shape=(0, 1)), ValueError,
                                    "noise_shape entries must be >= 1"),
    "Dropout noise_shape that does not fit the input": (
        lambda: layers.Dropout(0.5, noise_shape=[10 ** 6, 10 ** 6])(np.ones((2, 3)),
                                                                    training=True),
        ValueError, r"noise_shape \(1000000, 1000000\) does not broadcast against the input "
                    r"of shape \(2, 3\)"),
    "Dropout noise_shape of the wrong rank": (
        lambda: layers.Dropout(0.5, noise_shape=(None, 1))(np.ones((2, 3, 4)), training=True),
        ValueError, "does not broadcast"),
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
    "export to a format convnet does not write": (
        lambda m: m.export("m.onnx", format="tf_saved_model"), ValueError,
        "unsupported format 'tf_saved_model'; convnet exports to 'onnx'"),
    "save under Keras 2's legacy .h5 name": (
        lambda m: m.save("model.h5"), ValueError, "legacy HDF5 format.*'.keras'"),
    "save to .keras what Keras cannot express": (
        lambda m: keras.Sequential([keras.Input((4, 4, 1)), layers.MaxPooling2D(
            3, ceil_mode=True)]).save("never.keras"), ValueError,
        "MaxPooling2D 'max_pooling2d.*': ceil_mode=True has no equivalent in Keras' format"),
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


# Refusals whose inputs are gigabytes of zero pages (address space, not memory), and whose
# regression would run a kernel over them: each runs in a child interpreter.
HUGE_INPUTS = {
    "conv2d with kh*kw*in_channels past int32 (OpenBLAS: 'illegal value', a wrong result)": (
        "kernels.conv2d(np.zeros((1, 1, 1, 2**31), np.float32), "
        "np.zeros((1, 1, 2**31, 1), np.float32))", "ValueError", r"kh\*kw\*in_channels"),
    "matmul of a matrix with rows past int32": (
        "kernels.matmul(np.zeros((1, 2**31), np.float32), np.zeros((2**31, 1), np.float32))",
        "ValueError", "rows longer than 2147483647"),
    "max_pool2d_backward with a negative argmax over 2**31 pixels an image": (
        "kernels.max_pool2d_backward(np.ones((1, 1, 1, 1)), "
        "np.full((1, 1, 1, 1), -2**31, np.int32), (1, 2**16, 2**15 + 1, 1))", "ValueError",
        r"more than 2\*\*31 - 1 pixels"),
}


@needs_address_space
def test_huge_inputs_are_refused_in_a_child_interpreter(tmp_path):
    result = run_python(f"""
        import re, sys
        import numpy as np
        from convnet import kernels
        failed = False
        for label, (code, error, message) in {HUGE_INPUTS!r}.items():
            try:
                eval(code)
                outcome, failed = "ACCEPTED", True
            except Exception as e:
                right = type(e).__name__ == error and re.search(message, str(e))
                outcome = f"{{'ok' if right else 'WRONG'}} {{type(e).__name__}}: {{e}}"
                failed = failed or not right
            print(label, "->", outcome, flush=True)
        sys.exit(1 if failed else 0)
    """, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
