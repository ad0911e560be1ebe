"""Grading speed of the bundled rubrics on correct submissions.

Assignment 2 is graded on a correct vectorised submission: the student-style
solution (tests/solutions/a2: layers.py with the sample class's im2col conv and
pool, optim.py, classifiers/fc_net.py and cnn.py), by the whole-assignment rubric
and by the layers-only one; assignment 3 on the student-style rnn_layers.py and
classifiers/rnn.py. Prints wall time, time in student code and the rest
(harness), and the ratio harness / student, for the first submission of a class
(which draws the case plan: none is on disk) and for the others (best of three).
Targets (whole assignment 2): <= 5 s for the first submission, <= 1.5 s for each
later one; harness / student <= 1. The layers-only rubrics: today's speed.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.private import private_folder
from gradeconv.submissions import Submission

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "tests" / "solutions"
VECTORISED_CONV = ROOT / "submissions" / "judyjones_LATE_48213_990417_layers.py"


def vectorised_assignment2(folder: Path) -> Path:
    """The assignment-2 solution with its conv and pool functions replaced by vectorised ones."""
    package = folder / "vectorised" / "cs231n"
    shutil.copytree(SOLUTIONS / "a2" / "cs231n", package, ignore=shutil.ignore_patterns("__pycache__"))
    loops = (SOLUTIONS / "a2" / "cs231n" / "layers.py").read_text()
    (package / "layers.py").write_text(loops + "\n\n# vectorised conv and pool\n" + VECTORISED_CONV.read_text())
    return package.parent


def measure(name: str, rubric: rubrics.Rubric, path: Path, targets: tuple[float, float] | None) -> None:
    """The first submission (it draws the case plan) and the best of three after it (a class's others)."""
    plans = private_folder("plans")
    if plans is not None:  # the first submission draws its plan: none is on disk ("always safe to delete")
        shutil.rmtree(plans, ignore_errors=True)
    runs = []
    for _ in range(4):
        started = time.perf_counter()
        result = grade_submission(Submission(path.name, path), rubric)
        runs.append((time.perf_counter() - started, result))
    for index, (label, (wall, result)) in enumerate((("first", runs[0]),
                                                      ("others", min(runs[1:], key=lambda run: run[0])))):
        student = result.student_seconds
        harness = wall - student
        verdict = "" if targets is None else (
            f"  (<= {targets[index]:g} s: {'met' if wall <= targets[index] else 'MISSED'}; "
            f"harness / student <= 1: {'met' if harness <= student else 'MISSED'})")
        print(f"{name:18s} {label:6s} score {result.score:g}/{result.max_score:g}  wall {wall:5.2f} s  "
              f"student {student:5.2f} s  harness {harness:5.2f} s  harness / student = {harness / student:5.2f}"
              f"{verdict}")


def main() -> None:
    bundled = rubrics.bundled()
    with tempfile.TemporaryDirectory() as folder:
        submission = vectorised_assignment2(Path(folder))
        measure("assignment2", rubrics.load(bundled["assignment2"]), submission, (5.0, 1.5))
        measure("assignment2-layers", rubrics.load(bundled["assignment2-layers"]), submission, None)
    measure("assignment3", rubrics.load(bundled["assignment3"]), SOLUTIONS / "a3", None)
    measure("assignment3-layers", rubrics.load(bundled["assignment3-layers"]), SOLUTIONS / "a3", None)
    measure("default", rubrics.load(bundled["default"]), ROOT / "submissions" / "alice", None)


if __name__ == "__main__":
    main()
