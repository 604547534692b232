import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import settings

import convnet

# CI runs the property tests harder than a developer's quick loop.
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The tests that compare thread counts must get the counts they ask for, however busy the
# machine running them is: the count does not adapt to the load here (tests/test_threads.py
# turns that on where it tests it).
convnet.set_num_threads(convnet.get_num_threads(), adaptive=False)

TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def at_1_2_3_threads(compute):
    """compute() at 3 threads, checked byte for byte against the same at 1 and 2 threads."""
    before = convnet.get_num_threads()
    try:
        convnet.set_num_threads(3)
        results = compute()
        for count in (1, 2):
            convnet.set_num_threads(count)
            for a, b in zip(results, compute()):
                assert a.tobytes() == b.tobytes(), f"results differ between 3 and {count} threads"
    finally:
        convnet.set_num_threads(before)
    return results


@pytest.fixture
def threads():
    """Restore the kernels' thread count after a test changes it."""
    before = convnet.get_num_threads()
    yield
    convnet.set_num_threads(before)


# ASan (scripts/asan.sh sets CONVNET_ASAN=1) shadows every mapping, so a test that maps
# gigabytes of zero pages would make it commit an eighth of them.
needs_address_space = pytest.mark.skipif(os.environ.get("CONVNET_ASAN") == "1",
                                         reason="maps gigabytes of zero pages; not under ASan")


def run_python(script, cwd, timeout=120):
    """Run `script` in a fresh interpreter (one that may crash or hang without taking pytest
    with it) and return the completed process, its output as text.

    cwd: `python -c` puts the working directory first on sys.path, and a source checkout's
    convnet/ (without compiled kernels) must not shadow the one under test."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd,
                          timeout=timeout, capture_output=True, text=True)


@pytest.fixture(scope="session")
def keras_ops():
    """Keras 3's keras.ops as a reference, on a backend that runs here (torch; the numpy
    backend needs jax), or skip."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    try:
        keras.ops.convert_to_numpy(keras.ops.moments(np.zeros((2, 1), np.float32), [0]))
    except Exception as error:  # a backend whose library is not installed
        pytest.skip(f"keras.ops does not run here: {error}")
    return keras.ops


def assert_conv_matches_loops(results, x, w, b, grad_y, strides, padding, dilation):
    """(y, y through the ReLU, grad_x, grad_kernel, grad_bias) of one convolution checked
    against the plain NumPy loops of tests/reference.py (padding resolved to pairs)."""
    import reference as ref
    y, y_relu, *grads = results
    tol = TOLERANCE[x.dtype.type]
    expected = ref.conv2d(x, w, b, strides, padding, dilation)
    np.testing.assert_allclose(y, expected, **tol)
    np.testing.assert_allclose(y_relu, np.maximum(expected, 0), **tol)
    for got, want in zip(grads, ref.conv2d_backward(x, w, grad_y, strides, padding, dilation)):
        assert got.dtype == x.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)

