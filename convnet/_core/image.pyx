"""Projective resampling of NHWC image batches (Keras' ops.image.affine_transform), forward
and adjoint.

Each image n has a transform [a0, a1, a2, b0, b1, b2, c0, c1] that maps an output pixel
(x, y) = (column, row) to the input point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k),
k = c0 x + c1 y + 1 (TensorFlow's convention, which Keras follows). That point is read
with "nearest" (round half to even, as Keras' JAX and torch backends do) or "bilinear"
interpolation, rows times columns: (y0, x0), (y0, x1), (y1, x0), (y1, x1). A tap
outside the image reads the cell the fill mode names, or ``fill_value`` ("constant").

Each output pixel depends on its own taps only, so the forward pass splits rows of output
across threads; the adjoint scatters into the input image, so one thread owns each image
and adds in a fixed order: both are bit-identical at any thread count.

They trust their arguments: ``convnet.kernels`` has checked every shape and mode, and
that the transforms are finite.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport floor, nearbyint
from libc.string cimport memset


cdef enum:
    NEAREST = 0
    BILINEAR = 1

cdef enum:
    CONSTANT = 0
    EDGE = 1        # Keras' fill_mode "nearest": (a a a a | a b c d | d d d d)
    REFLECT = 2     # (d c b a | a b c d | d c b a)
    WRAP = 3        # (a b c d | a b c d | a b c d)
    MIRROR = 4      # (d c b | a b c d | c b a)

#: the codes kernels.affine_transform passes for Keras' names
INTERPOLATIONS = {"nearest": NEAREST, "bilinear": BILINEAR}
FILL_MODES = {"constant": CONSTANT, "nearest": EDGE, "reflect": REFLECT, "wrap": WRAP,
              "mirror": MIRROR}

# Input coordinates are clamped to +-2**40 before they become indices: far beyond any image,
# and their floor (and floor + 1) still fits an int64. A point sent to infinity lands there.
cdef double COORDINATE_LIMIT = 1099511627776.0


cdef inline Py_ssize_t fixed_index(Py_ssize_t i, Py_ssize_t n, int fill_mode) noexcept nogil:
    """The cell that index i of a row (or column) of n cells reads, or -1 for fill_value."""
    cdef Py_ssize_t period
    if 0 <= i < n:
        return i
    if fill_mode == CONSTANT:
        return -1
    if fill_mode == EDGE:
        return 0 if i < 0 else n - 1
    if fill_mode == WRAP:
        i = i % n
        return i + n if i < 0 else i
    if fill_mode == REFLECT:
        period = 2 * n
        i = i % period
        if i < 0:
            i = i + period
        return i if i < n else period - 1 - i
    if n == 1:  # MIRROR of a single cell
        return 0
    period = 2 * n - 2
    i = i % period
    if i < 0:
        i = i + period
    return i if i < n else period - i


cdef inline int add_tap(Py_ssize_t* where, double* weight, int count, Py_ssize_t row,
                        Py_ssize_t col, Py_ssize_t W, double w) noexcept nogil:
    if w == 0.0:
        return count
    where[count] = -1 if (row < 0 or col < 0) else row * W + col
    weight[count] = w
    return count + 1


cdef inline int pixel_taps(const double* t, double x, double y, Py_ssize_t H, Py_ssize_t W,
                           int interpolation, int fill_mode,
                           Py_ssize_t* where, double* weight) noexcept nogil:
    """The taps of output pixel (x, y): cells row * W + column (-1: fill_value) and weights;
    returns how many. Taps of weight zero are left out, so an output pixel depends only on
    the input cells it reads (a NaN elsewhere in the image stays there)."""
    cdef double k = t[6] * x + t[7] * y + 1.0
    cdef double sx, sy, fx, fy, wx0, wx1, wy0, wy1
    cdef Py_ssize_t ix0, ix1, iy0, iy1, col0, col1, row0, row1
    cdef int count = 0
    if k == 0.0:
        where[0] = -1
        weight[0] = 1.0
        return 1
    sx = (t[0] * x + t[1] * y + t[2]) / k
    sy = (t[3] * x + t[4] * y + t[5]) / k
    if sx != sx or sy != sy:  # NaN: 0 * inf in a transform with huge coefficients
        where[0] = -1
        weight[0] = 1.0
        return 1
    sx = min(max(sx, -COORDINATE_LIMIT), COORDINATE_LIMIT)
    sy = min(max(sy, -COORDINATE_LIMIT), COORDINATE_LIMIT)
    if interpolation == NEAREST:
        col0 = fixed_index(<Py_ssize_t>nearbyint(sx), W, fill_mode)
        row0 = fixed_index(<Py_ssize_t>nearbyint(sy), H, fill_mode)
        where[0] = -1 if (col0 < 0 or row0 < 0) else row0 * W + col0
        weight[0] = 1.0
        return 1
    fx = floor(sx)
    fy = floor(sy)
    ix0 = <Py_ssize_t>fx
    iy0 = <Py_ssize_t>fy
    wx1 = sx - fx
    wy1 = sy - fy
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1
    if 0 <= ix0 < W - 1 and 0 <= iy0 < H - 1:  # inside: no fill mode to apply
        col0, col1, row0, row1 = ix0, ix0 + 1, iy0, iy0 + 1
    else:
        col0 = fixed_index(ix0, W, fill_mode)
        col1 = fixed_index(ix0 + 1, W, fill_mode)
        row0 = fixed_index(iy0, H, fill_mode)
        row1 = fixed_index(iy0 + 1, H, fill_mode)
    count = add_tap(where, weight, count, row0, col0, W, wy0 * wx0)
    count = add_tap(where, weight, count, row0, col1, W, wy0 * wx1)
    count = add_tap(where, weight, count, row1, col0, W, wy1 * wx0)
    count = add_tap(where, weight, count, row1, col1, W, wy1 * wx1)
    return count


cdef inline void sample_pixel(const floating* image, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t C, const double* t, double x, double y,
                              int interpolation, int fill_mode, floating fill_value,
                              floating* dst) noexcept nogil:
    """dst[c] = the weighted taps of output pixel (x, y), for every channel c: the taps in
    order, then the fill value's share. Each channel is summed in a register (summing into
    dst would chain every tap through a store and a reload)."""
    cdef Py_ssize_t where[4]
    cdef double weight[4]
    cdef const floating* src[4]
    cdef floating w[4]
    cdef int count = pixel_taps(t, x, y, H, W, interpolation, fill_mode, where, weight)
    cdef int tap, inside = 0
    cdef Py_ssize_t c
    cdef floating total
    cdef floating filled = 0
    for tap in range(count):
        if where[tap] < 0:
            filled = filled + <floating>weight[tap]
        else:
            src[inside] = image + where[tap] * C
            w[inside] = <floating>weight[tap]
            inside = inside + 1
    for c in range(C):
        total = 0
        for tap in range(inside):
            total = total + w[tap] * src[tap][c]
        if filled != 0:
            total = total + filled * fill_value
        dst[c] = total


cdef inline void scatter_pixel(floating* image, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                               const double* t, double x, double y, int interpolation,
                               int fill_mode, const floating* grad) noexcept nogil:
    """The adjoint of sample_pixel: image[tap, c] += weight * grad[c] for every tap that
    reads the image (fill_value taps have no input to pass a gradient to)."""
    cdef Py_ssize_t where[4]
    cdef double weight[4]
    cdef int count = pixel_taps(t, x, y, H, W, interpolation, fill_mode, where, weight)
    cdef int tap
    cdef Py_ssize_t c
    cdef floating w
    cdef floating* dst
    for tap in range(count):
        if where[tap] >= 0:
            w = <floating>weight[tap]
            dst = image + where[tap] * C
            for c in range(C):
                dst[c] = dst[c] + w * grad[c]


def affine_transform_forward(const floating[:, :, :, ::1] images,   # IN  (N, H, W, C)
                             const double[:, ::1] transforms,       # IN  (N, 8)
                             floating[:, :, :, ::1] out,            # OUT (N, out_h, out_w, C)
                             int interpolation, int fill_mode, double fill_value,
                             int num_threads):
    """out[n, y, x] = images[n] read at transforms[n](x, y); one output row per iteration."""
    cdef Py_ssize_t N = images.shape[0], H = images.shape[1]
    cdef Py_ssize_t W = images.shape[2], C = images.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t image_row, n, oy, ox
    cdef floating fill = <floating>fill_value
    for image_row in prange(N * out_h, nogil=True, schedule="static", num_threads=num_threads):
        n = image_row // out_h
        oy = image_row % out_h
        for ox in range(out_w):
            sample_pixel(&images[n, 0, 0, 0], H, W, C, &transforms[n, 0], <double>ox,
                         <double>oy, interpolation, fill_mode, fill, &out[n, oy, ox, 0])


def affine_transform_backward(const floating[:, :, :, ::1] grad_out,   # IN  (N, out_h, out_w, C)
                              const double[:, ::1] transforms,         # IN  (N, 8)
                              floating[:, :, :, ::1] grad_images,      # OUT (N, H, W, C), overwritten
                              int interpolation, int fill_mode, int num_threads):
    """The gradient of affine_transform_forward with respect to its images: each output
    gradient added back to the cells its pixel read, with the same weights. One image per
    iteration, its pixels in row order: no race, the same sums at any thread count."""
    cdef Py_ssize_t N = grad_images.shape[0], H = grad_images.shape[1]
    cdef Py_ssize_t W = grad_images.shape[2], C = grad_images.shape[3]
    cdef Py_ssize_t out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t n, oy, ox
    cdef floating* image
    for n in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        image = &grad_images[n, 0, 0, 0]
        memset(image, 0, H * W * C * sizeof(floating))
        for oy in range(out_h):
            for ox in range(out_w):
                scatter_pixel(image, H, W, C, &transforms[n, 0], <double>ox, <double>oy,
                              interpolation, fill_mode, &grad_out[n, oy, ox, 0])
