"""Batch throughput: 100 copies of the sample class, --jobs 1 and --jobs 2 in one run.

Prints submissions per minute for each and the speed-up.
Targets: >= 60 submissions/minute with --jobs 2; speed-up >= 1.7x.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIES = 100


def build_class(target: Path) -> int:
    """COPIES submissions with distinct ids, cycling through the sample class."""
    samples = sorted(p for p in (ROOT / "submissions").iterdir() if not p.name.startswith("."))
    for index in range(COPIES):
        sample = samples[index % len(samples)]
        name = f"s{index:03d}_{sample.name}"
        if sample.is_dir():
            shutil.copytree(sample, target / name)
        else:
            shutil.copy(sample, target / name)
    return COPIES


def rate(folder: Path, jobs: int, count: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradeconv", str(folder), "--jobs", str(jobs), "--quiet",
                    "--rubric", str(ROOT / "rubric.yaml")], check=True)
    return count / (time.perf_counter() - started) * 60


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="gradeconv-batch-"))
    try:
        count = build_class(folder)
        one = rate(folder, 1, count)
        two = rate(folder, 2, count)
        print(f"--jobs 1: {one:6.1f} submissions/minute")
        print(f"--jobs 2: {two:6.1f} submissions/minute (target >= 60: {'met' if two >= 60 else 'MISSED'})")
        print(f"speed-up: {two / one:5.2f}x (target >= 1.7x: {'met' if two / one >= 1.7 else 'MISSED'})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
