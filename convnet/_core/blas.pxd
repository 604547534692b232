"""Row-major GEMM over scipy's BLAS, shared by the kernels that call BLAS per block."""
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C(m, n) = op(A) @ op(B) + beta * C.

    BLAS is column-major, where a row-major matrix reads as its transpose, so
    this asks BLAS for C^T = op(B)^T @ op(A)^T.
    """
    cdef char trans_first = b'T' if trans_b else b'N'
    cdef char trans_second = b'T' if trans_a else b'N'
    cdef floating one = 1
    if floating is float:
        sgemm(&trans_first, &trans_second, &n, &m, &k, &one, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&trans_first, &trans_second, &n, &m, &k, &one, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)
