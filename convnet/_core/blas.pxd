"""Row-major GEMM over scipy's BLAS, shared by the kernels that call BLAS per block."""
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef enum:
    # BLAS takes its sizes as C ints (LP64): no m, n, k or leading dimension may pass this.
    BLAS_INT_MAX = 2147483647


cdef inline void blas_gemm(bint trans_a, bint trans_b, int m, int n, int k,
                           const floating* a, int lda, const floating* b, int ldb,
                           floating beta, floating* c, int ldc) noexcept nogil:
    # One BLAS call, for sizes that fit its ints. BLAS is column-major, where a row-major
    # matrix reads as its transpose, so this asks BLAS for C^T = op(B)^T @ op(A)^T.
    cdef char trans_first = b'T' if trans_b else b'N'
    cdef char trans_second = b'T' if trans_a else b'N'
    cdef floating one = 1
    if floating is float:
        sgemm(&trans_first, &trans_second, &n, &m, &k, &one, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&trans_first, &trans_second, &n, &m, &k, &one, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)


cdef inline void gemm_in_pieces(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k, const floating* a, Py_ssize_t lda,
                                const floating* b, Py_ssize_t ldb, floating beta, floating* c,
                                Py_ssize_t ldc, Py_ssize_t piece) noexcept nogil:
    """Row-major C(m, n) = op(A) @ op(B) + beta * C, as BLAS calls of at most ``piece``
    rows, columns and inner length each: C's pieces side by side, the inner pieces
    added in order. The leading dimensions go to BLAS as they are: the caller keeps
    them within BLAS_INT_MAX (``convnet.kernels`` refuses arrays where they are not)."""
    cdef Py_ssize_t row = 0, col, depth, rows, cols, depths
    while row < m:
        rows = min(piece, m - row)
        col = 0
        while col < n:
            cols = min(piece, n - col)
            depth = 0
            while True:  # at least once: k == 0 still scales C by beta, as BLAS does
                depths = min(piece, k - depth)
                blas_gemm(trans_a, trans_b, <int> rows, <int> cols, <int> depths,
                          a + (depth * lda + row if trans_a else row * lda + depth), <int> lda,
                          b + (col * ldb + depth if trans_b else depth * ldb + col), <int> ldb,
                          beta if depth == 0 else 1, c + row * ldc + col, <int> ldc)
                depth += depths
                if depth >= k:
                    break
            col += cols
        row += rows

cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                      floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """Row-major C(m, n) = op(A) @ op(B) + beta * C, with 64-bit sizes: a product with m,
    n or k past BLAS's int is made in pieces that fit (see gemm_in_pieces)."""
    gemm_in_pieces(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc, BLAS_INT_MAX)
