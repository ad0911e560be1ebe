"""Framing of messages between the parent and the worker.

A message is a 4-byte big-endian header length, a JSON header, then the raw
``.npy`` bytes of each array the header lists. Arrays are written and read with
``allow_pickle=False``, so nothing that crosses is ever unpickled or evaluated.

This module runs on both sides of the trust boundary, so it imports only the
standard library and numpy.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np

_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 1 << 20


class WireError(Exception):
    """The other side sent something that is not a well-formed message."""


def encode(header: dict, arrays: list) -> bytes:
    """One message: the header (with the byte length of each array added) and the arrays."""
    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
        blobs.append(buffer.getvalue())
    header = dict(header, blobs=[len(blob) for blob in blobs])
    text = json.dumps(header, allow_nan=False).encode()
    return b"".join([_LENGTH.pack(len(text)), text, *blobs])


def decode_header(data: bytes) -> dict:
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise WireError(f"header is not JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise WireError("header is not an object with a list of blobs")
    if not all(isinstance(size, int) and size >= 0 for size in header["blobs"]):
        raise WireError("blob sizes must be non-negative integers")
    return header


def decode_array(blob: bytes) -> np.ndarray:
    """A plain ndarray from .npy bytes; pickled (object) arrays are refused."""
    try:
        return np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)
    except Exception as error:  # any malformed .npy is the sender's fault, never ours
        raise WireError(f"array is not valid .npy data without pickles: {error}") from None


def receive(read_exactly, max_array_bytes: int | None = None) -> tuple[dict, list]:
    """One message, read through `read_exactly(size) -> bytes` (which raises EOFError at the end)."""
    header = decode_header(read_exactly(header_length(read_exactly(_LENGTH.size))))
    total = sum(header["blobs"])
    if max_array_bytes is not None and total > max_array_bytes:
        raise WireError(f"message of {total} bytes of arrays is larger than {max_array_bytes}")
    return header, [decode_array(read_exactly(size)) for size in header["blobs"]]


def header_length(prefix: bytes) -> int:
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_HEADER_BYTES:
        raise WireError(f"header of {length} bytes is larger than {MAX_HEADER_BYTES}")
    return length
