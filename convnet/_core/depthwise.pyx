"""Depthwise convolution on NHWC arrays, forward and backward, as direct loops.

Each input channel c has its own kh x kw filters, ``depth_multiplier`` (M) of them;
output channel c*M + m is channel c filtered by filter m, as Keras lays out its
(kh, kw, C, M) kernel. There is no matrix product worth calling: each output is a
sum of kh*kw products. So the loops run innermost over the contiguous channels,
and for M = 1 they sum CHANNEL_CHUNK channels at a time in running sums that the
compiler keeps in registers, loading each input and filter value once.

Results do not depend on the thread count: each output (and input gradient) is
summed by one iteration in a fixed order, and the kernel gradient goes into a fixed
number of partial sums over fixed ranges of output rows, which the caller adds in
order.

The kernels trust their arguments: ``convnet.kernels`` has checked every shape.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset


cdef enum:
    # Channels summed at a time for M = 1: 16 running sums fit in SSE2's registers.
    CHANNEL_CHUNK = 16


cdef inline Py_ssize_t first_inside(Py_ssize_t offset, Py_ssize_t step) noexcept nogil:
    # The least t >= 0 with offset + t * step >= 0.
    return 0 if offset >= 0 else (-offset + step - 1) // step


cdef inline Py_ssize_t end_inside(Py_ssize_t offset, Py_ssize_t step, Py_ssize_t length,
                                  Py_ssize_t limit) noexcept nogil:
    # One past the last t < limit with offset + t * step < length (at least 0).
    if offset >= length:
        return 0
    return min(limit, (length - 1 - offset) // step + 1)


cdef inline void window_sum(const floating* x_image, const floating* kernel,
                            Py_ssize_t W, Py_ssize_t C, Py_ssize_t kw,
                            Py_ssize_t ih0, Py_ssize_t iw0, Py_ssize_t dh, Py_ssize_t dw,
                            Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1,
                            Py_ssize_t first, Py_ssize_t width, const floating* bias,
                            floating* out) noexcept nogil:
    # out[first:first+width] = bias + the window's taps i0..i1 x j0..j1 over those channels
    # (M = 1), summed tap by tap in a local array the compiler keeps in registers when
    # ``width`` is a constant.
    cdef floating total[CHANNEL_CHUNK]
    cdef Py_ssize_t i, j, c
    cdef const floating* src
    cdef const floating* taps
    for c in range(width):
        total[c] = 0 if bias == NULL else bias[first + c]
    for i in range(i0, i1):
        for j in range(j0, j1):
            src = x_image + ((ih0 + i * dh) * W + iw0 + j * dw) * C + first
            taps = kernel + (i * kw + j) * C + first
            for c in range(width):
                total[c] = total[c] + src[c] * taps[c]
    for c in range(width):
        out[first + c] = total[c]


def depthwise_conv2d_forward(const floating[:, :, :, ::1] x,      # IN  (N, H, W, C)
                             const floating[:, :, ::1] kernel,    # IN  (kh, kw, C*M)
                             const floating[::1] bias,            # IN  (C*M,), or None
                             floating[:, :, :, ::1] out,          # OUT (N, out_h, out_w, C*M)
                             int stride_h, int stride_w, int dilation_h, int dilation_w,
                             int pad_top, int pad_left, int num_threads):
    """out[n, oh, ow, c*M + m] = bias[c*M + m] + sum over taps (i, j) of
    x[n, oh*sh - pad_top + i*dh, ow*sw - pad_left + j*dw, c] * kernel[i, j, c*M + m],
    the taps that fall outside the input skipped (zero padding). One output row per
    iteration."""
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t kh = kernel.shape[0], kw = kernel.shape[1], CM = kernel.shape[2]
    cdef Py_ssize_t M = CM // C
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t row, n, oh, ow, ih0, iw0, i0, i1, j0, j1, i, j, c, m, first
    cdef const floating* bias_ptr = NULL
    cdef const floating* x_image
    cdef const floating* src
    cdef const floating* taps
    cdef floating* dst
    cdef floating value
    if bias is not None:
        bias_ptr = &bias[0]
    for row in prange(out.shape[0] * out_h, nogil=True, schedule="static",
                      num_threads=num_threads):
        n = row // out_h
        oh = row % out_h
        x_image = &x[n, 0, 0, 0]
        ih0 = oh * stride_h - pad_top
        i0 = first_inside(ih0, dilation_h)
        i1 = end_inside(ih0, dilation_h, H, kh)
        for ow in range(out_w):
            iw0 = ow * stride_w - pad_left
            j0 = first_inside(iw0, dilation_w)
            j1 = end_inside(iw0, dilation_w, W, kw)
            dst = &out[n, oh, ow, 0]
            if M == 1:
                first = 0
                while first + CHANNEL_CHUNK <= C:
                    window_sum(x_image, &kernel[0, 0, 0], W, C, kw, ih0, iw0, dilation_h,
                               dilation_w, i0, i1, j0, j1, first, CHANNEL_CHUNK, bias_ptr, dst)
                    first = first + CHANNEL_CHUNK
                if first < C:
                    window_sum(x_image, &kernel[0, 0, 0], W, C, kw, ih0, iw0, dilation_h,
                               dilation_w, i0, i1, j0, j1, first, C - first, bias_ptr, dst)
                continue
            for c in range(CM):
                dst[c] = 0 if bias_ptr == NULL else bias_ptr[c]
            for i in range(i0, i1):
                for j in range(j0, j1):
                    src = x_image + ((ih0 + i * dilation_h) * W + iw0 + j * dilation_w) * C
                    taps = &kernel[i, j, 0]
                    for c in range(C):
                        value = src[c]
                        for m in range(M):
                            dst[c * M + m] = dst[c * M + m] + value * taps[c * M + m]


cdef void covering_taps(Py_ssize_t length, Py_ssize_t out_length, Py_ssize_t k,
                        Py_ssize_t stride, Py_ssize_t dilation, Py_ssize_t pad,
                        Py_ssize_t out_step, Py_ssize_t tap_step,
                        Py_ssize_t[:, :, ::1] taps, Py_ssize_t[::1] counts) noexcept nogil:
    # For each input cell along one axis, the taps i whose window covers it and that
    # window's output o (cell = o*stride - pad + i*dilation), in order of i, as the
    # offsets (o*out_step, i*tap_step) of the output gradient and the filter they pair.
    cdef Py_ssize_t cell, i, t, n
    for cell in range(length):
        n = 0
        for i in range(k):
            t = cell + pad - i * dilation
            if t < 0:
                break
            if t % stride == 0 and t // stride < out_length:
                taps[cell, n, 0] = t // stride * out_step
                taps[cell, n, 1] = i * tap_step
                n = n + 1
        counts[cell] = n


cdef inline void gather_sum(const floating* grad_image, const floating* kernel,
                            const Py_ssize_t* row_taps, Py_ssize_t row_count,
                            const Py_ssize_t* column_taps, Py_ssize_t column_count,
                            Py_ssize_t first, Py_ssize_t width, floating* out) noexcept nogil:
    # out[first:first+width] = sum over the covering taps, rows x columns, of the output
    # gradient times the filter at the paired offsets (M = 1), in registers as window_sum.
    cdef floating total[CHANNEL_CHUNK]
    cdef Py_ssize_t r, q, c
    cdef const floating* src_row
    cdef const floating* taps_row
    cdef const floating* src
    cdef const floating* taps
    for c in range(width):
        total[c] = 0
    for r in range(row_count):
        src_row = grad_image + row_taps[2 * r] + first
        taps_row = kernel + row_taps[2 * r + 1] + first
        for q in range(column_count):
            src = src_row + column_taps[2 * q]
            taps = taps_row + column_taps[2 * q + 1]
            for c in range(width):
                total[c] = total[c] + src[c] * taps[c]
    for c in range(width):
        out[first + c] = total[c]


def depthwise_conv2d_backward_input(const floating[:, :, :, ::1] grad_out,  # IN  (N, oh, ow, C*M)
                                    const floating[:, :, ::1] kernel,       # IN  (kh, kw, C*M)
                                    floating[:, :, :, ::1] grad_x,          # OUT (N, H, W, C)
                                    Py_ssize_t[:, :, ::1] row_taps,         # (H, kh, 2) scratch
                                    Py_ssize_t[::1] row_counts,             # (H,) scratch
                                    Py_ssize_t[:, :, ::1] column_taps,      # (W, kw, 2) scratch
                                    Py_ssize_t[::1] column_counts,          # (W,) scratch
                                    int stride_h, int stride_w, int dilation_h, int dilation_w,
                                    int pad_top, int pad_left, int num_threads):
    """grad_x[n, ih, iw, c] = sum over m and the taps whose window covers (ih, iw) of
    grad_out * kernel: each input cell gathers its own sum (no scatter, no race), one
    input row per iteration. Which taps cover a cell is worked out once per row and
    column, into the scratch tables, not per pixel."""
    cdef Py_ssize_t H = grad_x.shape[1], W = grad_x.shape[2], C = grad_x.shape[3]
    cdef Py_ssize_t kh = kernel.shape[0], kw = kernel.shape[1], CM = kernel.shape[2]
    cdef Py_ssize_t M = CM // C
    cdef Py_ssize_t out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t row, n, ih, iw, r, q, c, m, first
    cdef const floating* grad_image
    cdef const floating* src
    cdef const floating* taps
    cdef const Py_ssize_t* rows_covering
    cdef const Py_ssize_t* columns_covering
    cdef floating* dst
    cdef floating total
    with nogil:
        covering_taps(H, out_h, kh, stride_h, dilation_h, pad_top, out_w * CM, kw * CM,
                      row_taps, row_counts)
        covering_taps(W, out_w, kw, stride_w, dilation_w, pad_left, CM, CM, column_taps,
                      column_counts)
    for row in prange(grad_x.shape[0] * H, nogil=True, schedule="static",
                      num_threads=num_threads):
        n = row // H
        ih = row % H
        grad_image = &grad_out[n, 0, 0, 0]
        rows_covering = &row_taps[ih, 0, 0]
        for iw in range(W):
            columns_covering = &column_taps[iw, 0, 0]
            dst = &grad_x[n, ih, iw, 0]
            if M == 1:
                first = 0
                while first + CHANNEL_CHUNK <= C:
                    gather_sum(grad_image, &kernel[0, 0, 0], rows_covering, row_counts[ih],
                               columns_covering, column_counts[iw], first, CHANNEL_CHUNK, dst)
                    first = first + CHANNEL_CHUNK
                if first < C:
                    gather_sum(grad_image, &kernel[0, 0, 0], rows_covering, row_counts[ih],
                               columns_covering, column_counts[iw], first, C - first, dst)
                continue
            for c in range(C):
                dst[c] = 0
            for r in range(row_counts[ih]):
                for q in range(column_counts[iw]):
                    src = grad_image + rows_covering[2 * r] + columns_covering[2 * q]
                    taps = &kernel[0, 0, 0] + rows_covering[2 * r + 1] + columns_covering[2 * q + 1]
                    for c in range(C):
                        total = 0
                        for m in range(M):
                            total = total + src[c * M + m] * taps[c * M + m]
                        dst[c] = dst[c] + total


cdef inline void row_products(const floating* x_row, const floating* grad_row,
                              Py_ssize_t C, Py_ssize_t iw0, Py_ssize_t sw,
                              Py_ssize_t ow0, Py_ssize_t ow1, Py_ssize_t first,
                              Py_ssize_t width, floating* partial) noexcept nogil:
    # partial[first:first+width] += sum over ow in ow0..ow1 of x_row[iw0 + ow*sw] *
    # grad_row[ow] over those channels (M = 1), the sum kept in registers.
    cdef floating total[CHANNEL_CHUNK]
    cdef Py_ssize_t ow, c
    cdef const floating* src
    cdef const floating* grads
    for c in range(width):
        total[c] = 0
    for ow in range(ow0, ow1):
        src = x_row + (iw0 + ow * sw) * C + first
        grads = grad_row + ow * C + first
        for c in range(width):
            total[c] = total[c] + src[c] * grads[c]
    for c in range(width):
        partial[first + c] = partial[first + c] + total[c]


def depthwise_conv2d_backward_kernel(const floating[:, :, :, ::1] x,         # IN  (N, H, W, C)
                                     const floating[:, :, :, ::1] grad_out,  # IN  (N, oh, ow, C*M)
                                     floating[:, :, :, ::1] grad_partials,   # OUT (P, kh, kw, C*M)
                                     floating[:, ::1] bias_partials,         # OUT (P, C*M)
                                     int stride_h, int stride_w, int dilation_h,
                                     int dilation_w, int pad_top, int pad_left,
                                     int num_threads):
    """Kernel and bias gradients in P partial sums: partial p sums output rows
    p*R/P .. (p+1)*R/P - 1 (R = N*out_h, flat over images), row by row, tap by tap;
    the caller adds the partials in order."""
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t P = grad_partials.shape[0], kh = grad_partials.shape[1]
    cdef Py_ssize_t kw = grad_partials.shape[2], CM = grad_partials.shape[3]
    cdef Py_ssize_t M = CM // C
    cdef Py_ssize_t out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t rows = grad_out.shape[0] * out_h
    cdef Py_ssize_t p, row, n, oh, ow, ih, ih0, iw0, i, j, c, m, first, ow0, ow1
    cdef const floating* x_row
    cdef const floating* grad_row
    cdef const floating* src
    cdef const floating* grads
    cdef floating* partial
    cdef floating* bias_partial
    cdef floating value
    for p in prange(P, nogil=True, schedule="static", num_threads=min(num_threads, P)):
        partial = &grad_partials[p, 0, 0, 0]
        memset(partial, 0, kh * kw * CM * sizeof(floating))
        bias_partial = &bias_partials[p, 0]
        memset(bias_partial, 0, CM * sizeof(floating))
        for row in range(p * rows // P, (p + 1) * rows // P):
            n = row // out_h
            oh = row % out_h
            grad_row = &grad_out[n, oh, 0, 0]
            for ow in range(out_w):
                for c in range(CM):
                    bias_partial[c] = bias_partial[c] + grad_row[ow * CM + c]
            ih0 = oh * stride_h - pad_top
            for i in range(first_inside(ih0, dilation_h), end_inside(ih0, dilation_h, H, kh)):
                ih = ih0 + i * dilation_h
                x_row = &x[n, ih, 0, 0]
                for j in range(kw):
                    iw0 = j * dilation_w - pad_left
                    ow0 = first_inside(iw0, stride_w)
                    ow1 = end_inside(iw0, stride_w, W, out_w)
                    if M == 1:
                        first = 0
                        while first + CHANNEL_CHUNK <= C:
                            row_products(x_row, grad_row, C, iw0, stride_w, ow0, ow1, first,
                                         CHANNEL_CHUNK, partial + (i * kw + j) * CM)
                            first = first + CHANNEL_CHUNK
                        if first < C:
                            row_products(x_row, grad_row, C, iw0, stride_w, ow0, ow1, first,
                                         C - first, partial + (i * kw + j) * CM)
                        continue
                    for ow in range(ow0, ow1):
                        src = x_row + (iw0 + ow * stride_w) * C
                        grads = grad_row + ow * CM
                        for c in range(C):
                            value = src[c]
                            for m in range(M):
                                partial[(i * kw + j) * CM + c * M + m] = (
                                    partial[(i * kw + j) * CM + c * M + m]
                                    + value * grads[c * M + m])
