"""Layer normalization of the rows of a (rows, M) array, forward and backward.

Each row (one example's normalized values, contiguous) is normalized on its own: its mean
and variance in two passes over the row, summed in double precision, then
``(x - mean) * inv * gamma + beta`` with ``inv = 1 / sqrt(variance + epsilon)``. Rows are
shared among threads, so the outputs do not depend on the thread count. The weight
gradients are sums over rows: each of a fixed number of row blocks sums its own partial in
row order, and ``convnet.kernels`` adds the partials in order.

The kernels trust their arguments: ``convnet.kernels`` has checked every shape.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.string cimport memset


cdef enum:
    # Sums over a row are kept in this many running sums, added together at the end: a
    # chain of dependent additions would wait on each one, separate lanes proceed in
    # parallel (and the compiler vectorises them). A fixed order, whatever the threads.
    LANES = 8


cdef inline double row_sum(const floating* x, floating shift, bint squared,
                           Py_ssize_t M) noexcept nogil:
    """sum(x - shift), or sum((x - shift) ** 2), in double precision."""
    cdef double lanes[LANES]
    cdef double total = 0, value
    cdef Py_ssize_t block, i, j, full = M - M % LANES
    for j in range(LANES):
        lanes[j] = 0
    for block in range(M // LANES):
        i = block * LANES
        for j in range(LANES):
            value = x[i + j] - shift
            lanes[j] = lanes[j] + (value * value if squared else value)
    for i in range(full, M):
        value = x[i] - shift
        total = total + (value * value if squared else value)
    for j in range(LANES):
        total = total + lanes[j]
    return total


cdef inline void normalize_row(const floating* x, const floating* gamma, const floating* beta,
                               double epsilon, Py_ssize_t M, floating* out, floating* mean,
                               floating* inv) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating mu, scale
    mu = <floating>(row_sum(x, 0, False, M) / M)
    scale = <floating>(1 / sqrt(row_sum(x, mu, True, M) / M + epsilon))
    mean[0] = mu
    inv[0] = scale
    for i in range(M):
        out[i] = (x[i] - mu) * scale * gamma[i] + beta[i]


def layer_norm_forward(const floating[:, ::1] x,       # IN  (rows, M)
                       const floating[::1] gamma,      # IN  (M,): ones when the layer has none
                       const floating[::1] beta,       # IN  (M,): zeros when it has none
                       double epsilon,
                       floating[:, ::1] out,           # OUT (rows, M)
                       floating[::1] mean,             # OUT (rows,)
                       floating[::1] inv,              # OUT (rows,) 1 / sqrt(variance + eps)
                       int num_threads):
    cdef Py_ssize_t rows = x.shape[0], M = x.shape[1], r
    for r in prange(rows, nogil=True, schedule="static", num_threads=num_threads):
        normalize_row(&x[r, 0], &gamma[0], &beta[0], epsilon, M, &out[r, 0], &mean[r], &inv[r])


cdef inline void row_gradients(const floating* x, const floating* grad, const floating* gamma,
                               floating mu, floating scale, Py_ssize_t M,
                               floating* grad_gamma, floating* grad_beta,
                               floating* grad_x) noexcept nogil:
    """Adds the row's terms to the partial weight gradients and, unless grad_x is NULL,
    writes its input gradient: inv * (g - mean(g) - xhat * mean(g * xhat)), g = grad * gamma."""
    cdef Py_ssize_t block, i, j, full = M - M % LANES
    cdef double lanes_g[LANES]
    cdef double lanes_g_xhat[LANES]
    cdef double sum_g = 0, sum_g_xhat = 0
    cdef floating xhat, g, mean_g, mean_g_xhat
    # (the weight gradients in loops of their own, which the compiler vectorises)
    for i in range(M):
        grad_gamma[i] = grad_gamma[i] + grad[i] * ((x[i] - mu) * scale)
    for i in range(M):
        grad_beta[i] = grad_beta[i] + grad[i]
    if grad_x == NULL:
        return
    for j in range(LANES):
        lanes_g[j] = 0
        lanes_g_xhat[j] = 0
    for block in range(M // LANES):
        i = block * LANES
        for j in range(LANES):
            g = grad[i + j] * gamma[i + j]
            lanes_g[j] = lanes_g[j] + g
            lanes_g_xhat[j] = lanes_g_xhat[j] + g * ((x[i + j] - mu) * scale)
    for i in range(full, M):
        g = grad[i] * gamma[i]
        sum_g = sum_g + g
        sum_g_xhat = sum_g_xhat + g * ((x[i] - mu) * scale)
    for j in range(LANES):
        sum_g = sum_g + lanes_g[j]
        sum_g_xhat = sum_g_xhat + lanes_g_xhat[j]
    mean_g = <floating>(sum_g / M)
    mean_g_xhat = <floating>(sum_g_xhat / M)
    for i in range(M):
        xhat = (x[i] - mu) * scale
        grad_x[i] = scale * (grad[i] * gamma[i] - mean_g - xhat * mean_g_xhat)


def layer_norm_backward(const floating[:, ::1] x,          # IN  (rows, M)
                        const floating[:, ::1] grad_out,   # IN  (rows, M)
                        const floating[::1] gamma,         # IN  (M,)
                        const floating[::1] mean,          # IN  (rows,) from the forward pass
                        const floating[::1] inv,           # IN  (rows,) from the forward pass
                        floating[:, ::1] grad_x,           # OUT (rows, M), or None
                        floating[:, ::1] grad_gamma,       # OUT (blocks, M) partial sums
                        floating[:, ::1] grad_beta,        # OUT (blocks, M) partial sums
                        Py_ssize_t block_rows, int num_threads):
    """Block b owns rows [b * block_rows, (b + 1) * block_rows) and partial b."""
    cdef Py_ssize_t rows = x.shape[0], M = x.shape[1], blocks = grad_gamma.shape[0]
    cdef Py_ssize_t b, r, end
    cdef bint with_input = grad_x is not None
    cdef floating* row_grad_x
    for b in prange(blocks, nogil=True, schedule="static", num_threads=num_threads):
        memset(&grad_gamma[b, 0], 0, M * sizeof(floating))
        memset(&grad_beta[b, 0], 0, M * sizeof(floating))
        end = min((b + 1) * block_rows, rows)
        for r in range(b * block_rows, end):
            row_grad_x = &grad_x[r, 0] if with_input else NULL
            row_gradients(&x[r, 0], &grad_out[r, 0], &gamma[0], mean[r], inv[r], M,
                          &grad_gamma[b, 0], &grad_beta[b, 0], row_grad_x)
