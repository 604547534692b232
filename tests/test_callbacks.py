"""Callbacks against Keras 3's documented behaviour."""
import csv

import numpy as np
import pytest

import convnet as keras
from convnet import callbacks, layers, optimizers


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def _model(seed=0, optimizer=None):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(8, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer or optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class _Harness:
    """Just enough of a model for a callback: an optimizer and metrics."""

    def __init__(self, lr=1.0, metrics=()):
        self.optimizer = optimizers.SGD(learning_rate=lr)
        self.metrics = list(metrics)
        self.stop_training = False


def _drive(callback, values, monitor="val_loss", model=None):
    model = model or _Harness()
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        rates.append(model.optimizer.learning_rate)
    return rates, logs


def test_reduce_lr_on_plateau_waits_reduces_and_cools_down():
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    # Improvements at epochs 0-1; then wait 1, 2 -> halve at epoch 3. The next epoch ends the
    # one-epoch cooldown and, as in Keras, already counts towards patience: halve again at
    # epoch 5, then at 7 down to min_lr; once at min_lr nothing changes.
    values = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    rates, logs = _drive(reduce, values)
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    assert logs["learning_rate"] == 0.2
    # min_delta: an improvement smaller than 1e-4 does not count, a larger one does.
    rates, _ = _drive(callbacks.ReduceLROnPlateau(patience=1), [1.0, 0.99995, 0.9998])
    assert rates == [1.0, pytest.approx(0.1), pytest.approx(0.1)]
    # mode "max" and metrics that should go up.
    rates, _ = _drive(callbacks.ReduceLROnPlateau(monitor="val_auc", patience=1, factor=0.5),
                      [0.5, 0.6, 0.55], monitor="val_auc",
                      model=_Harness(metrics=[keras.metrics.AUC(name="auc")]))
    assert rates == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        _drive(callbacks.ReduceLROnPlateau(monitor="val_thing"), [1.0], monitor="val_thing")


def test_reduce_lr_on_plateau_in_fit_logs_the_rate():
    x, y = _data()
    model = _model(optimizer=optimizers.SGD(0.1))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0, factor=0.5)])
    # The first epoch sets the best loss; each later one fails to improve on it by 10 and
    # halves the rate. The logs hold the rate the epoch ran with.
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_csv_logger_writes_each_epoch(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
                        callbacks=[callbacks.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for key in ("loss", "val_loss", "accuracy"):
        assert [float(r[key]) for r in rows] == pytest.approx(history.history[key])
    # append=True adds rows without a second header; a separator of choice.
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,")
    other = tmp_path / "semi.csv"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(other, separator=";")])
    header, row = open(other).read().splitlines()
    # Without validation data, val_ columns are reserved and filled with NA.
    assert header == "epoch;accuracy;loss;val_accuracy;val_loss" and row.endswith(";NA;NA")


def test_lambda_callback_calls_the_given_functions():
    x, y = _data(32)
    seen = []
    model = _model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_begin=lambda epoch, logs: seen.append(("epoch", epoch)),
        on_train_batch_end=lambda batch, logs: seen.append(("batch", batch, "loss" in logs)),
        on_epoch_end=lambda epoch, logs: seen.append(("end", epoch, sorted(logs))),
        on_train_end=lambda logs: seen.append("done"))])
    assert seen == ["begin", ("epoch", 0), ("batch", 0, True), ("batch", 1, True),
                    ("end", 0, ["accuracy", "loss"]), ("epoch", 1), ("batch", 0, True),
                    ("batch", 1, True), ("end", 1, ["accuracy", "loss"]), "done"]
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_finish=print)


class _Interrupt(Exception):
    pass


class _InterruptAt(callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise _Interrupt


class _Snapshots(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights, self.state = {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()
        self.state[epoch] = [np.array(v) for v in self.model.optimizer.variables]


def test_backup_and_restore_resumes_an_interrupted_fit(tmp_path):
    x, y = _data()
    fit = dict(epochs=4, batch_size=16, verbose=0, shuffle=False)
    reference = _model(seed=1)
    reference.fit(x, y, **fit)

    backup_dir = tmp_path / "backup"
    interrupted = _model(seed=1)
    snapshots = _Snapshots()
    with pytest.raises(_Interrupt):
        interrupted.fit(x, y, **fit, callbacks=[
            callbacks.BackupAndRestore(backup_dir), snapshots, _InterruptAt(epoch=2, batch=1)])
    assert (backup_dir / "backup.npz").exists()      # an interrupted fit keeps its backup

    # A fresh process: new model and optimizer, different initial weights.
    resumed = _model(seed=2)
    seen = {}

    class Probe(callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["weights"] = self.model.get_weights()
            seen["state"] = [np.array(v) for v in self.model.optimizer.variables]
            seen["initial_epoch"] = self.model._initial_epoch

    # Keras' trainer starts at model._initial_epoch; until Sequential.fit reads it, pass it.
    resumed.fit(x, y, **fit, initial_epoch=2,
                callbacks=[callbacks.BackupAndRestore(backup_dir), Probe()])
    assert seen["initial_epoch"] == 2                # two epochs had finished
    for a, b in zip(seen["weights"], snapshots.weights[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(seen["state"], snapshots.state[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)          # as if never interrupted
    assert not backup_dir.exists()                   # a fit that ends deletes the backup


def test_fit_starts_where_backup_and_restore_says(tmp_path):
    x, y = _data()
    model = _model()
    with pytest.raises(_Interrupt):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[
            callbacks.BackupAndRestore(tmp_path), _InterruptAt(epoch=1, batch=0)])
    epochs = []
    model.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.BackupAndRestore(tmp_path),
        callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))])
    assert epochs == [1, 2]


def test_backup_every_n_batches_and_keep_previous(tmp_path):
    x, y = _data()
    model = _model()
    snapshots = []

    class Record(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            snapshots.append(self.model.get_weights())

    with pytest.raises(_Interrupt):
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False, callbacks=[
            callbacks.BackupAndRestore(tmp_path, save_freq=3, double_checkpoint=True), Record(),
            _InterruptAt(epoch=1, batch=3)])
    # 7 batches ran (4 + 3): saves after batches 3 and 6, i.e. epoch 1's third batch.
    with np.load(tmp_path / "backup.npz") as data:
        assert int(data["epoch"]) == 1
        np.testing.assert_array_equal(data["weight_0"], snapshots[5][0])
    with np.load(tmp_path / "backup.npz.bkp") as data:
        np.testing.assert_array_equal(data["weight_0"], snapshots[2][0])
    # A damaged latest backup falls back to the previous one.
    (tmp_path / "backup.npz").write_bytes(b"not a backup")
    fresh = _model(seed=3)
    restore = callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)
    restore.set_model(fresh)
    restore.on_train_begin()
    np.testing.assert_array_equal(fresh.get_weights()[0], snapshots[2][0])
    (tmp_path / "backup.npz.bkp").write_bytes(b"neither")
    with pytest.raises(ValueError, match="cannot restore"):
        restore.on_train_begin()


def test_monitor_callbacks_pick_the_direction_from_the_metric():
    stopper = callbacks.EarlyStopping(monitor="val_auc", patience=1)
    harness = _Harness(metrics=[keras.metrics.AUC(name="auc")])
    stopper.set_model(harness)
    stopper.on_train_begin()
    for epoch, auc in enumerate([0.6, 0.7, 0.65]):
        stopper.on_epoch_end(epoch, {"val_auc": auc})
    assert harness.stop_training and stopper.best == 0.7
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="biggest")
