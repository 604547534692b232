"""How convnet's OpenMP threads should wait: W7's training step under several libgomp spin
counts, at 1 and 2 threads, on an idle machine and beside one busy-looping process.

Each case runs in a fresh interpreter (libgomp reads GOMP_SPINCOUNT once, when it loads)
and reports the median of its steps; the cases are interleaved over --reps repetitions and
the table gives the median over those. On a 2-core machine the question is whether 2
threads beside a busy process are still no slower than 1 (convnet/_wait_policy.py).

    python benchmarks/wait_policy.py --spins 300000,30000,10000,1000,passive --reps 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
import convnet
from threadpoolctl import threadpool_limits
from workloads import small_cnn_keras
threads, steps = int(sys.argv[1]), int(sys.argv[2])
convnet.set_num_threads(threads)
threadpool_limits(threads, user_api="blas")
rng = np.random.default_rng(0)
x, labels = rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)
model = small_cnn_keras()
for _ in range(5):
    model.train_on_batch(x, labels)
times = []
for _ in range(steps):
    start = time.perf_counter()
    model.train_on_batch(x, labels)
    times.append(time.perf_counter() - start)
print(json.dumps(sorted(times)[len(times) // 2]))
"""
# The busy process stops by itself after this many seconds if nothing kills it.
BUSY_LOOP = "import time\nend = time.time() + 300\nwhile time.time() < end:\n    pass\n"


def step_ms(spin, threads, busy, steps):
    """Median W7 step in a fresh process with libgomp's spin count `spin` ("passive":
    OMP_WAIT_POLICY=passive), beside a busy loop when `busy`."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update({"OMP_WAIT_POLICY": "passive"} if spin == "passive" else {"GOMP_SPINCOUNT": spin})
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), env.get("PYTHONPATH", "")])
    loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    try:
        result = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps), HERE],
                                env=env, capture_output=True, text=True, check=True)
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    return json.loads(result.stdout) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spins", default="300000,30000,10000,1000,passive",
                        help="GOMP_SPINCOUNT values to try (libgomp's default is 300000)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    spins = args.spins.split(",")
    cases = [(busy, threads) for busy in (False, True) for threads in (1, 2)]
    times = {}
    for _ in range(args.reps):
        for spin in spins:
            for busy, threads in cases:
                times.setdefault((spin, busy, threads), []).append(
                    step_ms(spin, threads, busy, args.steps))
    print("| GOMP_SPINCOUNT | idle, 1 thread ms | idle, 2 threads ms | busy beside, 1 thread ms "
          "| busy beside, 2 threads ms | busy: 2 threads / 1 |")
    print("|---|---|---|---|---|---|")
    for spin in spins:
        row = [statistics.median(times[(spin, busy, threads)]) for busy, threads in cases]
        print(f"| {spin} | " + " | ".join(f"{v:.1f}" for v in row) + f" | {row[3] / row[2]:.2f} |")


if __name__ == "__main__":
    main()
