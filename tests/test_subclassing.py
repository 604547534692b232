"""Layers and models written in Python with convnet.ops train through the tape, with no
backward pass of their own, to the same numbers as the built-in layers they imitate."""
import numpy as np
import pytest

import convnet as keras
from convnet import layers, ops


class PythonDense(keras.Layer):
    """Keras' "intro for engineers" Dense: add_weight in build, ops.matmul in call."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation_fn = keras.activations.get(activation)

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="glorot_uniform", name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        z = ops.matmul(inputs, self.w) + self.b
        return ops.relu(z) if self.activation_fn.name == "relu" else z


def _data(rng, n=32):
    return (rng.standard_normal((n, 12)).astype(np.float32),
            rng.integers(0, 4, n))


def test_a_python_dense_trains_bit_identically_to_layers_dense(rng):
    x, y = _data(rng)
    trained = []
    for dense in (layers.Dense, PythonDense):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((12,)), dense(16, activation="relu"),
                                  layers.Dense(4)])
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        keras.utils.set_random_seed(4)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        trained.append(model.get_weights())
    for a, b in zip(*trained):
        assert a.tobytes() == b.tobytes()


class SubclassedCNN(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.pool = layers.MaxPooling2D(2)
        self.flatten = layers.Flatten()
        self.dropout = layers.Dropout(0.3)
        self.head = layers.Dense(3, activation="softmax")

    def call(self, inputs, training=False):
        x = self.pool(self.conv(inputs))
        return self.head(self.dropout(self.flatten(x), training=training))


def test_a_subclassed_model_trains_bit_identically_to_the_same_sequential(rng, tmp_path):
    x = rng.standard_normal((24, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    keras.utils.set_random_seed(9)
    subclassed = SubclassedCNN()
    subclassed.build((None, 8, 8, 1))
    keras.utils.set_random_seed(9)
    sequential = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                                   layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.3),
                                   layers.Dense(3, activation="softmax")])
    results = []
    for model in (sequential, subclassed):
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        keras.utils.set_random_seed(10)
        history = model.fit(x, y, batch_size=6, epochs=2, verbose=0)
        results.append((model.get_weights(), history.history, model.evaluate(x, y, verbose=0)))
    for a, b in zip(results[0][0], results[1][0]):
        assert a.tobytes() == b.tobytes()
    assert results[0][1] == results[1][1] and results[0][2] == results[1][2]
    lines = []
    subclassed.summary(print_fn=lines.append)
    assert any("conv2d" in line and "Conv2D" in line for line in lines)
    subclassed.save_weights(tmp_path / "w.cnet")
    fresh = SubclassedCNN()
    fresh.build((None, 8, 8, 1))
    fresh.load_weights(tmp_path / "w.cnet")
    assert fresh.predict(x, verbose=0).tobytes() == subclassed.predict(x, verbose=0).tobytes()


class Counter(keras.Layer):
    """Keras' ComputeSum pattern: a non-trainable weight updated by assign inside call."""

    def build(self, input_shape):
        self.total = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     name="total")
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                     name="scale")

    def call(self, inputs):
        self.total.assign(self.total + ops.sum(ops.stop_gradient(inputs)))
        return inputs * self.scale


def test_a_custom_layer_with_a_non_trainable_weight(rng):
    layer = Counter()
    model = keras.Sequential([keras.Input((3,)), layer])
    assert [w.name for w in layer.trainable_weights] == ["scale"]
    assert [w.name for w in layer.non_trainable_weights] == ["total"]
    model.compile(keras.optimizers.SGD(0.5), "mse")
    x = rng.standard_normal((4, 3)).astype(np.float32)
    target = np.zeros((4, 3), np.float32)
    model.train_on_batch(x, target)
    np.testing.assert_allclose(layer.total.numpy(), x.sum(), rtol=1e-6)
    # mse gradient d/dscale of mean((x*s)^2) at s=1 is mean over batch of 2*x^2/3 per unit.
    expected = 1 - 0.5 * np.mean(2 * x * x, axis=0) / 3
    np.testing.assert_allclose(layer.scale.numpy(), expected, rtol=1e-5)


class ResidualBlock(keras.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(filters, 3, padding="same", activation="relu")
        self.conv2 = layers.Conv2D(filters, 3, padding="same")

    def call(self, inputs):
        return ops.relu(inputs + self.conv2(self.conv1(inputs)))


class ResidualNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.stem = layers.Conv2D(3, 3, padding="same", dtype="float64")
        self.block = ResidualBlock(3, dtype="float64")
        self.block.conv1.dtype = self.block.conv2.dtype = np.dtype("float64")
        self.pool = layers.GlobalAveragePooling2D(dtype="float64")
        self.head = layers.Dense(2, dtype="float64")

    def call(self, inputs):
        return self.head(self.pool(self.block(self.stem(inputs))))


def test_a_subclassed_residual_model_steps_like_a_numpy_gradient(rng):
    """One SGD step of a subclassed residual model equals w - lr * (finite-difference
    gradient of the mse loss)."""
    model = ResidualNet()
    x = rng.standard_normal((2, 5, 5, 1))
    y = rng.standard_normal((2, 2))
    model(x)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = model.get_weights()

    def loss_at(weights):
        model.set_weights(weights)
        return float(np.mean((model(x) - y) ** 2))

    numeric = []
    for i, w in enumerate(before):
        def f(v, i=i):
            weights = [p.copy() for p in before]
            weights[i] = v
            return loss_at(weights)
        numeric.append(__import__("convnet").utils.numerical_gradient(f, w.copy()))
    model.set_weights(before)
    model.train_on_batch(x, y)
    for w0, w1, g in zip(before, model.get_weights(), numeric):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-6, atol=1e-9)


def test_numpy_on_a_traced_value_inside_call_is_refused():
    class Leaky(keras.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), name="w")

        def call(self, inputs):
            return np.asarray(inputs * self.w)   # leaves the tape

    model = keras.Sequential([keras.Input((3,)), Leaky(name="leaky")])
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match="Leaky 'leaky'.*convnet.ops"):
        model.train_on_batch(np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32))


class Distiller(keras.Model):
    """keras.io's "Knowledge Distillation" example as written there (Keras 3): compile
    without a loss, compute_loss overridden with the older ``allow_empty`` signature."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1,
                temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature**2)
        return self.alpha * student_loss + (1 - self.alpha) * distillation_loss

    def call(self, x):
        return self.student(x)


def test_knowledge_distillation_compute_loss_steps_like_numpy(rng):
    """Three SGD steps of keras.io's Distiller equal the same steps taken in NumPy on its
    documented loss: alpha * sparse cross-entropy(y, student logits) + (1 - alpha) * T**2 *
    KL(softmax(teacher / T) || softmax(student / T)), Keras' KLDivergence clipping both to
    [1e-7, 1] and averaging over the batch; the frozen teacher never moves."""
    x = rng.standard_normal((8, 6))
    y = rng.integers(0, 4, 8)
    keras.utils.set_random_seed(5)
    teacher = keras.Sequential([keras.Input((6,)), layers.Dense(4, dtype="float64")])
    teacher.trainable = False
    student = keras.Sequential([keras.Input((6,)), layers.Dense(4, dtype="float64")])
    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.SGD(0.5), ["sparse_categorical_accuracy"],
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      keras.losses.KLDivergence(), alpha=0.3, temperature=4.0)
    teacher_before = teacher.get_weights()
    teacher_logits = x @ teacher_before[0] + teacher_before[1]

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def loss(kernel, bias):
        logits = x @ kernel + bias
        student_loss = -np.mean(np.log(softmax(logits)[np.arange(8), y]))
        t = np.clip(softmax(teacher_logits / 4.0), 1e-7, 1)
        s = np.clip(softmax(logits / 4.0), 1e-7, 1)
        kl = np.mean(np.sum(t * np.log(t / s), axis=1))
        return 0.3 * student_loss + 0.7 * 16.0 * kl

    kernel, bias = student.get_weights()
    for _ in range(3):
        expected = loss(kernel, bias)
        grad_kernel = keras.utils.numerical_gradient(lambda k: loss(k, bias), kernel.copy())
        grad_bias = keras.utils.numerical_gradient(lambda b: loss(kernel, b), bias.copy())
        logs = distiller.train_on_batch(x, y, return_dict=True)
        np.testing.assert_allclose(logs["loss"], expected, rtol=1e-9)
        kernel, bias = kernel - 0.5 * grad_kernel, bias - 0.5 * grad_bias
        np.testing.assert_allclose(student.get_weights()[0], kernel, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(student.get_weights()[1], bias, rtol=1e-6, atol=1e-9)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    # evaluate goes through the same override, without training
    assert distiller.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(
        loss(kernel, bias), rel=1e-6)


def test_a_train_step_written_as_the_keras_guides_write_it(rng):
    """Keras hands train_step and test_step (x, y) when there is no sample weight, and
    (x, y, sample_weight) when there is one, so `x, y = data` runs; the custom step
    updates the weights as fit's own step does."""
    x = rng.standard_normal((32, 6)).astype("float32")
    y = rng.standard_normal((32, 2)).astype("float32")
    seen = []

    class CustomStep(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, inputs, training=False):
            return self.dense(inputs)

        def train_step(self, data):
            seen.append(len(data))
            x, y = data[:2]
            with keras.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply(grads, self.trainable_weights)
            return self.compute_metrics(x, y, y_pred)

        def test_step(self, data):
            seen.append(("test", len(data)))
            return super().test_step(data)

    model = CustomStep()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model(x[:1])
    kernel, bias = (w.numpy().copy() for w in model.dense.weights)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    # One SGD step on the mean squared error, written out.
    grad_out = 2 * (x @ kernel + bias - y) / y.size
    np.testing.assert_allclose(model.dense.kernel.numpy(), kernel - 0.1 * x.T @ grad_out,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.dense.bias.numpy(), bias - 0.1 * grad_out.sum(0),
                               rtol=1e-5, atol=1e-6)
    model.evaluate(x, y, verbose=0)
    model.fit(x, y, sample_weight=np.ones(32, "float32"), batch_size=32, epochs=1, verbose=0)
    assert seen == [2, ("test", 2), 3]
