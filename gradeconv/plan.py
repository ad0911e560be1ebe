"""The case plan: what each test draws, drawn once per rubric and process, with its values built once.

With a fixed seed Hypothesis generates the same cases in the same order until a
case fails, so the cases a passing submission sees are known before it runs.
The plan records them once (running the search against a function that always
passes) and builds their arrays and the reference's answers once; every later
submission runs the recorded cases directly. Only a failure needs Hypothesis
again, to find the same first failure and shrink it: grades and counterexamples
are those of a plain search.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import replace

from gradeconv import outcomes
from gradeconv.cases import Case, CaseValues, build
from gradeconv.results import CaseResult
from gradeconv.rubric import Rubric, Test
from gradeconv.search import smallest_failure

#: built cases kept per plan; a class's submissions share them (shrinking adds more)
MAX_VALUES = 4096
_PLANS: dict[str, "Plan"] = {}


class Plan:
    """The drawn cases of a rubric's tests, and the values of the cases run so far."""

    def __init__(self, rubric: Rubric):
        self.rubric = rubric
        self._cases: dict[str, tuple[Case, ...]] = {}
        self._values: OrderedDict[tuple, CaseValues] = OrderedDict()

    def cases(self, test: Test) -> tuple[Case, ...]:
        """The cases the test's search generates when every one passes, in order."""
        if test.name not in self._cases:
            drawn: list[Case] = []

            def record(case: Case) -> CaseResult:
                drawn.append(case)
                return CaseResult(outcomes.PASSED)

            smallest_failure(record, test.function, test.draw_space, test.examples, self.rubric.seed_of(test))
            self._cases[test.name] = tuple(drawn)
        return self._cases[test.name]

    def values(self, test: Test, case: Case) -> CaseValues:
        """The case's arrays and the reference's answers (read-only: every submission shares them)."""
        key = (test.name, case)
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        values = build(replace(case, seed=self.rubric.value_seed(test, case.seed)))
        self._values[key] = values
        if len(self._values) > MAX_VALUES:
            self._values.popitem(last=False)
        return values


def plan_for(rubric: Rubric) -> Plan:
    """This process's plan for the rubric: the same content and secret share one."""
    key = hashlib.sha256(rubric.model_dump_json().encode() + b"\0" +
                         (rubric.secret_fingerprint or "").encode()).hexdigest()
    if key not in _PLANS:
        _PLANS.clear()  # one rubric at a time is what a batch grades
        _PLANS[key] = Plan(rubric)
    return _PLANS[key]
