"""The --json results file (design.md, "Machine-readable results")."""
from __future__ import annotations

import json
from pathlib import Path

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
        "rubric": {"path": rubric.path, "sha256": rubric.sha256},
        "submissions": submissions,
    }


def write(path: Path, rubric: Rubric, submissions: list[dict]) -> None:
    write_json(path, document(rubric, submissions))


def read_finished(path: Path) -> list[dict]:
    """Submissions already graded in an earlier (possibly interrupted) run; [] if none."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [s for s in data["submissions"] if isinstance(s, dict) and "id" in s]
    except (OSError, ValueError, KeyError, TypeError):
        return []
