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


import os

# Honours OMP_NUM_THREADS, as libgomp reads it at start-up.
_num_threads = convnet_openmp_max_threads()


def _one_thread_after_fork():
    # libgomp's thread pool does not survive fork(): a child that opens a parallel region
    # with several threads waits forever for workers that no longer exist. One thread never
    # touches the pool. set_num_threads() in the child raises it again at the user's risk.
    global _num_threads
    _num_threads = 1


os.register_at_fork(after_in_child=_one_thread_after_fork)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(convnet_openmp_enabled())


def set_num_threads(n):
    """Set the number of OpenMP threads the convolution and pooling kernels use."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _num_threads = n if convnet_openmp_enabled() else 1


def get_num_threads():
    """The number of OpenMP threads the kernels use."""
    return _num_threads
