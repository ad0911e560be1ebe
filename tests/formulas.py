"""Independent yardsticks for the assignment-2 and -3 reference layers.

Plain Python loops over samples, features, groups and time steps, written from
the definitions (not from the vectorised reference), plus a central-difference
numeric gradient. Scalars are computed with the math module where possible.
"""
import math

import numpy as np


def numeric_gradient(f, array, h=1e-6):
    """Central differences of the scalar f() with respect to every element of array (changed in place, restored)."""
    grad = np.zeros_like(array, dtype=np.float64)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + h
        plus = f()
        array[index] = old - h
        minus = f()
        array[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


def contracted(forward, dout):
    """The scalar sum(forward() * dout) whose gradient is the backward of dout."""
    return lambda: float(np.sum(forward() * dout))


def affine(x, w, b):
    n = x.shape[0]
    rows = x.reshape(n, -1)
    out = np.zeros((n, w.shape[1]))
    for i in range(n):
        for j in range(w.shape[1]):
            total = b[j]
            for k in range(rows.shape[1]):
                total += rows[i, k] * w[k, j]
            out[i, j] = total
    return out


def relu(x):
    out = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        out[index] = x[index] if x[index] > 0 else 0.0
    return out


def svm(x, y):
    n, classes = x.shape
    loss = 0.0
    for i in range(n):
        for j in range(classes):
            if j != y[i]:
                loss += max(0.0, x[i, j] - x[i, y[i]] + 1.0)
    return loss / n


def softmax(x, y):
    """Per-sample cross-entropy via log-sum-exp around the row's maximum."""
    n = x.shape[0]
    loss = 0.0
    for i in range(n):
        top = max(x[i])
        log_total = top + math.log(sum(math.exp(s - top) for s in x[i]))
        loss += log_total - x[i, y[i]]
    return loss / n


def softmax_gradient(x, y):
    """d loss / dx = (softmax(x) - onehot(y)) / N, element by element."""
    n, classes = x.shape
    dx = np.zeros((n, classes))
    for i in range(n):
        top = max(x[i])
        total = sum(math.exp(s - top) for s in x[i])
        for j in range(classes):
            dx[i, j] = (math.exp(x[i, j] - top) / total - (1.0 if j == y[i] else 0.0)) / n
    return dx


def mean_and_variance(values):
    """Mean and biased variance of a flat list of numbers, by two explicit passes."""
    values = list(values)
    mean = sum(values) / len(values)
    return mean, sum((v - mean) ** 2 for v in values) / len(values)


def batchnorm_train(x, gamma, beta, eps, momentum, running_mean, running_var):
    """Returns (out, new_running_mean, new_running_var), column by column."""
    n, d = x.shape
    out = np.zeros((n, d))
    new_mean, new_var = np.zeros(d), np.zeros(d)
    for j in range(d):
        mean, var = mean_and_variance(x[i, j] for i in range(n))
        for i in range(n):
            out[i, j] = gamma[j] * (x[i, j] - mean) / math.sqrt(var + eps) + beta[j]
        new_mean[j] = momentum * running_mean[j] + (1 - momentum) * mean
        new_var[j] = momentum * running_var[j] + (1 - momentum) * var
    return out, new_mean, new_var


def batchnorm_test(x, gamma, beta, eps, running_mean, running_var):
    n, d = x.shape
    out = np.zeros((n, d))
    for i in range(n):
        for j in range(d):
            out[i, j] = gamma[j] * (x[i, j] - running_mean[j]) / math.sqrt(running_var[j] + eps) + beta[j]
    return out


def layernorm(x, gamma, beta, eps):
    n, d = x.shape
    out = np.zeros((n, d))
    for i in range(n):
        mean, var = mean_and_variance(x[i, j] for j in range(d))
        for j in range(d):
            out[i, j] = gamma[j] * (x[i, j] - mean) / math.sqrt(var + eps) + beta[j]
    return out


def spatial_batchnorm_train(x, gamma, beta, eps, momentum, running_mean, running_var):
    n, c, h, w = x.shape
    out = np.zeros(x.shape)
    new_mean, new_var = np.zeros(c), np.zeros(c)
    for k in range(c):
        mean, var = mean_and_variance(x[i, k, y, z] for i in range(n) for y in range(h) for z in range(w))
        for i in range(n):
            for y in range(h):
                for z in range(w):
                    out[i, k, y, z] = gamma[k] * (x[i, k, y, z] - mean) / math.sqrt(var + eps) + beta[k]
        new_mean[k] = momentum * running_mean[k] + (1 - momentum) * mean
        new_var[k] = momentum * running_var[k] + (1 - momentum) * var
    return out, new_mean, new_var


def spatial_groupnorm(x, gamma, beta, groups, eps):
    """Group g of sample i holds channels g*C/G .. (g+1)*C/G - 1 over all positions."""
    n, c, h, w = x.shape
    size = c // groups
    gamma, beta = np.ravel(gamma), np.ravel(beta)
    out = np.zeros(x.shape)
    for i in range(n):
        for g in range(groups):
            channels = range(g * size, (g + 1) * size)
            mean, var = mean_and_variance(x[i, k, y, z] for k in channels for y in range(h) for z in range(w))
            for k in channels:
                for y in range(h):
                    for z in range(w):
                        out[i, k, y, z] = gamma[k] * (x[i, k, y, z] - mean) / math.sqrt(var + eps) + beta[k]
    return out


def _sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))


def rnn(x, h0, wx, wh, b):
    """Hidden states h (N, T, H), one scalar at a time."""
    n, steps, d = x.shape
    hidden = h0.shape[1]
    h = np.zeros((n, steps, hidden))
    for i in range(n):
        prev = list(h0[i])
        for t in range(steps):
            now = []
            for j in range(hidden):
                a = b[j] + sum(x[i, t, k] * wx[k, j] for k in range(d)) + sum(prev[k] * wh[k, j] for k in range(hidden))
                now.append(math.tanh(a))
            h[i, t] = now
            prev = now
    return h


def lstm(x, h0, wx, wh, b, c0=None):
    """Hidden states h (N, T, H) and cells c (N, T, H); gate blocks i, f, o, g of the 4H pre-activations."""
    n, steps, d = x.shape
    hidden = h0.shape[1]
    h = np.zeros((n, steps, hidden))
    c = np.zeros((n, steps, hidden))
    for i in range(n):
        prev_h = list(h0[i])
        prev_c = [0.0] * hidden if c0 is None else list(c0[i])
        for t in range(steps):
            a = [
                b[j] + sum(x[i, t, k] * wx[k, j] for k in range(d)) + sum(prev_h[k] * wh[k, j] for k in range(hidden))
                for j in range(4 * hidden)
            ]
            now_h, now_c = [], []
            for j in range(hidden):
                gate_i = _sigmoid(a[j])
                gate_f = _sigmoid(a[hidden + j])
                gate_o = _sigmoid(a[2 * hidden + j])
                gate_g = math.tanh(a[3 * hidden + j])
                cell = gate_f * prev_c[j] + gate_i * gate_g
                now_c.append(cell)
                now_h.append(gate_o * math.tanh(cell))
            h[i, t], c[i, t] = now_h, now_c
            prev_h, prev_c = now_h, now_c
    return h, c


def word_embedding(x, w):
    n, steps = x.shape
    out = np.zeros((n, steps, w.shape[1]))
    for i in range(n):
        for t in range(steps):
            out[i, t] = w[x[i, t]]
    return out


def word_embedding_gradient(x, dout, vocabulary):
    """dW[v] = sum of dout[i, t] over every (i, t) with x[i, t] == v."""
    dw = np.zeros((vocabulary, dout.shape[2]))
    for v in range(vocabulary):
        for i in range(x.shape[0]):
            for t in range(x.shape[1]):
                if x[i, t] == v:
                    dw[v] += dout[i, t]
    return dw


def temporal_affine(x, w, b):
    n, steps, _ = x.shape
    out = np.zeros((n, steps, w.shape[1]))
    for t in range(steps):
        out[:, t] = affine(x[:, t], w, b)
    return out


def temporal_softmax(x, y, mask):
    """Sum over masked (i, t) of the cross-entropy, divided by N."""
    n, steps, _ = x.shape
    loss = 0.0
    for i in range(n):
        for t in range(steps):
            if mask[i, t]:
                loss += softmax(x[i, t][None, :], [y[i, t]])
    return loss / n
