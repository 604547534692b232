"""Plain NumPy loop references for convolution and pooling (NHWC), written for clarity only.

Padding is always explicit here: ((top, bottom), (left, right)).
"""
import math

import numpy as np


def output_length(n, k, s, d, before, after, ceil_mode=False):
    span = n + before + after - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = math.ceil(span / s) + 1
    if (out - 1) * s >= n + before:
        out -= 1
    return out


def conv2d(x, w, b, stride, padding, dilation):
    (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = stride, dilation, padding
    n, h, wid, _ = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = output_length(h, kh, sh, dh, pt, pb)
    ow = output_length(wid, kw, sw, dw, pl, pr)
    y = np.zeros((n, oh, ow, f), dtype=np.float64)
    for b_ in range(n):
        for i in range(oh):
            for j in range(ow):
                for p in range(kh):
                    for q in range(kw):
                        y[b_, i, j] += xp[b_, i * sh + p * dh, j * sw + q * dw] @ w[p, q]
    return y + (0 if b is None else b)


def conv2d_backward(x, w, grad_y, stride, padding, dilation):
    (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = stride, dilation, padding
    kh, kw = w.shape[:2]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))).astype(np.float64)
    gxp = np.zeros_like(xp)
    gw = np.zeros(w.shape, dtype=np.float64)
    n, oh, ow, _ = grad_y.shape
    for b_ in range(n):
        for i in range(oh):
            for j in range(ow):
                g = grad_y[b_, i, j]
                for p in range(kh):
                    for q in range(kw):
                        r, c = i * sh + p * dh, j * sw + q * dw
                        gxp[b_, r, c] += w[p, q] @ g
                        gw[p, q] += np.outer(xp[b_, r, c], g)
    gx = gxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]]
    return gx, gw, grad_y.sum(axis=(0, 1, 2))


def _windows(h, w, k, s, padding, ceil_mode):
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = k, s, padding
    oh = output_length(h, kh, sh, 1, pt, pb, ceil_mode)
    ow = output_length(w, kw, sw, 1, pl, pr, ceil_mode)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - pt, j * sw - pl
            yield i, j, r0, c0, oh, ow


def max_pool2d(x, k, s, padding, ceil_mode=False):
    """Returns (y, grad routing) where routing maps (i, j) to per-channel input cells."""
    n, h, w, c = x.shape
    cells = list(_windows(h, w, k, s, padding, ceil_mode))
    oh, ow = cells[0][4], cells[0][5]
    y = np.full((n, oh, ow, c), -np.inf)
    where = np.zeros((n, oh, ow, c, 2), dtype=np.int64)
    for b_ in range(n):
        for ch in range(c):
            for i, j, r0, c0, _, _ in cells:
                best, at = -np.inf, None
                for r in range(max(r0, 0), min(r0 + k[0], h)):
                    for q in range(max(c0, 0), min(c0 + k[1], w)):
                        v = x[b_, r, q, ch]
                        if at is None:
                            at = (r, q)
                        # PyTorch's rule: a NaN always takes over, so the last NaN wins.
                        if np.isnan(v) or v > best:
                            best, at = v, (r, q)
                y[b_, i, j, ch] = best
                where[b_, i, j, ch] = at
    return y, where


def max_pool2d_backward(x_shape, where, grad_y):
    gx = np.zeros(x_shape)
    n, oh, ow, c = grad_y.shape
    for b_ in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    r, q = where[b_, i, j, ch]
                    gx[b_, r, q, ch] += grad_y[b_, i, j, ch]
    return gx


def _divisor(r0, c0, k, h, w, padding, count_include_pad):
    (pt, pb), (pl, pr) = padding
    if count_include_pad:
        return (min(r0 + k[0], h + pb) - r0) * (min(c0 + k[1], w + pr) - c0)
    return (min(r0 + k[0], h) - max(r0, 0)) * (min(c0 + k[1], w) - max(c0, 0))


def avg_pool2d(x, k, s, padding, ceil_mode=False, count_include_pad=False):
    n, h, w, c = x.shape
    cells = list(_windows(h, w, k, s, padding, ceil_mode))
    y = np.zeros((n, cells[0][4], cells[0][5], c))
    for i, j, r0, c0, _, _ in cells:
        window = x[:, max(r0, 0):min(r0 + k[0], h), max(c0, 0):min(c0 + k[1], w)]
        y[:, i, j] = window.sum(axis=(1, 2)) / _divisor(r0, c0, k, h, w, padding,
                                                        count_include_pad)
    return y


def avg_pool2d_backward(x_shape, grad_y, k, s, padding, ceil_mode=False,
                        count_include_pad=False):
    n, h, w, c = x_shape
    gx = np.zeros(x_shape)
    for i, j, r0, c0, _, _ in _windows(h, w, k, s, padding, ceil_mode):
        d = _divisor(r0, c0, k, h, w, padding, count_include_pad)
        gx[:, max(r0, 0):min(r0 + k[0], h), max(c0, 0):min(c0 + k[1], w)] += \
            grad_y[:, i, j][:, None, None, :] / d
    return gx
