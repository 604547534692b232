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
import time
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
    global _num_threads, _pool_lost, _last_sample, _free_cpus
    _pool_lost = _pool_lost or get_ident() in _threads_with_pool
    _threads_with_pool.clear()
    _num_threads = 1
    # The parent's load sample counted the parent's CPU time: start the child's afresh.
    _last_sample, _free_cpus = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(convnet_openmp_enabled())


def set_num_threads(n, adaptive=None):
    """Set the number of OpenMP threads the convolution and pooling kernels use.

    ``n`` is an int >= 1: the count, and where the count adapts to the load (the default)
    the most the kernels use: where other programs keep some of the process's CPUs busy,
    they use only the CPUs left free, at least one (see ``threads_now``). ``adaptive``:
    True or False sets that (False: ``n`` threads however busy the machine is), None (the
    default) keeps the current setting, which starts as True unless the environment
    variable ``CONVNET_ADAPTIVE_THREADS`` is ``0``.

    More threads than ``available_cpus()`` (the CPUs this process
    may run on: its affinity mask, or its cgroup CPU quota where lower) are never faster
    and, by the thousand, exhaust memory or crash libgomp: such an ``n`` is clipped to
    that bound with a RuntimeWarning. Results are the same at any count.

    In a process forked (``os.fork``, multiprocessing's "fork") from a thread that had
    run the kernels on several threads, libgomp's thread pool is lost: the kernels run
    on one thread there, and asking for more raises RuntimeError instead of hanging.
    Start such workers with the "spawn" or "forkserver" method to use several threads.
    """
    global _num_threads, _adaptive
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    if adaptive is not None and not isinstance(adaptive, bool):
        raise TypeError(f"set_num_threads: adaptive must be True, False or None, got "
                        f"{adaptive!r}")
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
    if adaptive is not None:
        _adaptive = adaptive


def get_num_threads():
    """The number of OpenMP threads the kernels use: the most, where they adapt to the load
    (see set_num_threads)."""
    # Every kernel call asks this first: note the threads that open regions of several.
    if _num_threads > 1:
        _threads_with_pool.add(get_ident())
    return _num_threads


# ----------------------------------------------------------------------------- a busy machine
# Each parallel region ends when its slowest thread does: a thread that shares its core with
# another program's holds all the others up for the scheduler's time slices. Beside one
# busy-looping process on 2 cores, W7's training step took 1.2x as long at 2 threads as at 1
# (issue 19), even with the bounded spin of _wait_policy. So, unless told otherwise, the
# kernels use only the CPUs that other work leaves free, as measured from the kernel's CPU
# counters (Linux's /proc/stat) over the last LOAD_SAMPLE_SECONDS: the CPU time spent on the
# process's CPUs, less this process's own. Results do not depend on the count, so it may
# change between any two kernel calls.
LOAD_SAMPLE_SECONDS = 0.25
_adaptive = os.environ.get("CONVNET_ADAPTIVE_THREADS", "1") != "0"
_free_cpus = None     # CPUs the last sample found free; None before there were two samples
_last_sample = None   # (monotonic seconds, process CPU seconds, busy CPU seconds) or None
_next_sample = 0.0
try:
    _TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    _TICKS_PER_SECOND = 100


def busy_seconds(stat_text, cpus):
    """CPU seconds the CPUs numbered `cpus` have been busy since boot, from /proc/stat's
    text: user, nice, system, irq, softirq and steal time (steal: what the hypervisor gave
    to other machines). None where no line for those CPUs is found."""
    wanted = set(cpus)
    total, found = 0, False
    for line in stat_text.splitlines():
        if not line.startswith("cpu"):
            if found:
                break
            continue
        name, *fields = line.split()
        if name == "cpu" or int(name[3:]) not in wanted:
            continue
        user, nice, system, _, _, irq, softirq, steal = (int(v) for v in (fields + ["0"] * 8)[:8])
        total += user + nice + system + irq + softirq + steal
        found = True
    return total / _TICKS_PER_SECOND if found else None


def free_cpus(cpus, wall, own, busy):
    """The CPUs other work leaves free, of `cpus`, over `wall` seconds in which they were
    busy for `busy` CPU seconds, `own` of them this process's: `cpus` less the others'
    load rounded to whole CPUs, at least 1."""
    others = max(0.0, busy - own) / wall if wall > 0 else 0.0
    return max(1, cpus - int(others + 0.5))


def _read_stat():
    with open("/proc/stat") as f:
        return f.read()


def _sample(now):
    global _free_cpus, _last_sample, _next_sample
    _next_sample = now + LOAD_SAMPLE_SECONDS
    try:
        cpus = sorted(os.sched_getaffinity(0))
        busy = busy_seconds(_read_stat(), cpus)
    except (AttributeError, OSError, ValueError):
        busy = None
    if busy is None:  # no counters here: no adapting
        _free_cpus, _last_sample = None, None
        return
    own = time.process_time()
    if _last_sample is not None:
        then, own_then, busy_then = _last_sample
        _free_cpus = free_cpus(len(cpus), now - then, own - own_then, busy - busy_then)
    _last_sample = (now, own, busy)


def adaptive_threads():
    """True where the kernels use only the CPUs other work leaves free (set_num_threads)."""
    return _adaptive


def threads_now():
    """The threads the next kernel call uses: get_num_threads(), or where the count adapts
    (set_num_threads' default) and other work keeps some of the process's CPUs busy,
    the CPUs it leaves free, at least one. The kernels ask this on every call; it looks
    at the load at most every LOAD_SAMPLE_SECONDS."""
    n = get_num_threads()
    if n == 1 or not _adaptive:
        return n
    now = time.monotonic()
    if now >= _next_sample:
        _sample(now)
    return n if _free_cpus is None else min(n, _free_cpus)
