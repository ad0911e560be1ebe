"""What a student may see of a result: hidden tests reduced to their name, points and pass/fail.

Gradescope's results.json, PrairieLearn's results and the feedback files are made
from this view. Nothing a hidden test's calls produced survives in it: no printed
output (that stays in `hidden_output`, for instructors), no message, outcome,
counterexample, diagnosis or difference, and no timing. Instructors see the whole
result in the --json file and the HTML report.
"""
from __future__ import annotations

#: what only instructors see of a result
INSTRUCTOR_ONLY = ("hidden_output", "execution_time")
HIDDEN_NOTE = "hidden test: only its name, points and pass/fail are shown"


def student_view(row: dict) -> dict:
    """The row as its student may see it."""
    view = {key: value for key, value in row.items() if key not in INSTRUCTOR_ONLY}
    view["tests"] = [test if test.get("visibility", "visible") == "visible" else _hidden(test)
                     for test in row.get("tests", [])]
    return view


def _hidden(test: dict) -> dict:
    return {"name": test.get("name", ""), "number": test.get("number"), "score": test.get("score", 0.0),
            "max_score": test.get("max_score", 0.0), "status": test.get("status", "failed"),
            "output": HIDDEN_NOTE, "visibility": test.get("visibility", "hidden"), "tags": test.get("tags", []),
            "extra_data": {"function": (test.get("extra_data") or {}).get("function")}}
