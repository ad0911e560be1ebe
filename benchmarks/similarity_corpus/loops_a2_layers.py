"""Assignment 2 layers written sample by sample, the way a first attempt often is."""
import numpy as np


def affine_forward(x, w, b):
    rows = x.shape[0]
    flat = np.reshape(x, (rows, np.prod(x.shape[1:])))
    out = np.dot(flat, w)
    for i in range(rows):
        out[i] = out[i] + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    rows = x.shape[0]
    flat = np.reshape(x, (rows, -1))
    dw = np.zeros_like(w)
    for i in range(rows):
        dw += np.outer(flat[i], dout[i])
    dx = np.reshape(np.dot(dout, w.T), x.shape)
    db = np.zeros_like(b)
    for i in range(rows):
        db += dout[i]
    return dx, dw, db


def svm_loss(x, y):
    num = x.shape[0]
    loss = 0.0
    dx = np.zeros_like(x)
    for i in range(num):
        correct = x[i, y[i]]
        for j in range(x.shape[1]):
            if j == y[i]:
                continue
            gap = x[i, j] - correct + 1.0
            if gap > 0:
                loss += gap
                dx[i, j] += 1.0
                dx[i, y[i]] -= 1.0
    return loss / num, dx / num


def softmax_loss(x, y):
    num = x.shape[0]
    loss = 0.0
    dx = np.zeros_like(x)
    for i in range(num):
        row = x[i] - np.max(x[i])
        e = np.exp(row)
        prob = e / np.sum(e)
        loss -= np.log(prob[y[i]])
        prob[y[i]] -= 1
        dx[i] = prob
    return loss / num, dx / num


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param['mode']
    eps = bn_param.get('eps', 1e-5)
    momentum = bn_param.get('momentum', 0.9)
    D = x.shape[1]
    running_mean = bn_param.get('running_mean', np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get('running_var', np.zeros(D, dtype=x.dtype))
    cache = None
    if mode == 'train':
        mu = np.mean(x, axis=0)
        centered = x - mu
        var = np.mean(centered ** 2, axis=0)
        inv = 1.0 / np.sqrt(var + eps)
        normed = centered * inv
        out = gamma * normed + beta
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var = momentum * running_var + (1 - momentum) * var
        cache = (normed, inv, gamma)
    else:
        out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
    bn_param['running_mean'] = running_mean
    bn_param['running_var'] = running_var
    return out, cache


def batchnorm_backward(dout, cache):
    normed, inv, gamma = cache
    m = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * normed, axis=0)
    dnormed = dout * gamma
    dx = (inv / m) * (m * dnormed - np.sum(dnormed, axis=0) - normed * np.sum(dnormed * normed, axis=0))
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get('eps', 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    sd = np.sqrt(x.var(axis=1, keepdims=True) + eps)
    z = (x - mu) / sd
    return z * gamma + beta, (z, sd, gamma)


def layernorm_backward(dout, cache):
    z, sd, gamma = cache
    d = z.shape[1]
    dz = dout * gamma
    dx = (dz - dz.mean(axis=1, keepdims=True) - z * (dz * z).mean(axis=1, keepdims=True)) / sd
    return dx, (dout * z).sum(axis=0), dout.sum(axis=0)


def dropout_forward(x, dropout_param):
    keep = dropout_param['p']
    if dropout_param.get('seed') is not None:
        np.random.seed(dropout_param['seed'])
    if dropout_param['mode'] != 'train':
        return x.copy(), (dropout_param, None)
    mask = (np.random.rand(*x.shape) < keep) / keep
    return x * mask, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if dropout_param['mode'] == 'train':
        return dout * mask
    return dout
