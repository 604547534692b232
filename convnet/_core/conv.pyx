"""Convolution kernels on NHWC arrays: im2col and GEMM, one block of output pixels at a time.

A convolution is a matrix product: the receptive field of every output pixel
unfolded into a row of a column matrix (N*Ho*Wo, kh*kw*C), times the kernel
reshaped to (kh*kw*C, F), is the NHWC output. The columns are ordered
(kh, kw, C) to match a Keras kernel (kh, kw, C, F).

Each OpenMP thread unfolds a block of output pixels into its own row of the
caller's scratch buffer, a block small enough to stay in that core's cache,
and multiplies it at once with a single-threaded BLAS GEMM (scipy's
``cython_blas``, as scikit-learn does). There is one level of parallelism, so
OpenMP and BLAS threads never compete for the cores; ``convnet.kernels`` holds
BLAS to one thread around these calls.

A grouped convolution (Keras' ``groups``) unfolds each group's channels on its own
and multiplies them by that group's columns of the kernel, block by block. The
input gradient alone (``conv2d_backward_input``, also the forward pass of a
transposed convolution) multiplies the output gradient by the kernel's transpose
and folds the columns back (col2im), an image per iteration.

Results do not depend on the thread count: the blocks are fixed by
``block_rows``, and the kernel gradient is summed into a fixed number of
partial buffers, each over a fixed set of images in a fixed order.

The kernels trust their arguments: ``convnet.kernels`` has checked every shape,
and bounds checking is off.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove, memset

from convnet._core.blas cimport gemm


cdef enum:
    SHORT_COPY = 16  # floats


cdef struct Window:
    # The geometry of a convolution, as ``convnet.kernels.WindowGeometry`` resolved it.
    Py_ssize_t kh, kw, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left
    Py_ssize_t out_h, out_w


cdef Window make_window(int kh, int kw, int stride_h, int stride_w, int dilation_h,
                        int dilation_w, int pad_top, int pad_left, int out_h, int out_w):
    cdef Window w
    w.kh, w.kw, w.stride_h, w.stride_w = kh, kw, stride_h, stride_w
    w.dilation_h, w.dilation_w, w.pad_top, w.pad_left = dilation_h, dilation_w, pad_top, pad_left
    w.out_h, w.out_w = out_h, out_w
    return w


cdef bint is_pointwise(Window w, const floating[:, :, :, ::1] x) noexcept nogil:
    # A 1x1 window at stride 1 without padding: the input rows are already the columns.
    return (w.kh == 1 and w.kw == 1 and w.stride_h == 1 and w.stride_w == 1
            and w.pad_top == 0 and w.pad_left == 0 and w.out_h == x.shape[1]
            and w.out_w == x.shape[2])


cdef inline void copy_floats(floating* dst, const floating* src, Py_ssize_t count) noexcept nogil:
    # A few floats (a kernel row of a one- or three-channel image) by hand: a call to
    # memcpy costs more than the copy. Anything longer goes to memcpy.
    cdef Py_ssize_t i
    if count > SHORT_COPY:
        memcpy(dst, src, count * sizeof(floating))
    else:
        for i in range(count):
            dst[i] = src[i]


cdef inline void zero_floats(floating* dst, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    if count > SHORT_COPY:
        memset(dst, 0, count * sizeof(floating))
    else:
        for i in range(count):
            dst[i] = 0


cdef inline void pixel_at(Py_ssize_t index, Py_ssize_t* n, Py_ssize_t* oh, Py_ssize_t* ow,
                          Window w) noexcept nogil:
    # (n, oh, ow) of output pixel ``index``, flat over N, out_h, out_w.
    n[0] = index // (w.out_h * w.out_w)
    oh[0] = index // w.out_w % w.out_h
    ow[0] = index % w.out_w


cdef inline void next_pixel(Py_ssize_t* n, Py_ssize_t* oh, Py_ssize_t* ow,
                            Window w) noexcept nogil:
    # Step (n, oh, ow) to the next output pixel in NHWC order.
    ow[0] += 1
    if ow[0] == w.out_w:
        ow[0] = 0
        oh[0] += 1
        if oh[0] == w.out_h:
            oh[0] = 0
            n[0] += 1


cdef void unfold(const floating[:, :, :, ::1] x, floating* cols, Py_ssize_t first,
                 Py_ssize_t count, Window w, Py_ssize_t c0, Py_ssize_t cg) noexcept nogil:
    """im2col for output pixels first .. first+count-1 (flat over N, out_h, out_w), over
    channels c0 .. c0+cg-1 (one group of a grouped convolution, or all of them): each
    pixel's receptive field becomes a row of ``cols``; padding reads as zero.

    Walks the pixels in order (no division per pixel), and copies a kernel row that
    lies wholly inside the image in one piece: at dilation 1 over all channels its kw
    cells are adjacent."""
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t row_len = w.kw * cg  # floats of one kernel row in a column
    cdef Py_ssize_t n, oh, ow, pixel, i, j, ih, iw, ih0, iw0
    cdef bint whole_rows
    cdef floating* dst = cols
    pixel_at(first, &n, &oh, &ow, w)
    for pixel in range(count):
        ih0 = oh * w.stride_h - w.pad_top
        iw0 = ow * w.stride_w - w.pad_left
        whole_rows = cg == C and w.dilation_w == 1 and iw0 >= 0 and iw0 + w.kw <= W
        for i in range(w.kh):
            ih = ih0 + i * w.dilation_h
            if ih < 0 or ih >= H:
                zero_floats(dst, row_len)
            elif whole_rows:
                copy_floats(dst, &x[n, ih, iw0, 0], row_len)
            else:
                for j in range(w.kw):
                    iw = iw0 + j * w.dilation_w
                    if 0 <= iw < W:
                        copy_floats(dst + j * cg, &x[n, ih, iw, c0], cg)
                    else:
                        zero_floats(dst + j * cg, cg)
            dst = dst + row_len
        next_pixel(&n, &oh, &ow, w)


cdef void fold(const floating* cols, floating[:, :, :, ::1] x_grad, Py_ssize_t first,
               Py_ssize_t count, Window w, Py_ssize_t c0, Py_ssize_t cg) noexcept nogil:
    """col2im, the adjoint of ``unfold``: add each row of ``cols`` back onto the
    receptive field it came from, channels c0 .. c0+cg-1, pixel by pixel in order (so
    each input cell gets its sums in the same order, whole kernel rows or not). The
    caller owns the images."""
    cdef Py_ssize_t H = x_grad.shape[1], W = x_grad.shape[2], C = x_grad.shape[3]
    cdef Py_ssize_t row_len = w.kw * cg
    cdef Py_ssize_t n, oh, ow, pixel, i, j, ih, iw, ih0, iw0, c
    cdef bint whole_rows
    cdef const floating* src = cols
    cdef floating* dst
    pixel_at(first, &n, &oh, &ow, w)
    for pixel in range(count):
        ih0 = oh * w.stride_h - w.pad_top
        iw0 = ow * w.stride_w - w.pad_left
        whole_rows = cg == C and w.dilation_w == 1 and iw0 >= 0 and iw0 + w.kw <= W
        for i in range(w.kh):
            ih = ih0 + i * w.dilation_h
            if 0 <= ih < H:
                if whole_rows:
                    dst = &x_grad[n, ih, iw0, 0]
                    for c in range(row_len):
                        dst[c] = dst[c] + src[c]
                else:
                    for j in range(w.kw):
                        iw = iw0 + j * w.dilation_w
                        if 0 <= iw < W:
                            dst = &x_grad[n, ih, iw, c0]
                            for c in range(cg):
                                dst[c] = dst[c] + src[j * cg + c]
            src = src + row_len
        next_pixel(&n, &oh, &ow, w)


cdef inline void relu_mask(const floating* y, const floating* grad_y, Py_ssize_t size,
                           floating* grad_z) noexcept nogil:
    # grad_z = grad_y where the ReLU's output y > 0, else 0. Both loads are unconditional:
    # the compiler then turns this into a vector select.
    cdef Py_ssize_t i
    cdef floating g
    for i in range(size):
        g = grad_y[i]
        grad_z[i] = g if y[i] > 0 else 0


cdef inline void add_rows(const floating* rows, Py_ssize_t count, Py_ssize_t F,
                          floating* total) noexcept nogil:
    # total (F,) += the sum of ``count`` rows of F, in row order (vectorised over F).
    cdef Py_ssize_t r, f
    for r in range(count):
        for f in range(F):
            total[f] = total[f] + rows[r * F + f]


cdef bint all_finite(const floating* values, Py_ssize_t size) noexcept nogil:
    # No Inf and no NaN among the values (v - v is 0 for every finite v, NaN otherwise).
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(size):
        bad = bad | (values[i] - values[i] != 0)
    return bad == 0


cdef inline bint row_is_zero(const floating* row, Py_ssize_t F) noexcept nogil:
    # Every value 0 (NaN is not).
    cdef Py_ssize_t f
    cdef int nonzero = 0
    for f in range(F):
        nonzero = nonzero | (row[f] != 0)
    return nonzero == 0


cdef Py_ssize_t compact_rows(const floating[:, :, :, ::1] x, const floating* grads,
                             Py_ssize_t first, Py_ssize_t count, Py_ssize_t F, Window w,
                             floating* kept_grads, floating* cols, Py_ssize_t* runs) noexcept nogil:
    """Unfold only the output pixels whose gradient row is not all zero, and move
    their gradient rows, in order, to ``kept_grads`` (which may be ``grads`` itself: rows
    only move up). The runs of kept pixels go to ``runs`` as (start, length) pairs,
    ended by a length of 0 (at most count + 3 values: runs are at least a row apart);
    returns the number of kept rows."""
    cdef Py_ssize_t r = 0, start, kept = 0, n_runs = 0
    cdef Py_ssize_t K = w.kh * w.kw * x.shape[3]
    while r < count:
        if row_is_zero(grads + r * F, F):
            r = r + 1
            continue
        start = r
        r = r + 1
        while r < count and not row_is_zero(grads + r * F, F):
            r = r + 1
        if kept_grads != grads or kept != start:
            memmove(kept_grads + kept * F, grads + start * F, (r - start) * F * sizeof(floating))
        unfold(x, cols + kept * K, first + start, r - start, w, 0, x.shape[3])
        runs[2 * n_runs] = start
        runs[2 * n_runs + 1] = r - start
        n_runs = n_runs + 1
        kept = kept + r - start
    runs[2 * n_runs + 1] = 0
    return kept


cdef void fold_runs(const floating* cols, floating[:, :, :, ::1] x_grad, Py_ssize_t first,
                    const Py_ssize_t* runs, Window w) noexcept nogil:
    # col2im of the rows compact_rows kept: its runs, one after another in ``cols``.
    cdef Py_ssize_t K = w.kh * w.kw * x_grad.shape[3], r = 0
    while runs[2 * r + 1] > 0:
        fold(cols, x_grad, first + runs[2 * r], runs[2 * r + 1], w, 0, x_grad.shape[3])
        cols = cols + runs[2 * r + 1] * K
        r = r + 1


def conv2d_forward(const floating[:, :, :, ::1] x,        # IN  (N, H, W, C)
                   const floating[:, ::1] weights,        # IN  (kh*kw*C/groups, F)
                   const floating[::1] bias,              # IN  (F,), or None
                   floating[:, ::1] out,                  # OUT (N*out_h*out_w, F)
                   floating[:, ::1] scratch,              # (threads, block_rows*kh*kw*C/groups)
                   int kh, int kw, int stride_h, int stride_w, int dilation_h, int dilation_w,
                   int pad_top, int pad_left, int out_h, int out_w,
                   int groups, int block_rows, bint relu, int num_threads):
    """out = x (*) weights + bias, then max(out, 0) when ``relu``, a block at a time
    so the bias and ReLU touch each block while it is still in cache.

    With ``groups`` > 1, group g's channels C/groups*g .. are unfolded on their own and
    multiplied by the columns F/groups*g .. of ``weights``, into those columns of ``out``."""
    cdef Window w = make_window(kh, kw, stride_h, stride_w, dilation_h, dilation_w,
                                pad_top, pad_left, out_h, out_w)
    cdef Py_ssize_t rows = out.shape[0], K = weights.shape[0], F = weights.shape[1]
    cdef Py_ssize_t C = x.shape[3], group_channels = C // groups, group_filters = F // groups
    cdef Py_ssize_t n_blocks = (rows + block_rows - 1) // block_rows
    cdef Py_ssize_t block, first, count, r, i, g, lda
    cdef bint pointwise = is_pointwise(w, x)
    cdef const floating* bias_ptr = NULL
    cdef const floating* rows_in
    cdef floating* cols = NULL  # each thread points it at its own scratch row
    cdef floating* dst
    cdef floating beta = 0
    if bias is not None:
        bias_ptr = &bias[0]
        beta = 1
    with nogil, parallel(num_threads=min(num_threads, n_blocks)):
        cols = &scratch[threadid(), 0]
        for block in prange(n_blocks, schedule="static"):
            first = block * block_rows
            count = min(<Py_ssize_t> block_rows, rows - first)
            dst = &out[first, 0]
            if bias_ptr != NULL:
                for r in range(count):
                    memcpy(dst + r * F, bias_ptr, F * sizeof(floating))
            for g in range(groups):
                if pointwise:
                    rows_in = &x[0, 0, 0, 0] + first * C + g * group_channels
                    lda = C
                else:
                    unfold(x, cols, first, count, w, g * group_channels, group_channels)
                    rows_in = cols
                    lda = K
                gemm(False, False, count, group_filters, K, rows_in, lda,
                     &weights[0, 0] + g * group_filters, F, beta, dst + g * group_filters, F)
            if relu:
                for i in range(count * F):
                    # An unconditional store vectorises; NaN stays NaN, as in PyTorch.
                    dst[i] = 0 if dst[i] < 0 else dst[i]


def conv2d_backward(const floating[:, :, :, ::1] x,        # IN  (N, H, W, C)
                    const floating[:, ::1] weights,        # IN  (kh*kw*C/groups, F)
                    const floating[:, ::1] grad_out,       # IN  (N*out_h*out_w, F)
                    const floating[:, ::1] relu_out,       # IN  like grad_out, or None
                    floating[:, :, ::1] grad_partials,     # OUT (P, kh*kw*C/groups, F), P <= N
                    floating[:, ::1] bias_partials,        # OUT (P, F)
                    floating[:, :, :, ::1] grad_x,         # OUT (N, H, W, C), or None
                    floating[:, ::1] scratch,              # (threads, block_rows*(kh*kw*C/groups+F))
                    int kh, int kw, int stride_h, int stride_w, int dilation_h, int dilation_w,
                    int pad_top, int pad_left, int out_h, int out_w,
                    int groups, int block_rows, int num_threads):
    """Kernel and bias gradients in P partial sums (the caller adds them in
    order) and, unless ``grad_x`` is None, the input gradient.

    With ``relu_out``, the output of a forward pass with the ReLU fused, ``grad_out``
    is the gradient of that output: each block of it goes through the ReLU's
    derivative into the thread's scratch row, behind the columns, while in cache.

    Partial p sums images p, p+P, p+2P, ... in that order, block by block, and
    the iteration that owns an image is the only one to write its input
    gradient: no race, and the same sums at any thread count. Groups own disjoint
    channels and columns of the partials, so their order does not matter.

    Output pixels whose gradient is 0 in every channel add nothing to either gradient,
    and both products skip them (one group, an unfolded window): after a 2x2 max-pool
    of an odd-sized map its last row and column, pixels the ReLU zeroed in every filter.
    Only where the image and the kernel are finite: 0 * Inf is NaN, which the skipped
    products would not have made.
    """
    cdef Window w = make_window(kh, kw, stride_h, stride_w, dilation_h, dilation_w,
                                pad_top, pad_left, out_h, out_w)
    cdef Py_ssize_t N = x.shape[0], K = weights.shape[0], F = weights.shape[1]
    cdef Py_ssize_t C = x.shape[3], group_channels = C // groups, group_filters = F // groups
    cdef Py_ssize_t P = grad_partials.shape[0], pixels = <Py_ssize_t> out_h * out_w
    cdef Py_ssize_t image_size = x.shape[1] * x.shape[2] * x.shape[3]
    cdef Py_ssize_t p, group, n, block, first, count, g, lda, offset, kept
    cdef bint input_grad = grad_x is not None
    cdef bint pointwise = is_pointwise(w, x)
    cdef bint relu = relu_out is not None
    cdef bint skip_zero_rows = (groups == 1 and not pointwise
                                and all_finite(&weights[0, 0], K * F))
    cdef bint image_finite = False
    cdef const floating* rows_in
    cdef const floating* grads  # this block's output gradient, after the ReLU's derivative
    cdef floating* cols = NULL  # each thread points it at its own scratch row,
    cdef floating* relu_grads = NULL  # and this at the rest of that row
    cdef Py_ssize_t* runs = NULL  # and this at its (start, length) runs of kept rows
    cdef floating* partial
    cdef floating* bias_partial
    with nogil, parallel(num_threads=min(num_threads, P)):
        cols = &scratch[threadid(), 0]
        relu_grads = cols + block_rows * K
        runs = NULL
        if skip_zero_rows:  # without it (out of memory) every row is multiplied
            runs = <Py_ssize_t*> malloc((2 * block_rows + 2) * sizeof(Py_ssize_t))
        for p in prange(P, schedule="static"):
            partial = &grad_partials[p, 0, 0]
            memset(partial, 0, K * F * sizeof(floating))
            bias_partial = &bias_partials[p, 0]
            memset(bias_partial, 0, F * sizeof(floating))
            for group in range((N - p + P - 1) // P):
                n = p + group * P
                if input_grad:
                    memset(&grad_x[n, 0, 0, 0], 0, image_size * sizeof(floating))
                image_finite = runs != NULL and all_finite(&x[n, 0, 0, 0], image_size)
                for block in range((pixels + block_rows - 1) // block_rows):
                    first = n * pixels + block * block_rows
                    count = min(<Py_ssize_t> block_rows, (n + 1) * pixels - first)
                    grads = &grad_out[first, 0]
                    if relu:
                        relu_mask(&relu_out[first, 0], grads, count * F, relu_grads)
                        grads = relu_grads
                    kept = count
                    if image_finite:  # only the rows with a gradient, already unfolded
                        kept = compact_rows(x, grads, first, count, F, w, relu_grads, cols,
                                            runs)
                        grads = relu_grads
                    add_rows(grads, kept, F, bias_partial)
                    for g in range(groups):
                        offset = g * group_filters
                        if pointwise:
                            rows_in = &x[0, 0, 0, 0] + first * C + g * group_channels
                            lda = C
                        else:
                            if not image_finite:
                                unfold(x, cols, first, count, w, g * group_channels,
                                       group_channels)
                            rows_in = cols
                            lda = K
                        # partial (K, F/groups) += columns^T (K, kept) @ gradient (kept, F/groups)
                        gemm(True, False, K, group_filters, kept, rows_in, lda, grads + offset, F,
                             1, partial + offset, F)
                        if input_grad and pointwise:
                            gemm(False, True, count, K, group_filters, grads + offset, F,
                                 &weights[0, 0] + offset, F, 0,
                                 &grad_x[0, 0, 0, 0] + first * C + g * group_channels, C)
                        elif input_grad:
                            # The columns are spent: their buffer takes the column gradient,
                            # gradient block (kept, F/groups) @ weights^T, folded back.
                            gemm(False, True, kept, K, group_filters, grads + offset, F,
                                 &weights[0, 0] + offset, F, 0, cols, K)
                            if image_finite:
                                fold_runs(cols, grad_x, first, runs, w)
                            else:
                                fold(cols, grad_x, first, count, w, g * group_channels,
                                     group_channels)
        free(runs)


def conv2d_backward_input(const floating[:, ::1] grad_out,   # IN  (N*out_h*out_w, F)
                          const floating[:, ::1] weights,    # IN  (kh*kw*C/groups, F)
                          const floating[::1] bias,          # IN  (C,), or None
                          floating[:, :, :, ::1] grad_x,     # OUT (N, H, W, C)
                          floating[:, ::1] scratch,          # (threads, block_rows*kh*kw*C/groups)
                          int kh, int kw, int stride_h, int stride_w, int dilation_h,
                          int dilation_w, int pad_top, int pad_left, int out_h, int out_w,
                          int groups, int block_rows, bint relu, int num_threads):
    """The input gradient of a convolution alone, with no kernel gradient: the forward
    pass of a transposed convolution, which then adds ``bias`` and takes max(., 0) when
    ``relu``, an image at a time while it is in cache.

    Each iteration owns whole images and folds their blocks in order: no race, and the
    same sums at any thread count."""
    cdef Window w = make_window(kh, kw, stride_h, stride_w, dilation_h, dilation_w,
                                pad_top, pad_left, out_h, out_w)
    cdef Py_ssize_t N = grad_x.shape[0], K = weights.shape[0], F = weights.shape[1]
    cdef Py_ssize_t C = grad_x.shape[3], group_channels = C // groups
    cdef Py_ssize_t group_filters = F // groups
    cdef Py_ssize_t image_size = grad_x.shape[1] * grad_x.shape[2] * C
    cdef Py_ssize_t pixels = <Py_ssize_t> out_h * out_w
    cdef Py_ssize_t n, block, first, count, g, i, c, offset
    cdef bint pointwise = is_pointwise(w, grad_x)
    cdef const floating* bias_ptr = NULL
    cdef floating* cols = NULL
    cdef floating* image
    if bias is not None:
        bias_ptr = &bias[0]
    with nogil, parallel(num_threads=min(num_threads, N)):
        cols = &scratch[threadid(), 0]
        for n in prange(N, schedule="static"):
            image = &grad_x[n, 0, 0, 0]
            if not pointwise:
                memset(image, 0, image_size * sizeof(floating))
            for block in range((pixels + block_rows - 1) // block_rows):
                first = n * pixels + block * block_rows
                count = min(<Py_ssize_t> block_rows, (n + 1) * pixels - first)
                for g in range(groups):
                    offset = g * group_filters
                    if pointwise:
                        gemm(False, True, count, K, group_filters, &grad_out[first, 0] + offset, F,
                             &weights[0, 0] + offset, F, 0,
                             &grad_x[0, 0, 0, 0] + first * C + g * group_channels, C)
                    else:
                        gemm(False, True, count, K, group_filters, &grad_out[first, 0] + offset, F,
                             &weights[0, 0] + offset, F, 0, cols, K)
                        fold(cols, grad_x, first, count, w, g * group_channels, group_channels)
            if bias_ptr != NULL:
                for i in range(image_size // C):
                    for c in range(C):
                        image[i * C + c] = image[i * C + c] + bias_ptr[c]
            if relu:
                for i in range(image_size):
                    image[i] = 0 if image[i] < 0 else image[i]


def relu_backward(const floating[::1] y,       # IN  output of the fused ReLU (flat)
                  const floating[::1] grad_y,  # IN  its gradient (flat)
                  floating[::1] grad_z,        # OUT gradient before the ReLU: grad_y where y > 0
                  int num_threads):
    """The derivative of a plain ReLU, from its output, in one vectorised pass (where no
    kernel's backward pass applies it, as ``conv2d_backward`` does with ``relu_out``)."""
    cdef Py_ssize_t size = y.shape[0], chunk = 1 << 14
    cdef Py_ssize_t block, first
    cdef Py_ssize_t n_chunks = (size + chunk - 1) // chunk
    for block in prange(n_chunks, nogil=True, schedule="static",
                        num_threads=min(num_threads, n_chunks)):
        first = block * chunk
        relu_mask(&y[first], &grad_y[first], min(chunk, size - first), &grad_z[first])
