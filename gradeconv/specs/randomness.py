"""Is a boolean mask a draw of independent Bernoulli(p) units? Tests that see through fixed patterns.

A spec whose outputs are random (dropout) cannot be compared with the reference value by value, so
it checks that its mask looks like independent coin flips instead. Counting kept units and runs is
not enough: a Weyl sequence whose step is p(1 - p) keeps p of the units with the right number of
runs. These tests look at the pattern itself:

- serial correlation: the kept units at every lag 1..N/2 of the flattened mask (a lag equal to a
  row's length compares each unit with the one below it), and exact periods;
- shifted rows: samples whose masks are cyclic shifts of one another;
- another seed: two seeds' masks must be independent (not correlated at any shift, not a shifted
  copy of each other).

Each test's threshold keeps a false alarm on a truly random mask far below 1e-9 per mask (a z of
Z_LIMIT over at most a few thousand correlated statistics; exact bounds for exact repeats);
benchmarks/dropout_false_alarms.py measures it on the reference's masks. Pure numpy: a spec calls
these and turns a message into its own failure.
"""
from __future__ import annotations

import math

import numpy as np

#: how many standard deviations a correlation may reach on independent units (Gaussian tail 2.6e-12)
Z_LIMIT = 7.0
#: the chance an exact repeat (period, shifted copy) may have on independent units before it is a pattern
EXACT_ALPHA = 1e-12
#: the expected number of units of the rarer kind (kept or dropped) below which correlations are not judged
MIN_RARE = 30.0


def _lagged(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """sum_i y[i] * z[i + k] for k = -(N-1)..N-1 (index k + N - 1), by FFT."""
    size = len(y) + len(z)
    full = np.fft.irfft(np.conj(np.fft.rfft(y, size)) * np.fft.rfft(z, size), size)
    return np.concatenate([full[size - len(y) + 1:], full[:len(z)]])


def _agreements(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """How many units agree between first[i] and second[i + k] (0/1 arrays), for k as in _lagged."""
    signs = _lagged(2 * first - 1, 2 * second - 1)
    overlap = _lagged(np.ones(len(first)), np.ones(len(second)))
    return np.rint((overlap + signs) / 2).astype(int)


def _where(lag: int, row: int) -> str:
    """A lag of the flattened mask in a student's words: units later, and rows and columns when 2-D."""
    if row <= 1 or lag < row:
        return f"the unit {lag} place{'s' if lag != 1 else ''} after it"
    rows, columns = divmod(lag, row)
    below = "the unit below it" if rows == 1 else f"the unit {rows} rows below it"
    if columns == 0:
        return below
    return f"{below} and {columns} column{'s' if columns != 1 else ''} to the right"


def _judged(size: int, p: float) -> bool:
    return size * min(p, 1 - p) >= MIN_RARE


def serial_pattern(kept: np.ndarray, p: float) -> str | None:
    """Why the kept units depend on each other (a period, or a correlation at some lag), or None.

    kept is any boolean array; it is read flattened in C order, and a lag equal to its last axis
    compares units of neighbouring rows.
    """
    flat = kept.ravel().astype(float)
    size = flat.size
    if size < 8 or not _judged(size, p):
        return None
    lags = np.arange(1, size // 2 + 1)
    pairs = size - lags
    agree = _agreements(flat, flat)[size - 1 + lags]
    for lag in lags[agree == pairs]:
        if _period_chance(size, int(lag), p) < EXACT_ALPHA:
            lag = int(lag)
            return (f"the mask is not random: its kept units repeat with period {lag} (unit i is kept exactly "
                    f"when unit i + {lag} is, all over x.ravel())")
    y = flat - p
    spread = p * (1 - p)
    correlation = _lagged(y, y)[size - 1 + lags] / (pairs * spread)
    scores = np.abs(correlation) * np.sqrt(pairs)
    worst = int(np.argmax(scores))
    if scores[worst] <= Z_LIMIT:
        return None
    lag = int(lags[worst])
    row = kept.shape[-1] if kept.ndim > 1 else 0
    return (f"the mask is not random: whether a unit is kept is correlated with {_where(lag, row)} "
            f"(lag {lag} in x.ravel(): correlation {correlation[worst]:+.2f}, where independent units stay "
            f"within ±{Z_LIMIT / math.sqrt(pairs[worst]):.2f})")


def _period_chance(size: int, lag: int, p: float) -> float:
    """The chance that `size` independent Bernoulli(p) units repeat with period `lag`."""
    classes = np.bincount(np.arange(size) % lag)  # units per residue class: each class must be constant
    return float(np.exp(np.sum(np.log(p ** classes + (1 - p) ** classes))))


def shifted_rows(kept: np.ndarray, p: float) -> str | None:
    """Why the rows (samples) are cyclic shifts of one another more often than chance allows, or None."""
    if kept.ndim < 2:
        return None
    rows = kept.reshape(-1, kept.shape[-1]).astype(np.uint8)
    count, width = rows.shape
    needed = _rows_needed(count, width, p)
    if needed is None:
        return None
    turns = (np.arange(width)[None, :] + np.arange(width)[:, None]) % width
    rotations = np.ascontiguousarray(rows[:, turns].reshape(count * width, width))
    _, ids = np.unique(rotations.view(np.dtype((np.void, width))).ravel(), return_inverse=True)
    canonical = ids.reshape(count, width).min(axis=1)  # the same for rows that are shifts of each other
    largest = int(np.bincount(canonical).max())
    if largest < needed:
        return None
    return (f"the mask is not random: {largest} of the {count} samples' masks are shifted copies of one another "
            "(each sample needs its own random mask)")


def _rows_needed(count: int, width: int, p: float) -> int | None:
    """The fewest rows that may be shifts of one another before it is a pattern (None: none is enough).

    For rows v_1..v_m, P(v_2..v_m are shifts of v_1) = E[P(shift of v_1)^(m-1)], and a row v with c
    kept units has at most `width` shifts (one if c is 0 or width), each of chance p^c (1-p)^(width-c);
    a union bound over the C(count, m) sets of rows completes the bound.
    """
    if not 0 < p < 1:
        return None
    kept = np.arange(width + 1)
    log_row = kept * math.log(p) + (width - kept) * math.log(1 - p)
    log_ways = np.array([math.lgamma(width + 1) - math.lgamma(c + 1) - math.lgamma(width - c + 1) for c in kept])
    log_shifts = np.where((kept == 0) | (kept == width), 0.0, math.log(width))
    for m in range(2, count + 1):
        terms = log_ways + log_row + (m - 1) * (log_shifts + log_row)
        log_bound = math.log(math.comb(count, m)) + float(np.logaddexp.reduce(terms))
        if log_bound < math.log(EXACT_ALPHA):
            return m
    return None


def seed_pattern(kept: np.ndarray, other: np.ndarray, p: float) -> str | None:
    """Why two masks drawn with different seeds are not independent (a shifted copy, or correlated), or None."""
    first, second = kept.ravel().astype(float), other.ravel().astype(float)
    size = first.size
    if size < 8 or second.size != size or not _judged(size, p):
        return None
    lags = np.arange(-(size // 2), size // 2 + 1)
    pairs = size - np.abs(lags)
    q = p * p + (1 - p) * (1 - p)
    agree = _agreements(first, second)[size - 1 + lags]
    for lag, count in zip(lags[agree == pairs], pairs[agree == pairs]):
        if count * math.log(q) < math.log(EXACT_ALPHA / len(lags)):
            return ("the masks of two different seeds are not independent: one is the other "
                    + (f"shifted by {abs(lag)} unit{'s' if abs(lag) != 1 else ''}" if lag else "itself"))
    spread = p * (1 - p)
    correlation = _lagged(first - p, second - p)[size - 1 + lags] / (pairs * spread)
    scores = np.abs(correlation) * np.sqrt(pairs)
    worst = int(np.argmax(scores))
    if scores[worst] <= Z_LIMIT:
        return None
    lag = int(lags[worst])
    shift = "unit by unit" if lag == 0 else f"once one is shifted by {abs(lag)} unit{'s' if abs(lag) != 1 else ''}"
    return (f"the masks of two different seeds are not independent: they are correlated {shift} "
            f"(correlation {correlation[worst]:+.2f}, where independent masks stay within "
            f"±{Z_LIMIT / math.sqrt(pairs[worst]):.2f})")
