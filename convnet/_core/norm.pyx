"""Per-channel statistics and affine passes over (rows, C) arrays: batch normalisation.

An NHWC batch is a (N*H*W, C) matrix whose rows are contiguous channel vectors, so
every loop here runs innermost over the channels and vectorises. The rows are cut
into fixed blocks (``block_rows``, a function of the shapes alone); a reduction
first reduces each block on its own, in parallel, into the caller's per-block
buffers, then merges the blocks one after another in block order, in double
precision. The result is the same bit for bit at any thread count.

The kernels trust their arguments: ``convnet.kernels`` has checked every shape.
"""
from cython cimport floating
from cython.parallel cimport prange


def channel_moments(const floating[:, ::1] x,      # IN  (R, C)
                    double[:, ::1] block_mean,     # OUT (B, C) the mean of each block of rows
                    double[:, ::1] block_m2,       # OUT (B, C) its sum of squared deviations
                    floating[::1] mean,            # OUT (C,)
                    floating[::1] variance,        # OUT (C,) biased: sum of squares / R
                    floating[:, ::1] scratch,      # (B, 3*C) per-block sums and shifts
                    int block_rows, int num_threads):
    """Mean and biased variance of each column of ``x``.

    Each block of rows, still in cache, is read twice: first for its rough mean s (a sum
    in the data's type), then for the sums of d = x - s and of d*d. Its exact mean is
    s + sum(d)/n and its sum of squared deviations sum(d*d) - sum(d)^2/n, whatever the
    error in s; as s is close to the mean, d is small and nothing cancels (unlike
    E[x^2] - E[x]^2). The rows are read whole, in order (the sums sit in the scratch
    row, in L1), and the blocks are then merged in order with Chan et al.'s formula."""
    cdef Py_ssize_t R = x.shape[0], C = x.shape[1], B = block_mean.shape[0]
    cdef Py_ssize_t block, first, count, r, c
    cdef floating* shift
    cdef floating* total
    cdef floating* squares
    cdef floating deviation
    cdef double seen, delta, merged_mean, merged_m2, weight
    for block in prange(B, nogil=True, schedule="static", num_threads=min(num_threads, B)):
        first = block * block_rows
        count = min(<Py_ssize_t> block_rows, R - first)
        shift = &scratch[block, 0]
        total = shift + C
        squares = total + C
        for c in range(C):
            total[c] = 0
        for r in range(first, first + count):
            for c in range(C):
                total[c] = total[c] + x[r, c]
        for c in range(C):
            shift[c] = total[c] / count
            total[c] = 0
            squares[c] = 0
        for r in range(first, first + count):
            for c in range(C):
                deviation = x[r, c] - shift[c]
                total[c] = total[c] + deviation
                squares[c] = squares[c] + deviation * deviation
        for c in range(C):
            block_mean[block, c] = shift[c] + <double> total[c] / count
            block_m2[block, c] = squares[c] - <double> total[c] * total[c] / count
    with nogil:
        for c in range(C):
            merged_mean = block_mean[0, c]
            merged_m2 = block_m2[0, c]
            seen = min(<Py_ssize_t> block_rows, R)
            for block in range(1, B):
                count = min(<Py_ssize_t> block_rows, R - block * block_rows)
                weight = count / (seen + count)
                delta = block_mean[block, c] - merged_mean
                merged_mean = merged_mean + delta * weight
                merged_m2 = merged_m2 + block_m2[block, c] + delta * delta * seen * weight
                seen = seen + count
            mean[c] = <floating> merged_mean
            variance[c] = <floating> (max(merged_m2, 0.0) / R)


def channel_affine(const floating[:, ::1] x,      # IN  (R, C)
                   const floating[::1] scale,     # IN  (C,)
                   const floating[::1] shift,     # IN  (C,)
                   floating[:, ::1] out,          # OUT (R, C) = x * scale + shift
                   bint relu, int block_rows, int num_threads):
    """out = x * scale + shift per column, then max(out, 0) when ``relu`` (NaN stays NaN)."""
    cdef Py_ssize_t R = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t B = (R + block_rows - 1) // block_rows
    cdef Py_ssize_t block, first, r, c
    cdef floating value
    for block in prange(B, nogil=True, schedule="static", num_threads=min(num_threads, B)):
        first = block * block_rows
        for r in range(first, min(first + block_rows, R)):
            for c in range(C):
                value = x[r, c] * scale[c] + shift[c]
                if relu:
                    value = 0 if value < 0 else value
                out[r, c] = value


def channel_gradient_sums(const floating[:, ::1] grad,       # IN  (R, C)
                          const floating[:, ::1] relu_out,   # IN  (R, C) or None
                          const floating[:, ::1] x,          # IN  (R, C) or None
                          const floating[::1] center,        # IN  (C,) with x
                          double[:, :, ::1] block_sums,      # OUT (B, 2, C)
                          double[::1] grad_sum,              # OUT (C,) sum of grad
                          double[::1] grad_x_sum,            # OUT (C,) sum of grad*(x-center)
                          floating[:, ::1] scratch,          # (B, 2*C)
                          int block_rows, int num_threads):
    """Column sums of ``grad`` and, unless ``x`` is None, of grad * (x - center): what
    the gradients of the shift and scale of a per-channel affine map need.

    With ``relu_out``, the output of a pass with the ReLU fused, ``grad`` is the
    gradient of that output and goes through the ReLU's derivative first. Each block of
    rows is summed on its own, then the blocks are added in order, in double precision."""
    cdef Py_ssize_t R = grad.shape[0], C = grad.shape[1], B = block_sums.shape[0]
    cdef Py_ssize_t block, first, r, c
    cdef bint relu = relu_out is not None, with_x = x is not None
    cdef floating* g_total
    cdef floating* gx_total
    cdef floating g
    for block in prange(B, nogil=True, schedule="static", num_threads=min(num_threads, B)):
        first = block * block_rows
        g_total = &scratch[block, 0]
        gx_total = g_total + C
        for c in range(2 * C):
            g_total[c] = 0
        for r in range(first, min(first + block_rows, R)):
            for c in range(C):
                g = grad[r, c]
                if relu:
                    g = g if relu_out[r, c] > 0 else 0
                g_total[c] = g_total[c] + g
                if with_x:
                    gx_total[c] = gx_total[c] + g * (x[r, c] - center[c])
        for c in range(C):
            block_sums[block, 0, c] = g_total[c]
            block_sums[block, 1, c] = gx_total[c]
    with nogil:
        for c in range(C):
            grad_sum[c] = 0
            grad_x_sum[c] = 0
        for block in range(B):
            for c in range(C):
                grad_sum[c] = grad_sum[c] + block_sums[block, 0, c]
                grad_x_sum[c] = grad_x_sum[c] + block_sums[block, 1, c]


def channel_affine_gradient(const floating[:, ::1] grad,       # IN  (R, C)
                            const floating[:, ::1] relu_out,   # IN  (R, C) or None
                            const floating[:, ::1] x,          # IN  (R, C) or None
                            const floating[::1] center,        # IN  (C,) with x
                            const floating[::1] grad_scale,    # IN  (C,) a
                            const floating[::1] x_scale,       # IN  (C,) b, with x
                            const floating[::1] offset,        # IN  (C,) d
                            floating[:, ::1] grad_x,           # OUT (R, C)
                            int block_rows, int num_threads):
    """grad_x = a * grad + b * (x - center) + d per column (the b term only with ``x``):
    the input gradient of batch normalisation, whose per-channel coefficients come
    from ``channel_gradient_sums``. ``relu_out`` as there."""
    cdef Py_ssize_t R = grad.shape[0], C = grad.shape[1]
    cdef Py_ssize_t B = (R + block_rows - 1) // block_rows
    cdef Py_ssize_t block, first, r, c
    cdef bint relu = relu_out is not None, with_x = x is not None
    cdef floating g, value
    for block in prange(B, nogil=True, schedule="static", num_threads=min(num_threads, B)):
        first = block * block_rows
        for r in range(first, min(first + block_rows, R)):
            for c in range(C):
                g = grad[r, c]
                if relu:
                    g = g if relu_out[r, c] > 0 else 0
                value = grad_scale[c] * g + offset[c]
                if with_x:
                    value = value + x_scale[c] * (x[r, c] - center[c])
                grad_x[r, c] = value
