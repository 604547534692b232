"""Losses against their formulas written out here, float64 finite differences, and Keras 3."""
import numpy as np
import pytest

import convnet as keras
from convnet import losses
from convnet.utils import numerical_gradient

from keras_reference import keras_or_skip, numpy_of

EPS = 1e-7


# ----------------------------------------------------------------------------- references

def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def ref_mse(t, p):
    return ((p - t) ** 2).mean(axis=-1)


def ref_mae(t, p):
    return np.abs(p - t).mean(axis=-1)


def ref_huber(t, p, delta):
    e = np.abs(p - t)
    return np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2).mean(axis=-1)


def ref_kld(t, p):
    t, p = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
    return (t * np.log(t / p)).sum(axis=-1)


def ref_bce(t, p, smoothing=0.0, logits=False):
    t = t * (1 - smoothing) + smoothing / 2
    p = _sigmoid(p) if logits else np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=-1)


def ref_cce(t, p, smoothing=0.0, logits=False):
    out = np.empty(p.shape[0])
    for i in range(p.shape[0]):
        target = t[i] * (1 - smoothing) + smoothing / p.shape[1]
        if logits:
            log_q = p[i] - np.log(np.sum(np.exp(p[i])))
        else:
            log_q = np.log(np.clip(p[i] / p[i].sum(), EPS, 1 - EPS))
        out[i] = -np.sum(target * log_q)
    return out


def ref_scce(labels, p, logits=False):
    return ref_cce(np.eye(p.shape[-1])[labels], p, logits=logits)


def ref_reduce(values, sample_weight, reduction):
    weights = np.ones_like(values) if sample_weight is None else sample_weight
    weighted = values * weights
    if reduction in (None, "none"):
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean_with_sample_weight":
        return weighted.sum() / weights.sum()
    return weighted.sum() / weighted.size        # sum_over_batch_size, mean


# ----------------------------------------------------------------------------- cases

def _case(name, rng):
    """(convnet loss class, kwargs, per-sample reference, y_true, y_pred) of float64 data."""
    n = 6
    probs = rng.uniform(0.05, 1.0, (n, 4))
    one_hot = np.eye(4)[rng.integers(0, 4, n)]
    if name == "mse":
        return "MeanSquaredError", {}, ref_mse, rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    if name == "mae":
        return ("MeanAbsoluteError", {}, ref_mae, rng.normal(size=(n, 3)),
                rng.normal(size=(n, 3)))
    if name == "huber":
        t = rng.normal(size=(n, 3))
        p = t + rng.choice([-1, 1], (n, 3)) * rng.uniform(0.1, 1.5, (n, 3))
        return ("Huber", {"delta": 0.7}, lambda t, p: ref_huber(t, p, 0.7), t, p)
    if name == "kld":
        t = rng.dirichlet(np.ones(4), n)
        return "KLDivergence", {}, ref_kld, t, rng.uniform(0.05, 0.95, (n, 4))
    if name == "bce":
        return ("BinaryCrossentropy", {}, ref_bce, rng.integers(0, 2, (n, 3)).astype(float),
                rng.uniform(0.05, 0.95, (n, 3)))
    if name == "bce_soft_smoothed":
        return ("BinaryCrossentropy", {"label_smoothing": 0.2},
                lambda t, p: ref_bce(t, p, 0.2), rng.uniform(0, 1, (n, 3)),
                rng.uniform(0.05, 0.95, (n, 3)))
    if name == "bce_logits":
        return ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1},
                lambda t, p: ref_bce(t, p, 0.1, logits=True),
                rng.integers(0, 2, (n, 1)).astype(float), rng.normal(0, 3, (n, 1)))
    if name == "cce":
        return "CategoricalCrossentropy", {}, ref_cce, one_hot, probs
    if name == "cce_smoothed":
        return ("CategoricalCrossentropy", {"label_smoothing": 0.1},
                lambda t, p: ref_cce(t, p, 0.1), one_hot, probs)
    if name == "cce_logits_smoothed":
        return ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1},
                lambda t, p: ref_cce(t, p, 0.1, logits=True), one_hot, rng.normal(0, 2, (n, 4)))
    if name == "scce":
        return ("SparseCategoricalCrossentropy", {}, ref_scce, rng.integers(0, 4, n), probs)
    if name == "scce_logits":
        return ("SparseCategoricalCrossentropy", {"from_logits": True},
                lambda t, p: ref_scce(t, p, logits=True), rng.integers(0, 4, n),
                rng.normal(0, 2, (n, 4)))
    raise KeyError(name)


CASES = ["mse", "mae", "huber", "kld", "bce", "bce_soft_smoothed", "bce_logits", "cce",
         "cce_smoothed", "cce_logits_smoothed", "scce", "scce_logits"]
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("reduction", REDUCTIONS, ids=str)
@pytest.mark.parametrize("case", CASES)
def test_loss_value_and_gradient_match_formula_and_finite_differences(case, reduction, weighted,
                                                                      rng):
    name, kwargs, reference, t, p = _case(case, rng)
    loss = getattr(losses, name)(reduction=reduction, **kwargs)
    sample_weight = rng.uniform(0.2, 2.0, len(p)) if weighted else None
    expected = ref_reduce(reference(t, p), sample_weight, reduction)
    t_checked, p_checked = loss._check(t, p)
    np.testing.assert_allclose(loss.value(t_checked, p_checked, sample_weight=sample_weight),
                               expected, rtol=1e-12)

    def total(x):
        return float(np.sum(loss.value(t_checked, x, sample_weight=sample_weight)))

    numeric = numerical_gradient(total, p.copy())
    analytic = loss.gradient(t_checked, p_checked, sample_weight=sample_weight)
    assert analytic.shape == p.shape and analytic.dtype == p.dtype
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight",
                                       None], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_loss_values_match_keras(case, reduction, weighted, rng):
    keras_ref = keras_or_skip()
    name, kwargs, reference, t, p = _case(case, rng)
    sample_weight = rng.uniform(0.2, 2.0, len(p)) if weighted else None
    ours = getattr(losses, name)(reduction=reduction, **kwargs)(t, p.astype(np.float32),
                                                                 sample_weight=sample_weight)
    theirs = getattr(keras_ref.losses, name)(reduction=reduction, **kwargs)(
        t, p.astype(np.float32), sample_weight=sample_weight)
    np.testing.assert_allclose(ours, numpy_of(theirs), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ours, ref_reduce(reference(t, p), sample_weight, reduction),
                               rtol=2e-5, atol=1e-6)


def test_keras_docstring_examples():
    y = np.array([[0, 1], [0, 0]])
    z = np.array([[-18.6, 0.51], [2.94, -12.8]])
    bce = losses.BinaryCrossentropy(from_logits=True)
    assert bce(y, z) == pytest.approx(0.8654, abs=1e-4)
    assert bce(y, z, sample_weight=[0.8, 0.2]) == pytest.approx(0.243, abs=1e-3)
    assert losses.BinaryCrossentropy(from_logits=True, reduction="sum")(y, z) == \
        pytest.approx(1.730, abs=1e-3)
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, z),
                               [0.235, 1.496], atol=1e-3)
    np.testing.assert_allclose(losses.huber([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]).mean(),
                               0.155, atol=1e-3)
    assert losses.MeanAbsoluteError()([1.0, 0.3, 1.0], [1.9, 0.3, 1.8]) == \
        pytest.approx(0.5666667)
    np.testing.assert_allclose(losses.categorical_crossentropy(
        [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]), [0.0513, 2.303], atol=1e-3)


def test_fused_softmax_and_sigmoid_equal_the_loss_through_the_activation(rng):
    """logits=True gives the loss of softmax(z) / sigmoid(z) and its gradient w.r.t. z."""
    z = rng.normal(0, 2, (5, 4))
    for loss, target, activation in [
            (losses.CategoricalCrossentropy(label_smoothing=0.1), np.eye(4)[[0, 3, 1, 2, 2]],
             lambda v: np.exp(v) / np.exp(v).sum(axis=-1, keepdims=True)),
            (losses.SparseCategoricalCrossentropy(), np.array([0, 3, 1, 2, 2]),
             lambda v: np.exp(v) / np.exp(v).sum(axis=-1, keepdims=True)),
            (losses.BinaryCrossentropy(label_smoothing=0.2), rng.integers(0, 2, (5, 4)),
             _sigmoid)]:
        t, _ = loss._check(target, z)
        weights = rng.uniform(0.5, 1.5, 5)
        through = loss.value(t, activation(z), sample_weight=weights)
        assert loss.value(t, z, logits=True, sample_weight=weights) == pytest.approx(
            through, rel=1e-10)
        numeric = numerical_gradient(
            lambda v: loss.value(t, activation(v), sample_weight=weights), z.copy())
        np.testing.assert_allclose(loss.gradient(t, z, logits=True, sample_weight=weights),
                                   numeric, rtol=1e-6, atol=1e-9)
    assert losses.BinaryCrossentropy.fuses_sigmoid and losses.CategoricalCrossentropy.fuses_softmax


def test_logits_stay_exact_where_probabilities_saturate():
    bce = losses.BinaryCrossentropy(from_logits=True)
    z = np.array([[1000.0], [-1000.0], [40.0]])
    y = np.array([[0.0], [0.0], [1.0]])
    assert bce(y, z, sample_weight=[1, 0, 0]) == pytest.approx(1000 / 3)
    assert bce(y, z, sample_weight=[0, 1, 0]) == 0.0
    np.testing.assert_allclose(bce.gradient(*bce._check(y, z)), [[1 / 3], [0], [-np.exp(-40) / 3]],
                               rtol=1e-12)
    cce = losses.CategoricalCrossentropy(from_logits=True)
    assert cce(np.array([[0.0, 0.0, 1.0]]), np.array([[1000.0, 0.0, -1000.0]])) == \
        pytest.approx(2000.0)


def test_soft_targets_that_do_not_sum_to_one_get_the_exact_logit_gradient(rng):
    cce = losses.CategoricalCrossentropy(from_logits=True)
    t = rng.uniform(0, 1, (3, 5))          # unnormalised: the gradient is softmax * sum(t) - t
    z = rng.normal(size=(3, 5))
    numeric = numerical_gradient(lambda v: cce.value(t, v), z.copy())
    np.testing.assert_allclose(cce.gradient(t, z), numeric, rtol=1e-6, atol=1e-9)


def test_per_pixel_sparse_loss_with_ignore_class_and_per_image_weights(rng):
    keras_ref = None
    labels = rng.integers(0, 3, (2, 4, 5))
    labels[0, 0, :3] = 255
    logits = rng.normal(size=(2, 4, 5, 3))
    weights = np.array([0.5, 2.0])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    t, z = loss._check(labels[..., None], logits)       # a trailing axis of 1 is dropped
    per_pixel = np.zeros(labels.shape)
    valid = labels != 255
    for index in zip(*np.nonzero(valid)):
        row = logits[index]
        per_pixel[index] = -(row[labels[index]] - np.log(np.exp(row).sum()))
    # Ignored pixels count neither in the sum nor in the number it is averaged over.
    expected = (per_pixel * weights[:, None, None]).sum() / valid.sum()
    assert loss.value(t, z, sample_weight=weights) == pytest.approx(expected, rel=1e-12)
    grad = loss.gradient(t, z, sample_weight=weights)
    assert np.all(grad[0, 0, :3] == 0)
    numeric = numerical_gradient(lambda v: loss.value(t, v, sample_weight=weights), z.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    try:
        keras_ref = keras_or_skip()
    except pytest.skip.Exception:
        return
    theirs = keras_ref.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)(
        labels, logits.astype(np.float32))
    assert loss(labels, logits) == pytest.approx(float(numpy_of(theirs)), rel=1e-5)


def test_sample_weight_rank_rules(rng):
    """Keras squeezes or expands a trailing axis of 1; weights of lower rank than per-pixel
    losses align on the batch axis."""
    mse = losses.MeanSquaredError(reduction="sum")
    t, p = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    w = rng.uniform(size=4)
    assert mse(t, p, sample_weight=w[:, None]) == pytest.approx(mse(t, p, sample_weight=w))
    assert mse(t, p, sample_weight=2.0) == pytest.approx(2 * mse(t, p))
    images_t, images_p = rng.normal(size=(4, 2, 2, 3)), rng.normal(size=(4, 2, 2, 3))
    per_pixel = ((images_p - images_t) ** 2).mean(axis=-1)
    assert mse(images_t, images_p, sample_weight=w) == pytest.approx(
        (per_pixel * w[:, None, None]).sum())
    # A target of shape (N,) against a prediction (N, 1) is expanded, as in Keras.
    column = rng.normal(size=(4, 1))
    assert losses.MeanSquaredError()(t[:, 0], column) == pytest.approx(
        np.mean((column[:, 0] - t[:, 0]) ** 2))
    with pytest.raises(ValueError, match="sample_weight of shape"):
        mse(t, p, sample_weight=np.ones(5))


def test_float32_predictions_give_float32_gradients(rng):
    for loss in (losses.BinaryCrossentropy(), losses.Huber(), losses.KLDivergence()):
        t, p = loss._check(rng.integers(0, 2, (3, 2)), rng.uniform(0.1, 0.9, (3, 2)).astype(
            np.float32))
        assert loss.gradient(t, p).dtype == np.float32
        assert isinstance(loss.value(t, p), float)


def test_get_serialize_deserialize_round_trip():
    for identifier, cls in [("binary_crossentropy", losses.BinaryCrossentropy),
                            ("bce", losses.BinaryCrossentropy), ("BCE", losses.BinaryCrossentropy),
                            ("mae", losses.MeanAbsoluteError),
                            ("mean_absolute_error", losses.MeanAbsoluteError),
                            ("MeanAbsoluteError", losses.MeanAbsoluteError),
                            ("kld", losses.KLDivergence), ("kl_divergence", losses.KLDivergence),
                            ("KLDivergence", losses.KLDivergence), ("huber", losses.Huber),
                            ("Huber", losses.Huber), ("mse", losses.MeanSquaredError),
                            ("categorical_crossentropy", losses.CategoricalCrossentropy),
                            ("sparse_categorical_crossentropy",
                             losses.SparseCategoricalCrossentropy),
                            (losses.binary_crossentropy, losses.BinaryCrossentropy),
                            (losses.huber, losses.Huber), (losses.Huber, losses.Huber)]:
        loss = losses.get(identifier)
        assert type(loss) is cls, identifier
    configured = [losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1,
                                            reduction="sum", name="b"),
                  losses.Huber(delta=2.5), losses.SparseCategoricalCrossentropy(ignore_class=0),
                  losses.CategoricalCrossentropy(label_smoothing=0.3, axis=1),
                  losses.KLDivergence(reduction=None), losses.MeanAbsoluteError()]
    for loss in configured:
        clone = losses.deserialize(losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    # Old model files stored only from_logits.
    old = losses.deserialize({"class_name": "SparseCategoricalCrossentropy",
                              "config": {"from_logits": False}})
    assert old.reduction == "sum_over_batch_size" and old.ignore_class is None
    assert losses.BinaryCrossentropy().name == "binary_crossentropy"
    assert losses.Huber().name == "huber_loss"


def test_compile_accepts_the_new_losses_by_name(rng):
    x = rng.normal(size=(8, 3)).astype(np.float32)
    for loss, y in [("binary_crossentropy", rng.integers(0, 2, (8, 1))),
                    ("mae", rng.normal(size=(8, 1))), ("huber", rng.normal(size=(8, 1))),
                    ("kld", rng.uniform(0.1, 0.9, (8, 1)))]:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile("sgd", loss)
        assert np.isfinite(model.train_on_batch(x, y))


def test_a_keras_style_subclass_gives_values_and_a_clear_error_for_gradients(rng):
    class Cubed(losses.Loss):
        def call(self, y_true, y_pred):
            return np.mean(np.abs(y_pred - y_true) ** 3, axis=-1)

    loss = Cubed(reduction="sum")
    t, p = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    assert loss.name == "cubed"
    assert loss(t, p, sample_weight=[1, 2, 0, 1]) == pytest.approx(
        np.dot(np.mean(np.abs(p - t) ** 3, axis=-1), [1, 2, 0, 1]))
    with pytest.raises(NotImplementedError, match="Cubed.*_values_vjp"):
        loss.gradient(*loss._check(t, p))


# ----------------------------------------------------------------------------- on the tape

def _probabilities(rng, shape):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(-1, keepdims=True)


TAPED = {
    "mse": (lambda: losses.MeanSquaredError(), "real", True),
    "mae": (lambda: losses.MeanAbsoluteError(reduction="sum"), "real", True),
    "huber": (lambda: losses.Huber(0.7), "real", True),
    "kl": (lambda: losses.KLDivergence(), "probabilities", True),
    "categorical": (lambda: losses.CategoricalCrossentropy(label_smoothing=0.1),
                    "probabilities", True),
    "categorical from logits": (lambda: losses.CategoricalCrossentropy(from_logits=True),
                                "logits", True),
    "categorical, no reduction": (lambda: losses.CategoricalCrossentropy(reduction=None),
                                  "probabilities", True),
    "sparse from logits": (lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
                           "labels", False),
    "binary from logits": (lambda: losses.BinaryCrossentropy(from_logits=True), "binary",
                           False),
}


@pytest.mark.parametrize("name", sorted(TAPED))
def test_losses_called_on_the_tape_match_finite_differences(rng, name):
    """A loss called inside a GradientTape (as a compute_loss override calls it) puts its
    gradient on the tape: d loss / d y_pred, and d loss / d y_true where the target is itself
    computed (a teacher's softmax), each against float64 finite differences of the value."""
    make, kind, targets_differentiable = TAPED[name]
    loss = make()
    shape = (4, 5)
    y_pred = (_probabilities(rng, shape) if kind == "probabilities"
              else rng.standard_normal(shape))
    y_true = {"real": lambda: rng.standard_normal(shape),
              "probabilities": lambda: _probabilities(rng, shape),
              "logits": lambda: _probabilities(rng, shape),
              "labels": lambda: rng.integers(0, 5, 4),
              "binary": lambda: rng.integers(0, 2, shape).astype(float)}[kind]()
    weights = rng.uniform(0.5, 2, 4)
    seed = rng.standard_normal(4) if loss.reduction is None else 1.0

    def value(t, p):
        return float(np.sum(np.asarray(loss(t, p, sample_weight=weights)) * seed))

    pred_var = keras.Variable(y_pred, dtype="float64")
    sources = [pred_var]
    true_var = None
    if targets_differentiable:
        true_var = keras.Variable(y_true, dtype="float64")
        sources.append(true_var)
    with keras.GradientTape() as tape:
        # through an op, as a model's output would be: a Tensor on the tape
        t = keras.ops.multiply(true_var, 1.0) if true_var is not None else y_true
        out = loss(t, keras.ops.multiply(pred_var, 1.0), sample_weight=weights)
        target = keras.ops.sum(out * seed)
    grads = tape.gradient(target, sources)
    np.testing.assert_allclose(grads[0], numerical_gradient(lambda p: value(y_true, p),
                                                            y_pred.copy()), atol=1e-7)
    if true_var is not None:
        np.testing.assert_allclose(grads[1], numerical_gradient(lambda t: value(t, y_pred),
                                                                y_true.copy()), atol=1e-7)
    else:
        with keras.GradientTape(), pytest.raises(TypeError, match="y_true is on the gradient"):
            loss(keras.ops.multiply(keras.Variable(y_true, dtype="float64"), 1.0),
                 keras.ops.multiply(pred_var, 1.0))


def test_a_keras_style_loss_subclass_trains_through_its_call(rng):
    """keras.losses.Loss subclassed the Keras way (call written with ops) is differentiated
    by the tape inside a compute_loss-style call: sum_over_batch_size of the weighted values."""
    class Quartic(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean((y_pred - y_true) ** 4, axis=-1)

    y_true, y_pred, weights = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), \
        rng.uniform(0.5, 2, 3)
    var = keras.Variable(y_pred, dtype="float64")
    with keras.GradientTape() as tape:
        out = Quartic()(y_true, keras.ops.multiply(var, 1.0), sample_weight=weights)
    grad = tape.gradient(out, var)

    def value(p):
        return float(np.mean(np.mean((p - y_true) ** 4, axis=-1) * weights))

    assert float(np.asarray(keras.autodiff.value_of(out))) == pytest.approx(value(y_pred))
    np.testing.assert_allclose(grad, numerical_gradient(value, y_pred.copy()), atol=1e-7)


def test_fit_with_a_loss_function_of_your_own(rng, tmp_path):
    """compile(loss=fn) with fn written with ops, as Keras takes it: fit's loss is the
    function's batch mean, one SGD step moves the weights by its finite-difference gradient,
    and save writes the model without the compile settings (with a warning)."""
    def cubic_error(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_pred - y_true) ** 3, axis=-1)

    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, dtype="float64")])
    model.compile(keras.optimizers.SGD(0.1), loss=cubic_error)
    kernel, bias = model.get_weights()

    def value(k, b):
        return float(np.mean(np.mean(np.abs(x @ k + b - y) ** 3, axis=-1)))

    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(value(kernel, bias))
    np.testing.assert_allclose(
        model.get_weights()[0],
        kernel - 0.1 * numerical_gradient(lambda k: value(k, bias), kernel.copy()), atol=1e-8)
    with pytest.warns(UserWarning, match="without its compile settings.*'cubic_error'"):
        model.save(tmp_path / "m.cnet")
    loaded = keras.load_model(tmp_path / "m.cnet")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", None],
                         ids=str)
@pytest.mark.parametrize("case", ["mse", "huber", "bce_logits", "cce_smoothed", "scce",
                                  "scce_logits"])
def test_a_loss_called_in_a_custom_training_loop_is_on_the_tape(case, reduction, rng):
    """loss_fn(y, model(x)) under a GradientTape, as a Keras custom training loop writes it:
    tape.gradient reaches the prediction with the loss's gradient (checked against float64
    finite differences), also through an unreduced loss weighted downstream."""
    name, kwargs, _, t, p = _case(case, rng)
    loss = getattr(losses, name)(reduction=reduction, **kwargs)
    sample_weight = rng.uniform(0.2, 2.0, len(p))
    downstream = rng.uniform(0.5, 1.5, len(p))   # weighs an unreduced loss's entries
    prediction = keras.Variable(p.copy(), dtype="float64")
    t_checked, _ = loss._check(t, p)

    def total(x):
        values = loss.value(t_checked, x, sample_weight=sample_weight)
        return float(np.sum(values * downstream) if reduction is None else values)

    with keras.GradientTape() as tape:
        value = loss(t, prediction, sample_weight=sample_weight)
        if reduction is None:
            value = keras.ops.sum(value * downstream)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), total(p), rtol=1e-12)
    [grad] = tape.gradient(value, [prediction])
    np.testing.assert_allclose(grad, numerical_gradient(total, p.copy()), rtol=1e-6,
                               atol=1e-8)


def test_a_loss_outside_a_tape_is_a_float(rng):
    assert isinstance(losses.MeanSquaredError()(np.zeros(3), rng.normal(size=3)), float)
