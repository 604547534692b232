"""Initializers, regularizers and constraints against their formulas and Keras 3."""
import math

import numpy as np
import pytest
from scipy import stats

import convnet as keras
from convnet import constraints, initializers, regularizers
from convnet.utils import numerical_gradient

from keras_reference import keras_or_skip, numpy_of

CONV = (3, 3, 16, 32)          # fan_in 144, fan_out 288


def test_fans_follow_keras():
    assert initializers.compute_fans(CONV) == (144, 288)
    assert initializers.compute_fans((20, 30)) == (20, 30)
    assert initializers.compute_fans((7,)) == (7, 7)
    assert initializers.compute_fans(()) == (1, 1)
    assert initializers.compute_fans((4, 5, 6), input_axes=[0, 1], output_axes=[2]) == (20, 6)


@pytest.mark.parametrize("cls, scale, fan, distribution", [
    (initializers.HeNormal, 2.0, 144, "truncated"), (initializers.HeUniform, 2.0, 144, "uniform"),
    (initializers.LecunNormal, 1.0, 144, "truncated"),
    (initializers.LecunUniform, 1.0, 144, "uniform"),
    (initializers.GlorotNormal, 1.0, 216, "truncated"),
    (initializers.GlorotUniform, 1.0, 216, "uniform")])
def test_variance_scaling_presets_have_the_documented_distribution(cls, scale, fan,
                                                                   distribution):
    w = cls(seed=1)(CONV)
    assert w.shape == CONV and w.dtype == np.float32
    std = math.sqrt(scale / fan)
    if distribution == "uniform":
        limit = math.sqrt(3) * std
        assert np.abs(w).max() <= limit
        assert stats.kstest(w.ravel() / limit, "uniform", args=(-1, 2)).pvalue > 1e-3
    else:
        # A normal cut at two of its standard deviations, widened by 1/0.8796 so what is kept
        # has the target spread.
        cut = 2 * std / 0.87962566103423978
        assert np.abs(w).max() <= cut + 1e-7
        assert stats.kstest(w.ravel() / (cut / 2), "truncnorm", args=(-2, 2)).pvalue > 1e-3
    assert w.std() == pytest.approx(std, rel=0.03)


def test_random_normal_uniform_and_truncated_moments():
    n = (400, 500)
    normal = initializers.RandomNormal(mean=1.0, stddev=0.5, seed=0)(n, "float64")
    assert normal.mean() == pytest.approx(1.0, abs=0.005) and normal.std() == pytest.approx(
        0.5, rel=0.01)
    uniform = initializers.RandomUniform(-2, 3, seed=0)(n)
    assert uniform.min() >= -2 and uniform.max() <= 3 and uniform.mean() == pytest.approx(
        0.5, abs=0.01)
    truncated = initializers.TruncatedNormal(mean=0.5, stddev=0.1, seed=0)(n)
    assert np.abs(truncated - 0.5).max() <= 0.2 + 1e-6
    assert truncated.std() == pytest.approx(0.1 * 0.87962566103423978, rel=0.01)
    assert initializers.TruncatedNormal().stddev == 0.05


def test_orthogonal_and_identity():
    for shape in [(6, 4), (4, 6), (3, 3, 2, 5)]:
        w = initializers.Orthogonal(gain=2.0, seed=3)(shape, "float64")
        flat = w.reshape(-1, shape[-1])
        small = min(flat.shape)
        gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-12)
    np.testing.assert_array_equal(initializers.Identity(gain=3)((2, 3)), [[3, 0, 0], [0, 3, 0]])
    with pytest.raises(ValueError, match="Identity.*2-D"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(ValueError, match="Orthogonal.*two axes"):
        initializers.Orthogonal()((5,))


def test_seeds_repeat_across_calls_and_instances_as_in_keras_3():
    seeded = initializers.HeNormal(seed=7)
    np.testing.assert_array_equal(seeded(CONV), seeded(CONV))
    np.testing.assert_array_equal(seeded(CONV), initializers.HeNormal(seed=7)(CONV))
    assert not np.array_equal(seeded(CONV), initializers.HeNormal(seed=8)(CONV))
    # Unseeded: a seed drawn at the first call (reproducible after set_random_seed), then kept.
    keras.utils.set_random_seed(5)
    first = initializers.GlorotUniform()
    drawn = first(CONV)
    keras.utils.set_random_seed(5)
    np.testing.assert_array_equal(initializers.GlorotUniform()(CONV), drawn)
    np.testing.assert_array_equal(first(CONV), drawn)
    assert not np.array_equal(drawn, initializers.GlorotUniform()(CONV))
    # Two layers given the same name get different weights.
    a, b = (keras.layers.Dense(8, kernel_initializer="he_normal") for _ in range(2))
    a.build((None, 4))
    b.build((None, 4))
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])


def test_constant_zeros_ones():
    np.testing.assert_array_equal(initializers.Constant(2.5)((2, 2)), np.full((2, 2), 2.5))
    np.testing.assert_array_equal(initializers.Constant([1, 2])((3, 2)), [[1, 2]] * 3)
    assert initializers.Zeros()((3,), "float64").dtype == np.float64
    assert initializers.Ones()((2, 1)).sum() == 2


def test_initializer_names_configs_and_keras_statistics():
    for name, cls in [("he_normal", initializers.HeNormal), ("HeNormal", initializers.HeNormal),
                      ("truncated_normal", initializers.TruncatedNormal),
                      ("orthogonal", initializers.Orthogonal),
                      ("normal", initializers.RandomNormal),
                      ("uniform", initializers.RandomUniform), ("zeros", initializers.Zeros),
                      ("identity", initializers.Identity),
                      ("glorot_uniform", initializers.GlorotUniform)]:
        assert type(initializers.get(name)) is cls
    for init in [initializers.VarianceScaling(0.5, "fan_out", "uniform", seed=3),
                 initializers.TruncatedNormal(0.1, 0.2, seed=1), initializers.Constant(0.3),
                 initializers.HeUniform(seed=4), initializers.Orthogonal(0.5, seed=2)]:
        clone = initializers.get(initializers.serialize(init))
        assert clone.get_config() == init.get_config()
        np.testing.assert_array_equal(clone((4, 5)), init((4, 5)))
    assert initializers.VarianceScaling(distribution="normal").distribution == "truncated_normal"
    keras_ref = keras_or_skip()
    for name in ["HeNormal", "GlorotUniform", "LecunNormal", "TruncatedNormal"]:
        ours = getattr(initializers, name)(seed=0)((64, 64, 8))
        theirs = numpy_of(getattr(keras_ref.initializers, name)(seed=0)((64, 64, 8)))
        assert ours.std() == pytest.approx(theirs.std(), rel=0.02)
        assert np.abs(ours).max() <= np.abs(theirs).max() * 1.05


# ----------------------------------------------------------------------------- regularizers

@pytest.mark.parametrize("regularizer, formula", [
    (regularizers.L1(0.3), lambda w: 0.3 * np.abs(w).sum()),
    (regularizers.L2(0.2), lambda w: 0.2 * (w ** 2).sum()),
    (regularizers.L1L2(l1=0.1, l2=0.4), lambda w: 0.1 * np.abs(w).sum() + 0.4 * (w ** 2).sum()),
    (regularizers.OrthogonalRegularizer(0.5), None),
    (regularizers.OrthogonalRegularizer(0.5, mode="columns"), None)])
def test_regularizer_penalty_and_gradient(regularizer, formula, rng):
    w = rng.normal(size=(5, 4))
    if formula is None:
        rows = w if regularizer.mode == "rows" else w.T
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        n = rows.shape[0]
        off = [abs(unit[i] @ unit[j]) for i in range(n) for j in range(n) if i != j]
        formula = lambda _: 0.5 * 0.5 * sum(off) / (n * (n - 1) / 2)   # noqa: E731
    assert regularizer(w) == pytest.approx(formula(w), rel=1e-12)
    np.testing.assert_allclose(regularizer.gradient(w), numerical_gradient(regularizer, w.copy()),
                               rtol=1e-6, atol=1e-9)
    assert regularizer.gradient(w.astype(np.float32)).dtype == np.float32
    keras_ref = keras_or_skip()
    theirs = regularizers.serialize(regularizer)
    keras_regularizer = getattr(keras_ref.regularizers, theirs["class_name"])(**theirs["config"])
    assert regularizer(w.astype(np.float32)) == pytest.approx(
        float(numpy_of(keras_regularizer(keras_ref.ops.convert_to_tensor(
            w.astype(np.float32))))), rel=1e-5)


def test_activity_penalty_is_divided_by_the_batch_size(rng):
    y = rng.normal(size=(8, 3))
    penalty, grad = regularizers.activity_penalty(regularizers.L2(0.1), y)
    assert penalty == pytest.approx(0.1 * (y ** 2).sum() / 8)
    np.testing.assert_allclose(grad, 0.2 * y / 8)


def test_regularizer_names():
    assert type(regularizers.get("l1")) is regularizers.L1
    assert type(regularizers.get("l2")) is regularizers.L2
    assert type(regularizers.get("l1_l2")) is regularizers.L1L2
    assert type(regularizers.get("L1L2")) is regularizers.L1L2
    assert regularizers.get(None) is None
    assert regularizers.get("l2").l2 == 0.01
    clone = regularizers.get(regularizers.serialize(regularizers.L1L2(0.2, 0.3)))
    assert clone.get_config() == {"l1": 0.2, "l2": 0.3}


# ----------------------------------------------------------------------------- constraints

def test_constraints_project_as_documented(rng):
    w = rng.normal(size=(6, 4)) * 3
    norms = np.sqrt((w ** 2).sum(axis=0))
    clipped = constraints.MaxNorm(2.0)(w)
    np.testing.assert_allclose(np.sqrt((clipped ** 2).sum(axis=0)),
                               np.minimum(norms, 2.0) * norms / (norms + 1e-7), rtol=1e-12)
    unit = constraints.UnitNorm(axis=1)(w)
    np.testing.assert_allclose(np.sqrt((unit ** 2).sum(axis=1)), 1.0, rtol=1e-6)
    minmax = constraints.MinMaxNorm(1.0, 3.0, rate=0.5)(w)
    desired = 0.5 * np.clip(norms, 1, 3) + 0.5 * norms
    np.testing.assert_allclose(np.sqrt((minmax ** 2).sum(axis=0)),
                               desired * norms / (norms + 1e-7), rtol=1e-12)
    np.testing.assert_array_equal(constraints.NonNeg()(w), np.maximum(w, 0))
    kernel = rng.normal(size=(3, 3, 2, 4))
    per_filter = constraints.MaxNorm(1.0, axis=[0, 1, 2])(kernel)
    assert np.sqrt((per_filter ** 2).sum(axis=(0, 1, 2))).max() <= 1.0
    keras_ref = keras_or_skip()
    for ours in [constraints.MaxNorm(2.0), constraints.UnitNorm(axis=1),
                 constraints.MinMaxNorm(1.0, 3.0, 0.5), constraints.NonNeg()]:
        config = constraints.serialize(ours)
        theirs = getattr(keras_ref.constraints, config["class_name"])(**config["config"])
        np.testing.assert_allclose(ours(w.astype(np.float32)),
                                   numpy_of(theirs(w.astype(np.float32))), rtol=1e-5)


def test_constraint_names_and_defaults():
    assert constraints.get("max_norm").max_value == 2 and constraints.get("max_norm").axis == 0
    assert type(constraints.get("non_neg")) is constraints.NonNeg
    assert type(constraints.get("UnitNorm")) is constraints.UnitNorm
    assert constraints.get("min_max_norm").get_config() == {"min_value": 0.0, "max_value": 1.0,
                                                            "rate": 1.0, "axis": 0}
    clone = constraints.get(constraints.serialize(constraints.MaxNorm(3, axis=[0, 1, 2])))
    assert clone.get_config() == {"max_value": 3.0, "axis": [0, 1, 2]}
