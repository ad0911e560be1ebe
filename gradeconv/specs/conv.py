"""The convolution layer: conv_forward_naive and conv_backward_naive (NCHW)."""
from __future__ import annotations

import numpy as np

from gradeconv.specs import windows
from gradeconv.specs.model import REQUIRED, Array, Function, Layer, Mistake, Option, Param, Restriction, Var
from reference import layers


def _without_bias(values) -> np.ndarray:
    return values.reference_outputs["out"] - values.inputs["b"].reshape(1, -1, 1, 1)


def _out(origin=lambda pad: pad, stride=None):
    """The forward output with windows starting `origin(pad)` before the input, `stride` apart."""

    def compute(values) -> np.ndarray:
        pad, step = values.variables["pad"], values.variables["stride"]
        _, _, out_h, out_w = values.reference_outputs["out"].shape
        x, w, b = values.inputs["x"], values.inputs["w"], values.inputs["b"]
        return windows.conv_out(x, w, b, step if stride is None else stride, origin(pad), out_h, out_w)

    return compute


def _grad(output: str, origin=lambda pad: pad, crop=None, combine="add"):
    """dx or dw of a backward that reads windows from `origin(pad)`, crops dx at `crop(pad)`, combines so."""

    def compute(values) -> np.ndarray:
        pad = values.variables["pad"]
        dx, dw = windows.conv_grads(values.inputs["x"], values.inputs["w"], values.upstream["dout"],
                                    values.variables["stride"], origin(pad), (crop or origin)(pad), combine)
        return dx if output == "dx" else dw

    return compute


#: the window mistakes recognised in the forward's output and in dx and dw
OUT_MISTAKES = (
    Mistake("out", windows.PAD_WIDTH, _out(lambda pad: pad + 1)),
    Mistake("out", windows.PAD_WIDTH, _out(lambda pad: 2 * pad), needs=windows.NEEDS_PAD),
    Mistake("out", windows.PAD_WIDTH, _out(lambda pad: 0), needs=windows.NEEDS_PAD),
    Mistake("out", windows.STRIDE, _out(stride=1), needs=windows.NEEDS_STRIDE),
)
DX_MISTAKES = (
    Mistake("dx", windows.ACCUMULATE, _grad("dx", combine="last")),  # the last filter wins, too
    Mistake("dx", windows.ACCUMULATE, _grad("dx", combine="last_summed"), needs=windows.NEEDS_OVERLAP),
    Mistake("dx", windows.ACCUMULATE, _grad("dx", combine="first_summed"), needs=windows.NEEDS_OVERLAP),
    Mistake("dx", windows.CROP_WIDTH, _grad("dx", crop=lambda pad: 0), needs=windows.NEEDS_PAD),
    Mistake("dx", windows.CROP_WIDTH, _grad("dx", crop=lambda pad: 2 * pad), needs=windows.NEEDS_PAD),
    Mistake("dx", windows.PAD_WIDTH, _grad("dx", origin=lambda pad: pad + 1)),
)
DW_MISTAKES = (
    Mistake("dw", windows.ACCUMULATE, _grad("dw", combine="last")),
    Mistake("dw", windows.ACCUMULATE, _grad("dw", combine="last_summed")),
    Mistake("dw", windows.PAD_WIDTH, _grad("dw", origin=lambda pad: pad + 1)),
    Mistake("dw", windows.PAD_WIDTH, _grad("dw", origin=lambda pad: 2 * pad), needs=windows.NEEDS_PAD),
    Mistake("dw", windows.PAD_WIDTH, _grad("dw", origin=lambda pad: 0), needs=windows.NEEDS_PAD),
)

CONV = Layer(
    name="conv",
    forward=Function("conv_forward_naive", ("out",), layers.conv_forward_naive, returns_cache=True,
                     mistakes=(Mistake("out", "add the bias b[f] to every output of filter f", _without_bias,
                                       note=" (exactly the bias b is missing)"), *OUT_MISTAKES)),
    backward=(Function("conv_backward_naive", ("dx", "dw", "db"), layers.conv_backward_naive,
                       gradients={"dx": "x", "dw": "w", "db": "b"}, mistakes=DX_MISTAKES + DW_MISTAKES),),
    arguments=(Array("x", ("n", "c", "h", "w")), Array("w", ("f", "c", "field_h", "field_w")), Array("b", ("f",)),
               Param("conv_param", {"stride": Var("stride"), "pad": Var("pad")})),
    ranges=windows.RANGES,
    minimum={"pad": 0},
    options={"square": Option(False, (False, True), flag=True),
             "overlap": Option("allowed", ("allowed", "required", "forbidden"), flag=True)},
    draw=lambda draw, space: windows.draw_windows(draw, space, pool=False),
    variables={"n": REQUIRED, "c": REQUIRED, "h": REQUIRED, "w": REQUIRED, "f": 1, "field_h": REQUIRED,
               "field_w": REQUIRED, "stride": 1, "pad": 0},
    shown=("n", "c", "h", "w", "f", "field_h", "field_w", "stride", "seed", "pad"),
    volume=("n", "c", "h", "w", "f"),
    order=("n", "c", "f", "h", "w", "field_h", "field_w", "stride", "pad"),
    describe="x shape {x}, w shape {w}, stride {stride}, pad {pad}",
    notebook={"x": (-0.1, 0.5), "w": (-0.2, 0.3), "b": (-0.1, 0.2)},
    restrictions=(
        Restriction(windows.NEEDS_PAD, replace={"pad": (0, 0)}),
        Restriction("pad = 0", at_least={"pad": 1}, hint="check the pad = 0 path: `[pad:-pad]` is empty when pad = 0",
                    hint_unless="pad"),
        Restriction(windows.NEEDS_STRIDE, replace={"stride": (1, 1), "overlap": "allowed"},
                    hint=windows.STRIDE),
        Restriction(windows.NEEDS_OVERLAP, replace={"overlap": "forbidden"},
                    hint=windows.ACCUMULATE, only="backward"),
        Restriction("H != W or the kernel/window is not square", replace={"square": True},
                    hint="check for swapped H and W (or field height and width)", hint_unless="swapped"),
        Restriction("N > 1", replace={"n": (1, 1)}),
        Restriction("C > 1", replace={"c": (1, 1)}),
        Restriction("F > 1", replace={"f": (1, 1)}),
    ),
    hints=windows.shape_hints,
    cache_fixed=True,  # (x, w, b, conv_param)
)
