"""Conv and pool by looping over kernel offsets: each offset adds one shifted slice."""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    s = conv_param['stride']
    p = conv_param['pad']
    n_img, chans, height, width = x.shape
    n_filt, _, kh, kw = w.shape
    padded = np.zeros((n_img, chans, height + 2 * p, width + 2 * p), dtype=x.dtype)
    padded[:, :, p:p + height, p:p + width] = x
    oh = (height + 2 * p - kh) // s + 1
    ow = (width + 2 * p - kw) // s + 1
    result = np.broadcast_to(b[None, :, None, None], (n_img, n_filt, oh, ow)).copy()
    for dy in range(kh):
        for dx in range(kw):
            patch = padded[:, :, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s]
            result += np.einsum('nchw,fc->nfhw', patch, w[:, :, dy, dx])
    return result, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    s, p = conv_param['stride'], conv_param['pad']
    n_img, chans, height, width = x.shape
    n_filt, _, kh, kw = w.shape
    oh, ow = dout.shape[2], dout.shape[3]
    padded = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)])
    grad_padded = np.zeros_like(padded)
    grad_w = np.empty_like(w)
    for dy in range(kh):
        for dx in range(kw):
            rows = slice(dy, dy + s * (oh - 1) + 1, s)
            cols = slice(dx, dx + s * (ow - 1) + 1, s)
            grad_w[:, :, dy, dx] = np.einsum('nfhw,nchw->fc', dout, padded[:, :, rows, cols])
            grad_padded[:, :, rows, cols] += np.einsum('nfhw,fc->nchw', dout, w[:, :, dy, dx])
    grad_b = dout.sum(axis=(0, 2, 3))
    grad_x = grad_padded[:, :, p:p + height, p:p + width]
    return grad_x, grad_w, grad_b


def max_pool_forward_naive(x, pool_param):
    kh, kw = pool_param['pool_height'], pool_param['pool_width']
    s = pool_param['stride']
    n_img, chans, height, width = x.shape
    oh = (height - kh) // s + 1
    ow = (width - kw) // s + 1
    best = np.full((n_img, chans, oh, ow), -np.inf)
    for dy in range(kh):
        for dx in range(kw):
            best = np.maximum(best, x[:, :, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s])
    return best, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    kh, kw = pool_param['pool_height'], pool_param['pool_width']
    s = pool_param['stride']
    oh, ow = dout.shape[2], dout.shape[3]
    best, _ = max_pool_forward_naive(x, pool_param)
    taken = np.zeros(best.shape, dtype=bool)
    grad = np.zeros_like(x)
    for dy in range(kh):
        for dx in range(kw):
            rows = slice(dy, dy + s * (oh - 1) + 1, s)
            cols = slice(dx, dx + s * (ow - 1) + 1, s)
            hit = (x[:, :, rows, cols] == best) & ~taken
            grad[:, :, rows, cols] += dout * hit
            taken |= hit
    return grad
