"""The --json results file (design.md, "Machine-readable results")."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import hypothesis
import numpy

from gradeconv import __version__
from gradeconv.reports.files import write_json
from gradeconv.rubric import Rubric


def document(rubric: Rubric, submissions: list[dict]) -> dict:
    return {
        "gradeconv_version": __version__,
        "hypothesis_version": hypothesis.__version__,
        "numpy_version": numpy.__version__,
        "rubric": {"path": rubric.path, "sha256": rubric.sha256,
                   "secret_fingerprint": rubric.secret_fingerprint},
        "submissions": submissions,
    }


def write(path: Path, rubric: Rubric, submissions: list[dict]) -> None:
    write_json(path, document(rubric, submissions))


def _ignore(line: str) -> None:
    """The default `warn` of read_finished: say nothing."""


def read_finished(path: Path, rubric: Rubric, warn: Callable[[str], None] = _ignore) -> list[dict]:
    """Well-formed rows of an earlier (possibly interrupted) run with this rubric and version; [] if none.

    Rows graded with another rubric or another gradeconv version are not trusted
    (their scores may not mean the same); `warn` gets one line saying why none is kept.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        warn(f"not resuming from {path}: it cannot be read as JSON ({error})")
        return []
    reason = _why_not_resumable(data, rubric)
    if reason:
        warn(f"not resuming from {path}: {reason}")
        return []
    rows, seen, not_graded = [], set(), 0
    for row in data["submissions"]:
        if isinstance(row, dict) and row.get("graded") is False:
            not_graded += 1
        elif _well_formed(row) and row["id"] not in seen:
            rows.append(row)
            seen.add(row["id"])
    if not_graded:
        warn(f"resuming from {path}: grading the {not_graded} submission(s) that were not graded")
    dropped = len(data["submissions"]) - len(rows) - not_graded
    if dropped:
        warn(f"resuming from {path}: regrading {dropped} malformed or repeated row(s)")
    return rows


def _why_not_resumable(data: object, rubric: Rubric) -> str | None:
    """Why an earlier results document cannot be resumed from, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("submissions"), list):
        return "it is not a gradeconv results file"
    recorded = data.get("rubric")
    sha = recorded.get("sha256") if isinstance(recorded, dict) else None
    if sha != rubric.sha256:
        return f"it was graded with another rubric (sha256 {str(sha)[:16]}, now {rubric.sha256[:16]})"
    if recorded.get("secret_fingerprint") != rubric.secret_fingerprint:
        return "it was graded with another secret for the hidden tests"
    if data.get("gradeconv_version") != __version__:
        return (f"it was graded with another gradeconv version "
                f"({data.get('gradeconv_version')}, now {__version__})")
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _well_formed(row: object) -> bool:
    """A row with the fields resuming and the reports rely on, and a score that can be real."""
    return (isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("late"), bool)
            and _is_number(row.get("score")) and _is_number(row.get("max_score"))
            and 0 <= row["score"] <= row["max_score"]
            and isinstance(row.get("tests"), list) and all(map(_well_formed_test, row["tests"])))


def _well_formed_test(test: object) -> bool:
    return (isinstance(test, dict) and isinstance(test.get("name"), str) and isinstance(test.get("status"), str)
            and isinstance(test.get("output"), str) and _is_number(test.get("score"))
            and _is_number(test.get("max_score")))
