"""What fit, evaluate and predict take besides arrays (generators, keras.utils.PyDataset, a
torch DataLoader, (x, y, sample_weight) batches), and the options Keras gives them
(steps_per_epoch, validation_steps, validation_freq, class_weight, verbose=2): each
against arrays fed the same batches, or against Keras' documented formula in NumPy."""
import numpy as np
import pytest

import convnet as keras
from convnet import layers

N, BATCH = 24, 6


def _model(seed=4):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture
def data(rng):
    return rng.standard_normal((N, 3)).astype(np.float32), rng.integers(0, 2, N)


def _trained_on_arrays(x, y, epochs=2, **kwargs):
    model = _model()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, **kwargs)
    return model.get_weights()


def _same(weights_a, weights_b):
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)


def test_a_generator_of_batches_trains_as_arrays_do(data):
    x, y = data

    def batches():
        while True:
            for start in range(0, N, BATCH):
                yield x[start:start + BATCH], y[start:start + BATCH]

    model = _model()
    history = model.fit(batches(), steps_per_epoch=N // BATCH, epochs=2, verbose=0)
    _same(model.get_weights(), _trained_on_arrays(x, y))
    assert len(history.history["loss"]) == 2


def test_a_finite_iterator_is_one_epoch_and_steps_per_epoch_stops_early(data):
    x, y = data
    pulled = []

    def batches(n):
        for start in range(0, n * BATCH, BATCH):
            pulled.append(start)
            yield x[start:start + BATCH], y[start:start + BATCH]

    model = _model()
    model.fit(batches(4), epochs=1, verbose=0)   # runs until the iterator ends
    _same(model.get_weights(), _trained_on_arrays(x, y, epochs=1))
    pulled.clear()
    model.fit(batches(4), steps_per_epoch=2, epochs=1, verbose=0)
    assert len(pulled) == 2


def test_keras_utils_py_dataset_trains_as_arrays_do(data):
    x, y = data
    ends = []

    class Batches(keras.utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

        def __len__(self):
            return N // BATCH

        def __getitem__(self, index):
            return x[index * BATCH:(index + 1) * BATCH], y[index * BATCH:(index + 1) * BATCH]

        def on_epoch_end(self):
            ends.append(1)

    assert keras.utils.Sequence is keras.utils.PyDataset
    model = _model()
    model.fit(Batches(workers=1), epochs=2, shuffle=False, verbose=0)
    _same(model.get_weights(), _trained_on_arrays(x, y))
    assert len(ends) == 2
    assert model.predict(Batches(), verbose=0).shape == (N, 2)


def test_a_torch_data_loader_trains_as_arrays_do(data):
    torch = pytest.importorskip("torch")
    x, y = data
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=BATCH, shuffle=False)
    model = _model()
    model.fit(loader, epochs=2, verbose=0)
    _same(model.get_weights(), _trained_on_arrays(x, y))
    assert model.evaluate(loader, verbose=0) == pytest.approx(
        model.evaluate(x, y, batch_size=BATCH, verbose=0))


def test_class_weight_is_keras_sample_weight_by_label(data):
    """Keras: class_weight multiplies each sample's loss by the weight of its label; the
    batch loss is sum(w_i * l_i) / batch size."""
    x, y = data
    class_weight = {0: 1.0, 1: 3.0}
    model = _model()
    logs = model.train_on_batch(x, y, class_weight=class_weight, return_dict=True)
    fresh = _model()
    probabilities = fresh.predict(x, verbose=0).astype(np.float64)
    weights = np.where(y == 1, 3.0, 1.0)
    expected = np.sum(weights * -np.log(probabilities[np.arange(N), y])) / N
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    _same(_trained_on_arrays(x, y, class_weight=class_weight),
          _trained_on_arrays(x, y, sample_weight=weights.astype(np.float32)))


def test_batches_with_sample_weights_weigh_the_loss(data):
    x, y = data
    weights = np.linspace(0.5, 2.0, N).astype(np.float32)
    batches = [(x[s:s + BATCH], y[s:s + BATCH], weights[s:s + BATCH]) for s in range(0, N, BATCH)]
    model = _model()
    model.fit((b for _ in range(2) for b in batches), steps_per_epoch=N // BATCH, epochs=2,
              verbose=0)
    _same(model.get_weights(), _trained_on_arrays(x, y, sample_weight=weights))


def test_validation_freq_and_validation_steps(data):
    x, y = data
    seen = []

    def validation():
        for start in range(0, N, BATCH):
            seen.append(start)
            yield x[start:start + BATCH], y[start:start + BATCH]

    model = _model()
    history = model.fit(x, y, batch_size=BATCH, epochs=4, verbose=0, validation_freq=2,
                        validation_data=(x[:BATCH], y[:BATCH]))
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2      # after epochs 2 and 4, as Keras
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, validation_data=validation(),
              validation_steps=2)
    assert len(seen) == 2


def test_verbose_2_prints_a_line_per_epoch_and_predict_a_progress_bar(data, capsys):
    x, y = data
    model = _model()
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True,
                  steps_per_execution=1, run_eagerly=False)   # accepted, no effect
    model.fit(x, y, batch_size=BATCH, epochs=3, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3",
                                                                   "Epoch 3/3"]
    assert sum("loss:" in line for line in lines) == 3 and len(lines) == 6
    model.predict(x, batch_size=BATCH, verbose=1)
    out = capsys.readouterr().out
    assert "4/4" in out and "━" in out
