"""Direct convolution of single-channel NHWC images (in_channels = 1), forward and kernel
gradient.

With one input channel im2col's product has an inner dimension of kh * kw (9 for a 3x3
kernel): BLAS packs both operands for every block and runs far from its peak (W8's first
layer: about 11 GFLOP/s forward, 7 backward, against 35 for the 3x3 convolutions after
it). Here each output pixel sums its taps directly, 32 filters at a time (then 16, then
one at a time) in vector registers:

    out[n, i, j, f] = bias[f] + sum over p < kh, q < kw of x[n, ih, iw] * kernel[p, q, f]
    (ih = i * stride_h - pad_top + p * dilation_h, iw likewise; taps outside the image skipped)

and the kernel gradient sums x[n, ih, iw] * grad[n, i, j, f] over the pixels, tap by tap
along each output row, again 32 or 16 filters at a time in vector registers.

Results do not depend on the thread count: a pixel's sum runs over its taps in order,
and the kernel gradient is summed into a fixed number of partial buffers, partial p
over images p, p + P, ..., each in order (the caller adds them in order).

The kernels trust their arguments: ``convnet.kernels`` has checked every shape, and
bounds checking is off.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memset


cdef extern from *:
    """
    #include <string.h>
    /* The inner loops, in C. 32 or 16 filters at a time are summed in vector registers: GCC's
       and Clang's vector extensions (SSE on x86-64, NEON on ARM), plain loops elsewhere.
       Left to itself GCC unrolls a 16-lane loop of local accumulators completely and
       then keeps every lane in scalar code (3x slower). */
    #if defined(__GNUC__)
    typedef float convnet_vf __attribute__((vector_size(16)));
    typedef double convnet_vd __attribute__((vector_size(16)));
    #define CONVNET_VECTOR_IO(T, S, V) \
    static inline V convnet_load_##S(const T* p) { V v; memcpy(&v, p, sizeof v); return v; } \
    static inline void convnet_store_##S(T* p, V v) { memcpy(p, &v, sizeof v); }
    CONVNET_VECTOR_IO(float, f, convnet_vf)
    CONVNET_VECTOR_IO(double, d, convnet_vd)
    #define CONVNET_DIRECT_LOOPS(T, S, V, L) \
    enum { convnet_width_##S##L = sizeof(V) / sizeof(T), \
           convnet_vectors_##S##L = L / (sizeof(V) / sizeof(T)) }; \
    /* out[0:L] = start[0:L] (or 0) + sum over the taps inside the image, in order */ \
    static inline void convnet_pixel_##S##L(T* out, const T* start, const T* image, \
                                         const T* kernel, Py_ssize_t F, const Py_ssize_t* at, \
                                         const Py_ssize_t* tap, Py_ssize_t taps) { \
        V acc[convnet_vectors_##S##L]; \
        Py_ssize_t u, t; \
        for (u = 0; u < convnet_vectors_##S##L; u++) \
            acc[u] = start ? convnet_load_##S(start + u * convnet_width_##S##L) : (V){0}; \
        for (t = 0; t < taps; t++) { \
            T v = image[at[t]]; \
            const T* w = kernel + tap[t] * F; \
            for (u = 0; u < convnet_vectors_##S##L; u++) \
                acc[u] += v * convnet_load_##S(w + u * convnet_width_##S##L); \
        } \
        for (u = 0; u < convnet_vectors_##S##L; u++) \
            convnet_store_##S(out + u * convnet_width_##S##L, acc[u]); \
    } \
    /* acc[0:L] += sum over j0 <= j < j1, in order, of x[j * stride] * g[j * F + 0:L] */ \
    static inline void convnet_tap_sum_##S##L(T* acc_out, const T* x, Py_ssize_t stride, \
                                           const T* g, Py_ssize_t F, Py_ssize_t j0, \
                                           Py_ssize_t j1) { \
        V acc[convnet_vectors_##S##L]; \
        Py_ssize_t u, j; \
        for (u = 0; u < convnet_vectors_##S##L; u++) \
            acc[u] = convnet_load_##S(acc_out + u * convnet_width_##S##L); \
        for (j = j0; j < j1; j++) { \
            T v = x[j * stride]; \
            for (u = 0; u < convnet_vectors_##S##L; u++) \
                acc[u] += v * convnet_load_##S(g + j * F + u * convnet_width_##S##L); \
        } \
        for (u = 0; u < convnet_vectors_##S##L; u++) \
            convnet_store_##S(acc_out + u * convnet_width_##S##L, acc[u]); \
    }
    CONVNET_DIRECT_LOOPS(float, f, convnet_vf, 32)
    CONVNET_DIRECT_LOOPS(float, f, convnet_vf, 16)
    CONVNET_DIRECT_LOOPS(double, d, convnet_vd, 32)
    CONVNET_DIRECT_LOOPS(double, d, convnet_vd, 16)
    #else
    #define CONVNET_DIRECT_LOOPS(T, S, L) \
    static void convnet_pixel_##S##L(T* out, const T* start, const T* image, const T* kernel, \
                                  Py_ssize_t F, const Py_ssize_t* at, const Py_ssize_t* tap, \
                                  Py_ssize_t taps) { \
        T acc[L]; \
        Py_ssize_t k, t; \
        for (k = 0; k < L; k++) acc[k] = start ? start[k] : 0; \
        for (t = 0; t < taps; t++) \
            for (k = 0; k < L; k++) \
                acc[k] += image[at[t]] * kernel[tap[t] * F + k]; \
        for (k = 0; k < L; k++) out[k] = acc[k]; \
    } \
    static void convnet_tap_sum_##S##L(T* acc, const T* x, Py_ssize_t stride, const T* g, \
                                    Py_ssize_t F, Py_ssize_t j0, Py_ssize_t j1) { \
        Py_ssize_t k, j; \
        for (j = j0; j < j1; j++) \
            for (k = 0; k < L; k++) acc[k] += x[j * stride] * g[j * F + k]; \
    }
    CONVNET_DIRECT_LOOPS(float, f, 32)
    CONVNET_DIRECT_LOOPS(float, f, 16)
    CONVNET_DIRECT_LOOPS(double, d, 32)
    CONVNET_DIRECT_LOOPS(double, d, 16)
    #endif
    """
    void convnet_pixel_f32(float* out, const float* start, const float* image,
                          const float* kernel, Py_ssize_t F, const Py_ssize_t* at,
                          const Py_ssize_t* tap, Py_ssize_t taps) noexcept nogil
    void convnet_tap_sum_f32(float* acc, const float* x, Py_ssize_t stride, const float* g,
                            Py_ssize_t F, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
    void convnet_pixel_d32(double* out, const double* start, const double* image,
                          const double* kernel, Py_ssize_t F, const Py_ssize_t* at,
                          const Py_ssize_t* tap, Py_ssize_t taps) noexcept nogil
    void convnet_tap_sum_d32(double* acc, const double* x, Py_ssize_t stride, const double* g,
                            Py_ssize_t F, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
    void convnet_pixel_f16(float* out, const float* start, const float* image,
                          const float* kernel, Py_ssize_t F, const Py_ssize_t* at,
                          const Py_ssize_t* tap, Py_ssize_t taps) noexcept nogil
    void convnet_tap_sum_f16(float* acc, const float* x, Py_ssize_t stride, const float* g,
                            Py_ssize_t F, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil
    void convnet_pixel_d16(double* out, const double* start, const double* image,
                          const double* kernel, Py_ssize_t F, const Py_ssize_t* at,
                          const Py_ssize_t* tap, Py_ssize_t taps) noexcept nogil
    void convnet_tap_sum_d16(double* acc, const double* x, Py_ssize_t stride, const double* g,
                            Py_ssize_t F, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil

cdef enum:
    MAX_TAPS = 1024     # taps a pixel's list holds (kernels.DIRECT_MAX_TAPS): 16 KiB of stack


cdef struct Window:
    Py_ssize_t kh, kw, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left
    Py_ssize_t in_h, in_w, out_h, out_w


cdef inline Py_ssize_t first_inside(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    # The first output index o >= 0 with o * stride + offset >= 0.
    if offset >= 0:
        return 0
    return (-offset + stride - 1) // stride


cdef inline Py_ssize_t end_inside(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                  Py_ssize_t count) noexcept nogil:
    # One past the last output index o < count with o * stride + offset < size.
    if size - 1 - offset < 0:
        return 0
    return min(count, (size - 1 - offset) // stride + 1)


cdef void forward_row(const floating[:, :, :, ::1] x, const floating[:, ::1] kernel,
                      const floating* bias, floating[:, :, :, ::1] out, Window w, Py_ssize_t n,
                      Py_ssize_t i, bint relu) noexcept nogil:
    """Output row i of image n: for each pixel, the bias plus its taps inside the image
    in order, 32 filters at a time (then 16, then one at a time), then the ReLU."""
    cdef Py_ssize_t at[MAX_TAPS]     # the pixel's taps inside the image: offsets in x,
    cdef Py_ssize_t tap[MAX_TAPS]    # and rows of the kernel
    cdef floating rest[16]     # the last F % 16 filters
    cdef Py_ssize_t F = out.shape[3], j, p, q, k, f0, ih, iw, taps, t
    cdef floating y
    cdef const floating* image = &x[n, 0, 0, 0]
    cdef floating* row = &out[n, i, 0, 0]
    cdef floating* dst
    for j in range(w.out_w):
        taps = 0
        for p in range(w.kh):
            ih = i * w.stride_h - w.pad_top + p * w.dilation_h
            if ih < 0 or ih >= w.in_h:
                continue
            for q in range(w.kw):
                iw = j * w.stride_w - w.pad_left + q * w.dilation_w
                if iw < 0 or iw >= w.in_w:
                    continue
                at[taps] = ih * w.in_w + iw
                tap[taps] = p * w.kw + q
                taps = taps + 1
        dst = row + j * F
        f0 = 0
        while f0 + 32 <= F:
            if floating is float:
                convnet_pixel_f32(dst + f0, bias + f0 if bias != NULL else NULL, image,
                                  &kernel[0, f0], F, at, tap, taps)
            else:
                convnet_pixel_d32(dst + f0, bias + f0 if bias != NULL else NULL, image,
                                  &kernel[0, f0], F, at, tap, taps)
            f0 = f0 + 32
        if f0 + 16 <= F:
            if floating is float:
                convnet_pixel_f16(dst + f0, bias + f0 if bias != NULL else NULL, image,
                                  &kernel[0, f0], F, at, tap, taps)
            else:
                convnet_pixel_d16(dst + f0, bias + f0 if bias != NULL else NULL, image,
                                  &kernel[0, f0], F, at, tap, taps)
            f0 = f0 + 16
        if f0 < F:  # the last filters, one at a time, summed in the same order
            for k in range(F - f0):
                rest[k] = bias[f0 + k] if bias != NULL else 0
            for t in range(taps):
                for k in range(F - f0):
                    rest[k] = rest[k] + image[at[t]] * kernel[tap[t], f0 + k]
            for k in range(F - f0):
                dst[f0 + k] = rest[k]
        if relu:
            for k in range(F):
                y = dst[k]
                # NaN stays NaN through the ReLU, as in PyTorch.
                dst[k] = 0 if y < 0 else y


def conv1_forward(const floating[:, :, :, ::1] x,        # IN  (N, H, W, 1)
                  const floating[:, ::1] kernel,          # IN  (kh*kw, F)
                  const floating[::1] bias,               # IN  (F,), or None
                  floating[:, :, :, ::1] out,             # OUT (N, out_h, out_w, F)
                  int kh, int kw, int stride_h, int stride_w, int dilation_h, int dilation_w,
                  int pad_top, int pad_left, bint relu, int num_threads):
    """out = the convolution of single-channel x with kernel (+ bias, through the ReLU)."""
    cdef Window w
    w.kh, w.kw, w.stride_h, w.stride_w = kh, kw, stride_h, stride_w
    w.dilation_h, w.dilation_w, w.pad_top, w.pad_left = dilation_h, dilation_w, pad_top, pad_left
    w.in_h, w.in_w, w.out_h, w.out_w = x.shape[1], x.shape[2], out.shape[1], out.shape[2]
    cdef Py_ssize_t rows = out.shape[0] * w.out_h, row
    cdef const floating* bias_ptr = &bias[0] if bias is not None else NULL
    # Dynamic, by rows: on a busy machine a thread that lost its core holds up a row at most.
    for row in prange(rows, nogil=True, schedule="dynamic", chunksize=4,
                      num_threads=min(<Py_ssize_t> num_threads, rows)):
        forward_row(x, kernel, bias_ptr, out, w, row // w.out_h, row % w.out_h, relu)


cdef void gradient_row(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] grad,
                       const floating[:, :, :, ::1] relu_out, Window w, Py_ssize_t n,
                       Py_ssize_t i, floating* masked, floating* partial,
                       floating* bias_partial) noexcept nogil:
    """Adds output row i of image n to the partial kernel (kh*kw, F) and bias (F,) sums."""
    cdef Py_ssize_t F = grad.shape[3], j, p, q, k, ih, offset, j0, j1, f0
    cdef const floating* g = &grad[n, i, 0, 0]
    cdef const floating* m
    cdef const floating* row_x
    cdef floating* dst
    cdef floating v, one = 1
    # The row's gradient (through the ReLU's derivative) and its share of the bias gradient,
    # pixel by pixel in order.
    if relu_out is not None:
        m = &relu_out[n, i, 0, 0]
        for k in range(w.out_w * F):
            v = g[k]
            masked[k] = v if m[k] > 0 else 0
        g = masked
    # The bias gradient sums the row like a tap whose input is 1 everywhere (exact: 1 * g
    # is g), in registers.
    f0 = 0
    while f0 + 32 <= F:
        if floating is float:
            convnet_tap_sum_f32(bias_partial + f0, &one, 0, g + f0, F, 0, w.out_w)
        else:
            convnet_tap_sum_d32(bias_partial + f0, &one, 0, g + f0, F, 0, w.out_w)
        f0 = f0 + 32
    if f0 + 16 <= F:
        if floating is float:
            convnet_tap_sum_f16(bias_partial + f0, &one, 0, g + f0, F, 0, w.out_w)
        else:
            convnet_tap_sum_d16(bias_partial + f0, &one, 0, g + f0, F, 0, w.out_w)
        f0 = f0 + 16
    for j in range(w.out_w):
        for k in range(f0, F):
            bias_partial[k] = bias_partial[k] + g[j * F + k]
    for p in range(w.kh):
        ih = i * w.stride_h - w.pad_top + p * w.dilation_h
        if ih < 0 or ih >= w.in_h:
            continue
        for q in range(w.kw):
            # the pixels j whose tap (p, q) lies inside the image: iw = j * stride + offset
            offset = q * w.dilation_w - w.pad_left
            j0 = first_inside(offset, w.stride_w)
            j1 = end_inside(offset, w.stride_w, w.in_w, w.out_w)
            if j0 >= j1:
                continue
            row_x = &x[n, ih, j0 * w.stride_w + offset, 0]
            dst = partial + (p * w.kw + q) * F
            f0 = 0
            while f0 + 32 <= F:
                if floating is float:
                    convnet_tap_sum_f32(dst + f0, row_x, w.stride_w, g + j0 * F + f0, F, 0,
                                        j1 - j0)
                else:
                    convnet_tap_sum_d32(dst + f0, row_x, w.stride_w, g + j0 * F + f0, F, 0,
                                        j1 - j0)
                f0 = f0 + 32
            if f0 + 16 <= F:
                if floating is float:
                    convnet_tap_sum_f16(dst + f0, row_x, w.stride_w, g + j0 * F + f0, F, 0,
                                        j1 - j0)
                else:
                    convnet_tap_sum_d16(dst + f0, row_x, w.stride_w, g + j0 * F + f0, F, 0,
                                        j1 - j0)
                f0 = f0 + 16
            for j in range(j0, j1):  # the last filters, one at a time, in the same order
                v = row_x[(j - j0) * w.stride_w]
                for k in range(f0, F):
                    dst[k] = dst[k] + v * g[j * F + k]


def conv1_kernel_gradient(const floating[:, :, :, ::1] x,          # IN  (N, H, W, 1)
                          const floating[:, :, :, ::1] grad_out,   # IN  (N, out_h, out_w, F)
                          const floating[:, :, :, ::1] relu_out,   # IN  like grad_out, or None
                          floating[:, :, ::1] grad_partials,       # OUT (P, kh*kw, F)
                          floating[:, ::1] bias_partials,          # OUT (P, F)
                          floating[:, ::1] scratch,                # (num_threads, out_w*F)
                          int kh, int kw, int stride_h, int stride_w, int dilation_h,
                          int dilation_w, int pad_top, int pad_left, int num_threads):
    """Kernel and bias gradients of conv1_forward in P partial sums (partial p over images
    p, p + P, ..., rows in order), which the caller adds in order. With ``relu_out`` the
    output gradient goes through the ReLU's derivative first."""
    cdef Window w
    w.kh, w.kw, w.stride_h, w.stride_w = kh, kw, stride_h, stride_w
    w.dilation_h, w.dilation_w, w.pad_top, w.pad_left = dilation_h, dilation_w, pad_top, pad_left
    w.in_h, w.in_w = x.shape[1], x.shape[2]
    w.out_h, w.out_w = grad_out.shape[1], grad_out.shape[2]
    cdef Py_ssize_t N = x.shape[0], F = grad_out.shape[3], P = grad_partials.shape[0]
    cdef Py_ssize_t p, n, i
    cdef floating* masked = NULL
    with nogil, parallel(num_threads=min(<Py_ssize_t> num_threads, P)):
        masked = &scratch[threadid(), 0]
        for p in prange(P, schedule="dynamic"):
            memset(&grad_partials[p, 0, 0], 0, kh * kw * F * sizeof(floating))
            memset(&bias_partials[p, 0], 0, F * sizeof(floating))
            n = p
            while n < N:
                for i in range(w.out_h):
                    gradient_row(x, grad_out, relu_out, w, n, i, masked,
                                 &grad_partials[p, 0, 0], &bias_partials[p, 0])
                n = n + P
