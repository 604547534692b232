"""The classic Keras convnet on Fashion-MNIST, run by convnet.

    python examples/fashion_mnist_convnet.py              # full data, 12 epochs
    python examples/fashion_mnist_convnet.py --fast       # a few batches, for tests

Written as a Keras script with only the imports changed.
"""
import argparse
import os
import time

import numpy as np

import convnet as keras
from convnet import layers

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

keras.utils.set_random_seed(1337)
model = keras.Sequential([
    keras.Input(shape=input_shape),
    layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Flatten(),
    layers.Dropout(0.5),
    layers.Dense(num_classes, activation="softmax"),
], name="fashion_mnist_convnet")
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

os.makedirs(args.out, exist_ok=True)
model.save(os.path.join(args.out, "fashion_mnist_convnet.keras"))
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
    path = os.path.join(args.out, "fashion_mnist_training.png")
    plot.save(fig, path)
    print(f"saved the model and {path}")
