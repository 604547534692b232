"""The IDX file format of MNIST and Fashion-MNIST, gzip-compressed or not.

Header: two zero bytes, a type code, the number of dimensions, then each
dimension as a big-endian uint32; the data follows, big-endian, row-major.
"""
import gzip
import math
import os
import struct
import zlib

import numpy as np

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _TYPES.items()}
# Deflate never expands data more than 1032 times (zlib's technical notes), which bounds
# the size a gzip file can honestly declare; reads then go in chunks of _CHUNK bytes.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 24


class IDXFormatError(ValueError):
    """An IDX file with a bad magic number, an impossible header or missing data."""


def read_idx(path):
    """The array stored in an IDX file (``.gz`` is decompressed), in native byte order.

    The header is untrusted: the size it declares is compared with what the file can
    hold before anything is read, so a forged header is an IDXFormatError, never an
    OverflowError or a giant allocation.
    """
    path = os.fspath(path)
    compressed = path.endswith(".gz")
    opener = gzip.open if compressed else open
    try:
        file_size = os.path.getsize(path)
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
            declared = f"the header declares shape {shape} ({expected} bytes)"
            if compressed:
                capacity = file_size * _MAX_DEFLATE_RATIO
                if expected > capacity:
                    raise IDXFormatError(f"{path}: the data is truncated: {declared}, more than "
                                         f"a gzip file of {file_size} bytes can hold")
                data = _read_at_most(f, expected + 1)
            else:
                available = file_size - 4 - 4 * ndim
                if expected != available:
                    what = "truncated" if available < expected else "longer than its header says"
                    raise IDXFormatError(f"{path}: the data is {what}: {declared}, the file "
                                         f"holds {available}")
                data = f.read(expected)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise IDXFormatError(f"{path}: cannot read the file ({error})") from None
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise IDXFormatError(f"{path}: the data is {what}: {declared}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_at_most(f, limit):
    """Up to `limit` bytes of `f`, in chunks, so memory grows with the data actually there
    rather than with what a header claims."""
    data = bytearray()
    while len(data) < limit:
        chunk = f.read(min(limit - len(data), _CHUNK))
        if not chunk:
            break
        data += chunk
    return data


def write_idx(path, array):
    """Write `array` as an IDX file (gzip-compressed when `path` ends in .gz)."""
    array = np.asarray(array)
    code = _CODES[array.dtype.newbyteorder("=")]
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(bytes([0, 0, code, array.ndim]))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(_TYPES[code]).tobytes())
