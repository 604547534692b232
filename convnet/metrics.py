"""Metrics with Keras 3's names, arguments and numerics, accumulated over batches:
``update_state(y_true, y_pred, sample_weight=None)``, ``result()``, ``reset_state()``.

Results are Python floats (an array where a metric has several thresholds). State is kept in
float64, where Keras keeps float32 variables, so long runs do not lose counts.
"""
import numpy as np

from . import _checks, losses
from ._naming import auto_name, snake_case
from .losses import _match_rank

NEG_INF = -1e10  # Keras' threshold for "any value in the top k"


class Metric:
    """Base class. ``_direction`` ("up" or "down") tells monitoring callbacks in mode "auto"
    whether larger is better."""
    _direction = None

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or auto_name(type(self).__name__)
        self.dtype = dtype
        self.reset_state()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    #: the attributes holding the state, each a number or an array that adds up over
    #: batches (so the states of several data shards, e.g. MPI ranks, add up too)
    _STATE = ()

    def state(self):
        """The accumulated state as float64 arrays (see _STATE)."""
        return [np.asarray(getattr(self, name), dtype=np.float64) for name in self._STATE
                if getattr(self, name) is not None]

    def set_state(self, arrays):
        """Replace the state with `arrays` (as state() gives them, e.g. summed over shards)."""
        names = [name for name in self._STATE if getattr(self, name) is not None]
        if len(arrays) != len(names):
            raise ValueError(f"{self.name}: expected {len(names)} state arrays, got "
                             f"{len(arrays)}")
        for name, array in zip(names, arrays):
            current = getattr(self, name)
            setattr(self, name, np.asarray(array, dtype=np.float64).reshape(np.shape(current))
                    if isinstance(current, np.ndarray) else float(array))

    def __call__(self, *args, **kwargs):
        """Update the state with one batch and return the result, as Keras' Metric does."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _samplewise(owner, values, sample_weight, reduce):
    """Keras' reduce_to_samplewise_values: one value (and weight) per sample."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight)
        if sample_weight.dtype.kind not in "biuf":
            raise TypeError(f"{owner}: sample_weight must hold real numbers, got dtype "
                            f"{sample_weight.dtype}")
        values, sample_weight = _match_rank(values, sample_weight.astype(np.float64))
        if values.ndim > sample_weight.ndim:
            values = reduce(values, axis=tuple(range(sample_weight.ndim, values.ndim)))
        try:
            sample_weight = np.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(f"{owner}: sample_weight of shape {sample_weight.shape} does not "
                             f"fit values of shape {values.shape}") from None
        values = values * sample_weight
        if sample_weight.ndim > 1:
            sample_weight = reduce(sample_weight, axis=tuple(range(1, sample_weight.ndim)))
    if values.ndim > 1:
        values = reduce(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Mean(Metric):
    """The (weighted) mean of the values given: ``update_state(values, sample_weight=None)``.
    Values of rank > 1 count as one mean value per sample (the first axis)."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name, dtype)

    _STATE = ("total", "count")

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values, sample_weight = _samplewise(self.name, values, sample_weight, np.mean)
        self.total += float(values.sum())
        if sample_weight is not None:
            self.count += float(sample_weight.sum())
        else:
            self.count += values.shape[0] if values.ndim else 1

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    """The (weighted) sum of the values given."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name, dtype)

    _STATE = ("total",)

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values, _ = _samplewise(self.name, values, sample_weight, np.sum)
        self.total += float(values.sum())

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """The running mean of ``fn(y_true, y_pred, **kwargs)``, a function that returns one
    value per sample (any Keras metric or loss function, or your own)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be a function, got {fn!r}")
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or snake_case(getattr(fn, "__name__", "mean_metric_wrapper")),
                         dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


# Accuracy functions: one 0/1 value per sample (or per pixel), as keras.metrics' functions.

def _pair(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    for what, array in (("y_true", y_true), ("y_pred", y_pred)):
        if array.dtype.kind not in "biuf":
            raise TypeError(f"metrics: {what} must hold numbers, got dtype {array.dtype}")
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """1 where y_true equals y_pred exactly."""
    y_true, y_pred = _match_rank(*_pair(y_true, y_pred))
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where ``y_true`` equals ``y_pred > threshold`` (both as numbers)."""
    y_true, y_pred = _match_rank(*_pair(y_true, y_pred))
    return (y_true == (y_pred > threshold)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1 where the largest prediction is at the target's largest entry (one-hot targets)."""
    y_true, y_pred = _pair(y_true, y_pred)
    labels = np.argmax(y_true, axis=-1)
    if labels.ndim == y_pred.ndim:
        labels = labels[..., 0]
    return (np.argmax(y_pred, axis=-1) == labels).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the largest prediction is at the integer label."""
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    matches = (np.argmax(y_pred, axis=-1) == y_true).astype(np.float32)
    return matches[..., 0] if matches.ndim > 1 and matches.shape[-1] == 1 else matches


def _in_top_k(labels, y_pred, k):
    """Keras' in_top_k: the label's score is at least the k-th largest (ties count in)."""
    y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    labels = labels.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= y_pred.shape[-1]):
        raise ValueError(f"top-k accuracy: labels must be in [0, {y_pred.shape[-1]}), got "
                         f"values from {labels.min()} to {labels.max()}")
    scores = np.take_along_axis(y_pred, labels[:, None], axis=-1)
    return (y_pred > scores).sum(axis=-1) < k


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the target's class (argmax of one-hot y_true) is among the k top predictions."""
    y_true, y_pred = _pair(y_true, y_pred)
    labels = np.argmax(y_true, axis=-1)
    return _in_top_k(labels, y_pred, k).reshape(labels.shape).astype(np.float32)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer label is among the k top predictions (with from_sorted_ids,
    y_pred holds class ids sorted by score and the label must be in its first k)."""
    y_true, y_pred = _pair(y_true, y_pred)
    if from_sorted_ids:
        shape = y_true.shape
        matches = np.any(y_true.reshape(-1, 1) == y_pred.reshape(-1, y_pred.shape[-1])[:, :k],
                         axis=1)
        return matches.reshape(shape).astype(np.float32)
    return _in_top_k(y_true, y_pred, k).reshape(y_true.shape).astype(np.float32)


class _Wrapped(MeanMetricWrapper):
    """A MeanMetricWrapper whose function and keyword arguments the subclass fixes."""
    _fn_default = None

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(type(self)._fn_default, name=name, dtype=dtype, **kwargs)


class Accuracy(_Wrapped):
    _fn_default = staticmethod(accuracy)
    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name, dtype)


class BinaryAccuracy(_Wrapped):
    _fn_default = staticmethod(binary_accuracy)
    _direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        self.threshold = _checks.real("BinaryAccuracy", "threshold", threshold)
        super().__init__(name, dtype, threshold=self.threshold)


class CategoricalAccuracy(_Wrapped):
    _fn_default = staticmethod(categorical_accuracy)
    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name, dtype)


class SparseCategoricalAccuracy(_Wrapped):
    _fn_default = staticmethod(sparse_categorical_accuracy)
    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name, dtype)


class TopKCategoricalAccuracy(_Wrapped):
    _fn_default = staticmethod(top_k_categorical_accuracy)
    _direction = "up"

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = _checks.integer("TopKCategoricalAccuracy", "k", k, low=1)
        super().__init__(name, dtype, k=self.k)


class SparseTopKCategoricalAccuracy(_Wrapped):
    _fn_default = staticmethod(sparse_top_k_categorical_accuracy)
    _direction = "up"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        owner = "SparseTopKCategoricalAccuracy"
        self.k = _checks.integer(owner, "k", k, low=1)
        self.from_sorted_ids = _checks.boolean(owner, "from_sorted_ids", from_sorted_ids)
        super().__init__(name, dtype, k=self.k, from_sorted_ids=self.from_sorted_ids)


# Regression and probabilistic metrics: the mean of a loss function's per-sample values.

class MeanSquaredError(_Wrapped):
    _fn_default = staticmethod(losses.mean_squared_error)
    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name, dtype)


class MeanAbsoluteError(_Wrapped):
    _fn_default = staticmethod(losses.mean_absolute_error)
    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(name, dtype)


class RootMeanSquaredError(Mean):
    """``sqrt`` of the (weighted) mean of the squared errors over every element seen."""
    _direction = "down"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _match_rank(*_pair(y_true, y_pred))
        super().update_state((y_pred - y_true) ** 2, sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


class KLDivergence(_Wrapped):
    _fn_default = staticmethod(losses.kl_divergence)
    _direction = "down"

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(name, dtype)


class BinaryCrossentropy(_Wrapped):
    _fn_default = staticmethod(losses.binary_crossentropy)
    _direction = "down"

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing)


class CategoricalCrossentropy(_Wrapped):
    _fn_default = staticmethod(losses.categorical_crossentropy)
    _direction = "down"

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0, axis=-1):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing,
                         axis=axis)


class SparseCategoricalCrossentropy(_Wrapped):
    _fn_default = staticmethod(losses.sparse_categorical_crossentropy)
    _direction = "down"

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 axis=-1):
        super().__init__(name, dtype, from_logits=from_logits, axis=axis)


# Confusion-matrix metrics.

def _thresholds(owner, thresholds, default):
    values = [default] if thresholds is None else (
        list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds])
    if thresholds is not None:
        if not values:
            raise ValueError(f"{owner}: thresholds must not be empty")
        values = [_checks.real(owner, "thresholds", t, 0, 1) for t in values]
    return values


def _evenly_distributed(thresholds):
    """Keras' is_evenly_distributed_thresholds: [0, 1/(n-1), ..., 1] to within 1e-7."""
    n = len(thresholds)
    return n >= 3 and np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1),
                                  atol=1e-7)


def _filter_top_k(x, k):
    """Keep each row's k largest values (first ones on ties) and set the rest to NEG_INF."""
    keep = np.zeros(x.shape, dtype=bool)
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    np.put_along_axis(keep, order, True, axis=-1)
    return np.where(keep, x, np.float32(NEG_INF))


def confusion_counts(owner, y_true, y_pred, thresholds, evenly, top_k=None, class_id=None,
                     sample_weight=None, multi_label=False, label_weights=None):
    """Keras' update_confusion_matrix_variables: the weighted counts {"tp", "fp", "tn", "fn"}
    of ``y_pred > threshold`` against ``y_true != 0`` at each threshold; each has shape
    (thresholds,), or (thresholds, labels) with multi_label."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = y_true.astype(np.float32), y_pred.astype(np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    y_pred, y_true = _match_rank(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{owner}: y_true of shape {y_true.shape} does not match y_pred of "
                         f"shape {y_pred.shape}")
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight)
        if weights.dtype.kind not in "biuf":
            raise TypeError(f"{owner}: sample_weight must hold real numbers, got dtype "
                            f"{weights.dtype}")
        weights = _match_rank(y_true, weights.astype(np.float32)[..., None],
                              expand_rank_1=False)[1]
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim < 2 or not 0 <= class_id < y_pred.shape[-1]:
            raise ValueError(f"{owner}: class_id={class_id} needs predictions of shape "
                             f"(samples, classes) with more than {class_id} classes, got "
                             f"{y_pred.shape}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    if weights is not None:
        try:
            weights = np.broadcast_to(weights, y_pred.shape)
        except ValueError:
            raise ValueError(f"{owner}: sample_weight of shape {np.shape(sample_weight)} does "
                             f"not fit predictions of shape {y_pred.shape}") from None
    if label_weights is not None:
        label_weights = np.broadcast_to(label_weights, y_pred.shape)
        weights = label_weights if weights is None else weights * label_weights
    if multi_label:
        y_true, y_pred = y_true.reshape(-1, y_pred.shape[-1]), y_pred.reshape(-1, y_pred.shape[-1])
        weights = None if weights is None else weights.reshape(y_pred.shape)
    else:
        y_true, y_pred = y_true.reshape(-1, 1), y_pred.reshape(-1, 1)
        weights = None if weights is None else weights.reshape(-1, 1)
    weights = np.ones(y_pred.shape) if weights is None else weights.astype(np.float64)
    positive = (y_true != 0)
    true_labels, false_labels = positive * weights, ~positive * weights
    if evenly:
        tp, fp = _bucket_counts(y_pred, true_labels, false_labels, thresholds)
    else:
        above = y_pred[None] > thresholds[:, None, None]
        tp = (above * true_labels).sum(axis=1)
        fp = (above * false_labels).sum(axis=1)
    tn = false_labels.sum(axis=0) - fp
    fn = true_labels.sum(axis=0) - tp
    counts = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    return counts if multi_label else {cell: count[:, 0] for cell, count in counts.items()}


def _bucket_counts(y_pred, true_labels, false_labels, thresholds):
    """Counts above evenly spaced thresholds in O(samples + thresholds): each prediction
    falls in bucket ceil(p * (n - 1)) - 1 and counts for every threshold at or below it (the
    first and last threshold may sit epsilon outside [0, 1], as AUC's do)."""
    n = len(thresholds)
    buckets = np.ceil(np.clip(y_pred, 0, 1) * np.float32(n - 1)) - 1
    if thresholds[0] < 0 or thresholds[-1] > 1:
        buckets = np.maximum(buckets, 0)
    buckets = np.nan_to_num(buckets, nan=-1).astype(np.int64)
    tp = np.zeros((n, y_pred.shape[1]))
    fp = np.zeros((n, y_pred.shape[1]))
    for label in range(y_pred.shape[1]):
        kept = buckets[:, label] >= 0
        ids = buckets[kept, label]
        tp[:, label] = np.bincount(ids, true_labels[kept, label], minlength=n)
        fp[:, label] = np.bincount(ids, false_labels[kept, label], minlength=n)
    return tp[::-1].cumsum(axis=0)[::-1], fp[::-1].cumsum(axis=0)[::-1]


def _divide_no_nan(a, b):
    return np.divide(a, b, out=np.zeros_like(np.asarray(a, dtype=np.float64)), where=b != 0)


def _scalar_or_array(values):
    return float(values[0]) if len(values) == 1 else values


class _ConfusionCount(Metric):
    """The weighted count of one cell of the confusion matrix at each threshold."""
    _cell = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        self.init_thresholds = thresholds
        self.thresholds = _thresholds(type(self).__name__, thresholds, 0.5)
        self._evenly = _evenly_distributed(self.thresholds)
        super().__init__(name, dtype)

    _STATE = ("accumulator",)

    def reset_state(self):
        self.accumulator = np.zeros(len(self.thresholds))

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = confusion_counts(self.name, y_true, y_pred, self.thresholds, self._evenly,
                                  sample_weight=sample_weight)
        self.accumulator += counts[self._cell]

    def result(self):
        return _scalar_or_array(self.accumulator)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    _cell = "tp"


class FalsePositives(_ConfusionCount):
    _cell = "fp"


class TrueNegatives(_ConfusionCount):
    _cell = "tn"


class FalseNegatives(_ConfusionCount):
    _cell = "fn"


class _PrecisionRecall(Metric):
    _direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        owner = type(self).__name__
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else _checks.integer(owner, "top_k", top_k, low=1)
        self.class_id = (None if class_id is None else
                         _checks.integer(owner, "class_id", class_id, low=0))
        self.thresholds = _thresholds(owner, thresholds, 0.5 if top_k is None else NEG_INF)
        self._evenly = _evenly_distributed(self.thresholds)
        super().__init__(name, dtype)

    _STATE = ("true_positives", "_other")

    def reset_state(self):
        self.true_positives = np.zeros(len(self.thresholds))
        self._other = np.zeros(len(self.thresholds))

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = confusion_counts(self.name, y_true, y_pred, self.thresholds, self._evenly,
                                  self.top_k, self.class_id, sample_weight)
        self.true_positives += counts["tp"]
        self._other += counts[self._other_cell]

    def result(self):
        return _scalar_or_array(_divide_no_nan(self.true_positives,
                                               self.true_positives + self._other))

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """``tp / (tp + fp)`` of ``y_pred > thresholds`` (0.5 by default); with ``top_k`` only
    each sample's k highest predictions count as positive; ``class_id`` picks one class."""
    _other_cell = "fp"

    @property
    def false_positives(self):
        return self._other


class Recall(_PrecisionRecall):
    """``tp / (tp + fn)``, with Precision's thresholds, top_k and class_id."""
    _other_cell = "fn"

    @property
    def false_negatives(self):
        return self._other


class AUC(Metric):
    """Area under the ROC or precision-recall curve from confusion counts at
    ``num_thresholds`` thresholds (Keras' Riemann sums).

    "interpolation" is the trapezoidal rule for ROC (it equals the exact area, e.g.
    sklearn's roc_auc_score, when no two distinct predictions share a bucket between
    thresholds) and Davis & Goadrich's interpolation for PR; "minoring" and "majoring" take
    the lower and upper of each interval's two heights.
    """
    _direction = "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        owner = "AUC"
        self.curve = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}.get(
            str(curve).lower()) if isinstance(curve, str) else None
        if self.curve is None:
            raise ValueError(f"AUC: curve must be 'ROC', 'PR' or 'PRGAIN', got {curve!r}")
        if not isinstance(summation_method, str) or summation_method.lower() not in (
                "interpolation", "majoring", "minoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'majoring' or "
                             f"'minoring', got {summation_method!r}")
        self.summation_method = summation_method.lower()
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds(owner, thresholds, None))
            self.num_thresholds = len(inner) + 2
            self._evenly = _evenly_distributed([0.0] + inner + [1.0])
        else:
            self.num_thresholds = _checks.integer(owner, "num_thresholds", num_thresholds, 2)
            inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
            self._evenly = True
        # The end thresholds sit just outside [0, 1] so predictions of exactly 0 and 1 count.
        self._thresholds = np.array([0.0 - 1e-7] + inner + [1.0 + 1e-7])
        self.multi_label = _checks.boolean(owner, "multi_label", multi_label)
        if num_labels is not None and not self.multi_label:
            raise ValueError("AUC: num_labels is needed only when multi_label is True")
        self.num_labels = (None if num_labels is None else
                           _checks.integer(owner, "num_labels", num_labels, low=1))
        self.label_weights = (None if label_weights is None else
                              np.asarray(label_weights, dtype=np.float64))
        self._from_logits = _checks.boolean(owner, "from_logits", from_logits)
        super().__init__(name, dtype)

    @property
    def thresholds(self):
        return list(self._thresholds)

    _STATE = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def reset_state(self):
        shape = (self.num_thresholds,) if not self.multi_label else (
            (self.num_thresholds, self.num_labels) if self.num_labels else None)
        self.true_positives = self.false_positives = None
        self.true_negatives = self.false_negatives = None
        if shape is not None:
            self._zero(shape)

    def _zero(self, shape):
        self.true_positives, self.false_positives = np.zeros(shape), np.zeros(shape)
        self.true_negatives, self.false_negatives = np.zeros(shape), np.zeros(shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        if self.multi_label and y_pred.ndim != 2:
            raise ValueError(f"AUC: y_pred must have rank 2 when multi_label=True, got shape "
                             f"{y_pred.shape}")
        if self.true_positives is None:
            self.num_labels = y_pred.shape[1]
            self._zero((self.num_thresholds, self.num_labels))
        if self._from_logits:
            y_pred = losses._sigmoid(y_pred.astype(np.float32))
        counts = confusion_counts(
            self.name, y_true, y_pred, self._thresholds, self._evenly,
            sample_weight=sample_weight, multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights)
        self.true_positives += counts["tp"]
        self.false_positives += counts["fp"]
        self.true_negatives += counts["tn"]
        self.false_negatives += counts["fn"]

    def _interpolate_pr_auc(self):
        """Davis & Goadrich's interpolation of precision between thresholds (Keras' closed
        form): TP and TP + FP vary linearly across each interval, precision does not."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return _divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                              np.maximum(tp[1:] + fn[1:], 0))

    def result(self):
        if self.true_positives is None:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._over_labels(self._interpolate_pr_auc())
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:
            scale = _divide_no_nan(tp + fn, tn + fp)
            x = np.maximum(np.where(tp == 0, 0.0, 1 - scale * _divide_no_nan(fn, tp)), 0)
            y = np.where(tp == 0, 1.0, 1 - scale * _divide_no_nan(fp, tp))
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._over_labels((x[:-1] - x[1:]) * heights)

    def _over_labels(self, terms):
        if not self.multi_label:
            return float(terms.sum())
        by_label = terms.sum(axis=0)
        if self.label_weights is None:
            return float(by_label.mean())
        return float(_divide_no_nan(np.sum(by_label * self.label_weights),
                                    np.sum(self.label_weights)))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": (None if self.label_weights is None else
                                    self.label_weights.tolist()),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


class _ShapeResolvedAccuracy(Metric):
    """"accuracy" as compile() resolves it: on the first batch, binary accuracy for a single
    output unit, sparse categorical accuracy for integer labels, else categorical accuracy
    (Keras' is_binary_or_sparse_categorical)."""
    _direction = "up"

    def __init__(self, name="accuracy"):
        self._resolved = None
        super().__init__(name)

    def reset_state(self):
        if self._resolved is not None:
            self._resolved.reset_state()

    def state(self):
        return [] if self._resolved is None else self._resolved.state()

    def set_state(self, arrays):
        if self._resolved is not None:
            self._resolved.set_state(arrays)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self._resolved is None:
            y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
            if y_pred.shape[-1:] == (1,):
                cls = BinaryAccuracy
            elif y_true.ndim < y_pred.ndim or y_true.shape[-1:] == (1,):
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            self._resolved = cls(name=self.name)
        self._resolved.update_state(y_true, y_pred, sample_weight)

    def result(self):
        return 0.0 if self._resolved is None else self._resolved.result()


_CLASSES = {cls.__name__: cls for cls in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError,
    MeanAbsoluteError, RootMeanSquaredError, KLDivergence, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy, TruePositives, FalsePositives,
    TrueNegatives, FalseNegatives, Precision, Recall, AUC)}
# Keras' string names: class names, their snake_case, and the short aliases.
_BY_NAME = {**_CLASSES, **{snake_case(name): cls for name, cls in _CLASSES.items()},
            "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
            "MAE": MeanAbsoluteError, "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy}
_FUNCTIONS = {accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
              top_k_categorical_accuracy, sparse_top_k_categorical_accuracy}


def get(identifier, loss=None):
    """A Metric from what compile(metrics=[...]) takes: a Keras name ("accuracy", "auc",
    "mae", "top_k_categorical_accuracy", ...), a Metric class or instance, a serialized
    {"class_name", "config"}, or a function of (y_true, y_pred) giving per-sample values.

    "accuracy"/"acc" is resolved from the shapes of the first batch, as Keras does; ``loss``
    is accepted for the model's sake and not needed."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _ShapeResolvedAccuracy(name=identifier)
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower())
        if cls is not None:
            return cls(name=identifier)
    elif callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of "
                     f"{sorted(_BY_NAME)}, a convnet.metrics.Metric or a function")


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES \
            or not isinstance(config.get("config", {}), dict):
        raise ValueError(f"Unknown metric config {config!r}")
    return _CLASSES[config["class_name"]].from_config(config.get("config", {}))
