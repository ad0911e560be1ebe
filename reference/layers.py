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
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "svm_loss",
    "softmax_loss",
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "layernorm_forward",
    "layernorm_backward",
    "dropout_forward",
    "dropout_backward",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "spatial_groupnorm_forward",
    "spatial_groupnorm_backward",
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


# ---------------------------------------------------------------------------
# The rest of assignment 2 (cs231n/layers.py, 2021+ conventions). Every function
# works in float64 and never writes into its inputs; batchnorm replaces the
# running statistics in bn_param with new arrays.
# ---------------------------------------------------------------------------


def _f64(array) -> np.ndarray:
    """array as float64 (no copy when it already is)."""
    return np.asarray(array, dtype=np.float64)


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b; returns (out, (x, w, b))."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Gradients (dx, dw, db) of the affine layer; dx has x's original shape."""
    x, w, b = cache
    dout = _f64(dout)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """out = max(x, 0); cache is x."""
    x = _f64(x)
    return np.maximum(x, 0.0), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0."""
    return np.where(cache > 0, _f64(dout), 0.0)


def svm_loss(x, y):
    """Multiclass hinge loss (margin 1, correct class excluded) averaged over N; returns (loss, dx)."""
    x = _f64(x)
    y = np.asarray(y)
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0.0, x - x[rows, y][:, None] + 1.0)
    margins[rows, y] = 0.0
    loss = margins.sum() / n
    positive = (margins > 0).astype(np.float64)
    positive[rows, y] -= positive.sum(axis=1)
    return np.float64(loss), positive / n


def softmax_loss(x, y):
    """Cross-entropy of softmax(x) averaged over N (row max subtracted); returns (loss, dx)."""
    x = _f64(x)
    y = np.asarray(y)
    n = x.shape[0]
    rows = np.arange(n)
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].sum() / n
    dx = np.exp(log_probs)
    dx[rows, y] -= 1.0
    return np.float64(loss), dx / n


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation of x (N, D); returns (out, cache).

    Train mode normalises with the biased batch statistics and stores new running
    averages in bn_param; test mode uses the running statistics. As in the course,
    bn_param receives 'running_mean'/'running_var' (zeros when absent) in both modes.
    """
    x, gamma, beta = _f64(x), _f64(gamma), _f64(beta)
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = _f64(bn_param.get("running_mean", np.zeros(d)))
    running_var = _f64(bn_param.get("running_var", np.zeros(d)))
    if mode == "train":
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var
    elif mode == "test":
        inv_std = 1.0 / np.sqrt(running_var + eps)
        x_hat = (x - running_mean) * inv_std
    else:
        raise ValueError(f"Invalid forward batchnorm mode {mode!r}")
    out = gamma * x_hat + beta
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, (mode, x_hat, inv_std, gamma)


def _batchnorm_test_backward(dout, cache):
    _, x_hat, inv_std, gamma = cache
    return dout * gamma * inv_std, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) by walking the forward computation graph backwards."""
    dout = _f64(dout)
    if cache[0] == "test":
        return _batchnorm_test_backward(dout, cache)
    _, x_hat, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    centred = x_hat / inv_std  # x - mean
    dinv_std = (dx_hat * centred).sum(axis=0)
    dvar = dinv_std * -0.5 * inv_std**3  # d(var + eps)^(-1/2) / dvar
    dcentred = dx_hat * inv_std + dvar * 2.0 * centred / n
    dx = dcentred - dcentred.sum(axis=0) / n
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """Gradients (dx, dgamma, dbeta) from the simplified closed form."""
    dout = _f64(dout)
    if cache[0] == "test":
        return _batchnorm_test_backward(dout, cache)
    _, x_hat, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    """Normalise each row of x (N, D) over its features; returns (out, cache)."""
    x, gamma, beta = _f64(x), _f64(gamma), _f64(beta)
    eps = ln_param.get("eps", 1e-5)
    mean = x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma)


def layernorm_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) of layer normalisation."""
    dout = _f64(dout)
    x_hat, inv_std, gamma = cache
    d = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / d * (
        d * dx_hat - dx_hat.sum(axis=1, keepdims=True) - x_hat * (dx_hat * x_hat).sum(axis=1, keepdims=True)
    )
    return dx, dgamma, dbeta


def dropout_forward(x, dropout_param):
    """Inverted dropout with KEEP probability p; returns (out, (dropout_param, mask)).

    As in the course, np.random.seed(seed) runs whenever 'seed' is present (in
    either mode), and train mode draws np.random.rand(*x.shape) once. Test mode
    returns a copy of x and mask None.
    """
    x = _f64(x)
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = None
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        out = x * mask
    elif mode == "test":
        out = x.copy()
    else:
        raise ValueError(f"Invalid forward dropout mode {mode!r}")
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    """dx = dout * mask in train mode, dout in test mode."""
    dropout_param, mask = cache
    dout = _f64(dout)
    if dropout_param["mode"] == "train":
        return dout * mask
    return dout.copy()


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation of x (N, C, H, W) per channel over N*H*W; gamma, beta (C,)."""
    x = _f64(x)
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), cache


def spatial_batchnorm_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) of spatial batchnorm; dgamma, dbeta (C,)."""
    dout = _f64(dout)
    n, c, h, w = dout.shape
    dx, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, c), cache)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group normalisation of x (N, C, H, W) over G blocks of C // G consecutive channels.

    gamma and beta have shape (1, C, 1, 1) (the course) or (C,); the backward's
    dgamma and dbeta take gamma's shape.
    """
    x, gamma, beta = _f64(x), _f64(gamma), _f64(beta)
    n, c, h, w = x.shape
    if G < 1 or c % G:
        raise ValueError(f"G={G} does not divide C={c}")
    eps = gn_param.get("eps", 1e-5)
    groups = x.reshape(n, G, -1)
    mean = groups.mean(axis=2, keepdims=True)
    inv_std = 1.0 / np.sqrt(groups.var(axis=2, keepdims=True) + eps)
    x_hat = ((groups - mean) * inv_std).reshape(x.shape)
    out = gamma.reshape(1, c, 1, 1) * x_hat + beta.reshape(1, c, 1, 1)
    return out, (G, x_hat, inv_std, gamma)


def spatial_groupnorm_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) of spatial group normalisation."""
    G, x_hat, inv_std, gamma = cache
    dout = _f64(dout)
    n, c, h, w = dout.shape
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3)).reshape(gamma.shape)
    dbeta = dout.sum(axis=(0, 2, 3)).reshape(gamma.shape)
    dx_hat = (dout * gamma.reshape(1, c, 1, 1)).reshape(n, G, -1)
    x_hat = x_hat.reshape(n, G, -1)
    m = x_hat.shape[2]
    dx = inv_std / m * (
        m * dx_hat - dx_hat.sum(axis=2, keepdims=True) - x_hat * (dx_hat * x_hat).sum(axis=2, keepdims=True)
    )
    return dx.reshape(dout.shape), dgamma, dbeta
