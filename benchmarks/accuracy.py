"""Float32 error of each convolution algorithm, pass by pass, on W1-shaped data.

Issue 19's rule for "auto": it may pick an algorithm for a pass only where that pass's
float32 max abs error against a float64 reference is at most 4x im2col's and inside
PyTorch-parity tolerance (|error| <= 2e-5 + 2e-4 |reference| everywhere; for a pass where
im2col's own error exceeds that, the kernel gradient, at most 4x im2col's worst ratio of
error to tolerance). The data:
inputs, kernels and output gradients uniform in [-1, 1], W1's shapes (64 images 32x32,
32 -> 64 channels, 3x3, padding 1). The reference sums tap by tap in float64.

    python benchmarks/accuracy.py          # prints the table (report.py puts it in BENCHMARKS.md)
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from convnet import kernels  # noqa: E402

SHAPE, KERNEL, PADDING = (64, 32, 32, 32), (3, 3, 32, 64), 1
RTOL, ATOL, TIMES_IM2COL = 2e-4, 2e-5, 4.0
ALGORITHMS = ["im2col", "winograd", "winograd4"]
PASSES = ["forward", "input gradient", "kernel gradient"]


def reference(x, kernel, grad_y):
    """(y, grad_x, grad_kernel) in float64, one 3x3 tap at a time (padding 1)."""
    x, kernel, grad_y = (a.astype(np.float64) for a in (x, kernel, grad_y))
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = np.zeros(grad_y.shape)
    grad_padded = np.zeros_like(padded)
    grad_kernel = np.zeros_like(kernel)
    for p in range(3):
        for q in range(3):
            window = padded[:, p:p + h, q:q + w]
            y += window @ kernel[p, q]
            grad_padded[:, p:p + h, q:q + w] += grad_y @ kernel[p, q].T
            grad_kernel[p, q] = np.einsum("nijc,nijf->cf", window, grad_y)
    return y, grad_padded[:, 1:-1, 1:-1], grad_kernel


def errors(seed=0):
    """{algorithm: {pass: (max abs error, worst |error| / (atol + rtol |reference|))}}."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, SHAPE).astype(np.float32)
    kernel = rng.uniform(-1, 1, KERNEL).astype(np.float32)
    grad_y = rng.uniform(-1, 1, (*SHAPE[:3], KERNEL[3])).astype(np.float32)
    expected = reference(x, kernel, grad_y)
    table = {}
    for algorithm in ALGORITHMS:
        y = kernels.conv2d(x, kernel, None, 1, PADDING, algorithm=algorithm)
        grad_x, grad_kernel, _ = kernels.conv2d_backward(x, kernel, grad_y, 1, PADDING,
                                                         algorithm=algorithm)
        table[algorithm] = {}
        for name, got, want in zip(PASSES, (y, grad_x, grad_kernel), expected):
            error = np.abs(got - want)
            table[algorithm][name] = (float(error.max()),
                                      float((error / (ATOL + RTOL * np.abs(want))).max()))
    return table


def lines(table):
    """The Markdown table, with the verdict of the rule for each algorithm and pass."""
    out = ["| algorithm | pass | max abs error | x im2col's | worst error / (2e-5 + 2e-4 "
           "abs(ref)) | auto may pick it |", "|---|---|---|---|---|---|"]
    for algorithm in ALGORITHMS:
        for name in PASSES:
            error, parity = table[algorithm][name]
            base_error, base_parity = table["im2col"][name]
            times = error / base_error
            # Where im2col itself is outside the elementwise tolerance (the kernel gradient
            # sums 65,536 products per weight), the bound is 4x im2col's worst ratio.
            inside = parity <= (1.0 if base_parity <= 1 else TIMES_IM2COL * base_parity)
            verdict = "yes" if algorithm == "im2col" or (times <= TIMES_IM2COL and inside) \
                else "no"
            out.append(f"| {algorithm} | {name} | {error:.2e} | {times:.1f} | {parity:.2f} | "
                       f"{verdict} |")
    return out


if __name__ == "__main__":
    print("\n".join(lines(errors())))
