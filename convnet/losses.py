"""Losses with Keras 3's names, arguments, defaults, numerics and reductions, each with its
gradient with respect to the prediction.

What the training loop relies on:

- ``loss._check(y_true, y_pred) -> (y_true, y_pred)`` validates and converts the targets; the
  prediction comes back unchanged, so the gradient has its shape.
- ``loss.value(y_true, y_pred, logits=False, sample_weight=None)`` is the batch loss as
  ``reduction`` makes it: a float, or with ``reduction=None``/``"none"`` the array of weighted
  per-sample losses.
- ``loss.gradient(y_true, y_pred, logits=False, sample_weight=None)`` is d value / d y_pred in
  the prediction's dtype; with ``reduction=None``/``"none"`` the gradient of the sum of the
  unreduced losses (what a TensorFlow tape gives for a non-scalar target).
- ``fuses_softmax`` (categorical cross-entropies) and ``fuses_sigmoid`` (binary cross-entropy):
  with ``logits=True`` the loss takes the input of a final softmax / sigmoid instead of its
  output, and the gradient is with respect to that input. The value is the same function
  computed without rounding the probabilities first: it stays exact where they underflow
  (Keras' TensorFlow backend does the same through ``_keras_logits``).

Weighting and reduction follow ``keras.losses.Loss``: per-sample losses (the mean, or for the
cross-entropies and KL divergence the sum, over the last axis), times ``sample_weight`` (after
Keras' squeeze-or-expand of the last axis), then ``"sum_over_batch_size"``/``"mean"`` (sum over
the number of per-sample losses), ``"sum"``, ``"mean_with_sample_weight"`` (sum over the sum of
the weights) or none. One difference: a ``sample_weight`` of lower rank than the per-sample
losses (per-image weights for a per-pixel loss) is aligned on the leading (batch) axes, where
Keras would broadcast it against the trailing ones.

Computations run in the prediction's dtype (Keras casts to float32 unless ``dtype`` is given),
so float64 models get float64 losses and gradients.
"""
import math

import numpy as np

from . import _checks, autodiff
from ._naming import auto_name

_EPSILON = 1e-7  # keras.backend.epsilon(): the clip for probabilities
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_DTYPES = (None, "float32", "float64")


def _match_rank(x1, x2, expand_rank_1=True):
    """Keras' squeeze_or_expand_to_same_rank: drop (or, for rank 1, add) a trailing axis of
    size 1 where the ranks differ by exactly one."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes along which an array of ``shape`` was broadcast."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape)))) if grad.ndim > len(shape) else grad
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, grad.shape)) if n == 1 and m != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _numeric_targets(y_true, loss_name):
    y_true = np.asarray(y_true)
    if y_true.dtype.kind not in "biuf":
        raise TypeError(f"{loss_name}: targets must be numbers, got dtype {y_true.dtype}")
    return y_true


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _class_last(x, axis):
    return x if axis == x.ndim - 1 else np.moveaxis(x, axis, -1)


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # exp of a non-positive number only: no overflow
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def weights_for(owner, values, mask, sample_weight, reduction):
    """Keras' merge of a mask (from ``ignore_class``) and ``sample_weight`` into one weight
    array for ``values`` (None when there is neither), rank-matched and broadcastable."""
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight)
        if weights.dtype.kind not in "biuf":
            raise TypeError(f"{owner}: sample_weight must hold real numbers, got dtype "
                            f"{weights.dtype}")
        weights = weights.astype(values.dtype, copy=False)
    if mask is not None:
        if reduction in ("mean", "sum_over_batch_size"):
            # Valid entries weigh total/valid, so the mean over all entries is the mean over
            # the valid ones.
            valid = int(mask.sum())
            float_mask = np.where(mask, mask.size / valid if valid else 0.0, 0.0)
        else:
            float_mask = mask
        float_mask = float_mask.astype(values.dtype)
        if weights is None:
            weights = float_mask
        else:
            float_mask, weights = _match_rank(float_mask, weights)
            weights = _aligned(owner, float_mask, weights) * float_mask
    if weights is None:
        return None
    values, weights = _match_rank(values, weights)
    return _aligned(owner, values, weights)


def _aligned(owner, values, weights):
    """``weights`` shaped to broadcast against ``values``, aligned on the leading axes."""
    if 0 < weights.ndim < values.ndim:
        weights = weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim))
    try:
        np.broadcast_shapes(values.shape, weights.shape)
    except ValueError:
        raise ValueError(f"{owner}: sample_weight of shape {weights.shape} does not fit the "
                         f"per-sample losses of shape {values.shape}") from None
    return weights


def reduce_weighted(values, weights, reduction):
    """The per-sample ``values`` times the merged ``weights``, reduced."""
    weighted = values
    if weights is not None:
        matched, weights = _match_rank(values, weights)
        weighted = matched * weights
    if reduction in (None, "none") or weighted.shape in ((), (0,)):
        return weighted
    total = weighted.sum()
    if reduction == "sum":
        return float(total)
    divisor = (float(weights.sum()) if reduction == "mean_with_sample_weight"
               and weights is not None else weighted.size)
    return float(total / divisor) if divisor else 0.0   # 0 for 0/0: Keras' divide_no_nan


def _reduction_vjp(values, weights, reduction, grad_loss):
    """d sum(grad_loss * reduce_weighted(values, weights, reduction)) / d values: the
    gradient reaching the per-sample losses from a reduced loss on the tape."""
    grad_loss = np.asarray(grad_loss, values.dtype)
    if grad_loss.ndim == 0:
        return reduction_gradient(values, weights, reduction) * grad_loss
    if weights is None:  # unreduced and unweighted: the losses themselves
        return grad_loss.reshape(values.shape)
    matched, weights = _match_rank(values, weights)
    return _unbroadcast(grad_loss * weights, matched.shape).reshape(values.shape)


def reduction_gradient(values, weights, reduction):
    """d reduce_weighted / d values; only the shape and dtype of ``values`` are used. With
    no reduction, the gradient of the sum."""
    if weights is None:
        weighted_shape, grad = values.shape, np.ones(values.shape, values.dtype)
    else:
        matched, weights = _match_rank(values, weights)
        weighted_shape = np.broadcast_shapes(matched.shape, weights.shape)
        grad = _unbroadcast(np.broadcast_to(weights, weighted_shape), matched.shape)
        grad = np.broadcast_to(grad, matched.shape).reshape(values.shape)
    if reduction in (None, "none", "sum") or weighted_shape in ((), (0,)):
        return grad
    divisor = (float(weights.sum()) if reduction == "mean_with_sample_weight"
               and weights is not None else math.prod(weighted_shape))
    return grad / divisor if divisor else np.zeros_like(grad)


class Loss:
    """Base class: Keras' constructor arguments, ``__call__`` and ``call``; subclasses give
    per-sample values (``_values``) and their vector-Jacobian product (``_values_vjp``)."""
    #: whether ``logits=True`` may hand over the input of a final softmax
    fuses_softmax = False
    #: whether ``logits=True`` may hand over the input of a final sigmoid
    fuses_sigmoid = False
    from_logits = False

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        owner = type(self).__name__
        if reduction not in REDUCTIONS:
            raise ValueError(f"{owner}: reduction must be one of {list(REDUCTIONS)}, got "
                             f"{reduction!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"{owner}: dtype must be None, 'float32' or 'float64', got "
                             f"{dtype!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{owner}: name must be a string, got {name!r}")
        self.name = name or auto_name(owner)
        self.reduction = reduction
        self.dtype = dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss, as ``keras.losses.Loss.__call__`` returns it. Inside a
        training step (a custom ``compute_loss``, a ``GradientTape``) it goes on the tape:
        the gradient flows to ``y_pred``, and to ``y_true`` where that is on the tape too
        (a distillation target from a trainable teacher) and the loss has that gradient."""
        if autodiff.current_tape() is not None and (autodiff.needs_grad(y_true)
                                                    or autodiff.needs_grad(y_pred)):
            return self._taped_call(y_true, y_pred, sample_weight)
        y_true, y_pred = self._check(y_true, self._prediction(y_pred))
        return self.value(y_true, y_pred, sample_weight=sample_weight)

    def _taped_call(self, y_true, y_pred, sample_weight):
        if autodiff.needs_grad(sample_weight):
            raise TypeError(f"{self.name}: sample_weight is on the gradient tape; convnet's "
                            f"losses differentiate y_pred and y_true only (wrap it in "
                            f"ops.stop_gradient)")
        if type(self).call is not Loss.call:
            return self._taped_custom_call(y_true, y_pred, sample_weight)
        need_true = autodiff.needs_grad(y_true)
        if need_true and not self._differentiates_targets:
            raise TypeError(f"{self.name}: y_true is on the gradient tape, and "
                            f"{type(self).__name__} has no gradient with respect to its targets in convnet; wrap "
                            f"them in ops.stop_gradient(...) or freeze what computes them "
                            f"(trainable = False)")
        true_in, pred_in = autodiff.value_of(y_true), autodiff.value_of(y_pred)
        t, p = self._check(true_in, self._prediction(pred_in))
        weights = None if sample_weight is None else autodiff.value_of(sample_weight)
        value = self.value(t, p, sample_weight=weights)
        layout, mask = self._layout(t, p, False)
        merged = weights_for(self.name, layout, mask, weights, self.reduction)

        def vjp(grad, needs):
            grad_values = _reduction_vjp(layout, merged, self.reduction, grad)
            grads = [None, None]
            if needs[0]:
                grads[0] = self._target_vjp(t, p, grad_values).reshape(
                    np.shape(true_in)).astype(p.dtype, copy=False)
            if needs[1]:
                grads[1] = self._values_vjp(t, p, False, grad_values).reshape(
                    np.shape(pred_in)).astype(p.dtype, copy=False)
            return grads

        return autodiff.record(np.asarray(value, dtype=p.dtype), (y_true, y_pred), vjp,
                               self.name)

    def _taped_custom_call(self, y_true, y_pred, sample_weight):
        """A Keras-style subclass's ``call`` written with convnet.ops, weighted and reduced
        with ops, all on the tape (Keras' reduce_weighted_values)."""
        from . import ops
        values = self.call(y_true, y_pred)
        if sample_weight is not None:
            weights = np.asarray(autodiff.value_of(sample_weight))
            while weights.ndim < np.ndim(autodiff.value_of(values)):
                weights = weights[..., None]
            values = values * weights
        if self.reduction in (None, "none"):
            return values
        total = ops.sum(values)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_with_sample_weight" and sample_weight is not None:
            return total / float(np.sum(autodiff.value_of(sample_weight)))
        return total / max(1, int(np.size(autodiff.value_of(values))))

    #: whether _target_vjp gives d value / d y_true
    _differentiates_targets = False

    def _target_vjp(self, y_true, y_pred, grad_values):
        """d sum(grad_values * per-sample losses) / d y_true."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        """The per-sample losses before weighting and reduction (Keras' ``Loss.call``)."""
        y_true, y_pred = self._check(y_true, self._prediction(y_pred))
        return self._values(y_true, y_pred, False)[0]

    def _prediction(self, y_pred):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: predictions must be numbers, got dtype "
                            f"{y_pred.dtype}")
        if self.dtype is not None or y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(self.dtype or "float32")
        return y_pred

    def _check(self, y_true, y_pred):
        return _numeric_targets(y_true, self.name).astype(y_pred.dtype, copy=False), y_pred

    def value(self, y_true, y_pred, logits=False, sample_weight=None):
        values, mask = self._values(y_true, y_pred, logits)
        weights = weights_for(self.name, values, mask, sample_weight, self.reduction)
        loss = reduce_weighted(values, weights, self.reduction)
        return float(loss) if np.ndim(loss) == 0 else loss

    def gradient(self, y_true, y_pred, logits=False, sample_weight=None):
        """d value / d y_pred (with logits=True, or from_logits, d value / d logits)."""
        layout, mask = self._layout(y_true, y_pred, logits)
        weights = weights_for(self.name, layout, mask, sample_weight, self.reduction)
        grad_values = reduction_gradient(layout, weights, self.reduction)
        grad = self._values_vjp(y_true, y_pred, logits, grad_values)
        return grad.astype(y_pred.dtype, copy=False)

    def _layout(self, y_true, y_pred, logits):
        """(an array shaped and typed like the per-sample losses, their mask): what the
        weighting needs, cheaper than the values where a subclass knows the shape."""
        return self._values(y_true, y_pred, logits)

    def _values(self, y_true, y_pred, logits):
        """(per-sample losses, mask of the entries that count or None). A subclass written
        the Keras way overrides ``call`` instead, and gets values (not gradients) from it."""
        if type(self).call is Loss.call:
            raise NotImplementedError(f"{type(self).__name__}: implement call(y_true, y_pred) "
                                      f"returning the per-sample losses")
        return np.asarray(self.call(y_true, y_pred), dtype=y_pred.dtype), None

    def _values_vjp(self, y_true, y_pred, logits, grad_values):
        """d sum(grad_values * per-sample losses) / d y_pred."""
        raise NotImplementedError(f"{type(self).__name__}: convnet differentiates its own losses "
                                  f"only; a custom loss needs _values_vjp(y_true, y_pred, "
                                  f"logits, grad_values) to train")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _PerElement(Loss):
    """A loss computed element by element, then averaged (or summed) over ``axis``."""
    _sums = False
    axis = -1

    def _check(self, y_true, y_pred):
        y_true = _numeric_targets(y_true, self.name)
        if y_pred.ndim == 0 or not -y_pred.ndim <= self.axis < y_pred.ndim:
            raise ValueError(f"{self.name}: predictions of shape {y_pred.shape} have no axis "
                             f"{self.axis} to reduce over")
        t, p = _match_rank(y_true, y_pred)
        if t.shape != p.shape:
            hint = (" (integer labels? use sparse_categorical_crossentropy or to_categorical)"
                    if isinstance(self, CategoricalCrossentropy) and y_true.ndim == 1 else "")
            raise ValueError(f"{self.name}: targets of shape {y_true.shape} do not match "
                             f"predictions of shape {y_pred.shape}{hint}")
        return y_true.astype(y_pred.dtype, copy=False), y_pred

    def _values(self, y_true, y_pred, logits):
        t, p = _match_rank(y_true, y_pred)
        elements = self._elements(t, p, logits)
        return (elements.sum(self.axis) if self._sums else elements.mean(self.axis)), None

    def _layout(self, y_true, y_pred, logits):
        p = _match_rank(y_true, y_pred)[1]
        shape = p.shape[:self.axis % p.ndim] + p.shape[self.axis % p.ndim + 1:]
        return np.broadcast_to(np.zeros((), p.dtype), shape), None

    def _values_vjp(self, y_true, y_pred, logits, grad_values):
        t, p = _match_rank(y_true, y_pred)
        scale = 1 if self._sums else p.shape[self.axis]
        grad = np.expand_dims(grad_values, self.axis) * self._element_gradient(t, p, logits)
        return (grad / scale).reshape(y_pred.shape)

    def _target_vjp(self, y_true, y_pred, grad_values):
        t, p = _match_rank(y_true, y_pred)
        scale = 1 if self._sums else p.shape[self.axis]
        grad = np.expand_dims(grad_values, self.axis) * self._element_target_gradient(t, p)
        return grad / scale

    def _elements(self, t, p, logits):
        raise NotImplementedError

    def _element_gradient(self, t, p, logits):
        raise NotImplementedError

    def _element_target_gradient(self, t, p):
        raise NotImplementedError


class MeanSquaredError(_PerElement):
    """``mean(square(y_true - y_pred), axis=-1)`` per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)

    def _elements(self, t, p, logits):
        return (p - t) ** 2

    _differentiates_targets = True

    def _element_target_gradient(self, t, p):
        return -self._element_gradient(t, p, False)

    def _element_gradient(self, t, p, logits):
        return 2 * (p - t)


class MeanAbsoluteError(_PerElement):
    """``mean(abs(y_true - y_pred), axis=-1)`` per sample; the gradient at a tie is 0."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name, reduction, dtype)

    def _elements(self, t, p, logits):
        return np.abs(p - t)

    _differentiates_targets = True

    def _element_target_gradient(self, t, p):
        return -self._element_gradient(t, p, False)

    def _element_gradient(self, t, p, logits):
        return np.sign(p - t)


class Huber(_PerElement):
    """``0.5 * x**2`` for ``|x| <= delta``, else ``delta * |x| - 0.5 * delta**2``, with
    ``x = y_pred - y_true``, averaged over the last axis."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(name, reduction, dtype)
        self.delta = _checks.real("Huber", "delta", delta, low=0, low_open=True)

    def _elements(self, t, p, logits):
        error = np.abs(p - t)
        return np.where(error <= self.delta, 0.5 * error ** 2,
                        self.delta * error - 0.5 * self.delta ** 2)

    _differentiates_targets = True

    def _element_target_gradient(self, t, p):
        return -self._element_gradient(t, p, False)

    def _element_gradient(self, t, p, logits):
        error = p - t
        return np.where(np.abs(error) <= self.delta, error, self.delta * np.sign(error))

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class KLDivergence(_PerElement):
    """``sum(y_true * log(y_true / y_pred), axis=-1)`` with both clipped to [1e-7, 1]."""
    _sums = True

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name, reduction, dtype)

    def _elements(self, t, p, logits):
        t = np.clip(t, _EPSILON, 1)
        return t * np.log(t / np.clip(p, _EPSILON, 1))

    def _element_gradient(self, t, p, logits):
        inside = (p >= _EPSILON) & (p <= 1)
        return -np.clip(t, _EPSILON, 1) / np.clip(p, _EPSILON, 1) * inside

    _differentiates_targets = True

    def _element_target_gradient(self, t, p):
        # d/dt of t log t - t log p, both clipped: zero where t is clipped
        inside = (t >= _EPSILON) & (t <= 1)
        clipped = np.clip(t, _EPSILON, 1)
        return (np.log(clipped / np.clip(p, _EPSILON, 1)) + 1) * inside


class BinaryCrossentropy(_PerElement):
    """``-(y log p + (1 - y) log(1 - p))`` averaged over ``axis``.

    Probabilities are clipped to [1e-7, 1 - 1e-7] as in Keras. With ``from_logits`` (or a fused
    sigmoid) the loss is ``max(z, 0) - z y + log(1 + exp(-|z|))``, exact for any logit, as
    Keras' TensorFlow, JAX and PyTorch backends compute it (its NumPy backend rounds through a
    clipped sigmoid instead). ``label_smoothing`` squeezes the targets towards 0.5:
    ``y (1 - s) + s / 2``.
    """
    fuses_sigmoid = True

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        self.from_logits = _checks.boolean("BinaryCrossentropy", "from_logits", from_logits)
        self.label_smoothing = _checks.real("BinaryCrossentropy", "label_smoothing",
                                            label_smoothing, 0, 1)
        self.axis = _checks.integer("BinaryCrossentropy", "axis", axis)

    def _elements(self, t, p, logits):
        t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if logits or self.from_logits:
            return np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        q = np.clip(p, _EPSILON, 1 - _EPSILON)
        return -(t * np.log(q) + (1 - t) * np.log(1 - q))

    def _element_gradient(self, t, p, logits):
        t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if logits or self.from_logits:
            # sigmoid(z) - t, written so that neither tail rounds to 0 - t.
            return (1 - t) * _sigmoid(p) - t * _sigmoid(-p)
        q = np.clip(p, _EPSILON, 1 - _EPSILON)
        inside = (p >= _EPSILON) & (p <= 1 - _EPSILON)
        return (-(t / q) + (1 - t) / (1 - q)) * inside

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class _CrossEntropy(Loss):
    """Categorical cross-entropy over the class ``axis``, on probabilities (normalised to sum
    to 1 and clipped to [1e-7, 1 - 1e-7], as Keras does) or on logits (log-softmax)."""
    fuses_softmax = True

    def _values(self, y_true, y_pred, logits):
        target, p, valid = self._targets(y_true, y_pred)
        if logits or self.from_logits:
            values = -(target * _log_softmax(p)).sum(-1)
        else:
            q = np.clip(p / p.sum(-1, keepdims=True), _EPSILON, 1 - _EPSILON)
            values = -(target * np.log(q)).sum(-1)
        if valid is not None:
            values = np.where(valid, values, 0).astype(values.dtype, copy=False)
        return values, valid

    def _layout(self, y_true, y_pred, logits):
        p = _class_last(y_pred, self._class_axis(y_pred))
        valid = None if getattr(self, "ignore_class", None) is None else \
            y_true != self.ignore_class
        return np.broadcast_to(np.zeros((), p.dtype), p.shape[:-1]), valid

    def _values_vjp(self, y_true, y_pred, logits, grad_values):
        target, p, valid = self._targets(y_true, y_pred)
        if logits or self.from_logits:
            grad = _softmax(p) * target.sum(-1, keepdims=True) - target
        else:
            total = p.sum(-1, keepdims=True)
            q = p / total
            counted = target * ((q >= _EPSILON) & (q <= 1 - _EPSILON))
            # d/dp_k of -sum_j t_j log(p_j / S) = -t_k / p_k + sum_j t_j / S (where unclipped)
            grad = -np.divide(counted, p, out=np.zeros_like(counted), where=counted != 0)
            grad += counted.sum(-1, keepdims=True) / total
        grad_values = grad_values if valid is None else grad_values * valid
        grad = grad * grad_values.reshape(grad_values.shape + (1,))
        axis = self._class_axis(y_pred)
        grad = grad if axis == grad.ndim - 1 else np.moveaxis(grad, -1, axis)
        return grad.reshape(y_pred.shape)

    def _class_axis(self, y_pred):
        return self.axis % y_pred.ndim

    def _check_axis(self, y_pred):
        if y_pred.ndim == 0 or not -y_pred.ndim <= self.axis < y_pred.ndim:
            raise ValueError(f"{self.name}: axis={self.axis} is out of range for predictions "
                             f"of shape {y_pred.shape}")

    def _targets(self, y_true, y_pred):
        """(targets, predictions with the class axis last, mask of counted entries or None)."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "axis": self.axis}


class CategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy against one-hot (or soft) targets of the prediction's shape.
    ``label_smoothing`` s gives targets ``y (1 - s) + s / num_classes``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        owner = "CategoricalCrossentropy"
        self.from_logits = _checks.boolean(owner, "from_logits", from_logits)
        self.label_smoothing = _checks.real(owner, "label_smoothing", label_smoothing, 0, 1)
        self.axis = _checks.integer(owner, "axis", axis)

    _check = _PerElement._check

    def _targets(self, y_true, y_pred):
        self._check_axis(y_pred)
        t, p = _match_rank(y_true, y_pred)
        axis = self._class_axis(p)
        t, p = _class_last(t, axis), _class_last(p, axis)
        if self.label_smoothing:
            t = t * (1 - self.label_smoothing) + self.label_smoothing / p.shape[-1]
        return t, p, None

    def _layout(self, y_true, y_pred, logits):
        return super()._layout(y_true, _match_rank(y_true, y_pred)[1], logits)

    def _values_vjp(self, y_true, y_pred, logits, grad_values):
        matched = _match_rank(y_true, y_pred)[1]
        grad = super()._values_vjp(y_true, matched, logits, grad_values)
        return grad.reshape(y_pred.shape)

    _differentiates_targets = True

    def _target_vjp(self, y_true, y_pred, grad_values):
        # values = -sum_k t'_k log q_k with t' = t (1 - s) + s / C: d/dt_k = -(1 - s) log q_k
        target, p, _ = self._targets(y_true, y_pred)
        if self.from_logits:
            log_q = _log_softmax(p)
        else:
            log_q = np.log(np.clip(p / p.sum(-1, keepdims=True), _EPSILON, 1 - _EPSILON))
        grad = -(1 - self.label_smoothing) * log_q * grad_values.reshape(
            grad_values.shape + (1,))
        axis = self._class_axis(_match_rank(y_true, y_pred)[1])
        return grad if axis == grad.ndim - 1 else np.moveaxis(grad, -1, axis)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy against integer class labels: shape (N,) or (N, 1) for predictions
    (N, C), and likewise per pixel for (N, H, W, C). Keras 3 gives this loss no
    label_smoothing; ``ignore_class`` drops the entries with that label from the loss and
    from the count it is averaged over."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        owner = "SparseCategoricalCrossentropy"
        self.from_logits = _checks.boolean(owner, "from_logits", from_logits)
        self.ignore_class = (None if ignore_class is None else
                             _checks.integer(owner, "ignore_class", ignore_class))
        self.axis = _checks.integer(owner, "axis", axis)

    def _check(self, y_true, y_pred):
        self._check_axis(y_pred)
        y_true = np.asarray(y_true)
        axis = self._class_axis(y_pred)
        if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
            y_true = np.squeeze(y_true, axis)
        if y_true.dtype.kind == "f" and np.all(y_true == np.round(y_true)):
            y_true = y_true.astype(np.int64)
        if y_true.dtype.kind not in "iub":
            raise TypeError(f"{self.name}: labels must be integers, got dtype {y_true.dtype}")
        expected = y_pred.shape[:axis] + y_pred.shape[axis + 1:]
        if y_true.shape != expected:
            raise ValueError(f"{self.name}: expected labels of shape {expected} for "
                             f"predictions of shape {y_pred.shape}, got {y_true.shape}")
        counted = y_true if self.ignore_class is None else y_true[y_true != self.ignore_class]
        classes = y_pred.shape[axis]
        if counted.size and (counted.min() < 0 or counted.max() >= classes):
            raise ValueError(f"{self.name}: labels must be in [0, {classes}), got values from "
                             f"{counted.min()} to {counted.max()}")
        return y_true.astype(np.int64, copy=False), y_pred

    def _targets(self, y_true, y_pred):
        p = _class_last(y_pred, self._class_axis(y_pred))
        valid = None if self.ignore_class is None else y_true != self.ignore_class
        labels = y_true if valid is None else np.where(valid, y_true, 0)
        return np.eye(p.shape[-1], dtype=p.dtype)[labels], p, valid

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


# Keras' loss functions: per-sample losses, no weighting or reduction.

def mean_squared_error(y_true, y_pred):
    return MeanSquaredError().call(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return MeanAbsoluteError().call(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    return Huber(delta).call(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return KLDivergence().call(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return BinaryCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return CategoricalCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    return SparseCategoricalCrossentropy(from_logits, ignore_class, axis=axis).call(y_true,
                                                                                    y_pred)


mse = mean_squared_error
mae = mean_absolute_error
kld = kl_divergence

_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, Huber, KLDivergence, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy)}
#: each loss function and the class that computes it (what compile(loss=fn) trains with)
_FUNCTIONS = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    huber: Huber, kl_divergence: KLDivergence, binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}
# Keras' string names: class names, function names and the short aliases.
_BY_NAME = {**_CLASSES, **{fn.__name__: cls for fn, cls in _FUNCTIONS.items()},
            "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
            "MAE": MeanAbsoluteError, "kld": KLDivergence, "KLD": KLDivergence,
            "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy}


def _named(cls, name):
    """An instance named as Keras names a loss given by string or function."""
    loss = cls()
    loss.name = name
    return loss


class LossFunctionWrapper(Loss):
    """A loss function of your own, ``fn(y_true, y_pred, **kwargs)`` returning per-sample
    losses written with convnet.ops, as ``keras.losses.LossFunctionWrapper``: weighted and
    reduced like every Loss; in training the tape differentiates it."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper: fn must be callable, got {fn!r}")
        super().__init__(name or getattr(fn, "__name__", None), reduction, dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        raise TypeError(f"{self.name}: a loss function of your own cannot be written into a "
                        f"model file (that would be code); save with include_optimizer=False "
                        f"or compile again after loading")


def get(identifier):
    """A Loss from a Keras name ("binary_crossentropy", "mse", "Huber", ...), a loss function
    (``losses.huber``), a Loss class or instance, or a serialized {"class_name", "config"}."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower())
        if cls is not None:
            return _named(cls, identifier)
    elif callable(identifier) and identifier in _FUNCTIONS:
        return _named(_FUNCTIONS[identifier], identifier.__name__)
    elif callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)
    raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)}, a "
                     f"convnet.losses.Loss or one of convnet.losses' loss functions")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown loss in model file: {config!r}")
    settings = config.get("config", {})
    if not isinstance(settings, dict):
        raise ValueError(f"Invalid loss config in model file: {config!r}")
    return _CLASSES[config["class_name"]].from_config(settings)
