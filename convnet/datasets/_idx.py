"""The IDX file format of MNIST and Fashion-MNIST, gzip-compressed or not.

Header: two zero bytes, a type code, the number of dimensions, then each
dimension as a big-endian uint32; the data follows, big-endian, row-major.
"""
import gzip
import math
import os
import struct

import numpy as np

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}


class IDXFormatError(ValueError):
    """An IDX file with a bad magic number, an impossible header or missing data."""


def read_idx(path):
    """The array stored in an IDX file (``.gz`` is decompressed), in native byte order."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
                raise IDXFormatError(f"{path}: bad IDX magic number {head.hex() or '(empty)'}; "
                                     f"expected 0000 followed by a type code and a rank")
            dtype = np.dtype(_TYPES[head[2]])
            ndim = head[3]
            dims_bytes = f.read(4 * ndim)
            if len(dims_bytes) != 4 * ndim:
                raise IDXFormatError(f"{path}: the header is truncated")
            shape = struct.unpack(f">{ndim}I", dims_bytes)
            expected = math.prod(shape) * dtype.itemsize
            data = f.read(expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise IDXFormatError(f"{path}: cannot read the file ({error})") from None
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise IDXFormatError(f"{path}: the data is {what}: the header declares shape {shape} "
                             f"({expected} bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write `array` as an IDX file (gzip-compressed when `path` ends in .gz)."""
    array = np.asarray(array)
    code = _CODES[array.dtype.newbyteorder("=")]
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(bytes([0, 0, code, array.ndim]))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(_TYPES[code]).tobytes())
