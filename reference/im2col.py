"""The im2col helper students import as ``cs231n.im2col``.

Column layout (fixed by the course): rows are ordered (channel, dy, dx) and
columns (out_y, out_x, n) with n fastest. ``col2im_indices`` is the exact
adjoint of ``im2col_indices``: overlapping contributions are summed.
Integer arithmetic throughout; geometry that does not tile the input raises a
ValueError naming the sizes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["get_im2col_indices", "im2col_indices", "col2im_indices"]


def _output_size(name: str, size: int, field: int, padding: int, stride: int) -> int:
    """Number of field positions along one axis, or a ValueError if they do not tile it."""
    padded = size + 2 * padding
    if field > padded:
        raise ValueError(
            f"field {name} {field} is larger than the padded input {name} {padded} "
            f"({size} + 2*{padding})"
        )
    if (padded - field) % stride != 0:
        raise ValueError(
            f"field {name} {field} with stride {stride} does not tile the padded input "
            f"{name} {padded} ({size} + 2*{padding}): ({padded} - {field}) % {stride} != 0"
        )
    return (padded - field) // stride + 1


def check_geometry(
    x_shape: tuple[int, ...], field_height: int, field_width: int, padding: int, stride: int
) -> tuple[int, int]:
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-dimensional (N, C, H, W), got shape {tuple(x_shape)}")
    for name, value, low in (
        ("field_height", field_height, 1),
        ("field_width", field_width, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    _, _, height, width = x_shape
    out_height = _output_size("height", height, field_height, padding, stride)
    out_width = _output_size("width", width, field_width, padding, stride)
    return out_height, out_width


def get_im2col_indices(x_shape, field_height, field_width, padding=1, stride=1):
    """Index arrays (k, i, j) such that ``x_padded[:, k, i, j]`` gathers every field."""
    _, channels, _, _ = x_shape
    out_height, out_width = check_geometry(x_shape, field_height, field_width, padding, stride)
    i0 = np.tile(np.repeat(np.arange(field_height), field_width), channels)
    i1 = stride * np.repeat(np.arange(out_height), out_width)
    j0 = np.tile(np.arange(field_width), field_height * channels)
    j1 = stride * np.tile(np.arange(out_width), out_height)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(channels), field_height * field_width).reshape(-1, 1)
    return k, i, j


#: Inputs from this size on are split by stride phase before the columns are
#: copied (see stride_phases); below it one strided view is cheaper.
SPLIT_FROM_BYTES = 2**20


def stride_phases(x, padding, phases, allocate=np.empty):
    """x (N, C, H, W) zero-padded, channels first and N last, split into phases.

    Shape (C, k, k, ceil(Hp / k), ceil(Wp / k), N) for k `phases`: padded pixel
    (r, q) sits at [:, r % k, q % k, r // k, q // k]. With k equal to the stride
    every field offset reads one block whose (out_x, n) runs are contiguous; with
    k = 1 this is just the padded input. `allocate(shape, dtype)` gives the memory.
    """
    n, c, h, w = x.shape
    rows, cols = -(-(h + 2 * padding) // phases), -(-(w + 2 * padding) // phases)
    split = allocate((c, phases, phases, rows, cols, n), x.dtype)
    channels_last = x.transpose(1, 2, 3, 0)
    for py in range(phases):
        first_row = (py - padding) % phases  # the first input row in this phase
        top = (first_row + padding) // phases
        for px in range(phases):
            first_col = (px - padding) % phases
            left = (first_col + padding) // phases
            source = channels_last[:, first_row::phases, first_col::phases]
            bottom, right = top + source.shape[1], left + source.shape[2]
            block = split[:, py, px]
            block[:, :top] = 0
            block[:, bottom:] = 0
            block[:, top:bottom, :left] = 0
            block[:, top:bottom, right:] = 0
            block[:, top:bottom, left:right] = source
    return split


def fill_columns(x, field_height, field_width, padding, stride, out=None, allocate=np.empty):
    """The im2col columns of x, (C*fh*fw, out_h*out_w*N), written into `out` (default: a new array).

    `allocate(shape, dtype)` gives the memory for the padded input.
    """
    out_height, out_width = check_geometry(x.shape, field_height, field_width, padding, stride)
    n, c = x.shape[:2]
    if out is None:
        out = np.empty((c * field_height * field_width, out_height * out_width * n), dtype=x.dtype)
    fields = out.reshape(c, field_height, field_width, out_height, out_width, n)
    if stride == 1 or x.nbytes < SPLIT_FROM_BYTES:
        padded = stride_phases(x, padding, 1, allocate)[:, 0, 0]
        s_c, s_h, s_w, s_n = padded.strides
        windows = np.lib.stride_tricks.as_strided(
            padded,
            shape=fields.shape,
            strides=(s_c, s_h, s_w, s_h * stride, s_w * stride, s_n),
            writeable=False,
        )
        np.copyto(fields, windows)
        return out
    split = stride_phases(x, padding, stride, allocate)
    for dy in range(field_height):
        top, py = divmod(dy, stride)
        for dx in range(field_width):
            left, px = divmod(dx, stride)
            fields[:, dy, dx] = split[:, py, px, top : top + out_height, left : left + out_width]
    return out


def im2col_indices(x, field_height, field_width, padding=1, stride=1):
    """Columns of every receptive field: shape (C*fh*fw, out_h*out_w*N)."""
    return fill_columns(np.asarray(x), field_height, field_width, padding, stride)


def col2im_indices(cols, x_shape, field_height=3, field_width=3, padding=1, stride=1):
    """Adjoint of im2col_indices: scatter-add columns back into an array of x_shape."""
    out_height, out_width = check_geometry(x_shape, field_height, field_width, padding, stride)
    n, c, h, w = x_shape
    expected = (c * field_height * field_width, out_height * out_width * n)
    cols = np.asarray(cols)
    if cols.shape != expected:
        raise ValueError(f"cols must have shape {expected} for x_shape {tuple(x_shape)}, got {cols.shape}")
    fields = cols.reshape(c, field_height, field_width, out_height, out_width, n)
    padded = np.zeros((c, h + 2 * padding, w + 2 * padding, n), dtype=cols.dtype)
    row_stop = stride * (out_height - 1) + 1
    col_stop = stride * (out_width - 1) + 1
    for dy in range(field_height):
        for dx in range(field_width):
            padded[:, dy : dy + row_stop : stride, dx : dx + col_stop : stride, :] += fields[:, dy, dx]
    interior = padded[:, padding : padding + h, padding : padding + w, :]
    return interior.transpose(3, 0, 1, 2)
