"""Framing of messages between the parent and the worker.

A message is a 4-byte big-endian header length, a JSON header, then the raw
``.npy`` bytes of each array the header lists. Nothing that crosses is ever
unpickled or evaluated: each array's ``.npy`` header is parsed and checked
(a plain numeric dtype, a shape whose size matches the bytes announced) before
its data is read, and the data becomes a read-only array over immutable bytes,
which nobody can make writable again.

This module runs on both sides of the trust boundary, so it imports only the
standard library and numpy.
"""
from __future__ import annotations

import io
import json
import math
import re
import struct

import numpy as np

#: text fields of a reply must match these (the parent's schema, gradeconv.sandbox.replies, checks
#: them; the worker keeps to them): an exception's type, a module name, a "file:line"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"
DOTTED = r"^[A-Za-z_][A-Za-z0-9_.]{0,199}$"
LOCATION = r"^[A-Za-z0-9_./-]{1,200}:[0-9]{1,9}$"

_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 1 << 20
MAX_NPY_HEADER_BYTES = 4096
MAX_DIMENSIONS = 32
#: dtype kinds that may cross: booleans, integers, floats, complex numbers
NUMERIC_KINDS = "biufc"


class WireError(Exception):
    """The other side sent something that is not a well-formed message."""


#: a .npy version 1.0 header exactly as numpy writes one for plain numeric data
_CANONICAL = re.compile(rb"\{'descr': '(?P<descr>[<>|][biufc][0-9]{1,2})', 'fortran_order': (?P<fortran>True|False), "
                        rb"'shape': \((?P<shape>(?:[0-9]{1,13}, )*(?:[0-9]{1,13},?)?)\), \} *\n")


def encode(header: dict, arrays: list) -> bytes:
    """One message: the header (with the byte length of each array added) and the arrays."""
    blobs = [_npy(np.asarray(array)) for array in arrays]
    header = dict(header, blobs=[len(blob) for blob in blobs])
    text = json.dumps(header, allow_nan=False).encode()
    return b"".join([_LENGTH.pack(len(text)), text, *blobs])


def _npy(array: np.ndarray) -> bytes:
    """The .npy bytes of an array: the canonical 1.0 header for plain numeric data, numpy's writer else."""
    if array.dtype.kind in NUMERIC_KINDS and array.dtype.fields is None and array.dtype.subdtype is None:
        text = f"{{'descr': '{array.dtype.str}', 'fortran_order': False, 'shape': {array.shape!r}, }}"
        padded = text + " " * (-(10 + len(text) + 1) % 64) + "\n"
        if len(padded) < 1 << 16:
            return b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded.encode() + \
                np.ascontiguousarray(array).tobytes()
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_header(data: bytes) -> dict:
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise WireError(f"header is not JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise WireError("header is not an object with a list of blobs")
    if not all(type(size) is int and size >= 0 for size in header["blobs"]):
        raise WireError("blob sizes must be non-negative integers")
    return header


def receive(read_exactly, max_array_bytes: int | None = None) -> tuple[dict, list]:
    """One message, read through `read_exactly(size) -> bytes` (which raises EOFError at the end).

    With max_array_bytes, a message announcing more array bytes than that is
    refused before any of them is read.
    """
    header = decode_header(read_exactly(header_length(read_exactly(_LENGTH.size))))
    total = sum(header["blobs"])
    if max_array_bytes is not None and total > max_array_bytes:
        raise WireError(f"the reply carries {total} bytes of arrays, more than the {max_array_bytes} "
                        "this call can legitimately return")
    return header, [read_array(read_exactly, size) for size in header["blobs"]]


def header_length(prefix: bytes) -> int:
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_HEADER_BYTES:
        raise WireError(f"header of {length} bytes is larger than {MAX_HEADER_BYTES}")
    return length


def read_array(read_exactly, size: int) -> np.ndarray:
    """A read-only array from `size` bytes of .npy data, its header checked before its data is read."""
    if size < 10:
        raise WireError("array data is shorter than a .npy header")
    prefix = read_exactly(10)
    if prefix[:6] != b"\x93NUMPY" or prefix[6] not in (1, 2):
        raise WireError("array data does not start with a .npy header")
    if prefix[6] == 1:
        length, start = int.from_bytes(prefix[8:10], "little"), 10
    else:
        prefix += read_exactly(2)
        length, start = int.from_bytes(prefix[8:12], "little"), 12
    if length > MAX_NPY_HEADER_BYTES or start + length > size:
        raise WireError(f"the .npy header of {length} bytes does not fit")
    dtype, shape, order = _parse_npy_header(prefix + read_exactly(length))
    count = math.prod(shape)
    if count * dtype.itemsize != size - start - length:
        raise WireError(f"an array of shape {shape} and dtype {dtype} does not fill "
                        f"{size - start - length} bytes")
    data = read_exactly(count * dtype.itemsize)
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)


def _parse_npy_header(raw: bytes) -> tuple[np.dtype, tuple[int, ...], str]:
    """dtype, shape and memory order of a .npy header, refusing anything but plain numeric data.

    The canonical header numpy writes is read by a strict pattern (no evaluation at all);
    any other is left to numpy's own parser, then checked the same way."""
    canonical = _CANONICAL.fullmatch(raw, 10) if raw[6] == 1 else None
    try:
        if canonical:
            dtype = np.dtype(canonical["descr"].decode())
            fortran = canonical["fortran"] == b"True"
            shape = tuple(int(size) for size in canonical["shape"].split(b",") if size.strip())
        else:
            stream = io.BytesIO(raw)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(stream)]
            shape, fortran, dtype = reader(stream, max_header_size=MAX_NPY_HEADER_BYTES)
    except Exception as error:  # any malformed header is the sender's fault, never ours
        raise WireError(f"array header is not a valid .npy header: {error}") from None
    if (dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None
            or dtype.hasobject):
        raise WireError(f"arrays of dtype {dtype} are not accepted: only plain numeric data crosses")
    if (len(shape) > MAX_DIMENSIONS
            or not all(type(size) is int and 0 <= size < 1 << 40 for size in shape)):
        raise WireError(f"array shape {shape!r} is not acceptable")
    return dtype, tuple(shape), "F" if fortran else "C"
