"""Max and average pooling kernels on NHWC arrays, forward and backward.

Windows are (kh, kw) with strides (stride_h, stride_w) over an input padded by
pad_top/pad_left (the bottom/right padding only shows in the output size,
which the caller computed). The innermost loop runs over the contiguous
channel dimension, so the compiler vectorises it.

They trust their arguments: ``convnet.kernels`` has checked every shape, that
every window overlaps the input, and that the output is not empty.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int32_t
from libc.string cimport memcpy, memset


cdef inline void window_max(const floating* src, floating* best, Py_ssize_t C) noexcept nogil:
    # best = src where src > best or src is NaN: a select the compiler vectorises.
    cdef Py_ssize_t c
    cdef floating value
    for c in range(C):
        value = src[c]
        best[c] = value if (value > best[c] or value != value) else best[c]


cdef inline void window_argmax(const floating* src, int32_t position, floating* best,
                               int32_t* where, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t c
    cdef floating value
    cdef bint wins
    for c in range(C):
        value = src[c]
        wins = value > best[c] or value != value
        best[c] = value if wins else best[c]
        where[c] = position if wins else where[c]


def max_pool2d_forward(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                       floating[:, :, :, ::1] out,         # OUT (N, out_h, out_w, C)
                       int32_t[:, :, :, ::1] argmax,       # OUT like out: ih * W + iw; or None
                       int kh, int kw, int stride_h, int stride_w,
                       int pad_top, int pad_left, int num_threads):
    """Window maxima and, unless ``argmax`` is None, where they were, like
    PyTorch: the first maximum wins (strict ``>``), a NaN wins over any number,
    and the search starts from the window's first cell inside the input (so an
    all ``-inf`` window still routes its gradient somewhere defined)."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t image_row, n, oh, ow, h0, h1, w0, w1, ih, iw, c
    cdef bint track = argmax is not None
    cdef floating* best
    cdef int32_t* where
    for image_row in prange(N * out_h, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // out_h
        oh = image_row % out_h
        h0 = max(oh * stride_h - pad_top, 0)
        h1 = min(oh * stride_h - pad_top + kh, H)
        for ow in range(out_w):
            w0 = max(ow * stride_w - pad_left, 0)
            w1 = min(ow * stride_w - pad_left + kw, W)
            best = &out[n, oh, ow, 0]
            memcpy(best, &x[n, h0, w0, 0], C * sizeof(floating))
            if track:
                where = &argmax[n, oh, ow, 0]
                for c in range(C):
                    where[c] = h0 * W + w0
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    if ih == h0 and iw == w0:
                        continue
                    if track:
                        window_argmax(&x[n, ih, iw, 0], ih * W + iw, best, where, C)
                    else:
                        window_max(&x[n, ih, iw, 0], best, C)


def max_pool2d_backward(const floating[:, :, :, ::1] grad_out,   # IN  (N, out_h, out_w, C)
                        const int32_t[:, :, :, ::1] argmax,      # IN  from max_pool2d_forward
                        floating[:, :, :, ::1] grad_x,           # OUT (N, H, W, C), overwritten
                        int num_threads):
    """Route each output gradient to the input cell that won its window.

    Each iteration owns a whole image, so overlapping windows add into it
    in a fixed order: no race, and the same sum whatever the thread count.
    """
    cdef Py_ssize_t N = grad_x.shape[0], H = grad_x.shape[1]
    cdef Py_ssize_t W = grad_x.shape[2], C = grad_x.shape[3]
    cdef Py_ssize_t out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t n, oh, ow, c
    cdef floating* image
    cdef floating* dst
    for n in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        image = &grad_x[n, 0, 0, 0]
        memset(image, 0, H * W * C * sizeof(floating))
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(C):
                    dst = &image[argmax[n, oh, ow, c] * C + c]
                    dst[0] = dst[0] + grad_out[n, oh, ow, c]


cdef inline Py_ssize_t window_divisor(Py_ssize_t start_h, Py_ssize_t start_w,
                                      Py_ssize_t kh, Py_ssize_t kw,
                                      Py_ssize_t H, Py_ssize_t W,
                                      Py_ssize_t pad_bottom, Py_ssize_t pad_right,
                                      bint count_include_pad) noexcept nogil:
    """How many cells a window averages over, by PyTorch's rule: with
    ``count_include_pad`` the window clipped to the padded input, else the
    window clipped to the input itself."""
    cdef Py_ssize_t h0, h1, w0, w1
    if count_include_pad:
        h0 = start_h
        w0 = start_w
        h1 = min(start_h + kh, H + pad_bottom)
        w1 = min(start_w + kw, W + pad_right)
    else:
        h0 = max(start_h, 0)
        w0 = max(start_w, 0)
        h1 = min(start_h + kh, H)
        w1 = min(start_w + kw, W)
    return (h1 - h0) * (w1 - w0)


cdef enum:
    # Channels summed at a time by window_mean: 16 running sums fit in SSE2's registers.
    CHANNEL_CHUNK = 16


cdef inline void window_sum(const floating* image, Py_ssize_t W, Py_ssize_t C,
                            Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1,
                            Py_ssize_t first, Py_ssize_t width, floating divisor,
                            floating* mean) noexcept nogil:
    # mean[first:first+width] = the window's sum over those channels / divisor, summed in
    # a local array that the compiler keeps in registers when ``width`` is a constant.
    cdef floating total[CHANNEL_CHUNK]
    cdef Py_ssize_t ih, iw, c
    cdef const floating* cell
    for c in range(width):
        total[c] = 0
    for ih in range(h0, h1):
        for iw in range(w0, w1):
            cell = image + (ih * W + iw) * C + first
            for c in range(width):
                total[c] = total[c] + cell[c]
    for c in range(width):
        mean[first + c] = total[c] / divisor


cdef inline void window_mean(const floating* image, Py_ssize_t W, Py_ssize_t C,
                             Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1,
                             floating divisor, floating* mean) noexcept nogil:
    """mean[c] = sum of image[ih, iw, c] over the window / divisor, cells in row order."""
    cdef Py_ssize_t first = 0
    while first + CHANNEL_CHUNK <= C:
        window_sum(image, W, C, h0, h1, w0, w1, first, CHANNEL_CHUNK, divisor, mean)
        first += CHANNEL_CHUNK
    if first < C:
        window_sum(image, W, C, h0, h1, w0, w1, first, C - first, divisor, mean)


def avg_pool2d_forward(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                       floating[:, :, :, ::1] out,         # OUT (N, out_h, out_w, C)
                       int kh, int kw, int stride_h, int stride_w,
                       int pad_top, int pad_bottom, int pad_left, int pad_right,
                       bint count_include_pad, int num_threads):
    """Window means; padded cells count toward the divisor only with ``count_include_pad``."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t image_row, n, oh, ow, sh0, sw0, h0, h1, w0, w1
    cdef floating divisor
    for image_row in prange(N * out_h, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // out_h
        oh = image_row % out_h
        sh0 = oh * stride_h - pad_top
        h0 = max(sh0, 0)
        h1 = min(sh0 + kh, H)
        for ow in range(out_w):
            sw0 = ow * stride_w - pad_left
            w0 = max(sw0, 0)
            w1 = min(sw0 + kw, W)
            divisor = <floating>window_divisor(sh0, sw0, kh, kw, H, W,
                                               pad_bottom, pad_right, count_include_pad)
            window_mean(&x[n, 0, 0, 0], W, C, h0, h1, w0, w1, divisor, &out[n, oh, ow, 0])


def avg_pool2d_backward(const floating[:, :, :, ::1] grad_out,   # IN  (N, out_h, out_w, C)
                        floating[:, :, :, ::1] grad_x,           # OUT (N, H, W, C), overwritten
                        int kh, int kw, int stride_h, int stride_w,
                        int pad_top, int pad_bottom, int pad_left, int pad_right,
                        bint count_include_pad, int num_threads):
    """Spread each output gradient evenly over its window's input cells.
    One image per iteration, added in a fixed order (see max_pool2d_backward)."""
    cdef Py_ssize_t N = grad_x.shape[0], H = grad_x.shape[1]
    cdef Py_ssize_t W = grad_x.shape[2], C = grad_x.shape[3]
    cdef Py_ssize_t out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t n, oh, ow, sh0, sw0, h0, h1, w0, w1, ih, iw, c
    cdef floating divisor
    cdef floating* dst
    cdef const floating* src
    for n in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        memset(&grad_x[n, 0, 0, 0], 0, H * W * C * sizeof(floating))
        for oh in range(out_h):
            sh0 = oh * stride_h - pad_top
            h0 = max(sh0, 0)
            h1 = min(sh0 + kh, H)
            for ow in range(out_w):
                sw0 = ow * stride_w - pad_left
                w0 = max(sw0, 0)
                w1 = min(sw0 + kw, W)
                divisor = <floating>window_divisor(sh0, sw0, kh, kw, H, W,
                                                   pad_bottom, pad_right, count_include_pad)
                src = &grad_out[n, oh, ow, 0]
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dst = &grad_x[n, ih, iw, 0]
                        for c in range(C):
                            dst[c] = dst[c] + src[c] / divisor
