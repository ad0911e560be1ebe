"""Dask throughput: one batch graded with --jobs 2 and with --dask local:2 on the same machine, in one run.

The batch is COPIES submissions cycling through the sample class without the
infinite-loop submission (whose 5 s timeouts would measure the limit, not the
engine). Each command is timed whole, as a user runs it: the local cluster's
start-up and shut-down count against Dask. Rounds alternate the two engines;
the best round of each is compared.
Prints submissions per minute for each and the ratio. Target: dask / jobs >= 0.85.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIES = 100
SKIPPED = {"heidi_infinite_loop"}


def build_class(target: Path, copies: int) -> int:
    samples = sorted(p for p in (ROOT / "submissions").iterdir()
                     if not p.name.startswith(".") and p.name not in SKIPPED)
    for index in range(copies):
        sample = samples[index % len(samples)]
        name = f"s{index:03d}_{sample.name}"
        if sample.is_dir():
            shutil.copytree(sample, target / name)
        else:
            shutil.copy(sample, target / name)
    return copies


def rate(folder: Path, engine: list[str], count: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradeconv", str(folder), *engine, "--quiet",
                    "--rubric", str(ROOT / "rubric.yaml")], check=True, cwd=ROOT)
    return count / (time.perf_counter() - started) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=COPIES)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gradeconv-dask-bench-"))
    try:
        count = build_class(folder, args.copies)
        jobs, dask = [], []
        for round_number in range(1, args.rounds + 1):
            jobs.append(rate(folder, ["--jobs", "2"], count))
            dask.append(rate(folder, ["--dask", "local:2"], count))
            print(f"round {round_number}: --jobs 2 {jobs[-1]:6.1f}/min, --dask local:2 {dask[-1]:6.1f}/min")
        best_jobs, best_dask = max(jobs), max(dask)
        ratio = best_dask / best_jobs
        print(f"{count} submissions (sample class without the infinite loop), best of {args.rounds}:")
        print(f"--jobs 2:        {best_jobs:6.1f} submissions/minute")
        print(f"--dask local:2:  {best_dask:6.1f} submissions/minute")
        print(f"dask / jobs: {ratio:5.2f} (target >= 0.85: {'met' if ratio >= 0.85 else 'MISSED'})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
