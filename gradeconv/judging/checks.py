"""Judging what a student's function returned: structure, type, shape, values.

Shapes and dtypes are checked explicitly before any value is compared, so
broadcasting never hides a wrong shape. Outputs must be float64 ndarrays.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from gradeconv import outcomes
from gradeconv.results import CaseResult
from gradeconv.rubric import ReferenceCheck
from gradeconv.sandbox import Reply
from gradeconv.specs import Function
from gradeconv.specs.model import VIOLATIONS, Equal, Violation


def unpack(reply: Reply, spec: Function) -> dict[str, np.ndarray] | CaseResult:
    """The returned arrays by output name, or why the return value is unusable."""
    value = reply.header.get("value", {})
    returned = spec.outputs + ("cache",) if spec.returns_cache else spec.outputs
    if len(returned) == 1:
        items = [value]
    else:
        if value.get("none"):
            return CaseResult(outcomes.NOT_IMPLEMENTED, f"{spec.name} returned None: not implemented yet?")
        if "sequence" not in value or len(value["items"]) != len(returned):
            got = (f"a {value['sequence']} of length {len(value['items'])}" if "sequence" in value
                   else _kind(value))
            return CaseResult(outcomes.WRONG_TYPE,
                              f"{spec.name} must return a tuple ({', '.join(returned)}), got {got}")
        items = value["items"][: len(spec.outputs)]
    arrays = {}
    for name, item in zip(spec.outputs, items):
        if item.get("none"):
            return CaseResult(outcomes.NOT_IMPLEMENTED, f"{name} is None: not implemented yet?", output=name)
        if "array" not in item:
            return CaseResult(outcomes.WRONG_TYPE, f"{name} must be a numpy.ndarray, got {_kind(item)}",
                              output=name)
        index = item["array"]
        if not isinstance(index, int) or not 0 <= index < len(reply.arrays):
            return CaseResult(outcomes.ERROR, "the worker sent a malformed reply", output=name)
        arrays[name] = reply.arrays[index]
    return arrays


def entries(reply: Reply, index: int) -> dict[str, np.ndarray | None]:
    """The reported entries of the index-th reported dict argument: an array, or None when not stored."""
    reported = reply.header.get("arguments", [])
    found = reported[index] if index < len(reported) else {}
    return {key: reply.arrays[item["array"]] if "array" in item else None for key, item in found.items()}


def _kind(item: dict) -> str:
    if item.get("none"):
        return "None"
    if "sequence" in item:
        return f"a {item['sequence']}"
    if "array" in item:
        return "an ndarray"
    return outcomes.one_line(str(item.get("other", "something else")))  # a type name the student chose


def compare(name: str, got: np.ndarray, expected: np.ndarray, tolerance: ReferenceCheck) -> CaseResult | None:
    """None when got matches expected; otherwise the first thing wrong, with where and by how much."""
    failure = _structure(name, got, expected.shape)
    if failure:
        return failure
    if got.ndim == 0:  # a loss
        return _compare_scalar(name, float(got), float(expected), tolerance)
    error = np.abs(got - expected)
    allowed = tolerance.atol + tolerance.rtol * np.abs(expected)
    if (error <= allowed).all():  # false wherever got is NaN or infinite
        return None
    if not np.isfinite(got).all():
        return _non_finite(name, got)
    where = tuple(int(i) for i in np.unravel_index(np.argmax(error - allowed), error.shape))
    largest = float(error.max())
    return CaseResult(
        outcomes.WRONG_VALUE,
        f"{name} is wrong: largest error {largest:.3g} at index {where} "
        f"(got {_apart(got[where], expected[where])})",
        output=name, max_error=largest, where=where, difference=error,
    )


def _structure(name: str, got: np.ndarray, shape: tuple[int, ...]) -> CaseResult | None:
    """The failure when got is not a float64 ndarray of this shape, else None."""
    if type(got) is not np.ndarray or got.dtype.kind not in "fiu" or got.dtype.fields is not None:
        return CaseResult(outcomes.WRONG_TYPE, f"{name} has dtype {got.dtype}: return real float64 values",
                          output=name)
    if got.shape != shape:
        return CaseResult(outcomes.WRONG_SHAPE, f"{name} has shape {got.shape}, expected {shape}",
                          output=name, got_shape=got.shape, expected_shape=shape)
    if got.dtype != np.float64:
        return CaseResult(outcomes.WRONG_TYPE, f"{name} has dtype {got.dtype}, expected float64 "
                          "(the course asks for double precision)", output=name)
    return None


def _non_finite(name: str, got: np.ndarray) -> CaseResult:
    where = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0]) if got.ndim else ()
    return CaseResult(outcomes.WRONG_VALUE, f"{name} contains NaN or infinity, first at index {where}",
                      output=name, where=where)


def same(got: np.ndarray, wrong: np.ndarray, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """Whether got is what a known buggy formula gives: equal shapes, non-finite values in the same places (an
    overflow is an overflow, whichever: inf - inf is NaN), and equal within rtol and atol elsewhere."""
    if got.shape != wrong.shape:
        return False
    finite = np.isfinite(wrong)
    return bool(np.array_equal(np.isfinite(got), finite) and np.allclose(got[finite], wrong[finite], rtol=rtol,
                                                                         atol=atol))


def _apart(got: float, expected: float) -> str:
    """'got, expected ...' with digits enough that the two differ where they do (6 at least)."""
    for digits in range(6, 18):
        shown, wanted = f"{got:.{digits}g}", f"{expected:.{digits}g}"
        if shown != wanted:
            break
    return f"{shown}, expected {wanted}"


def _compare_scalar(name: str, got: float, expected: float, tolerance: ReferenceCheck) -> CaseResult | None:
    if not np.isfinite(got):
        return CaseResult(outcomes.WRONG_VALUE, f"{name} is {got} (expected {expected:.6g})", output=name)
    error = abs(got - expected)
    if error <= tolerance.atol + tolerance.rtol * abs(expected):
        return None
    return CaseResult(outcomes.WRONG_VALUE, f"{name} is wrong: got {_apart(got, expected)} "
                                            f"(error {error:.3g})", output=name, max_error=error)


def mutated(reply: Reply, names: list[str]) -> CaseResult | None:
    """A mutated_input result if the call failed writing into an array it was given.

    Inputs reach the student read-only, so writing into one raises in their own
    code; the worker's list of which arrays it was is only a hint for the message.
    """
    if reply.status != "raised":
        return None
    hinted = reply.header.get("mutated", [])
    changed = [names[i] for i in hinted if isinstance(i, int) and 0 <= i < len(names)]
    if changed:
        return CaseResult(outcomes.MUTATED_INPUT, f"changed its input {', '.join(changed)} in place: "
                                                  "work on a copy")
    if reply.header.get("type") == "ValueError" and "read-only" in str(reply.header.get("message", "")):
        where = reply.header.get("where")
        at = f" at {where}" if where else ""
        return CaseResult(outcomes.MUTATED_INPUT, f"writes into one of its inputs ({', '.join(names)}){at}: "
                                                  "they are read-only, work on a copy")
    return None


def structure(name: str, got: np.ndarray, expected: np.ndarray) -> CaseResult | None:
    """None when got is a finite float64 ndarray of expected's shape (its values are not compared), else the failure."""
    failure = _structure(name, got, expected.shape)
    if failure is None and not np.isfinite(got).all():
        failure = _non_finite(name, got)
    return failure


def properties(values, got: dict[str, np.ndarray], call_again) -> CaseResult | None:
    """The verdict of the layer's declared properties on its forward's outputs (specs/model.py Properties).

    values is the case's CaseValues; call_again(**entries) -> (failure or None, outputs)
    calls the student's forward again. Every output is checked for its kind and shape
    here, before the spec sees it; what the spec returns is turned into a CaseResult.
    """
    layer = values.layer

    def shaped(outputs: dict) -> CaseResult | None:
        for name in layer.forward.outputs:
            failure = structure(name, outputs.get(name), values.reference_outputs[name])
            if failure:
                return failure
        return None

    def again(**entries):
        failure, outputs = call_again(**entries)
        if failure is None:
            failure = shaped(outputs)
            replaced = [param.entry(key) for key in entries for param in layer.params if key in param.entries]
            if failure and replaced:
                failure = replace(failure, message=f"with another {' and another '.join(replaced)}: {failure.message}")
        return failure, outputs

    return shaped(got) or _verdict(layer.properties.forward(values, got, again), layer.forward.outputs[0], got)


def _verdict(found, output: str, got: dict[str, np.ndarray]) -> CaseResult | None:
    """A property check's answer as the case's failure, or None when it holds; fails closed on anything else."""
    if found is None:
        return None
    if isinstance(found, CaseResult) and found.outcome != outcomes.PASSED:  # call_again's failure, passed on
        return found
    if isinstance(found, Violation) and found.outcome in VIOLATIONS:
        return CaseResult(found.outcome, found.message, output=found.output or output, hints=_hints(found.hints))
    if isinstance(found, Equal):
        failure = compare(found.output, got[found.output], found.expected, ReferenceCheck())
        if failure is None:
            return None
        message = f"{found.context}: {failure.message}" if found.context else failure.message
        return CaseResult(failure.outcome, message, output=found.output, hints=_hints(found.hints))
    raise TypeError(f"a property check returned {found!r:.100}, neither None nor a failure")


def _hints(hints) -> tuple[str, ...]:
    """A spec's hints as a tuple of texts (one text given alone is one hint, not its characters)."""
    return (hints,) if isinstance(hints, str) else tuple(str(hint) for hint in hints)
