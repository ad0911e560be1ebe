"""Trusted fully connected models of assignment 2 (cs231n/classifiers/fc_net.py, 2019+ course).

Both models keep their parameters in ``self.params`` (W1, b1, W2, ...; gamma_i and
beta_i for normalised hidden layers) and compute everything with the reference
layers. ``loss(X)`` returns the class scores (test mode); ``loss(X, y)`` returns
``(loss, grads)`` with a gradient for every parameter, the softmax data loss plus
``0.5 * reg * sum(W_i ** 2)`` over every weight matrix (biases and the
normalisation parameters are not regularised).
"""
from __future__ import annotations

import numpy as np

from reference.layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)

__all__ = ["TwoLayerNet", "FullyConnectedNet"]

#: normalization name -> (forward, backward) of the reference layer
_NORMALIZATIONS = {
    "batchnorm": (batchnorm_forward, batchnorm_backward),
    "layernorm": (layernorm_forward, layernorm_backward),
}


def _l2(reg: float, weights) -> float:
    """The regularisation term 0.5 * reg * sum(W ** 2) over the weight matrices."""
    return 0.5 * reg * sum(float(np.sum(w * w)) for w in weights)


class TwoLayerNet:
    """affine - relu - affine - softmax, with parameters W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)."""

    def __init__(
        self,
        input_dim: int = 3 * 32 * 32,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
    ) -> None:
        self.reg = reg
        self.params = {
            "W1": weight_scale * np.random.randn(input_dim, hidden_dim),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * np.random.randn(hidden_dim, num_classes),
            "b2": np.zeros(num_classes),
        }

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        """Scores (N, C) when y is None, else (loss, grads)."""
        p = self.params
        hidden, affine1_cache = affine_forward(X, p["W1"], p["b1"])
        hidden, relu_cache = relu_forward(hidden)
        scores, affine2_cache = affine_forward(hidden, p["W2"], p["b2"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        loss += _l2(self.reg, [p["W1"], p["W2"]])
        grads = {}
        dhidden, grads["W2"], grads["b2"] = affine_backward(dscores, affine2_cache)
        dhidden = relu_backward(dhidden, relu_cache)
        _, grads["W1"], grads["b1"] = affine_backward(dhidden, affine1_cache)
        grads["W1"] += self.reg * p["W1"]
        grads["W2"] += self.reg * p["W2"]
        return loss, grads


class FullyConnectedNet:
    """{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine - softmax.

    dropout_keep_ratio is the probability of KEEPING a unit (1 disables dropout);
    seed, when given, seeds every dropout layer (as the course does, for gradient checks).
    Parameters are drawn as weight_scale * randn (biases and beta zero, gamma one)
    and stored as dtype; X is cast to dtype, and scores and gradients come back as dtype.
    """

    def __init__(
        self,
        hidden_dims: list[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout_keep_ratio: float = 1,
        normalization: str | None = None,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype=np.float32,
        seed: int | None = None,
    ) -> None:
        if normalization is not None and normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be None, 'batchnorm' or 'layernorm', got {normalization!r}")
        self.normalization = normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.dtype = dtype
        self.params = {}
        dims = [input_dim, *hidden_dims, num_classes]
        for layer in range(1, self.num_layers + 1):
            self.params[f"W{layer}"] = weight_scale * np.random.randn(dims[layer - 1], dims[layer])
            self.params[f"b{layer}"] = np.zeros(dims[layer])
            if normalization is not None and layer < self.num_layers:
                self.params[f"gamma{layer}"] = np.ones(dims[layer])
                self.params[f"beta{layer}"] = np.zeros(dims[layer])

        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self.bn_params = []
        if normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in hidden_dims]
        elif normalization == "layernorm":
            self.bn_params = [{} for _ in hidden_dims]

        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def _hidden_forward(self, x, layer):
        """One hidden layer (1-based); returns (out, cache) with the cache of each step."""
        p = self.params
        out, affine_cache = affine_forward(x, p[f"W{layer}"], p[f"b{layer}"])
        norm_cache = drop_cache = None
        if self.normalization is not None:
            forward, _ = _NORMALIZATIONS[self.normalization]
            out, norm_cache = forward(out, p[f"gamma{layer}"], p[f"beta{layer}"], self.bn_params[layer - 1])
        out, relu_cache = relu_forward(out)
        if self.use_dropout:
            out, drop_cache = dropout_forward(out, self.dropout_param)
        return out, (affine_cache, norm_cache, relu_cache, drop_cache)

    def _hidden_backward(self, dout, layer, cache, grads):
        """Backward through one hidden layer: stores its gradients in grads, returns d(input)."""
        affine_cache, norm_cache, relu_cache, drop_cache = cache
        if self.use_dropout:
            dout = dropout_backward(dout, drop_cache)
        dout = relu_backward(dout, relu_cache)
        if self.normalization is not None:
            _, backward = _NORMALIZATIONS[self.normalization]
            dout, grads[f"gamma{layer}"], grads[f"beta{layer}"] = backward(dout, norm_cache)
        dx, grads[f"W{layer}"], grads[f"b{layer}"] = affine_backward(dout, affine_cache)
        return dx

    def _set_mode(self, mode: str) -> None:
        """Train or test mode for dropout and batch normalisation, as the course does."""
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode

    def loss(self, X: np.ndarray, y: np.ndarray | None = None):
        """Scores (N, C) in test mode when y is None, else (loss, grads) in train mode."""
        X = np.asarray(X).astype(self.dtype)
        self._set_mode("test" if y is None else "train")
        out, caches = X, []
        for layer in range(1, self.num_layers):
            out, cache = self._hidden_forward(out, layer)
            caches.append(cache)
        last = self.num_layers
        scores, last_cache = affine_forward(out, self.params[f"W{last}"], self.params[f"b{last}"])
        if y is None:
            return scores.astype(self.dtype, copy=False)

        loss, dscores = softmax_loss(scores, y)
        weights = [self.params[f"W{layer}"] for layer in range(1, last + 1)]
        loss += _l2(self.reg, weights)
        grads = {}
        dout, grads[f"W{last}"], grads[f"b{last}"] = affine_backward(dscores, last_cache)
        for layer in range(last - 1, 0, -1):
            dout = self._hidden_backward(dout, layer, caches[layer - 1], grads)
        for layer, w in enumerate(weights, start=1):
            grads[f"W{layer}"] += self.reg * w
        return loss, {name: grad.astype(self.dtype, copy=False) for name, grad in grads.items()}
