"""Reference ThreeLayerConvNet (assignment 2, cs231n/classifiers/cnn.py).

conv - relu - 2x2 max pool - affine - relu - affine - softmax, on the trusted
layers of reference/layers.py. The pool follows the layer contract's floor
formula, H' = 1 + (H - 2) // 2: on an odd size its last row or column is in no
window (the reference pool layer rejects such input, so it only ever sees the
covered part, and the rest gets a zero gradient).
"""
from __future__ import annotations

import numpy as np

from reference.layers import (
    affine_backward,
    affine_forward,
    conv_backward_naive,
    conv_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
    relu_backward,
    relu_forward,
    softmax_loss,
)

__all__ = ["ThreeLayerConvNet"]

POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _pooled_size(size: int) -> int:
    """Output size of the 2x2, stride-2 pool along one axis."""
    return 1 + (size - POOL_PARAM["pool_height"]) // POOL_PARAM["stride"]


def _pool_forward(x: np.ndarray):
    """Max pool of the part of x that the windows cover; returns (out, (x_shape, pool_cache))."""
    covered_h = 2 * _pooled_size(x.shape[2])
    covered_w = 2 * _pooled_size(x.shape[3])
    out, cache = max_pool_forward_naive(np.ascontiguousarray(x[:, :, :covered_h, :covered_w]), POOL_PARAM)
    return out, (x.shape, cache)


def _pool_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx of _pool_forward: zero on the rows and columns no window covers."""
    x_shape, pool_cache = cache
    covered = max_pool_backward_naive(dout, pool_cache)
    dx = np.zeros(x_shape)
    dx[:, :, : covered.shape[2], : covered.shape[3]] = covered
    return dx


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax, for inputs (N, C, H, W).

    The conv has stride 1 and pad (filter_size - 1) // 2, so an odd filter keeps H and W.
    Parameters: W1 (F, C, fs, fs), b1 (F,), W2 (F*Hp*Wp, hidden), b2 (hidden,),
    W3 (hidden, classes), b3 (classes,), with (Hp, Wp) the pool's output size.
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype=np.float32,
    ):
        self.params = {}
        self.reg = reg
        self.dtype = dtype
        C, H, W = input_dim
        pad = (filter_size - 1) // 2
        conv_h, conv_w = H + 2 * pad - filter_size + 1, W + 2 * pad - filter_size + 1
        flat = num_filters * _pooled_size(conv_h) * _pooled_size(conv_w)
        self.params["W1"] = weight_scale * np.random.randn(num_filters, C, filter_size, filter_size)
        self.params["b1"] = np.zeros(num_filters)
        self.params["W2"] = weight_scale * np.random.randn(flat, hidden_dim)
        self.params["b2"] = np.zeros(hidden_dim)
        self.params["W3"] = weight_scale * np.random.randn(hidden_dim, num_classes)
        self.params["b3"] = np.zeros(num_classes)
        for k, v in self.params.items():
            self.params[k] = v.astype(dtype)

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        """Class scores (N, classes) when y is None, else (loss, grads) with L2 on W1, W2, W3."""
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        W3, b3 = self.params["W3"], self.params["b3"]
        conv_param = {"stride": 1, "pad": (W1.shape[2] - 1) // 2}

        X = np.asarray(X, dtype=np.float64)
        conv, conv_cache = conv_forward_naive(X, W1.astype(np.float64), b1.astype(np.float64), conv_param)
        conv_relu, conv_relu_cache = relu_forward(conv)
        pooled, pool_cache = _pool_forward(conv_relu)
        hidden, hidden_cache = affine_forward(pooled, W2, b2)
        hidden_relu, hidden_relu_cache = relu_forward(hidden)
        scores, scores_cache = affine_forward(hidden_relu, W3, b3)
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = {"W1": W1, "W2": W2, "W3": W3}
        loss = data_loss + 0.5 * self.reg * sum(np.sum(np.square(w, dtype=np.float64)) for w in weights.values())

        grads = {}
        dhidden_relu, grads["W3"], grads["b3"] = affine_backward(dscores, scores_cache)
        dhidden = relu_backward(dhidden_relu, hidden_relu_cache)
        dpooled, grads["W2"], grads["b2"] = affine_backward(dhidden, hidden_cache)
        dconv_relu = _pool_backward(dpooled, pool_cache)
        dconv = relu_backward(dconv_relu, conv_relu_cache)
        _, grads["W1"], grads["b1"] = conv_backward_naive(dconv, conv_cache)
        for name, w in weights.items():
            grads[name] = grads[name] + self.reg * w
        return float(loss), grads
