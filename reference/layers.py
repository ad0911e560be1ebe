"""Trusted vectorised conv and max-pool layers, built on the im2col helper.

Inputs are NCHW float64 arrays; caches follow the course's canonical layout:
conv ``(x, w, b, conv_param)``, max pool ``(x, pool_param)``. The conv layers
keep their large temporaries in per-thread scratch memory (reference/scratch.py);
nothing they return shares memory with it.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from reference.im2col import check_geometry, col2im_indices, fill_columns, im2col_indices
from reference.scratch import scratch

__all__ = [
    "conv_forward_naive",
    "conv_backward_naive",
    "max_pool_forward_naive",
    "max_pool_backward_naive",
]


def _require_ndim(name: str, array: np.ndarray, ndim: int, layout: str) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional {layout}, got shape {array.shape}")


def _require_param(params: dict, owner: str, key: str, low: int) -> int:
    if key not in params:
        raise ValueError(f"{owner} is missing {key!r}")
    value = params[key]
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{owner}[{key!r}] must be an integer >= {low}, got {value!r}")
    return int(value)


def _conv_geometry(x, w, b, conv_param):
    _require_ndim("x", x, 4, "(N, C, H, W)")
    _require_ndim("w", w, 4, "(F, C, HH, WW)")
    _require_ndim("b", b, 1, "(F,)")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} channels but x has {x.shape[1]} (w {w.shape}, x {x.shape})")
    if b.shape[0] != w.shape[0]:
        raise ValueError(f"b has {b.shape[0]} entries but w has {w.shape[0]} filters")
    stride = _require_param(conv_param, "conv_param", "stride", 1)
    pad = _require_param(conv_param, "conv_param", "pad", 0)
    return stride, pad


def _columns_and_ones(x, field_height, field_width, pad, stride):
    """im2col columns of x with a row of ones appended, in this thread's scratch memory.

    The ones row carries the bias through the same matrix product (the bias
    trick): forward adds b, and backward gets db as dw's extra column.
    """
    n, c = x.shape[:2]
    out_h, out_w = check_geometry(x.shape, field_height, field_width, pad, stride)
    rows = c * field_height * field_width
    cols = scratch("cols", (rows + 1, out_h * out_w * n), x.dtype)
    fill_columns(x, field_height, field_width, pad, stride, cols[:rows], partial(scratch, "padded"))
    cols[rows] = 1
    return cols, out_h, out_w


def conv_forward_naive(x, w, b, conv_param):
    """Cross-correlate x with filters w, add bias b; returns (out, cache)."""
    stride, pad = _conv_geometry(x, w, b, conv_param)
    n = x.shape[0]
    f, _, hh, ww = w.shape
    cols, out_h, out_w = _columns_and_ones(x, hh, ww, pad, stride)
    weights_and_bias = np.concatenate([w.reshape(f, -1), b.reshape(f, 1)], axis=1)
    out = weights_and_bias @ cols
    out = out.reshape(f, out_h, out_w, n).transpose(3, 0, 1, 2)  # a view: no copy
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Gradients (dx, dw, db) of the conv layer from the canonical cache."""
    x, w, b, conv_param = cache
    stride, pad = _conv_geometry(x, w, b, conv_param)
    f, _, hh, ww = w.shape
    _require_ndim("dout", dout, 4, "(N, F, H', W')")
    cols, out_h, out_w = _columns_and_ones(x, hh, ww, pad, stride)
    if dout.shape != (x.shape[0], f, out_h, out_w):
        raise ValueError(f"dout has shape {dout.shape}, which does not match the conv output for x {x.shape}")
    dout_rows = scratch("dout", (f, out_h, out_w, x.shape[0]), dout.dtype)
    np.copyto(dout_rows, dout.transpose(1, 2, 3, 0))
    dout_rows = dout_rows.reshape(f, -1)
    dw_and_db = dout_rows @ cols.T
    dw = np.ascontiguousarray(dw_and_db[:, :-1]).reshape(w.shape)
    db = dw_and_db[:, -1].copy()
    dx_cols = scratch("dx_cols", (cols.shape[0] - 1, cols.shape[1]), np.result_type(w, dout_rows))
    np.matmul(w.reshape(f, -1).T, dout_rows, out=dx_cols)
    dx = col2im_indices(dx_cols, x.shape, hh, ww, padding=pad, stride=stride)
    return dx, dw, db


def _pool_geometry(x, pool_param):
    _require_ndim("x", x, 4, "(N, C, H, W)")
    height = _require_param(pool_param, "pool_param", "pool_height", 1)
    width = _require_param(pool_param, "pool_param", "pool_width", 1)
    stride = _require_param(pool_param, "pool_param", "stride", 1)
    return height, width, stride


def _pool_columns(x, height, width, stride):
    n, c, h, w = x.shape
    return im2col_indices(x.reshape(n * c, 1, h, w), height, width, padding=0, stride=stride)


def max_pool_forward_naive(x, pool_param):
    """Max over each pooling window; returns (out, cache)."""
    height, width, stride = _pool_geometry(x, pool_param)
    n, c, h, w = x.shape
    cols = _pool_columns(x, height, width, stride)
    out = cols.max(axis=0)
    out_h = 1 + (h - height) // stride
    out_w = 1 + (w - width) // stride
    out = out.reshape(out_h, out_w, n, c).transpose(2, 3, 0, 1)
    return np.ascontiguousarray(out), (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Route dout to the first maximum of each window; overlapping windows accumulate."""
    x, pool_param = cache
    height, width, stride = _pool_geometry(x, pool_param)
    n, c, h, w = x.shape
    cols = _pool_columns(x, height, width, stride)
    _require_ndim("dout", dout, 4, "(N, C, H', W')")
    routed = dout.transpose(2, 3, 0, 1).reshape(-1)
    if routed.size != cols.shape[1]:
        raise ValueError(f"dout has shape {dout.shape}, which does not match the pool output for x {x.shape}")
    dcols = np.zeros_like(cols)
    dcols[cols.argmax(axis=0), np.arange(cols.shape[1])] = routed
    dx = col2im_indices(dcols, (n * c, 1, h, w), height, width, padding=0, stride=stride)
    return dx.reshape(x.shape)
