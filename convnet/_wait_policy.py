"""How long idle OpenMP threads spin before they sleep: set before the OpenMP runtime loads.

A training step opens dozens of short parallel regions with Python in between. libgomp's
default keeps idle workers spinning for 300,000 turns of its wait loop after each region
(about 10 ms on this project's 2-core machine, where a turn, with its pause instruction,
takes 33 ns), so that they are awake for the next one. On a machine with other work
running, those spinning workers take the cores that work, and convnet's own main thread,
need: beside one busy-looping process on 2 cores, a W7 training step at 2 threads took
1.9-2.5x as long as at 1 (issue 19 saw 2.3-3.4x). OMP_WAIT_POLICY=passive (no spinning)
cures that, but costs a wake-up per region on an idle machine (W7 at 2 threads: 19-20 ms
a step instead of 16-17). 10,000 turns (about 0.3 ms here) still cover the Python between
most regions of a step, and give the core back soon after: beside the busy process, 2
threads then took 0.91-1.15x the time of 1 (benchmarks/wait_policy.py, with the machine
shared by other work too; 1,000 turns: 0.77-0.94x, passive: 0.78-0.96x).

The runtime reads its environment once, when the first library linked to it loads, so
``convnet/__init__.py`` imports this module before anything else. A value the user set
(GOMP_SPINCOUNT or OMP_WAIT_POLICY for libgomp, KMP_BLOCKTIME for LLVM's libomp) is kept.
One OpenMP runtime serves the whole process, so the setting also holds for other
libraries that use it (PyTorch's CPU build shares libgomp), and for child processes.
"""
import os

# Turns of libgomp's wait loop (about 0.3 ms here) before an idle thread sleeps.
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
