"""Every workload of issues 5 and 19, timed for convnet and, where installed, for PyTorch
CPU (channels_last and default NCHW) and Keras 3 on its torch backend (W8) in the same
run, at 1 and 2 threads.

Run: pytest benchmarks/ --benchmark-only; python benchmarks/report.py writes BENCHMARKS.md.
"""
import subprocess
import sys

import pytest

from workloads import WORKLOADS, torch

IMPLEMENTATIONS = ["convnet", "torch channels_last", "torch nchw", "keras torch"]
# The busy process beside a contended workload spins for at most this long (seconds), in
# case the suite dies without stopping it.
BUSY_LIMIT = 600
BUSY_LOOP = f"import time\nend = time.time() + {BUSY_LIMIT}\nwhile time.time() < end:\n    pass\n"


@pytest.fixture
def load(request):
    """One busy-looping process beside the benchmark while it runs, when the workload
    is contended: another program on a shared machine."""
    if not request.node.callspec.params["workload"].contended:
        yield
        return
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        yield
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("workload", WORKLOADS, ids=[w.name for w in WORKLOADS])
def test_workload(benchmark, threads, workload, implementation, load):
    if implementation == "convnet":
        step = workload.convnet()
    elif torch is None:
        pytest.skip("PyTorch is not installed")
    elif implementation == "keras torch":
        step = workload.keras() if workload.keras is not None else None
        if step is None:
            pytest.skip("no Keras 3 on torch for this workload")
    else:
        step = workload.torch(implementation == "torch channels_last")
    benchmark.group = f"{workload.name}, {threads} thr"
    benchmark.extra_info.update(workload=workload.name, implementation=implementation,
                                threads=threads, flops=workload.flops)
    if workload.rounds is None:
        benchmark(step)
    else:
        benchmark.pedantic(step, rounds=workload.rounds, warmup_rounds=1)
