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


def _taps(x_shape, w_shape, stride, padding, dilation):
    """For each kernel tap (p, q): the slices of the padded input it meets, one per output."""
    (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = stride, dilation, padding
    kh, kw = w_shape[:2]
    oh = output_length(x_shape[1], kh, sh, dh, pt, pb)
    ow = output_length(x_shape[2], kw, sw, dw, pl, pr)
    for p in range(kh):
        for q in range(kw):
            rows = slice(p * dh, p * dh + sh * (oh - 1) + 1, sh)
            cols = slice(q * dw, q * dw + sw * (ow - 1) + 1, sw)
            yield p, q, rows, cols


def conv2d(x, w, b, stride, padding, dilation):
    """y[n, i, j] = sum over taps (p, q) of xpad[n, i*s + p*d, j*s + q*d] @ w[p, q] (+ b)."""
    ((pt, pb), (pl, pr)) = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    y = 0
    for p, q, rows, cols in _taps(x.shape, w.shape, stride, padding, dilation):
        y = y + xp[:, rows, cols] @ w[p, q].astype(np.float64)
    return y + (0 if b is None else b)


def conv2d_backward(x, w, grad_y, stride, padding, dilation):
    """The adjoint of conv2d, tap by tap: scatter into the padded input, correlate for w."""
    ((pt, pb), (pl, pr)) = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    g = grad_y.astype(np.float64)
    gxp = np.zeros_like(xp)
    gw = np.zeros(w.shape, dtype=np.float64)
    for p, q, rows, cols in _taps(x.shape, w.shape, stride, padding, dilation):
        gxp[:, rows, cols] += g @ w[p, q].T
        gw[p, q] = np.einsum("nijc,nijf->cf", xp[:, rows, cols], g)
    gx = gxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]]
    return gx, gw, g.sum(axis=(0, 1, 2))


def _windows(h, w, k, s, padding, ceil_mode):
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = k, s, padding
    oh = output_length(h, kh, sh, 1, pt, pb, ceil_mode)
    ow = output_length(w, kw, sw, 1, pl, pr, ceil_mode)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - pt, j * sw - pl
            yield i, j, r0, c0, oh, ow


def max_pool2d(x, k, s, padding, ceil_mode=False):
    """Returns (y, where): where[n, i, j, c] is the (row, col) whose gradient the output takes.

    Cells are visited in row-major order; a larger value or any NaN takes over (PyTorch's
    rule, so the last NaN wins), and an all -inf window keeps its first cell.
    """
    n, h, w, c = x.shape
    cells = list(_windows(h, w, k, s, padding, ceil_mode))
    oh, ow = cells[0][4], cells[0][5]
    y = np.full((n, oh, ow, c), -np.inf)
    where = np.zeros((n, oh, ow, c, 2), dtype=np.int64)
    for i, j, r0, c0, _, _ in cells:
        best = np.full((n, c), -np.inf)
        at = np.zeros((n, c, 2), dtype=np.int64)
        at[:] = (max(r0, 0), max(c0, 0))
        for r in range(max(r0, 0), min(r0 + k[0], h)):
            for q in range(max(c0, 0), min(c0 + k[1], w)):
                v = x[:, r, q, :]
                takes = np.isnan(v) | (v > best)
                best = np.where(takes, v, best)
                at[takes] = (r, q)
        y[:, i, j] = best
        where[:, i, j] = at
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


def grouped_conv2d(x, w, b, stride, padding, dilation, groups):
    """conv2d of each group of channels with its own slice of filters, concatenated."""
    cin, fg = w.shape[2], w.shape[3] // groups
    parts = [conv2d(x[..., g * cin:(g + 1) * cin], w[..., g * fg:(g + 1) * fg], None, stride,
                    padding, dilation) for g in range(groups)]
    return np.concatenate(parts, axis=-1) + (0 if b is None else b)


def grouped_conv2d_backward(x, w, grad_y, stride, padding, dilation, groups):
    cin, fg = w.shape[2], w.shape[3] // groups
    grads = [conv2d_backward(x[..., g * cin:(g + 1) * cin], w[..., g * fg:(g + 1) * fg],
                             grad_y[..., g * fg:(g + 1) * fg], stride, padding, dilation)
             for g in range(groups)]
    return (np.concatenate([gx for gx, _, _ in grads], axis=-1),
            np.concatenate([gw for _, gw, _ in grads], axis=-1),
            np.concatenate([gb for _, _, gb in grads]))


def depthwise_conv2d(x, w, b, stride, padding, dilation):
    """Channel c through its own depth_multiplier filters w[:, :, c, :]: outputs c*M .. c*M+M-1."""
    parts = [conv2d(x[..., c:c + 1], w[:, :, c:c + 1, :], None, stride, padding, dilation)
             for c in range(x.shape[3])]
    return np.concatenate(parts, axis=-1) + (0 if b is None else b)


def depthwise_conv2d_backward(x, w, grad_y, stride, padding, dilation):
    m = w.shape[3]
    grads = [conv2d_backward(x[..., c:c + 1], w[:, :, c:c + 1, :],
                             grad_y[..., c * m:(c + 1) * m], stride, padding, dilation)
             for c in range(x.shape[3])]
    return (np.concatenate([gx for gx, _, _ in grads], axis=-1),
            np.concatenate([gw for _, gw, _ in grads], axis=2),
            np.concatenate([gb for _, _, gb in grads]))


def conv2d_transpose(x, w, b, stride, dilation, out_hw, crop):
    """Each input pixel's channels times w[p, q]^T (w is (kh, kw, filters, in)) added at
    (i*s + p*d, j*s + q*d) of the full output, which is then cut to out_hw from `crop`
    (zeros where out_hw reaches past it)."""
    n, h, wd, _ = x.shape
    kh, kw, f, _ = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    full_h = max((h - 1) * sh + (kh - 1) * dh + 1, crop[0] + out_hw[0])
    full_w = max((wd - 1) * sw + (kw - 1) * dw + 1, crop[1] + out_hw[1])
    full = np.zeros((n, full_h, full_w, f))
    for i in range(h):
        for j in range(wd):
            for p in range(kh):
                for q in range(kw):
                    full[:, i * sh + p * dh, j * sw + q * dw] += (
                        x[:, i, j].astype(np.float64) @ w[p, q].T.astype(np.float64))
    y = full[:, crop[0]:crop[0] + out_hw[0], crop[1]:crop[1] + out_hw[1]]
    return y + (0 if b is None else b)


def conv2d_transpose_backward(x, w, grad_y, stride, dilation, crop):
    """The adjoint of conv2d_transpose, loop by loop: (grad_x, grad_w, grad_b)."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[:2]
    (sh, sw), (dh, dw) = stride, dilation
    full_h = max((h - 1) * sh + (kh - 1) * dh + 1, crop[0] + grad_y.shape[1])
    full_w = max((wd - 1) * sw + (kw - 1) * dw + 1, crop[1] + grad_y.shape[2])
    g = np.zeros((n, full_h, full_w, w.shape[2]))
    g[:, crop[0]:crop[0] + grad_y.shape[1], crop[1]:crop[1] + grad_y.shape[2]] = grad_y
    gx = np.zeros(x.shape)
    gw = np.zeros(w.shape)
    for i in range(h):
        for j in range(wd):
            for p in range(kh):
                for q in range(kw):
                    cell = g[:, i * sh + p * dh, j * sw + q * dw]
                    gx[:, i, j] += cell @ w[p, q].astype(np.float64)
                    gw[p, q] += cell.T @ x[:, i, j].astype(np.float64)
    return gx, gw, grad_y.astype(np.float64).sum(axis=(0, 1, 2))


def batch_norm_train(x, gamma, beta, epsilon):
    """Per-channel (last axis) batch statistics and the normalised output, in float64."""
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    variance = ((x - mean) ** 2).mean(axis=axes)
    x_hat = (x - mean) / np.sqrt(variance + epsilon)
    return gamma * x_hat + beta, mean, variance


def batch_norm_train_backward(x, grad_y, gamma, epsilon):
    """The chain rule through the batch statistics, one stage at a time:
    y = gamma * x_hat + beta, x_hat = (x - mean) / sqrt(var + eps), var and mean of x."""
    x, g = x.astype(np.float64), grad_y.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    count = x.size // x.shape[-1]
    mean = x.mean(axis=axes)
    centered = x - mean
    variance = (centered ** 2).mean(axis=axes)
    std = np.sqrt(variance + epsilon)
    x_hat = centered / std
    grad_gamma = (g * x_hat).sum(axis=axes)
    grad_beta = g.sum(axis=axes)
    grad_x_hat = g * gamma
    grad_variance = (grad_x_hat * centered).sum(axis=axes) * -0.5 / std ** 3
    grad_mean = -(grad_x_hat / std).sum(axis=axes) + grad_variance * -2 * centered.mean(axis=axes)
    grad_x = grad_x_hat / std + grad_variance * 2 * centered / count + grad_mean / count
    return grad_x, grad_gamma, grad_beta
