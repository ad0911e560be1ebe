"""Grading speed of the layers-only assignment rubrics in this checkout against another one, side by side.

    git worktree add /tmp/gradeconv-base <commit>
    python benchmarks/compare_assignment_speed.py /tmp/gradeconv-base

Each checkout grades the same correct submissions (the student-style solutions of
tests/solutions, with vectorised conv and pool for assignment 2) with its own
layers-only rubric of each assignment (`assignment2-layers`, or `assignment2` in a
checkout from before the whole-assignment rubrics) in its own process, in
alternating rounds; the best time per later submission of each is kept and this
checkout's is printed as a ratio of the other's. Target: <= 1.10 (today's speed).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ROUNDS = 3
REPEATS = 5

#: run inside a checkout: prints the best wall time of REPEATS gradings after a first one
SCRIPT = """
import sys, time
from pathlib import Path
from gradeconv import rubric as rubrics
try:
    from gradeconv.judging.grading import grade_submission
except ImportError:  # a checkout from before the judging package
    from gradeconv.grading import grade_submission
from gradeconv.submissions import Submission
name, path, repeats = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
bundled = rubrics.bundled()
rubric = rubrics.load(bundled.get(name + "-layers", bundled[name]))
grade_submission(Submission("first", path), rubric)
times = []
for _ in range(repeats):
    started = time.perf_counter()
    grade_submission(Submission("later", path), rubric)
    times.append(time.perf_counter() - started)
print(f"{min(times):.4f} {rubric.max_score:g}")
"""


def submissions(folder: Path) -> dict[str, Path]:
    """assignment name -> a correct submission for its layers (layers.py, rnn_layers.py only)."""
    solutions = HERE / "tests" / "solutions"
    a2 = folder / "a2" / "cs231n"
    a2.mkdir(parents=True)
    vectorised = (HERE / "submissions" / "judyjones_LATE_48213_990417_layers.py").read_text()
    (a2 / "layers.py").write_text((solutions / "a2" / "cs231n" / "layers.py").read_text()
                                  + "\n\n# vectorised conv and pool\n" + vectorised)
    a3 = folder / "a3" / "cs231n"
    a3.mkdir(parents=True)
    (a3 / "rnn_layers.py").write_text((solutions / "a3" / "cs231n" / "rnn_layers.py").read_text())
    return {"assignment2": a2.parent, "assignment3": a3.parent}


def best_time(checkout: Path, name: str, path: Path) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    output = subprocess.run([sys.executable, "-c", SCRIPT, name, str(path), str(REPEATS)], cwd=checkout, env=env,
                            capture_output=True, text=True, check=True).stdout.split()
    return float(output[0]), output[1]


def main() -> None:
    other = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as folder:
        for name, path in submissions(Path(folder)).items():
            mine, theirs = [], []
            for _ in range(ROUNDS):
                mine.append(best_time(HERE, name, path))
                theirs.append(best_time(other, name, path))
            (here, points), (there, their_points) = min(mine), min(theirs)
            print(f"{name} layers: this checkout {here:.3f} s ({points} points), other {there:.3f} s "
                  f"({their_points} points): ratio {here / there:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
