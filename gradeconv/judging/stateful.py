"""Judging a stateful function (an update rule) over consecutive steps, as the course's Solver calls it.

`next_w, config = rule(w, dw, config)`: the student's rule is called `steps` times,
each time with the next slice of dw, its own next_w and the config it returned,
so state it forgets to store (Adam's t) or stores wrong shows at the next step.
Each step's next_w and every state entry the rule keeps are compared with the
reference's trajectory on the same inputs; where the course has used other
defaults for entries a caller leaves out (Adam's t starting at 1), matching any
of those trajectories passes. The spec's mistakes are buggy rules: a failure is
explained by the first whose trajectory the student's follows.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from gradeconv import outcomes
from gradeconv.judging import checks
from gradeconv.judging.cases import CaseValues
from gradeconv.results import CaseResult
from gradeconv.rubric import ReferenceCheck
from gradeconv.sandbox import Writable
from gradeconv.specs.model import Function, Layer, Param

#: a step of a trajectory: the first output and the carried entries the rule keeps, by name
Step = dict[str, np.ndarray]


def judge(call: Callable, function: Function, values: CaseValues, tolerance: ReferenceCheck) -> CaseResult:
    """The verdict on the student's rule over the case's steps (call is CaseRunner._call)."""
    layer = values.layer
    expected = values.shared_answer(("trajectories",), lambda: reference_trajectories(layer, values))
    got = _student_trajectory(call, function, values, len(expected[0]))
    if isinstance(got, CaseResult):
        return got
    failures = [_first_difference(function, got, trajectory, tolerance) for trajectory in expected]
    if any(failure is None for failure in failures):
        return CaseResult(outcomes.PASSED)
    return _explained(failures[0], got, function, values)


def reference_trajectories(layer: Layer, values: CaseValues) -> list[list[Step]]:
    """The reference's steps under the course's defaults, then under each other convention that applies."""
    steps = layer.steps
    param = _carried(layer)
    left_out = set(param.entries) - set(param.given(values.variables))
    conventions = [{}] + [convention for convention in steps.conventions if set(convention) & left_out]
    return [trajectory(layer.forward.reference, values, {key: value for key, value in convention.items()
                                                         if key in left_out})
            for convention in conventions]


def trajectory(rule: Callable, values: CaseValues, defaults: dict[str, Any] | None = None) -> list[Step]:
    """Every step of `rule` run in-process (the reference, or a spec's buggy rule) on the case."""
    layer, steps = values.layer, values.layer.steps
    param = _carried(layer)
    arguments = _step_arguments(values, 0)
    index = _index(layer, steps.carried)
    arguments[index] = carried = {**arguments[index], **(defaults or {})}
    found = []
    for step in range(int(values.variables[steps.count])):
        if step:
            arguments = _step_arguments(values, step, replaced=found[-1][layer.forward.outputs[0]],
                                        carried=carried)
        next_value, carried = rule(*_copies(arguments))
        found.append({layer.forward.outputs[0]: np.asarray(next_value, dtype=float),
                      **{param.entry(key): _number_or_array(carried.get(key)) for key in param.updated}})
    return found


def _student_trajectory(call: Callable, function: Function, values: CaseValues, count: int) -> list | CaseResult:
    """The student's steps, each with the config they returned; the failure of a call that went wrong."""
    layer = values.layer
    param = _carried(layer)
    first, found = layer.forward.outputs[0], []
    arguments = _step_arguments(values, 0)
    for step in range(count):
        if step:
            given = _given_back(found[-1]["_config"], param, step)
            if isinstance(given, CaseResult):
                return given
            arguments = _step_arguments(values, step, replaced=found[-1][first], carried=given)
        wrapped = [Writable(argument) if isinstance(argument, np.ndarray) else _writable(argument)
                   for argument in arguments]
        failure, reply, _ = call(function.name, wrapped, _arrays(arguments), [])
        if failure:
            return _at_step(failure, step)
        returned = _unpack(reply, function, first, step)
        if isinstance(returned, CaseResult):
            return returned
        next_value, config = returned
        found.append({first: next_value, "_config": config,
                      **{param.entry(key): config.get(key) for key in param.updated}})
    return found


def _first_difference(function: Function, got: list, expected: list[Step],
                      tolerance: ReferenceCheck) -> CaseResult | None:
    """The first output or state entry of the first step that differs from this trajectory, or None."""
    for step, (mine, theirs) in enumerate(zip(got, expected)):
        for name, value in theirs.items():
            if mine.get(name) is None:
                return CaseResult(outcomes.WRONG_VALUE, f"after step {step + 1}, the returned config has no "
                                                        f"{name.split('[', 1)[1][:-1]}: {function.name} must "
                                                        f"store it there for the next step", output=name)
            where = f"at step {step + 1} of {len(expected)}" if len(expected) > 1 else "at the first step"
            if not isinstance(mine[name], np.ndarray):
                return CaseResult(outcomes.WRONG_TYPE, f"{where}: {name} must be a number or a numpy.ndarray",
                                  output=name)
            failure = checks.compare(name, _as_float(mine[name], value), value, tolerance)
            if failure:
                return replace(failure, message=f"{where}: {failure.message}")
    return None


def _explained(failure: CaseResult, got: list, function: Function, values: CaseValues) -> CaseResult:
    """The failure with the hint of each buggy rule of the spec whose trajectory the student's follows."""
    for mistake in function.mistakes:
        try:
            with np.errstate(all="ignore"):
                matches = _follows(got, trajectory(mistake.compute, values))
        except Exception:  # a buggy formula that does not apply to this case is no evidence
            matches = False
        if matches:
            failure = replace(failure, message=failure.message + mistake.note, hints=failure.hints + (mistake.hint,))
    return failure


def _follows(got: list, buggy: list[Step]) -> bool:
    """Whether the student's steps are the buggy rule's: every output and state entry equal, NaN and
    infinity where the buggy rule has them too (a correction dividing by 1 - beta**0, a negative cache
    under np.sqrt), since such values are the evidence of those bugs."""
    for mine, theirs in zip(got, buggy):
        for name, value in theirs.items():
            array = mine.get(name)
            if not isinstance(array, np.ndarray):
                return False
            array = _as_float(array, value)
            if array.shape != value.shape or array.dtype != np.float64:
                return False
            if not np.allclose(array, value, rtol=1e-6, atol=1e-10, equal_nan=True):
                return False
    return len(got) == len(buggy)


def _unpack(reply, function: Function, first: str, step: int) -> tuple | CaseResult:
    """(next value, config entries) of a rule's reply, or why it is unusable."""
    value = reply.header.get("value", {})
    if value.get("none"):
        return CaseResult(outcomes.NOT_IMPLEMENTED, f"{function.name} returned None: not implemented yet?")
    items = value.get("items", [])
    if "sequence" not in value or len(items) != 2:
        return CaseResult(outcomes.WRONG_TYPE, f"{function.name} must return a tuple ({first}, config)")
    if items[0].get("none"):
        return CaseResult(outcomes.NOT_IMPLEMENTED, f"{first} is None: not implemented yet?", output=first)
    if "array" not in items[0]:
        return _at_step(CaseResult(outcomes.WRONG_TYPE, f"{first} must be a numpy.ndarray", output=first), step)
    if "mapping" not in items[1]:
        return _at_step(CaseResult(outcomes.WRONG_TYPE, f"{function.name} must return its config dict second"),
                        step)
    config = {}
    for key, item in items[1]["mapping"].items():
        config[key] = reply.arrays[item["array"]] if "array" in item else (None if item.get("none") else item)
    return reply.arrays[items[0]["array"]], config


def _given_back(config: dict, param: Param, step: int) -> dict | CaseResult:
    """The config the student returned, as the next call gets it: numbers as numbers, arrays as arrays."""
    given = {}
    for key, value in config.items():
        if isinstance(value, dict):  # something that cannot cross (a list, a string): it cannot be carried
            return CaseResult(outcomes.WRONG_TYPE, f"after step {step}, config[{key!r}] is "
                                                   f"{outcomes.one_line(str(value.get('other')))}: keep "
                                                   "numbers and numpy arrays in the config",
                              output=param.entry(key))
        given[key] = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    return given


def _step_arguments(values: CaseValues, step: int, replaced: np.ndarray | None = None,
                    carried: dict | None = None) -> list:
    """The arguments of one step: the varying arrays' slice for it, and what the last step gave back."""
    layer, steps = values.layer, values.layer.steps
    overrides = {name: values.inputs[name][step] for name in steps.varying}
    if replaced is not None:
        overrides[steps.replaces] = replaced
    arguments = values.arguments(overrides)
    if carried is not None:
        arguments[_index(layer, steps.carried)] = carried
    return arguments


def _index(layer: Layer, name: str) -> int:
    return next(index for index, argument in enumerate(layer.arguments) if argument.name == name)


def _carried(layer: Layer) -> Param:
    return layer.arguments[_index(layer, layer.steps.carried)]


def _copies(arguments: list) -> list:
    """Fresh copies for an in-process rule: it may update its inputs in place (w -= ...)."""
    return [argument.copy() if isinstance(argument, np.ndarray)
            else {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in argument.items()}
            if isinstance(argument, dict) else argument for argument in arguments]


def _writable(argument: Any) -> Any:
    if isinstance(argument, dict):
        return {key: Writable(value) if isinstance(value, np.ndarray) else value for key, value in argument.items()}
    return argument


def _arrays(arguments: list) -> list[np.ndarray]:
    found = []
    for argument in arguments:
        if isinstance(argument, np.ndarray):
            found.append(argument)
        elif isinstance(argument, dict):
            found += [value for value in argument.values() if isinstance(value, np.ndarray)]
    return found


def _number_or_array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=float)


def _as_float(got: Any, expected: np.ndarray) -> Any:
    """A whole-number state entry (Adam's t) may come back as an integer: compared by value."""
    if isinstance(got, np.ndarray) and got.dtype.kind in "iu" and expected.ndim == 0:
        return got.astype(float)
    return got


def _at_step(failure: CaseResult, step: int) -> CaseResult:
    return replace(failure, message=f"at step {step + 1}: {failure.message}")
