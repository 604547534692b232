"""Optimizers step by step against their update rules written out here, and against Keras 3."""
import math

import numpy as np
import pytest

import convnet as keras
from convnet import constraints, optimizers

from keras_reference import keras_or_skip, numpy_of

W0 = np.array([0.5, -1.5, 2.0])
GRADS = [np.array([0.2, -0.4, 1.0]), np.array([-0.1, 0.3, 0.5]), np.array([0.05, 0.0, -2.0]),
         np.array([0.3, -0.2, 0.1])]


def _reference_steps(name, kwargs):
    """The update rules of Keras 3, one scalar entry at a time, in float64."""
    lr = kwargs.get("learning_rate", 0.001)
    w = W0.copy()
    out = []
    state = {}
    for t, g in enumerate(GRADS, start=1):
        new = np.empty_like(w)
        for i in range(len(w)):
            s = state.setdefault(i, {})
            gi, wi = g[i], w[i]
            if name == "SGD":
                mom = kwargs.get("momentum", 0.0)
                m = mom * s.get("m", 0.0) - lr * gi
                s["m"] = m
                wi = wi + (mom * m - lr * gi if kwargs.get("nesterov") else m)
            elif name in ("Adam", "AdamW"):
                b1, b2, eps = kwargs.get("beta_1", 0.9), kwargs.get("beta_2", 0.999), 1e-7
                if name == "AdamW":
                    wi = wi - wi * kwargs["weight_decay"] * lr
                m = s.get("m", 0.0) + (gi - s.get("m", 0.0)) * (1 - b1)
                v = s.get("v", 0.0) + (gi * gi - s.get("v", 0.0)) * (1 - b2)
                v_hat = max(s.get("v_hat", 0.0), v)
                s.update(m=m, v=v, v_hat=v_hat)
                alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                wi = wi - alpha * m / (math.sqrt(v_hat if kwargs.get("amsgrad") else v) + eps)
            elif name == "Nadam":
                b1, b2, eps = 0.9, 0.999, 1e-7
                u_t = b1 * (1 - 0.5 * 0.96 ** t)
                u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
                product = 1.0
                for k in range(1, t + 1):
                    product *= b1 * (1 - 0.5 * 0.96 ** k)
                m = s.get("m", 0.0) + (gi - s.get("m", 0.0)) * (1 - b1)
                v = s.get("v", 0.0) + (gi * gi - s.get("v", 0.0)) * (1 - b2)
                s.update(m=m, v=v)
                m_hat = u_next * m / (1 - product * u_next) + (1 - u_t) * gi / (1 - product)
                wi = wi - lr * m_hat / (math.sqrt(v / (1 - b2 ** t)) + eps)
            elif name == "Adamax":
                b1, b2, eps = 0.9, 0.999, 1e-7
                m = s.get("m", 0.0) + (gi - s.get("m", 0.0)) * (1 - b1)
                u = max(b2 * s.get("u", 0.0), abs(gi))
                s.update(m=m, u=u)
                wi = wi - lr * m / ((1 - b1 ** t) * (u + eps))
            elif name == "Adagrad":
                a = s.get("a", kwargs.get("initial_accumulator_value", 0.1)) + gi * gi
                s["a"] = a
                wi = wi - lr * gi / math.sqrt(a + 1e-7)
            elif name == "Adadelta":
                rho, eps = kwargs.get("rho", 0.95), 1e-7
                a = rho * s.get("a", 0.0) + (1 - rho) * gi * gi
                delta = -math.sqrt(s.get("d", 0.0) + eps) / math.sqrt(a + eps) * gi
                s.update(a=a, d=rho * s.get("d", 0.0) + (1 - rho) * delta * delta)
                wi = wi + lr * delta
            elif name == "Lion":
                b1, b2 = 0.9, 0.99
                m = s.get("m", 0.0)
                wi = wi - lr * np.sign(b1 * m + (1 - b1) * gi)
                s["m"] = b2 * m + (1 - b2) * gi
            elif name == "RMSprop":
                rho, mom, eps = kwargs.get("rho", 0.9), kwargs.get("momentum", 0.0), 1e-7
                v = rho * s.get("v", 0.0) + (1 - rho) * gi * gi
                mean = rho * s.get("mean", 0.0) + (1 - rho) * gi
                s.update(v=v, mean=mean)
                denominator = (v - mean * mean if kwargs.get("centered") else v) + eps
                step = lr * gi / math.sqrt(denominator)
                if mom:
                    s["m"] = mom * s.get("m", 0.0) + step
                    step = s["m"]
                wi = wi - step
            new[i] = wi
        w = new
        out.append(w.copy())
    return out


CASES = [("SGD", {"learning_rate": 0.1}), ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
         ("SGD", {"learning_rate": 0.1, "momentum": 0.5, "nesterov": True}),
         ("Adam", {"learning_rate": 0.01}), ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
         ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.004}),
         ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.3}),
         ("Nadam", {"learning_rate": 0.01}), ("Adamax", {"learning_rate": 0.02}),
         ("Adagrad", {"learning_rate": 0.1}),
         ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5}),
         ("Adadelta", {"learning_rate": 1.0}), ("Lion", {"learning_rate": 0.01}),
         ("RMSprop", {"learning_rate": 0.01}),
         ("RMSprop", {"learning_rate": 0.01, "momentum": 0.8, "centered": True})]


@pytest.mark.parametrize("name, kwargs", CASES, ids=lambda v: str(v))
def test_updates_match_the_rule_step_by_step(name, kwargs):
    optimizer = getattr(optimizers, name)(**kwargs)
    w = W0.copy()
    for g, expected in zip(GRADS, _reference_steps(name, kwargs)):
        optimizer.apply([g], [w])
        np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-15)
    assert optimizer.iterations == len(GRADS)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' torch backend, NumPy 2
@pytest.mark.parametrize("name, kwargs", CASES, ids=lambda v: str(v))
def test_updates_match_keras(name, kwargs):
    keras_ref = keras_or_skip()
    ours = getattr(optimizers, name)(**kwargs)
    theirs = getattr(keras_ref.optimizers, name)(**{k: (float(v) if k == "learning_rate" else v)
                                                     for k, v in kwargs.items()})
    w = W0.astype(np.float32)
    variable = keras_ref.Variable(W0.astype(np.float32))
    for g in GRADS:
        ours.apply([g.astype(np.float32)], [w])
        theirs.apply_gradients([(keras_ref.ops.convert_to_tensor(g.astype(np.float32)),
                                 variable)])
        np.testing.assert_allclose(w, numpy_of(variable.value), rtol=2e-5, atol=2e-6)


def test_clipping_comes_before_weight_decay_and_the_update():
    """w -= w * wd * lr, then the step with the clipped gradient (Keras' order)."""
    g1, g2 = np.array([3.0, 4.0]), np.array([12.0])            # norms 5 and 12, global 13
    cases = [({"clipnorm": 2.0}, [g1 * 2 / 5, g2 * 2 / 12]),
             ({"global_clipnorm": 6.5}, [g1 / 2, g2 / 2]),
             ({"clipvalue": 3.5}, [np.array([3.0, 3.5]), np.array([3.5])]),
             ({"clipnorm": 20.0}, [g1, g2])]
    for clip, clipped in cases:
        w1, w2 = np.array([1.0, -1.0]), np.array([2.0])
        sgd = optimizers.SGD(learning_rate=0.1, weight_decay=0.5, **clip)
        sgd.apply([g1, g2], [w1, w2])
        np.testing.assert_allclose(w1, [1.0, -1.0] - np.array([1.0, -1.0]) * 0.05
                                   - 0.1 * clipped[0])
        np.testing.assert_allclose(w2, [2.0 - 2.0 * 0.05 - 0.1 * clipped[1][0]])
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    # A NaN anywhere makes a global clip NaN everywhere, as in Keras (it does not hide).
    w1 = np.array([1.0])
    optimizers.SGD(global_clipnorm=1.0).apply([np.array([np.nan]), np.array([1.0])],
                                              [w1, np.array([0.0])])
    assert np.isnan(w1[0])


def test_clipping_matches_keras():
    keras_ref = keras_or_skip()
    for clip in [{"clipnorm": 0.5}, {"global_clipnorm": 0.7}, {"clipvalue": 0.25}]:
        ours = optimizers.Adam(learning_rate=0.01, weight_decay=0.1, **clip)
        theirs = keras_ref.optimizers.Adam(learning_rate=0.01, weight_decay=0.1, **clip)
        ws = [W0.astype(np.float32), np.array([0.3], np.float32)]
        variables = [keras_ref.Variable(w.copy()) for w in ws]
        for g in GRADS:
            grads = [g.astype(np.float32), np.array([g.sum()], np.float32)]
            ours.apply(grads, ws)
            theirs.apply_gradients(zip([keras_ref.ops.convert_to_tensor(x) for x in grads],
                                       variables))
        for w, v in zip(ws, variables):
            np.testing.assert_allclose(w, numpy_of(v.value), rtol=2e-5, atol=2e-6)


class _Variable:
    """What the model will hand the optimizer: storage behind np.asarray, a name and maybe a
    constraint."""

    def __init__(self, value, name, constraint=None):
        self._value, self.name, self.constraint = np.array(value, float), name, constraint

    def __array__(self, dtype=None, copy=None):
        return self._value


def test_variables_with_storage_names_and_constraints():
    kernel = _Variable([3.0, 4.0], "dense/kernel", constraints.MaxNorm(1.0))
    bias = _Variable([1.0], "dense/bias")
    opt = optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply([np.array([0.0, 0.0]), np.array([0.0])], [kernel, bias])
    # Zero gradients: AdamW decays the kernel (then MaxNorm projects it), not the bias.
    decayed = np.array([3.0, 4.0]) * (1 - 0.05)
    np.testing.assert_allclose(kernel._value, decayed / (np.linalg.norm(decayed) + 1e-7))
    np.testing.assert_array_equal(bias._value, [1.0])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])

    class Copying:
        def __array__(self, dtype=None, copy=None):
            return np.zeros(2)
    with pytest.raises(TypeError, match="same array"):
        optimizers.SGD().apply([np.ones(2)], [Copying()])


def test_state_round_trip_continues_identically():
    first = optimizers.Nadam(learning_rate=0.01)
    w = W0.copy()
    for g in GRADS[:2]:
        first.apply([g], [w])
    state = [np.array(v) for v in first.variables]
    assert state[0] == 2 and state[1] == pytest.approx(0.01)
    second = optimizers.Nadam(learning_rate=0.5)
    w2 = w.copy()
    second.build([w2])
    second.set_weights(state)
    assert second.iterations == 2 and second.learning_rate == pytest.approx(0.01)
    for g in GRADS[2:]:
        first.apply([g], [w])
        second.apply([g], [w2])
    np.testing.assert_array_equal(w, w2)
    with pytest.raises(ValueError, match="state arrays"):
        second.set_weights(state[:-1])
    with pytest.raises(ValueError, match="build"):
        optimizers.Adam().set_weights(state)


def test_optimizer_misuse_is_refused():
    w = np.zeros(3)
    sgd = optimizers.SGD()
    sgd.apply([np.ones(3)], [w])
    with pytest.raises(ValueError, match="not one of the 1 variables"):
        sgd.apply([np.ones(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match="gradient 0 has shape"):
        sgd.apply([np.ones(2)], [w])
    with pytest.warns(UserWarning, match="gradients do not exist"):
        optimizers.SGD().apply([None, np.ones(1)], [np.zeros(2), np.zeros(1)])
    optimizers.SGD().apply([], [])          # nothing to train: no step, as in Keras
    schedule = optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="not settable"):
        optimizers.SGD(schedule).learning_rate = 0.01


@pytest.mark.parametrize("schedule, formula", [
    (optimizers.schedules.ExponentialDecay(0.1, 4, 0.5), lambda s: 0.1 * 0.5 ** (s / 4)),
    (optimizers.schedules.ExponentialDecay(0.1, 4, 0.5, staircase=True),
     lambda s: 0.1 * 0.5 ** (s // 4)),
    (optimizers.schedules.InverseTimeDecay(0.1, 4, 0.5), lambda s: 0.1 / (1 + 0.5 * s / 4)),
    (optimizers.schedules.InverseTimeDecay(0.1, 4, 0.5, staircase=True),
     lambda s: 0.1 / (1 + 0.5 * (s // 4))),
    (optimizers.schedules.PolynomialDecay(0.1, 8, 0.01, power=2),
     lambda s: (0.1 - 0.01) * (1 - min(s, 8) / 8) ** 2 + 0.01),
    (optimizers.schedules.PolynomialDecay(0.1, 5, 0.01, cycle=True),
     lambda s: (0.1 - 0.01) * (1 - s / (5 * max(1, math.ceil(s / 5)))) + 0.01),
    (optimizers.schedules.PiecewiseConstantDecay([3, 7], [0.3, 0.2, 0.1]),
     lambda s: 0.3 if s <= 3 else 0.2 if s <= 7 else 0.1),
    (optimizers.schedules.CosineDecay(0.1, 10, alpha=0.2),
     lambda s: 0.1 * (0.8 * 0.5 * (1 + math.cos(math.pi * min(s, 10) / 10)) + 0.2)),
    (optimizers.schedules.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=4),
     lambda s: 0.1 * s / 4 if s < 4 else
     0.1 * 0.5 * (1 + math.cos(math.pi * (min(s, 14) - 4) / 10))),
    (optimizers.schedules.CosineDecayRestarts(0.1, 4, t_mul=2.0, m_mul=0.5), None),
    (optimizers.schedules.CosineDecayRestarts(0.1, 4, t_mul=1.0, alpha=0.1), None)])
def test_schedules_match_their_formulas_and_keras(schedule, formula):
    steps = range(0, 30)
    if formula is None:                      # SGDR: periods 4, 8, 16, ... (or 4, 4, ...)
        def formula(s, t_mul=schedule._t_mul, m_mul=schedule._m_mul):
            start, length, restart = 0, 4, 0
            while s >= start + length:
                start, length, restart = start + length, length * t_mul, restart + 1
            cosine = 0.5 * m_mul ** restart * (1 + math.cos(math.pi * (s - start) / length))
            return 0.1 * ((1 - schedule.alpha) * cosine + schedule.alpha)
    for step in steps:
        assert schedule(step) == pytest.approx(formula(step), rel=1e-9, abs=1e-12), step
    keras_ref = keras_or_skip()
    config = schedule.get_config()
    theirs = getattr(keras_ref.optimizers.schedules, type(schedule).__name__)(**config)
    for step in steps:
        assert schedule(step) == pytest.approx(float(numpy_of(theirs(step))), rel=1e-5,
                                               abs=1e-7)


def test_schedule_drives_the_optimizer_and_survives_saving(tmp_path):
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=schedule)
    w = np.array([0.0])
    for _ in range(3):
        opt.apply([np.array([1.0])], [w])
    np.testing.assert_allclose(w, [-(0.1 + 0.1 * 0.5 ** 0.5 + 0.05)])
    for name, cls in optimizers.OPTIMIZERS.items():
        original = cls(learning_rate=optimizers.schedules.CosineDecay(0.01, 100, warmup_target=0.1,
                                                                     warmup_steps=5),
                       clipnorm=1.0)
        clone = optimizers.get(optimizers.serialize(original))
        assert type(clone) is cls and clone.get_config() == original.get_config()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizers.Nadam(global_clipnorm=2.0,
                                   learning_rate=optimizers.schedules.PolynomialDecay(0.1, 10)),
                  "mse")
    model.save(tmp_path / "m.keras")
    loaded = keras.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()


def test_string_names():
    for name, cls in [("adamw", optimizers.AdamW), ("nadam", optimizers.Nadam),
                      ("adagrad", optimizers.Adagrad), ("adadelta", optimizers.Adadelta),
                      ("adamax", optimizers.Adamax), ("lion", optimizers.Lion),
                      ("AdamW", optimizers.AdamW), ("rmsprop", optimizers.RMSprop)]:
        assert type(optimizers.get(name)) is cls
    assert optimizers.AdamW().weight_decay == 0.004


def test_convnet_variables_are_updated_in_place_and_marked_changed():
    kernel = keras.Variable(W0.copy(), dtype="float64", name="kernel",
                            constraint=constraints.NonNeg())
    storage = np.asarray(kernel)
    plain = W0.copy()
    adam_variable, adam_array = optimizers.Adam(0.5), optimizers.Adam(0.5)
    for g in GRADS:
        before = kernel.version
        adam_variable.apply([g], [kernel])
        adam_array.apply([g], [plain])
        np.maximum(plain, 0, out=plain)             # NonNeg, applied by the optimizer
        assert kernel.version == before + 1
    assert np.asarray(kernel) is storage            # the storage never moves
    np.testing.assert_array_equal(kernel.numpy(), plain)
