"""The fully connected layers: affine (x of any shape (N, d_1, ..., d_k) flattened to (N, D)) and relu."""
from __future__ import annotations

import numpy as np

from gradeconv.specs.domains import AwayFromZero
from gradeconv.specs.model import Array, Function, Layer, Mistake, Restriction
from reference import layers


def _without_bias(values) -> np.ndarray:
    return values.reference_outputs["out"] - values.inputs["b"]


def _dx_flat(values) -> np.ndarray:
    """dx left in the flattened (N, D) shape instead of x's own."""
    return (values.upstream["dout"] @ values.inputs["w"].T)


def _relu_passes_negative(values) -> np.ndarray:
    """dx with the mask taken from dout instead of x."""
    dout = values.upstream["dout"]
    return dout * (dout > 0)


AFFINE = Layer(
    name="affine",
    forward=Function("affine_forward", ("out",), layers.affine_forward, returns_cache=True,
                     mistakes=(Mistake("out", "add the bias b to every row of the output", _without_bias,
                                       note=" (exactly the bias b is missing)"),)),
    backward=(Function("affine_backward", ("dx", "dw", "db"), layers.affine_backward,
                       gradients={"dx": "x", "dw": "w", "db": "b"},
                       mistakes=(Mistake("dx", "reshape dx back to x's own shape (N, d_1, ..., d_k)", _dx_flat),)),),
    arguments=(Array("x", ("n", "d1", "d2")), Array("w", ("d", "m")), Array("b", ("m",))),
    ranges={"n": (1, 4), "d1": (1, 3), "d2": (1, 3), "m": (1, 4)},
    derive=lambda v: {"d": v["d1"] * v["d2"]},
    restrictions=(
        Restriction("x has more than two dimensions (d_2 > 1)", replace={"d2": (1, 1)},
                    hint="flatten x with x.reshape(N, -1) and give dx back x's shape"),
        Restriction("N > 1", replace={"n": (1, 1)}),
        Restriction("M > 1", replace={"m": (1, 1)}),
    ),
    cache_fixed=True,  # cache = (x, w, b) in the starter code
)

RELU = Layer(
    name="relu",
    forward=Function("relu_forward", ("out",), layers.relu_forward, returns_cache=True),
    backward=(Function("relu_backward", ("dx",), layers.relu_backward, gradients={"dx": "x"},
                       mistakes=(Mistake("dx", "the mask comes from the forward's input x (x > 0), not from dout",
                                         _relu_passes_negative),)),),
    # away from 0: the numeric gradient never straddles the kink
    arguments=(Array("x", ("n", "d"), AwayFromZero(0.1, 1.0)),),
    ranges={"n": (1, 4), "d": (1, 5)},
    cache_fixed=True,  # cache = x in the starter code
)

LAYERS = (AFFINE, RELU)
