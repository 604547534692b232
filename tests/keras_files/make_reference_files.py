"""Writes the reference files of tests/test_keras_format.py with real Keras 3.

Run it only to regenerate them (the test run never does):

    KERAS_BACKEND=torch python tests/keras_files/make_reference_files.py [models] [layers]

(both sets without an argument).

Each model gets seeded random weights (biases included, so a bias lost or swapped
shows), is saved as ``<name>.keras``, and its predictions on a seeded input are kept as
``<name>_x*.npy`` (inputs) and ``<name>_y*.npy`` (outputs). Between them the two models use
every layer class convnet maps to Keras' format: the Sequential CNN the image and
augmentation layers, the functional model two inputs, two outputs, a residual Add, every
merge layer, a layer shared by two calls, a nested Sequential and a nested functional model.
"""
import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import keras_layer_cases  # noqa: E402


def sequential_cnn():
    return keras.Sequential([
        keras.Input((10, 10, 3)),
        # The augmentation layers are the identity at inference (RandomCrop too, where the
        # images already have its size: convnet and Keras 3.15 differ on other sizes).
        layers.RandomFlip(seed=1),
        layers.RandomTranslation(0.1, (-0.2, 0.1), fill_mode="constant", fill_value=0.5),
        layers.RandomRotation(0.1, interpolation="nearest"),
        layers.RandomZoom(0.1, 0.2, fill_mode="wrap"),
        layers.RandomCrop(10, 10),
        layers.RandomContrast(0.2),
        layers.RandomBrightness(0.1, value_range=(0, 1)),
        layers.ZeroPadding2D(((1, 0), (0, 1))),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(5, (2, 3), strides=(1, 2), padding="same", dilation_rate=1),
        layers.AveragePooling2D(2, strides=1, padding="same"),
        layers.Activation("tanh"),
        layers.GlobalMaxPooling2D(keepdims=True),
        layers.ReLU(max_value=0.5, negative_slope=0.1, threshold=0.05),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(6, activation="sigmoid"),
        layers.Dense(3),
        layers.Softmax(),
    ], name="cnn")


def randomize(model, rng):
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])


def models():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    for name, model, inputs in (
            ("sequential_cnn", sequential_cnn(), [rng.standard_normal((4, 10, 10, 3))]),
            ("functional_residual", keras_layer_cases.functional_residual(keras, layers),
             [rng.standard_normal((4, 6, 6, 3)), rng.standard_normal((4, 4))])):
        randomize(model, rng)
        inputs = [x.astype("float32") for x in inputs]
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy" if name == "sequential_cnn"
                      else ["sparse_categorical_crossentropy", "mse"],
                      metrics=["accuracy"] if name == "sequential_cnn" else None)
        outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        model.save(os.path.join(HERE, f"{name}.keras"))
        for i, x in enumerate(inputs):
            np.save(os.path.join(HERE, f"{name}_x{i}.npy"), x)
        for i, y in enumerate(outputs):
            np.save(os.path.join(HERE, f"{name}_y{i}.npy"), np.asarray(y))
        print(f"wrote {name}.keras ({model.count_params()} parameters)")


def layer_cases():
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    os.makedirs(os.path.join(HERE, "layers"), exist_ok=True)
    arrays = {}
    for name in keras_layer_cases.CASES:
        model = keras_layer_cases.build(keras, name)
        keras_layer_cases.randomize(model, rng)
        x = keras_layer_cases.inputs(name, rng)
        arrays[f"{name}_x"] = x
        arrays[f"{name}_y"] = np.asarray(model.predict(x, verbose=0))
        model.save(os.path.join(HERE, "layers", f"{name}.keras"))
    np.savez(os.path.join(HERE, "layers", "predictions.npz"), **arrays)
    print(f"wrote {len(keras_layer_cases.CASES)} models under layers/")


if __name__ == "__main__":
    for which in sys.argv[1:] or ["models", "layers"]:
        {"models": models, "layers": layer_cases}[which]()
