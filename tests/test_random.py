"""convnet.random: Keras' seed semantics and distributions (draws are NumPy's default_rng of
the [seed, counter] state, as in Keras' NumPy backend)."""
import numpy as np
import pytest

import convnet as keras
from convnet import ops, random
from convnet.autodiff import GradientTape
from convnet.variables import Variable


def test_an_int_seed_repeats_and_matches_keras_numpy_backend():
    a = random.normal((3, 4), seed=42)
    np.testing.assert_array_equal(a, random.normal((3, 4), seed=42))
    expected = np.random.default_rng(np.array([42, 0], np.uint32)).normal(0, 1, (3, 4))
    np.testing.assert_array_equal(a, expected.astype(np.float32))
    assert a.dtype == np.float32


def test_a_seed_generator_advances_and_replays():
    first, second = random.SeedGenerator(7), random.SeedGenerator(7)
    draws = [random.uniform((5,), seed=first) for _ in range(3)]
    assert not np.array_equal(draws[0], draws[1])
    for draw in draws:
        np.testing.assert_array_equal(draw, random.uniform((5,), seed=second))
    np.testing.assert_array_equal(first.state.numpy(), [7, 3])
    assert random.SeedGenerator.from_config(first.get_config()).state.numpy().tolist() == [7, 0]


def test_unseeded_draws_follow_set_random_seed():
    keras.utils.set_random_seed(3)
    a = (random.normal((4,)), random.SeedGenerator().next())
    keras.utils.set_random_seed(3)
    b = (random.normal((4,)), random.SeedGenerator().next())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_distributions():
    n = 20000
    x = random.uniform((n,), -1.0, 3.0, seed=1, dtype="float64")
    assert x.dtype == np.float64 and -1 <= x.min() and x.max() < 3
    assert abs(x.mean() - 1) < 0.05
    t = random.truncated_normal((n,), 1.0, 2.0, seed=2)
    assert np.all(np.abs(t - 1) <= 4) and abs(t.mean() - 1) < 0.05
    r = random.randint((n,), 2, 5, seed=3)
    assert r.dtype == np.int32 and set(np.unique(r)) == {2, 3, 4}
    g = random.gamma((n,), 3.0, seed=4)
    assert abs(g.mean() - 3) < 0.1
    b = random.binomial((n,), 10, 0.3, seed=5)
    assert abs(b.mean() - 3) < 0.1
    be = random.beta((n,), 2.0, 6.0, seed=6)
    assert abs(be.mean() - 0.25) < 0.01
    logits = np.array([[np.log(0.7), np.log(0.2), np.log(0.1)], [-50, -50, 0]])
    c = random.categorical(logits, n, seed=7)
    assert c.shape == (2, n) and c.dtype == np.int32
    assert abs(np.mean(c[0] == 0) - 0.7) < 0.02 and np.all(c[1] == 2)


def test_dropout_keeps_expected_fraction_scales_and_is_differentiable():
    x = np.ones((200, 50), np.float32)
    y = random.dropout(x, 0.3, seed=1)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    columns = random.dropout(x, 0.5, noise_shape=(1, None), seed=2)
    assert np.all((columns == 0).all(axis=0) | (columns != 0).all(axis=0))
    v = Variable(np.ones((4, 3)), dtype="float64")
    with GradientTape() as tape:
        loss = ops.sum(random.dropout(v, 0.5, seed=3))
    grad = tape.gradient(loss, [v])[0]
    mask = random.dropout(np.ones((4, 3)), 0.5, seed=3) != 0
    np.testing.assert_array_equal(grad, np.where(mask, 2.0, 0.0))


def test_shuffle_moves_whole_slices():
    x = np.arange(12).reshape(4, 3)
    y = random.shuffle(x, seed=1)
    assert sorted(map(tuple, y)) == sorted(map(tuple, x))
    z = random.shuffle(x, axis=1, seed=1)
    assert sorted(map(tuple, z.T)) == sorted(map(tuple, x.T))


@pytest.mark.parametrize("call, message", [
    (lambda: random.uniform((2,), dtype="int32"), "floating point dtype"),
    (lambda: random.randint((2,), 0, 3, dtype="float32"), "integer dtype"),
    (lambda: random.categorical(np.zeros(3), 2), "2-D"),
    (lambda: random.normal((2,), seed="abc"), "seed must be"),
    (lambda: random.SeedGenerator(1.5), "seed must be an int"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
