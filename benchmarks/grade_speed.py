"""Grading speed of one correct loop-based submission with the default rubric.

Prints wall time, time inside student code vs everything else (harness), and
forward calls used by the directional gradient check vs what the full numeric
gradient would need on the same cases. Targets: <= 3 s per submission on one
core; harness time <= student-code time; >= 20x fewer forward calls.
"""
from __future__ import annotations

import time
from pathlib import Path

from gradeconv import rubric as rubrics
from gradeconv.grading import grade_submission
from gradeconv.submissions import Submission

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    rubric = rubrics.load(ROOT / "rubric.yaml")
    submission = Submission("alice", ROOT / "submissions" / "alice")
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        result = grade_submission(submission, rubric)
        runs.append((time.perf_counter() - started, result))
    wall, result = min(runs, key=lambda run: run[0])
    student = result.student_seconds
    harness = wall - student
    print(f"score {result.score:g}/{result.max_score:g}, sandbox {result.sandbox}")
    print(f"wall time per submission     {wall:7.2f} s   (target <= 3 s: {'met' if wall <= 3 else 'MISSED'})")
    print(f"time in student code         {student:7.2f} s")
    print(f"harness time                 {harness:7.2f} s   harness / student = {harness / student:5.2f} "
          f"(target <= 1: {'met' if harness <= student else 'MISSED'})")
    ratio = result.full_gradient_forward_calls / max(result.gradient_forward_calls, 1)
    print(f"forward calls, directional   {result.gradient_forward_calls:7d}")
    print(f"forward calls, full gradient {result.full_gradient_forward_calls:7d}   = {ratio:5.1f}x more "
          f"(target >= 20x: {'met' if ratio >= 20 else 'MISSED'})")


if __name__ == "__main__":
    main()
