"""Callbacks with Keras 3's hooks, names, arguments and behaviour: History, EarlyStopping,
ModelCheckpoint, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN, CSVLogger,
LambdaCallback, BackupAndRestore, and the progress bar fit prints."""
import collections
import csv
import math
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

from . import _checks


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Forwards each hook to every callback in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_") or not hasattr(Callback, hook):
            raise AttributeError(hook)
        if hook.endswith(("_train_begin", "_train_end", "_test_begin", "_test_end",
                          "_predict_begin", "_predict_end")):
            def call_all(logs=None):
                for callback in self.callbacks:   # logs positionally, as Keras passes them
                    getattr(callback, hook)(logs)
        else:
            def call_all(index, logs=None):
                for callback in self.callbacks:
                    getattr(callback, hook)(index, logs)
        return call_all


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class MonitorCallback(Callback):
    """What EarlyStopping, ModelCheckpoint and ReduceLROnPlateau share: a logged quantity to
    watch and when it counts as better. Mode "auto" minimises losses and asks the model's
    metric of that name which way is better (its ``_direction``), as Keras does."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        owner = type(self).__name__
        if not isinstance(monitor, str):
            raise TypeError(f"{owner}: monitor must be the name of a logged value, got "
                            f"{monitor!r}")
        self.monitor = monitor
        self.mode = _checks.choice(owner, "mode", mode, ("auto", "min", "max"))
        self.best = None if baseline is None else _checks.real(owner, "baseline", baseline)
        self.min_delta = abs(_checks.real(owner, "min_delta", min_delta))
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor.removeprefix("val_")
            if name == "loss":
                self.monitor_op = np.less
            for metric in getattr(self.model, "metrics", None) or []:
                direction = getattr(metric, "_direction", None)
                if getattr(metric, "name", None) == name and direction is not None:
                    self.monitor_op = np.greater if direction == "up" else np.less
            if self.monitor_op is None:
                raise ValueError(f"{type(self).__name__} received monitor={self.monitor!r} but "
                                 f"cannot tell whether it should be minimised or maximised; "
                                 f"pass mode='min' or mode='max'")
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, value, reference):
        return reference is None or bool(self.monitor_op(value - self.min_delta, reference))


class EarlyStopping(MonitorCallback):
    """Stops fit when `monitor` has not improved by min_delta for `patience` epochs; with
    restore_best_weights, ends with the weights of the best epoch."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = _checks.integer("EarlyStopping", "patience", patience, low=0)
        self.verbose = verbose
        self.baseline = None if baseline is None else _checks.real("EarlyStopping", "baseline",
                                                                   baseline)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = _checks.integer("EarlyStopping", "start_from_epoch",
                                                start_from_epoch, low=0)

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}",
                          stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _batches_counter(owner, save_freq):
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, str):
        raise ValueError(f"{owner}: save_freq must be 'epoch' or a number of batches, got "
                         f"{save_freq!r}")
    return _checks.integer(owner, "save_freq", save_freq, low=1)


class _EveryNBatches:
    """Counts batches across epochs; true every ``n`` batches (Keras' _should_save_on_batch)."""

    def __init__(self, n):
        self.n, self.seen, self.last = n, 0, None

    def __call__(self, batch):
        self.seen += batch + 1 if self.last is None or batch <= self.last else batch - self.last
        self.last = batch
        if self.seen >= self.n:
            self.seen = 0
            return True
        return False


class ModelCheckpoint(MonitorCallback):
    """Saves the model (or its weights) after each epoch, or every ``save_freq`` batches; with
    save_best_only, only when `monitor` improves (beyond ``initial_value_threshold`` if
    given). `filepath` may use {epoch}, {batch} and log keys, e.g. "m-{epoch:02d}.keras"."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.save_freq = _batches_counter("ModelCheckpoint", save_freq)
        self._every = None if save_freq == "epoch" else _EveryNBatches(self.save_freq)
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._every is not None and self._every(batch):
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch, batch, logs):
        if self.monitor_op is None:
            self._set_monitor_op()
        fields = dict(logs) if batch is None or "batch" in logs else {**logs, "batch": batch + 1}
        path = self.filepath.format(epoch=epoch + 1, **fields)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.",
                              stacklevel=2)
            elif not self._is_improvement(current, self.best):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            else:
                if self.verbose:
                    best = "None" if self.best is None else f"{self.best:.5f}"
                    print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                          f"{current:.5f}, saving model to {path}")
                self.best = current
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at each epoch's start to schedule(epoch, lr)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, float(self.model.optimizer.learning_rate)))
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stops training cleanly at the first batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by ``factor`` once `monitor` has not improved by more
    than min_delta for `patience` epochs, then waits ``cooldown`` epochs before counting
    again; never below ``min_lr`` (nor to 0, which no optimizer accepts). Each epoch's logs
    get the ``learning_rate`` in use."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        owner = "ReduceLROnPlateau"
        self.factor = _checks.real(owner, "factor", factor, 0, 1, low_open=True, high_open=True)
        self.patience = _checks.integer(owner, "patience", patience, low=0)
        self.verbose = verbose
        self.cooldown = _checks.integer(owner, "cooldown", cooldown, low=0)
        self.min_lr = _checks.real(owner, "min_lr", min_lr, low=0)
        self.cooldown_counter = self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: {','.join(logs)}.",
                          stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                new_lr = max(old_lr * self.factor, self.min_lr)
                if old_lr > np.float32(self.min_lr) and new_lr > 0:
                    optimizer.learning_rate = new_lr
                    if self.verbose:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file: ``epoch`` (from 0) then the log keys
    in sorted order, with val_ columns reserved even before validation first runs."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.sep, self.append = separator, bool(append)
        self.keys = self.writer = self.csv_file = None

    def on_train_begin(self, logs=None):
        append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                append_header = not f.readline()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self._append_header = append_header
        self.keys = self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         delimiter=self.sep)
            if self._append_header:
                self.writer.writeheader()
        row = collections.OrderedDict(epoch=epoch)
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str) or np.ndim(value) == 0:
        return value
    return f'"[{", ".join(map(str, np.ravel(value)))}]"'


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch,
    logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch,
    logs)``, ``on_train_batch_end(batch, logs)``, and any other hook by keyword."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for hook, function in hooks.items():
            if function is None:
                continue
            if not hook.startswith("on_") or not hasattr(Callback, hook):
                raise TypeError(f"LambdaCallback: unknown hook {hook!r}")
            if not callable(function):
                raise TypeError(f"LambdaCallback: {hook} must be a function, got {function!r}")
            setattr(self, hook, function)


class BackupAndRestore(Callback):
    """Keeps a backup of the training state in ``backup_dir`` so that a fit interrupted
    (killed, crashed) can be run again and go on where it stopped.

    At the end of each epoch (or every ``save_freq`` batches) it writes one file,
    ``backup_dir/backup.npz``: the model's weights, the optimizer's state (its
    ``variables``: iterations, learning rate, slots) and the number of finished epochs,
    written to a temporary file and moved into place, so a crash while writing leaves the
    previous backup whole (``double_checkpoint`` also keeps that previous one, used if the
    latest does not load). At the start of fit it loads the backup if there is one and sets
    ``model._initial_epoch``, the epoch fit starts from (Keras' trainer reads it after
    ``on_train_begin``). A fit that ends normally deletes the backup (``delete_checkpoint``).
    The file holds plain arrays (numpy's .npz, read without pickle).
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: backup_dir must be a directory path, got "
                             f"{backup_dir!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = _batches_counter("BackupAndRestore", save_freq)
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._path = os.path.join(self.backup_dir, "backup.npz")
        self._previous_path = self._path + ".bkp"
        self._every = None if save_freq == "epoch" else _EveryNBatches(self.save_freq)
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        if not getattr(self.model, "built", True):
            raise ValueError("BackupAndRestore: the model must be built before fit() starts")
        self._current_epoch = 0
        for path in (self._path, self._previous_path):
            if not os.path.exists(path):
                continue
            try:
                self._load(path)
                return
            except (OSError, ValueError, KeyError) as error:
                if path == self._previous_path or not os.path.exists(self._previous_path):
                    raise ValueError(f"BackupAndRestore: cannot restore the training state "
                                     f"from {path}: {error}") from error

    def _load(self, path):
        with np.load(path, allow_pickle=False) as data:
            counts = data["counts"]
            weights = [data[f"weight_{i}"] for i in range(int(counts[0]))]
            state = [data[f"optimizer_{i}"] for i in range(int(counts[1]))]
            epoch = int(data["epoch"])
        self.model.set_weights(weights)
        optimizer = self.model.optimizer
        if state:
            optimizer.build(self.model.trainable_weights)
            try:
                optimizer.set_weights(state)
            except ValueError as error:
                raise ValueError(f"BackupAndRestore: {path} does not fit this model's "
                                 f"optimizer ({error})") from None
        self._current_epoch = epoch
        self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self._every is None:
            self._save()

    def on_train_batch_end(self, batch, logs=None):
        if self._every is not None and self._every(batch):
            self._save()

    def _save(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        optimizer = self.model.optimizer
        state = optimizer.variables if getattr(optimizer, "built", False) else []
        weights = self.model.get_weights()
        arrays = {f"weight_{i}": w for i, w in enumerate(weights)}
        arrays.update((f"optimizer_{i}", np.asarray(v)) for i, v in enumerate(state))
        fd, temporary = tempfile.mkstemp(prefix=".backup-", suffix=".npz", dir=self.backup_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, counts=np.array([len(weights), len(state)]),
                         epoch=np.array(self._current_epoch), **arrays)
                f.flush()
                os.fsync(f.fileno())
            if self.double_checkpoint and os.path.exists(self._path):
                os.replace(self._path, self._previous_path)
            os.replace(temporary, self._path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def format_logs(logs):
    """Logs as Keras prints them: ``loss: 0.5210 - accuracy: 0.8100``."""
    return " - ".join(f"{k}: {v:.4f}" if np.ndim(v) == 0 else
                      f"{k}: {np.array2string(np.asarray(v), precision=4, separator=', ')}"
                      for k, v in logs.items())


def _format_time(seconds):
    if seconds >= 3600:
        return f"{seconds // 3600:.0f}:{seconds % 3600 // 60:02.0f}:{seconds % 60:02.0f}"
    if seconds >= 60:
        return f"{seconds // 60:.0f}:{seconds % 60:02.0f}"
    return f"{seconds:.0f}s"


class ProgbarLogger(Callback):
    """Keras' progress output. On a terminal, verbose=1 redraws a bar after each batch:
    ``120/469 ━━━━━━━━━━━━━━━━━━━━ 2s 6ms/step - accuracy: 0.81 - loss: 0.52``;
    elsewhere (a log file, CI) and with verbose=2 it prints one line per epoch.
    ``mode="predict"`` draws the bar of predict(verbose=1) (no logs, no epochs)."""

    def __init__(self, verbose=1, stream=None, mode="fit"):
        super().__init__()
        self.verbose, self.stream, self.mode = verbose, stream or sys.stdout, mode
        self.bar = verbose == 1 and getattr(self.stream, "isatty", lambda: False)()

    def on_predict_begin(self, logs=None):
        self.started = time.perf_counter()
        self.last_draw = 0.0

    def on_predict_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        steps = self.params.get("steps")
        self.done = batch + 1
        if self.bar and (now - self.last_draw > 0.1 or batch + 1 == steps):
            self.last_draw = now
            self._draw(batch + 1, steps, {}, now, final=False)

    def on_predict_end(self, logs=None):
        if self.verbose:
            done = getattr(self, "done", 0)
            self._draw(done, self.params.get("steps") or done, {}, time.perf_counter(),
                       final=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.last_draw = 0.0
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1}/{self.params.get('epochs')}\n")

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        steps = self.params.get("steps")
        if self.bar and (now - self.last_draw > 0.1 or batch + 1 == steps):
            self.last_draw = now
            self._draw(batch + 1, steps, logs or {}, now, final=False)

    def on_train_batch_begin(self, batch, logs=None):
        self.done = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if not self.verbose:
            return
        steps = self.params.get("steps") or getattr(self, "done", 0)
        self._draw(steps, steps, logs or {}, time.perf_counter(), final=True)

    def _draw(self, done, steps, logs, now, final):
        elapsed = now - self.started
        per_step = elapsed / max(done, 1)
        width = 20
        filled = int(width * done / steps) if steps else width
        bar = "\u2501" * filled + " " * (width - filled)
        timing = (f"{_format_time(elapsed)} {per_step * 1000:.0f}ms/step"
                  if final or not steps or done == steps
                  else f"{_format_time(per_step * (steps - done))} {per_step * 1000:.0f}ms/step")
        line = f"{done}/{steps or 'Unknown'} {bar} {timing}"
        if logs:
            line += " - " + format_logs(logs)
        if self.bar:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()
