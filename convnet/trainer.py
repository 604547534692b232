"""The training loop every model shares: compile, fit, evaluate, predict (Keras 3's Trainer).

A model only says how it computes (its ``call``); everything here works the
same for Sequential, functional and subclassed models. A training step runs
the model under a ``GradientTape``: built-in layers record one node per call
(their compiled backward passes are the rules), Python layers record their
``convnet.ops``. The loss gradient of each output seeds the tape (a softmax
output with a cross-entropy hands the gradient of its logits straight to its
layer, which is exact where probabilities underflow), the tape returns one
gradient per trainable weight, weight regularizers add their penalties, the
optimizer steps, constraints project, and layers apply the state updates
(BatchNormalization's moving statistics) they queued.
"""
import inspect
import sys
import warnings

import numpy as np

from . import activations, autodiff, callbacks as callbacks_module, losses as losses_module
from . import metrics as metrics_module, optimizers
from .data_adapters import (ArrayAdapter, get_adapter, pack_x_y_sample_weight,
                            unpack_x_y_sample_weight)
from .graph import flatten, pack_like


def _check_positive_int(value, name, method, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{method}: {name} must be a positive int, got {value!r}")
    return int(value)


class _OutputLoss:
    """One output's loss: which output, its loss object, weight and log name."""

    def __init__(self, index, loss, weight, name):
        self.index, self.loss, self.weight, self.name = index, loss, weight, name
        self.tracker = metrics_module.Mean(name=f"{name}_loss") if name else None


class Trainer:
    """compile / fit / evaluate / predict and the steps they run (mixed into Model)."""

    # -- compile -----------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Configure training, with Keras 3's arguments. ``run_eagerly``, ``jit_compile``,
        ``steps_per_execution`` and ``auto_scale_loss`` are accepted and have no effect:
        convnet always runs eagerly, one step at a time, in float32 or float64."""
        if metrics is None and _looks_like_metrics(loss_weights):
            # compile(optimizer, loss, ["accuracy"]): Keras 2's order, where Keras 3 puts
            # loss_weights third. Strings or Metric objects cannot be loss weights.
            warnings.warn("compile: the third positional argument is loss_weights in Keras 3; "
                          f"treating {loss_weights!r} as metrics (pass metrics=...)",
                          stacklevel=2)
            metrics, loss_weights = loss_weights, None
        self.optimizer = optimizers.get(optimizer)
        # One loss is kept as the Loss object (callable as model.loss(y, y_pred)); a list or
        # dict of per-output losses as given.
        self.loss = loss if loss is None or isinstance(loss, (list, tuple, dict)) \
            else losses_module.get(loss)
        self._user_loss_weights = loss_weights
        self._user_metrics = metrics
        self._user_weighted_metrics = weighted_metrics
        self._output_losses = None  # resolved against the outputs on first use
        self._compiled_metrics = None
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True
        self.stop_training = False

    def _check_compiled(self, method):
        if getattr(self, "optimizer", None) is None or not getattr(self, "compiled", False):
            raise ValueError(f"{self.describe()}: call compile(optimizer, loss) before "
                             f"{method}()")

    def _output_names(self, n_outputs):
        names = getattr(self, "output_names", None)
        if names and len(names) == n_outputs:
            return list(names)
        return [f"output_{i}" for i in range(n_outputs)] if n_outputs > 1 else [None]

    def _resolve_losses(self, n_outputs):
        """The per-output losses from compile's loss/loss_weights (single, list or dict)."""
        if self._output_losses is not None:
            return self._output_losses
        loss, weights = self.loss, self._user_loss_weights
        names = self._output_names(n_outputs)
        if loss is None:
            self._output_losses = []
            return self._output_losses
        if isinstance(loss, dict):
            unknown = set(loss) - set(n for n in names if n)
            if unknown:
                raise ValueError(f"compile: loss has keys {sorted(unknown)} that are not outputs "
                                 f"of {self.describe()} (outputs: {names})")
            per_output = [loss.get(n) for n in names]
        elif isinstance(loss, (list, tuple)):
            if len(loss) != n_outputs:
                raise ValueError(f"compile: loss is a list of {len(loss)} but "
                                 f"{self.describe()} has {n_outputs} outputs")
            per_output = list(loss)
        else:
            per_output = [loss] * n_outputs
        if weights is None:
            per_weight = [None] * n_outputs
        elif isinstance(weights, dict):
            per_weight = [weights.get(n) for n in names]
        elif isinstance(weights, (list, tuple)):
            if len(weights) != n_outputs:
                raise ValueError(f"compile: loss_weights has {len(weights)} entries for "
                                 f"{n_outputs} outputs")
            per_weight = list(weights)
        else:
            per_weight = [float(weights)] * n_outputs
        resolved = []
        for i, (item, weight) in enumerate(zip(per_output, per_weight)):
            if item is None:
                continue
            name = names[i] if n_outputs > 1 else None
            resolved.append(_OutputLoss(i, losses_module.get(item), weight, name))
        self._output_losses = resolved
        return resolved

    def _resolve_metrics(self, n_outputs):
        """[(output index, metric, weighted)] from compile's metrics / weighted_metrics."""
        if self._compiled_metrics is not None:
            return self._compiled_metrics
        names = self._output_names(n_outputs)
        losses_by_output = {ol.index: ol.loss for ol in self._resolve_losses(n_outputs)}
        resolved = []
        for user, weighted in ((self._user_metrics, False), (self._user_weighted_metrics, True)):
            if user is None:
                continue
            if isinstance(user, (str, metrics_module.Metric)) or callable(user) and not \
                    isinstance(user, (list, tuple, dict)):
                user = [user]
            if n_outputs == 1:
                per_output = [list(user) if not isinstance(user, dict) else
                              list(_as_list(next(iter(user.values()), [])))]
            elif isinstance(user, dict):
                unknown = set(user) - set(names)
                if unknown:
                    raise ValueError(f"compile: metrics has keys {sorted(unknown)} that are not "
                                     f"outputs of {self.describe()} (outputs: {names})")
                per_output = [_as_list(user.get(n, [])) for n in names]
            else:
                if len(user) != n_outputs:
                    raise ValueError(f"compile: for a model with {n_outputs} outputs, metrics "
                                     f"given as a list needs one entry (a metric or a list) per "
                                     f"output, got {len(user)}")
                per_output = [_as_list(m) for m in user]
            for i, items in enumerate(per_output):
                for item in items:
                    metric = metrics_module.get(item, losses_by_output.get(i))
                    if n_outputs > 1:
                        metric.name = f"{names[i]}_{metric.name}"
                    elif weighted:
                        metric.name = f"weighted_{metric.name}" if any(
                            m.name == metric.name for _, m, _ in resolved) else metric.name
                    resolved.append((i, metric, weighted))
        self._compiled_metrics = resolved
        return resolved

    @property
    def metrics(self):
        """The metrics fit and evaluate report: the loss, each output's loss (several outputs),
        then the compiled metrics (Keras' order)."""
        tracker = getattr(self, "_loss_tracker", None)
        if tracker is None:
            return []
        if self._compiled_metrics is None:
            # A train_step of the user's own reads self.metrics before any step resolved
            # them (Keras' "customizing fit" guide): resolve now where the outputs are known.
            n_outputs = self._known_output_count()
            if n_outputs is not None:
                self._resolve_metrics(n_outputs)
        found = [tracker]
        for ol in self._output_losses or []:
            if ol.tracker is not None:
                found.append(ol.tracker)
        found.extend(m for _, m, _ in self._compiled_metrics or [])
        return found

    def _known_output_count(self):
        """The number of outputs where the model says it before a call: a functional model's
        outputs, a Sequential's one; None for a subclassed model."""
        tensors = getattr(self, "_output_tensors", None)
        if tensors is not None:
            return len(tensors)
        from .models.sequential import Sequential  # models import this module
        return 1 if isinstance(self, Sequential) else None

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self):
        """Every metric's result: a float, or an array for a metric with several values
        (Precision at several thresholds)."""
        results = {}
        for m in self.metrics:
            value = np.asarray(m.result())
            results[m.name] = float(value) if value.ndim == 0 else value
        return results

    # -- the steps ----------------------------------------------------------------------------

    def _flat(self, structure):
        return flatten(structure) if isinstance(structure, (list, tuple, dict)) else [structure]

    def _targets(self, y, n_outputs):
        """y as a list aligned with the flat outputs (dicts by output name)."""
        if y is None:
            return [None] * n_outputs
        if n_outputs == 1:
            if isinstance(y, dict) and len(y) == 1:
                return list(y.values())
            if isinstance(y, (list, tuple)) and len(y) == 1 and not isinstance(y, np.ndarray):
                return [y[0]]
            return [y]
        if isinstance(y, dict):
            names = self._output_names(n_outputs)
            missing = [n for n in names if n not in y]
            if missing:
                raise ValueError(f"{self.describe()}: targets dict lacks outputs {missing}")
            return [y[n] for n in names]
        if isinstance(y, (list, tuple)) and len(y) == n_outputs:
            return list(y)
        raise ValueError(f"{self.describe()} has {n_outputs} outputs; give y as a list of "
                         f"{n_outputs} arrays or a dict by output name")

    def _sample_weights(self, sample_weight, n_outputs):
        if sample_weight is None or n_outputs == 1 and not isinstance(sample_weight,
                                                                       (list, dict)):
            return [sample_weight] * n_outputs
        return self._targets(sample_weight, n_outputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The total loss: compiled losses (weighted) plus ``model.losses`` (add_loss and
        regularization penalties). Override it to define a loss of your own, written with
        convnet.ops; inside a training step it is differentiated by the tape."""
        outputs = self._flat(y_pred)
        targets = self._targets(y, len(outputs))
        weights = self._sample_weights(sample_weight, len(outputs))
        total = 0.0
        for ol in self._resolve_losses(len(outputs)):
            kwargs = {} if weights[ol.index] is None else {"sample_weight": weights[ol.index]}
            value = ol.loss(targets[ol.index], outputs[ol.index], **kwargs)
            total = total + (value if ol.weight is None else value * ol.weight)
        for extra in self._extra_losses():
            total = total + extra
        return total

    def _extra_losses(self):
        tape = autodiff.current_tape()
        if tape is not None:
            return list(tape.losses)
        return list(self.losses)

    def _call_compute_loss(self, x, y, y_pred, sample_weight, training):
        """An override of compute_loss, with ``training`` only where its signature takes
        it (Keras' own wrapper does this: older Keras 3 overrides, e.g. keras.io's
        knowledge distillation, end in ``allow_empty=False`` instead)."""
        kwargs = dict(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        if "training" in inspect.signature(self.compute_loss).parameters:
            kwargs["training"] = training
        return self.compute_loss(**kwargs)

    def _compute_loss_is_default(self, n_outputs=None):
        """Whether the loss is the compiled losses' own, each with its gradient written
        out (the fast, fused path); a compute_loss override or a loss written with ops (a
        function, or a Loss subclass with its own ``call``) is differentiated by the tape."""
        if type(self).compute_loss is not Trainer.compute_loss:
            return False
        return n_outputs is None or not any(
            type(ol.loss).call is not losses_module.Loss.call
            for ol in self._resolve_losses(n_outputs))

    def _seeded_loss(self, y, y_pred, sample_weight):
        """The default loss as values plus the gradient of each output (the seeds of the
        backward pass), fusing a final softmax with a cross-entropy."""
        outputs = self._flat(y_pred)
        targets = self._targets(y, len(outputs))
        weights = self._sample_weights(sample_weight, len(outputs))
        roots, seeds, replace, total = [], [], {}, 0.0
        for ol in self._resolve_losses(len(outputs)):
            out, target, sw = outputs[ol.index], targets[ol.index], weights[ol.index]
            kwargs = {} if sw is None else {"sample_weight": sw}
            node = getattr(out, "node", None)
            fused = self._fusable(ol.loss, node)
            prediction = node.ctx["z"] if fused else autodiff.value_of(out)
            target, prediction = ol.loss._check(target, prediction)
            # reduction=None gives per-sample values: Keras reports their mean and
            # differentiates their sum.
            value = float(np.mean(ol.loss.value(target, prediction, logits=fused, **kwargs)))
            total += value if ol.weight is None else value * ol.weight
            if ol.tracker is not None:
                ol.tracker.update_state(value, len(prediction))
            if node is None:
                continue
            grad = ol.loss.gradient(target, prediction, logits=fused, **kwargs)
            if ol.weight is not None:
                grad = grad * np.asarray(ol.weight, grad.dtype)
            roots.append(out)
            seeds.append(grad)
            if fused:
                replace[id(node)] = _skip_activation(node.vjp)
        for extra in self._extra_losses():
            total += float(autodiff.value_of(extra))
            if getattr(extra, "node", None) is not None:
                roots.append(extra)
                seeds.append(np.ones_like(extra.value))
        return total, roots, seeds, replace

    @staticmethod
    def _fusable(loss, node):
        """Whether the loss can take the logits of the output's final softmax (a categorical
        cross-entropy over the last axis) or sigmoid (a binary cross-entropy): exact, and
        finite where probabilities underflow."""
        if node is None or node.layer is None or not isinstance(node.ctx, dict) \
                or "z" not in node.ctx or getattr(loss, "from_logits", True) \
                or getattr(node.layer, "channels_first", False):
            return False
        activation, last = node.layer.activation, node.ctx["z"].ndim - 1
        if isinstance(activation, activations.Sigmoid):
            return getattr(loss, "fuses_sigmoid", False)
        return (isinstance(activation, activations.Softmax) and activation.axis in (-1, last)
                and getattr(loss, "fuses_softmax", False)
                and getattr(loss, "axis", -1) in (-1, last))

    def train_step(self, data):
        """One forward, loss, backward and optimizer update on a batch; returns the logs."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with autodiff.GradientTape() as tape:
            y_pred = self(x, training=True)
            # After the call: a subclassed model makes its weights on its first call.
            variables = self.trainable_weights
            if self._compute_loss_is_default(len(self._flat(y_pred))):
                loss, roots, seeds, replace = self._seeded_loss(y, y_pred, sample_weight)
            else:
                loss_tensor = self._call_compute_loss(x, y, y_pred, sample_weight, True)
                loss = float(autodiff.value_of(loss_tensor))
                roots, seeds, replace = [loss_tensor], [np.ones_like(
                    np.asarray(autodiff.value_of(loss_tensor)))], {}
        found = autodiff.backpropagate(roots, seeds, replace)
        grads = []
        for v in variables:
            entry = found.get(id(v))
            grad = np.zeros(v.shape, v.dtype) if entry is None else entry[1]
            if v.regularizer is not None:
                loss += float(v.regularizer(v.value))
                grad = grad + v.regularizer.gradient(v.value)
            grads.append(grad)
        self.optimizer.apply(grads, variables)  # and projects onto each variable's constraint
        for layer, ctx in tape.state_updates:
            layer._update_state(ctx)
        n = len(self._flat(x)[0])
        self._loss_tracker.update_state(loss, n)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with this batch; return every metric's result."""
        outputs = [np.asarray(autodiff.value_of(o)) for o in self._flat(y_pred)]
        targets = self._targets(y, len(outputs))
        weights = self._sample_weights(sample_weight, len(outputs))
        for index, metric, weighted in self._resolve_metrics(len(outputs)):
            if targets[index] is None:
                continue
            if weighted and weights[index] is not None:
                metric.update_state(targets[index], outputs[index],
                                    sample_weight=weights[index])
            else:
                metric.update_state(targets[index], outputs[index])
        return self.get_metrics_result()

    def test_step(self, data):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        if self._compute_loss_is_default(len(self._flat(y_pred))):
            loss, _, _, _ = self._seeded_loss(y, y_pred, sample_weight)
        else:
            loss = float(autodiff.value_of(self._call_compute_loss(x, y, y_pred, sample_weight,
                                                                   False)))
        self._loss_tracker.update_state(loss, len(self._flat(x)[0]))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # -- loops ---------------------------------------------------------------------------------

    def _ensure_built_for(self, x):
        if not self.built:
            self._build_from_data(x)

    def _build_from_data(self, x):
        """Build from a batch of data before the first step (subclasses refine this)."""

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs; returns a History whose ``.history`` has one list per log."""
        self._check_compiled("fit")
        batch_size = _check_positive_int(batch_size, "batch_size", "fit")
        steps_per_epoch = _check_positive_int(steps_per_epoch, "steps_per_epoch", "fit")
        validation_freq = _check_positive_int(validation_freq, "validation_freq", "fit",
                                              allow_none=False)
        epochs = int(epochs)
        if not 0 <= validation_split < 1:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        adapter = get_adapter(x, y, sample_weight, batch_size, steps_per_epoch, shuffle,
                              class_weight, "fit")
        if validation_split and validation_data is None:
            if not isinstance(adapter, ArrayAdapter):
                raise ValueError("fit: validation_split needs array inputs; pass "
                                 "validation_data for a dataset or generator")
            train, validation_data = adapter.split(validation_split)
            adapter = ArrayAdapter(*train, batch_size=adapter.batch_size, shuffle=shuffle,
                                   steps=steps_per_epoch)
        validation = None
        if validation_data is not None:
            if isinstance(validation_data, (tuple, list)):
                vx, vy, vsw = unpack_x_y_sample_weight(tuple(validation_data))
                validation = get_adapter(vx, vy, vsw, validation_batch_size or batch_size,
                                         validation_steps, False, None, "fit (validation_data)")
            else:
                validation = get_adapter(validation_data, steps=validation_steps,
                                         method="fit (validation_data)")
        verbose = _resolve_verbose(verbose)
        parallel = _data_parallel()
        if parallel is not None:  # an MPI job of several ranks: see convnet/distributed.py
            adapter, validation, verbose, callbacks = parallel.setup_fit(
                self, adapter, validation, verbose, callbacks)
        history = callbacks_module.History()
        callback_list = callbacks_module.CallbackList(
            ([callbacks_module.ProgbarLogger(verbose)] if verbose else []) + list(callbacks or [])
            + [history], self, {"epochs": epochs, "steps": adapter.num_batches,
                                "verbose": verbose})
        self.stop_training = False
        self._initial_epoch = None
        callback_list.on_train_begin()
        # BackupAndRestore sets the epoch an interrupted fit resumes from.
        initial_epoch = self._initial_epoch or initial_epoch
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            callback_list.on_epoch_begin(epoch)
            for step, batch in enumerate(adapter.batches()):
                if step == 0:
                    self._ensure_built_for(batch[0])
                callback_list.on_train_batch_begin(step)
                # A step gets what Keras gives it, (x, y), (x,) or (x, y, sample_weight),
                # so a train_step of the Keras guides (x, y = data) runs.
                logs = self.train_step(pack_x_y_sample_weight(*batch))
                callback_list.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            adapter.on_epoch_end()
            logs = self.get_metrics_result()
            if validation is not None and (epoch + 1) % validation_freq == 0:
                val = self._evaluate_adapter(validation, callback_list=None)
                logs.update((f"val_{k}", v) for k, v in val.items())
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        self.history = history
        return history

    def _evaluate_adapter(self, adapter, callback_list):
        self.reset_metrics()
        if callback_list is not None:
            callback_list.on_test_begin()
        for step, batch in enumerate(adapter.batches()):
            if step == 0:
                self._ensure_built_for(batch[0])
            if callback_list is not None:
                callback_list.on_test_batch_begin(step)
            logs = self.test_step(pack_x_y_sample_weight(*batch))
            if callback_list is not None:
                callback_list.on_test_batch_end(step, logs)
        adapter.on_epoch_end()
        logs = self.get_metrics_result()
        if callback_list is not None:
            callback_list.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss (and metrics) over the data: a scalar, a list, or a dict with return_dict."""
        self._check_compiled("evaluate")
        batch_size = _check_positive_int(batch_size, "batch_size", "evaluate")
        steps = _check_positive_int(steps, "steps", "evaluate")
        adapter = get_adapter(x, y, sample_weight, batch_size, steps, False, None, "evaluate")
        parallel = _data_parallel()
        if parallel is not None:  # an MPI job of several ranks: see convnet/distributed.py
            adapter, verbose = parallel.setup_evaluate(self, adapter, verbose)
        callback_list = callbacks_module.CallbackList(list(callbacks or []), self,
                                                      {"steps": adapter.num_batches})
        logs = self._evaluate_adapter(adapter, callback_list)
        if _resolve_verbose(verbose, evaluate=True):
            print(callbacks_module.format_logs(logs))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for every sample, computed batch by batch (a list or dict of arrays for a
        model with several outputs)."""
        batch_size = _check_positive_int(batch_size, "batch_size", "predict")
        steps = _check_positive_int(steps, "steps", "predict")
        adapter = get_adapter(x, None, None, batch_size, steps, False, None, "predict")
        verbose = _resolve_verbose(verbose)
        callback_list = callbacks_module.CallbackList(
            ([callbacks_module.ProgbarLogger(verbose, mode="predict")] if verbose == 1 else [])
            + list(callbacks or []), self, {"steps": adapter.num_batches, "verbose": verbose})
        callback_list.on_predict_begin()
        pieces, structure = [], None
        for step, batch in enumerate(adapter.batches()):
            if step == 0:
                self._ensure_built_for(batch[0])
            callback_list.on_predict_batch_begin(step)
            out = self.predict_step(pack_x_y_sample_weight(*batch))
            structure = out
            pieces.append([np.asarray(autodiff.value_of(o)) for o in self._flat(out)])
            callback_list.on_predict_batch_end(step, {"outputs": out})
        callback_list.on_predict_end()
        if not pieces:
            raise ValueError("predict: the data is empty")
        joined = [np.concatenate(parts) if len(pieces) > 1 else parts[0]
                  for parts in zip(*pieces)]
        if not isinstance(structure, (list, tuple, dict)):
            return joined[0]
        return pack_like(structure, joined)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on (x, y); returns this batch's loss (and metrics)."""
        self._check_compiled("train_on_batch")
        adapter = get_adapter(x, y, sample_weight, batch_size=None, shuffle=False,
                              class_weight=class_weight, method="train_on_batch")
        batch = adapter._take(slice(None)) if isinstance(adapter, ArrayAdapter) else next(
            adapter.batches())
        self._ensure_built_for(batch[0])
        self.reset_metrics()
        logs = self.train_step(pack_x_y_sample_weight(*batch))
        return _result(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._check_compiled("test_on_batch")
        adapter = get_adapter(x, y, sample_weight, method="test_on_batch")
        batch = adapter._take(slice(None))
        self._ensure_built_for(batch[0])
        self.reset_metrics()
        return _result(self.test_step(pack_x_y_sample_weight(*batch)), return_dict)

    def predict_on_batch(self, x):
        out = self.predict_step((x,))
        if isinstance(out, (list, tuple, dict)):
            return pack_like(out, [np.asarray(autodiff.value_of(o)) for o in flatten(out)])
        return np.asarray(autodiff.value_of(out))


def _data_parallel():
    """convnet.distributed's fit/evaluate hooks once its init() has joined an MPI job of
    several ranks, else None. Looked up, never imported: the core does not load mpi4py."""
    distributed = sys.modules.get("convnet.distributed")
    return None if distributed is None else distributed._data_parallel()


def _looks_like_metrics(value):
    items = value if isinstance(value, (list, tuple)) else [value]
    return value is not None and not isinstance(value, dict) and any(
        isinstance(item, (str, metrics_module.Metric)) for item in items)


def _skip_activation(vjp):
    def fused(grad, needs):
        return vjp(grad, needs, skip_activation=True)
    return fused


def _as_list(item):
    return list(item) if isinstance(item, (list, tuple)) else [item]


def _resolve_verbose(verbose, evaluate=False):
    if verbose == "auto":
        return 1 if not evaluate else int(sys.stdout.isatty())
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _result(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
