"""The classic Keras convnet on Fashion-MNIST, trained data-parallel on MPI ranks.

    mpiexec -n 2 python -m mpi4py examples/fashion_mnist_distributed.py           # 12 epochs
    mpiexec -n 2 python -m mpi4py examples/fashion_mnist_distributed.py --fast    # for tests

examples/fashion_mnist_convnet.py with Horovod's changes, written as a Horovod script with
only the imports changed: init, the learning rate scaled by the number of ranks (each rank
takes --batch-size samples of every step, so a step sees size() times as many), the
optimizer wrapped, the first rank's weights broadcast, a warmup to the scaled rate, and
files written by rank 0. Every rank loads the same data; fit gives each its share.
"""
import argparse
import os
import time

import numpy as np

import convnet as keras
import convnet.distributed as hvd
from convnet import layers

parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=128, help="samples per rank and step")
parser.add_argument("--warmup-epochs", type=int, default=3)
parser.add_argument("--fast", action="store_true", help="train on a few batches only")
parser.add_argument("--out", default=".", help="where the model and checkpoints go")
args = parser.parse_args()

hvd.init()
root = hvd.rank() == 0

num_classes = 10
input_shape = (28, 28, 1)

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data(subset=args.fast)
if args.fast:
    x_train, y_train, args.epochs, args.warmup_epochs = x_train[:1024], y_train[:1024], 1, 1
if root:
    print(f"{hvd.size()} ranks, {keras.get_num_threads()} kernel thread(s) each: training "
          f"on {len(x_train)} images, testing on {len(x_test)}")

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
])
if root:
    model.summary()

learning_rate = 0.001 * hvd.size()
model.compile(loss="categorical_crossentropy",
              optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(learning_rate)),
              metrics=["accuracy"])
callbacks = [
    hvd.callbacks.BroadcastGlobalVariablesCallback(0),
    hvd.callbacks.MetricAverageCallback(),
    hvd.callbacks.LearningRateWarmupCallback(initial_lr=learning_rate,
                                             warmup_epochs=args.warmup_epochs, verbose=1),
    # Written by rank 0 only: fit leaves ModelCheckpoint out on the other ranks.
    keras.callbacks.ModelCheckpoint(os.path.join(args.out, "checkpoint-{epoch}.keras")),
]
os.makedirs(args.out, exist_ok=True)
started = time.perf_counter()
model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
          validation_split=0.1, callbacks=callbacks, verbose=1 if root else 0)
elapsed = time.perf_counter() - started

# evaluate is collective: every rank scores its share, and all get the total.
score = model.evaluate(x_test, y_test, verbose=0)
if root:
    print(f"Test loss: {score[0]:.4f}")
    print(f"Test accuracy: {score[1]:.4f}")
    print(f"Wall time per epoch: {elapsed / args.epochs:.1f} s")
    model.save(os.path.join(args.out, "fashion_mnist_distributed.keras"))
