"""Convolution kernels on NHWC arrays: im2col and col2im.

The arithmetic of a convolution is one matrix product done by BLAS in
``convnet.ops``; these kernels only move memory between the image layout
(N, H, W, C) and the column layout (N*Ho*Wo, kh*kw*C), whose columns are
ordered (kh, kw, C) to match a Keras kernel (kh, kw, C, F) reshaped to
(kh*kw*C, F).

They trust their arguments: ``convnet.ops`` has checked every shape, and
bounds checking is off.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset


def im2col(const floating[:, :, :, ::1] x,    # IN  (N, H, W, C)
           floating[:, ::1] cols,             # OUT (N*out_h*out_w, kh*kw*C)
           int kh, int kw, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int pad_top, int pad_left, int out_h, int out_w, int num_threads):
    """Unfold every receptive field of ``x`` into a row of ``cols``; padding reads as zero."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t image_row, n, oh, ow, i, j, ih, iw, c
    cdef const floating* src
    cdef floating* dst
    # One output row (n, oh) per iteration: every iteration writes its own rows of cols.
    for image_row in prange(N * out_h, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // out_h
        oh = image_row % out_h
        for ow in range(out_w):
            dst = &cols[image_row * out_w + ow, 0]
            for i in range(kh):
                ih = oh * stride_h - pad_top + i * dilation_h
                for j in range(kw):
                    iw = ow * stride_w - pad_left + j * dilation_w
                    if 0 <= ih < H and 0 <= iw < W:
                        src = &x[n, ih, iw, 0]
                        for c in range(C):
                            dst[c] = src[c]
                    else:
                        memset(dst, 0, C * sizeof(floating))
                    dst = dst + C


def col2im(const floating[:, ::1] cols,       # IN  (N*out_h*out_w, kh*kw*C)
           floating[:, :, :, ::1] x_grad,     # OUT (N, H, W, C), overwritten
           int kh, int kw, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int pad_top, int pad_left, int out_h, int out_w, int num_threads):
    """Fold ``cols`` back onto the image, summing the rows that share a pixel.

    Each iteration owns one input row (n, ih) and gathers into it in a fixed
    (i, ow, j) order, so there is no race and the sum does not depend on the
    number of threads.
    """
    cdef Py_ssize_t N = x_grad.shape[0], H = x_grad.shape[1]
    cdef Py_ssize_t W = x_grad.shape[2], C = x_grad.shape[3]
    cdef Py_ssize_t image_row, n, ih, i, t, oh, ow, j, iw, c
    cdef const floating* src
    cdef floating* dst
    for image_row in prange(N * H, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // H
        ih = image_row % H
        memset(&x_grad[n, ih, 0, 0], 0, W * C * sizeof(floating))
        for i in range(kh):
            # The output row oh whose kernel row i lands on input row ih, if any.
            t = ih + pad_top - i * dilation_h
            if t < 0 or t % stride_h != 0 or t // stride_h >= out_h:
                continue
            oh = t // stride_h
            for ow in range(out_w):
                src = &cols[(n * out_h + oh) * out_w + ow, i * kw * C]
                for j in range(kw):
                    iw = ow * stride_w - pad_left + j * dilation_w
                    if 0 <= iw < W:
                        dst = &x_grad[n, ih, iw, 0]
                        for c in range(C):
                            dst[c] = dst[c] + src[c]
                    src = src + C
