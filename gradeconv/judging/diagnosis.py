"""Explaining a failure: which condition triggers it, and which known bug it looks like.

Triggers come from the layer's restrictions: a narrower space the failing test
passes within says what the failure needs. Hints come from the evidence: the
failure's own message and shapes, the layer's shape hints, and the known
mistakes its outputs matched on the failing case.
"""
from __future__ import annotations

from typing import Callable

from gradeconv import outcomes
from gradeconv.judging.cases import Space, restricted
from gradeconv.results import CaseResult
from gradeconv.specs import FUNCTIONS


class Found(list):
    """The triggers found (a list of str); `ruled_out` holds those whose restriction was tried and
    the test still failed within it: what the failure does not need."""

    def __init__(self, found=(), ruled_out=()):
        super().__init__(found)
        self.ruled_out = tuple(ruled_out)


def triggers(passes_within: Callable[[Space], bool], space: Space, function: str) -> Found:
    """The conditions the failure needs: restrictions under which the test passes."""
    layer = FUNCTIONS[function][0]
    found, ruled_out = [], []
    for restriction in layer.restrictions:
        narrowed = restricted(space, layer, restriction)
        if narrowed is None:
            continue
        (found if passes_within(narrowed) else ruled_out).append(restriction.trigger)
    return Found(found, ruled_out)


#: (what the error message says, what to write instead): Python 2 leftovers and names numpy 2 removed.
#: Matched on the failure's message, so they reach the student for an error at import as well as in a call.
VERSION_HINTS = (
    (("name 'xrange' is not defined",), "`xrange` is Python 2: write `range` (it is lazy in Python 3 too)"),
    (("Missing parentheses in call to 'print'",),
     "`print x` is a Python 2 print statement: write `print(x)`"),
    (("has no attribute 'iteritems'",), "`.iteritems()` is Python 2: write `.items()`"),
    (("uses past,",), "`from past.builtins import xrange` needs the Python 2 compatibility package `future`, "
                      "which the grader does not provide: write `range` and drop that import"),
    (("module 'numpy' has no attribute 'int'",),
     "`np.int` was removed from numpy (1.24): write `int`, or `np.int64` for a numpy dtype"),
    (("module 'numpy' has no attribute 'float'",),
     "`np.float` was removed from numpy (1.24): write `float`, or `np.float64` for a numpy dtype"),
    (("module 'numpy' has no attribute 'object'",), "`np.object` was removed from numpy (1.24): write `object`"),
    (("module 'numpy' has no attribute 'complex'",),
     "`np.complex` was removed from numpy (1.24): write `complex`, or `np.complex128`"),
    (("module 'numpy' has no attribute 'str'",), "`np.str` was removed from numpy (1.24): write `str`"),
    (("module 'numpy.lib' has no attribute 'pad'",),
     "`np.lib.pad` was removed from numpy: write `np.pad` (same arguments)"),
    (("unravel_index", "unexpected keyword argument 'dims'"),
     "`np.unravel_index(i, dims=...)`: numpy renamed `dims` to `shape`: write `np.unravel_index(i, shape)`"),
)


def hints(failure: CaseResult, function: str, found: list[str]) -> list[str]:
    """Known bug patterns the evidence matches, phrased as what to fix."""
    layer, graded = FUNCTIONS[function]
    role = layer.role(graded)
    text = failure.message
    result = [hint for needles, hint in VERSION_HINTS if all(needle in text for needle in needles)]
    if not result and "float" in text and ("integer" in text or "index" in text):
        result.append("sizes computed with `/` are floats in Python 3: use integer division `//`")
    if failure.outcome == outcomes.MUTATED_INPUT:
        result.append(f"do not modify {_inputs_of(layer, role)}: write into new arrays (np.pad returns a copy)")
    if failure.outcome == outcomes.WRONG_TYPE and "float32" in text and "expected float32" not in text:
        # not when float32 was asked for (a model's dtype argument): then casting is the fix
        result.append("return float64 arrays: do not cast to float32")
    if layer.hints is not None:
        result += layer.hints(failure, failure.case)
    for restriction in layer.restrictions:
        if restriction.trigger not in found or not restriction.hint or restriction.only not in (None, role):
            continue
        if restriction.hint_unless and any(restriction.hint_unless in hint for hint in result):
            continue
        result.append(restriction.hint)
    result += _mistake_hints(failure, graded, found)
    return result


def _mistake_hints(failure: CaseResult, graded, found) -> list[str]:
    """The hints of the known mistakes the failing case matched, less those the triggers contradict.

    On a tiny smallest case several formulas can agree (a stride ignored and a pad + 1 give the same
    output); the triggers tell them apart. A mistake that `needs` a trigger is contradicted when the
    test still fails within that trigger's restriction; any mistake is contradicted by a trigger found
    that other mistakes need and it does not (a failure that needs stride > 1 is no pad + 1). A hint
    stays while one mistake giving it is not contradicted."""
    ruled_out = getattr(found, "ruled_out", ())
    layer = FUNCTIONS[graded.name][0]
    needed = {mistake.needs for function in layer.functions for mistake in function.mistakes if mistake.needs}
    telling = needed.intersection(found)

    def contradicted(mistake) -> bool:
        return (mistake.needs in ruled_out) or bool(telling - {mistake.needs})

    kept = []
    for hint in failure.hints:
        declared = [mistake for mistake in graded.mistakes if mistake.hint == hint and mistake.output == failure.output]
        if declared and all(contradicted(mistake) for mistake in declared):
            continue
        kept.append(hint)
    return kept


def _inputs_of(layer, role: str) -> str:
    names = [array.name for array in layer.arrays if not any(array in param.arrays for param in layer.params)]
    if role == "backward":
        names += [f"d{name}" for name in layer.forward.outputs]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def summarize(failure: CaseResult, function: str, found: list[str]) -> str:
    parts = []
    if found:
        parts.append("fails only when " + " and when ".join(found))
    parts += hints(failure, function, found)
    return "; ".join(dict.fromkeys(parts))
