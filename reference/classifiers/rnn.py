"""Reference CaptioningRNN (assignment 3, cs231n/classifiers/rnn.py), on reference/rnn_layers.py.

Image features (N, D) give the initial hidden state through an affine
projection; each caption word is embedded, run through a vanilla RNN or an
LSTM, and scored over the vocabulary. The loss is the temporal softmax loss of
predicting word t+1 from words up to t, ignoring <NULL> targets.
"""
from __future__ import annotations

import numpy as np

from reference.rnn_layers import (
    lstm_backward,
    lstm_forward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

__all__ = ["CaptioningRNN"]

CELLS = {"rnn": (1, rnn_forward, rnn_backward), "lstm": (4, lstm_forward, lstm_backward)}


class CaptioningRNN:
    """Image captioning with a vanilla RNN or an LSTM, as the course defines it.

    Parameters: W_embed (V, W), W_proj (D, H), b_proj (H,), Wx (W, kH), Wh (H, kH),
    b (kH,) with k = 1 for 'rnn' and 4 for 'lstm', W_vocab (H, V), b_vocab (V,).
    word_to_idx must hold '<NULL>'; '<START>' and '<END>' are used when present.
    """

    def __init__(
        self,
        word_to_idx: dict[str, int],
        input_dim: int = 512,
        wordvec_dim: int = 128,
        hidden_dim: int = 128,
        cell_type: str = "rnn",
        dtype=np.float32,
    ):
        if cell_type not in CELLS:
            raise ValueError(f'Invalid cell_type "{cell_type}"')
        self.cell_type = cell_type
        self.dtype = dtype
        self.word_to_idx = word_to_idx
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self.params = {}
        vocab_size = len(word_to_idx)
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>", None)
        self._end = word_to_idx.get("<END>", None)

        gates = CELLS[cell_type][0]
        self.params["W_embed"] = np.random.randn(vocab_size, wordvec_dim) / 100
        self.params["W_proj"] = np.random.randn(input_dim, hidden_dim) / np.sqrt(input_dim)
        self.params["b_proj"] = np.zeros(hidden_dim)
        self.params["Wx"] = np.random.randn(wordvec_dim, gates * hidden_dim) / np.sqrt(wordvec_dim)
        self.params["Wh"] = np.random.randn(hidden_dim, gates * hidden_dim) / np.sqrt(hidden_dim)
        self.params["b"] = np.zeros(gates * hidden_dim)
        self.params["W_vocab"] = np.random.randn(hidden_dim, vocab_size) / np.sqrt(hidden_dim)
        self.params["b_vocab"] = np.zeros(vocab_size)
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def loss(self, features: np.ndarray, captions: np.ndarray):
        """(loss, grads) for features (N, D) and captions (N, T + 1) of word indices."""
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        p = self.params
        _, cell_forward, cell_backward = CELLS[self.cell_type]

        features = np.asarray(features, dtype=np.float64)
        h0 = features @ p["W_proj"] + p["b_proj"]
        words, embed_cache = word_embedding_forward(captions_in, p["W_embed"])
        h, cell_cache = cell_forward(words, h0, p["Wx"], p["Wh"], p["b"])
        scores, scores_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, scores_cache)
        dwords, dh0, grads["Wx"], grads["Wh"], grads["b"] = cell_backward(dh, cell_cache)
        grads["W_embed"] = word_embedding_backward(dwords, embed_cache)
        grads["W_proj"] = features.T @ dh0
        grads["b_proj"] = dh0.sum(axis=0)
        return float(loss), grads

    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray:
        """Greedy captions (N, max_length): each step feeds back the highest-scoring word, from <START>."""
        if self._start is None:
            raise ValueError("sampling starts from the word '<START>', which word_to_idx lacks")
        p = self.params
        n = features.shape[0]
        captions = np.full((n, max_length), self._null, dtype=np.int32)
        h = np.asarray(features, dtype=np.float64) @ p["W_proj"] + p["b_proj"]
        c = np.zeros_like(h)
        words = np.full(n, self._start, dtype=np.int64)
        for t in range(max_length):
            x = p["W_embed"][words]
            if self.cell_type == "rnn":
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            else:
                h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            words = np.argmax(h @ p["W_vocab"] + p["b_vocab"], axis=1)
            captions[:, t] = words
        return captions
