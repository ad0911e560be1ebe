"""Result objects of grading, and their JSON form (design.md, "Machine-readable results")."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradeconv.judging.cases import Case
from gradeconv.outcomes import FATAL


@dataclass(frozen=True)
class CaseResult:
    """What one case showed about one function."""

    outcome: str
    message: str = ""
    case: Case | None = None
    output: str | None = None  # which output was wrong: out, dx, a parameter entry...
    max_error: float | None = None
    where: tuple[int, ...] | None = None
    cache: str | None = None  # for backward: "submission" or "canonical"
    got_shape: tuple[int, ...] | None = None
    expected_shape: tuple[int, ...] | None = None
    final: bool = False  # no further case can change the verdict (the function is not called again)
    hints: tuple[str, ...] = ()  # known mistakes this case's outputs match
    difference: np.ndarray | None = field(default=None, compare=False, repr=False)  # |got - expected|

    @property
    def stops_search(self) -> bool:
        return self.final or self.outcome in FATAL


@dataclass(frozen=True)
class TestResult:
    name: str
    number: int
    function: str
    points: float
    score: float
    outcome: str
    visibility: str
    tags: tuple[str, ...]
    output: str
    counterexample: dict | None = None
    diagnosis: str | None = None
    cache: str | None = None
    reproduce: str | None = None  # Python that shows the failure (visible tests only)
    difference: dict | None = None  # {"output", "shape", "values": |got - expected|} (visible tests only)
    description: str | None = None  # what the test checks, in words (the rubric's, or made from it)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "number": str(self.number),
            "score": self.score,
            "max_score": self.points,
            "status": "passed" if self.passed else "failed",
            "output": self.output,
            "visibility": self.visibility,
            "tags": list(self.tags),
            "extra_data": {
                "function": self.function,
                "outcome": self.outcome,
                "counterexample": self.counterexample,
                "diagnosis": self.diagnosis,
                "cache": self.cache,
                "reproduce": self.reproduce,
                "difference": self.difference,
                "description": self.description,
            },
        }


@dataclass(frozen=True)
class SubmissionResult:
    id: str
    late: bool
    path: str
    tests: tuple[TestResult, ...]
    max_score: float
    execution_time: float
    output: str
    sandbox: str | None = None
    student_seconds: float = 0.0
    gradient_forward_calls: int = 0
    full_gradient_forward_calls: int = 0
    unexplained_kills: int = 0  # workers that died of a SIGKILL gradeconv did not send
    machine_failure: str | None = None  # not graded: what the machine did wrong (the student caused nothing)
    hidden_output: str = ""  # what the hidden tests' calls printed: instructors only, never in a student's view
    files_sha256: dict[str, str] = field(default_factory=dict)  # graded file -> its sha256: hidden values' salt
    problem: str | None = None  # a submission-level problem (syntax error, wrong module...): said once, not per test

    @property
    def graded(self) -> bool:
        return self.machine_failure is None

    @property
    def score(self) -> float | None:
        """The points earned; None when the submission was not graded."""
        return round(sum(test.score for test in self.tests), 6) if self.graded else None

    @property
    def verdicts(self) -> tuple[tuple[str, str, float], ...]:
        """(name, outcome, score) of every test: what two gradings of the same code must agree on."""
        return tuple((test.name, test.outcome, test.score) for test in self.tests)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "late": self.late,
            "path": self.path,
            "graded": self.graded,
            "score": self.score,
            "max_score": self.max_score,
            "execution_time": round(self.execution_time, 3),
            "output": self.output,
            "sandbox": self.sandbox,
            "machine_failure": self.machine_failure,
            "hidden_output": self.hidden_output,
            "files_sha256": self.files_sha256,
            "problem": self.problem,
            "tests": [test.to_json() for test in self.tests],
        }


def is_graded(row: dict) -> bool:
    """Whether a JSON row has a score: False for a submission the machine kept from being graded."""
    return row.get("graded", True) is not False and row.get("score") is not None
