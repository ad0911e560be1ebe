"""Gradescope's results.json: exactly one SUBMISSION object, written even when grading fails."""
from __future__ import annotations

from pathlib import Path

from gradeconv.reports.files import write_json


def write(path: Path, submission: dict) -> None:
    write_json(path, submission)


def failure(message: str, max_score: float) -> dict:
    """A valid results.json saying grading itself failed, so the platform shows a reason."""
    return {"id": "submission", "late": False, "path": "", "score": 0.0, "max_score": max_score,
            "execution_time": 0.0, "output": f"The autograder could not grade this submission: {message}",
            "tests": []}


def not_graded(submission: dict) -> dict:
    """results.json for a submission the machine kept from being graded.

    Gradescope has no "not graded" state and wants a number, so the score is 0 and the text at the top
    tells the student it is no judgement of their code: resubmit, or ask the staff to regrade.
    """
    return {**submission, "score": 0.0, "tests": [],
            "output": f"{submission['output']}\n(for the course staff: {submission.get('machine_failure')})"}
