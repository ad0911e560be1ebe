"""The course's fast conv and max-pool layers (cs231n/fast_layers.py) in plain numpy.

The course builds these on a compiled Cython extension; here the same names and
caches run on numpy alone (strided views, and the im2col helper staged beside
this module), so a submission's imports work without a compiler. Geometry that
does not tile the input follows the layer contract's floor formulas
(H' = 1 + (H + 2*pad - HH) // stride): conv_forward_strides and the pools
simply ignore the rows and columns no window reaches, whose gradient is zero;
conv_forward_im2col, like the course's, needs the windows to tile.

There is deliberately no __all__: as in the course, a star import of this
module also brings the im2col helpers and np.
"""
from __future__ import annotations

import numpy as np

from .im2col import col2im_indices, im2col_indices


def _conv_output_size(x_shape, w_shape, pad: int, stride: int) -> tuple[int, int]:
    """(out_h, out_w) by the floor formula; a ValueError when the filter does not fit."""
    _, _, height, width = x_shape
    _, _, field_h, field_w = w_shape
    out_h = 1 + (height + 2 * pad - field_h) // stride
    out_w = 1 + (width + 2 * pad - field_w) // stride
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {field_h}x{field_w} filter does not fit the input {tuple(x_shape)} padded by {pad}")
    return out_h, out_w


def conv_forward_im2col(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict):
    """Conv as one matrix product with the im2col columns; cache (x, w, b, conv_param, x_cols)."""
    n = x.shape[0]
    f, _, field_h, field_w = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    out_h, out_w = _conv_output_size(x.shape, w.shape, pad, stride)
    x_cols = im2col_indices(x, field_h, field_w, pad, stride)  # raises when the windows do not tile
    res = w.reshape(f, -1) @ x_cols + b.reshape(-1, 1)
    out = res.reshape(f, out_h, out_w, n).transpose(3, 0, 1, 2)
    return out, (x, w, b, conv_param, x_cols)


def conv_backward_im2col(dout: np.ndarray, cache):
    """Gradients (dx, dw, db) of conv_forward_im2col, dx scattered back by col2im."""
    x, w, b, conv_param, x_cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    f, _, field_h, field_w = w.shape
    db = dout.sum(axis=(0, 2, 3))
    dout_rows = dout.transpose(1, 2, 3, 0).reshape(f, -1)
    dw = (dout_rows @ x_cols.T).reshape(w.shape)
    dx_cols = w.reshape(f, -1).T @ dout_rows
    dx = col2im_indices(dx_cols, x.shape, field_h, field_w, pad, stride)
    return dx, dw, db


def _strided_columns(x, field_h, field_w, pad, stride, out_h, out_w):
    """Columns (C*HH*WW, N*out_h*out_w) of the padded x, rows (c, dy, dx), columns (n, y, x)."""
    n, c = x.shape[:2]
    x_padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    s_n, s_c, s_h, s_w = x_padded.strides
    windows = np.lib.stride_tricks.as_strided(
        x_padded,
        shape=(c, field_h, field_w, n, out_h, out_w),
        strides=(s_c, s_h, s_w, s_n, stride * s_h, stride * s_w),
        writeable=False,
    )
    return np.ascontiguousarray(windows).reshape(c * field_h * field_w, n * out_h * out_w)


def _col2im_6d(dx_cols, x_shape, pad, stride):
    """Scatter-add columns shaped (C, HH, WW, N, out_h, out_w) back into an array of x_shape."""
    n, c, height, width = x_shape
    _, field_h, field_w, _, out_h, out_w = dx_cols.shape
    padded = np.zeros((n, c, height + 2 * pad, width + 2 * pad), dtype=dx_cols.dtype)
    by_offset = dx_cols.transpose(1, 2, 3, 0, 4, 5)  # (HH, WW, N, C, out_h, out_w)
    row_stop, col_stop = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    for dy in range(field_h):
        for dx in range(field_w):
            padded[:, :, dy : dy + row_stop : stride, dx : dx + col_stop : stride] += by_offset[dy, dx]
    return padded[:, :, pad : pad + height, pad : pad + width]


def conv_forward_strides(x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict):
    """Conv with columns gathered through a strided view; cache (x, w, b, conv_param, x_cols)."""
    n = x.shape[0]
    f, _, field_h, field_w = w.shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    out_h, out_w = _conv_output_size(x.shape, w.shape, pad, stride)
    x_cols = _strided_columns(x, field_h, field_w, pad, stride, out_h, out_w)
    res = w.reshape(f, -1) @ x_cols + b.reshape(-1, 1)
    out = np.ascontiguousarray(res.reshape(f, n, out_h, out_w).transpose(1, 0, 2, 3))
    return out, (x, w, b, conv_param, x_cols)


def conv_backward_strides(dout: np.ndarray, cache):
    """Gradients (dx, dw, db) of conv_forward_strides."""
    x, w, b, conv_param, x_cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, c = x.shape[:2]
    f, _, field_h, field_w = w.shape
    _, _, out_h, out_w = dout.shape
    db = dout.sum(axis=(0, 2, 3))
    dout_rows = dout.transpose(1, 0, 2, 3).reshape(f, -1)
    dw = (dout_rows @ x_cols.T).reshape(w.shape)
    dx_cols = (w.reshape(f, -1).T @ dout_rows).reshape(c, field_h, field_w, n, out_h, out_w)
    return _col2im_6d(dx_cols, x.shape, pad, stride), dw, db


conv_forward_fast = conv_forward_strides
conv_backward_fast = conv_backward_strides


def _pool_sizes(x_shape, pool_param) -> tuple[int, int, int, int, int]:
    """(pool_height, pool_width, stride, out_h, out_w) by the floor formula."""
    _, _, height, width = x_shape
    pool_h, pool_w, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    out_h, out_w = 1 + (height - pool_h) // stride, 1 + (width - pool_w) // stride
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {pool_h}x{pool_w} pool does not fit the input {tuple(x_shape)}")
    return pool_h, pool_w, stride, out_h, out_w


def max_pool_forward_fast(x: np.ndarray, pool_param: dict):
    """Max pool by reshaping when the windows tile without overlap, else by im2col; cache (method, cache)."""
    _, _, height, width = x.shape
    pool_h, pool_w, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    same_size = pool_h == pool_w == stride
    tiles = height % pool_h == 0 and width % pool_w == 0
    if same_size and tiles:
        out, reshape_cache = max_pool_forward_reshape(x, pool_param)
        return out, ("reshape", reshape_cache)
    out, im2col_cache = max_pool_forward_im2col(x, pool_param)
    return out, ("im2col", im2col_cache)


def max_pool_backward_fast(dout: np.ndarray, cache):
    """dx of max_pool_forward_fast, by the method its forward used."""
    method, real_cache = cache
    if method == "reshape":
        return max_pool_backward_reshape(dout, real_cache)
    if method == "im2col":
        return max_pool_backward_im2col(dout, real_cache)
    raise ValueError(f'Unrecognized method "{method}"')


def max_pool_forward_reshape(x: np.ndarray, pool_param: dict):
    """Max pool of square windows equal to the stride that tile x; cache (x, x_reshaped, out)."""
    n, c, height, width = x.shape
    pool_h, pool_w, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    if not pool_h == pool_w == stride:
        raise ValueError(f"reshape pooling needs pool_height == pool_width == stride, got {pool_param}")
    if height % pool_h or width % pool_w:
        raise ValueError(f"reshape pooling needs {pool_h}x{pool_w} windows that tile the input {x.shape}")
    x_reshaped = x.reshape(n, c, height // pool_h, pool_h, width // pool_w, pool_w)
    out = x_reshaped.max(axis=3).max(axis=4)
    return out, (x, x_reshaped, out)


def max_pool_backward_reshape(dout: np.ndarray, cache):
    """dx of max_pool_forward_reshape; as in the course, tied maxima share their window's gradient."""
    x, x_reshaped, out = cache
    dx_reshaped = np.zeros_like(x_reshaped)
    mask = x_reshaped == out[:, :, :, np.newaxis, :, np.newaxis]
    dout_broadcast, _ = np.broadcast_arrays(dout[:, :, :, np.newaxis, :, np.newaxis], dx_reshaped)
    dx_reshaped[mask] = dout_broadcast[mask]
    dx_reshaped /= np.sum(mask, axis=(3, 5), keepdims=True)
    return dx_reshaped.reshape(x.shape)


def max_pool_forward_im2col(x: np.ndarray, pool_param: dict):
    """Max pool of any windows via im2col columns; cache (x, x_cols, x_cols_argmax, pool_param)."""
    n, c = x.shape[:2]
    pool_h, pool_w, stride, out_h, out_w = _pool_sizes(x.shape, pool_param)
    covered = x[:, :, : stride * (out_h - 1) + pool_h, : stride * (out_w - 1) + pool_w]
    x_split = covered.reshape(n * c, 1, *covered.shape[2:])
    x_cols = im2col_indices(x_split, pool_h, pool_w, padding=0, stride=stride)
    x_cols_argmax = np.argmax(x_cols, axis=0)
    x_cols_max = x_cols[x_cols_argmax, np.arange(x_cols.shape[1])]
    out = x_cols_max.reshape(out_h, out_w, n, c).transpose(2, 3, 0, 1)
    return out, (x, x_cols, x_cols_argmax, pool_param)


def max_pool_backward_im2col(dout: np.ndarray, cache):
    """dx of max_pool_forward_im2col: dout routed to each window's first maximum, overlaps summed."""
    x, x_cols, x_cols_argmax, pool_param = cache
    n, c, height, width = x.shape
    pool_h, pool_w, stride, out_h, out_w = _pool_sizes(x.shape, pool_param)
    covered_h, covered_w = stride * (out_h - 1) + pool_h, stride * (out_w - 1) + pool_w
    dx_cols = np.zeros_like(x_cols, dtype=np.result_type(x_cols, dout))
    dx_cols[x_cols_argmax, np.arange(dx_cols.shape[1])] = dout.transpose(2, 3, 0, 1).reshape(-1)
    covered = col2im_indices(dx_cols, (n * c, 1, covered_h, covered_w), pool_h, pool_w, padding=0, stride=stride)
    dx = np.zeros(x.shape, dtype=dx_cols.dtype)
    dx[:, :, :covered_h, :covered_w] = covered.reshape(n, c, covered_h, covered_w)
    return dx
