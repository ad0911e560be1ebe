"""Loops over output positions only; batch and filters handled by matrix products."""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    S = conv_param.get('stride', 1)
    P = conv_param.get('pad', 0)
    N = x.shape[0]
    F, C, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    Ho = 1 + (xp.shape[2] - KH) // S
    Wo = 1 + (xp.shape[3] - KW) // S
    wm = w.reshape(F, -1).T
    y = np.empty((N, F, Ho, Wo))
    r = 0
    while r < Ho:
        c = 0
        while c < Wo:
            block = xp[:, :, r * S:r * S + KH, c * S:c * S + KW].reshape(N, -1)
            y[:, :, r, c] = block @ wm + b
            c += 1
        r += 1
    return y, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    S, P = conv_param['stride'], conv_param['pad']
    N, _, H, W = x.shape
    F, C, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    gxp = np.zeros(xp.shape)
    gw = np.zeros((F, C * KH * KW))
    wm = w.reshape(F, -1)
    Ho, Wo = dout.shape[2:]
    for r in range(Ho):
        for c in range(Wo):
            block = xp[:, :, r * S:r * S + KH, c * S:c * S + KW].reshape(N, -1)
            g = dout[:, :, r, c]
            gw += g.T @ block
            gxp[:, :, r * S:r * S + KH, c * S:c * S + KW] += (g @ wm).reshape(N, C, KH, KW)
    gb = dout.sum(axis=0).sum(axis=1).sum(axis=1)
    return gxp[:, :, P:P + H, P:P + W], gw.reshape(w.shape), gb


def max_pool_forward_naive(x, pool_param):
    S = pool_param['stride']
    KH, KW = pool_param['pool_height'], pool_param['pool_width']
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - KH) // S, 1 + (W - KW) // S
    y = np.empty((N, C, Ho, Wo))
    for r in range(Ho):
        for c in range(Wo):
            y[:, :, r, c] = x[:, :, r * S:r * S + KH, c * S:c * S + KW].reshape(N, C, -1).max(axis=2)
    return y, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    S = pool_param['stride']
    KH, KW = pool_param['pool_height'], pool_param['pool_width']
    N, C, H, W = x.shape
    gx = np.zeros_like(x)
    Ho, Wo = dout.shape[2:]
    for r in range(Ho):
        for c in range(Wo):
            region = x[:, :, r * S:r * S + KH, c * S:c * S + KW].reshape(N * C, -1)
            idx = region.argmax(axis=1)
            onehot = np.zeros_like(region)
            onehot[np.arange(N * C), idx] = dout[:, :, r, c].ravel()
            gx[:, :, r * S:r * S + KH, c * S:c * S + KW] += onehot.reshape(N, C, KH, KW)
    return gx
