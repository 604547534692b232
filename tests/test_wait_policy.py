"""convnet sets a short OpenMP spin before libgomp loads, unless the user chose a wait policy."""
import os
import subprocess
import sys

import pytest

import convnet
from convnet import _wait_policy

# Where the convnet under test lives (the checkout, or site-packages where CI installed it)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(convnet.__file__)))


def _runtime_settings(**env):
    """libgomp's own report of its settings (OMP_DISPLAY_ENV) in a fresh `import convnet`."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    paths = [ROOT] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environ.update(env, OMP_DISPLAY_ENV="verbose", PYTHONPATH=os.pathsep.join(paths))
    # From the filesystem root: a checkout in the working directory (what CI runs the tests
    # from) must not shadow the convnet under test.
    result = subprocess.run([sys.executable, "-c", "import convnet"], env=environ,
                            capture_output=True, text=True, timeout=120, cwd=os.sep)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


@pytest.mark.parametrize("env, expected", [
    ({}, "GOMP_SPINCOUNT = '10000'"),
    ({"GOMP_SPINCOUNT": "123"}, "GOMP_SPINCOUNT = '123'"),
    ({"OMP_WAIT_POLICY": "active"}, "OMP_WAIT_POLICY = 'ACTIVE'"),
])
def test_libgomp_sees_the_short_spin_unless_the_user_chose(env, expected):
    settings = _runtime_settings(**env)
    if "GOMP_SPINCOUNT" not in settings:
        pytest.skip("the kernels were not built with libgomp")
    assert expected in settings


def test_bound_spinning_keeps_what_the_user_set():
    environ = {}
    _wait_policy.bound_spinning(environ)
    assert environ == {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}
    for chosen in ({"OMP_WAIT_POLICY": "passive"}, {"GOMP_SPINCOUNT": "5", "KMP_BLOCKTIME": "7"}):
        environ = dict(chosen)
        _wait_policy.bound_spinning(environ)
        assert environ == chosen
