"""One tiny model per case, for every layer class convnet writes in Keras' format: the same
code builds it with Keras 3 (tests/keras_files/make_reference_files.py, by hand) and with
convnet (tests/test_keras_format.py), since both libraries take the same arguments.

Each case is (input shape of one example, a function of a ``layers`` module returning the
layers after the Input). The arguments are mostly not the defaults (strides, paddings,
channels_first, shared axes, interpolations, ...), so that an argument written under the
wrong name, dropped, or read with another meaning changes the predictions or the config.
"""
import numpy as np

CASES = {
    # normalization
    "batch_norm": ((5, 5, 3), lambda L: [
        L.BatchNormalization(momentum=0.9, epsilon=0.01, gamma_regularizer="l2",
                             beta_constraint="non_neg")]),
    "batch_norm_axis1_no_center": ((4, 5, 3), lambda L: [
        L.BatchNormalization(axis=1, center=False, gamma_initializer="random_normal")]),
    "batch_norm_no_scale_frozen": ((5, 3), lambda L: [
        L.BatchNormalization(scale=False, trainable=False, epsilon=1e-5)]),
    "layer_norm": ((4, 3, 2), lambda L: [L.LayerNormalization()]),
    "layer_norm_axes": ((4, 3, 2), lambda L: [
        L.LayerNormalization(axis=[2, 3], epsilon=0.01, center=False)]),
    "layer_norm_rms_scaling": ((4, 3), lambda L: [L.LayerNormalization(rms_scaling=True)]),
    "normalization_adapted": ((4, 3), lambda L: [L.Normalization()]),
    "normalization_adapted_axes": ((4, 3, 2), lambda L: [L.Normalization(axis=(1, 3))]),
    "normalization_given": ((3, 2), lambda L: [
        L.Normalization(mean=[0.5, -1.0], variance=[4.0, 0.25])]),
    "normalization_inverted": ((3, 2), lambda L: [
        L.Normalization(axis=None, mean=2.0, variance=9.0, invert=True)]),
    # convolutions
    "conv2d_groups": ((6, 6, 4), lambda L: [
        L.Conv2D(6, 3, padding="same", groups=2, activation="relu",
                 bias_initializer="random_normal")]),
    "depthwise_conv2d": ((7, 7, 3), lambda L: [
        L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                          activation="tanh", bias_initializer="random_normal",
                          depthwise_regularizer="l1", depthwise_constraint="max_norm")]),
    "depthwise_conv2d_channels_first": ((3, 7, 6), lambda L: [
        L.DepthwiseConv2D((2, 3), dilation_rate=2, use_bias=False,
                          data_format="channels_first")]),
    "separable_conv2d": ((7, 7, 3), lambda L: [
        L.SeparableConv2D(4, (3, 2), strides=(2, 1), depth_multiplier=2, activation="relu",
                          bias_initializer="random_normal", pointwise_constraint="unit_norm")]),
    "separable_conv2d_dilated": ((3, 8, 8), lambda L: [
        L.SeparableConv2D(2, 3, padding="same", dilation_rate=2, use_bias=False,
                          data_format="channels_first")]),
    "conv2d_transpose": ((4, 4, 3), lambda L: [
        L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1,
                          bias_initializer="random_normal")]),
    "conv2d_transpose_valid": ((4, 3, 2), lambda L: [
        L.Conv2DTranspose(3, (2, 3), strides=(3, 1), activation="sigmoid", use_bias=False)]),
    "conv2d_transpose_dilated_channels_first": ((2, 4, 4), lambda L: [
        L.Conv2DTranspose(2, 3, dilation_rate=2, data_format="channels_first")]),
    # shapes
    "reshape": ((4, 3, 2), lambda L: [L.Reshape((-1, 6)), L.Reshape((2, 2, 6))]),
    "permute": ((4, 3, 2), lambda L: [L.Permute((3, 1, 2))]),
    "up_sampling2d": ((3, 4, 2), lambda L: [L.UpSampling2D((2, 3))]),
    "up_sampling2d_bilinear": ((2, 3, 4), lambda L: [
        L.UpSampling2D(2, interpolation="bilinear", data_format="channels_first")]),
    "cropping2d": ((6, 7, 2), lambda L: [L.Cropping2D(((1, 0), (2, 1)))]),
    "identity": ((4, 3), lambda L: [L.Identity()]),
    # regularization (the identity at inference)
    "spatial_dropout2d": ((4, 4, 3), lambda L: [
        L.SpatialDropout2D(0.3, seed=2), L.SpatialDropout2D(0.1, data_format="channels_first")]),
    "gaussian_noise": ((4, 3), lambda L: [L.GaussianNoise(0.2, seed=1)]),
    "gaussian_dropout": ((4, 3), lambda L: [L.GaussianDropout(0.3)]),
    "activity_regularization": ((4, 3), lambda L: [L.ActivityRegularization(l1=0.01, l2=0.02)]),
    # activations
    "leaky_relu": ((4, 3), lambda L: [L.LeakyReLU(negative_slope=0.1)]),
    "prelu": ((4, 3), lambda L: [L.PReLU(alpha_initializer="random_uniform",
                                         alpha_regularizer="l2")]),
    "prelu_shared_axes": ((4, 5, 3), lambda L: [L.PReLU(shared_axes=[1, 2])]),
    "elu": ((4, 3), lambda L: [L.ELU(alpha=0.5)]),
    # preprocessing
    "rescaling": ((4, 3), lambda L: [L.Rescaling(1 / 255, offset=-0.5)]),
    "rescaling_per_channel": ((4, 5, 3), lambda L: [
        L.Rescaling([0.5, 1.0, 2.0], offset=[0.0, 1.0, -1.0])]),
    "resizing": ((5, 7, 2), lambda L: [L.Resizing(8, 4)]),
    "resizing_nearest_cropped": ((5, 7, 2), lambda L: [
        L.Resizing(3, 3, interpolation="nearest", crop_to_aspect_ratio=True)]),
    "resizing_padded": ((4, 6, 2), lambda L: [
        L.Resizing(6, 5, pad_to_aspect_ratio=True, fill_value=0.5)]),
    "center_crop": ((6, 7, 2), lambda L: [L.CenterCrop(3, 4)]),
    "center_crop_larger": ((4, 6, 2), lambda L: [
        L.CenterCrop(6, 5, data_format="channels_last")]),
}


def build(keras, name):
    """The case's Sequential model, made with `keras` (Keras 3 or convnet)."""
    shape, make = CASES[name]
    return keras.Sequential([keras.Input(shape), *make(keras.layers)], name=name)


def randomize(model, rng):
    """Seeded random weights: variances positive, counts integers, the rest in [-1, 1]."""
    values = []
    for weight in model.weights:
        array = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        name = weight.path.rsplit("/", 1)[-1]
        if name == "count":
            values.append(np.full(array.shape, rng.integers(2, 50), array.dtype))
        elif "variance" in name:
            values.append(rng.uniform(0.2, 2.0, array.shape).astype(array.dtype))
        else:
            values.append(rng.uniform(-1.0, 1.0, array.shape).astype(array.dtype))
    model.set_weights(values)


def inputs(name, rng):
    """A batch of three examples for the case."""
    return rng.standard_normal((3, *CASES[name][0])).astype("float32")


def functional_residual(keras, layers):
    """Two inputs, two outputs, a residual Add, every merge layer, a layer shared by two
    calls, a nested Sequential and a nested functional model: built with Keras 3
    (make_reference_files.py) or convnet (test_keras_format.py)."""
    image = keras.Input((6, 6, 3), name="image")
    vector = keras.Input((4,), name="vector")
    x = layers.Conv2D(3, 3, padding="same", activation="relu")(image)
    x = layers.Add()([x, image])
    pooled = layers.Concatenate()([layers.GlobalAveragePooling2D()(x),
                                   layers.GlobalMaxPooling2D()(x)])
    v = layers.Dense(6, activation="tanh")(vector)
    shared = layers.Dense(4, name="shared")
    a, b = shared(pooled), shared(v)
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(4), layers.ReLU()], name="inner")
    s = inner(a)
    i = keras.Input((4,))
    nested = keras.Model(i, layers.Dense(4, activation="elu")(i), name="nested")
    n = nested(b)
    mixed = layers.Average()([layers.Maximum()([a, b]), layers.Minimum()([s, n])])
    mixed = layers.Subtract()([mixed, layers.Multiply()([a, n])])
    label = layers.Dense(3, activation="softmax", name="label")(mixed)
    value = layers.Dense(1, name="value")(layers.Concatenate(axis=1)([mixed, s]))
    return keras.Model([image, vector], [label, value], name="residual")
