"""Grading many submissions on a local process pool, keeping every finished grade."""
from __future__ import annotations

import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Iterator

from gradeconv.grading import grade_submission
from gradeconv.rubric import Rubric
from gradeconv.submissions import Submission


def safe_grade(submission: Submission, rubric: Rubric) -> dict:
    """A submission's JSON result; a failure of the grader itself becomes a score-0 row, not a lost batch."""
    try:
        return grade_submission(submission, rubric).to_json()
    except Exception as error:  # an internal error must not cost the rest of the class
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        return {"id": submission.id, "late": submission.late, "path": str(submission.path), "score": 0.0,
                "max_score": rubric.max_score, "execution_time": 0.0,
                "output": f"gradeconv failed while grading this submission ({detail}); please report it",
                "tests": []}


def grade_all(submissions: list[Submission], rubric: Rubric, jobs: int) -> Iterator[dict]:
    """Results in completion order; jobs == 1 grades in this process."""
    if jobs <= 1 or len(submissions) <= 1:
        for submission in submissions:
            yield safe_grade(submission, rubric)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(safe_grade, submission, rubric) for submission in submissions]
        for future in as_completed(futures):
            yield future.result()

