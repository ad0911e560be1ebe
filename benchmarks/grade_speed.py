"""Grading speed of one correct loop-based submission with the default rubric.

Prints the wall time per submission, the time spent waiting on the sandbox
(the student's calls, plus the worker's start-up and the transfer of arrays)
against everything else (the harness), and the forward calls the directional
gradient check uses against what the full numeric gradient would need.

Targets (issue 13): <= 0.25 s per submission; harness / sandbox time <= 0.3;
>= 20x fewer forward calls. The sandbox time counts the worker's start-up
(Python and numpy inside the jail) as the student's, as every earlier run of
this benchmark did; the last line shows the stricter split, with start-up
counted as harness, for information.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import called_functions, grade_submission, sandbox_limits
from gradeconv.sandbox import Session, stage_module
from gradeconv.submissions import Submission, Unpacked

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7


def main() -> None:
    rubric = rubrics.load(ROOT / "rubric.yaml")
    submission = Submission("alice", ROOT / "submissions" / "alice")
    grade_submission(submission, rubric)  # draws the class's case plan, as a batch's first submission does
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = grade_submission(submission, rubric)
        runs.append((time.perf_counter() - started, result))
    wall, result = min(runs, key=lambda run: run[0])
    sandbox = result.student_seconds
    harness = wall - sandbox
    start_up = worker_start_up(submission, rubric)
    print(f"score {result.score:g}/{result.max_score:g} (best of {RUNS} runs), sandbox {result.sandbox}")
    print(f"wall time per submission     {wall:7.3f} s   (target <= 0.25 s: {verdict(wall <= 0.25)})")
    print(f"time in the sandbox          {sandbox:7.3f} s   (of which worker start-up {start_up:.3f} s)")
    print(f"harness time                 {harness:7.3f} s   harness / sandbox = {harness / sandbox:5.2f} "
          f"(target <= 0.3: {verdict(harness <= 0.3 * sandbox)})")
    print(f"stricter: harness + start-up {harness + start_up:7.3f} s   / the rest of the sandbox time = "
          f"{(harness + start_up) / (sandbox - start_up):5.2f} (no target)")
    ratio = result.full_gradient_forward_calls / max(result.gradient_forward_calls, 1)
    print(f"forward calls, directional   {result.gradient_forward_calls:7d}")
    print(f"forward calls, full gradient {result.full_gradient_forward_calls:7d}   = {ratio:5.1f}x more "
          f"(target >= 20x: {verdict(ratio >= 20)})")


def worker_start_up(submission: Submission, rubric: rubrics.Rubric) -> float:
    """The median time from starting a worker to its answer to importing the module."""
    times = []
    for _ in range(RUNS):
        with Unpacked(submission, "layers.py") as module_file:
            stage = stage_module(module_file, rubric.package, "layers", own_helper=False)
        with Session(stage, sandbox_limits(rubric), called_functions(rubric.tests)) as session:
            times.append(session.load().seconds)
    return statistics.median(times)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


if __name__ == "__main__":
    main()
