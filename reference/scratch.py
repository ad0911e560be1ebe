"""Per-thread reusable buffers for the layers' temporaries.

A conv layer called repeatedly on one large shape (a training loop, a
benchmark) would otherwise allocate its column matrices afresh on every call
and pay the kernel's page faults for each; like Caffe's column buffer, the
memory is kept and reused. Nothing returned to a caller ever aliases it.
"""
from __future__ import annotations

import math
import threading

import numpy as np

#: Buffers outside this range are allocated per call and not kept: small ones
#: come cheaply from the heap, and huge ones are not worth holding on to.
KEEP_FROM_BYTES = 256 * 2**10
KEEP_AT_MOST_BYTES = 64 * 2**20

_local = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array of `shape`, backed by this thread's buffer for `slot`."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if not KEEP_FROM_BYTES <= nbytes <= KEEP_AT_MOST_BYTES:
        return np.empty(shape, dtype)
    buffers = kept()
    buffer = buffers.get(slot)
    if buffer is None or buffer.size < nbytes:
        buffer = buffers[slot] = np.empty(nbytes, np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def kept() -> dict[str, np.ndarray]:
    """This thread's kept buffers (raw bytes), by slot."""
    if not hasattr(_local, "buffers"):
        _local.buffers = {}
    return _local.buffers


def release() -> None:
    """Drop this thread's buffers (the next calls pay their page faults again)."""
    _local.buffers = {}
