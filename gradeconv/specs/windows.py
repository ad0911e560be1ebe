"""Sliding-window geometry shared by conv and max-pool: sizes drawn so every window tiles exactly.

Output sizes are drawn first and input sizes derived from them, so every case
is valid and none is filtered away.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from gradeconv.specs.model import WRONG_SHAPE

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
    if failure.outcome != WRONG_SHAPE or not got or not expected or not len(got) == len(expected) == 4:
        return []
    pad = case.get("pad", 0) if case is not None else None
    if case is not None and pad == 0 and 0 in got[2:] and failure.output == "dx":  # only dx is cropped
        return ["slicing `[pad:-pad]` gives an empty array when pad = 0: crop with `[pad:pad + H]` instead"]
    if got[2:] == expected[:1:-1] and got[2:] != expected[2:]:
        return ["height and width are swapped somewhere (H/W or field height/width)"]
    if case is not None and pad > 0 and got[2:] == (expected[2] + 2 * pad, expected[3] + 2 * pad):
        return ["dx still includes the padding: crop it off before returning"]
    return []


# --- known window mistakes, recomputed from the failing case (the specs' Mistake formulas) ---
#
# Window (i, j) of a student's layer reads the input at rows i * stride + dy - origin (zero
# outside it), origin being the padding their buffer put before the input; its gradient
# lands on rows i * stride + dy - crop, crop being where their dx was cut out of the padded
# buffer. The correct layer has origin = crop = pad. Sizes come from the case, never from
# the student's source.

#: what to fix when windows' contributions overwrite each other instead of adding up
ACCUMULATE = ("accumulate every window's contribution with `+=`: `=` keeps only one window's (and with fancy "
              "indices `a[idx] += v` adds a repeated index once: use `np.add.at`)")
#: what to fix when the padding's width is wrong (pad + 1, or all of it on one side)
PAD_WIDTH = "pad x by exactly `pad` on each side of H and W: np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))"
#: what to fix when dx is cut out of the padded gradient at the wrong place
CROP_WIDTH = "crop exactly `pad` off each side of the padded gradient: dx = dx_pad[:, :, pad:pad + H, pad:pad + W]"
#: the restriction triggers the window mistakes need (the layers' Restriction.trigger texts)
NEEDS_STRIDE, NEEDS_PAD, NEEDS_OVERLAP = "stride > 1", "pad > 0", "windows overlap (stride < kernel size)"
#: what to fix when windows are placed one pixel apart whatever the stride
STRIDE = "check that the stride is applied wherever windows are placed"


def _margin(out_h: int, out_w: int, field_h: int, field_w: int, stride: int, *shifts: int) -> int:
    """A zero margin wide enough for every window, however shifted."""
    return max(0, *shifts) + out_h * stride + field_h + out_w * stride + field_w


def conv_out(x, w, b, stride: int, origin: int, out_h: int, out_w: int) -> np.ndarray:
    """A conv forward whose windows start `origin` rows and columns before the input."""
    _, _, field_h, field_w = w.shape
    margin = _margin(out_h, out_w, field_h, field_w, stride, origin)
    framed = np.pad(x, ((0, 0), (0, 0), (margin, margin), (margin, margin)))
    out = np.zeros((x.shape[0], w.shape[0], out_h, out_w))
    start = margin - origin
    for i in range(out_h):
        for j in range(out_w):
            window = framed[:, :, start + i * stride:start + i * stride + field_h,
                            start + j * stride:start + j * stride + field_w]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def conv_grads(x, w, dout, stride: int, origin: int, crop: int, combine: str = "add") -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of a conv backward whose windows read from `origin` and whose dx is cropped at `crop`.

    combine: "add" (correct); "last" (`=` in a loop over n, f, i, j: each input keeps the last
    window and filter that wrote it; dw keeps the last sample's last window); "last_summed" (`=` per
    window, filters or samples summed first); "first_summed" (fancy-index `+=`: the first window wins).
    """
    n_count, _, height, width = x.shape
    filters, _, field_h, field_w = w.shape
    _, _, out_h, out_w = dout.shape
    margin = _margin(out_h, out_w, field_h, field_w, stride, origin, crop)
    framed = np.pad(x, ((0, 0), (0, 0), (margin, margin), (margin, margin)))
    dframed, dw = np.zeros_like(framed), np.zeros(w.shape)
    windows = [(i, j) for i in range(out_h) for j in range(out_w)]
    for i, j in reversed(windows) if combine == "first_summed" else windows:
        read, write = margin - origin, margin - crop
        window = framed[:, :, read + i * stride:read + i * stride + field_h, read + j * stride:read + j * stride + field_w]
        at = (slice(None), slice(None), slice(write + i * stride, write + i * stride + field_h),
              slice(write + j * stride, write + j * stride + field_w))
        upstream = dout[:, :, i, j]
        if combine == "add":
            dw += np.tensordot(upstream, window, axes=([0], [0]))
            dframed[at] += np.tensordot(upstream, w, axes=([1], [0]))
        elif combine == "last":
            dw = upstream[-1][:, None, None, None] * window[-1][None]
            dframed[at] = upstream[:, -1][:, None, None, None] * w[-1][None]
        else:
            dw = np.tensordot(upstream, window, axes=([0], [0]))
            dframed[at] = np.tensordot(upstream, w, axes=([1], [0]))
    return dframed[:, :, margin:margin + height, margin:margin + width], dw


def pool_out(x, field_h: int, field_w: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """A max-pool forward with windows `stride` apart, cut to out_h x out_w."""
    out = np.zeros(x.shape[:2] + (out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + field_h, j * stride:j * stride + field_w]
            out[:, :, i, j] = window.reshape(window.shape[0], window.shape[1], -1).max(axis=2)
    return out


def pool_dx(x, dout, field_h: int, field_w: int, read: int, write: int) -> np.ndarray:
    """A max-pool backward finding each maximum in windows `read` apart and routing to windows `write` apart."""
    n_count, channels = x.shape[:2]
    dx = np.zeros(x.shape)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * read:i * read + field_h, j * read:j * read + field_w]
            flat = window.reshape(n_count, channels, -1).argmax(axis=2)
            rows, cols = np.unravel_index(flat, window.shape[2:])
            for n in range(n_count):
                for c in range(channels):
                    dx[n, c, i * write + rows[n, c], j * write + cols[n, c]] += dout[n, c, i, j]
    return dx
