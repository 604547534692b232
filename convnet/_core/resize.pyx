"""Bilinear resizing of NHWC images, forward and its adjoint (the input gradient).

Each axis is resampled with two taps per output cell: output row ``oh`` reads input
rows ``row0[oh]`` and ``row1[oh]`` (the same row at a clamped edge) with weights
``1 - row_frac[oh]`` and ``row_frac[oh]``; columns likewise. ``convnet.kernels``
computes these tables (Keras' half-pixel rule) and has checked that every index lies
inside the input, so the kernels trust them. The innermost loops run over the
contiguous channel dimension, so the compiler vectorises them.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset


def resize_bilinear_forward(const floating[:, :, :, ::1] x,        # IN  (N, H, W, C)
                            floating[:, :, :, ::1] out,            # OUT (N, out_h, out_w, C)
                            const Py_ssize_t[::1] row0,            # IN  (out_h,)
                            const Py_ssize_t[::1] row1,            # IN  (out_h,)
                            const floating[::1] row_frac,          # IN  (out_h,)
                            const Py_ssize_t[::1] col0,            # IN  (out_w,)
                            const Py_ssize_t[::1] col1,            # IN  (out_w,)
                            const floating[::1] col_frac,          # IN  (out_w,)
                            int num_threads):
    """out[n, oh, ow] = h0 * (w0 * x[top, left] + w1 * x[top, right])
                      + h1 * (w0 * x[bottom, left] + w1 * x[bottom, right]),
    each row of each image by one iteration (PyTorch's order of the same operations)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t image_row, n, oh, ow, c
    cdef floating h0, h1, w0, w1
    cdef const floating* top
    cdef const floating* bottom
    cdef const floating* top_left
    cdef const floating* top_right
    cdef const floating* bottom_left
    cdef const floating* bottom_right
    cdef floating* dst
    for image_row in prange(N * out_h, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // out_h
        oh = image_row % out_h
        h1 = row_frac[oh]
        h0 = 1 - h1
        top = &x[n, row0[oh], 0, 0]
        bottom = &x[n, row1[oh], 0, 0]
        for ow in range(out_w):
            w1 = col_frac[ow]
            w0 = 1 - w1
            top_left = top + col0[ow] * C
            top_right = top + col1[ow] * C
            bottom_left = bottom + col0[ow] * C
            bottom_right = bottom + col1[ow] * C
            dst = &out[n, oh, ow, 0]
            for c in range(C):
                dst[c] = (h0 * (w0 * top_left[c] + w1 * top_right[c])
                          + h1 * (w0 * bottom_left[c] + w1 * bottom_right[c]))


def resize_bilinear_backward(const floating[:, :, :, ::1] grad_out,   # IN  (N, out_h, out_w, C)
                             floating[:, :, :, ::1] grad_x,           # OUT (N, H, W, C)
                             const Py_ssize_t[::1] row0,              # IN  (out_h,)
                             const Py_ssize_t[::1] row1,              # IN  (out_h,)
                             const floating[::1] row_frac,            # IN  (out_h,)
                             const Py_ssize_t[::1] first_row,         # IN  (H,)
                             const Py_ssize_t[::1] end_row,           # IN  (H,)
                             const Py_ssize_t[::1] col0,              # IN  (out_w,)
                             const Py_ssize_t[::1] col1,              # IN  (out_w,)
                             const floating[::1] col_frac,            # IN  (out_w,)
                             int num_threads):
    """The adjoint of resize_bilinear_forward: each input row gathers the output rows
    ``first_row[ih] <= oh < end_row[ih]`` that read it, in order, and spreads each along its
    columns. One iteration owns one row of one image, so no two threads write the same cell
    and the sums do not depend on the thread count."""
    cdef Py_ssize_t N = grad_x.shape[0], H = grad_x.shape[1]
    cdef Py_ssize_t W = grad_x.shape[2], C = grad_x.shape[3]
    cdef Py_ssize_t out_w = grad_out.shape[2]
    cdef Py_ssize_t image_row, n, ih, oh, ow, c
    cdef floating weight, left, right
    cdef const floating* src
    cdef floating* row
    cdef floating* dst0
    cdef floating* dst1
    for image_row in prange(N * H, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // H
        ih = image_row % H
        row = &grad_x[n, ih, 0, 0]
        memset(row, 0, W * C * sizeof(floating))
        for oh in range(first_row[ih], end_row[ih]):
            # At a clamped edge both taps read this row: both weights count.
            weight = 0
            if row0[oh] == ih:
                weight = weight + (1 - row_frac[oh])
            if row1[oh] == ih:
                weight = weight + row_frac[oh]
            for ow in range(out_w):
                right = weight * col_frac[ow]
                left = weight * (1 - col_frac[ow])
                src = &grad_out[n, oh, ow, 0]
                dst0 = row + col0[ow] * C
                dst1 = row + col1[ow] * C
                for c in range(C):
                    dst0[c] = dst0[c] + left * src[c]
                for c in range(C):
                    dst1[c] = dst1[c] + right * src[c]
