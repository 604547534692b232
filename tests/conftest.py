import os

import numpy as np
import pytest
from hypothesis import settings

import convnet

# CI runs the property tests harder than a developer's quick loop.
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def threads():
    """Restore the kernels' thread count after a test changes it."""
    before = convnet.get_num_threads()
    yield
    convnet.set_num_threads(before)
