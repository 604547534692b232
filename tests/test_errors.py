"""A table of bad inputs: each gets a ValueError/TypeError naming the layer and argument,
raised in Python before any compiled kernel runs (bounds checks are off in _core)."""
import numpy as np
import pytest

import convnet as keras
import convnet.distributed as hvd
from convnet import kernels, layers, ops

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
    "groups not dividing the filters": (lambda: kernels.conv2d(
        np.zeros((1, 8, 8, 6), np.float32), np.zeros((3, 3, 2, 4), np.float32), groups=3),
        ValueError, "groups=3 must divide the kernel's 4 filters"),
    "channels not matching groups": (lambda: kernels.conv2d(
        np.zeros((1, 8, 8, 5), np.float32), np.zeros((3, 3, 2, 6), np.float32), groups=3),
        ValueError, r"5 channels .* expects 6 \(2 per group x groups=3\)"),
    "zero groups": (lambda: kernels.conv2d(X, W, groups=0), ValueError, "groups must be >= 1"),
    "float groups": (lambda: kernels.conv2d(X, W, groups=1.5), TypeError, "groups"),
    "input_shape of 3 numbers": (lambda: kernels.conv2d_backward_input(
        np.zeros((2, 6, 6, 4), np.float32), W, (8, 8, 3)), TypeError, "input_shape"),
    "input gradient of wrong shape": (lambda: kernels.conv2d_backward_input(
        np.zeros((2, 5, 6, 4), np.float32), W, X.shape), ValueError, "output gradient"),
    "depthwise kernel of wrong channels": (lambda: kernels.depthwise_conv2d(
        X, np.zeros((3, 3, 4, 2), np.float32)), ValueError, "3 channels"),
    "depthwise bias of in_channels only": (lambda: kernels.depthwise_conv2d(
        X, np.zeros((3, 3, 3, 2), np.float32), np.zeros(3, np.float32)), ValueError,
        r"bias must have shape \(6,\)"),
    "depthwise 3-D kernel": (lambda: kernels.depthwise_conv2d(X, np.zeros((3, 3, 3))),
                             ValueError, "depth_multiplier"),
    "depthwise gradient of wrong shape": (lambda: kernels.depthwise_conv2d_backward(
        X, np.zeros((3, 3, 3, 1), np.float32), np.zeros((2, 6, 6, 2), np.float32)),
        ValueError, "output gradient"),
    "transpose with explicit padding": (lambda: kernels.conv2d_transpose(
        X, np.zeros((3, 3, 4, 3), np.float32), padding=1), ValueError, "'valid' or 'same'"),
    "transpose output_padding not below strides": (lambda: kernels.conv2d_transpose(
        X, np.zeros((3, 3, 4, 3), np.float32), strides=2, output_padding=2), ValueError,
        "output_padding"),
    "transpose kernel of wrong input channels": (lambda: kernels.conv2d_transpose(
        X, np.zeros((3, 3, 3, 4), np.float32)), ValueError, "expects 4"),
    "transpose with an empty output": (lambda: kernels.conv2d_transpose(
        np.zeros((1, 1, 1, 3), np.float32), np.zeros((2, 2, 4, 3), np.float32), None, 1, "same", 0),
        ValueError, "empty output"),
    "transpose gradient of wrong shape": (lambda: kernels.conv2d_transpose_backward(
        X, np.zeros((3, 3, 4, 3), np.float32), np.zeros((2, 8, 8, 4), np.float32)),
        ValueError, "output gradient"),
    "batch norm of a vector": (lambda: kernels.batch_norm_train(np.zeros(5)), ValueError,
                               "at least 2 dimensions"),
    "batch norm gamma of wrong size": (lambda: kernels.batch_norm_train(
        X, np.ones(4, np.float32)), ValueError, r"gamma must have shape \(3,\)"),
    "batch norm beta of wrong dtype": (lambda: kernels.batch_norm_train(X, None, np.zeros(3)),
                                       ValueError, "beta .* float32"),
    "batch norm negative epsilon": (lambda: kernels.batch_norm_train(X, epsilon=-1),
                                    ValueError, "epsilon"),
    "batch norm string epsilon": (lambda: kernels.batch_norm_train(X, epsilon="small"),
                                  TypeError, "epsilon"),
    "batch norm of an empty batch": (lambda: kernels.batch_norm_train(X[:0]), ValueError,
                                     "empty"),
    "batch norm gradient of wrong shape": (lambda: kernels.batch_norm_train_backward(
        X, X[:1], np.zeros(3, np.float32), np.ones(3, np.float32)), ValueError,
        "output gradient"),
    "batch norm ReLU output of wrong shape": (lambda: kernels.batch_norm_train_backward(
        X, X, np.zeros(3, np.float32), np.ones(3, np.float32), relu_output=X[:1]), ValueError,
        "relu_output"),
    "batch norm inference without moving variance": (lambda: kernels.batch_norm_inference(
        X, None, None, np.zeros(3, np.float32), None), ValueError, "moving_variance"),
    "fold of mismatched statistics": (lambda: kernels.fold_batch_norm(
        W, None, None, None, np.zeros(3, np.float32), np.ones(3, np.float32)), ValueError,
        r": mean must have shape \(4,\)"),
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


# -- shape, regularization, activation, normalization and preprocessing layers (issue 14) --
IMAGES = np.zeros((2, 5, 6, 3), dtype=np.float32)


def _adapt(layer, data, built_for=None):
    if built_for is not None:
        layer.build(built_for)
    layer.adapt(data)


BAD_OPS.update({
    "resize to size 0": (lambda: kernels.resize_bilinear(X, (0, 4)), ValueError, "size"),
    "resize of a 3-D input": (lambda: kernels.resize_bilinear(X[0], (4, 4)), ValueError,
                              "4-D input"),
    "resize gradient of another batch": (lambda: kernels.resize_bilinear_backward(
        np.zeros((3, 4, 4, 3)), X.shape), ValueError, "does not match the input shape"),
    "resize gradient for a bad input_shape": (lambda: kernels.resize_bilinear_backward(
        np.zeros((2, 4, 4, 3)), (2, 8, 3)), TypeError, "input_shape"),
    "nearest resize gradient for an empty input": (lambda: kernels.resize_nearest_backward(
        np.zeros((2, 4, 4, 3)), (2, 0, 8, 3)), ValueError, "empty"),
    "layer norm of a 3-D input": (lambda: kernels.layer_norm(X[0]), ValueError, "2-D input"),
    "layer norm of rows of nothing": (lambda: kernels.layer_norm(np.zeros((3, 0))), ValueError,
                                      "0 values"),
    "layer norm negative epsilon": (lambda: kernels.layer_norm(np.ones((2, 3)), epsilon=-1.0),
                                    ValueError, "epsilon"),
    "layer norm gamma of another size": (lambda: kernels.layer_norm(np.ones((2, 3)),
                                                                    np.ones(4)),
                                         ValueError, "gamma must have shape"),
    "layer norm beta of another dtype": (lambda: kernels.layer_norm(
        np.ones((2, 3)), None, np.ones(3, np.float32)), ValueError, "beta .*dtype"),
    "layer norm gradient of another shape": (lambda: kernels.layer_norm_backward(
        np.ones((2, 3)), np.ones((2, 4)), None, np.ones(2), np.ones(2)), ValueError,
        "output gradient"),
    "layer norm mean of another dtype": (lambda: kernels.layer_norm_backward(
        np.ones((2, 3)), np.ones((2, 3)), None, np.ones(2, np.float32), np.ones(2)),
        ValueError, "mean must have shape"),
})

BAD_LAYERS_OF_ISSUE_14 = {
    "Reshape with two -1": (lambda: layers.Reshape((-1, -1)), ValueError, "target_shape"),
    "Reshape to a 0 size": (lambda: layers.Reshape((0, 4)), ValueError, "target_shape"),
    "Reshape to an int": (lambda: layers.Reshape(5), TypeError, "target_shape"),
    "Reshape of the wrong size": (lambda: layers.Reshape((7,))(IMAGES), ValueError,
                                  r"Reshape 'reshape.*cannot reshape examples of shape "
                                  r"\(5, 6, 3\)"),
    "Permute not a permutation": (lambda: layers.Permute((1, 3)), ValueError, "dims"),
    "Permute of the wrong rank": (lambda: layers.Permute((2, 1))(IMAGES), ValueError,
                                  "Permute 'permute.*expects 3-D"),
    "UpSampling2D size 0": (lambda: layers.UpSampling2D(0), ValueError, "size"),
    "UpSampling2D bicubic": (lambda: layers.UpSampling2D(interpolation="bicubic"), ValueError,
                             "interpolation"),
    "UpSampling2D interpolation not a string": (lambda: layers.UpSampling2D(interpolation=1),
                                                TypeError, "interpolation"),
    "Cropping2D negative": (lambda: layers.Cropping2D(-1), ValueError, "cropping"),
    "Cropping2D three parts": (lambda: layers.Cropping2D((1, 2, 3)), ValueError, "cropping"),
    "Cropping2D of floats": (lambda: layers.Cropping2D((1.5, 2)), TypeError, "cropping"),
    "Cropping2D everything": (lambda: layers.Cropping2D(((3, 2), (0, 0)))(IMAGES), ValueError,
                              "Cropping2D 'cropping2d.*removes all of the height"),
    "SpatialDropout2D rate 1": (lambda: layers.SpatialDropout2D(1.0), ValueError, "rate"),
    "SpatialDropout2D data_format": (lambda: layers.SpatialDropout2D(0.1, "nhwc"), ValueError,
                                     "data_format"),
    "SpatialDropout2D negative seed": (lambda: layers.SpatialDropout2D(0.1, seed=-1),
                                       ValueError, "seed"),
    "SpatialDropout2D of 3-D inputs": (lambda: layers.SpatialDropout2D(0.1)(IMAGES[0]),
                                       ValueError, "expects 4-D"),
    "GaussianNoise stddev above 1": (lambda: layers.GaussianNoise(2.0), ValueError, "stddev"),
    "GaussianNoise stddev a string": (lambda: layers.GaussianNoise("0.1"), TypeError,
                                      "stddev"),
    "GaussianNoise seed a float": (lambda: layers.GaussianNoise(0.1, seed=1.5), ValueError,
                                   "seed"),
    "GaussianDropout rate 1": (lambda: layers.GaussianDropout(1.0), ValueError, "rate"),
    "ActivityRegularization negative l1": (lambda: layers.ActivityRegularization(l1=-1.0),
                                           ValueError, "l1"),
    "ActivityRegularization infinite l2": (lambda: layers.ActivityRegularization(
        l2=float("inf")), ValueError, "l2"),
    "LeakyReLU negative slope": (lambda: layers.LeakyReLU(-0.1), ValueError, "negative_slope"),
    "LeakyReLU slope None": (lambda: layers.LeakyReLU(None), ValueError, "negative_slope"),
    "ELU alpha NaN": (lambda: layers.ELU(float("nan")), ValueError, "alpha"),
    "PReLU shared axis 0": (lambda: layers.PReLU(shared_axes=0), ValueError, "shared_axes"),
    "PReLU shared axis past the rank": (lambda: layers.PReLU(shared_axes=4)(IMAGES),
                                        ValueError, "PReLU 'p_re_lu.*shared_axes"),
    "PReLU unknown initializer": (lambda: layers.PReLU("zero_ish"), ValueError, "initializer"),
    "LayerNormalization axis a string": (lambda: layers.LayerNormalization("x"), TypeError,
                                         "axis"),
    "LayerNormalization axis out of range": (lambda: layers.LayerNormalization(4)(IMAGES),
                                             ValueError, "out of range"),
    "LayerNormalization over the batch": (lambda: layers.LayerNormalization([0, 1])(IMAGES),
                                          ValueError, "batch axis"),
    "LayerNormalization negative epsilon": (lambda: layers.LayerNormalization(epsilon=-1.0),
                                            ValueError, "epsilon"),
    "LayerNormalization center not a bool": (lambda: layers.LayerNormalization(center="yes"),
                                             TypeError, "center"),
    "Normalization mean alone": (lambda: layers.Normalization(mean=1.0), ValueError,
                                 "both mean and variance"),
    "Normalization shapes differ": (lambda: layers.Normalization(mean=[1, 2], variance=[1]),
                                    ValueError, "same shape"),
    "Normalization negative variance": (lambda: layers.Normalization(mean=0, variance=-1),
                                        ValueError, "variance must be >= 0"),
    "Normalization mean of too many axes": (lambda: layers.Normalization(
        mean=[[1.0]], variance=[[1.0]]), ValueError, "more axes"),
    "Normalization axis a string": (lambda: layers.Normalization(axis="c"), TypeError, "axis"),
    "Normalization invert not a bool": (lambda: layers.Normalization(invert=1), TypeError,
                                        "invert"),
    "Normalization axis out of range": (lambda: layers.Normalization(axis=5)(IMAGES),
                                        ValueError, "out of range"),
    "Normalization adapt when given": (lambda: _adapt(layers.Normalization(mean=0, variance=1),
                                                      IMAGES), ValueError, "adapt"),
    "Normalization adapt on nothing": (lambda: _adapt(layers.Normalization(), []), ValueError,
                                       "no batches"),
    "Normalization adapt on strings": (lambda: _adapt(layers.Normalization(),
                                                      np.array([["a"]])), TypeError,
                                       "real numbers"),
    "Normalization adapt of another shape": (lambda: _adapt(
        layers.Normalization(), np.zeros((3, 5)), built_for=(None, 4)), ValueError,
        "built for inputs"),
    "Rescaling scale a string": (lambda: layers.Rescaling("half"), TypeError, "scale"),
    "Rescaling infinite offset": (lambda: layers.Rescaling(1.0, float("inf")), ValueError,
                                  "offset"),
    "Rescaling scale that enlarges the input": (lambda: layers.Rescaling([1.0, 2.0])(IMAGES),
                                                ValueError, "broadcast"),
    "Resizing height 0": (lambda: layers.Resizing(0, 4), ValueError, "height"),
    "Resizing bicubic": (lambda: layers.Resizing(4, 4, "bicubic"), ValueError,
                         "interpolation"),
    "Resizing both aspect ratios": (lambda: layers.Resizing(
        4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError, "only one"),
    "Resizing antialias": (lambda: layers.Resizing(4, 4, antialias=True), ValueError,
                           "antialias"),
    "Resizing fill_mode": (lambda: layers.Resizing(4, 4, fill_mode="reflect"), ValueError,
                           "fill_mode"),
    "CenterCrop width 0": (lambda: layers.CenterCrop(4, 0), ValueError, "width"),
}


@pytest.mark.parametrize("case", sorted(BAD_LAYERS_OF_ISSUE_14))
def test_bad_arguments_of_the_issue_14_layers_raise_clear_errors(case):
    call, error, message = BAD_LAYERS_OF_ISSUE_14[case]
    with pytest.raises(error, match=message):
        call()
# -- end of the issue 14 layers --


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
    # Issue 14: grouped, depthwise, separable and transposed convolutions, batch normalization
    "Conv2D groups not dividing filters": (lambda: layers.Conv2D(6, 3, groups=4), ValueError,
                                           r"Conv2D 'conv2d.*groups=4 must divide filters=6"),
    "Conv2D groups not dividing the input channels": (
        lambda: layers.Conv2D(6, 3, groups=3)(np.zeros((1, 5, 5, 4), np.float32)), ValueError,
        r"Conv2D 'conv2d.*groups=3 must divide the input's 4 channels"),
    "Conv2D groups 0": (lambda: layers.Conv2D(6, 3, groups=0), ValueError, "groups must be >= 1"),
    "Conv2D groups float": (lambda: layers.Conv2D(6, 3, groups=1.5), TypeError, "groups"),
    "DepthwiseConv2D depth_multiplier 0": (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0),
                                           ValueError, "DepthwiseConv2D.*depth_multiplier"),
    "DepthwiseConv2D kernel larger than the input": (
        lambda: layers.DepthwiseConv2D(5)(np.zeros((1, 3, 3, 2), np.float32)), ValueError,
        "DepthwiseConv2D.*does not fit"),
    "DepthwiseConv2D unknown channels": (
        lambda: layers.DepthwiseConv2D(3)(keras.Input((5, 5, None))), ValueError,
        "channel dimension of the input must be known"),
    "SeparableConv2D filters 0": (lambda: layers.SeparableConv2D(0, 3), ValueError,
                                  "SeparableConv2D.*filters"),
    "SeparableConv2D bad padding": (lambda: layers.SeparableConv2D(2, 3, padding="full"),
                                    ValueError, "SeparableConv2D.*padding"),
    "Conv2DTranspose output_padding not below strides": (
        lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError,
        r"Conv2DTranspose.*output_padding \(2, 2\) must be smaller than strides"),
    "Conv2DTranspose output_padding with stride 1": (
        lambda: layers.Conv2DTranspose(2, 3, output_padding=(0, 1)), ValueError,
        "output_padding"),
    "Conv2DTranspose negative output_padding": (
        lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=-1), ValueError,
        "output_padding must be >= 0"),
    "Conv2DTranspose strides with dilation": (
        lambda: layers.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), ValueError,
        "strides > 1 together with dilation_rate > 1"),
    "Conv2DTranspose explicit padding": (lambda: layers.Conv2DTranspose(2, 3, padding=1),
                                         ValueError, "Conv2DTranspose.*'valid' or 'same'"),
    "Conv2DTranspose empty output": (
        lambda: layers.Conv2DTranspose(2, 2, padding="same", output_padding=0)(
            np.zeros((1, 1, 1, 3), np.float32)), ValueError, "empty output"),
    "BatchNormalization axis out of range": (
        lambda: layers.BatchNormalization(axis=4)(np.zeros((2, 3, 3, 2), np.float32)),
        ValueError, r"BatchNormalization 'batch_normalization.*axis=4 is out of range"),
    "BatchNormalization axis as a float": (lambda: layers.BatchNormalization(axis=1.0),
                                           TypeError, "axis must be an int"),
    "BatchNormalization axis as a list": (lambda: layers.BatchNormalization(axis=[1, 2]),
                                          TypeError, "axis must be an int"),
    "BatchNormalization momentum 1.5": (lambda: layers.BatchNormalization(momentum=1.5),
                                        ValueError, "momentum"),
    "BatchNormalization epsilon nan": (lambda: layers.BatchNormalization(epsilon=float("nan")),
                                       ValueError, "epsilon"),
    "BatchNormalization negative epsilon": (lambda: layers.BatchNormalization(epsilon=-1e-3),
                                            ValueError, "epsilon"),
    "BatchNormalization center as a string": (lambda: layers.BatchNormalization(center="no"),
                                              TypeError, "center"),
    "BatchNormalization synchronized": (lambda: layers.BatchNormalization(synchronized=True),
                                        ValueError, "synchronized=True is not supported"),
    "BatchNormalization renorm": (lambda: layers.BatchNormalization(renorm=True), ValueError,
                                  "renorm=True"),
    "BatchNormalization unknown channels": (
        lambda: layers.BatchNormalization()(keras.Input((4, 4, None))), ValueError,
        "size of axis -1 must be known"),
    "BatchNormalization empty batch in training": (
        lambda: layers.BatchNormalization()(np.zeros((0, 3), np.float32), training=True),
        ValueError, "empty input"),
    "BatchNormalization input of the wrong size": (
        lambda: (lambda bn: (bn(np.zeros((2, 3), np.float32)), bn(np.zeros((2, 4), np.float32))))(
            layers.BatchNormalization()), ValueError, r"built for inputs of shape \(None, 3\)"),
}


BAD_DISTRIBUTED = {  # before init(): nothing here may import mpi4py
    "rank before init": (lambda: hvd.rank(), ValueError, r"rank: call .*init\(\) first"),
    "allreduce before init": (lambda: hvd.allreduce(1.0), ValueError, r"allreduce: call"),
    "broadcast_weights before init": (lambda: hvd.broadcast_weights(keras.Sequential()), ValueError,
                                      r"broadcast_weights: call"),
    "DistributedOptimizer of a number": (lambda: hvd.DistributedOptimizer(3), ValueError,
                                         "Unknown optimizer 3"),
    "schedule without initial_lr": (lambda: hvd.callbacks.LearningRateScheduleCallback(
        None, 0.5), ValueError, "LearningRateScheduleCallback: initial_lr is required"),
}


NAN, INF = float("nan"), float("inf")
opt, sched = keras.optimizers, keras.optimizers.schedules

# Settings that would poison training later are refused when they are made (issue 12).
BAD_TRAINING = {
    "SGD learning_rate inf": (lambda: opt.SGD(learning_rate=INF), ValueError, "learning_rate"),
    "SGD learning_rate nan": (lambda: opt.SGD(learning_rate=NAN), ValueError, "learning_rate"),
    "SGD learning_rate 0": (lambda: opt.SGD(learning_rate=0), ValueError, "learning_rate"),
    "SGD learning_rate -1": (lambda: opt.SGD(learning_rate=-1), ValueError, "learning_rate"),
    "SGD learning_rate string": (lambda: opt.SGD(learning_rate="0.1"), TypeError,
                                 "learning_rate"),
    "learning_rate set to nan": (lambda: setattr(opt.Adam(), "learning_rate", NAN), ValueError,
                                 "learning_rate"),
    "SGD momentum 1.5": (lambda: opt.SGD(momentum=1.5), ValueError, "SGD: momentum"),
    "SGD momentum nan": (lambda: opt.SGD(momentum=NAN), ValueError, "momentum"),
    "Adam beta_1 nan": (lambda: opt.Adam(beta_1=NAN), ValueError, "Adam: beta_1"),
    "Adam beta_1 1 (divides by zero)": (lambda: opt.Adam(beta_1=1), ValueError, "beta_1"),
    "Adam beta_2 1.5": (lambda: opt.Adam(beta_2=1.5), ValueError, "beta_2"),
    "Adam epsilon 0": (lambda: opt.Adam(epsilon=0), ValueError, "epsilon"),
    "Adam weight_decay nan": (lambda: opt.Adam(weight_decay=NAN), ValueError, "weight_decay"),
    "SGD weight_decay -1": (lambda: opt.SGD(weight_decay=-1), ValueError, "weight_decay"),
    "AdamW weight_decay None": (lambda: opt.AdamW(weight_decay=None), ValueError,
                                "weight_decay"),
    "RMSprop rho nan": (lambda: opt.RMSprop(rho=NAN), ValueError, "RMSprop: rho"),
    "RMSprop rho 1": (lambda: opt.RMSprop(rho=1), ValueError, "rho"),
    "Nadam beta_1 -0.1": (lambda: opt.Nadam(beta_1=-0.1), ValueError, "beta_1"),
    "Lion beta_1 0": (lambda: opt.Lion(beta_1=0), ValueError, "Lion: beta_1"),
    "Adagrad negative accumulator": (lambda: opt.Adagrad(initial_accumulator_value=-1),
                                     ValueError, "initial_accumulator_value"),
    "clipnorm -1": (lambda: opt.Adam(clipnorm=-1), ValueError, "clipnorm"),
    "clipvalue inf": (lambda: opt.Adam(clipvalue=INF), ValueError, "clipvalue"),
    "global_clipnorm nan": (lambda: opt.SGD(global_clipnorm=NAN), ValueError,
                            "global_clipnorm"),
    "two clips": (lambda: opt.SGD(clipnorm=1.0, clipvalue=1.0), ValueError, "only one of"),
    "nesterov as a string": (lambda: opt.SGD(nesterov="yes"), TypeError, "nesterov"),
    "CosineDecay decay_steps 0": (lambda: sched.CosineDecay(0.1, decay_steps=0), ValueError,
                                  "decay_steps"),
    "CosineDecay alpha 2": (lambda: sched.CosineDecay(0.1, 10, alpha=2), ValueError, "alpha"),
    "CosineDecay warmup_target nan": (lambda: sched.CosineDecay(0.1, 10, warmup_target=NAN),
                                      ValueError, "warmup_target"),
    "ExponentialDecay decay_steps nan": (lambda: sched.ExponentialDecay(0.1, NAN, 0.5),
                                         ValueError, "decay_steps"),
    "ExponentialDecay decay_rate 0": (lambda: sched.ExponentialDecay(0.1, 10, 0), ValueError,
                                      "decay_rate"),
    "ExponentialDecay rate inf": (lambda: sched.ExponentialDecay(INF, 10, 0.5), ValueError,
                                  "initial_learning_rate"),
    "PiecewiseConstantDecay boundaries not increasing": (
        lambda: sched.PiecewiseConstantDecay([5, 3], [0.1, 0.2, 0.3]), ValueError,
        "strictly increasing"),
    "PiecewiseConstantDecay lengths": (lambda: sched.PiecewiseConstantDecay([5], [0.1]),
                                       ValueError, "one more entry"),
    "PiecewiseConstantDecay negative value": (
        lambda: sched.PiecewiseConstantDecay([5], [0.1, -0.1]), ValueError, "values"),
    "PolynomialDecay power -1": (lambda: sched.PolynomialDecay(0.1, 10, power=-1), ValueError,
                                 "power"),
    "InverseTimeDecay decay_rate -1": (lambda: sched.InverseTimeDecay(0.1, 10, -1), ValueError,
                                       "decay_rate"),
    "CosineDecayRestarts shrinking periods": (
        lambda: sched.CosineDecayRestarts(0.1, 10, t_mul=0.5), ValueError, "t_mul"),
    "loss reduction": (lambda: keras.losses.MeanSquaredError(reduction="avg"), ValueError,
                       "reduction"),
    "Huber delta 0": (lambda: keras.losses.Huber(delta=0), ValueError, "delta"),
    "label_smoothing 1.5": (lambda: keras.losses.BinaryCrossentropy(label_smoothing=1.5),
                            ValueError, "label_smoothing"),
    "from_logits as a string": (lambda: keras.losses.CategoricalCrossentropy(from_logits="no"),
                                TypeError, "from_logits"),
    "sample_weight of the wrong length": (
        lambda: keras.losses.MeanSquaredError()(np.zeros((4, 2)), np.zeros((4, 2)),
                                                sample_weight=np.ones(3)),
        ValueError, "sample_weight of shape"),
    "sample_weight of strings": (
        lambda: keras.losses.MeanSquaredError()(np.zeros((2, 1)), np.zeros((2, 1)),
                                                sample_weight=["a", "b"]),
        TypeError, "sample_weight"),
    "unknown loss": (lambda: keras.losses.get("hinge_of_fate"), ValueError, "Unknown loss"),
    "AUC num_thresholds 1": (lambda: keras.metrics.AUC(num_thresholds=1), ValueError,
                             "num_thresholds"),
    "AUC curve": (lambda: keras.metrics.AUC(curve="ROCK"), ValueError, "curve"),
    "Precision threshold 1.5": (lambda: keras.metrics.Precision(thresholds=[0.5, 1.5]),
                                ValueError, "thresholds"),
    "top-k k 0": (lambda: keras.metrics.TopKCategoricalAccuracy(k=0), ValueError, "k"),
    "class_id beyond the classes": (
        lambda: keras.metrics.Recall(class_id=5).update_state(np.eye(3), np.eye(3)),
        ValueError, "class_id"),
    "unknown metric": (lambda: keras.metrics.get("accuracyy"), ValueError, "Unknown metric"),
    "VarianceScaling scale 0": (lambda: keras.initializers.VarianceScaling(scale=0), ValueError,
                                "scale"),
    "VarianceScaling mode": (lambda: keras.initializers.VarianceScaling(mode="fan_max"),
                             ValueError, "mode"),
    "RandomNormal stddev nan": (lambda: keras.initializers.RandomNormal(stddev=NAN), ValueError,
                                "stddev"),
    "RandomUniform minval above maxval": (lambda: keras.initializers.RandomUniform(2, 1),
                                          ValueError, "maxval"),
    "initializer seed -1": (lambda: keras.initializers.HeNormal(seed=-1), ValueError, "seed"),
    "L2 nan": (lambda: keras.regularizers.L2(NAN), ValueError, "l2"),
    "L1 negative": (lambda: keras.regularizers.L1(-0.1), ValueError, "l1"),
    "unknown regularizer": (lambda: keras.regularizers.get("l3"), ValueError, "regularizer"),
    "MaxNorm 0": (lambda: keras.constraints.MaxNorm(0), ValueError, "max_value"),
    "MinMaxNorm min above max": (lambda: keras.constraints.MinMaxNorm(2, 1), ValueError,
                                 "max_value"),
    "constraint axis out of range": (lambda: keras.constraints.UnitNorm(axis=3)(np.ones((2, 2))),
                                     ValueError, "axis"),
    "ReduceLROnPlateau factor 1": (lambda: keras.callbacks.ReduceLROnPlateau(factor=1),
                                   ValueError, "factor"),
    "ReduceLROnPlateau factor 0": (lambda: keras.callbacks.ReduceLROnPlateau(factor=0),
                                   ValueError, "factor"),
    "ReduceLROnPlateau patience -1": (lambda: keras.callbacks.ReduceLROnPlateau(patience=-1),
                                      ValueError, "patience"),
    "EarlyStopping mode": (lambda: keras.callbacks.EarlyStopping(mode="most"), ValueError,
                           "mode"),
    "CSVLogger separator": (lambda: keras.callbacks.CSVLogger("x.csv", separator=""),
                            ValueError, "separator"),
    "BackupAndRestore save_freq": (lambda: keras.callbacks.BackupAndRestore("d",
                                                                            save_freq="batch"),
                                   ValueError, "save_freq"),
    "ReLU max_value nan": (lambda: layers.ReLU(max_value=NAN), ValueError, "max_value"),
    "ReLU threshold inf": (lambda: layers.ReLU(threshold=INF), ValueError, "threshold"),
    "gelu approximate as a string": (lambda: layers.Dense(2, activation={
        "class_name": "gelu", "config": {"approximate": "yes"}}), TypeError, "approximate"),
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


# The resampling kernel and the augmentation layers (layers/augmentation.py).
T = [1, 0, 0, 0, 1, 0, 0, 0]
BAD_OPS.update({
    "affine_transform: unknown interpolation": (
        lambda: kernels.affine_transform(X, T, interpolation="bicubic"), ValueError,
        "interpolation must be one of"),
    "affine_transform: unknown fill_mode": (
        lambda: kernels.affine_transform(X, T, fill_mode="symmetric"), ValueError,
        "fill_mode must be one of"),
    "affine_transform: transform of 6 numbers": (
        lambda: kernels.affine_transform(X, T[:6]), ValueError, r"shape \(8,\)"),
    "affine_transform: one transform per image, wrong count": (
        lambda: kernels.affine_transform(X, [T] * 3), ValueError, r"\(2, 8\) for 2 images"),
    "affine_transform: NaN in a transform": (
        lambda: kernels.affine_transform(X, [1, 0, np.nan, 0, 1, 0, 0, 0]), ValueError,
        "finite"),
    "affine_transform: string transform": (
        lambda: kernels.affine_transform(X, ["1"] * 8), TypeError, "real numbers"),
    "affine_transform: fill_value a string": (
        lambda: kernels.affine_transform(X, T, fill_value="0"), TypeError, "fill_value"),
    "affine_transform: zero output_size": (
        lambda: kernels.affine_transform(X, T, output_size=(0, 3)), ValueError, "output_size"),
    "affine_transform: 3-D images": (
        lambda: kernels.affine_transform(X[0], T), ValueError, "4-D images"),
    "affine_transform: empty width": (
        lambda: kernels.affine_transform(np.zeros((1, 3, 0, 1)), T), ValueError, "empty"),
    "affine_transform_backward: gradient of another batch": (
        lambda: kernels.affine_transform_backward(np.zeros((3, 8, 8, 3)), T, X.shape),
        ValueError, "does not match images"),
})
BAD_LAYERS.update({
    "RandomFlip mode": (lambda: layers.RandomFlip("diagonal"), ValueError,
                        "RandomFlip 'random_flip.*mode must be one of"),
    "RandomFlip seed": (lambda: layers.RandomFlip(seed=-1), ValueError, "seed"),
    "RandomFlip seed a float": (lambda: layers.RandomFlip(seed=1.5), ValueError, "seed"),
    "RandomTranslation factor above 1": (lambda: layers.RandomTranslation(1.5, 0.1),
                                         ValueError, "height_factor"),
    "RandomTranslation factor of 3 numbers": (
        lambda: layers.RandomTranslation(0.1, (0.1, 0.2, 0.3)), ValueError, "width_factor"),
    "RandomTranslation factor a string": (lambda: layers.RandomTranslation("0.1", 0.1),
                                          ValueError, "height_factor"),
    "RandomTranslation fill_mode": (
        lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="mirror"), ValueError,
        "RandomTranslation.*fill_mode must be one of"),
    "RandomRotation interpolation": (
        lambda: layers.RandomRotation(0.1, interpolation="bicubic"), ValueError,
        "RandomRotation.*interpolation"),
    "RandomRotation factor NaN": (lambda: layers.RandomRotation(float("nan")), ValueError,
                                  "factor"),
    "RandomRotation fill_value": (lambda: layers.RandomRotation(0.1, fill_value=None),
                                  TypeError, "fill_value"),
    "RandomZoom factor -1": (lambda: layers.RandomZoom(-1.0), ValueError,
                             r"RandomZoom.*height_factor.*\(-1"),
    "RandomZoom width_factor": (lambda: layers.RandomZoom(0.1, (0.2, -1)), ValueError,
                                "width_factor"),
    "RandomCrop height 0": (lambda: layers.RandomCrop(0, 3), ValueError,
                            "RandomCrop.*height must be a positive int"),
    "RandomCrop width a float": (lambda: layers.RandomCrop(3, 2.5), ValueError, "width"),
    "RandomContrast negative factor": (lambda: layers.RandomContrast(-0.2), ValueError,
                                       r"RandomContrast.*factor.*\[0.0, 1.0\]"),
    "RandomContrast reversed value_range": (
        lambda: layers.RandomContrast(0.2, value_range=(255, 0)), ValueError, "low <= high"),
    "RandomBrightness value_range of 3": (
        lambda: layers.RandomBrightness(0.2, value_range=(0, 1, 2)), ValueError,
        "value_range"),
    "RandomBrightness factor above 1": (lambda: layers.RandomBrightness(1.2), ValueError,
                                        "factor"),
    "RandomFlip on 3-D images": (lambda: layers.RandomFlip()(np.zeros((4, 4, 3))),
                                 ValueError, "RandomFlip 'random_flip.*4-D"),
})


BAD_ARGUMENTS = {**{f"kernels: {case}": v for case, v in BAD_OPS.items()},
                 **{f"layers: {case}": v for case, v in BAD_LAYERS.items()},
                 **{f"distributed: {case}": v for case, v in BAD_DISTRIBUTED.items()},
                 **{f"training: {case}": v for case, v in BAD_TRAINING.items()},
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
