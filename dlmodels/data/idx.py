"""Reader for the IDX format of the MNIST family (http://yann.lecun.com/exdb/mnist/).

Layout, all integers big-endian: two zero bytes, a dtype code byte, an ``ndim`` byte, then
``ndim`` uint32 sizes, then ``prod(sizes)`` items of that dtype in row-major order.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from dlmodels.data.cache import DataError

IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: corrupted or truncated gzip stream ({e})") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzipped or not (told by its first bytes ``1f 8b``, not its name).

    Returns an array of shape ``sizes`` in native byte order with the header's dtype (uint8, int8,
    int16, int32, float32 or float64). Raises `DataError` on a bad magic number, an incomplete
    header, or a payload that is not exactly ``prod(sizes) * itemsize`` bytes.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: not an IDX file: {len(data)} bytes, shorter than the 4-byte magic")
    zero0, zero1, code, ndim = data[:4]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: not an IDX file: magic number {data[:4].hex()} (expected 0000 "
                        f"then a dtype code in {sorted(hex(c) for c in IDX_DTYPES)} and ndim >= 1)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: truncated IDX header: expected {header_len} bytes for "
                        f"{ndim} dimensions, got {len(data)}")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_len
    if actual != expected:
        kind = "truncated" if actual < expected else "oversized"
        raise DataError(f"{path}: {kind} IDX payload: shape {shape} of {dtype.name} needs "
                        f"{expected} bytes after the {header_len}-byte header, got {actual}")
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
