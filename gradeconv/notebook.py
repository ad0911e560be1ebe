"""A student's check from a notebook: ``gradeconv.check("cs231n/layers.py")``.

Runs the rubric's visible tests on one file in the sandbox, like `gradeconv check`, and
returns a CheckResult: an HTML table in Jupyter, plain text in a terminal or IPython,
``.passed``, ``.score``, ``.max_score``, ``.tests`` and ``.assert_passed()`` for nbgrader
or pytest. Nothing is written to stderr (nbgrader zeroes a cell that writes there):
warnings and stray messages raised while grading are kept in ``.notes`` instead.

Everything a submission can influence (test output, diagnoses, what the student's code
printed, the path) is HTML-escaped before it is shown.
"""
from __future__ import annotations

import contextlib
import html
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from gradeconv.results import is_graded
from gradeconv import rubric as rubrics

CASE_PREFIX = "smallest failing case: "
DIAGNOSIS_PREFIX = "diagnosis: "


class NotGraded(RuntimeError):
    """The machine kept the file from being graded (a sandbox that did not start): try again."""


class NotASubmission(ValueError):
    """A path that cannot be a submission: the message names it and says what to give instead."""


def submission_problem(path: Path, rubric: rubrics.Rubric) -> str | None:
    """Why `path` is not something to check (one line), or None if it may be a submission.

    A submission is a .py file, a .zip, or a folder holding one of the rubric's graded files
    (at any depth, as grading finds it).
    """
    modules = rubric.modules
    wanted = " or ".join(modules)
    instead = f"give your {wanted} (a .py file), a .zip of your work, or the folder holding it"
    if not path.exists() and not path.is_symlink():
        return f"{path}: no such file or folder"
    if path.is_dir():
        if not any(_holds(path, module) for module in modules):
            return f"{path}: no {wanted} in this folder; {instead}"
        return None
    if path.suffix.lower() in (".py", ".zip"):
        return None
    return f"{path}: not a submission; {instead}"


def _holds(folder: Path, module: str) -> bool:
    from gradeconv.submissions import is_module, walk

    return any(is_module(found, module) for found, _ in walk(folder))


def resolve_rubric(rubric=None) -> rubrics.Rubric:
    """A Rubric, a bundled rubric's name or a rubric file; None: ./rubric.yaml if present, else the default."""
    if isinstance(rubric, rubrics.Rubric):
        return rubric
    if rubric is None and Path("rubric.yaml").is_file():
        rubric = "rubric.yaml"
    return rubrics.load(rubrics.locate(os.fspath(rubric)) if rubric is not None else None)


def visible_only(rubric: rubrics.Rubric) -> rubrics.Rubric:
    visible = tuple(test for test in rubric.tests if test.visibility == "visible")
    if not visible:
        raise rubrics.RubricError(f"{rubric.path}: the rubric has no visible tests to check")
    return rubric.model_copy(update={"tests": visible})


def check(path, rubric=None, sandbox: str | None = None) -> "CheckResult":
    """Run the visible tests of `rubric` on the file (or folder, or .zip) at `path`.

    path: a path, or an imported module (its ``__file__`` is graded; a package's folder).
    The file on disk is graded, so save it first. rubric: None (./rubric.yaml if present,
    else the bundled default), a bundled rubric's name such as "assignment2", a rubric
    file, or a Rubric. sandbox forces an isolation mode (bubblewrap, uid or none).
    Raises NotASubmission (a ValueError) for a path that cannot be a submission.
    """
    from gradeconv.judging.grading import grade_submission
    from gradeconv.submissions import Submission

    target = _path_of(path)
    rules = visible_only(resolve_rubric(rubric))
    problem = submission_problem(target, rules)
    if problem:
        raise NotASubmission(problem)
    stray = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stray):
        result = grade_submission(Submission(target.resolve().name, target), rules, sandbox).to_json()
    if not is_graded(result):
        raise NotGraded(f"{result['output']} (the machine's problem: {result['machine_failure']})")
    notes = [result["output"]] if result["output"] else []
    notes += [f"grader warning: {warnings.formatwarning(w.message, w.category, w.filename, w.lineno).strip()}"
              for w in caught]
    if stray.getvalue().strip():
        notes.append("grader messages:\n" + stray.getvalue().rstrip())
    return CheckResult(path=str(target), rubric=str(rules.path or "default"),
                       score=result["score"], max_score=result["max_score"],
                       tests=tuple(CheckedTest.from_json(test) for test in result["tests"]),
                       notes="\n".join(notes), sandbox=result.get("sandbox"))


def _path_of(path) -> Path:
    if isinstance(path, ModuleType):
        file = getattr(path, "__file__", None)
        if not file:
            raise NotASubmission(f"module {path.__name__} has no file to check; give the path of your file")
        file = Path(file)
        return file.parent if file.name == "__init__.py" else file
    return Path(os.fspath(path))


@dataclass(frozen=True)
class CheckedTest:
    """One visible test's result."""

    name: str
    number: int
    status: str  # passed | failed
    outcome: str  # passed, wrong_value, wrong_shape, ... (see README "Output formats")
    score: float
    max_score: float
    function: str
    output: str
    diagnosis: str | None = None
    counterexample: dict | None = None
    reproduce: str | None = None

    @classmethod
    def from_json(cls, test: dict) -> "CheckedTest":
        extra = test.get("extra_data") or {}
        return cls(name=test["name"], number=int(test["number"]), status=test["status"],
                   outcome=extra.get("outcome") or test["status"], score=test["score"],
                   max_score=test["max_score"], function=extra.get("function") or "",
                   output=test.get("output") or "", diagnosis=extra.get("diagnosis"),
                   counterexample=extra.get("counterexample"), reproduce=extra.get("reproduce") or None)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def case(self) -> str | None:
        """The smallest failing case, in words."""
        for line in self.output.splitlines():
            if line.startswith(CASE_PREFIX):
                return line[len(CASE_PREFIX):]
        if self.counterexample:
            return ", ".join(f"{key} {value}" for key, value in self.counterexample.items())
        return None

    @property
    def message(self) -> str:
        """The failure itself: the output without the case, the diagnosis and the reproduction."""
        text = self.output
        if self.reproduce and self.reproduce.strip() and self.reproduce.strip() in text:
            lines = text[:text.index(self.reproduce.strip())].splitlines()
            if lines and lines[-1].lower().startswith("reproduce"):  # the snippet's heading
                lines.pop()
            text = "\n".join(lines)
        kept = [line for line in text.splitlines() if not line.startswith((CASE_PREFIX, DIAGNOSIS_PREFIX))]
        return "\n".join(kept).strip()

    @property
    def headline(self) -> str:
        """One line: the diagnosis, else the first line of the message."""
        first = (self.message.splitlines() or [""])[0]
        return self.diagnosis or first or self.outcome


@dataclass(frozen=True, repr=False)
class CheckResult:
    """The visible tests of one file: display it in Jupyter, print it, or assert on it."""

    path: str
    rubric: str
    score: float
    max_score: float
    tests: tuple[CheckedTest, ...]
    notes: str = ""  # which sandbox graded it, what the code printed, grader warnings
    sandbox: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.tests) and all(test.passed for test in self.tests)

    @property
    def failures(self) -> tuple[CheckedTest, ...]:
        return tuple(test for test in self.tests if not test.passed)

    def summary(self) -> str:
        failed = len(self.failures)
        verdict = "all passed" if self.passed else f"{failed} of {len(self.tests)} failed"
        return (f"{Path(self.path).name}: {self.score:g}/{self.max_score:g} points on the visible tests, "
                f"{verdict}")

    def assert_passed(self) -> None:
        """Raise AssertionError naming each failed test (for nbgrader or pytest)."""
        if self.passed:
            return
        lines = [f"{self.summary()}:"]
        lines += [f"- {test.name} ({test.outcome}): {_one_line(test.headline)}" for test in self.failures[:8]]
        if len(self.failures) > 8:
            lines.append(f"- ... and {len(self.failures) - 8} more")
        raise AssertionError("\n".join(lines))

    def __repr__(self) -> str:
        return f"<CheckResult {self.summary()}>"

    def __str__(self) -> str:
        lines = []
        for test in self.tests:
            if test.passed:
                lines.append(f"PASS {test.name}")
                continue
            lines.append(f"FAIL {test.name} ({test.outcome})")
            lines += [f"     {line}" for line in test.output.splitlines()]
            if test.reproduce and test.reproduce.strip() not in test.output:
                lines.append("     reproduce:")
                lines += [f"         {line}" for line in test.reproduce.splitlines()]
        lines.append("")
        lines.append(f"visible tests: {self.score:g}/{self.max_score:g} points")
        if self.notes:
            lines.append(self.notes)
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))

    def _repr_html_(self) -> str:
        e = _escape
        rows = "".join(_html_row(test) for test in self.tests)
        colour = "#1a7f37" if self.passed else "#cf222e"
        notes = (f'<pre style="{PRE}margin-top:6px">{e(self.notes)}</pre>' if self.notes else "")
        return (
            f'<div class="gradeconv-check" style="font-family:sans-serif;font-size:13px">'
            f'<div style="font-weight:bold;color:{colour};margin:4px 0">{e(self.summary())}</div>'
            f'<table style="border-collapse:collapse">'
            f'<thead><tr><th style="{CELL}">status</th><th style="{CELL}">test</th>'
            f'<th style="{CELL}text-align:right">points</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>{notes}</div>")


CELL = "border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top;"
PRE = "white-space:pre-wrap;margin:4px 0;padding:4px 6px;background:rgba(127,127,127,0.1);"


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _html_row(test: CheckedTest) -> str:
    e = _escape
    points = f'<td style="{CELL}text-align:right">{test.score:g}/{test.max_score:g}</td>'
    if test.passed:
        return (f'<tr><td style="{CELL}color:#1a7f37">&#10004; passed</td>'
                f'<td style="{CELL}">{e(test.name)}</td>{points}</tr>')
    details = []
    if test.message:
        details.append(f'<pre style="{PRE}">{e(test.message)}</pre>')
    if test.case:
        details.append(f"<div><b>smallest failing case:</b> {e(test.case)}</div>")
    if test.diagnosis:
        details.append(f"<div><b>diagnosis:</b> {e(test.diagnosis)}</div>")
    if test.reproduce:
        details.append(f'<div><b>reproduce:</b></div><pre style="{PRE}">{e(test.reproduce)}</pre>')
    return (f'<tr><td style="{CELL}color:#cf222e">&#10008; failed<br><small>{e(test.outcome)}</small></td>'
            f'<td style="{CELL}"><b>{e(test.name)}</b>{"".join(details)}</td>{points}</tr>')
