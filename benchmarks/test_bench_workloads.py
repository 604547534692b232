"""Every workload of issue 5, timed for convnet and, where installed, for PyTorch CPU
(channels_last and default NCHW) in the same run, at 1 and 2 threads.

Run: pytest benchmarks/ --benchmark-only; python benchmarks/report.py writes BENCHMARKS.md.
"""
import pytest

from workloads import WORKLOADS, torch

IMPLEMENTATIONS = ["convnet", "torch channels_last", "torch nchw"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("workload", WORKLOADS, ids=[w.name for w in WORKLOADS])
def test_workload(benchmark, threads, workload, implementation):
    if implementation == "convnet":
        step = workload.convnet()
    elif torch is None:
        pytest.skip("PyTorch is not installed")
    else:
        step = workload.torch(implementation == "torch channels_last")
    benchmark.group = f"{workload.name}, {threads} thr"
    benchmark.extra_info.update(workload=workload.name, implementation=implementation,
                                threads=threads, flops=workload.flops)
    benchmark(step)
