"""Grading speed of this checkout against another one, side by side in one run.

    git worktree add /tmp/gradeconv-base <commit>
    python benchmarks/compare_grade_speed.py /tmp/gradeconv-base

Runs each checkout's benchmarks/grade_speed.py in turn (three rounds, each
checkout imported from its own folder), keeps the best wall time of each and
prints this checkout's time as a ratio of the other's. Target for sandbox
changes: <= 1.10.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
ROUNDS = 3


def wall_time(checkout: Path) -> tuple[float, str]:
    """Best wall time per submission printed by the checkout's grade_speed.py, and its sandbox."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    output = subprocess.run([sys.executable, str(checkout / "benchmarks" / "grade_speed.py")], cwd=checkout,
                            env=env, capture_output=True, text=True, check=True).stdout
    seconds = float(re.search(r"wall time per submission\s+([\d.]+) s", output).group(1))
    sandbox = re.search(r"sandbox (\S+)", output).group(1)
    return seconds, sandbox


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    other = Path(sys.argv[1]).resolve()
    best = {HERE: float("inf"), other: float("inf")}
    sandboxes = {}
    for _ in range(ROUNDS):
        for checkout in (other, HERE):
            seconds, sandboxes[checkout] = wall_time(checkout)
            best[checkout] = min(best[checkout], seconds)
    ratio = best[HERE] / best[other]
    print(f"{other}: {best[other]:.3f} s per submission (sandbox {sandboxes[other]})")
    print(f"{HERE}: {best[HERE]:.3f} s per submission (sandbox {sandboxes[HERE]})")
    print(f"this checkout / other = {ratio:.3f} (target <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'})")


if __name__ == "__main__":
    main()
