"""OpenMP thread control for the compiled kernels.

The count is a plain module variable that ``convnet.kernels`` reads and passes to
every kernel as ``num_threads``, so it holds for calls made from any Python
thread (OpenMP's own setting is per calling thread).

A training step opens dozens of short parallel regions with Python in between,
so the workers must still be awake when the next one opens. libgomp's default
wait policy keeps them spinning for a few milliseconds, which is what these
kernels want; with OMP_WAIT_POLICY=passive each region waited ~80 us for its
workers on 2 cores, and W7's training step took 19-20 ms instead of 16-17.
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int convnet_openmp_max_threads(void) { return omp_get_max_threads(); }
    static int convnet_openmp_enabled(void) { return 1; }
    #else
    static int convnet_openmp_max_threads(void) { return 1; }
    static int convnet_openmp_enabled(void) { return 0; }
    #endif
    """
    int convnet_openmp_max_threads() nogil
    int convnet_openmp_enabled() nogil


import math
import os
import warnings
from _thread import get_ident
from numbers import Integral


def _cgroup_cpu_quota():
    """The CPUs a cgroup's CPU quota allows (quota / period, rounded up), or None where no
    quota is set or none can be read: cgroup v2's cpu.max, else v1's cfs files, as loky
    (scikit-learn's process pool) reads them."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        try:
            with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
                quota = f.read().strip()
            with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
                period = f.read().strip()
        except OSError:
            return None
    try:
        quota, period = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None


def available_cpus():
    """The CPUs this process may run on: its affinity mask (all CPUs where the platform has
    none), fewer where a cgroup CPU quota allows fewer. The bound of set_num_threads."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this platform
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, cpus if quota is None else min(cpus, quota))


# Honours OMP_NUM_THREADS, as libgomp reads it at start-up, within the CPUs available.
_num_threads = min(convnet_openmp_max_threads(), available_cpus())
# The Python threads that may have opened parallel regions of several threads, so own a
# libgomp thread pool; and whether this process was forked from such a thread.
_threads_with_pool = set()
_pool_lost = False


def _one_thread_after_fork():
    # libgomp's thread pool does not survive fork(): a child that opens a parallel region
    # with several threads on the forking thread's pool waits forever for workers that no
    # longer exist. One thread never touches the pool. Where the forking thread had no
    # pool, the child may raise the count again (libgomp then starts a new pool).
    global _num_threads, _pool_lost
    _pool_lost = _pool_lost or get_ident() in _threads_with_pool
    _threads_with_pool.clear()
    _num_threads = 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(convnet_openmp_enabled())


def set_num_threads(n):
    """Set the number of OpenMP threads the convolution and pooling kernels use.

    ``n`` is an int >= 1. More threads than ``available_cpus()`` (the CPUs this process
    may run on: its affinity mask, or its cgroup CPU quota where lower) are never faster
    and, by the thousand, exhaust memory or crash libgomp: such an ``n`` is clipped to
    that bound with a RuntimeWarning. Results are the same at any count.

    In a process forked (``os.fork``, multiprocessing's "fork") from a thread that had
    run the kernels on several threads, libgomp's thread pool is lost: the kernels run
    on one thread there, and asking for more raises RuntimeError instead of hanging.
    Start such workers with the "spawn" or "forkserver" method to use several threads.
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if not convnet_openmp_enabled():
        n = 1
    bound = available_cpus()
    if n > bound:
        warnings.warn(f"set_num_threads: {n} threads asked for, but this process may run on "
                      f"{bound} CPUs only; using {bound}", RuntimeWarning, stacklevel=1)
        n = bound
    if n > 1 and _pool_lost:
        raise RuntimeError(
            f"set_num_threads: cannot use {n} threads in this process: it was forked from a "
            f"thread that had run convnet's kernels on several threads, and libgomp's thread "
            f"pool does not survive fork(), so the kernels must stay on one thread here. Start "
            f"worker processes with multiprocessing's 'spawn' or 'forkserver' method instead.")
    _num_threads = n


def get_num_threads():
    """The number of OpenMP threads the kernels use."""
    # Every kernel call asks this first: note the threads that open regions of several.
    if _num_threads > 1:
        _threads_with_pool.add(get_ident())
    return _num_threads
