"""The convolution layer: conv_forward_naive and conv_backward_naive (NCHW)."""
from __future__ import annotations

import numpy as np

from gradeconv.specs import windows
from gradeconv.specs.model import REQUIRED, Array, Function, Layer, Mistake, Option, Param, Restriction, Var
from reference import layers


def _without_bias(values) -> np.ndarray:
    return values.reference_outputs["out"] - values.inputs["b"].reshape(1, -1, 1, 1)


CONV = Layer(
    name="conv",
    forward=Function("conv_forward_naive", ("out",), layers.conv_forward_naive, returns_cache=True,
                     mistakes=(Mistake("out", "add the bias b[f] to every output of filter f", _without_bias,
                                       note=" (exactly the bias b is missing)"),)),
    backward=(Function("conv_backward_naive", ("dx", "dw", "db"), layers.conv_backward_naive,
                       gradients={"dx": "x", "dw": "w", "db": "b"}),),
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
        Restriction("pad > 0", replace={"pad": (0, 0)}),
        Restriction("pad = 0", at_least={"pad": 1}, hint="check the pad = 0 path: `[pad:-pad]` is empty when pad = 0",
                    hint_unless="pad"),
        Restriction("stride > 1", replace={"stride": (1, 1)}, hint="check that the stride is applied wherever "
                                                                     "windows are placed"),
        Restriction("H != W or the kernel/window is not square", replace={"square": True},
                    hint="check for swapped H and W (or field height and width)", hint_unless="swapped"),
        Restriction("N > 1", replace={"n": (1, 1)}),
        Restriction("C > 1", replace={"c": (1, 1)}),
        Restriction("F > 1", replace={"f": (1, 1)}),
    ),
    hints=windows.shape_hints,
    cache_fixed=True,  # (x, w, b, conv_param)
)
