"""Single-bug mutants of correct conv/pool solutions, each with the class of its bug.

The diagnosis-rate test (tests/test_diagnosis_rate.py) grades every mutant and
counts, among the failures whose outcome is a wrong value or a wrong shape, how
many diagnoses name the mutant's class. A class is named when the diagnosis
contains one of its phrases (CLASSES); the phrases are what a student reads,
so a trigger alone ("fails only when pad > 0") does not name a pad-width bug.

Bases: the sample class's loop solution (alice), its vectorised one
(judyjones, im2col), and the assignment-2 solution of tests/solutions.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASES = {
    "loops": ROOT / "submissions" / "alice" / "cs231n" / "layers.py",
    "vectorised": ROOT / "submissions" / "judyjones_LATE_48213_990417_layers.py",
    "a2": ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py",
}

#: bug class -> phrases, one of which a diagnosis must contain to name it
CLASSES = {
    "overwrite": ("`+=`", "accumulate"),
    "pad_width": ("each side",),
    "pad_crop": ("[pad:-pad]",),
    "swapped": ("swapped",),
    "stride": ("stride is applied",),
}

#: the vectorised mutants' own col2im: fancy-index `+=` adds each index once, so overlapping windows overwrite
COL2IM_ASSIGN = '''

def col2im_assign(cols, x_shape, field_height, field_width, padding, stride):
    from im2col import get_im2col_indices
    N, C, H, W = x_shape
    x_padded = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    k, i, j = get_im2col_indices(x_shape, field_height, field_width, padding, stride)
    cols_reshaped = cols.reshape(C * field_height * field_width, -1, N).transpose(2, 0, 1)
    x_padded[:, k, i, j] += cols_reshaped
    return x_padded[:, :, padding:padding + H, padding:padding + W]
'''

_CONV_BACKWARD_LOOPS = "                    dx_pad[n, :, rows, cols] += w[f] * dout[n, f, i, j]"

# (id, base, [(old, new), ...] each old occurring exactly once, bug class)
MUTANTS = [
    # --- conv backward: `=` for `+=` ---
    ("loops_conv_dx_assign", "loops", [(_CONV_BACKWARD_LOOPS, _CONV_BACKWARD_LOOPS.replace("+=", "="))], "overwrite"),
    ("loops_conv_dw_assign", "loops", [("dw[f] += x_pad", "dw[f] = x_pad")], "overwrite"),
    ("a2_conv_dx_assign", "a2", [(_CONV_BACKWARD_LOOPS, _CONV_BACKWARD_LOOPS.replace("+=", "="))], "overwrite"),
    ("a2_conv_dw_assign", "a2", [("dw[f] += x_pad", "dw[f] = x_pad")], "overwrite"),
    ("vectorised_conv_dx_fancy_add", "vectorised",
     [("dx = col2im_indices(", "dx = col2im_assign("), ("\n\ndef max_pool_forward", COL2IM_ASSIGN + "\n\ndef max_pool_forward")],
     "overwrite"),
    # --- pool backward: `=` for `+=` ---
    ("loops_pool_dx_assign", "loops", [("dx[n, c, i * stride + di, j * stride + dj] += ",
                                        "dx[n, c, i * stride + di, j * stride + dj] = ")], "overwrite"),
    ("a2_pool_dx_assign", "a2", [("dx[n, c, i * stride + di, j * stride + dj] += ",
                                  "dx[n, c, i * stride + di, j * stride + dj] = ")], "overwrite"),
    ("vectorised_pool_dx_fancy_add", "vectorised",
     [("return col2im_indices(dcols", "return col2im_assign(dcols"), ("\n\ndef max_pool_forward", COL2IM_ASSIGN + "\n\ndef max_pool_forward")],
     "overwrite"),
    # --- pad widths ---
    ("loops_conv_forward_pad_plus_one", "loops",
     [("    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=\"constant\")\n    out =",
       "    x_pad = np.pad(x, ((0, 0), (0, 0), (pad + 1, pad + 1), (pad + 1, pad + 1)), mode=\"constant\")\n    out =")],
     "pad_width"),
    ("loops_conv_forward_pad_one_side", "loops",
     [("    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=\"constant\")\n    out =",
       "    x_pad = np.pad(x, ((0, 0), (0, 0), (2 * pad, 0), (2 * pad, 0)), mode=\"constant\")\n    out =")],
     "pad_width"),
    ("loops_conv_forward_pad_after_only", "loops",
     [("    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=\"constant\")\n    out =",
       "    x_pad = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)), mode=\"constant\")\n    out =")],
     "pad_width"),
    ("loops_conv_backward_pad_plus_one", "loops",
     [("    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=\"constant\")\n    dx_pad",
       "    x_pad = np.pad(x, ((0, 0), (0, 0), (pad + 1, pad + 1), (pad + 1, pad + 1)), mode=\"constant\")\n    dx_pad"),
      ("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, pad + 1:pad + 1 + H, pad + 1:pad + 1 + W]")],
     "pad_width"),
    ("loops_conv_backward_crop_one_side", "loops",
     [("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, :H, :W]")], "pad_width"),
    ("loops_conv_backward_crop_far_side", "loops",
     [("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, 2 * pad:2 * pad + H, 2 * pad:2 * pad + W]")],
     "pad_width"),
    ("loops_pad0_crop", "loops", [("dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, pad:-pad, pad:-pad]")],
     "pad_crop"),
    # --- H and W swapped: in sizes, in loops, in kernels ---
    ("loops_conv_forward_x_shape", "loops",
     [("N, C, H, W = x.shape\n    F, _, HH, WW = w.shape\n    H_out", "N, C, W, H = x.shape\n    F, _, HH, WW = w.shape\n    H_out")],
     "swapped"),
    ("loops_conv_forward_kernel_shape", "loops",
     [("F, _, HH, WW = w.shape\n    H_out", "F, _, WW, HH = w.shape\n    H_out")], "swapped"),
    ("loops_conv_forward_out_size", "loops",
     [("H_out = 1 + (H + 2 * pad - HH) // stride\n    W_out = 1 + (W + 2 * pad - WW) // stride\n    x_pad",
       "H_out = 1 + (W + 2 * pad - WW) // stride\n    W_out = 1 + (H + 2 * pad - HH) // stride\n    x_pad")], "swapped"),
    ("loops_conv_forward_window_kernel", "loops",
     [("window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]",
       "window = x_pad[n, :, i * stride:i * stride + WW, j * stride:j * stride + HH]")], "swapped"),
    ("loops_conv_backward_x_shape", "loops",
     [("N, C, H, W = x.shape\n    F, _, HH, WW = w.shape\n    _, _, H_out", "N, C, W, H = x.shape\n    F, _, HH, WW = w.shape\n    _, _, H_out")],
     "swapped"),
    ("loops_conv_backward_kernel_rows", "loops",
     [("rows = slice(i * stride, i * stride + HH)\n                    cols = slice(j * stride, j * stride + WW)",
       "rows = slice(i * stride, i * stride + WW)\n                    cols = slice(j * stride, j * stride + HH)")], "swapped"),
    ("loops_conv_backward_loops", "loops",
     [("            for i in range(H_out):\n                for j in range(W_out):\n                    rows",
       "            for i in range(W_out):\n                for j in range(H_out):\n                    rows")], "swapped"),
    ("loops_pool_forward_out_size", "loops", [("W_out = 1 + (W - pw) // stride", "W_out = 1 + (W - ph) // stride")],
     "swapped"),
    ("loops_pool_forward_window", "loops",
     [("window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]",
       "window = x[:, :, i * stride:i * stride + pw, j * stride:j * stride + ph]")], "swapped"),
    ("loops_pool_forward_loops", "loops",
     [("    for i in range(H_out):\n        for j in range(W_out):\n            window = x[:, :",
       "    for i in range(W_out):\n        for j in range(H_out):\n            window = x[:, :")], "swapped"),
    ("loops_pool_backward_argmax_unravel", "loops", [("di, dj = k // pw, k % pw", "di, dj = k // ph, k % ph")],
     "swapped"),
    ("loops_pool_backward_x_shape", "loops",
     [("N, C, H, W = x.shape\n    _, _, H_out, W_out = dout.shape\n    dx = np.zeros_like(x)\n    for n",
       "N, C, W, H = x.shape\n    _, _, W_out, H_out = dout.shape\n    dx = np.zeros_like(x)\n    for n")], "swapped"),
    ("vectorised_conv_forward_kernel", "vectorised",
     [("cols = im2col_indices(x, HH, WW, padding=pad, stride=stride)\n    out",
       "cols = im2col_indices(x, WW, HH, padding=pad, stride=stride)\n    out")], "swapped"),
    ("vectorised_conv_forward_reshape", "vectorised",
     [("out = out.reshape(F, H_out, W_out, N)", "out = out.reshape(F, W_out, H_out, N)")], "swapped"),
    ("vectorised_pool_forward_reshape", "vectorised",
     [("reshape((H - ph) // s + 1, (W - pw) // s + 1, N, C)", "reshape((W - pw) // s + 1, (H - ph) // s + 1, N, C)")],
     "swapped"),
    ("vectorised_conv_backward_dx_kernel", "vectorised",
     [("dx = col2im_indices(w.reshape(F, -1).T @ dout_rows, x.shape, HH, WW,",
       "dx = col2im_indices(w.reshape(F, -1).T @ dout_rows, x.shape, WW, HH,")], "swapped"),
    ("a2_conv_forward_x_shape", "a2",
     [("N, C, H, W = x.shape\n    F, _, HH, WW = w.shape\n    H_out", "N, C, W, H = x.shape\n    F, _, HH, WW = w.shape\n    H_out")],
     "swapped"),
    ("a2_pool_backward_argmax_unravel", "a2", [("di, dj = k // pw, k % pw", "di, dj = k // ph, k % ph")], "swapped"),
    # --- stride ignored ---
    ("loops_conv_forward_no_stride", "loops",
     [("window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]",
       "window = x_pad[n, :, i:i + HH, j:j + WW]")], "stride"),
    ("loops_conv_backward_dx_no_stride", "loops",
     [("dx_pad[n, :, rows, cols] += w[f]", "dx_pad[n, :, i:i + HH, j:j + WW] += w[f]")], "stride"),
    ("loops_conv_backward_dw_no_stride", "loops",
     [("dw[f] += x_pad[n, :, rows, cols]", "dw[f] += x_pad[n, :, i:i + HH, j:j + WW]")], "stride"),
    ("loops_pool_forward_no_stride", "loops",
     [("window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]",
       "window = x[:, :, i:i + ph, j:j + pw]")], "stride"),
    ("loops_pool_backward_no_stride", "loops",
     [("dx[n, c, i * stride + di, j * stride + dj] += ", "dx[n, c, i + di, j + dj] += ")], "stride"),
    ("loops_pool_forward_size_no_stride", "loops",
     [("H_out = 1 + (H - ph) // stride\n    W_out = 1 + (W - pw) // stride\n    out",
       "H_out = 1 + (H - ph)\n    W_out = 1 + (W - pw)\n    out")], "stride"),
    # (the vectorised solution's stride and pad bugs break its reshapes: errors, not wrong values)
]


def plant(source: str, edits) -> str:
    """The source with each (old, new) replaced; every old must occur exactly once."""
    for old, new in edits:
        assert source.count(old) == 1, f"anchor must occur once, found {source.count(old)}: {old!r}"
        source = source.replace(old, new)
    return source


def mutant_source(base: str, edits) -> str:
    return plant(BASES[base].read_text(), edits)


def names_class(diagnosis: str | None, bug_class: str) -> bool:
    return bool(diagnosis) and any(phrase in diagnosis for phrase in CLASSES[bug_class])


def other_classes(diagnosis: str | None, bug_class: str) -> list[str]:
    """The classes a diagnosis names besides the mutant's own: advice that sends the student astray."""
    return [other for other in CLASSES if other != bug_class and names_class(diagnosis, other)]
