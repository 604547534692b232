"""How long idle OpenMP threads spin before they sleep: set before the OpenMP runtime loads.

A training step opens dozens of short parallel regions with Python in between. libgomp's
default keeps idle workers spinning for about 300,000 iterations (milliseconds) after
each region, so they are awake for the next one. On a machine with other work running,
those spinning workers take the cores that work (and convnet's own main thread) needs:
with one busy process beside it on 2 cores, a W7 training step at 2 threads took
2.3-3.4x as long as at 1. OMP_WAIT_POLICY=passive (no spinning) cures that, but costs a
wake-up of ~80 us per region on an idle machine. A short spin keeps most of both: the
workers still catch the next region when the Python between is short, and give their
core back within a fraction of a millisecond when it is not (BENCHMARKS.md, "Busy machine").

The runtime reads its environment once, when the first library linked to it loads, so
``convnet/__init__.py`` imports this module before anything else. A value the user set
(GOMP_SPINCOUNT or OMP_WAIT_POLICY for libgomp, KMP_BLOCKTIME for LLVM's libomp) is kept.
One OpenMP runtime serves the whole process, so the setting also holds for other
libraries that use it (PyTorch's CPU build shares libgomp), and for child processes.
"""
import os

# Iterations of libgomp's wait loop (roughly 0.1 ms here) before an idle thread sleeps.
GOMP_SPIN_COUNT = "10000"
# The same for LLVM's libomp (clang builds), in milliseconds (its default is 200).
KMP_BLOCK_TIME_MS = "1"


def bound_spinning(environ=os.environ):
    """Set a short spin in `environ` unless the user chose a wait policy there."""
    if "OMP_WAIT_POLICY" in environ:
        return
    environ.setdefault("GOMP_SPINCOUNT", GOMP_SPIN_COUNT)
    environ.setdefault("KMP_BLOCKTIME", KMP_BLOCK_TIME_MS)


bound_spinning()
