"""Shared helpers for the benchmark suites (run: pytest benchmarks/ --benchmark-only)."""
import numpy as np
import pytest

import convnet

try:
    import torch
except ImportError:  # the comparison runs only where PyTorch is installed
    torch = None


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}thr")
def threads(request):
    """Run each workload at 1 and 2 threads, for convnet's kernels and for PyTorch alike."""
    before = convnet.get_num_threads()
    convnet.set_num_threads(request.param)
    if torch is not None:
        torch.set_num_threads(request.param)
    yield request.param
    convnet.set_num_threads(before)


def nchw(x, channels_last=True):
    """An NHWC array as a torch tensor in NCHW, stored channels_last (or contiguous NCHW)."""
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()
