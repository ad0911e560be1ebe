"""Judging a model class (a network) phase by phase, with parameters the grader sets.

A phase constructs the student's model as the spec says, sets every parameter
to the case's values (so initialisation decides nothing but its own test), and
makes the spec's calls in order, comparing each named output with the reference
model's after the same calls: a loss, scores, and every entry of a dict output
(grads). The initialisation phase instead reads the parameters the model made
and checks their names, shapes and dtype, then the spec's statistical checks.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from gradeconv import outcomes
from gradeconv.judging import checks, gradients
from gradeconv.judging.cases import CaseValues
from gradeconv.results import CaseResult
from gradeconv.rubric import GradientCheck, ReferenceCheck
from gradeconv.sandbox import Handle, Session
from gradeconv.specs.model import Call, Function, Network


def judge(session: Session, call: Callable, function: Function, values: CaseValues,
          tolerance: ReferenceCheck, scored: tuple[str, ...], gradient: GradientCheck | None = None) -> CaseResult:
    """The verdict on one phase of the student's model (call is CaseRunner._call); with `gradient`, a loss
    phase's grads are also checked against the numeric gradient of the reference model's loss."""
    network = values.layer.network
    args, kwargs = network.constructor(values.variables)
    failure, _, model = call(network.cls, args, [], [], keep=True, kwargs=kwargs)
    if failure:
        return _constructing(failure, network)
    try:
        if function.name == network.initial:
            return _judge_initial(call, network, values, model)
        failure, got = _judge_calls(session, call, network, function, values, model, tolerance, scored)
        if failure.outcome == outcomes.PASSED and gradient is not None and function.loss:
            return _numeric_check(network, function, values, gradient, got) or failure
        return failure
    finally:
        session.forget(model)


def _numeric_check(network: Network, function: Function, values: CaseValues, settings: GradientCheck,
                   got: dict) -> CaseResult | None:
    """The student's grads (got, by flattened name, after they passed the comparison) against directional
    numeric slopes of the reference model's loss (the slopes depend on the case alone: worked out once and
    shared by every submission)."""
    expected = _expected(network, function, values)
    step = network.phases[function.name][-1]
    loss, grads = step.outputs[0], step.outputs[1]
    names = [name for name in expected if name.startswith(f"{grads}[")]
    gradient_of = {name: name.split("'")[1] for name in names}

    def forward(overrides: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        changed = replace(values, inputs={**values.inputs, **overrides})
        return {loss: reference_answers(network, function, changed)[loss]}

    parameters = {gradient_of[name]: values.inputs[gradient_of[name]] for name in names}
    probed = values.shared_answer(("network probes", function.name, settings.model_dump_json()), lambda: tuple(
        gradients.probes(forward, parameters, names, gradient_of, {loss: np.ones(())}, settings, values.case.seed)))
    failure, _ = gradients.check(forward, parameters, {name: got[name] for name in names}, gradient_of,
                                 {loss: np.ones(())}, settings, values.case.seed, probed)
    return failure


def _expected(network: Network, function: Function, values: CaseValues) -> dict[str, np.ndarray]:
    """The reference's answers for this phase and case, worked out once for every submission of a class."""
    return values.shared_answer(("network", function.name), lambda: reference_answers(network, function, values))


def reference_answers(network: Network, function: Function, values: CaseValues) -> dict[str, np.ndarray]:
    """What the reference model's calls of this phase return, by output name (a dict output flattened)."""
    args, kwargs = network.constructor(values.variables)
    model = network.reference(*args, **kwargs)
    parameters = getattr(model, network.attribute)
    for name in network.parameters(values.variables):
        parameters[name] = values.inputs[name].copy()
    answers: dict[str, np.ndarray] = {}
    for step in network.phases[function.name]:
        returned = getattr(model, step.method)(*[values.inputs[name].copy() for name in step.arguments])
        items = returned if len(step.outputs) > 1 else (returned,)
        for name, item in zip(step.outputs, items):
            answers.update(_flattened(name, item))
    for array in answers.values():
        array.setflags(write=False)
    return answers


def _flattened(name: str, item) -> dict[str, np.ndarray]:
    if isinstance(item, dict):
        return {f"{name}[{key!r}]": np.asarray(value, dtype=float) for key, value in item.items()}
    return {name: np.asarray(item, dtype=float)}


def _judge_calls(session: Session, call: Callable, network: Network, function: Function, values: CaseValues,
                 model: Handle, tolerance: ReferenceCheck, scored: tuple[str, ...]) -> tuple[CaseResult, dict]:
    """The first wrong output of the phase's calls (or a pass), and the last call's outputs by name."""
    expected = _expected(network, function, values)
    parameters = {name: values.inputs[name] for name in network.parameters(values.variables)}
    reply = session.set_items(model, network.attribute, parameters,
                              expected_bytes=sum(array.nbytes for array in parameters.values()))
    if reply.status != "ok":
        return CaseResult(*outcomes.failed_reply(reply, f"setting {network.cls}.{network.attribute}", ())), {}
    got: dict = {}
    for step in network.phases[function.name]:
        failure, reply, _ = call(step.method, [values.inputs[name] for name in step.arguments],
                                 [array for name, array in expected.items()], list(step.arguments), target=model)
        if failure:
            return replace(failure, message=f"{network.cls}.{step.method}{_signature(step)}: {failure.message}"), {}
        got = _unpack(reply, network, step)
        if isinstance(got, CaseResult):
            return got, {}
        for name in _compared(step, expected, scored):
            failure = _compare(name, got, expected[name], tolerance, network, step)
            if failure:
                return _explained(failure, function, got, values), got
    return CaseResult(outcomes.PASSED), got


def _explained(failure: CaseResult, function: Function, got: dict, values: CaseValues) -> CaseResult:
    """The failure with the hint of each of the spec's buggy models whose answer the student's output equals."""
    name = failure.output
    if failure.outcome != outcomes.WRONG_VALUE or not isinstance(got.get(name), np.ndarray):
        return failure
    for mistake in function.mistakes:
        if mistake.output != name.split("[", 1)[0]:
            continue
        try:
            wrong = mistake.compute(values).get(name)
            matches = wrong is not None and checks.same(got[name], np.asarray(wrong, dtype=float), rtol=1e-6)
        except Exception:  # a buggy formula that does not apply to this case is no evidence
            matches = False
        if matches and mistake.hint not in failure.hints:
            failure = replace(failure, message=failure.message + mistake.note, hints=failure.hints + (mistake.hint,))
    return failure


def _compared(step: Call, expected: dict, scored: tuple[str, ...]) -> list[str]:
    """The expected outputs of this call that the test scores, a dict output entry by entry."""
    return [name for name in expected
            if name.split("[", 1)[0] in step.outputs and name.split("[", 1)[0] in scored]


def _compare(name: str, got: dict, expected: np.ndarray, tolerance: ReferenceCheck, network: Network,
             step: Call) -> CaseResult | None:
    if name not in got:
        base, _, key = name.partition("[")
        return CaseResult(outcomes.WRONG_VALUE, f"{network.cls}.{step.method}{_signature(step)}: {base} has no "
                                                f"entry {key[:-1]}: it must hold one for every parameter",
                          output=name)
    if not isinstance(got[name], np.ndarray):
        return CaseResult(outcomes.WRONG_TYPE, f"{name} must be a numpy.ndarray, got "
                                               f"{outcomes.one_line(str(got[name]))}", output=name)
    failure = checks.compare(name, got[name], expected, tolerance)
    if failure:
        return replace(failure, message=f"{network.cls}.{step.method}{_signature(step)}: {failure.message}")
    return None


def _unpack(reply, network: Network, step: Call) -> dict | CaseResult:
    """The call's outputs by name, a dict output's entries as name[key]; or why they are unusable."""
    value = reply.header.get("value", {})
    where = f"{network.cls}.{step.method}{_signature(step)}"
    if value.get("none") and step.outputs:
        return CaseResult(outcomes.NOT_IMPLEMENTED, f"{where} returned None: not implemented yet?")
    if len(step.outputs) > 1:
        items = value.get("items", [])
        if "sequence" not in value or len(items) != len(step.outputs):
            return CaseResult(outcomes.WRONG_TYPE, f"{where} must return a tuple ({', '.join(step.outputs)})")
    else:
        items = [value]
    got: dict = {}
    for name, item in zip(step.outputs, items):
        if "mapping" in item:
            for key, entry in item["mapping"].items():
                got[f"{name}[{key!r}]"] = reply.arrays[entry["array"]] if "array" in entry else _kind(entry)
        elif "array" in item:
            got[name] = reply.arrays[item["array"]]
        elif item.get("none"):
            return CaseResult(outcomes.NOT_IMPLEMENTED, f"{where}: {name} is None: not implemented yet?",
                              output=name)
        else:
            got[name] = _kind(item)
    return got


def _kind(item: dict) -> str:
    if item.get("none"):
        return "None"
    if "mapping" in item:
        return "a dict"
    if "sequence" in item:
        return f"a {item['sequence']}"
    return str(item.get("other", "something else"))


def _signature(step: Call) -> str:
    return f"({', '.join(step.arguments)})"


def _constructing(failure: CaseResult, network: Network) -> CaseResult:
    return replace(failure, message=f"constructing {network.cls}: {failure.message}")


def _judge_initial(call: Callable, network: Network, values: CaseValues, model: Handle) -> CaseResult:
    """The parameters the constructor made: names, shapes, dtype, then the spec's checks of their values."""
    expected = network.parameters(values.variables)
    failure, reply, _ = call(network.attribute, [], [np.zeros(shape) for shape in expected.values()], [],
                             target=model, get=True)
    if failure:
        return replace(failure, message=f"reading {network.cls}.{network.attribute}: {failure.message}")
    value = reply.header.get("value", {})
    if "mapping" not in value:
        return CaseResult(outcomes.WRONG_TYPE, f"{network.cls}.{network.attribute} must be a dict of arrays")
    made = {key: reply.arrays[item["array"]] if "array" in item else None for key, item in value["mapping"].items()}
    missing = [name for name in expected if name not in made]
    extra = [name for name in made if name not in expected]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(extra)}"] if extra else [])
        return CaseResult(outcomes.WRONG_VALUE, f"{network.cls}.{network.attribute} has the wrong names "
                                                f"({'; '.join(parts)}); expected {', '.join(expected)}",
                          output=network.attribute)
    dtype = np.dtype(values.variables.get("dtype", "float64"))
    for name, shape in expected.items():
        array = made[name]
        if array is None:
            return CaseResult(outcomes.WRONG_TYPE, f"{network.attribute}[{name!r}] must be a numpy.ndarray",
                              output=network.attribute)
        if array.shape != tuple(shape):
            return CaseResult(outcomes.WRONG_SHAPE, f"{network.attribute}[{name!r}] has shape {array.shape}, "
                                                    f"expected {tuple(shape)}", output=network.attribute,
                              got_shape=array.shape, expected_shape=tuple(shape))
        if array.dtype != dtype:
            return CaseResult(outcomes.WRONG_TYPE, f"{network.attribute}[{name!r}] has dtype {array.dtype}, "
                                                   f"expected {dtype} (the dtype argument)",
                              output=network.attribute)
    why = network.initial_check(values.variables, made) if network.initial_check else None
    if why:
        return CaseResult(outcomes.WRONG_VALUE, why, output=network.attribute)
    return CaseResult(outcomes.PASSED)
