"""Sandbox overhead, measured side by side in one run.

Prints worker start-up time and the round trip of a no-op call with small arrays,
each as a ratio to a plain in-process call and to `python -c "import numpy"`,
with and without bubblewrap. Target: per-call overhead under 1 ms without bwrap.
"""
from __future__ import annotations

import os
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


def measure(mode: str, module: Path) -> tuple[float, float]:
    """(start-up seconds, seconds per no-op call) of a worker."""
    starts, per_call = [], []
    x, w, b = np.ones((2, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(2)
    for _ in range(3):
        stage = stage_module(module, "cs231n", "layers", own_helper=False)
        with Session(stage, Limits(), ["conv_forward_naive"], mode) as session:
            started = time.perf_counter()
            assert session.load().status == "ok"
            starts.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(CALLS):
                session.call("conv_forward_naive", [x, w, b, {"stride": 1, "pad": 1}], expected_bytes=x.nbytes)
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
    modes = ["none"] + (["uid"] if os.geteuid() == 0 else []) + (["bubblewrap"] if bubblewrap.available() else [])
    for mode in modes:
        start, call = measure(mode, module)
        for label, seconds in (("worker start-up", start), ("no-op call round trip", call)):
            print(f"[{mode}] {label:22s} {seconds * 1e3:9.3f} ms = {seconds / in_process:9.1f}x in-process call"
                  f" = {seconds / numpy_start:6.4f}x import numpy")
        if mode != "bubblewrap":
            verdict = "met" if call - in_process < 1e-3 else "MISSED"
            print(f"[{mode}] per-call overhead {(call - in_process) * 1e3:.3f} ms (target < 1 ms: {verdict})")
    print(f"measured: {', '.join(modes)}")


if __name__ == "__main__":
    main()
