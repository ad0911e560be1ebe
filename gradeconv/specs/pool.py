"""The max-pooling layer: max_pool_forward_naive and max_pool_backward_naive (NCHW).

Inputs are distinct values on a coarse grid, so no window has a tie and the
numeric gradient never straddles a kink.
"""
from __future__ import annotations

from gradeconv.specs import windows
from gradeconv.specs.domains import Distinct
from gradeconv.specs.model import REQUIRED, Array, Function, Layer, Mistake, Option, Param, Restriction, Var
from reference import layers


def _out_unstrided(values):
    """Windows 1 apart whatever the stride."""
    _, _, out_h, out_w = values.reference_outputs["out"].shape
    v = values.variables
    return windows.pool_out(values.inputs["x"], v["field_h"], v["field_w"], 1, out_h, out_w)


def _dx_routed(read_stride: bool):
    """The gradient routed to windows 1 apart, its maximum found in windows stride apart (or 1 apart)."""

    def compute(values):
        v = values.variables
        return windows.pool_dx(values.inputs["x"], values.upstream["dout"], v["field_h"], v["field_w"],
                               v["stride"] if read_stride else 1, 1)

    return compute


POOL = Layer(
    name="max_pool",
    forward=Function("max_pool_forward_naive", ("out",), layers.max_pool_forward_naive, returns_cache=True,
                     mistakes=(Mistake("out", windows.STRIDE, _out_unstrided, needs=windows.NEEDS_STRIDE),)),
    backward=(Function("max_pool_backward_naive", ("dx",), layers.max_pool_backward_naive,
                       gradients={"dx": "x"}, mistakes=(
                           Mistake("dx", windows.STRIDE, _dx_routed(True), needs=windows.NEEDS_STRIDE),
                           Mistake("dx", windows.STRIDE, _dx_routed(False), needs=windows.NEEDS_STRIDE))),),
    arguments=(Array("x", ("n", "c", "h", "w"), Distinct(0.01)),
               Param("pool_param", {"pool_height": Var("field_h"), "pool_width": Var("field_w"),
                                    "stride": Var("stride")})),
    ranges={name: bounds for name, bounds in windows.RANGES.items() if name not in ("f", "pad")},
    options={"square": Option(False, (False, True), flag=True),
             "overlap": Option("allowed", ("allowed", "required", "forbidden"), flag=True)},
    draw=lambda draw, space: windows.draw_windows(draw, space, pool=True),
    variables={"n": REQUIRED, "c": REQUIRED, "h": REQUIRED, "w": REQUIRED, "field_h": REQUIRED,
               "field_w": REQUIRED, "stride": 1},
    shown=("n", "c", "h", "w", "field_h", "field_w", "stride", "seed"),
    volume=("n", "c", "h", "w"),
    order=("n", "c", "h", "w", "field_h", "field_w", "stride"),
    describe="x shape {x}, pool {field_h}x{field_w}, stride {stride}",
    notebook={"x": (-0.3, 0.4)},
    restrictions=(
        Restriction(windows.NEEDS_STRIDE, replace={"stride": (1, 1), "overlap": "allowed"},
                    hint=windows.STRIDE),
        Restriction("H != W or the kernel/window is not square", replace={"square": True},
                    hint="check for swapped H and W (or field height and width)", hint_unless="swapped"),
        Restriction("pooling windows overlap (stride < window size)", replace={"overlap": "forbidden"},
                    hint="with overlapping windows gradients must accumulate: use `+=`, not `=`", only="backward"),
        Restriction("N > 1", replace={"n": (1, 1)}),
        Restriction("C > 1", replace={"c": (1, 1)}),
    ),
    hints=windows.shape_hints,
    cache_fixed=True,  # (x, pool_param)
)
