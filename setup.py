"""The Cython extensions of convnet._core and their OpenMP flags (the rest is in pyproject.toml)."""
import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# CONVNET_BOUNDSCHECK=1 turns bounds and wraparound checks back on, to hunt a crash.
CHECKED = os.environ.get("CONVNET_BOUNDSCHECK", "0") == "1"
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": CHECKED,
    "wraparound": CHECKED,
    "initializedcheck": CHECKED,
    "cdivision": True,
}


def compiler_has_openmp(compiler, flag):
    """Compile and link a tiny OpenMP program with `flag`; False if the compiler refuses."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "check_openmp.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=[flag])
            # LDFLAGS too: a sanitizer build's objects only link with its runtime.
            compiler.link_executable(objects, os.path.join(tmp, "check_openmp"),
                                     extra_postargs=[flag] + os.environ.get("LDFLAGS", "").split())
        except Exception:
            return False
    return True


class BuildExtWithOptionalOpenMP(build_ext):
    """Adds -fopenmp where the compiler supports it; otherwise the kernels build serial."""

    def build_extensions(self):
        is_msvc = self.compiler.compiler_type == "msvc"
        flag = "/openmp" if is_msvc else "-fopenmp"
        optimise = [] if is_msvc else ["-O3"]
        use_openmp = os.environ.get("CONVNET_NO_OPENMP", "0") != "1" and compiler_has_openmp(
            self.compiler, flag)
        if not use_openmp:
            print("convnet: no OpenMP in this compiler; the kernels will run on one thread",
                  file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = optimise + ([flag] if use_openmp else [])
            ext.extra_link_args = [flag] if use_openmp and not is_msvc else []
        super().build_extensions()


extensions = [
    Extension(f"convnet._core.{name}", [f"convnet/_core/{name}.pyx"],
              include_dirs=[numpy.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    for name in ("conv", "depthwise", "direct", "image", "layer_norm", "linalg", "norm", "pool",
                 "resize", "threads", "winograd")
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES),
    cmdclass={"build_ext": BuildExtWithOptionalOpenMP},
)
