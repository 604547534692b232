"""Sequential, optimizers, losses and callbacks against hand-computed values."""
import io

import numpy as np
import pytest

import convnet as keras
from convnet import layers


def test_summary_counts_match_known_figures():
    alexnet_first = keras.Sequential([keras.Input((227, 227, 3)),
                                      layers.Conv2D(96, 11, strides=4)])
    assert alexnet_first.count_params() == 34_944          # 96 * (11*11*3 + 1)
    assert alexnet_first.output_shape == (None, 55, 55, 96)
    keras_example = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
    assert keras_example.count_params() == 34_826          # the Keras MNIST convnet example
    lines = []
    keras_example.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 26, 26, 32)" in text and "Total params: 34,826" in text
    # conv 3x3 -> pool 2 -> conv 3x3: receptive field 3, 4, 8 pixels; jumps 1, 2, 2
    assert "8 (2)" in text
    assert "194,688" in text                                # 26*26*3*3*1*32 MACs


def test_shape_errors_name_the_layer_at_build_time():
    with pytest.raises(ValueError, match=r"Conv2D 'big'.*kernel_size=\(7, 7\)"):
        keras.Sequential([keras.Input((5, 5, 1)), layers.Conv2D(2, 7, name="big")])
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="was built for inputs of shape"):
        model.predict(np.zeros((1, 8, 8, 4)))


def test_input_with_unknown_size_takes_any_image_size():
    model = keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(4, 3, padding="same"),
                              layers.GlobalAveragePooling2D(), layers.Dense(2)])
    assert model.output_shape == (None, 2)
    assert model.predict(np.zeros((2, 9, 13, 3))).shape == (2, 2)
    assert model.predict(np.zeros((1, 31, 5, 3))).shape == (1, 2)


def test_sgd_momentum_and_nesterov_steps_match_hand_computation():
    w = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    opt.apply([g], [w])
    np.testing.assert_allclose(w, [1.0 - 0.05, -2.0 - 0.025])          # m = -lr*g
    opt.apply([g], [w])
    np.testing.assert_allclose(w, [0.95 - 0.095, -2.025 - 0.0475])     # m = 0.9m - lr*g
    w = np.array([1.0])
    nesterov = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    nesterov.apply([np.array([1.0])], [w])
    np.testing.assert_allclose(w, [1.0 + 0.9 * -0.1 - 0.1])


def test_adam_steps_match_hand_computation():
    w = np.array([0.5])
    opt = keras.optimizers.Adam(learning_rate=0.01)
    grads = [0.2, -0.4]
    m = v = 0.0
    expected = 0.5
    for t, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected -= 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-7)
        opt.apply([np.array([g])], [w])
    np.testing.assert_allclose(w, [expected], rtol=1e-12)


def test_learning_rate_schedule_is_evaluated_per_step():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = keras.optimizers.SGD(learning_rate=schedule)
    w = np.array([0.0])
    for _ in range(3):
        opt.apply([np.array([1.0])], [w])
    np.testing.assert_allclose(w, [-(0.1 + 0.1 * 0.5 ** 0.5 + 0.05)])


def test_softmax_crossentropy_uses_logits_and_stays_finite():
    loss = keras.losses.CategoricalCrossentropy()
    logits = np.array([[1000.0, 0.0, -1000.0]])
    y = np.array([[0.0, 0.0, 1.0]])
    assert loss.value(y, logits, logits=True) == pytest.approx(2000.0)
    grad = loss.gradient(y, logits, logits=True)
    np.testing.assert_allclose(grad, [[1.0, 0.0, -1.0]])
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    z = np.array([[2.0, 1.0, 0.1]])
    expected = -np.log(np.exp(2.0) / np.exp(z).sum())
    assert sparse(np.array([0]), z) == pytest.approx(expected)


def _digits_like_task(n=512, seed=0):
    """Bars: class 0 has a vertical bar, class 1 a horizontal one, anywhere, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, 10, 10, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    pos = rng.integers(1, 9, n)
    for i in range(n):
        if y[i]:
            x[i, pos[i], 1:9, 0] += 1.5
        else:
            x[i, 1:9, pos[i], 0] += 1.5
    return x, y


def test_fit_is_reproducible_with_a_seed_and_reports_history():
    x, y = _digits_like_task()

    def train():
        keras.utils.set_random_seed(42)
        model = keras.Sequential([keras.Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"),
                                  layers.GlobalMaxPooling2D(),
                                  layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_split=0.25)
        return model, history

    first, history = train()
    second, _ = train()
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_early_stopping_restores_best_weights_and_checkpoint_saves_best(tmp_path):
    x, y = _digits_like_task(256)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10, 10, 1)), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], self.model.get_weights()))

    stopper = keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    path = tmp_path / "best.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_best_only=True)
    model.fit(x, y, epochs=30, verbose=0, validation_data=(x[:64], y[:64]),
              callbacks=[Record(), stopper, checkpoint])
    assert len(seen) < 30
    best_loss, best_weights = min(seen, key=lambda item: item[0])
    for a, b in zip(model.get_weights(), best_weights):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(keras.load_model(path).get_weights(), best_weights):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scheduler_and_stop_training():
    x, y = _digits_like_task(64)
    model = keras.Sequential([keras.Input((10, 10, 1)), layers.Flatten(), layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history = model.fit(x, np.eye(2)[y], epochs=10, verbose=0, callbacks=[
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)),
        StopAfterTwo()])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05])


def test_progress_output_without_a_terminal_is_one_line_per_epoch(capsys):
    x, y = _digits_like_task(64)
    model = keras.Sequential([keras.Input((10, 10, 1)), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert out[1].startswith("4/4 ") and "loss: " in out[1] and "accuracy: " in out[1]


def test_a_small_cnn_learns_fashion_mnist_subset():
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data(subset=True)
    x_train = x_train[..., None].astype("float32") / 255
    x_test = x_test[..., None].astype("float32") / 255
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(16, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Conv2D(32, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Flatten(),
                              layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=64, epochs=2, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert accuracy > 0.7          # chance is 0.1


def test_to_categorical():
    np.testing.assert_array_equal(keras.utils.to_categorical([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="out of range"):
        keras.utils.to_categorical([3], 3)
