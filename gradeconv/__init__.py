"""gradeconv: grade students' CS231n numpy layers against trusted references."""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def grade(path, rubric=None, sandbox: str | None = None):
    """Grade the submission(s) at `path` with a rubric (a path, a Rubric, or None: the default).

    Returns a list of SubmissionResult, one per submission found. sandbox forces an isolation
    mode (bubblewrap, uid or none); by default the strongest the machine offers.
    """
    from gradeconv import rubric as rubrics
    from gradeconv.judging.grading import grade_submission
    from gradeconv.submissions import discover

    if not isinstance(rubric, rubrics.Rubric):
        rubric = rubrics.load(rubric)
    submissions = discover([Path(path)], rubric.module, rubric.package)
    return [grade_submission(submission, rubric, sandbox) for submission in submissions]


def check(path, rubric=None, sandbox: str | None = None):
    """Run the visible tests of a rubric on one student file (a path or an imported module).

    Returns a gradeconv.notebook.CheckResult: an HTML table in Jupyter, plain text when
    printed, `.passed`, `.score`, `.max_score`, `.tests` and `.assert_passed()`. rubric is
    None (./rubric.yaml if present, else the bundled default), a bundled rubric's name
    ("assignment2"), a rubric file or a Rubric. Writes nothing to stderr.
    """
    from gradeconv.notebook import check as check_file

    return check_file(path, rubric, sandbox)
