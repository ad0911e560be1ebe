"""The graded functions, described as data.

A spec says how to build a function's arguments from a case, what it returns,
what its canonical cache is and what the reference computes. Grading another
layer means adding a spec here, not editing the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from gradeconv.cases import Arrays
from gradeconv.rubric import OUTPUTS
from reference import layers


@dataclass(frozen=True)
class Spec:
    name: str
    pool: bool
    inputs: Callable[[Arrays], dict[str, np.ndarray]]  # the arrays a gradient is taken against
    forward: str | None = None  # for backward: the forward function whose cache it consumes

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the arrays the function returns, in order."""
        return OUTPUTS[self.name]

    @property
    def is_backward(self) -> bool:
        return self.forward is not None

    @property
    def returns_cache(self) -> bool:
        """Forward functions return (out, cache)."""
        return not self.is_backward


def conv_inputs(a: Arrays) -> dict[str, np.ndarray]:
    return {"x": a.x, "w": a.w, "b": a.b}


def pool_inputs(a: Arrays) -> dict[str, np.ndarray]:
    return {"x": a.x}


SPECS = {
    "conv_forward_naive": Spec("conv_forward_naive", False, conv_inputs),
    "conv_backward_naive": Spec("conv_backward_naive", False, conv_inputs, forward="conv_forward_naive"),
    "max_pool_forward_naive": Spec("max_pool_forward_naive", True, pool_inputs),
    "max_pool_backward_naive": Spec("max_pool_backward_naive", True, pool_inputs, forward="max_pool_forward_naive"),
}


def forward_args(spec_name: str, a: Arrays, inputs: dict[str, np.ndarray] | None = None) -> list:
    """Arguments of the forward function of spec_name's family (inputs may override x, w, b)."""
    spec = SPECS[spec_name]
    values = {**spec.inputs(a), **(inputs or {})}
    if spec.pool:
        return [values["x"], dict(a.param)]
    return [values["x"], values["w"], values["b"], dict(a.param)]


def canonical_cache(spec: Spec, a: Arrays) -> tuple:
    return tuple(forward_args(spec.name, a))


def reference_forward(spec: Spec, a: Arrays, inputs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    function = layers.max_pool_forward_naive if spec.pool else layers.conv_forward_naive
    return function(*forward_args(spec.name, a, inputs))[0]


def reference_outputs(spec: Spec, a: Arrays) -> dict[str, np.ndarray]:
    """What a correct implementation returns for this case, by output name."""
    if not spec.is_backward:
        return {"out": reference_forward(spec, a)}
    if spec.pool:
        return {"dx": layers.max_pool_backward_naive(a.dout, canonical_cache(spec, a))}
    dx, dw, db = layers.conv_backward_naive(a.dout, canonical_cache(spec, a))
    return {"dx": dx, "dw": dw, "db": db}
