"""Winograd convolution F(m x m, 3 x 3) on NHWC arrays, m = 2 or 4 along each axis.

A 3x3 stride-1 convolution computes each m x m tile of output from the
(m + 2) x (m + 2) tile of input under it. Winograd's minimal filtering
algorithm does that with (m + 2)**2 products per channel pair instead of
9 m**2, in a transformed domain (Lavin & Gray 2016):

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

The kernel transform G g G^T is computed once per weight version (in
``convnet.kernels``, in float64); here the input tiles are transformed
(B^T d B), the element-wise products summed over channels become (m + 2)**2
GEMMs, one per transformed-domain position, and their results are
transformed back (A^T M A). The transforms are separable: a 1-D transform
along the width, then along the height, each over LANES channels at a time
in local arrays, which the compiler turns into vector code.

Each OpenMP thread takes a block of tiles small enough to keep its
transformed tiles and products in its core's cache, and multiplies them
with single-threaded BLAS GEMMs. The blocks are fixed by the shapes, and the
kernel gradient is summed into a fixed number of partial buffers, each over
a fixed sequence of tiles: results do not depend on the thread count.

Points: F(2, 3) uses 0, 1, -1 and infinity; F(4, 3) uses 0, 1, -1, 1/2, -2
and infinity, which in float32 give about half the error of the textbook
0, +-1, +-2 (Barabasz et al. 2020, "Error analysis and improving the accuracy
of Winograd convolution for deep neural networks"). The matrices, scaled by
powers of two so that B^T and A^T have integer entries (which rounds the same):

    F(2, 3):  B^T = [1  0 -1  0]    A^T = [1  1  1  0]
                    [0  1  1  0]          [0  1 -1 -1]
                    [0 -1  1  0]
                    [0  1  0 -1]

    F(4, 3):  B^T = [2 -3 -4  3  2  0]    A^T = [1  1  1  8  1  0]
                    [0 -2  1  5  2  0]          [0  1 -1  4 -2  0]
                    [0  2 -5  1  2  0]          [0  1  1  2  4  0]
                    [0 -2 -1  2  1  0]          [0  1 -1  1 -8  1]
                    [0  1 -2 -1  2  0]
                    [0  2 -3 -4  3  2]

G is in ``convnet.kernels`` (WINOGRAD_G), beside the kernel transform.

The kernels trust their arguments: ``convnet.kernels`` has checked every shape,
and bounds checking is off.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memset

from convnet._core.blas cimport gemm


cdef extern from *:
    """
    /* dst = src + shift, through max(., 0) when relu (NaN stays NaN, as in PyTorch), as a
       vector select: written as Cython's conditional expression inside the 16-lane loop,
       GCC left it a branch per value, and a ReLU's signs are random (W7's second layer's
       forward pass: 14 ms with the ReLU against 9.5 without). */
    #if defined(__GNUC__) && !defined(__clang__)
    #define CONVNET_VECTOR_LOOP _Pragma("GCC unroll 1")
    #else
    #define CONVNET_VECTOR_LOOP
    #endif
    #define CONVNET_STORE(T, S)                                                             \
    static inline void convnet_store_##S(T* dst, const T* src, const T* shift,            \
                                         Py_ssize_t count, int relu) {                     \
        Py_ssize_t k;                                                                      \
        if (relu) {                                                                        \
            CONVNET_VECTOR_LOOP                                                            \
            for (k = 0; k < count; k++) {                                                  \
                T y = src[k] + shift[k];                                                   \
                dst[k] = y < 0 ? (T)0 : y;                                                 \
            }                                                                              \
        } else {                                                                           \
            CONVNET_VECTOR_LOOP                                                            \
            for (k = 0; k < count; k++) dst[k] = src[k] + shift[k];                        \
        }                                                                                  \
    }
    CONVNET_STORE(float, f)
    CONVNET_STORE(double, d)
    """
    void convnet_store_f(float* dst, const float* src, const float* shift, Py_ssize_t count,
                         int relu) noexcept nogil
    void convnet_store_d(double* dst, const double* src, const double* shift,
                         Py_ssize_t count, int relu) noexcept nogil


cdef enum:
    LANES = 16      # channels transformed together (two AVX registers of float32)
    MAX_ALPHA = 6   # the input tile of F(4, 3)
    MAX_CELLS = MAX_ALPHA * MAX_ALPHA * LANES


cdef struct Tiling:
    # Output pixel (i, j) of an image sums the 3x3 source window whose top-left
    # cell is (i - top, j - left); sources outside the image read as zero.
    Py_ssize_t m_h, m_w              # output tile
    Py_ssize_t a_h, a_w              # input tile, m + 2
    Py_ssize_t tiles_h, tiles_w      # tiles per image, the last ones partial
    Py_ssize_t top, left
    Py_ssize_t src_h, src_w, out_h, out_w
    # Tile u of a sequence lies in image first_image + (u // per image) * image_step.
    Py_ssize_t first_image, image_step


cdef Tiling make_tiling(int m_h, int m_w, int top, int left, Py_ssize_t src_h,
                        Py_ssize_t src_w, Py_ssize_t out_h, Py_ssize_t out_w) noexcept nogil:
    cdef Tiling t
    t.m_h, t.m_w, t.a_h, t.a_w = m_h, m_w, m_h + 2, m_w + 2
    t.tiles_h = (out_h + m_h - 1) // m_h
    t.tiles_w = (out_w + m_w - 1) // m_w
    t.top, t.left = top, left
    t.src_h, t.src_w, t.out_h, t.out_w = src_h, src_w, out_h, out_w
    t.first_image, t.image_step = 0, 1
    return t


cdef inline void tile_at(Tiling t, Py_ssize_t u, Py_ssize_t* n, Py_ssize_t* i0,
                         Py_ssize_t* j0) noexcept nogil:
    # Image and first output pixel (i0, j0) of tile u of the sequence.
    cdef Py_ssize_t per_image = t.tiles_h * t.tiles_w
    n[0] = t.first_image + (u // per_image) * t.image_step
    i0[0] = (u % per_image) // t.tiles_w * t.m_h
    j0[0] = u % t.tiles_w * t.m_w


# ----------------------------------------------------------------------------- 1-D transforms
# Each maps LANES-wide rows: element (r, k) of a row set is at p[r * step + k]. One side of
# every call is a local array of the caller, so the compiler sees that the two cannot
# overlap and vectorises over k.

cdef inline void input_1d(Py_ssize_t m, const floating* d, Py_ssize_t ds, floating* v,
                          Py_ssize_t vs) noexcept nogil:
    """v = B^T d: m + 2 rows to m + 2."""
    cdef Py_ssize_t k
    cdef floating d0, d1, d2, d3, d4, d5
    if m == 2:
        for k in range(LANES):
            d0, d1, d2, d3 = d[k], d[ds + k], d[2 * ds + k], d[3 * ds + k]
            v[k] = d0 - d2
            v[vs + k] = d1 + d2
            v[2 * vs + k] = d2 - d1
            v[3 * vs + k] = d1 - d3
    else:
        for k in range(LANES):
            d0, d1, d2 = d[k], d[ds + k], d[2 * ds + k]
            d3, d4, d5 = d[3 * ds + k], d[4 * ds + k], d[5 * ds + k]
            v[k] = 2 * d0 - 3 * d1 - 4 * d2 + 3 * d3 + 2 * d4
            v[vs + k] = -2 * d1 + d2 + 5 * d3 + 2 * d4
            v[2 * vs + k] = 2 * d1 - 5 * d2 + d3 + 2 * d4
            v[3 * vs + k] = -2 * d1 - d2 + 2 * d3 + d4
            v[4 * vs + k] = d1 - 2 * d2 - d3 + 2 * d4
            v[5 * vs + k] = 2 * d1 - 3 * d2 - 4 * d3 + 3 * d4 + 2 * d5


cdef inline void output_1d(Py_ssize_t m, const floating* p, Py_ssize_t ps, floating* y,
                           Py_ssize_t ys) noexcept nogil:
    """y = A^T p: m + 2 rows to m."""
    cdef Py_ssize_t k
    cdef floating p0, p1, p2, p3, p4, p5, s12, d12
    if m == 2:
        for k in range(LANES):
            p0, p1, p2, p3 = p[k], p[ps + k], p[2 * ps + k], p[3 * ps + k]
            y[k] = p0 + p1 + p2
            y[ys + k] = p1 - p2 - p3
    else:
        for k in range(LANES):
            p0, p1, p2 = p[k], p[ps + k], p[2 * ps + k]
            p3, p4, p5 = p[3 * ps + k], p[4 * ps + k], p[5 * ps + k]
            s12 = p1 + p2
            d12 = p1 - p2
            y[k] = p0 + s12 + 8 * p3 + p4
            y[ys + k] = d12 + 4 * p3 - 2 * p4
            y[2 * ys + k] = s12 + 2 * p3 + 4 * p4
            y[3 * ys + k] = d12 + p3 - 8 * p4 + p5


cdef inline void gradient_1d(Py_ssize_t m, const floating* g, Py_ssize_t gs, floating* z,
                             Py_ssize_t zs) noexcept nogil:
    """z = A g, the adjoint of output_1d: m rows to m + 2."""
    cdef Py_ssize_t k
    cdef floating g0, g1, g2, g3
    if m == 2:
        for k in range(LANES):
            g0, g1 = g[k], g[gs + k]
            z[k] = g0
            z[zs + k] = g0 + g1
            z[2 * zs + k] = g0 - g1
            z[3 * zs + k] = -g1
    else:
        for k in range(LANES):
            g0, g1, g2, g3 = g[k], g[gs + k], g[2 * gs + k], g[3 * gs + k]
            z[k] = g0
            z[zs + k] = g0 + g1 + g2 + g3
            z[2 * zs + k] = g0 - g1 + g2 - g3
            z[3 * zs + k] = 8 * g0 + 4 * g1 + 2 * g2 + g3
            z[4 * zs + k] = g0 - 2 * g1 + 4 * g2 - 8 * g3
            z[5 * zs + k] = g3


# ----------------------------------------------------------------------------- tiles

cdef inline void masked_copy(const floating* s, const floating* q, Py_ssize_t count,
                             floating* dst) noexcept nogil:
    # dst = s where q > 0, else 0: the ReLU's derivative from its output q. Both loads are
    # unconditional, so the compiler turns this into a vector select.
    cdef Py_ssize_t k
    cdef floating v
    for k in range(count):
        v = s[k]
        dst[k] = v if q[k] > 0 else 0


cdef inline void gather_input(const floating[:, :, :, ::1] src,
                              const floating[:, :, :, ::1] mask, Tiling t, Py_ssize_t n,
                              Py_ssize_t i0, Py_ssize_t j0, Py_ssize_t c0,
                              floating* patch) noexcept nogil:
    # The (a_h, a_w, LANES) input tile under output pixel (i0, j0), channels c0 on, with
    # zeros outside the image and past the last channel, and where the mask is not positive.
    cdef Py_ssize_t lanes = min(<Py_ssize_t> LANES, src.shape[3] - c0)
    cdef Py_ssize_t i, j, k, ih, iw
    cdef const floating* s
    cdef floating* dst
    for i in range(t.a_h):
        ih = i0 + i - t.top
        for j in range(t.a_w):
            iw = j0 + j - t.left
            dst = patch + (i * t.a_w + j) * LANES
            for k in range(LANES):
                dst[k] = 0
            if ih < 0 or ih >= t.src_h or iw < 0 or iw >= t.src_w:
                continue
            s = &src[n, ih, iw, c0]
            if mask is None:
                for k in range(lanes):
                    dst[k] = s[k]
            else:
                masked_copy(s, &mask[n, ih, iw, c0], lanes, dst)


cdef void input_tiles(const floating[:, :, :, ::1] src, const floating[:, :, :, ::1] mask,
                      Tiling t, Py_ssize_t first, Py_ssize_t count, floating* V,
                      Py_ssize_t V_rows, Py_ssize_t V_cols) noexcept nogil:
    """B^T d B of tiles first .. first+count-1 into V: cell xi of tile r of the block at
    V[(xi * V_rows + r) * V_cols + c]; channels C .. V_cols-1 get zeros.

    With ``mask`` (the output of a fused ReLU), a source cell counts only where the
    mask is positive: the ReLU's derivative, applied while the tile is gathered."""
    cdef floating patch[MAX_CELLS]
    cdef floating work[MAX_CELLS]
    cdef Py_ssize_t C = src.shape[3], a_w = t.a_w, row = a_w * LANES
    cdef Py_ssize_t cell_step = a_w * V_rows * V_cols
    cdef Py_ssize_t r, n, i0, j0, chunk, c0, i, j
    cdef bint inside
    cdef const floating* s
    for r in range(count):
        tile_at(t, first + r, &n, &i0, &j0)
        inside = (i0 >= t.top and i0 - t.top + t.a_h <= t.src_h
                  and j0 >= t.left and j0 - t.left + a_w <= t.src_w)
        for chunk in range(V_cols // LANES):
            c0 = chunk * LANES
            # Along the width, row by row: straight from the image where the tile lies
            # inside it with a whole LANES of channels, else from a gathered copy.
            if inside and c0 + LANES <= C:
                for i in range(t.a_h):
                    s = &src[n, i0 - t.top + i, j0 - t.left, c0]
                    if mask is None:
                        input_1d(t.m_w, s, C, &work[i * row], LANES)
                        continue
                    for j in range(a_w):
                        masked_copy(s + j * C, &mask[n, i0 - t.top + i, j0 - t.left + j, c0],
                                    LANES, &patch[i * row + j * LANES])
                    input_1d(t.m_w, &patch[i * row], LANES, &work[i * row], LANES)
            else:
                gather_input(src, mask, t, n, i0, j0, c0, patch)
                for i in range(t.a_h):
                    input_1d(t.m_w, &patch[i * row], LANES, &work[i * row], LANES)
            # Then along the height, column by column, into V.
            for j in range(a_w):
                input_1d(t.m_h, &work[j * LANES], row, V + (j * V_rows + r) * V_cols + c0,
                         cell_step)


cdef void output_tiles(const floating* M, Py_ssize_t M_rows, Py_ssize_t M_cols, Tiling t,
                       Py_ssize_t first, Py_ssize_t count, const floating* bias, bint relu,
                       floating[:, :, :, ::1] out) noexcept nogil:
    """A^T M A of tiles first .. first+count-1 (cell xi of tile r of the block at
    M[(xi * M_rows + r) * M_cols + f]), plus the bias, through the ReLU when ``relu``,
    into the pixels of ``out`` that each tile covers (a tile at the right or bottom edge
    covers fewer than m x m)."""
    cdef floating patch[MAX_CELLS]
    cdef floating work[MAX_CELLS]
    cdef floating shift[LANES]
    cdef Py_ssize_t F = out.shape[3], a_w = t.a_w, row = a_w * LANES
    cdef Py_ssize_t cell_step = M_rows * M_cols
    cdef Py_ssize_t r, n, i0, j0, chunk, f0, lanes, i, j, k
    cdef const floating* src
    cdef floating* dst
    for r in range(count):
        tile_at(t, first + r, &n, &i0, &j0)
        for chunk in range(M_cols // LANES):
            f0 = chunk * LANES
            lanes = min(<Py_ssize_t> LANES, F - f0)
            for k in range(LANES):
                shift[k] = bias[f0 + k] if bias != NULL and k < lanes else 0
            for i in range(t.a_h):   # along the width: a_h rows of a_w to m_w
                output_1d(t.m_w, M + (i * a_w * M_rows + r) * M_cols + f0, cell_step,
                          &work[i * row], LANES)
            for j in range(t.m_w):   # along the height: m_w columns of a_h to m_h
                output_1d(t.m_h, &work[j * LANES], row, &patch[j * LANES], row)
            for i in range(min(t.m_h, t.out_h - i0)):
                for j in range(min(t.m_w, t.out_w - j0)):
                    src = &patch[i * row + j * LANES]
                    dst = &out[n, i0 + i, j0 + j, f0]
                    if floating is float:
                        convnet_store_f(dst, src, shift, lanes, relu)
                    else:
                        convnet_store_d(dst, src, shift, lanes, relu)


cdef void gradient_tiles(const floating[:, :, :, ::1] grad, const floating[:, :, :, ::1] mask,
                         Tiling t, Py_ssize_t first, Py_ssize_t count, floating* Z,
                         Py_ssize_t Z_rows, Py_ssize_t Z_cols,
                         floating* bias_sum) noexcept nogil:
    """A g A^T of the output-gradient tiles first .. first+count-1 into Z (laid out as V
    in input_tiles); cells past the output's edge count as zero. Adds each gradient
    (after the ReLU's derivative, with ``mask``) to bias_sum, tile by tile, row by row."""
    cdef floating patch[MAX_CELLS]
    cdef floating work[MAX_CELLS]
    cdef Py_ssize_t F = grad.shape[3], a_w = t.a_w, row = a_w * LANES
    cdef Py_ssize_t cell_step = a_w * Z_rows * Z_cols
    cdef Py_ssize_t r, n, i0, j0, chunk, f0, lanes, i, j, k, rows, cols
    cdef const floating* s
    cdef floating* dst
    cdef floating* total
    for r in range(count):
        tile_at(t, first + r, &n, &i0, &j0)
        rows = min(t.m_h, t.out_h - i0)
        cols = min(t.m_w, t.out_w - j0)
        for chunk in range(Z_cols // LANES):
            f0 = chunk * LANES
            lanes = min(<Py_ssize_t> LANES, F - f0)
            total = bias_sum + f0
            # The tile's gradients (zeros past the output's edge and the last filter) into
            # patch, row by row; each one also goes to the bias gradient, in the same order.
            for i in range(t.m_h):
                for j in range(t.m_w):
                    dst = &patch[i * row + j * LANES]
                    if i >= rows or j >= cols or lanes < LANES:
                        for k in range(LANES):
                            dst[k] = 0
                    if i >= rows or j >= cols:
                        continue
                    s = &grad[n, i0 + i, j0 + j, f0]
                    if mask is not None:
                        masked_copy(s, &mask[n, i0 + i, j0 + j, f0], lanes, dst)
                    elif lanes == LANES:
                        for k in range(LANES):
                            dst[k] = s[k]
                    else:
                        for k in range(lanes):
                            dst[k] = s[k]
                    if lanes == LANES:
                        for k in range(LANES):
                            total[k] = total[k] + dst[k]
                    else:
                        for k in range(lanes):
                            total[k] = total[k] + dst[k]
            for i in range(t.m_h):   # along the width: m_h rows of m_w to a_w
                gradient_1d(t.m_w, &patch[i * row], LANES, &work[i * row], LANES)
            for j in range(a_w):     # along the height: a_w columns of m_h to a_h, into Z
                gradient_1d(t.m_h, &work[j * LANES], row, Z + (j * Z_rows + r) * Z_cols + f0,
                            cell_step)


cdef inline Py_ssize_t padded(Py_ssize_t channels) noexcept nogil:
    return (channels + LANES - 1) // LANES * LANES


cdef inline Py_ssize_t cell_rows(Py_ssize_t block_tiles) noexcept nogil:
    # Rows of each cell's matrix in a thread's scratch: one more than the block's tiles.
    # A tile's transform touches all its 16 or 36 cells, each a matrix of block_tiles rows
    # apart; with the 256 tiles of 32 or 64 channels of W1 that is a multiple of 4 KiB,
    # which puts every cell in the same set of the L1 and L2 caches, so they evict each
    # other. The spare row shifts each cell by a row (W1 forward: output transform 8.3 ->
    # 6.6 ms, the whole pass 4-6% faster).
    return block_tiles + 1


def scratch_floats(int m_h, int m_w, Py_ssize_t block_tiles, Py_ssize_t in_channels,
                   Py_ssize_t out_channels, bint kernel_gradient):
    """Floats of one thread's scratch row for winograd_conv or winograd_kernel_gradient."""
    cdef Py_ssize_t cells = (m_h + 2) * (m_w + 2)
    cdef Py_ssize_t size = cells * cell_rows(block_tiles) * (padded(in_channels)
                                                             + padded(out_channels))
    if kernel_gradient:
        # the transformed-domain sum, and the kernel gradient half transformed back
        size += cells * in_channels * out_channels + 3 * (m_w + 2) * in_channels * out_channels
    return size


def winograd_conv(const floating[:, :, :, ::1] src,       # IN  (N, H, W, C)
                  const floating[:, :, :, ::1] mask,      # IN  like src, or None
                  const floating[:, :, ::1] kernel,       # IN  (a_h*a_w, C, F), transformed
                  const floating[::1] bias,               # IN  (F,), or None
                  floating[:, :, :, ::1] out,             # OUT (N, out_h, out_w, F)
                  floating[:, ::1] scratch,               # (num_threads, scratch_floats(...))
                  int m_h, int m_w, int top, int left, int block_tiles, bint relu,
                  int num_threads):
    """out[n, i, j] = sum over p, q < 3 of src[n, i - top + p, j - left + q] @ kernel[p, q]
    (+ bias, through max(., 0) when ``relu``), sources outside the image being zero and,
    with ``mask``, sources where the mask is not positive.

    The forward pass has top, left = the padding; the input gradient is the same sum
    over the output gradient with the kernel rotated, top = 2 - pad_top."""
    cdef Tiling t = make_tiling(m_h, m_w, top, left, src.shape[1], src.shape[2],
                                out.shape[1], out.shape[2])
    cdef Py_ssize_t C = src.shape[3], F = out.shape[3], Cp = padded(C), Fp = padded(F)
    cdef Py_ssize_t cells = t.a_h * t.a_w, T = block_tiles, R = cell_rows(block_tiles)
    cdef Py_ssize_t tiles = out.shape[0] * t.tiles_h * t.tiles_w
    cdef Py_ssize_t n_blocks = (tiles + T - 1) // T
    cdef Py_ssize_t block, first, count, cell
    cdef const floating* bias_ptr = &bias[0] if bias is not None else NULL
    cdef floating* V = NULL  # each thread points these at its own scratch row
    cdef floating* M = NULL
    with nogil, parallel(num_threads=min(num_threads, n_blocks)):
        V = &scratch[threadid(), 0]
        M = V + cells * R * Cp
        # GEMM leaves M's padding columns alone; zeros there keep the transform clean.
        memset(M, 0, cells * R * Fp * sizeof(floating))
        # Dynamic: on a busy machine a thread that lost its core holds up one block at most.
        for block in prange(n_blocks, schedule="dynamic"):
            first = block * T
            count = min(T, tiles - first)
            input_tiles(src, mask, t, first, count, V, R, Cp)
            for cell in range(cells):
                gemm(False, False, count, F, C, V + cell * R * Cp, Cp, &kernel[cell, 0, 0], F,
                     0, M + cell * R * Fp, Fp)
            output_tiles(M, R, Fp, t, first, count, bias_ptr, relu, out)


def winograd_kernel_gradient(const floating[:, :, :, ::1] x,         # IN  (N, H, W, C)
                             const floating[:, :, :, ::1] grad_out,  # IN  (N, out_h, out_w, F)
                             const floating[:, :, :, ::1] relu_out,  # IN  like grad_out, or None
                             const double[:, ::1] G_h,               # IN  (a_h, 3)
                             const double[:, ::1] G_w,               # IN  (a_w, 3)
                             floating[:, :, :, ::1] grad_partials,   # OUT (P, 9, C, F)
                             floating[:, ::1] bias_partials,         # OUT (P, F)
                             floating[:, ::1] scratch,     # (num_threads, scratch_floats(...))
                             int m_h, int m_w, int top, int left, int block_tiles,
                             int num_threads):
    """Kernel and bias gradients of winograd_conv's forward pass, in P partial sums that
    the caller adds in order.

    The forward map is linear in the kernel, so its adjoint is the same product read the
    other way: over all tiles, sum (B^T d B) (.) (A g A^T) in the transformed domain (a
    GEMM per cell, V^T Z), then G^T (.) G brings the sum back to 3x3. Partial p owns
    images p, p+P, p+2P, ...: their tiles in order, in blocks of ``block_tiles``."""
    cdef Tiling t = make_tiling(m_h, m_w, top, left, x.shape[1], x.shape[2],
                                grad_out.shape[1], grad_out.shape[2])
    cdef Py_ssize_t N = x.shape[0], C = x.shape[3], F = grad_out.shape[3]
    cdef Py_ssize_t Cp = padded(C), Fp = padded(F), P = grad_partials.shape[0]
    cdef Py_ssize_t a_h = t.a_h, a_w = t.a_w, cells = a_h * a_w, T = block_tiles
    cdef Py_ssize_t R = cell_rows(block_tiles)
    cdef Py_ssize_t per_image = t.tiles_h * t.tiles_w, CF = C * F
    cdef Py_ssize_t p, tiles, block, first, count, cell, i, j, a, b, e
    cdef Tiling own
    cdef const floating[:, :, :, ::1] no_mask = None
    cdef floating* V = NULL  # each thread points these at its own scratch row
    cdef floating* Z = NULL
    cdef floating* total = NULL   # (cells, C, F): this partial's transformed-domain sum
    cdef floating* half = NULL    # (3, a_w, C, F): G_h^T applied
    cdef floating* dst
    cdef const floating* src
    cdef floating coefficient
    with nogil, parallel(num_threads=min(num_threads, P)):
        V = &scratch[threadid(), 0]
        Z = V + cells * R * Cp
        total = Z + cells * R * Fp
        half = total + cells * CF
        for p in prange(P, schedule="dynamic"):
            own = t
            own.first_image, own.image_step = p, P
            tiles = (N - p + P - 1) // P * per_image
            memset(total, 0, cells * CF * sizeof(floating))
            memset(&bias_partials[p, 0], 0, F * sizeof(floating))
            for block in range((tiles + T - 1) // T):
                first = block * T
                count = min(T, tiles - first)
                input_tiles(x, no_mask, own, first, count, V, R, Cp)
                gradient_tiles(grad_out, relu_out, own, first, count, Z, R, Fp,
                               &bias_partials[p, 0])
                for cell in range(cells):
                    # total (C, F) += V^T (C, count) @ Z (count, F)
                    gemm(True, False, C, F, count, V + cell * R * Cp, Cp, Z + cell * R * Fp,
                         Fp, 1, total + cell * CF, F)
            # grad[i, j] = sum over a, b of G_h[a, i] G_w[b, j] total[a, b], a 3x3 kernel.
            memset(half, 0, 3 * a_w * CF * sizeof(floating))
            for i in range(3):
                for a in range(a_h):
                    coefficient = <floating> G_h[a, i]
                    if coefficient == 0:
                        continue
                    for b in range(a_w):
                        src = total + (a * a_w + b) * CF
                        dst = half + (i * a_w + b) * CF
                        for e in range(CF):
                            dst[e] = dst[e] + coefficient * src[e]
            memset(&grad_partials[p, 0, 0, 0], 0, 9 * CF * sizeof(floating))
            for i in range(3):
                for j in range(3):
                    dst = &grad_partials[p, i * 3 + j, 0, 0]
                    for b in range(a_w):
                        coefficient = <floating> G_w[b, j]
                        if coefficient == 0:
                            continue
                        src = half + (i * a_w + b) * CF
                        for e in range(CF):
                            dst[e] = dst[e] + coefficient * src[e]
