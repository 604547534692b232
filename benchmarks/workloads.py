"""The workloads of issues 5 and 19, each as a convnet step and the same step in PyTorch.

A workload builds its inputs once; ``convnet()`` and ``torch(channels_last)``
return zero-argument callables that run one step (and ``keras()``, where set, the
same in Keras 3 on its torch backend). Arrays are float32 NHWC; PyTorch gets the
same numbers in NCHW, stored channels_last or contiguous. ``flops`` counts
multiply-adds as two operations (for GFLOP/s), and only the convolution and
matrix products, as is usual. A ``contended`` workload is timed with one
busy-looping process beside it; ``rounds`` fixes pytest-benchmark's rounds for a
step that takes seconds.

convnet is imported before PyTorch: both load the one libgomp of the process, which
then spins its idle threads as convnet sets (convnet/_wait_policy.py), for both.
"""
import functools
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import convnet
from convnet import kernels, layers

try:
    import torch
except ImportError:  # the comparison runs only where PyTorch is installed
    torch = None


def as_torch(x, channels_last=True):
    """An NHWC array as a torch tensor in NCHW, stored channels_last (or contiguous NCHW)."""
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()


def kernel_as_torch(kernel, channels_last=True):
    """A Keras kernel (kh, kw, in, out) as PyTorch's (out, in, kh, kw)."""
    return as_torch(kernel.transpose(3, 0, 1, 2), channels_last)


def conv_flops(n, out_hw, kernel_shape):
    kh, kw, c, f = kernel_shape
    return 2 * n * out_hw[0] * out_hw[1] * kh * kw * c * f


@dataclass
class Workload:
    name: str
    flops: int                                   # of one step
    convnet: Callable[[], Callable[[], object]]
    torch: Callable[[bool], Callable[[], object]]
    keras: Optional[Callable[[], Callable[[], object]]] = None
    contended: bool = False
    rounds: Optional[int] = None


def _conv_workload(name, shape, kernel_shape, strides, padding, backward):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    kernel = rng.standard_normal(kernel_shape, dtype=np.float32) * 0.1
    y = kernels.conv2d(x, kernel, None, strides, padding)
    grad = rng.standard_normal(y.shape, dtype=np.float32)
    flops = conv_flops(shape[0], y.shape[1:3], kernel_shape) * (3 if backward else 1)

    def convnet_step():
        if backward:
            return lambda: (kernels.conv2d(x, kernel, None, strides, padding),
                            kernels.conv2d_backward(x, kernel, grad, strides, padding))
        return lambda: kernels.conv2d(x, kernel, None, strides, padding)

    def torch_step(channels_last):
        tx = as_torch(x, channels_last).requires_grad_(backward)
        tk = kernel_as_torch(kernel, channels_last).requires_grad_(backward)
        tg = as_torch(grad, channels_last)
        conv = torch.nn.functional.conv2d
        if backward:
            return lambda: conv(tx, tk, None, strides, padding).backward(tg)
        return torch.no_grad()(lambda: conv(tx, tk, None, strides, padding))

    return Workload(name, flops, convnet_step, torch_step)


def _pool_workload(name, shape, forward, backward, torch_pool, flops=0):
    """forward(x) -> (y, saved); backward(grad, saved) -> grad_x; torch_pool(tensor)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    y, _ = forward(x, False)
    grad = rng.standard_normal(y.shape, dtype=np.float32)
    with_backward = backward is not None

    def convnet_step():
        if with_backward:
            return lambda: backward(grad, forward(x, True)[1])
        return lambda: forward(x, False)

    def torch_step(channels_last):
        tx = as_torch(x, channels_last).requires_grad_(with_backward)
        tg = as_torch(grad, channels_last) if grad.ndim == 4 else torch.from_numpy(grad)
        if with_backward:
            return lambda: torch_pool(tx).backward(tg)
        return torch.no_grad()(lambda: torch_pool(tx))

    return Workload(name, flops, convnet_step, torch_step)


def _batch_norm_workload(name, shape, relu):
    """Training-mode batch normalisation (optionally with its ReLU), forward and backward;
    PyTorch's F.batch_norm (then F.relu) with running statistics, as a layer does."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    grad = rng.standard_normal(shape, dtype=np.float32)
    channels = shape[-1]
    gamma, beta = np.ones(channels, np.float32), np.zeros(channels, np.float32)

    def convnet_step():
        def step():
            y, mean, _, inv_std = kernels.batch_norm_train(x, gamma, beta, 1e-3, relu=relu)
            return kernels.batch_norm_train_backward(x, grad, mean, inv_std, gamma,
                                                     relu_output=y if relu else None)
        return step

    def torch_step(channels_last):
        tx = as_torch(x, channels_last).requires_grad_()
        tg = as_torch(grad, channels_last)
        weight = torch.ones(channels, requires_grad=True)
        bias = torch.zeros(channels, requires_grad=True)
        running_mean, running_var = torch.zeros(channels), torch.ones(channels)
        functional = torch.nn.functional

        def step():
            y = functional.batch_norm(tx, running_mean, running_var, weight, bias, True, 0.01,
                                      1e-3)
            (functional.relu(y) if relu else y).backward(tg)
        return step

    return Workload(name, 0, convnet_step, torch_step)


def _depthwise_workload(name, shape, kernel_size):
    """Depthwise convolution (depth_multiplier 1, "same"), forward and backward; PyTorch's
    conv2d with groups = channels."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    channels = shape[-1]
    kernel = rng.standard_normal((kernel_size, kernel_size, channels, 1), dtype=np.float32)
    grad = rng.standard_normal(shape, dtype=np.float32)
    flops = 3 * 2 * x.size * kernel_size * kernel_size

    def convnet_step():
        return lambda: (kernels.depthwise_conv2d(x, kernel, None, 1, "same"),
                        kernels.depthwise_conv2d_backward(x, kernel, grad, 1, "same"))

    def torch_step(channels_last):
        tx = as_torch(x, channels_last).requires_grad_()
        # (kh, kw, C, 1) -> PyTorch's (C, 1, kh, kw)
        tk = as_torch(kernel.transpose(3, 0, 1, 2), channels_last).transpose(0, 1)
        tk = tk.contiguous(memory_format=torch.channels_last if channels_last
                           else torch.contiguous_format).requires_grad_()
        tg = as_torch(grad, channels_last)
        padding = kernel_size // 2
        return lambda: torch.nn.functional.conv2d(tx, tk, None, 1, padding, 1,
                                                  channels).backward(tg)

    return Workload(name, flops, convnet_step, torch_step)


def _conv_bn_relu_workload(name, shape, filters):
    """A Conv2D (3x3 "same", no bias) -> BatchNormalization -> ReLU block's training step:
    forward, MSE loss against a fixed target, backward, the SGD update and the moving
    statistics, through the layers as a Keras model runs them (train_on_batch). PyTorch:
    Conv2d(bias=False), BatchNorm2d(eps=1e-3, momentum=0.01: Keras' defaults), ReLU, the same
    loss and SGD."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    target = rng.standard_normal((*shape[:3], filters), dtype=np.float32)
    flops = 3 * conv_flops(shape[0], shape[1:3], (3, 3, shape[3], filters))

    def convnet_step():
        model = convnet.Sequential([
            layers.Input(shape[1:]),
            layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
        ])
        model.compile(optimizer=convnet.optimizers.SGD(0.01), loss="mse")
        return lambda: model.train_on_batch(x, target)

    def torch_step(channels_last):
        nn = torch.nn
        model = nn.Sequential(nn.Conv2d(shape[3], filters, 3, padding=1, bias=False),
                              nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01), nn.ReLU())
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss = nn.MSELoss()
        tx, ty = as_torch(x, channels_last), as_torch(target, channels_last)

        def step():
            optimizer.zero_grad()
            value = loss(model(tx), ty)
            value.backward()
            optimizer.step()
            return value
        return step

    return Workload(name, flops, convnet_step, torch_step)


def _max_pool(x, training):
    return kernels.max_pool2d(x, 2, with_argmax=training)


def _avg_pool(x, training):
    return kernels.avg_pool2d(x, 2), None


def _global_avg_pool(x, training):
    return kernels.global_avg_pool2d(x), None


W4_SHAPE = (64, 32, 32, 64)
W6_SHAPE = (64, 8, 8, 256)


def small_cnn_keras():
    """W7's model: the small MNIST CNN of the issue."""
    model = convnet.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10),
    ])
    model.compile(optimizer=convnet.optimizers.SGD(0.01),
                  loss=convnet.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def small_cnn_torch(channels_last):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _training_workload(batch=64, contended=False):
    rng = np.random.default_rng(0)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    per_image = (conv_flops(1, (28, 28), (3, 3, 1, 32)) + conv_flops(1, (14, 14), (3, 3, 32, 64))
                 + 2 * (64 * 7 * 7 * 128 + 128 * 10))

    def convnet_step():
        model = small_cnn_keras()
        return lambda: model.train_on_batch(x, labels)

    def torch_step(channels_last):
        model = small_cnn_torch(channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss = torch.nn.CrossEntropyLoss()
        tx, ty = as_torch(x, channels_last), torch.from_numpy(labels)

        def step():
            optimizer.zero_grad()
            value = loss(model(tx), ty)
            value.backward()
            optimizer.step()
            return value
        return step

    name = ("W7 training step" + ("" if batch == 64 else f", batch {batch}")
            + (", one busy process beside" if contended else ""))
    return Workload(name, 3 * batch * per_image, convnet_step, torch_step, contended=contended)


# W8: one epoch of the README's main example (examples/fashion_mnist_convnet.py) on
# Fashion-MNIST images, with its batch of 128 and validation_split=0.1; an epoch of 6,400
# images (45 training batches, 5 of validation) rather than 60,000, so that the suite stays
# minutes long: the time per batch is the same. The images are the 6,000 convnet embeds
# (and the first 400 again), not random ones: on random labels the network's ReLUs die
# epoch after epoch, and the time of convnet's backward pass, which skips pixels whose
# gradient is zero, would fall with them (a fifth of the second layer's pixels on real
# images; on random ones a fifth in the first epoch, three fifths by the sixth).
W8_IMAGES = 6_400
W8_BATCH = 128


@functools.lru_cache(maxsize=1)
def _fashion_mnist_images():
    """W8_IMAGES Fashion-MNIST images scaled from uint8 to [0, 1] as the example does,
    labels, one-hot labels (made on first use: 20 MB the other workloads do not need)."""
    from convnet.datasets import fashion_mnist
    (train_x, train_y), (test_x, test_y) = fashion_mnist.load_data(subset=True)
    images, labels = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    images, labels = np.resize(images, (W8_IMAGES, 28, 28)), np.resize(labels, W8_IMAGES)
    x = (images[..., None] / 255).astype(np.float32)
    labels = labels.astype(np.int64)
    return x, labels, np.eye(10, dtype=np.float32)[labels]


def readme_model(keras_module, layers_module):
    """The README's main example model, built with either library's Keras API."""
    model = keras_module.Sequential([
        keras_module.Input(shape=(28, 28, 1)),
        layers_module.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers_module.MaxPooling2D(pool_size=(2, 2)),
        layers_module.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers_module.MaxPooling2D(pool_size=(2, 2)),
        layers_module.Flatten(),
        layers_module.Dropout(0.5),
        layers_module.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def readme_model_torch(channels_last):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 5 * 5, 10))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _import_keras_on_torch():
    """Keras 3 on its torch backend, or None where it is not installed (or runs another)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    return keras if keras.backend.backend() == "torch" else None


def _epoch_workload():
    per_image = (conv_flops(1, (26, 26), (3, 3, 1, 32)) + conv_flops(1, (11, 11), (3, 3, 32, 64))
                 + 2 * 64 * 5 * 5 * 10)
    validation = W8_IMAGES // 10
    flops = (3 * (W8_IMAGES - validation) + validation) * per_image

    def convnet_step():
        x, _, one_hot = _fashion_mnist_images()
        model = readme_model(convnet, layers)
        return lambda: model.fit(x, one_hot, batch_size=W8_BATCH, epochs=1,
                                 validation_split=0.1, verbose=0)

    def keras_step():
        keras = _import_keras_on_torch()
        if keras is None:
            return None
        x, _, one_hot = _fashion_mnist_images()
        model = readme_model(keras, keras.layers)
        return lambda: model.fit(x, one_hot, batch_size=W8_BATCH, epochs=1,
                                 validation_split=0.1, verbose=0)

    def torch_step(channels_last):
        """A plain training loop doing what Keras' fit does: shuffle the training 90%,
        train with Adam (Keras' defaults) on softmax cross-entropy counting accuracy,
        then evaluate the last 10% (validation_split takes the tail, unshuffled)."""
        x, labels, _ = _fashion_mnist_images()
        model = readme_model_torch(channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()
        split = W8_IMAGES - validation
        tx, ty = as_torch(x, channels_last), torch.from_numpy(labels)
        generator = torch.Generator().manual_seed(0)

        def epoch():
            model.train()
            correct = 0
            for batch in torch.randperm(split, generator=generator).split(W8_BATCH):
                optimizer.zero_grad()
                logits = model(tx[batch])
                loss = loss_fn(logits, ty[batch])
                loss.backward()
                optimizer.step()
                correct += int((logits.argmax(1) == ty[batch]).sum())
            model.eval()
            with torch.no_grad():
                for start in range(split, W8_IMAGES, W8_BATCH):
                    logits = model(tx[start:start + W8_BATCH])
                    loss_fn(logits, ty[start:start + W8_BATCH])
                    correct += int((logits.argmax(1) == ty[start:start + W8_BATCH]).sum())
            return correct
        return epoch

    return Workload(f"W8 README example, one epoch of {W8_IMAGES:,} images", flops,
                    convnet_step, torch_step, keras=keras_step, rounds=3)


def _torch_global_avg(t):
    return t.mean((2, 3))


def _torch_max_pool(t):
    return torch.nn.functional.max_pool2d(t, 2)


def _torch_avg_pool(t):
    return torch.nn.functional.avg_pool2d(t, 2)


WORKLOADS = [
    _conv_workload("W1 conv forward", (64, 32, 32, 32), (3, 3, 32, 64), 1, 1, False),
    _conv_workload("W1 conv forward+backward", (64, 32, 32, 32), (3, 3, 32, 64), 1, 1, True),
    _conv_workload("W2 conv 1->32 5x5 forward+backward", (64, 28, 28, 1), (5, 5, 1, 32), 1, 0,
                   True),
    _conv_workload("W3 conv 227x227 11x11/4 forward", (8, 227, 227, 3), (11, 11, 3, 96), 4, 0,
                   False),
    _pool_workload("W4 max pool forward", W4_SHAPE, _max_pool, None, _torch_max_pool),
    _pool_workload("W4 max pool forward+backward", W4_SHAPE, _max_pool,
                   lambda g, argmax: kernels.max_pool2d_backward(g, argmax, W4_SHAPE),
                   _torch_max_pool),
    _pool_workload("W5 avg pool forward", W4_SHAPE, _avg_pool, None, _torch_avg_pool),
    _pool_workload("W5 avg pool forward+backward", W4_SHAPE, _avg_pool,
                   lambda g, _: kernels.avg_pool2d_backward(g, W4_SHAPE, 2), _torch_avg_pool),
    _pool_workload("W6 global avg pool forward+backward", W6_SHAPE, _global_avg_pool,
                   lambda g, _: kernels.global_avg_pool2d_backward(g, W6_SHAPE), _torch_global_avg),
    _training_workload(),
    # Issue 14's kernels.
    _batch_norm_workload("W9 batch norm forward+backward", W4_SHAPE, relu=False),
    _batch_norm_workload("W9 batch norm + ReLU forward+backward", W4_SHAPE, relu=True),
    _depthwise_workload("W10 depthwise 3x3 forward+backward", W4_SHAPE, 3),
    _conv_bn_relu_workload("W11 Conv-BN-ReLU block training step", (64, 32, 32, 32), 64),
    # Not in the issue: the same step on a larger batch, to see how far threads take it.
    _training_workload(batch=256),
    # Issue 19: W7 with one busy-looping process beside it (a shared machine), and W8.
    _training_workload(contended=True),
    _epoch_workload(),
]
