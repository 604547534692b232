"""The functional API and the Model base: symbolic shapes, equivalence with Sequential,
finite-difference gradients through residual, concatenated, shared and multi-output graphs,
multi-output training, files and clones."""
import numpy as np
import pytest

import convnet as keras
from convnet import layers
from convnet.autodiff import GradientTape
from convnet.utils import numerical_gradient

# (input shape without batch, layer factory) for every layer that takes one tensor.
SINGLE_INPUT_LAYERS = {
    "Conv2D valid": ((9, 8, 3), lambda: layers.Conv2D(4, 3)),
    "Conv2D same strided dilated": ((9, 8, 3), lambda: layers.Conv2D(
        2, (3, 2), strides=2, padding="same", dilation_rate=1)),
    "Conv2D channels_first": ((3, 9, 8), lambda: layers.Conv2D(
        2, 3, data_format="channels_first")),
    "Conv2D unknown size": ((None, None, 3), lambda: layers.Conv2D(2, 3, padding="same")),
    "Dense 2-D": ((5,), lambda: layers.Dense(3)),
    "Dense 4-D": ((4, 4, 5), lambda: layers.Dense(3)),
    "Flatten": ((4, 3, 2), lambda: layers.Flatten()),
    "Activation": ((4, 3), lambda: layers.Activation("tanh")),
    "ReLU": ((4, 3), lambda: layers.ReLU(max_value=2.0)),
    "Softmax": ((4, 3), lambda: layers.Softmax()),
    "Dropout": ((4, 3), lambda: layers.Dropout(0.5)),
    "ZeroPadding2D": ((4, 3, 2), lambda: layers.ZeroPadding2D(((1, 2), (0, 3)))),
    "MaxPooling2D": ((7, 8, 2), lambda: layers.MaxPooling2D(3, 2, padding="same")),
    "AveragePooling2D ceil": ((7, 8, 2), lambda: layers.AveragePooling2D(2, ceil_mode=True)),
    "GlobalAveragePooling2D": ((7, 8, 2), lambda: layers.GlobalAveragePooling2D()),
    "GlobalMaxPooling2D keepdims": ((7, 8, 2),
                                    lambda: layers.GlobalMaxPooling2D(keepdims=True)),
}


@pytest.mark.parametrize("case", sorted(SINGLE_INPUT_LAYERS))
def test_symbolic_call_gives_the_shape_of_compute_output_shape_and_of_real_data(case):
    shape, make = SINGLE_INPUT_LAYERS[case]
    layer = make()
    out = layer(keras.Input(shape))
    assert out.shape == layer.compute_output_shape((None,) + shape)
    concrete = tuple(5 if d is None else d for d in shape)
    real = layer(np.ones((2,) + concrete, np.float32))
    assert real.shape[1:] == tuple(r if o is None else o for o, r in
                                   zip(out.shape[1:], real.shape[1:]))
    assert all(o is None or o == r for o, r in zip(out.shape[1:], real.shape[1:]))


MERGES = {
    "Add": (lambda: layers.Add(), lambda a, b: a + b),
    "Subtract": (lambda: layers.Subtract(), lambda a, b: a - b),
    "Multiply": (lambda: layers.Multiply(), lambda a, b: a * b),
    "Average": (lambda: layers.Average(), lambda a, b: (a + b) / 2),
    "Maximum": (lambda: layers.Maximum(), np.maximum),
    "Minimum": (lambda: layers.Minimum(), np.minimum),
    "Concatenate": (lambda: layers.Concatenate(), lambda a, b: np.concatenate([a, b], -1)),
}


@pytest.mark.parametrize("name", sorted(MERGES))
def test_merge_layers_compute_their_formula_symbolically_and_on_data(name, rng):
    make, formula = MERGES[name]
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer = make()
    out = layer([keras.Input((3, 4, 5)), keras.Input((3, 4, 5))])
    assert out.shape == layer.compute_output_shape([(None, 3, 4, 5)] * 2)
    np.testing.assert_allclose(layer([a, b]), formula(a, b), rtol=1e-6)
    assert out.shape[1:] == formula(a, b).shape[1:]


def test_functional_forms_of_the_merge_layers():
    a, b = keras.Input((4,)), keras.Input((4,))
    for fn, cls in ((layers.add, layers.Add), (layers.subtract, layers.Subtract),
                    (layers.multiply, layers.Multiply), (layers.average, layers.Average),
                    (layers.maximum, layers.Maximum), (layers.minimum, layers.Minimum),
                    (layers.concatenate, layers.Concatenate)):
        out = fn([a, b])
        assert isinstance(out._keras_history[0], cls)
    assert layers.concatenate([a, b], axis=1).shape == (None, 8)


def _stack(as_functional):
    keras.utils.set_random_seed(7)
    stack = [layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
             layers.Conv2D(3, 3, padding="same"), layers.Flatten(), layers.Dropout(0.25),
             layers.Dense(5, activation="softmax")]
    if not as_functional:
        return keras.Sequential([keras.Input((10, 10, 2))] + stack)
    inputs = keras.Input((10, 10, 2))
    x = inputs
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x)


def test_a_functional_stack_is_bit_identical_to_sequential(rng):
    x = rng.standard_normal((24, 10, 10, 2)).astype(np.float32)
    y = rng.integers(0, 5, 24)
    results = []
    for functional in (False, True):
        model = _stack(functional)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        initial = model.get_weights()
        keras.utils.set_random_seed(11)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        results.append((initial, model.get_weights(), model.predict(x, verbose=0),
                        history.history))
    (w0_s, w_s, p_s, h_s), (w0_f, w_f, p_f, h_f) = results
    for a, b in zip(w0_s + w_s, w0_f + w_f):
        assert a.tobytes() == b.tobytes()
    assert p_s.tobytes() == p_f.tobytes()
    assert h_s == h_f


def _graph_model(dtype="float64", size=6):
    """Two inputs, a shared conv used twice, a residual Add, a Concatenate, two outputs."""
    keras.utils.set_random_seed(5)
    image = keras.Input((size, size, 2), name="image", dtype=dtype)
    side = keras.Input((size, size, 1), name="side", dtype=dtype)
    shared = layers.Conv2D(2, 3, padding="same", activation="tanh", dtype=dtype, name="shared")
    h = shared(image)
    h = layers.Add(dtype=dtype)([shared(h), image])                 # residual, shared weights
    h = layers.Concatenate(dtype=dtype)([h, side])
    h = layers.AveragePooling2D(2, dtype=dtype)(h)
    flat = layers.Flatten(dtype=dtype)(h)
    first = layers.Dense(3, activation="sigmoid", dtype=dtype, name="first")(flat)
    second = layers.Dense(2, dtype=dtype, name="second")(layers.Multiply(dtype=dtype)([h, h]))
    return keras.Model([image, side], [first, second])


def test_gradients_through_residual_concatenate_shared_layer_and_two_outputs(rng):
    model = _graph_model(size=4)
    x_image = keras.Variable(rng.standard_normal((1, 4, 4, 2)), dtype="float64")
    x_side = keras.Variable(rng.standard_normal((1, 4, 4, 1)), dtype="float64")
    g_first = rng.standard_normal((1, 3))
    g_second = rng.standard_normal((1, 2, 2, 2))
    weights = model.trainable_weights
    assert len(weights) == 6          # the shared conv's kernel and bias appear once

    def objective(image, side):
        first, second = model([image, side])
        return float(np.sum(np.asarray(first) * g_first) + np.sum(np.asarray(second) * g_second))

    with GradientTape() as tape:
        first, second = model([x_image, x_side], training=True)
        loss = keras.ops.sum(first * g_first) + keras.ops.sum(second * g_second)
    grads = tape.gradient(loss, [x_image, x_side] + weights)

    numeric_image = numerical_gradient(lambda v: objective(v, x_side.numpy()), x_image.numpy())
    numeric_side = numerical_gradient(lambda v: objective(x_image.numpy(), v), x_side.numpy())
    np.testing.assert_allclose(grads[0], numeric_image, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grads[1], numeric_side, rtol=1e-6, atol=1e-8)
    for w, grad in zip(weights, grads[2:]):
        def at(value, w=w):
            saved = w.numpy()
            w.assign(value)
            try:
                return objective(x_image.numpy(), x_side.numpy())
            finally:
                w.assign(saved)
        np.testing.assert_allclose(grad, numerical_gradient(at, w.numpy()), rtol=1e-6,
                                   atol=1e-8, err_msg=w.path)


def test_multi_output_training_weights_losses_and_names_metrics(rng):
    model = _graph_model("float32")
    model.compile(keras.optimizers.SGD(0.01),
                  loss={"first": "mse", "second": "mse"},
                  loss_weights={"first": 2.0, "second": 0.5},
                  metrics={"first": ["mse"]})
    x = [rng.standard_normal((8, 6, 6, 2)).astype(np.float32),
         rng.standard_normal((8, 6, 6, 1)).astype(np.float32)]
    y = {"first": rng.random((8, 3)).astype(np.float32),
         "second": rng.standard_normal((8, 3, 3, 2)).astype(np.float32)}
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    first, second = model.predict(x, verbose=0)
    mse_first = np.mean((first - y["first"]) ** 2)
    mse_second = np.mean((second - y["second"]) ** 2)
    assert sorted(logs) == ["first_loss", "first_mse", "loss", "second_loss"]
    np.testing.assert_allclose(logs["first_loss"], mse_first, rtol=1e-5)
    np.testing.assert_allclose(logs["second_loss"], mse_second, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 2.0 * mse_first + 0.5 * mse_second, rtol=1e-5)
    history = model.fit(x, [y["first"], y["second"]], batch_size=4, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "first_loss", "second_loss", "first_mse"}


def test_multi_output_training_moves_each_head_by_its_own_loss(rng):
    model = _graph_model("float32")
    model.compile(keras.optimizers.SGD(0.1), loss=["mse", None])
    x = [rng.standard_normal((8, 6, 6, 2)).astype(np.float32),
         rng.standard_normal((8, 6, 6, 1)).astype(np.float32)]
    second_before = model.get_layer("second").get_weights()
    first_before = model.get_layer("first").get_weights()
    model.fit(x, [rng.random((8, 3)).astype(np.float32), None], batch_size=8, verbose=0)
    for a, b in zip(second_before, model.get_layer("second").get_weights()):
        np.testing.assert_array_equal(a, b)        # no loss on the second output
    assert any(np.any(a != b) for a, b in zip(first_before,
                                               model.get_layer("first").get_weights()))


def test_functional_model_round_trips_through_a_file(tmp_path, rng):
    model = _graph_model("float32")
    model.compile("adam", loss=["mse", "mse"])
    x = [rng.standard_normal((3, 6, 6, 2)).astype(np.float32),
         rng.standard_normal((3, 6, 6, 1)).astype(np.float32)]
    model.save(tmp_path / "graph.cnet")
    loaded = keras.load_model(tmp_path / "graph.cnet")
    assert isinstance(loaded, keras.models.Functional)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        assert a.tobytes() == b.tobytes()
    shared = [layer for layer in loaded.layers if layer.name == "shared"]
    assert len(shared) == 1 and len(shared[0]._inbound_nodes) == 2


def test_clone_model_keeps_the_architecture_with_fresh_weights(rng):
    for model in (_graph_model("float32"), _stack(False)):
        clone = keras.models.clone_model(model)
        assert type(clone) is type(model)
        assert [type(layer) for layer in clone.layers] == [type(layer) for layer in model.layers]
        assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
        assert all(a is not b for a, b in zip(clone.weights, model.weights))
        kernels_differ = [np.any(a.numpy() != b.numpy()) for a, b in
                          zip(clone.weights, model.weights) if a.name == "kernel"]
        assert kernels_differ and all(kernels_differ)
        clone.set_weights(model.get_weights())
        x = ([rng.standard_normal((2, 6, 6, 2)).astype(np.float32),
              rng.standard_normal((2, 6, 6, 1)).astype(np.float32)]
             if isinstance(model, keras.models.Functional)
             else rng.standard_normal((2, 10, 10, 2)).astype(np.float32))
        expected, got = model.predict(x, verbose=0), clone.predict(x, verbose=0)
        if not isinstance(expected, list):
            expected, got = [expected], [got]
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)


def test_summary_has_keras_connected_to_column_and_furthest_receptive_field():
    inputs = keras.Input((16, 16, 1))
    deep = layers.Conv2D(2, 3, name="c1")(inputs)
    deep = layers.Conv2D(2, 3, name="c2")(deep)                     # field 5
    shallow = layers.Conv2D(2, 5, name="c3")(inputs)                # field 5 as well
    wide = layers.Conv2D(2, 7, padding="same", name="c4")(inputs)   # field 7
    merged = layers.concatenate([deep, shallow], name="cat")
    model = keras.Model(inputs, [merged, wide])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text
    row = next(line for line in lines if line.lstrip("│ ").startswith("cat "))
    assert "c2[0][0]" in row and "c3[0][0]" in row and "5 (1)" in row
    assert "7 (1)" in next(line for line in lines if "c4 (" in line)
    assert f"Total params: {model.count_params():,}" in text


def test_a_sequential_inside_a_functional_model_runs_and_trains(rng):
    augment = keras.Sequential([layers.ZeroPadding2D(1), layers.Conv2D(2, 3)], name="front")
    inputs = keras.Input((6, 6, 1))
    x = augment(inputs)
    outputs = layers.Dense(2)(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    assert augment in model.layers and len(model.trainable_weights) == 4
    model.compile("sgd", "mse")
    before = augment.get_weights()
    model.fit(rng.standard_normal((4, 6, 6, 1)), rng.standard_normal((4, 2)), verbose=0)
    assert any(np.any(a != b) for a, b in zip(before, augment.get_weights()))


def test_a_layer_added_twice_to_a_sequential_gets_both_gradients(rng):
    shared = layers.Dense(4, activation="tanh", dtype="float64")
    model = keras.Sequential([keras.Input((4,), dtype="float64"), shared, shared,
                              layers.Dense(1, dtype="float64")])
    assert len(model.weights) == 4
    x = rng.standard_normal((5, 4))
    kernel = shared.kernel
    with GradientTape() as tape:
        loss = keras.ops.sum(model(x, training=True))
    (grad,) = tape.gradient(loss, [kernel])

    def at(value):
        saved = kernel.numpy()
        kernel.assign(value)
        try:
            return float(np.sum(model(x)))
        finally:
            kernel.assign(saved)
    np.testing.assert_allclose(grad, numerical_gradient(at, kernel.numpy()), rtol=1e-6,
                               atol=1e-9)


BAD_GRAPHS = {
    "disconnected graph": (lambda: keras.Model(keras.Input((3,)), layers.Dense(2)(
        keras.Input((3,), name="orphan"))), ValueError, "disconnected.*orphan"),
    "symbolic mixed with an array": (lambda: layers.Add()([keras.Input((3,)),
                                                          np.ones((1, 3))]), ValueError,
                                     "Add 'add.*mixed with a concrete array"),
    "wrong rank": (lambda: layers.Conv2D(2, 3, name="c_rank")(keras.Input((8, 8))),
                   ValueError, "Conv2D 'c_rank' expects 4-D"),
    "wrong channels": (lambda: _reuse_with_channels(4), ValueError,
                       "Conv2D 'c_chan' was built for inputs of shape"),
    "inputs not from keras.Input": (lambda: keras.Model(layers.Dense(2)(keras.Input((3,))),
                                                        keras.Input((3,))), ValueError,
                                    "keras.Input"),
    "outputs not tensors": (lambda: keras.Model(keras.Input((3,)), np.ones(3)), TypeError,
                            "symbolic tensor"),
    "merge of one tensor": (lambda: layers.Add()([keras.Input((3,))]), ValueError,
                            "at least 2"),
    "concatenate mismatch": (lambda: layers.Concatenate()([keras.Input((3, 4)),
                                                          keras.Input((2, 4))]), ValueError,
                             "differ on axis 1"),
    "saving a subclassed model": (lambda: _subclassed().save("never.cnet"), ValueError,
                                  "subclassed model"),
    "clone a subclassed model": (lambda: keras.models.clone_model(_subclassed()), ValueError,
                                 "subclassed"),
}


def _reuse_with_channels(channels):
    conv = layers.Conv2D(2, 3, name="c_chan")
    conv(keras.Input((8, 8, 3)))
    return conv(keras.Input((8, 8, channels)))


class _Tiny(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)

    def call(self, inputs, training=False):
        return self.dense(inputs)


def _subclassed():
    model = _Tiny()
    model(np.ones((1, 3), np.float32))
    return model


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_functional_api_mistakes_raise_clear_errors(case):
    call, error, message = BAD_GRAPHS[case]
    with pytest.raises(error, match=message):
        call()


class CustomModel(keras.Model):
    """keras.io's "Customizing what happens in fit()" (Keras 3): a train_step of its own,
    the model made as CustomModel(inputs, outputs)."""

    def train_step(self, data):
        x, y = data
        with keras.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_a_model_subclass_made_from_inputs_and_outputs_trains_with_its_own_train_step(rng):
    """The subclass becomes a functional model (as Keras injects Functional into its bases);
    its train_step, one SGD step on the mean squared error, moves the weights by the NumPy
    gradient and reports the loss and the compiled metric."""
    inputs = keras.Input(shape=(5,))
    model = CustomModel(inputs, layers.Dense(1, dtype="float64")(inputs), name="custom")
    assert isinstance(model, CustomModel) and model.name == "custom"
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    x, y = rng.standard_normal((8, 5)), rng.standard_normal((8, 1))
    kernel, bias = model.get_weights()
    error = x @ kernel + bias - y
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(float(np.mean(error ** 2)))
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(error))))
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.1 * 2 * x.T @ error / 8,
                               rtol=1e-12)
    history = model.fit(x, y, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "mae"}


def test_a_model_subclass_can_build_its_graph_in_its_own_init():
    class Wide(keras.Model):
        def __init__(self, units, **kwargs):
            inputs = keras.Input((4,))
            super().__init__(inputs=inputs, outputs=layers.Dense(units)(inputs), **kwargs)
            self.units = units

    model = Wide(3, name="wide")
    assert model.units == 3 and model.output_shape == (None, 3)
    x = np.ones((2, 4), np.float32)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel + bias, rtol=1e-6)
