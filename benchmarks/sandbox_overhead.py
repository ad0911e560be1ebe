"""Sandbox overhead, measured side by side in one run.

Prints worker start-up time and the round trip of a no-op call with small arrays,
each as a ratio to a plain in-process call and to `python -c "import numpy"`,
with and without bubblewrap. Target: per-call overhead under 1 ms without bwrap.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

from gradeconv.sandbox import Limits, Session, bubblewrap, stage_module

NOOP = "def conv_forward_naive(x, w, b, conv_param):\n    return x, None\n"
CALLS = 500


def import_numpy_seconds() -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True)
        runs.append(time.perf_counter() - started)
    return min(runs)


def measure(use_bwrap: bool, module: Path) -> tuple[float, float]:
    """(start-up seconds, seconds per no-op call) of a worker."""
    starts, per_call = [], []
    x, w, b = np.ones((2, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(2)
    for _ in range(3):
        stage = stage_module(module, "cs231n", "layers", own_helper=False)
        with Session(stage, Limits(), ["conv_forward_naive"], use_bwrap=use_bwrap) as session:
            started = time.perf_counter()
            assert session.load().status == "ok"
            starts.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(CALLS):
                session.call("conv_forward_naive", [x, w, b, {"stride": 1, "pad": 1}])
            per_call.append((time.perf_counter() - started) / CALLS)
    return min(starts), min(per_call)


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    module = folder / "layers.py"
    module.write_text(NOOP)
    namespace: dict = {}
    exec(NOOP, namespace)
    noop = namespace["conv_forward_naive"]
    x, w, b = np.ones((2, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(2)
    in_process = min(timeit.repeat(lambda: noop(x, w, b, {"stride": 1, "pad": 1}), number=10000, repeat=5)) / 10000
    numpy_start = import_numpy_seconds()
    print(f"plain in-process call          {in_process * 1e6:9.2f} us")
    print(f"python -c 'import numpy'       {numpy_start * 1e3:9.2f} ms")
    modes = [False] + ([True] if bubblewrap.available() else [])
    for use_bwrap in modes:
        start, call = measure(use_bwrap, module)
        name = "bwrap" if use_bwrap else "rlimits"
        for label, seconds in (("worker start-up", start), ("no-op call round trip", call)):
            print(f"[{name}] {label:22s} {seconds * 1e3:9.3f} ms = {seconds / in_process:9.1f}x in-process call"
                  f" = {seconds / numpy_start:6.4f}x import numpy")
        if not use_bwrap:
            verdict = "met" if call - in_process < 1e-3 else "MISSED"
            print(f"[{name}] per-call overhead {(call - in_process) * 1e3:.3f} ms (target < 1 ms: {verdict})")
    if not bubblewrap.available():
        print("bubblewrap is not usable here: only the rlimits sandbox was measured")


if __name__ == "__main__":
    main()
