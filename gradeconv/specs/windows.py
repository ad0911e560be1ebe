"""Sliding-window geometry shared by conv and max-pool: sizes drawn so every window tiles exactly.

Output sizes are drawn first and input sizes derived from them, so every case
is valid and none is filtered away.
"""
from __future__ import annotations

from hypothesis import strategies as st

from gradeconv import outcomes

#: the sizes of a window layer's space and their defaults
RANGES = {"n": (1, 2), "c": (1, 3), "f": (1, 3), "out_h": (1, 4), "out_w": (1, 4),
          "field_h": (1, 4), "field_w": (1, 4), "stride": (1, 3), "pad": (0, 2)}


def input_size(out: int, field: int, stride: int, pad: int) -> int:
    """The input size whose fields tile exactly into `out` positions, grown by strides to be >= 1."""
    size = (out - 1) * stride + field - 2 * pad
    if size < 1:
        size += stride * -((size - 1) // stride)
    return size


def draw_windows(draw, space, pool: bool) -> dict:
    """Variables of a valid case; with square, H == W and the field is square."""
    stride = draw(st.integers(*space.range("stride")))
    field_h = draw(st.integers(*space.range("field_h")))
    square = space.option("square")
    field_w = field_h if square else draw(st.integers(*space.range("field_w")))
    overlap = space.option("overlap")
    if overlap == "required":
        field_h = max(field_h, 2)
        field_w = field_h if square else field_w
        stride = min(stride, max(field_h, field_w) - 1)
    elif overlap == "forbidden":
        stride = max(stride, field_h, field_w)
    pad = 0 if pool else draw(st.integers(*space.range("pad")))
    out_h = draw(st.integers(*space.range("out_h")))
    out_w = out_h if square else draw(st.integers(*space.range("out_w")))
    h, w = input_size(out_h, field_h, stride, pad), input_size(out_w, field_w, stride, pad)
    n = draw(st.integers(*space.range("n")))
    c = draw(st.integers(*space.range("c")))
    if pool:
        return {"n": n, "c": c, "h": h, "w": w, "field_h": field_h, "field_w": field_w, "stride": stride}
    f = draw(st.integers(*space.range("f")))
    return {"n": n, "c": c, "h": h, "w": w, "f": f, "field_h": field_h, "field_w": field_w,
            "stride": stride, "pad": pad}


def shape_hints(failure, case) -> list[str]:
    """Known window bugs read off a wrong output shape: empty crops, swapped axes, uncropped padding."""
    got, expected = failure.got_shape, failure.expected_shape
    if failure.outcome != outcomes.WRONG_SHAPE or not got or not expected or not len(got) == len(expected) == 4:
        return []
    pad = case.get("pad", 0) if case is not None else None
    if case is not None and pad == 0 and 0 in got[2:]:
        return ["slicing `[pad:-pad]` gives an empty array when pad = 0: crop with `[pad:pad + H]` instead"]
    if got[2:] == expected[:1:-1] and got[2:] != expected[2:]:
        return ["height and width are swapped somewhere (H/W or field height/width)"]
    if case is not None and pad > 0 and got[2:] == (expected[2] + 2 * pad, expected[3] + 2 * pad):
        return ["dx still includes the padding: crop it off before returning"]
    return []
