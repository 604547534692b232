"""The kernels' thread count adapts to the CPUs other work leaves free (set_num_threads)."""
import os

import numpy as np
import pytest

import convnet
from convnet import kernels
from convnet._core import threads as _threads

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"),
                                    reason="no CPU affinity masks on this platform")

STAT = """cpu  100 5 50 9000 7 1 2 3 0 0
cpu0 10 1 20 4000 3 1 2 3 0 0
cpu1 20 2 30 5000 4 0 0 0 0 0
cpu3 1000 0 0 0 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""


def test_busy_seconds_sums_user_nice_system_irq_softirq_and_steal_of_the_cpus_asked():
    hz = _threads._TICKS_PER_SECOND
    # cpu0: 10 + 1 + 20 + 1 + 2 + 3 (idle 4000 and iowait 3 left out); cpu1: 20 + 2 + 30.
    assert _threads.busy_seconds(STAT, [0]) == pytest.approx(37 / hz)
    assert _threads.busy_seconds(STAT, [0, 1]) == pytest.approx(89 / hz)
    assert _threads.busy_seconds(STAT, [1, 2]) == pytest.approx(52 / hz)  # no line for cpu2
    assert _threads.busy_seconds(STAT, [5]) is None
    assert _threads.busy_seconds("intr 1 2\n", [0]) is None


@pytest.mark.parametrize("cpus, busy, own, expected", [
    (2, 2.0, 2.0, 2),    # all the busy time is this process's own
    (2, 1.95, 0.98, 1),  # another program kept one CPU busy
    (2, 1.4, 1.0, 2),    # ... 0.4 of one: rounded down
    (2, 1.6, 1.0, 1),    # ... 0.6 of one: rounded up
    (4, 4.0, 1.0, 1),    # three busy CPUs of four
    (2, 2.0, 0.0, 1),    # never below one
    (8, 0.0, 0.5, 8),    # counters that lag the process's own clock
])
def test_free_cpus_is_the_cpus_less_the_load_of_other_work(cpus, busy, own, expected):
    assert _threads.free_cpus(cpus, 1.0, own, busy) == expected


class FakeMachine:
    """/proc/stat and the clocks of a machine where `others` CPUs run other programs."""

    def __init__(self, cpus):
        self.cpus, self.wall, self.own, self.busy, self.others = cpus, 1000.0, 1.0, 500.0, 0.0

    def run(self, seconds, own_cpus):
        self.wall += seconds
        self.own += own_cpus * seconds
        self.busy += (own_cpus + self.others) * seconds

    def stat(self):
        ticks = round(self.busy * _threads._TICKS_PER_SECOND)
        lines = [f"cpu{c} {ticks if c == self.cpus[0] else 0} 0 0 1000 0 0 0 0 0 0"
                 for c in self.cpus]
        return "cpu  0 0 0 0 0 0 0 0 0 0\n" + "\n".join(lines) + "\nintr 0\n"

    def monotonic(self):
        return self.wall

    def process_time(self):
        return self.own


@needs_affinity
def test_the_kernels_use_only_the_cpus_other_work_leaves_free(monkeypatch, threads):
    cpus = sorted(os.sched_getaffinity(0))
    n = _threads.available_cpus()  # at most len(cpus)
    if n < 2:
        pytest.skip("needs 2 CPUs")
    machine = FakeMachine(cpus)
    monkeypatch.setattr(_threads, "time", machine)
    monkeypatch.setattr(_threads, "_read_stat", machine.stat)
    for name, value in (("_last_sample", None), ("_free_cpus", None), ("_next_sample", 0.0)):
        monkeypatch.setattr(_threads, name, value)
    convnet.set_num_threads(n, adaptive=True)
    assert convnet.get_num_threads() == n and _threads.adaptive_threads()

    assert kernels.threads_now() == n  # the first look: nothing to compare with yet
    machine.run(1.0, own_cpus=n)
    assert kernels.threads_now() == n  # idle but for this process
    machine.others = 1.0               # a busy-looping program starts
    machine.run(0.1, own_cpus=n - 1)
    assert kernels.threads_now() == n  # not looked again yet: at most every LOAD_SAMPLE_SECONDS
    machine.run(1.0, own_cpus=n - 1)
    assert kernels.threads_now() == n - 1
    machine.others = 0.0               # ... and ends
    machine.run(1.0, own_cpus=n - 1)
    assert kernels.threads_now() == n
    machine.others = float(len(cpus))  # every CPU busy with other work: one thread
    machine.run(1.0, own_cpus=1)
    assert kernels.threads_now() == 1

    convnet.set_num_threads(n)         # adaptive=None keeps the setting
    assert _threads.adaptive_threads()
    convnet.set_num_threads(n, adaptive=False)
    assert kernels.threads_now() == n and not _threads.adaptive_threads()


def test_without_counters_to_read_the_count_does_not_adapt(monkeypatch, threads):
    def unreadable():
        raise OSError("no /proc here")
    monkeypatch.setattr(_threads, "_read_stat", unreadable)
    monkeypatch.setattr(_threads, "_next_sample", 0.0)
    n = _threads.available_cpus()
    convnet.set_num_threads(n, adaptive=True)
    for _ in range(3):
        assert kernels.threads_now() == n
        monkeypatch.setattr(_threads, "_next_sample", 0.0)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux's /proc/stat only")
@needs_affinity
def test_the_real_counters_read_as_cpu_seconds():
    with open("/proc/stat") as f:
        busy = _threads.busy_seconds(f.read(), sorted(os.sched_getaffinity(0)))
    assert busy is not None and busy >= 0


@pytest.mark.parametrize("bad", ["yes", 1, np.bool_(True)])
def test_adaptive_must_be_a_bool_or_none(bad, threads):
    with pytest.raises(TypeError, match="set_num_threads: adaptive must be True, False or None"):
        convnet.set_num_threads(1, adaptive=bad)


def test_results_do_not_depend_on_whether_the_count_adapts(threads, rng):
    x = rng.standard_normal((4, 9, 9, 16)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    results = []
    for adaptive in (False, True):
        convnet.set_num_threads(_threads.available_cpus(), adaptive=adaptive)
        results.append(kernels.conv2d(x, kernel, None, 1, "same", algorithm="winograd"))
    assert results[0].tobytes() == results[1].tobytes()


def test_blas_buffers_are_warmed_once_per_python_thread_and_thread_count(threads, rng):
    """kernels._warm_up_blas: one large product per OpenMP thread before a Python thread's
    first BLAS kernel, again when its count rises, never when it does not."""
    import threading
    if _threads.available_cpus() < 2:
        pytest.skip("needs 2 CPUs")
    calls = []
    real = kernels._linalg.matmul

    def counting(a, trans_a, b, trans_b, out, block, by_rows, num_threads):
        calls.append((out.shape, num_threads))
        return real(a, trans_a, b, trans_b, out, block, by_rows, num_threads)

    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)

    def run(count):
        convnet.set_num_threads(count, adaptive=False)
        kernels.conv2d(x, w, algorithm="im2col")

    kernels._linalg.matmul, saved = counting, kernels._linalg.matmul
    try:
        worker = threading.Thread(target=lambda: [run(1), run(1), run(2), run(2), run(1)])
        worker.start()
        worker.join()
    finally:
        kernels._linalg.matmul = saved
    assert calls == [((512, 512), 1), ((1024, 512), 2)]
