"""Judging what a student's function returned: structure, type, shape, values.

Shapes and dtypes are checked explicitly before any value is compared, so
broadcasting never hides a wrong shape. Outputs must be float64 ndarrays.
"""
from __future__ import annotations

import numpy as np

from gradeconv import outcomes
from gradeconv.results import CaseResult
from gradeconv.rubric import ReferenceCheck
from gradeconv.sandbox import Reply
from gradeconv.specs import Function


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
    if type(got) is not np.ndarray or got.dtype.kind not in "fiu" or got.dtype.fields is not None:
        return CaseResult(outcomes.WRONG_TYPE, f"{name} has dtype {got.dtype}: return real float64 values",
                          output=name)
    if got.shape != expected.shape:
        return CaseResult(outcomes.WRONG_SHAPE, f"{name} has shape {got.shape}, expected {expected.shape}",
                          output=name, got_shape=got.shape, expected_shape=expected.shape)
    if got.dtype != np.float64:
        return CaseResult(outcomes.WRONG_TYPE, f"{name} has dtype {got.dtype}, expected float64 "
                          "(the course asks for double precision)", output=name)
    if got.ndim == 0:  # a loss
        return _compare_scalar(name, float(got), float(expected), tolerance)
    error = np.abs(got - expected)
    allowed = tolerance.atol + tolerance.rtol * np.abs(expected)
    if (error <= allowed).all():  # false wherever got is NaN or infinite
        return None
    if not np.isfinite(got).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        return CaseResult(outcomes.WRONG_VALUE, f"{name} contains NaN or infinity, first at index {where}",
                          output=name, where=where)
    where = tuple(int(i) for i in np.unravel_index(np.argmax(error - allowed), error.shape))
    largest = float(error.max())
    return CaseResult(
        outcomes.WRONG_VALUE,
        f"{name} is wrong: largest error {largest:.3g} at index {where} "
        f"(got {got[where]:.6g}, expected {expected[where]:.6g})",
        output=name, max_error=largest, where=where, difference=error,
    )


def _compare_scalar(name: str, got: float, expected: float, tolerance: ReferenceCheck) -> CaseResult | None:
    if not np.isfinite(got):
        return CaseResult(outcomes.WRONG_VALUE, f"{name} is {got} (expected {expected:.6g})", output=name)
    error = abs(got - expected)
    if error <= tolerance.atol + tolerance.rtol * abs(expected):
        return None
    return CaseResult(outcomes.WRONG_VALUE, f"{name} is wrong: got {got:.6g}, expected {expected:.6g} "
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
