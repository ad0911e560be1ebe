"""One markdown feedback file per student, in words they can act on.

Everything a submission can influence (test output with its messages, what it
printed) is quoted in fenced blocks whose fence is longer than any run of
backticks inside, so student text cannot close the block and pass for ours.
"""
from __future__ import annotations

import re
from pathlib import Path

from gradeconv.results import is_graded
from gradeconv.reports import names
from gradeconv.reports.files import write_atomically
from gradeconv.reports.student_view import student_view
from gradeconv.judging.reproduce import HEADING


def fence_for(text: str) -> str:
    """A backtick fence longer than every run of backticks in text (at least three)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def quoted(text: str) -> list[str]:
    """Lines of a fenced block holding text verbatim."""
    fence = fence_for(text)
    return [fence, text, fence]


def one_line(text: str) -> str:
    """Text for a heading: line breaks and other control characters become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text))


def render(submission: dict) -> str:
    if not is_graded(submission):
        return "\n".join([f"# Feedback for {one_line(submission['id'])}", "", "Score: not graded", "",
                          *quoted(submission.get("output", "")), ""])
    lines = [f"# Feedback for {one_line(submission['id'])}", "",
             f"Score: {submission['score']:g} / {submission['max_score']:g}", ""]
    if submission.get("problem"):  # one problem of the whole file: said once, not under every test
        lines += ["## Problem with your submission (no test could run)", "", *quoted(submission["problem"]), ""]
    for test in submission["tests"]:
        mark = "PASS" if test["status"] == "passed" else "FAIL"
        lines.append(f"## [{mark}] {one_line(test['name'])} ({test['score']:g}/{test['max_score']:g})")
        if test["status"] != "passed" and not submission.get("problem"):
            reproduction = test.get("extra_data", {}).get("reproduce")
            text = test["output"].split(f"\n{HEADING}\n")[0] if reproduction else test["output"]
            lines += [""] + quoted(text)
            if reproduction:
                fence = fence_for(reproduction)
                lines += ["", "Reproduce it: save this next to your `cs231n/` folder and run it, or paste it into "
                              "your notebook.", "", f"{fence}python", reproduction.rstrip("\n"), fence]
        lines.append("")
    if submission.get("output"):
        lines += ["## Notes", ""] + quoted(submission["output"]) + [""]
    return "\n".join(lines)


def write_all(folder: Path, submissions: list[dict]) -> None:
    """One file per submission, named from its id alone (reports/names.py): never another's file.

    A feedback file is the student's view: hidden tests show their name, points and pass/fail only.
    """
    for submission in submissions:
        write_atomically(Path(folder) / f"{names.file_stem(submission['id'])}.md", render(student_view(submission)))
