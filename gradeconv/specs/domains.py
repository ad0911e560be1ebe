"""Where an array's values come from, drawn from the case's seeded generator.

A domain exists to keep every check meaningful: distinct values on a grid where
a max would tie, values away from a kink where a numeric gradient would straddle
it, positive values where a variance is expected, integer labels in range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Domain:
    def sample(self, rng: np.random.Generator, shape: tuple[int, ...], variables: dict) -> np.ndarray:
        raise NotImplementedError

    def source(self, shape: tuple[int, ...], variables: dict) -> str | None:
        """Python that draws the same values from a generator named rng (for reproductions), if known."""
        return None


def _scale(value: float | str, variables: dict) -> float:
    return float(variables[value]) if isinstance(value, str) else float(value)


@dataclass(frozen=True)
class Normal(Domain):
    """Standard normal values times scale, plus offset (each a number, or the name of a case variable).

    With spread, each row (all axes but the last) is moved by its own multiple of spread,
    0, spread, 2 * spread... in a shuffled order: rows far apart, as scores that only a
    per-row max shift keeps finite."""

    scale: float | str = 1.0
    offset: float | str = 0.0
    spread: float | str = 0.0

    def sample(self, rng, shape, variables):
        values = rng.standard_normal(shape)
        scale, offset = _scale(self.scale, variables), _scale(self.offset, variables)
        values = values if scale == 1.0 else values * scale
        values = values if offset == 0.0 else values + offset
        spread = _scale(self.spread, variables)
        if spread == 0.0:
            return values
        rows = int(np.prod(shape[:-1]))
        return values + (rng.permutation(rows) * spread).reshape(*shape[:-1], 1)

    def source(self, shape, variables):
        scale, offset = _scale(self.scale, variables), _scale(self.offset, variables)
        spread = _scale(self.spread, variables)
        rows = int(np.prod(shape[:-1]))
        return (f"rng.standard_normal({shape})" + ("" if scale == 1.0 else f" * {scale!r}")
                + ("" if offset == 0.0 else f" + {offset!r}")
                + ("" if spread == 0.0 else f" + (rng.permutation({rows}) * {spread!r}).reshape({(*shape[:-1], 1)})"))


@dataclass(frozen=True)
class Distinct(Domain):
    """Distinct values on a grid of this spacing: no two tie, so a max has one winner and no kink."""

    spacing: float = 0.01

    def sample(self, rng, shape, variables):
        count = int(np.prod(shape))
        return (rng.permutation(count).reshape(shape) - count / 2) * self.spacing

    def source(self, shape, variables):
        count = int(np.prod(shape))
        return f"(rng.permutation({count}).reshape({shape}) - {count} / 2) * {self.spacing!r}"


@dataclass(frozen=True)
class Uniform(Domain):
    """Uniform values in [low, high): positive ones for variances, for instance."""

    low: float
    high: float

    def sample(self, rng, shape, variables):
        return rng.uniform(self.low, self.high, shape)

    def source(self, shape, variables):
        return f"rng.uniform({self.low!r}, {self.high!r}, {shape})"


@dataclass(frozen=True)
class AwayFromZero(Domain):
    """Values of either sign with magnitude in [low, high]: a numeric step never crosses a kink at 0."""

    low: float = 0.1
    high: float = 1.0

    def sample(self, rng, shape, variables):
        signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
        return signs * rng.uniform(self.low, self.high, shape)

    def source(self, shape, variables):
        return f"np.where(rng.random({shape}) < 0.5, -1.0, 1.0) * rng.uniform({self.low!r}, {self.high!r}, {shape})"


@dataclass(frozen=True)
class Integers(Domain):
    """Integers in [0, high), high a case variable (the class count C, the vocabulary size V)."""

    high: str

    def sample(self, rng, shape, variables):
        return rng.integers(0, int(variables[self.high]), shape).astype(np.int64)

    def source(self, shape, variables):
        return f"rng.integers(0, {int(variables[self.high])}, {shape}).astype(np.int64)"


@dataclass(frozen=True)
class Booleans(Domain):
    """A boolean mask, each entry True with probability p."""

    p: float = 0.5

    def sample(self, rng, shape, variables):
        return rng.random(shape) < self.p

    def source(self, shape, variables):
        return f"rng.random({shape}) < {self.p!r}"


@dataclass(frozen=True)
class Captions(Domain):
    """Captions of word indices as the course's data holds them: <START> (1), words (3 to V - 1), then
    <END> (2) and <NULL> (0) padding on every other row, so a loss that counts <NULL> tokens differs."""

    vocabulary: str  # the case variable holding V

    def sample(self, rng, shape, variables):
        rows, length = shape
        words = rng.integers(3, int(variables[self.vocabulary]), shape).astype(np.int64)
        words[:, 0] = 1
        for row in range(0, rows, 2):
            end = 1 + int(rng.integers(0, max(length - 2, 1)))  # where <END> goes: after at least one word
            if end < length:
                words[row, end] = 2
                words[row, end + 1:] = 0
        return words
