"""Gradescope's results.json: one submission, in exactly the keys Gradescope's specification defines.

Top level: score, output, output_format, test_output_format, test_name_format,
stdout_visibility, extra_data, tests; each test: name, number, score, max_score,
status, output, output_format, visibility, tags, extra_data. Everything else of
gradeconv's own result (id, path, sandbox, whether it was graded...) goes under
extra_data. Outputs are Markdown with all text fenced, so whatever a student
printed shows as text and never renders as HTML or Markdown. Hidden tests show
their name, points and pass/fail only (reports/student_view.py).
"""
from __future__ import annotations

from pathlib import Path

from gradeconv.reports.feedback import fence_for
from gradeconv.reports.files import write_json
from gradeconv.reports.student_view import student_view

#: the keys of a result that Gradescope's specification defines at the top level, and for each test
TOP_LEVEL = ("score", "output", "output_format", "test_output_format", "test_name_format", "stdout_visibility",
             "extra_data", "tests")
TEST_KEYS = ("name", "number", "score", "max_score", "status", "output", "output_format", "visibility", "tags",
             "extra_data")


def write(path: Path, submission: dict) -> None:
    write_json(path, results_json(submission))


def fenced(text: str) -> str:
    """Text shown as text in Markdown, whatever it holds (an empty text stays empty)."""
    if not text:
        return ""
    fence = fence_for(text)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def results_json(submission: dict) -> dict:
    """Gradescope's results.json of one gradeconv result (a SubmissionResult's JSON)."""
    view = student_view(submission)
    extra = {key: value for key, value in view.items() if key not in ("score", "output", "tests")}
    return {"score": view.get("score") or 0.0, "output": fenced(str(view.get("output", ""))),
            "output_format": "md", "test_output_format": "md", "test_name_format": "text",
            "stdout_visibility": "hidden", "extra_data": extra,
            "tests": [_test(test) for test in view.get("tests", [])]}


def _test(test: dict) -> dict:
    return {"name": str(test.get("name", "")), "number": str(test.get("number", "")),
            "score": test.get("score", 0.0), "max_score": test.get("max_score", 0.0),
            "status": test.get("status", "failed"), "output": fenced(str(test.get("output", ""))),
            "output_format": "md", "visibility": test.get("visibility", "visible"), "tags": list(test.get("tags", [])),
            "extra_data": test.get("extra_data") or {}}


def failure(message: str, max_score: float) -> dict:
    """A result saying grading itself failed, so the platform shows a reason."""
    return {"id": "submission", "late": False, "path": "", "score": 0.0, "max_score": max_score,
            "execution_time": 0.0, "output": f"The autograder could not grade this submission: {message}",
            "tests": []}


def not_graded(submission: dict) -> dict:
    """The result of a submission the machine kept from being graded.

    Gradescope has no "not graded" state and wants a number, so the score is 0 and the text at the top
    tells the student it is no judgement of their code: resubmit, or ask the staff to regrade.
    """
    return {**submission, "score": 0.0, "tests": [],
            "output": f"{submission['output']}\n(for the course staff: {submission.get('machine_failure')})"}
