import numpy as np
from im2col import im2col_indices, col2im_indices


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = (H + 2 * pad - HH) // stride + 1
    W_out = (W + 2 * pad - WW) // stride + 1
    cols = im2col_indices(x, HH, WW, padding=pad, stride=stride)
    out = w.reshape(F, -1) @ cols + b.reshape(-1, 1)
    out = out.reshape(F, H_out, W_out, N).transpose(3, 0, 1, 2)
    return out, (x, w, b, conv_param, cols)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache[:4]
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    cols = cache[4] if len(cache) > 4 else im2col_indices(x, HH, WW, padding=pad, stride=stride)
    db = dout.sum(axis=(0, 2, 3))
    dout_rows = dout.transpose(1, 2, 3, 0).reshape(F, -1)
    dw = (dout_rows @ cols.T).reshape(w.shape)
    dx = col2im_indices(w.reshape(F, -1).T @ dout_rows, x.shape, HH, WW, padding=pad, stride=stride)
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    cols = im2col_indices(x.reshape(N * C, 1, H, W), ph, pw, padding=0, stride=s)
    out = cols.max(axis=0).reshape((H - ph) // s + 1, (W - pw) // s + 1, N, C).transpose(2, 3, 0, 1)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    cols = im2col_indices(x.reshape(N * C, 1, H, W), ph, pw, padding=0, stride=s)
    dcols = np.zeros_like(cols)
    dcols[cols.argmax(axis=0), np.arange(cols.shape[1])] = dout.transpose(2, 3, 0, 1).ravel()
    return col2im_indices(dcols, (N * C, 1, H, W), ph, pw, padding=0, stride=s).reshape(x.shape)
