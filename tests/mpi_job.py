"""The MPI side of tests/test_distributed.py: run as

    mpiexec -n 2 python -m mpi4py tests/mpi_job.py SCENARIO OUT_DIR

Rank r writes its results into OUT_DIR (final weights, history and evaluate as
SCENARIO-CASE-rank{r}.npz; what the api scenario records as api-rank{r}.json).
``CASES`` and ``train`` are also imported by the test, which runs the same cases in one
process at the global batch size as the reference.
"""
import json
import os
import sys

import numpy as np

import convnet as keras
from convnet import layers

SEED = 7
EPOCHS = 2
RANK_BATCH = 32

# name: (optimizer, samples, validation_split, distributed optimizer, broadcast)
CASES = {
    "sgd": (lambda: keras.optimizers.SGD(0.1), 256, 0.0, True, True),
    "momentum": (lambda: keras.optimizers.SGD(0.05, momentum=0.9), 256, 0.0, True, True),
    "adam": (lambda: keras.optimizers.Adam(0.01), 256, 0.0, True, True),
    # 81 training samples: the last global batch (17) splits 9 / 8; 20 validation samples
    "ragged": (lambda: keras.optimizers.SGD(0.1, momentum=0.5), 101, 0.2, True, True),
    # 129 samples: the last global batch is one sample, which both ranks hold
    "tail": (lambda: keras.optimizers.Adam(0.01), 129, 0.0, True, True),
    "no_broadcast": (lambda: keras.optimizers.SGD(0.1), 256, 0.0, True, False),
    "no_averaging": (lambda: keras.optimizers.SGD(0.1), 256, 0.0, False, True),
}


def data(samples):
    rng = np.random.default_rng(0)
    x = rng.random((samples, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) * 6).astype(np.int64) % 3
    return x, y


def build(optimizer, seed=SEED):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(model, samples, validation_split, batch_size, callbacks=(), epochs=EPOCHS):
    x, y = data(samples)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
                        validation_split=validation_split, callbacks=list(callbacks))
    return history.history, model.evaluate(x, y, batch_size=16, verbose=0)


class Batches:
    """A re-iterable source of (x, y) batches without a length (like a tf.data pipeline)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def rank_batches(rank):
    """Rank 0's own data is 5 batches of 20 samples, rank 1's 3 batches of 12."""
    x, y = data(160)
    size, count, offset = (20, 5, 0) if rank == 0 else (12, 3, 100)
    return [(x[offset + i * size:offset + (i + 1) * size],
             y[offset + i * size:offset + (i + 1) * size]) for i in range(count)]


def train_on_batches(model, training, evaluation):
    history = model.fit(Batches(training), epochs=EPOCHS, verbose=0)
    return history.history, model.evaluate(Batches(evaluation), verbose=0)


def save(path, model, history, evaluation):
    np.savez(path, *model.get_weights(), evaluation=np.asarray(evaluation),
             **{f"history_{k}": np.asarray(v) for k, v in history.items()})


def equivalence(out):
    for name, (make_optimizer, samples, split, averaged, broadcast) in CASES.items():
        optimizer = make_optimizer()
        if averaged:
            optimizer = hvd.DistributedOptimizer(optimizer)
        # Each rank initialises differently: only the broadcast makes them start as one.
        model = build(optimizer, SEED + hvd.rank())
        callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0)] if broadcast else []
        history, evaluation = train(model, samples, split, RANK_BATCH, callbacks)
        save(os.path.join(out, f"equivalence-{name}-rank{hvd.rank()}.npz"), model, history,
             evaluation)
    # Each rank's own generator: steps stop with the shorter one (3), each global batch is
    # rank 0's batch i and rank 1's batch i, weighted 20 : 12; evaluate covers both sources.
    model = build(hvd.DistributedOptimizer(keras.optimizers.SGD(0.1, momentum=0.5)))
    batches = rank_batches(hvd.rank())
    history, evaluation = train_on_batches(model, batches, batches)
    save(os.path.join(out, f"equivalence-generator-rank{hvd.rank()}.npz"), model, history,
         evaluation)
    resume(out)


def api(out):
    """The collectives, the thread split, Horovod's warmup and metric averaging, and bad
    arguments, recorded for the test to check."""
    results = {"local": [hvd.local_rank(), hvd.local_size()],
               "average": hvd.allreduce(np.array([1.0, 2.0]) * (hvd.rank() + 1)).tolist(),
               "sum": int(hvd.allreduce(hvd.rank() + 1, op="sum")),
               "max": hvd.allreduce([hvd.rank(), -hvd.rank()], op="max").tolist(),
               "broadcast": hvd.broadcast(np.arange(3) + 10 * hvd.rank(), root_rank=1).tolist()}
    errors = {"op": lambda: hvd.allreduce(1.0, op="mean"),
              "root": lambda: hvd.broadcast(1.0, root_rank=2),
              "strings": lambda: hvd.allreduce(np.array(["a"]))}
    for name, call in errors.items():
        try:
            call()
        except (ValueError, TypeError) as error:
            results[f"error_{name}"] = f"{type(error).__name__}: {error}"

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            results.setdefault("lr", []).append(float(self.model.optimizer.learning_rate))
            results.setdefault("momentum", []).append(self.model.optimizer.momentum)

        def on_train_batch_end(self, batch, logs=None):
            results.setdefault("momentum_after", []).append(self.model.optimizer.momentum)

        def on_epoch_end(self, epoch, logs=None):
            logs["rank"] = hvd.rank()

    model = build(hvd.DistributedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9)))
    history, _ = train(model, 256, 0.0, RANK_BATCH, epochs=3, callbacks=[
        hvd.callbacks.LearningRateWarmupCallback(initial_lr=0.1, warmup_epochs=2), Record(),
        hvd.callbacks.MetricAverageCallback()])
    results["history"] = history
    with open(os.path.join(out, f"api-rank{hvd.rank()}.json"), "w") as f:
        json.dump(results, f)


def resume(out):
    """One epoch, then rank 1 forgets its optimizer state and moves its weights (as a rank
    restarted from a model file would), then one more epoch from rank 0's state."""
    model = build(hvd.DistributedOptimizer(keras.optimizers.Adam(0.01)), SEED + hvd.rank())
    train(model, 256, 0.0, RANK_BATCH, [hvd.callbacks.BroadcastGlobalVariablesCallback(0)],
          epochs=1)
    if hvd.rank() == 1:
        step, rate, *slots = model.optimizer.variables      # forget: step 0, empty moments
        model.optimizer.set_weights([np.zeros_like(step), rate]
                                    + [np.zeros_like(s) for s in slots])
        model.set_weights([w + 1 for w in model.get_weights()])
    history, evaluation = train(model, 256, 0.0, RANK_BATCH,
                                [hvd.callbacks.BroadcastGlobalVariablesCallback(0)], epochs=1)
    save(os.path.join(out, f"resume-adam-rank{hvd.rank()}.npz"), model, history, evaluation)


def ragged_checkpoint(out):
    """97 samples at 2 x 16 (the last global batch is one sample), a checkpoint per epoch
    and the progress bar: each must appear once, not once per rank."""
    x, y = data(97)
    model = build(hvd.DistributedOptimizer(keras.optimizers.SGD(0.1)))
    path = os.path.join(out, "checkpoint-{epoch}.keras")
    model.fit(x, y, batch_size=16, epochs=2, verbose=2, callbacks=[
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        keras.callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True, verbose=1),
        keras.callbacks.EarlyStopping(monitor="loss", patience=5)])
    print(f"rank {hvd.rank()} finished with weight sum "
          f"{sum(float(w.sum()) for w in model.get_weights()):.6f}", flush=True)


def crash(out):
    """Rank 1 raises in its third step while rank 0 waits in that step's Allreduce."""
    class Explode(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if hvd.rank() == 1 and batch == 2:
                raise RuntimeError("rank 1 fails on purpose")
    x, y = data(256)
    model = build(hvd.DistributedOptimizer(keras.optimizers.SGD(0.1)))
    model.fit(x, y, batch_size=16, epochs=50, verbose=0, callbacks=[Explode()])


if __name__ == "__main__":
    import convnet.distributed as hvd
    threads_before = keras.get_num_threads()
    hvd.init()
    scenario, out = sys.argv[1], sys.argv[2]
    if scenario == "api":
        with open(os.path.join(out, f"threads-rank{hvd.rank()}.json"), "w") as f:
            json.dump([threads_before, keras.get_num_threads()], f)
    {"equivalence": equivalence, "api": api, "ragged_checkpoint": ragged_checkpoint,
     "crash": crash}[scenario](out)
