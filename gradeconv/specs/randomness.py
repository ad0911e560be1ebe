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

Each test's threshold keeps a false alarm on a truly random mask below 1e-10 per scan (a |z| limit
from the exact distribution of a lag's products, exact bounds for exact repeats);
benchmarks/dropout_false_alarms.py measures it on the reference's masks. Pure numpy: a spec calls
these and turns a message into its own failure.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

#: the chance a scan of correlations (every lag of one mask, or every shift between two) may find a
#: pattern in independent units: each lag's |z| limit is exact for its products (see z_limit)
ALPHA = 1e-10
#: the chance an exact repeat (period, shifted copy) may have on independent units before it is a pattern
EXACT_ALPHA = 1e-12
#: products summed exactly by z_limit at most (longer sums have lighter tails: the limit stays safe)
EXACT_PAIRS = 1000
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
    return size >= 8 and size * min(p, 1 - p) >= MIN_RARE


class Largest(NamedTuple):
    """The strongest correlation found: its |z| over the limit (above 1: a pattern), lag, value, the
    pairs of units it is over, and the |z| limit."""

    score: float
    lag: int
    correlation: float
    pairs: int
    limit: float


@lru_cache(maxsize=512)
def z_limit(p: float, pairs: int, tests: int) -> float:
    """The |z| that a sum of `pairs` independent products (u - p)(v - p) of Bernoulli(p) units u, v
    exceeds with chance at most ALPHA / tests, from the sum's exact (trinomial) distribution.

    A lag's products in one mask form a martingale with these same increments, and a longer sum's
    tail is lighter, so the limit of a scan's shortest sum holds for its every lag (measured by
    benchmarks/dropout_false_alarms.py). Skewed p has heavy tails: about 6.9 at p = 0.5 and
    100 products, 9 at p = 0.8.
    """
    count = min(pairs, EXACT_PAIRS)
    both_kept, mixed, both_dropped = (1 - p) ** 2, -p * (1 - p), p * p  # the products' values
    dropped, mix = np.meshgrid(np.arange(count + 1), np.arange(count + 1), indexing="ij")
    valid = dropped + mix <= count
    dropped, mix = dropped[valid], mix[valid]
    kept = count - dropped - mix
    log_factorial = np.cumsum(np.log(np.maximum(np.arange(count + 1), 1)))
    log_chance = (log_factorial[count] - log_factorial[kept] - log_factorial[mix] - log_factorial[dropped]
                  + kept * 2 * math.log(p) + mix * math.log(2 * p * (1 - p)) + dropped * 2 * math.log(1 - p))
    size = np.abs(kept * both_kept + mix * mixed + dropped * both_dropped) / (p * (1 - p) * math.sqrt(count))
    order = np.argsort(-size)
    tail = np.cumsum(np.exp(log_chance[order]))  # P(|z| >= size[order][i])
    inside = int(np.searchsorted(tail, ALPHA / tests, side="right"))  # atoms whose tail stays below it
    return float(size[order][min(inside, len(order) - 1)])


def _largest(first: np.ndarray, second: np.ndarray, p: float, lags: np.ndarray) -> Largest:
    """The largest |z| of the correlations between first[i] and second[i + lag] (0/1 arrays) over lags,
    as a fraction of the scan's limit (score > 1 is a pattern)."""
    size = first.size
    pairs = size - np.abs(lags)
    correlation = _lagged(first - p, second - p)[size - 1 + lags] / (pairs * p * (1 - p))
    limit = z_limit(round(p, 12), int(pairs.min()), len(lags))
    scores = np.abs(correlation) * np.sqrt(pairs) / limit
    worst = int(np.argmax(scores))
    return Largest(float(scores[worst]), int(lags[worst]), float(correlation[worst]), int(pairs[worst]), limit)


def serial_correlation(kept: np.ndarray, p: float) -> Largest | None:
    """The strongest correlation between units of kept.ravel() at lags 1..N/2 (None: too few units)."""
    flat = kept.ravel().astype(float)
    if not _judged(flat.size, p):
        return None
    return _largest(flat, flat, p, np.arange(1, flat.size // 2 + 1))


def seed_correlation(kept: np.ndarray, other: np.ndarray, p: float) -> Largest | None:
    """The strongest correlation between two masks at shifts -N/2..N/2 (None: too few units)."""
    first, second = kept.ravel().astype(float), other.ravel().astype(float)
    if second.size != first.size or not _judged(first.size, p):
        return None
    return _largest(first, second, p, np.arange(-(first.size // 2), first.size // 2 + 1))


def serial_pattern(kept: np.ndarray, p: float) -> str | None:
    """Why the kept units depend on each other (a period, or a correlation at some lag), or None.

    kept is any boolean array; it is read flattened in C order, and a lag equal to its last axis
    compares units of neighbouring rows.
    """
    flat = kept.ravel().astype(float)
    size = flat.size
    if not _judged(size, p):
        return None
    lags = np.arange(1, size // 2 + 1)
    agree = _agreements(flat, flat)[size - 1 + lags]
    for lag in lags[agree == size - lags]:
        if _period_chance(size, int(lag), p) < EXACT_ALPHA / len(lags):
            return (f"the mask is not random: its kept units repeat with period {lag} (unit i is kept exactly "
                    f"when unit i + {lag} is, all over x.ravel())")
    largest = serial_correlation(kept, p)
    if largest.score <= 1:
        return None
    row = kept.shape[-1] if kept.ndim > 1 else 0
    return (f"the mask is not random: whether a unit is kept is correlated with {_where(largest.lag, row)} "
            f"(lag {largest.lag} in x.ravel(): correlation {largest.correlation:+.2f}, where independent units "
            f"stay within ±{largest.limit / math.sqrt(largest.pairs):.2f})")


def _period_chance(size: int, lag: int, p: float) -> float:
    """The chance that `size` independent Bernoulli(p) units repeat with period `lag`."""
    classes = np.bincount(np.arange(size) % lag)  # units per residue class: each class must be constant
    return float(np.exp(np.sum(np.log(p ** classes + (1 - p) ** classes))))


def shifted_rows(kept: np.ndarray, p: float) -> str | None:
    """Why the rows (samples) are cyclic shifts of one another more often than chance allows, or None."""
    largest, needed = largest_shifted_group(kept, p)
    if not needed or largest < needed:
        return None
    return (f"the mask is not random: {largest} of the {kept.size // kept.shape[-1]} samples' masks are shifted "
            "copies of one another (each sample needs its own random mask)")


def largest_shifted_group(kept: np.ndarray, p: float) -> tuple[int, int | None]:
    """The most rows (samples) of kept that are cyclic shifts of one row, and the fewest that fail (None: no
    number of rows is unlikely enough on a random mask, or kept has one axis)."""
    if kept.ndim < 2:
        return 0, None
    rows = kept.reshape(-1, kept.shape[-1]).astype(np.uint8)
    count, width = rows.shape
    needed = _rows_needed(count, width, p)
    if needed is None:
        return 0, None
    turns = (np.arange(width)[None, :] + np.arange(width)[:, None]) % width
    rotations = np.ascontiguousarray(rows[:, turns].reshape(count * width, width))
    _, ids = np.unique(rotations.view(np.dtype((np.void, width))).ravel(), return_inverse=True)
    canonical = ids.reshape(count, width).min(axis=1)  # the same for rows that are shifts of each other
    return int(np.bincount(canonical).max()), needed


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
    if second.size != size or not _judged(size, p):
        return None
    lags = np.arange(-(size // 2), size // 2 + 1)
    pairs = size - np.abs(lags)
    log_agree = math.log(p * p + (1 - p) * (1 - p))  # two independent units agree with this chance
    agree = _agreements(first, second)[size - 1 + lags]
    for lag, count in zip(lags[agree == pairs], pairs[agree == pairs]):
        if count * log_agree < math.log(EXACT_ALPHA / len(lags)):
            return ("the masks of two different seeds are not independent: one is the other "
                    + (f"shifted by {_units(abs(lag))}" if lag else "itself"))
    largest = seed_correlation(kept, other, p)
    if largest.score <= 1:
        return None
    shift = "unit by unit" if largest.lag == 0 else f"once one is shifted by {_units(abs(largest.lag))}"
    return (f"the masks of two different seeds are not independent: they are correlated {shift} "
            f"(correlation {largest.correlation:+.2f}, where independent masks stay within "
            f"±{largest.limit / math.sqrt(largest.pairs):.2f})")


def _units(count: int) -> str:
    return f"{count} unit{'s' if count != 1 else ''}"
