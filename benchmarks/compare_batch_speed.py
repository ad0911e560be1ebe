"""Throughput of a class of 200 correct submissions, this checkout against another, in one run.

    git worktree add /tmp/gradeconv-base <commit>
    python benchmarks/compare_batch_speed.py /tmp/gradeconv-base [rubric.yaml both can read]

Grades 200 copies of the correct loop-based submission with `--jobs 2`, first with the
other checkout's gradeconv, then with this one's (each imported from its own folder,
each with the same rubric file), and prints submissions per minute and the ratio.
Target (issue on throughput): this checkout >= 1.5x the other.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
COPIES = 200


def rate(checkout: Path, folder: Path, rubric: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradeconv", str(folder), "--jobs", "2", "--quiet",
                    "--rubric", str(rubric)], cwd=checkout, env=env, check=True)
    return COPIES / (time.perf_counter() - started) * 60


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: compare_batch_speed.py OTHER_CHECKOUT [RUBRIC]")
    other = Path(sys.argv[1]).resolve()
    # a rubric both checkouts read (an older one may not know keys added since): default this one's
    rubric = Path(sys.argv[2]).resolve() if len(sys.argv) == 3 else HERE / "rubric.yaml"
    folder = Path(tempfile.mkdtemp(prefix="gradeconv-class-"))
    try:
        for index in range(COPIES):
            shutil.copytree(HERE / "submissions" / "alice", folder / f"student{index:03d}")
        before = rate(other, folder, rubric)
        after = rate(HERE, folder, rubric)
        print(f"{other}: {before:6.1f} submissions/minute (--jobs 2)")
        print(f"{HERE}: {after:6.1f} submissions/minute (--jobs 2)")
        print(f"this checkout / other = {after / before:5.2f}x (target >= 1.5x: "
              f"{'met' if after >= 1.5 * before else 'MISSED'})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
