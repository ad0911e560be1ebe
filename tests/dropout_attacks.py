"""Dropout forwards whose mask has no (or too little) randomness, written to pass property checks.

Each entry is the source of a `dropout_forward` (and a matching `dropout_backward`) appended to the
honest assignment-2 solution. They keep p of the units, scale them by 1 / p, give the same mask for
the same seed and another mask for another seed, yet the mask is a fixed pattern: a Weyl sequence,
an LCG of tiny period, a short random block repeated, rows that are shifts of one row, or one fixed
mask shifted by the seed. `mask_of(name, shape, p, seed)` runs one in this process (for unit tests).
"""
from __future__ import annotations

import textwrap

import numpy as np

_HEAD = '''
def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    seed = int(dropout_param.get("seed", 0))
    if mode == "test":
        return x, (dropout_param, None)
    n = x.size
'''
_TAIL = '''
    mask = (keep.reshape(x.shape) * 1.0) / p
    return x * mask, (dropout_param, mask)

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param["mode"] == "test" else dout * mask
'''

#: name -> the lines computing `keep` (a bool array of n units) from p, seed, n and x.shape
BODIES = {
    # the red team's: a Weyl sequence whose step is p(1 - p), shifted by the seed
    "weyl_p1p": "keep = ((np.arange(n) * (p * (1 - p)) + seed * 0.7071067811865476) % 1.0) < p",
    # ... with every row started elsewhere, so no two samples share a mask
    "weyl_p1p_rows": ("index = np.arange(n)\n"
                      "row = index // x.shape[-1]\n"
                      "keep = ((index * (p * (1 - p)) + row * 0.6180339887498949 + seed * 0.7071067811865476) % 1.0) < p"),
    # a 2-D Weyl pattern: steps of p(1 - p) along a row and the golden ratio down a column
    "weyl_2d": ("rows, cols = np.indices((n // x.shape[-1], x.shape[-1]))\n"
                "keep = (((cols * (p * (1 - p)) + rows * 0.6180339887498949 + seed * 0.31) % 1.0) < p).ravel()"),
    "weyl_sqrt2": "keep = ((np.arange(n) * 1.4142135623730951 + seed * 0.6180339887498949) % 1.0) < p",
    "weyl_pi": "keep = ((np.arange(n) * 3.141592653589793 + seed * 0.5772156649015329) % 1.0) < p",
    "weyl_e_per_seed": ("step = (2.718281828459045 * (seed + 1)) % 1.0\n"
                        "keep = ((np.arange(n) * step + 0.5 * seed) % 1.0) < p"),
    # a linear congruential generator of period 128, started from the seed
    "lcg_128": ("state, values = seed % 128, np.empty(n)\n"
                "for i in range(n):\n"
                "    state = (5 * state + 3) % 128\n"
                "    values[i] = state / 128\n"
                "keep = values < p"),
    # a short random block, fresh for every seed, repeated over the mask
    "block_7": "np.random.seed(seed)\nkeep = np.tile(np.random.rand(7), n // 7 + 1)[:n] < p",
    "block_50": "keep = np.tile(np.random.RandomState(seed).rand(50), n // 50 + 1)[:n] < p",
    # a block of 64 units keeping exactly round(64 p) of them, shuffled by the seed, repeated
    "block_64_exact": "keep = np.tile(np.random.RandomState(seed).permutation(64) < round(64 * p), n // 64 + 1)[:n]",
    "block_97": "keep = np.tile(np.random.RandomState(seed).rand(97), n // 97 + 1)[:n] < p",
    # one random mask for all seeds, shifted (rolled) by the seed
    "rolled_fixed": "keep = np.roll(np.random.RandomState(0).rand(n), seed) < p",
    "rolled_fixed_far": "keep = np.roll(np.random.RandomState(0).rand(n), 37 * seed) < p",
    # one random row per seed; every row is that row shifted by its index, or by a random amount
    "rows_shifted": ("row = np.random.RandomState(seed).rand(x.shape[-1])\n"
                     "keep = np.concatenate([np.roll(row, i) for i in range(n // x.shape[-1])]) < p"),
    # ... a row keeping exactly round(p d) units, shifted by a random amount in every sample
    "rows_exact_random_shifts": ("rng, d = np.random.RandomState(seed), x.shape[-1]\n"
                                 "row = rng.permutation(d) < round(p * d)\n"
                                 "keep = np.concatenate([np.roll(row, rng.randint(d)) for i in range(n // d)])"),
    "rows_random_shifts": ("rng = np.random.RandomState(seed)\n"
                           "row = rng.rand(x.shape[-1])\n"
                           "keep = np.concatenate([np.roll(row, rng.randint(x.shape[-1]))\n"
                           "                       for i in range(n // x.shape[-1])]) < p"),
    # a blue-noise mask (error diffusion): kept units as evenly spread as possible, offset by the seed
    "evenly_spread": "keep = np.diff(np.floor(np.arange(n + 1) * p + (seed * 0.618) % 1.0)) > 0",
}


def source(name: str) -> str:
    """The attack's functions, ready to append to a layers.py that imports numpy as np."""
    return _HEAD + textwrap.indent(BODIES[name], "    ") + _TAIL


def mask_of(name: str, shape: tuple[int, ...], p: float, seed: int) -> np.ndarray:
    """The attack's kept units (bool, `shape`) for this p and seed, computed in this process."""
    scope: dict = {"np": np}
    exec(source(name), scope)
    out, _ = scope["dropout_forward"](np.ones(shape), {"p": p, "mode": "train", "seed": seed})
    return out != 0
