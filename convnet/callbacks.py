"""Callbacks with Keras' hooks: History, EarlyStopping, ModelCheckpoint,
LearningRateScheduler, TerminateOnNaN, and the progress bar fit prints."""
import math
import sys
import time

import numpy as np


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
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)
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


def _improvement(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return np.greater if mode == "max" else np.less


class EarlyStopping(Callback):
    """Stops fit when `monitor` has not improved by min_delta for `patience` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.better = _improvement(mode, monitor)
        self.min_delta = abs(min_delta) if self.better is np.greater else -abs(min_delta)

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = -math.inf if self.better is np.greater else math.inf
        if self.baseline is not None:
            self.best = self.baseline
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self.better(current - self.min_delta, self.best):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) after each epoch; with save_best_only, only when
    `monitor` improves. `filepath` may use {epoch} and log keys, e.g. "m-{epoch:02d}.keras"."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto"):
        super().__init__()
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.better = _improvement(mode, monitor)
        self.best = -math.inf if self.better is np.greater else math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None or not self.better(current, self.best):
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
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


def format_logs(logs):
    """Logs as Keras prints them: ``loss: 0.5210 - accuracy: 0.8100``."""
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


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
