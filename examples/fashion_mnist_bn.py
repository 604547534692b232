"""A Conv-BatchNorm-ReLU CNN on Fashion-MNIST, then folded for inference.

    python examples/fashion_mnist_bn.py              # full data, 12 epochs
    python examples/fashion_mnist_bn.py --fast       # a few batches, for tests

Random horizontal flips and shifts of up to 5% (RandomFlip, RandomTranslation: active
in training only, the identity at inference), then three blocks of a 3x3 convolution
without bias (the normalization's beta is the bias), BatchNormalization and ReLU, each
followed by 2x2 max pooling, trained as the plain
example (examples/fashion_mnist_convnet.py) is: Adam, batch 128, 12 epochs,
validation_split=0.1, seed 1337, so their test accuracies compare. After training,
convnet.inference.fold_batch_norm folds each normalization into its convolution; the
folded model predicts the same classes with three passes over the activations fewer.
Written as a Keras script with only the imports changed (fold_batch_norm is convnet's).
"""
import argparse
import os
import time

import numpy as np

import convnet as keras
from convnet import layers
from convnet.inference import fold_batch_norm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--fast", action="store_true", help="train on a few batches only")
parser.add_argument("--out", default=".", help="where the model and the PNG go")
args = parser.parse_args()

num_classes = 10
input_shape = (28, 28, 1)

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data(subset=args.fast)
if args.fast:
    x_train, y_train, args.epochs = x_train[:1024], y_train[:1024], 1
print(f"training on {len(x_train)} images, testing on {len(x_test)}")

x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)


def conv_bn_relu(filters):
    return [layers.Conv2D(filters, kernel_size=(3, 3), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(pool_size=(2, 2))]


keras.utils.set_random_seed(1337)
model = keras.Sequential([
    keras.Input(shape=input_shape),
    layers.RandomFlip("horizontal", seed=1),
    layers.RandomTranslation(0.05, 0.05, seed=2),
    *conv_bn_relu(32),       # 14x14
    *conv_bn_relu(64),       # 7x7
    *conv_bn_relu(128),      # 3x3
    layers.Flatten(),
    layers.Dense(num_classes, activation="softmax"),
], name="fashion_mnist_bn")
model.summary()

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
started = time.perf_counter()
history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                    validation_split=0.1)
elapsed = time.perf_counter() - started

score = model.evaluate(x_test, y_test, verbose=0)
print(f"Test loss: {score[0]:.4f}")
print(f"Test accuracy: {score[1]:.4f}")
print(f"Wall time per epoch: {elapsed / args.epochs:.1f} s "
      f"({keras.get_num_threads()} threads)")

folded = fold_batch_norm(model)
started = time.perf_counter()
probabilities = model.predict(x_test, verbose=0)
predict_time = time.perf_counter() - started
started = time.perf_counter()
folded_probabilities = folded.predict(x_test, verbose=0)
folded_time = time.perf_counter() - started
same = np.mean(probabilities.argmax(1) == folded_probabilities.argmax(1))
print(f"Folded: {len(model.layers)} -> {len(folded.layers)} layers, largest difference in "
      f"probability {np.abs(probabilities - folded_probabilities).max():.1e}, the same class "
      f"for {same:.2%} of the test images; predict {predict_time:.2f} s -> {folded_time:.2f} s")

os.makedirs(args.out, exist_ok=True)
model.save(os.path.join(args.out, "fashion_mnist_bn.cnet"))
try:
    from convnet import plot
except ImportError as error:
    print(f"no training-curve PNG: {error}")
else:
    fig = plot.training_curves(
        history, title=f"{model.name} ({model.count_params():,} parameters) on Fashion-MNIST: "
                       f"test accuracy {score[1]:.1%}\n{len(x_train):,} training images "
                       f"(10% held out for validation), batch {args.batch_size}, "
                       f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}")
    path = os.path.join(args.out, "fashion_mnist_bn_training.png")
    plot.save(fig, path)
    print(f"saved the model and {path}")
