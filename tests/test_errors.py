"""A table of bad inputs: each gets a ValueError/TypeError naming the layer and argument,
raised in Python before any compiled kernel runs (bounds checks are off in _core)."""
import numpy as np
import pytest

import convnet as keras
from convnet import kernels, layers, ops

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


def _gradient_of(loss_fn):
    """tape.gradient of loss_fn(v) for a trainable float64 Variable v."""
    v = keras.Variable(np.arange(6.0).reshape(2, 3) - 2.5, dtype="float64", name="kernel")
    with keras.GradientTape() as tape:
        loss = loss_fn(v)
    return tape.gradient(loss, [v])


def _traced(action):
    """action(t) on a value traced on the tape."""
    v = keras.Variable(np.ones((2, 3)), dtype="float64")
    with keras.GradientTape():
        return action(ops.exp(v))


def _fit_through_argmax():
    inputs = keras.Input((3,))
    outputs = ops.one_hot(ops.argmax(layers.Dense(4)(inputs), axis=-1), 4)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    model.fit(np.ones((2, 3)), np.ones((2, 4)), verbose=0)


def _write_in_place(t):
    t[0, 0] = 1.0


def _write_array_in_place(t):
    np.asarray(t)[0, 0] = 1.0


BAD_OP_CALLS = {
    "loss only through argmax": (lambda: _gradient_of(lambda v: ops.mean(ops.cast(
        ops.argmax(v, axis=1), "float64"))), TypeError, "kernel.*only through argmax"),
    "loss only through a comparison": (lambda: _gradient_of(lambda v: ops.sum(ops.cast(
        v > 0, "float64"))), TypeError, "only through greater"),
    "loss only through round": (lambda: _gradient_of(lambda v: ops.sum(ops.round(v))),
                                TypeError, "only through round.*stop_gradient"),
    "fit through argmax": (_fit_through_argmax, TypeError, "only through argmax"),
    "item write into a traced tensor": (lambda: _traced(_write_in_place), TypeError,
                                        "made by exp.*in place"),
    "write through np.asarray of a traced tensor": (lambda: _traced(_write_array_in_place),
                                                    ValueError, "read-only"),
    "ufunc out= a traced tensor": (lambda: _traced(lambda t: np.add(t, 1, out=t)), TypeError,
                                   "numpy.add cannot write into a traced tensor"),
    "numpy function with no op on a traced tensor": (lambda: _traced(np.gradient), TypeError,
                                                     "numpy.gradient.*not recorded"),
    "numpy function with no op on a symbolic tensor": (
        lambda: np.gradient(keras.Input((3,))), TypeError, "numpy.gradient on a symbolic"),
    "3-D convolution": (lambda: ops.conv(np.zeros((1, 4, 4, 4, 1)), np.zeros((2, 2, 2, 1, 1))),
                        ValueError, "ops.conv: .*3-D"),
    "3-D pooling": (lambda: ops.max_pool(np.zeros((1, 4, 4, 4, 1)), 2), ValueError,
                    "ops.max_pool: .*3-D"),
    "conv padding": (lambda: ops.conv(np.zeros((1, 4, 4, 1)), np.zeros((2, 2, 1, 1)),
                                      padding="full"), ValueError, "ops.conv: padding"),
    "conv channels": (lambda: ops.conv(np.zeros((1, 4, 4, 3)), np.zeros((2, 2, 2, 1))),
                      ValueError, "ops.conv: the input's 3 channels"),
    "unknown op in a model file": (lambda: ops.operation.Operation.from_config(
        {"op": "os.system", "args": [], "kwargs": {}}), ValueError, "unknown op"),
    "bfloat16 array": (lambda: ops.zeros((2,), "bfloat16"), TypeError, "no bfloat16"),
    "unknown dtype": (lambda: ops.cast(np.ones(2), "float128"), ValueError, "Invalid dtype"),
    "rot90 of a vector": (lambda: ops.rot90(np.ones(3)), ValueError, "rot90"),
    "cross of 4-vectors": (lambda: ops.cross(np.ones(4), np.ones(4)), ValueError, "cross"),
    "einsum operand count": (lambda: ops.einsum("ij,jk", np.ones((2, 2))), ValueError,
                             "einsum"),
    "crossentropy shapes": (lambda: ops.categorical_crossentropy(np.ones((2, 3)),
                                                                 np.ones((2, 4))),
                            ValueError, "categorical_crossentropy"),
    "resize method": (lambda: ops.image.resize(np.ones((1, 4, 4, 1)), (2, 2), "area"),
                      ValueError, "image.resize: interpolation"),
}


BAD_ARGUMENTS = {**{f"kernels: {case}": v for case, v in BAD_OPS.items()},
                 **{f"layers: {case}": v for case, v in BAD_LAYERS.items()},
                 **{f"ops: {case}": v for case, v in BAD_OP_CALLS.items()}}


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
