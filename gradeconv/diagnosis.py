"""Explaining a failure: which parameter triggers it, and which known bug it looks like."""
from __future__ import annotations

from typing import Callable

from gradeconv import outcomes
from gradeconv.cases import Case, restricted
from gradeconv.results import CaseResult
from gradeconv.rubric import Space

#: restriction -> what the failure needs when the restricted space passes
TRIGGERS = {
    "pad 0": "pad > 0",
    "pad 1+": "pad = 0",
    "stride 1": "stride > 1",
    "square": "H != W or the kernel/window is not square",
    "no overlap": "pooling windows overlap (stride < window size)",
    "N=1": "N > 1",
    "C=1": "C > 1",
    "F=1": "F > 1",
}
CONV_RESTRICTIONS = ("pad 0", "pad 1+", "stride 1", "square", "N=1", "C=1", "F=1")
POOL_RESTRICTIONS = ("stride 1", "square", "no overlap", "N=1", "C=1")


def triggers(passes_within: Callable[[Space], bool], space: Space, pool: bool) -> list[str]:
    """The conditions the failure needs: restrictions under which the test passes."""
    found = []
    for restriction in POOL_RESTRICTIONS if pool else CONV_RESTRICTIONS:
        narrowed = restricted(space, restriction)
        if narrowed is not None and passes_within(narrowed):
            found.append(TRIGGERS[restriction])
    return found


def hints(failure: CaseResult, function: str, found: list[str]) -> list[str]:
    """Known bug patterns the evidence matches, phrased as what to fix."""
    case: Case | None = failure.case
    text = failure.message
    result = []
    if "float" in text and ("integer" in text or "index" in text):
        result.append("sizes computed with `/` are floats in Python 3: use integer division `//`")
    if failure.outcome == outcomes.MUTATED_INPUT:
        result.append("do not modify x, w, b or dout: write into new arrays (np.pad returns a copy)")
    if failure.outcome == outcomes.WRONG_TYPE and "float32" in text:
        result.append("return float64 arrays: do not cast to float32")
    got, expected = failure.got_shape, failure.expected_shape
    if failure.outcome == outcomes.WRONG_SHAPE and got and expected and len(got) == len(expected) == 4:
        if case is not None and case.pad == 0 and 0 in got[2:]:
            result.append("slicing `[pad:-pad]` gives an empty array when pad = 0: "
                          "crop with `[pad:pad + H]` instead")
        elif got[2:] == expected[:1:-1] and got[2:] != expected[2:]:
            result.append("height and width are swapped somewhere (H/W or field height/width)")
        elif case is not None and case.pad > 0 and got[2:] == (expected[2] + 2 * case.pad,
                                                                expected[3] + 2 * case.pad):
            result.append("dx still includes the padding: crop it off before returning")
    if "pad = 0" in found and not any("pad" in hint for hint in result):
        result.append("check the pad = 0 path: `[pad:-pad]` is empty when pad = 0")
    if "H != W or the kernel/window is not square" in found and not any("swapped" in h for h in result):
        result.append("check for swapped H and W (or field height and width)")
    if "stride > 1" in found:
        result.append("check that the stride is applied wherever windows are placed")
    if "pooling windows overlap (stride < window size)" in found and function.endswith("backward_naive"):
        result.append("with overlapping windows gradients must accumulate: use `+=`, not `=`")
    if failure.output == "out" and "bias" in text:
        result.append("add the bias b[f] to every output of filter f")
    return result


def summarize(failure: CaseResult, function: str, found: list[str]) -> str:
    parts = []
    if found:
        parts.append("fails only when " + " and when ".join(found))
    parts += hints(failure, function, found)
    return "; ".join(dict.fromkeys(parts))
