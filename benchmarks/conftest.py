"""Shared fixtures of the benchmark suite, and the ratio table printed after it.

    pytest benchmarks/ --benchmark-only      (or: python benchmarks/report.py)
"""
import pytest
from threadpoolctl import threadpool_limits

import convnet

from workloads import torch


def pytest_addoption(parser):
    parser.addoption("--bench-threads", default="1,2", metavar="N,N,...",
                     help="thread counts to time each workload at (default 1,2)")


def pytest_generate_tests(metafunc):
    if "threads" in metafunc.fixturenames:
        counts = [int(n) for n in metafunc.config.getoption("--bench-threads").split(",")]
        metafunc.parametrize("threads", counts, indirect=True, ids=lambda n: f"{n}thr")


@pytest.fixture
def threads(request):
    """Run each workload at each of --bench-threads (1 and 2 by default): convnet's OpenMP
    kernels, every BLAS in the process and PyTorch alike."""
    before = convnet.get_num_threads()
    convnet.set_num_threads(request.param)
    if torch is not None:
        torch.set_num_threads(request.param)
    with threadpool_limits(request.param, user_api="blas"):
        yield request.param
    convnet.set_num_threads(before)


def medians(benchmarks):
    """{(workload, threads, implementation): median seconds} from pytest-benchmark's
    records in their JSON form (``Metadata.as_dict()``, or the --benchmark-json file)."""
    return {(b["extra_info"]["workload"], b["extra_info"]["threads"],
             b["extra_info"]["implementation"]): b["stats"]["median"] for b in benchmarks}


def ratio_rows(benchmarks):
    """(workload, threads, convnet median s, torch channels_last median s or None, ratio or
    None) for each convnet record, in the order they ran."""
    times = medians(benchmarks)
    rows = []
    for (workload, threads, implementation), median in times.items():
        if implementation == "convnet":
            reference = times.get((workload, threads, "torch channels_last"))
            rows.append((workload, threads, median, reference,
                         None if reference is None else median / reference))
    return rows


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    terminalreporter.section("convnet / PyTorch channels_last (median time ratio)")
    for workload, threads, median, reference, ratio in ratio_rows([b.as_dict() for b in session.benchmarks]):
        against = "no PyTorch" if ratio is None else f"{reference * 1e3:8.2f} ms  ratio {ratio:.2f}"
        terminalreporter.write_line(
            f"{workload:40s} {threads} thr  {median * 1e3:8.2f} ms  vs {against}")
