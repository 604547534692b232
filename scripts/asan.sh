#!/usr/bin/env bash
# Build convnet's kernels with AddressSanitizer (and bounds checks off, as shipped) in a scratch
# copy of the package, then run the kernel, error, saving and reliability (threads, fork) tests
# under it. Any out-of-bounds read or write in _core makes ASan abort the run with a report.
# Tests that map gigabytes of zero pages skip themselves (CONVNET_ASAN=1): ASan's shadow of
# them costs more than a gigabyte of memory.
#   bash scripts/asan.sh            (needs gcc with libasan, and the test extras)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r convnet setup.py pyproject.toml README.md "$work"/
rm -f "$work"/convnet/_core/*.so "$work"/convnet/_core/*.c
(cd "$work" && CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
    LDFLAGS="-fsanitize=address" python setup.py -q build_ext --inplace >/dev/null)
libasan=$(gcc -print-file-name=libasan.so)
# Run from the scratch copy, so that it (not a build in the repository) is what imports, in
# pytest and in the child interpreters some tests start (they inherit LD_PRELOAD too).
cd "$work"
export PYTHONPATH="$work" CONVNET_ASAN=1
LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0 python -c "
import convnet, convnet._core.conv as conv
assert conv.__file__.startswith('$work'), conv.__file__
assert convnet._core.threads.openmp_enabled(), 'the ASan build lost OpenMP'
print('asan: testing', conv.__file__)"
# CPython itself is not instrumented: its allocator's leaks are not ours to report.
LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    python -m pytest -q -p no:cacheprovider --rootdir "$repo" "$repo/tests/test_kernels.py" \
    "$repo/tests/test_errors.py" "$repo/tests/test_saving.py" "$repo/tests/test_reliability.py" \
    "$@"
echo "asan: no reports"
