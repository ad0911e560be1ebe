"""Numeric gradient checks of a backward pass (or of a loss's gradients).

The objective is <forward outputs, upstream gradients> summed over the forward's
outputs (a loss is its own objective, with upstream 1).
Directional (the default): for k random directions v per input, one central
difference of the objective along v (2 forward calls) against <grad, v>.
Full: every element's central difference (2 forward calls per element), for
small cases or to localise a failure.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

import numpy as np

from gradeconv import outcomes
from gradeconv.results import CaseResult
from gradeconv.rubric import GradientCheck

#: overrides of some inputs -> the forward's outputs by name
Forward = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
#: a directional failure on an input this small is localised with the full numeric gradient
LOCALISE_MAX_ELEMENTS = 256


def _disagree(numeric: float, exact: float, tolerance: float) -> bool:
    return abs(numeric - exact) > tolerance * max(1.0, abs(numeric), abs(exact))


def _slope(plus: dict[str, np.ndarray], minus: dict[str, np.ndarray], upstream: dict[str, np.ndarray],
           h: float) -> float:
    return sum(np.sum((plus[name] - minus[name]) * up) for name, up in upstream.items()) / (2 * h)


@dataclass(frozen=True)
class Probe:
    """One random direction of one input, and the objective's numeric slope along it."""

    gradient: str  # the gradient's output name
    direction: np.ndarray
    slope: float


def probes(forward: Forward, inputs: dict[str, np.ndarray], names: list[str], gradient_of: dict[str, str],
           upstream: dict[str, np.ndarray], settings: GradientCheck, seed: int) -> Iterator[Probe]:
    """The directional probes of gradients `names`, drawn from `seed` in order, two forward calls each.

    They depend on the forward and the case only, never on the gradients judged: with the
    reference forward, every submission of a batch can share them.
    """
    rng = np.random.default_rng(seed)
    h = settings.step
    for name in names:
        value = inputs[gradient_of[name]]
        for _ in range(settings.directions):
            direction = rng.standard_normal(value.shape)
            direction.setflags(write=False)
            plus = forward({gradient_of[name]: value + h * direction})
            minus = forward({gradient_of[name]: value - h * direction})
            yield Probe(name, direction, float(_slope(plus, minus, upstream, h)))


def check(forward: Forward, inputs: dict[str, np.ndarray], grads: dict[str, np.ndarray], gradient_of: dict[str, str],
          upstream: dict[str, np.ndarray], settings: GradientCheck, seed: int,
          probed: Iterable[Probe] | None = None) -> tuple[CaseResult | None, int]:
    """(failure or None, forward calls used) for grads (by output name; gradient_of names their inputs).

    probed: the directional probes of these grads, if already known (see `probes`).
    """
    if settings.mode == "full":
        return _full(forward, inputs, grads, gradient_of, upstream, settings)
    if probed is None:
        probed = probes(forward, inputs, list(grads), gradient_of, upstream, settings, seed)
    calls = 0
    for probe in probed:
        calls += 2
        name, numeric = probe.gradient, probe.slope
        exact = float(np.sum(grads[name] * probe.direction))
        if _disagree(numeric, exact, settings.tolerance):
            failure = CaseResult(
                outcomes.WRONG_VALUE,
                f"{name} disagrees with the numeric gradient: along a random direction the "
                f"slope is {numeric:.6g}, your {name} gives {exact:.6g}",
                output=name, max_error=abs(numeric - exact),
            )
            if inputs[gradient_of[name]].size > LOCALISE_MAX_ELEMENTS:
                return failure, calls
            located, extra = _full(forward, inputs, {name: grads[name]}, gradient_of, upstream, settings)
            return _localised(failure, located), calls + extra
    return None, calls


def _localised(failure: CaseResult, located: CaseResult | None) -> CaseResult:
    """The directional failure, told where the elementwise numeric gradient differs most."""
    if located is None:
        return failure
    return replace(failure, where=located.where, max_error=located.max_error,
                   message=f"{failure.message}; elementwise, the largest error is {located.max_error:.3g} "
                           f"at index {located.where}")


def _full(forward: Forward, inputs: dict[str, np.ndarray], grads: dict[str, np.ndarray], gradient_of: dict[str, str],
          upstream: dict[str, np.ndarray], settings: GradientCheck) -> tuple[CaseResult | None, int]:
    calls = 0
    h = settings.step
    for name, grad in grads.items():
        value = inputs[gradient_of[name]]
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[index] = h
            plus = forward({gradient_of[name]: value + step})
            minus = forward({gradient_of[name]: value - step})
            calls += 2
            numeric[index] = _slope(plus, minus, upstream, h)
        error = np.abs(numeric - grad)
        allowed = settings.tolerance * np.maximum(1.0, np.maximum(np.abs(numeric), np.abs(grad)))
        if np.any(error > allowed):
            where = tuple(int(i) for i in np.unravel_index(np.argmax(error - allowed), error.shape))
            return CaseResult(
                outcomes.WRONG_VALUE,
                f"{name} disagrees with the numeric gradient: largest error {error.max():.3g} at "
                f"index {where} (numeric {numeric[where]:.6g}, yours {grad[where]:.6g})",
                output=name, max_error=float(error.max()), where=where,
            ), calls
    return None, calls


def full_calls(inputs: dict[str, np.ndarray], grads: dict[str, np.ndarray], gradient_of: dict[str, str]) -> int:
    """Forward calls the full numeric gradient would need for these gradients."""
    return sum(2 * inputs[gradient_of[name]].size for name in grads)
