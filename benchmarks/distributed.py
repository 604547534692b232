"""Data-parallel training on MPI ranks against threads: W7's model (the small MNIST CNN of
benchmarks/workloads.py) trained by fit at a global batch of 64, as 1 rank x 2 threads and
as 2 ranks x 1 thread (each rank 32 samples a step), and the share of a step spent in the
gradient Allreduce.

    python benchmarks/distributed.py                       # the two configurations above
    python benchmarks/distributed.py --configs 1x2,2x1,4x1,8x2 --global-batch 256

Each configuration RxT runs ``mpiexec -n R python -m mpi4py`` on this file with T kernel
threads per rank; rank 0 reports. Times are medians over the measured epochs (the first
epoch warms up and is not counted). "Allreduce share" is the wall time inside the step's
one fused gradient Allreduce (waiting for the slowest rank included); "agree" the one-int
Allreduce fit runs after each batch so that all ranks stop together; "Allreduce alone" the
same gradient Allreduce timed after training with the ranks lined up (no waiting; with
one rank it is a local no-op).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def small_cnn(convnet, optimizer):
    """W7's model (benchmarks/workloads.small_cnn_keras), here so that the ranks do not
    import PyTorch with the workloads module."""
    layers = convnet.layers
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
    model.compile(optimizer=optimizer,
                  loss=convnet.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def worker(args):
    """One rank: fit for --epochs epochs of --steps global batches; rank 0 writes JSON."""
    import convnet
    import convnet.distributed as hvd
    hvd.init()
    convnet.set_num_threads(args.threads)
    ranks = hvd.size()
    timers = {"allreduce": 0.0, "agree": 0.0}

    def timed(name, function):
        def run(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                timers[name] += time.perf_counter() - started
        return run

    hvd._sum_in_place = timed("allreduce", hvd._sum_in_place)
    hvd._AgreeOnStopping._agree = timed("agree", hvd._AgreeOnStopping._agree)

    epochs = []

    class Clock(convnet.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            timers.update(allreduce=0.0, agree=0.0)
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epochs.append((time.perf_counter() - self.started, dict(timers)))

    rng = np.random.default_rng(0)
    samples = args.global_batch * args.steps
    x = rng.random((samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    model = small_cnn(convnet, hvd.DistributedOptimizer(convnet.optimizers.SGD(0.01)))
    model.fit(x, y, batch_size=args.global_batch // ranks, epochs=args.epochs, verbose=0,
              callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0), Clock()])
    # The same Allreduce with nothing else running in the job: its cost without waiting.
    buffer = np.ones(sum(int(np.prod(w.shape)) for w in model.trainable_weights), np.float32)
    bare = []
    for _ in range(20):
        hvd.allreduce(0)  # line the ranks up
        started = time.perf_counter()
        hvd._sum_in_place(buffer)
        bare.append(time.perf_counter() - started)
    if hvd.rank() == 0:
        measured = epochs[1:]
        step = statistics.median(t for t, _ in measured) / args.steps
        share = {name: statistics.median(spent[name] / t for t, spent in measured)
                 for name in timers}
        with open(args.worker, "w") as f:
            json.dump({"ranks": ranks, "threads": args.threads, "step_s": step,
                       "allreduce_share": share["allreduce"], "agree_share": share["agree"],
                       "bare_allreduce_s": statistics.median(bare),
                       "gradient_floats": sum(int(np.prod(w.shape))
                                              for w in model.trainable_weights)}, f)


def mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1x2,2x1", help="RANKSxTHREADS,...")
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="global batches per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="the first is not measured")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    launcher = mpiexec()
    if launcher is None:
        sys.exit("mpiexec not found: pip install \"convnet[mpi]\"")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs.split(","):
            ranks, threads = (int(n) for n in config.split("x"))
            result = os.path.join(tmp, f"{config}.json")
            subprocess.run([launcher, "-n", str(ranks), sys.executable, "-m", "mpi4py",
                            os.path.abspath(__file__), "--worker", result,
                            "--threads", str(threads), "--global-batch", str(args.global_batch),
                            "--steps", str(args.steps), "--epochs", str(args.epochs)],
                           check=True, env=env, timeout=1800)
            with open(result) as f:
                rows.append(json.load(f))
    base = rows[0]["step_s"]
    lines = [f"W7 model, fit at a global batch of {args.global_batch}, float32, "
             f"{rows[0]['gradient_floats']:,} gradient floats per Allreduce; "
             f"{os.cpu_count()} logical CPUs; medians over {args.epochs - 1} epochs of "
             f"{args.steps} steps.", "",
             "| ranks x threads | ms/step | steps/s | vs first row | Allreduce share | "
             "agree share | Allreduce alone ms |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['ranks']} x {row['threads']} | {row['step_s'] * 1e3:.1f} | "
                     f"{1 / row['step_s']:.1f} | {base / row['step_s']:.2f}x | "
                     f"{row['allreduce_share']:.1%} | {row['agree_share']:.1%} | "
                     f"{row['bare_allreduce_s'] * 1e3:.2f} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
