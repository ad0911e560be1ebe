"""Brute-force loop implementations of the layers, the yardstick for the reference."""
import numpy as np


def conv_forward(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = 1 + (h + 2 * pad - hh) // stride
    ow = 1 + (wd + 2 * pad - ww) // stride
    out = np.zeros((n, f, oh, ow))
    for i in range(n):
        for k in range(f):
            for y in range(oh):
                for z in range(ow):
                    window = xp[i, :, y * stride : y * stride + hh, z * stride : z * stride + ww]
                    out[i, k, y, z] = np.sum(window * w[k]) + b[k]
    return out


def conv_backward(dout, x, w, stride, pad):
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(n):
        for k in range(f):
            for y in range(dout.shape[2]):
                for z in range(dout.shape[3]):
                    rows = slice(y * stride, y * stride + hh)
                    cols = slice(z * stride, z * stride + ww)
                    dw[k] += xp[i, :, rows, cols] * dout[i, k, y, z]
                    dxp[i, :, rows, cols] += w[k] * dout[i, k, y, z]
    return dxp[:, :, pad : pad + h, pad : pad + wd], dw, db


def pool_forward(x, ph, pw, stride):
    n, c, h, w = x.shape
    oh = 1 + (h - ph) // stride
    ow = 1 + (w - pw) // stride
    out = np.zeros((n, c, oh, ow))
    for i in range(n):
        for j in range(c):
            for y in range(oh):
                for z in range(ow):
                    out[i, j, y, z] = x[i, j, y * stride : y * stride + ph, z * stride : z * stride + pw].max()
    return out


def pool_backward(dout, x, ph, pw, stride):
    dx = np.zeros_like(x)
    n, c = x.shape[:2]
    for i in range(n):
        for j in range(c):
            for y in range(dout.shape[2]):
                for z in range(dout.shape[3]):
                    window = x[i, j, y * stride : y * stride + ph, z * stride : z * stride + pw]
                    dy, dz = np.unravel_index(np.argmax(window), window.shape)
                    dx[i, j, y * stride + dy, z * stride + dz] += dout[i, j, y, z]
    return dx


def im2col(x, fh, fw, pad, stride):
    """Columns in the course layout: rows (c, dy, dx), columns (out_y, out_x, n), n fastest."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = 1 + (h + 2 * pad - fh) // stride
    ow = 1 + (w + 2 * pad - fw) // stride
    cols = np.zeros((c * fh * fw, oh * ow * n))
    for ch in range(c):
        for dy in range(fh):
            for dx in range(fw):
                row = (ch * fh + dy) * fw + dx
                for y in range(oh):
                    for z in range(ow):
                        for i in range(n):
                            cols[row, (y * ow + z) * n + i] = xp[i, ch, y * stride + dy, z * stride + dx]
    return cols
