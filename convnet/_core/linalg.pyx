"""Matrix products for Dense layers: BLAS per block, one block per OpenMP thread at a time.

A multi-threaded BLAS call leaves its worker threads spinning for a while
after it returns, on the cores the next convolution kernel wants. So Dense
layers multiply like the convolution kernels do: OpenMP threads over fixed
blocks of the output (or of the inner dimension, into partial products the
caller adds in order), each block one single-threaded GEMM. The blocks depend
on the shapes only, never on the thread count, so neither does the result.
"""
from cython cimport floating
from cython.parallel cimport prange

from convnet._core.blas cimport gemm, gemm_in_pieces


def matmul(const floating[:, ::1] a, bint trans_a,   # IN  A, or A^T stored as (k, m)
           const floating[:, ::1] b, bint trans_b,   # IN  B, or B^T stored as (n, k)
           floating[:, ::1] out,                     # OUT (m, n) = op(A) @ op(B)
           Py_ssize_t block, bint by_rows, int num_threads):
    """``out`` in blocks of ``block`` rows (``by_rows``) or columns of the output."""
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t lda = a.shape[1], ldb = b.shape[1]
    cdef Py_ssize_t extent = m if by_rows else n
    cdef Py_ssize_t n_blocks = (extent + block - 1) // block
    cdef Py_ssize_t i, first, count
    cdef const floating* a0 = &a[0, 0]
    cdef const floating* b0 = &b[0, 0]
    cdef floating* c0 = &out[0, 0]
    for i in prange(n_blocks, nogil=True, schedule="static",
                    num_threads=min(num_threads, n_blocks)):
        first = i * block
        count = min(block, extent - first)
        if by_rows:
            # Rows first.. of op(A): A's rows, or A^T's columns.
            gemm(trans_a, trans_b, count, n, k, a0 + (first if trans_a else first * lda), lda,
                 b0, ldb, 0, c0 + first * n, n)
        else:
            # Columns first.. of op(B): B's columns, or B^T's rows.
            gemm(trans_a, trans_b, m, count, k, a0, lda,
                 b0 + (first * ldb if trans_b else first), ldb, 0, c0 + first, n)


def matmul_split_k(const floating[:, ::1] a, bint trans_a,   # IN  A, or A^T stored as (k, m)
                   const floating[:, ::1] b, bint trans_b,   # IN  B, or B^T stored as (n, k)
                   floating[:, :, ::1] partials,             # OUT (P, m, n)
                   Py_ssize_t block, int num_threads):
    """partials[p] = op(A)[:, p*block:(p+1)*block] @ op(B)[p*block:(p+1)*block, :], for
    a small output over a long inner dimension; the caller adds them in order."""
    cdef Py_ssize_t P = partials.shape[0], m = partials.shape[1], n = partials.shape[2]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t lda = a.shape[1], ldb = b.shape[1]
    cdef Py_ssize_t p, first, count
    cdef const floating* a0 = &a[0, 0]
    cdef const floating* b0 = &b[0, 0]
    for p in prange(P, nogil=True, schedule="static", num_threads=min(num_threads, P)):
        first = p * block
        count = min(block, k - first)
        # Columns first.. of op(A) and the same rows of op(B).
        gemm(trans_a, trans_b, m, n, count, a0 + (first * lda if trans_a else first), lda,
             b0 + (first if trans_b else first * ldb), ldb, 0, &partials[p, 0, 0], n)


def matmul_in_pieces(const floating[:, ::1] a, bint trans_a,   # IN  A, or A^T stored as (k, m)
                     const floating[:, ::1] b, bint trans_b,   # IN  B, or B^T stored as (n, k)
                     floating beta,
                     floating[:, ::1] out,                     # IN/OUT (m, n)
                     Py_ssize_t piece):
    """out = op(A) @ op(B) + beta * out in BLAS calls of at most ``piece`` rows, columns
    and inner length: the tests' window on how ``gemm`` cuts a product past BLAS's int,
    which no test can afford to make at full size."""
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    with nogil:
        gemm_in_pieces(trans_a, trans_b, out.shape[0], out.shape[1], k, &a[0, 0], a.shape[1],
                       &b[0, 0], b.shape[1], beta, &out[0, 0], out.shape[1], piece)
