"""Keras' linear-algebra ops (keras.ops.linalg) on batches of matrices, with the gradients
the training of ordinary models can meet: inv, det, solve, solve_triangular, cholesky,
eigh, the singular values, and every norm. Factorizations whose factors have no simple
gradient (eig, qr, lu_factor, svd's vectors, pinv, lstsq) are not differentiable here:
the tape names them if a gradient needs to pass."""
import numpy as np

from .. import backend
from ._base import apply, convert, float_value, keras_op, reduce_to
from .numpy import (absolute, expand_dims, matmul, max as reduce_max, min as reduce_min,
                    moveaxis, not_equal, power, reshape, sqrt, square, sum, swapaxes)


def _t(a):
    return np.swapaxes(a, -1, -2)


def _square_matrices(a, name):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name}: expected square matrices (..., n, n), got shape {a.shape}")


@keras_op
def inv(x):
    """The inverse of square matrices; gradient -inv^T g inv^T."""
    a = float_value(x)
    _square_matrices(a, "inv")
    return apply("inv", np.linalg.inv,
                 lambda g, v, out, needs: (-_t(out) @ g @ _t(out),), x, values=(a,))


@keras_op
def det(x):
    """The determinant of square matrices; gradient g det inv^T."""
    a = float_value(x)
    _square_matrices(a, "det")
    return apply("det", np.linalg.det, lambda g, v, out, needs: (
        (np.asarray(g * out)[..., None, None] * _t(np.linalg.inv(v[0]))).astype(v[0].dtype),),
        x, values=(a,))


def _as_matrix_rhs(a, b):
    """b as (..., n, k) and whether it was a vector (NumPy 2's rule: b is a vector only when
    it is 1-D)."""
    vector = b.ndim == 1
    return (b[:, None] if vector else b), vector


@keras_op
def solve(a, b):
    """x with a x = b (b a vector when 1-D, else matrices); differentiable in a and b."""
    from ._base import promote
    av, bv = promote(a, b, extra=(float,))
    _square_matrices(av, "solve")

    def vjp(g, values, out, needs):
        m, rhs = values
        out2, vector = _as_matrix_rhs(m, np.asarray(out))
        g2 = g[..., None] if vector else g
        grad_b = np.linalg.solve(_t(m), g2)
        grad_a = -grad_b @ _t(out2)
        return (reduce_to(grad_a, a) if needs[0] else None,
                reduce_to(grad_b[..., 0] if vector else grad_b, b) if needs[1] else None)
    return apply("solve", np.linalg.solve, vjp, a, b, values=(av, bv))


def _triangular_solve(m, rhs, lower):
    """Solve with the lower (or upper) triangle of m, batched. NumPy's batched solve on the
    masked triangle: SciPy's solve_triangular takes one matrix at a time."""
    return np.linalg.solve(np.tril(m) if lower else np.triu(m), rhs)


@keras_op
def solve_triangular(a, b, lower=False):
    """x with a x = b for triangular a (the other triangle is ignored); differentiable in
    a (its triangle) and b."""
    from ._base import promote
    av, bv = promote(a, b, extra=(float,))
    _square_matrices(av, "solve_triangular")
    vector = bv.ndim == av.ndim - 1

    def compute(m, rhs):
        out = _triangular_solve(m, rhs[..., None] if vector else rhs, lower)
        return out[..., 0] if vector else out

    def vjp(g, values, out, needs):
        m = values[0]
        g2 = g[..., None] if vector else g
        out2 = np.asarray(out)[..., None] if vector else np.asarray(out)
        grad_b = _triangular_solve(_t(m), g2, not lower)
        grad_a = -grad_b @ _t(out2)
        grad_a = np.tril(grad_a) if lower else np.triu(grad_a)
        return (reduce_to(grad_a, a) if needs[0] else None,
                reduce_to(grad_b[..., 0] if vector else grad_b, b) if needs[1] else None)
    return apply("solve_triangular", compute, vjp, a, b, values=(av, bv))


@keras_op
def cholesky(x, upper=False):
    """The Cholesky factor of symmetric positive definite matrices (lower, or upper with
    ``upper=True``); its gradient is symmetric (Murray's formula)."""
    a = float_value(x)
    _square_matrices(a, "cholesky")

    def compute(v):
        lower = np.linalg.cholesky(v)
        return _t(lower).copy() if upper else lower

    def vjp(g, values, out, needs):
        lower = _t(out) if upper else out
        g_lower = _t(g) if upper else g
        phi = np.tril(_t(lower) @ g_lower)
        phi = phi - 0.5 * np.eye(phi.shape[-1], dtype=phi.dtype) * phi
        inv_lower = np.linalg.inv(lower)
        s = _t(inv_lower) @ phi @ inv_lower
        return ((s + _t(s)) / 2,)
    return apply("cholesky", compute, vjp, x, values=(a,))


@keras_op
def cholesky_inverse(x, upper=False):
    """inv(A) from A's Cholesky factor x (lower, or upper with ``upper=True``)."""
    factor = swapaxes(x, -1, -2) if upper else x
    return inv(matmul(factor, swapaxes(factor, -1, -2)))


@keras_op
def eigh(x):
    """(eigenvalues ascending, eigenvectors) of symmetric matrices (the lower triangle is
    read); differentiable for distinct eigenvalues, the gradient symmetric."""
    a = float_value(x)
    _square_matrices(a, "eigh")

    def vjp(g, values, out, needs):
        w, vectors = out
        gw = np.zeros(w.shape, w.dtype) if g[0] is None else g[0]
        gv = np.zeros(vectors.shape, w.dtype) if g[1] is None else g[1]
        gap = w[..., None, :] - w[..., :, None]
        eye = np.eye(w.shape[-1], dtype=bool)
        with np.errstate(divide="ignore"):
            f = np.where(eye, 0, 1 / np.where(eye, 1, gap))
        inner = np.einsum("...i,ij->...ij", gw, np.eye(w.shape[-1], dtype=w.dtype)) + \
            f * (_t(vectors) @ gv)
        grad = vectors @ inner @ _t(vectors)
        return (((grad + _t(grad)) / 2).astype(w.dtype),)
    return tuple(apply("eigh", lambda v: tuple(np.linalg.eigh(v)), vjp, x, values=(a,)))


@keras_op
def svd(x, full_matrices=True, compute_uv=True):
    """(u, s, vh) of matrices, or the singular values s alone with ``compute_uv=False``;
    only s alone is differentiable (gradient u diag(g) vh)."""
    a = float_value(x)
    if compute_uv:
        return tuple(apply("svd", lambda v: tuple(np.linalg.svd(v, full_matrices=full_matrices)),
                           None, x, values=(a,)))

    def vjp(g, values, out, needs):
        u, s, vh = np.linalg.svd(values[0], full_matrices=False)
        return ((u * g[..., None, :]) @ vh,)
    return apply("svd", lambda v: np.linalg.svd(v, compute_uv=False), vjp, x, values=(a,))


@keras_op
def eig(x):
    """(eigenvalues, eigenvectors) of square matrices, complex (not differentiable)."""
    a = float_value(x)
    return tuple(apply("eig", lambda v: tuple(np.linalg.eig(v)), None, x, values=(a,)))


@keras_op
def qr(x, mode="reduced"):
    """(q, r) of matrices (not differentiable here)."""
    if mode not in ("reduced", "complete"):
        raise ValueError(f"qr: mode must be 'reduced' or 'complete', got {mode!r}")
    return tuple(apply("qr", lambda v: tuple(np.linalg.qr(v, mode=mode)), None, x,
                       values=(float_value(x),)))


@keras_op
def lu_factor(x):
    """(lu, pivots) as scipy.linalg.lu_factor, batched (not differentiable)."""
    from scipy import linalg
    a = float_value(x)

    def compute(v):
        if v.ndim == 2:
            return tuple(linalg.lu_factor(v))
        lu = np.empty_like(v)
        pivots = np.empty(v.shape[:-2] + (min(v.shape[-2:]),), np.int32)
        for index in np.ndindex(v.shape[:-2]):
            lu[index], pivots[index] = linalg.lu_factor(v[index])
        return lu, pivots
    return tuple(apply("lu_factor", compute, None, x, values=(a,)))


@keras_op
def pinv(x, rcond=None):
    """The Moore-Penrose pseudo-inverse (not differentiable here)."""
    kwargs = {} if rcond is None else {"rcond": rcond}
    return apply("pinv", lambda v: np.linalg.pinv(v, **kwargs), None, x,
                 values=(float_value(x),))


@keras_op
def lstsq(a, b, rcond=None):
    """The least-squares solution of a x = b (not differentiable here)."""
    from ._base import promote
    av, bv = promote(a, b, extra=(float,))
    return apply("lstsq", lambda m, r: np.linalg.lstsq(m, r, rcond=rcond)[0], None, a, b,
                 values=(av, bv))


@keras_op
def matrix_rank(x, tol=None):
    a = convert(x)
    if a.ndim < 2:
        raise ValueError(f"matrix_rank: expected rank >= 2, got shape {a.shape}")
    return apply("matrix_rank", lambda v: np.asarray(np.linalg.matrix_rank(v, tol=tol))
                 .astype(np.int32), None, x, values=(a,))


@keras_op
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - Keras' name
    """Vector and matrix norms as np.linalg.norm (integers in float32), built from
    differentiable ops: every ord has a gradient except the count ord=0."""
    a = convert(x)
    if a.dtype.kind in "biu":
        from .core import cast
        x = cast(x, backend.result_type(a.dtype, "float32"))
    ndim = a.ndim
    if axis is None:
        if ord is None:
            out = sqrt(sum(square(absolute(x))))
            return reshape(out, (1,) * ndim) if keepdims else out
        if ndim not in (1, 2):
            raise ValueError(f"norm: with ord={ord!r} and no axis, x must be 1-D or 2-D, got "
                             f"shape {a.shape}")
        axis = tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(int(v) % ndim for v in axes)
    if len(axes) == 1:
        out = _vector_norm(x, ord, axes[0])
    elif len(axes) == 2:
        out = _matrix_norm(x, ord, axes)
    else:
        raise ValueError(f"norm: axis must name 1 or 2 axes, got {axis!r}")
    if keepdims:
        for a_ in sorted(axes):
            out = expand_dims(out, a_)
    return out


def _vector_norm(x, ord, axis):  # noqa: A002
    if ord is None or ord == 2:
        return sqrt(sum(square(absolute(x)), axis=axis))
    if ord == np.inf:
        return reduce_max(absolute(x), axis=axis)
    if ord == -np.inf:
        return reduce_min(absolute(x), axis=axis)
    if ord == 0:
        from .core import cast
        return sum(cast(not_equal(x, 0), convert(x).dtype), axis=axis)
    if isinstance(ord, str):
        raise ValueError(f"norm: ord={ord!r} is a matrix norm; give two axes")
    return power(sum(power(absolute(x), ord), axis=axis), 1.0 / ord)


def _matrix_norm(x, ord, axes):  # noqa: A002
    rows, cols = axes
    if ord in (None, "fro"):
        return sqrt(sum(square(absolute(x)), axis=axes))
    if ord in ("nuc", 2, -2):
        singular = svd(moveaxis(x, axes, (-2, -1)), compute_uv=False)
        return {"nuc": sum, 2: reduce_max, -2: reduce_min}[ord](singular, axis=-1)
    if ord in (1, -1):
        sums = sum(absolute(x), axis=rows)
        return (reduce_max if ord == 1 else reduce_min)(sums, axis=cols - (cols > rows))
    if ord in (np.inf, -np.inf):
        sums = sum(absolute(x), axis=cols)
        return (reduce_max if ord == np.inf else reduce_min)(sums, axis=rows - (rows > cols))
    raise ValueError(f"norm: ord={ord!r} is not a matrix norm (None, 'fro', 'nuc', 1, -1, 2, "
                     f"-2, inf, -inf)")

