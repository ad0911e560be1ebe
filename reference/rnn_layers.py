"""Trusted vectorised recurrent layers (CS231n assignment 3, cs231n/rnn_layers.py conventions).

Every function works in float64 and never writes into its inputs. Shapes:
x (N, D) per step or (N, T, D) per sequence, hidden states (N, H), LSTM
weights Wx (D, 4H), Wh (H, 4H), b (4H,) with gate order i, f, o, g.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_step_forward",
    "rnn_step_backward",
    "rnn_forward",
    "rnn_backward",
    "word_embedding_forward",
    "word_embedding_backward",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "temporal_softmax_loss",
]


def _f64(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def sigmoid(x):
    """Numerically stable logistic function: exp is only taken of non-positive numbers."""
    x = _f64(x)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """next_h = tanh(x @ Wx + prev_h @ Wh + b); returns (next_h, cache)."""
    x, prev_h, Wx, Wh, b = map(_f64, (x, prev_h, Wx, Wh, b))
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Gradients (dx, dprev_h, dWx, dWh, db) of one vanilla RNN step."""
    x, prev_h, Wx, Wh, next_h = cache
    da = _f64(dnext_h) * (1.0 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Run the RNN over x (N, T, D) from h0 (N, H); returns (h (N, T, H), cache)."""
    x, h0 = _f64(x), _f64(h0)
    n, t_steps, _ = x.shape
    h = np.empty((n, t_steps, h0.shape[1]))
    caches = []
    prev_h = h0
    for t in range(t_steps):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(step_cache)
    return h, (x.shape, h0.shape, caches)


def rnn_backward(dh, cache):
    """Backpropagation through time; dh (N, T, H) is the upstream gradient of every hidden state.

    Returns (dx, dh0, dWx, dWh, db).
    """
    x_shape, h0_shape, caches = cache
    dh = _f64(dh)
    n, t_steps, d = x_shape
    hidden = h0_shape[1]
    dx = np.empty(x_shape)
    dprev_h = np.zeros(h0_shape)
    dWx, dWh, db = np.zeros((d, hidden)), np.zeros((hidden, hidden)), np.zeros(hidden)
    for t in reversed(range(t_steps)):
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def word_embedding_forward(x, W):
    """out[n, t] = W[x[n, t]]; returns (out (N, T, D), cache)."""
    x, W = np.asarray(x), _f64(W)
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    """dW: dout summed into the rows of the words used (np.add.at: indices repeat)."""
    x, w_shape = cache
    dW = np.zeros(w_shape)
    np.add.at(dW, x, _f64(dout))
    return dW


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step, gates i, f, o, g; returns (next_h, next_c, cache)."""
    x, prev_h, prev_c, Wx, Wh, b = map(_f64, (x, prev_h, prev_c, Wx, Wh, b))
    a = x @ Wx + prev_h @ Wh + b
    ai, af, ao, ag = np.split(a, 4, axis=1)
    i, f, o, g = sigmoid(ai), sigmoid(af), sigmoid(ao), np.tanh(ag)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients (dx, dprev_h, dprev_c, dWx, dWh, db) of one LSTM step."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dnext_h, dnext_c = _f64(dnext_h), _f64(dnext_c)
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    da = np.concatenate(
        [
            dc * g * i * (1.0 - i),
            dc * prev_c * f * (1.0 - f),
            dnext_h * tanh_c * o * (1.0 - o),
            dc * i * (1.0 - g**2),
        ],
        axis=1,
    )
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """Run the LSTM over x (N, T, D) from h0 with a zero initial cell; returns (h (N, T, H), cache)."""
    x, h0 = _f64(x), _f64(h0)
    n, t_steps, _ = x.shape
    h = np.empty((n, t_steps, h0.shape[1]))
    prev_h, prev_c = h0, np.zeros(h0.shape)
    caches = []
    for t in range(t_steps):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(step_cache)
    return h, (x.shape, h0.shape, caches)


def lstm_backward(dh, cache):
    """Backpropagation through time of the LSTM; returns (dx, dh0, dWx, dWh, db)."""
    x_shape, h0_shape, caches = cache
    dh = _f64(dh)
    n, t_steps, d = x_shape
    hidden = h0_shape[1]
    dx = np.empty(x_shape)
    dprev_h, dprev_c = np.zeros(h0_shape), np.zeros(h0_shape)
    dWx, dWh, db = np.zeros((d, 4 * hidden)), np.zeros((hidden, 4 * hidden)), np.zeros(4 * hidden)
    for t in reversed(range(t_steps)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    """out[n, t] = x[n, t] @ w + b for x (N, T, D); returns (out (N, T, M), cache)."""
    x, w, b = _f64(x), _f64(w), _f64(b)
    return x @ w + b, (x, w, b)


def temporal_affine_backward(dout, cache):
    """Gradients (dx, dw, db) of the temporal affine layer."""
    x, w, b = cache
    dout = _f64(dout)
    n, t_steps, d = x.shape
    flat = dout.reshape(n * t_steps, -1)
    dx = (flat @ w.T).reshape(x.shape)
    dw = x.reshape(n * t_steps, d).T @ flat
    return dx, dw, flat.sum(axis=0)


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy summed over the positions where mask is true, divided by N.

    x (N, T, V) scores, y (N, T) labels, mask (N, T); returns (loss, dx).
    Uses log-sum-exp, so huge scores give a finite loss and gradient.
    """
    x = _f64(x)
    n, t_steps, v = x.shape
    flat = x.reshape(n * t_steps, v)
    labels = np.asarray(y).reshape(n * t_steps)
    weights = np.asarray(mask).reshape(n * t_steps).astype(np.float64)
    rows = np.arange(n * t_steps)
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -(weights * log_probs[rows, labels]).sum() / n
    dx = np.exp(log_probs)
    dx[rows, labels] -= 1.0
    dx *= weights[:, None] / n
    if verbose:
        print("dx_flat: ", dx.shape)
    return np.float64(loss), dx.reshape(n, t_steps, v)
