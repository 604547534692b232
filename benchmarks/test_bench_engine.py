"""Kernel benchmarks, convnet beside PyTorch CPU in the same run (when torch is installed).

    pytest benchmarks/ --benchmark-only --benchmark-group-by=group,param:threads

W1: conv 32x32, 32 -> 64 channels, 3x3, pad 1, batch 64, float32.
W4: max pooling 2x2 on batch 64, 64 channels, 32x32.
"""
import numpy as np
import pytest

from convnet import ops

from conftest import nchw, torch

RNG = np.random.default_rng(0)
W1_X = RNG.standard_normal((64, 32, 32, 32)).astype(np.float32)
W1_K = RNG.standard_normal((3, 3, 32, 64)).astype(np.float32) * 0.1
W1_G = RNG.standard_normal((64, 32, 32, 64)).astype(np.float32)
W4_X = RNG.standard_normal((64, 32, 32, 64)).astype(np.float32)
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
LAYOUTS = pytest.mark.parametrize("channels_last", [True, False], ids=["cl", "nchw"])


@pytest.mark.benchmark(group="W1 conv forward")
def test_w1_forward_convnet(benchmark, threads):
    benchmark(ops.conv2d, W1_X, W1_K, None, 1, 1)


@needs_torch
@LAYOUTS
@pytest.mark.benchmark(group="W1 conv forward")
def test_w1_forward_torch(benchmark, threads, channels_last):
    x, k = nchw(W1_X, channels_last), nchw(W1_K.transpose(3, 0, 1, 2), channels_last)
    with torch.no_grad():
        benchmark(torch.nn.functional.conv2d, x, k, None, 1, 1)


@pytest.mark.benchmark(group="W1 conv forward+backward")
def test_w1_forward_backward_convnet(benchmark, threads):
    def step():
        ops.conv2d(W1_X, W1_K, None, 1, 1)
        ops.conv2d_backward(W1_X, W1_K, W1_G, 1, 1)
    benchmark(step)


@needs_torch
@LAYOUTS
@pytest.mark.benchmark(group="W1 conv forward+backward")
def test_w1_forward_backward_torch(benchmark, threads, channels_last):
    x = nchw(W1_X, channels_last).requires_grad_()
    k = nchw(W1_K.transpose(3, 0, 1, 2), channels_last).requires_grad_()
    g = nchw(W1_G, channels_last)

    def step():
        torch.nn.functional.conv2d(x, k, None, 1, 1).backward(g)
    benchmark(step)


@pytest.mark.benchmark(group="W4 max pool forward")
def test_w4_max_pool_convnet(benchmark, threads):
    benchmark(ops.max_pool2d, W4_X, 2)


@needs_torch
@LAYOUTS
@pytest.mark.benchmark(group="W4 max pool forward")
def test_w4_max_pool_torch(benchmark, threads, channels_last):
    x = nchw(W4_X, channels_last)
    with torch.no_grad():
        benchmark(torch.nn.functional.max_pool2d, x, 2)
