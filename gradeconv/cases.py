"""Test cases: geometry drawn by Hypothesis, values built from a seed.

Output sizes are drawn first and input sizes derived from them, so every case
tiles exactly and none is filtered away. Max-pool inputs are distinct values
on a coarse grid, so no pooling window has a tie or a kink.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from gradeconv.rubric import ExplicitCase, Space

POOL_SPACING = 0.01


@dataclass(frozen=True, order=True)
class Case:
    """One geometry and value seed. For pooling, f and pad are unused (f=1, pad=0)."""

    n: int
    c: int
    h: int
    w: int
    f: int
    field_h: int
    field_w: int
    stride: int
    pad: int
    seed: int
    pool: bool = False
    values: str = "random"

    @property
    def out_h(self) -> int:
        return 1 + (self.h + 2 * self.pad - self.field_h) // self.stride

    @property
    def out_w(self) -> int:
        return 1 + (self.w + 2 * self.pad - self.field_w) // self.stride

    @property
    def size(self) -> tuple:
        """Smaller cases sort first: the minimal failing case is the smallest by this key."""
        return (self.n * self.c * self.h * self.w * self.f, self.n, self.c, self.f, self.h, self.w,
                self.field_h, self.field_w, self.stride, self.pad, self.seed)

    @property
    def overlapping(self) -> bool:
        return self.stride < self.field_h or self.stride < self.field_w

    def describe(self) -> str:
        if self.pool:
            return (f"x shape ({self.n}, {self.c}, {self.h}, {self.w}), pool {self.field_h}x{self.field_w}, "
                    f"stride {self.stride}")
        return (f"x shape ({self.n}, {self.c}, {self.h}, {self.w}), w shape ({self.f}, {self.c}, "
                f"{self.field_h}, {self.field_w}), stride {self.stride}, pad {self.pad}")

    def as_dict(self) -> dict:
        keys = ["n", "c", "h", "w", "field_h", "field_w", "stride", "seed"]
        if not self.pool:
            keys[4:4] = ["f"]
            keys.append("pad")
        result = {key: getattr(self, key) for key in keys}
        if self.values != "random":
            result["values"] = self.values
        return result


def input_size(out: int, field: int, stride: int, pad: int) -> int:
    """The input size whose fields tile exactly into `out` positions, grown by strides to be >= 1."""
    size = (out - 1) * stride + field - 2 * pad
    if size < 1:
        size += stride * -((size - 1) // stride)
    return size


def _between(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    return st.integers(*bounds)


@st.composite
def cases(draw, space: Space, pool: bool) -> Case:
    """A valid case from the space; with square, H == W and the field is square."""
    stride = draw(_between(space.stride))
    field_h = draw(_between(space.field_h))
    field_w = field_h if space.square else draw(_between(space.field_w))
    if space.overlap == "required":
        field_h = max(field_h, 2)
        field_w = field_h if space.square else field_w
        stride = min(stride, max(field_h, field_w) - 1)
    elif space.overlap == "forbidden":
        stride = max(stride, field_h, field_w)
    pad = 0 if pool else draw(_between(space.pad))
    out_h = draw(_between(space.out_h))
    out_w = out_h if space.square else draw(_between(space.out_w))
    h, w = input_size(out_h, field_h, stride, pad), input_size(out_w, field_w, stride, pad)
    return Case(
        n=draw(_between(space.n)),
        c=draw(_between(space.c)),
        h=h,
        w=w,
        f=1 if pool else draw(_between(space.f)),
        field_h=field_h,
        field_w=field_w,
        stride=stride,
        pad=pad,
        seed=draw(st.integers(0, 2**31 - 1)),
        pool=pool,
    )


def from_explicit(case: ExplicitCase, pool: bool) -> Case:
    return Case(n=case.n, c=case.c, h=case.h, w=case.w, f=1 if pool else case.f,
                field_h=case.field_h, field_w=case.field_w, stride=case.stride,
                pad=0 if pool else case.pad, seed=case.seed, pool=pool, values=case.values)


def restricted(space: Space, restriction: str) -> Space | None:
    """The space narrowed by one restriction, or None when it is already that narrow or would be empty."""
    low_pad, high_pad = space.pad
    if restriction == "pad 1+" and high_pad < 1:
        return None
    narrowed = {
        "square": {"square": True},
        "stride 1": {"stride": (1, 1)},
        "pad 0": {"pad": (0, 0)},
        "pad 1+": {"pad": (max(low_pad, 1), high_pad)},
        "no overlap": {"overlap": "forbidden"},
        "N=1": {"n": (1, 1)},
        "C=1": {"c": (1, 1)},
        "F=1": {"f": (1, 1)},
    }[restriction]
    result = space.model_copy(update=narrowed)
    return None if result == space else result


@dataclass(frozen=True)
class Arrays:
    """The arrays of one case: x, and w, b for conv; dout is the upstream gradient."""

    x: np.ndarray
    w: np.ndarray | None
    b: np.ndarray | None
    dout: np.ndarray
    param: dict


def build(case: Case) -> Arrays:
    """Deterministic float64 arrays for a case."""
    rng = np.random.default_rng(case.seed)
    shape = (case.n, case.c, case.h, case.w)
    if case.pool:
        if case.values == "notebook":
            x = np.linspace(-0.3, 0.4, num=int(np.prod(shape))).reshape(shape)
        else:
            x = _distinct(rng, shape)
        param = {"pool_height": case.field_h, "pool_width": case.field_w, "stride": case.stride}
        dout = rng.standard_normal((case.n, case.c, case.out_h, case.out_w))
        return Arrays(x, None, None, dout, param)
    w_shape = (case.f, case.c, case.field_h, case.field_w)
    if case.values == "notebook":
        x = np.linspace(-0.1, 0.5, num=int(np.prod(shape))).reshape(shape)
        w = np.linspace(-0.2, 0.3, num=int(np.prod(w_shape))).reshape(w_shape)
        b = np.linspace(-0.1, 0.2, num=case.f)
    else:
        x, w, b = rng.standard_normal(shape), rng.standard_normal(w_shape), rng.standard_normal(case.f)
    dout = rng.standard_normal((case.n, case.f, case.out_h, case.out_w))
    return Arrays(x, w, b, dout, {"stride": case.stride, "pad": case.pad})


def _distinct(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    count = int(np.prod(shape))
    return (rng.permutation(count).reshape(shape) - count / 2) * POOL_SPACING

