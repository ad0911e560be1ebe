"""The CSV gradebook: one row per submission, points per test."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from gradeconv.reports.files import write_atomically
from gradeconv.results import is_graded
from gradeconv.rubric import Rubric


#: a cell starting with one of these is a formula to a spreadsheet (CSV injection), full-width forms included
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cell(text: str) -> str:
    """Text a spreadsheet shows as text on one line, never runs as a formula (even after the blanks it may trim).

    Line breaks become spaces: a bare carriage return in a cell would start a new row for some readers.
    """
    risky = text.startswith(FORMULA_STARTS) or text.lstrip(" \t\r\n\u3000").startswith(FORMULA_STARTS)
    text = text.replace("\r", " ").replace("\n", " ")
    return "'" + text if risky else text


def render(rubric: Rubric, submissions: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "late", "score", "max_score", *(cell(test.name) for test in rubric.tests)])
    for submission in submissions:
        if not is_graded(submission):  # no score, never 0: empty cells until it is graded
            writer.writerow([cell(submission["id"]), submission["late"], "", submission["max_score"],
                             *("" for _ in rubric.tests)])
            continue
        points = {test["name"]: test["score"] for test in submission["tests"]}
        writer.writerow([cell(submission["id"]), submission["late"], submission["score"], submission["max_score"],
                         *(points.get(test.name, 0) for test in rubric.tests)])
    return buffer.getvalue()


def write(path: Path, rubric: Rubric, submissions: list[dict]) -> None:
    write_atomically(path, render(rubric, submissions))
