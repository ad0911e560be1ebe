"""im2col built by hand with fancy indexing (without the course's helper)."""
import numpy as np


def _gather_indices(C, H, W, fh, fw, stride):
    out_h = (H - fh) // stride + 1
    out_w = (W - fw) // stride + 1
    ch = np.repeat(np.arange(C), fh * fw)
    ky = np.tile(np.repeat(np.arange(fh), fw), C)
    kx = np.tile(np.arange(fw), fh * C)
    oy = stride * np.repeat(np.arange(out_h), out_w)
    ox = stride * np.tile(np.arange(out_w), out_h)
    rows = ky[:, None] + oy[None, :]
    cols = kx[:, None] + ox[None, :]
    return ch[:, None], rows, cols, out_h, out_w


def conv_forward_naive(x, w, b, conv_param):
    pad, stride = conv_param["pad"], conv_param["stride"]
    num, C, H, W = x.shape
    nf, _, fh, fw = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    ch, rows, cols, out_h, out_w = _gather_indices(C, H + 2 * pad, W + 2 * pad, fh, fw, stride)
    patches = xpad[:, ch, rows, cols]  # (num, C*fh*fw, out_h*out_w)
    res = np.matmul(w.reshape(nf, -1)[None], patches) + b[None, :, None]
    out = res.reshape(num, nf, out_h, out_w)
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    pad, stride = conv_param["pad"], conv_param["stride"]
    num, C, H, W = x.shape
    nf, _, fh, fw = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    ch, rows, cols, out_h, out_w = _gather_indices(C, H + 2 * pad, W + 2 * pad, fh, fw, stride)
    patches = xpad[:, ch, rows, cols]
    g = dout.reshape(num, nf, -1)
    dw = np.einsum("nfp,nkp->fk", g, patches).reshape(w.shape)
    db = g.sum(axis=(0, 2))
    dpatches = np.einsum("fk,nfp->nkp", w.reshape(nf, -1), g)
    dxpad = np.zeros_like(xpad)
    for i in range(num):
        np.add.at(dxpad[i], (ch, rows, cols), dpatches[i])
    if pad:
        dxpad = dxpad[:, :, pad:-pad, pad:-pad]
    return dxpad, dw, db


def max_pool_forward_naive(x, pool_param):
    fh, fw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    num, C, H, W = x.shape
    ch, rows, cols, out_h, out_w = _gather_indices(1, H, W, fh, fw, stride)
    patches = x[:, :, rows, cols]  # (num, C, fh*fw, out_h*out_w)
    out = patches.max(axis=2).reshape(num, C, out_h, out_w)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    fh, fw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    num, C, H, W = x.shape
    ch, rows, cols, out_h, out_w = _gather_indices(1, H, W, fh, fw, stride)
    patches = x[:, :, rows, cols]
    best = patches.argmax(axis=2)
    p_idx = np.arange(out_h * out_w)
    dx = np.zeros_like(x)
    g = dout.reshape(num, C, -1)
    for i in range(num):
        for c in range(C):
            np.add.at(dx[i, c], (rows[best[i, c], p_idx], cols[best[i, c], p_idx]), g[i, c])
    return dx
