"""Conv and pool on sliding-window views (numpy's sliding_window_view) and tensordot."""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(arr, fh, fw, step):
    view = sliding_window_view(arr, (fh, fw), axis=(2, 3))
    return view[:, :, ::step, ::step]


def conv_forward_naive(x, w, b, conv_param):
    step = conv_param["stride"]
    margin = conv_param["pad"]
    padded = np.pad(x, ((0, 0), (0, 0), (margin, margin), (margin, margin)), mode="constant")
    fh, fw = w.shape[2:]
    win = _windows(padded, fh, fw, step)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))
    out = out.transpose(0, 3, 1, 2) + b.reshape(1, -1, 1, 1)
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    step, margin = conv_param["stride"], conv_param["pad"]
    padded = np.pad(x, ((0, 0), (0, 0), (margin, margin), (margin, margin)), mode="constant")
    fh, fw = w.shape[2:]
    win = _windows(padded, fh, fw, step)
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    db = dout.sum(axis=(0, 2, 3))
    dpadded = np.zeros_like(padded)
    oh, ow = dout.shape[2:]
    contrib = np.tensordot(dout, w, axes=([1], [0]))
    for r in range(oh):
        for c in range(ow):
            dpadded[:, :, r * step:r * step + fh, c * step:c * step + fw] += contrib[:, r, c]
    h, wd = x.shape[2:]
    return dpadded[:, :, margin:margin + h, margin:margin + wd], dw, db


def max_pool_forward_naive(x, pool_param):
    ph = pool_param["pool_height"]
    pw = pool_param["pool_width"]
    win = _windows(x, ph, pw, pool_param["stride"])
    return win.max(axis=(4, 5)), (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, step = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    win = _windows(x, ph, pw, step)
    n, c, oh, ow = dout.shape
    flat = win.reshape(n, c, oh, ow, ph * pw)
    where = flat.argmax(axis=-1)
    dy, dx = np.unravel_index(where, (ph, pw))
    dx_full = np.zeros_like(x)
    nn, cc, rr, qq = np.indices((n, c, oh, ow))
    np.add.at(dx_full, (nn, cc, rr * step + dy, qq * step + dx), dout)
    return dx_full
