"""The case plan: what each test draws, drawn once per rubric and process, with its values built once.

With a fixed seed Hypothesis generates the same cases in the same order until a
case fails, so the cases a passing submission sees are known before it runs.
The plan records them once (running the search against a function that always
passes) and builds their arrays and the reference's answers once (its backward
on the canonical cache and the gradient check's probes join them on first use);
every later submission runs the recorded cases directly. Only a failure needs Hypothesis
again, to find the same first failure and shrink it: grades and counterexamples
are those of a plain search.

The recorded cases are also kept on disk, in a folder private to this user, so
repeated `gradeconv check` runs skip the search too: one JSON file per rubric
content, secret fingerprint, gradeconv and Hypothesis version, so a changed
rubric never reuses a stale plan. Only the cases are stored, never values: the
arrays and reference answers are always computed here.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import hypothesis

import gradeconv
from gradeconv import outcomes
from gradeconv.judging.cases import Case, CaseValues, build
from gradeconv.judging.search import smallest_failure
from gradeconv.private import private_folder
from gradeconv.reports.files import write_json
from gradeconv.results import CaseResult
from gradeconv.rubric import Rubric, Test

#: built cases kept per plan; a class's submissions share them (shrinking adds more)
MAX_VALUES = 4096
_PLANS: dict[str, "Plan"] = {}


class Plan:
    """The drawn cases of a rubric's tests, and the values of the cases run so far."""

    def __init__(self, rubric: Rubric, key: str, folder: Path | None):
        self.rubric = rubric
        self.file = folder / f"{key}.json" if folder else None
        self._cases: dict[str, tuple[Case, ...]] = _read(self.file)
        self._values: OrderedDict[tuple, CaseValues] = OrderedDict()
        self._lock = threading.Lock()  # a Dask worker may grade on several threads
        self._drawing = threading.Lock()  # and Hypothesis draws one test at a time

    def cases(self, test: Test) -> tuple[Case, ...]:
        """The cases the test's search generates when every one passes, in order."""
        with self._drawing:
            if test.name not in self._cases:
                self._cases[test.name] = self._draw(test)
                self._save()
            return self._cases[test.name]

    def _draw(self, test: Test) -> tuple[Case, ...]:
        drawn: list[Case] = []

        def record(case: Case) -> CaseResult:
            drawn.append(case)
            return CaseResult(outcomes.PASSED)

        smallest_failure(record, test.function, test.draw_space, test.examples, self.rubric.seed_of(test))
        return tuple(drawn)

    def _save(self) -> None:
        if self.file is None:
            return
        data = {name: [[case.function, [list(pair) for pair in case.variables], case.seed, case.values]
                       for case in cases] for name, cases in self._cases.items()}
        try:
            write_json(self.file, {"format": 1, "tests": data})
        except OSError:
            self.file = None  # a cache that cannot be written is no cache

    def values(self, test: Test, case: Case, salt: str = "") -> CaseValues:
        """The case's arrays and the reference's answers (read-only: every submission shares them).

        A hidden test's values also depend on the salt (the submission's own): those are shared by
        the gradings of that same file only.
        """
        salt = salt if self.rubric.salted(test) else ""
        key = (test.name, case, salt)
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        values = build(replace(case, seed=self.rubric.value_seed(test, case.seed, salt)))
        with self._lock:
            values = self._values.setdefault(key, values)
            while len(self._values) > MAX_VALUES:
                self._values.popitem(last=False)
        return values


def plan_for(rubric: Rubric) -> Plan:
    """This process's plan for the rubric: the same content, secret and versions share one."""
    identity = "\0".join([rubric.model_dump_json(), rubric.secret_fingerprint or "", gradeconv.__version__,
                          hypothesis.__version__])
    key = hashlib.sha256(identity.encode()).hexdigest()
    if key not in _PLANS:
        _PLANS.clear()  # one rubric at a time is what a batch grades
        _PLANS[key] = Plan(rubric, key, private_folder("plans"))
    return _PLANS[key]


def _read(file: Path | None) -> dict[str, tuple[Case, ...]]:
    """The cases recorded in a plan file; nothing when it is missing or not what this code writes."""
    if file is None:
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return {name: tuple(Case(function, tuple((str(key), value) for key, value in variables), int(seed),
                                 str(values))
                            for function, variables, seed, values in cases)
                for name, cases in data["tests"].items()} if data.get("format") == 1 else {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
