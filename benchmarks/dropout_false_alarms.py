"""False alarms of dropout's train-mode checks on the reference's own masks.

Draws cases as the assignment-2 rubric does (x of shape (n, d), n in 8..16, d in 25..40, p in 0.3, 0.5,
0.8), takes the reference's masks for seeds s and s + 1 (the two calls the engine makes) and judges them
exactly as a student's forward is judged (kept fraction, scaling, runs, periods, serial correlation,
shifted samples, the other seed). Prints the false alarms (expected: 0), and how close the statistics came
to their limits: the largest |z| of a correlation within a mask and between the two seeds' masks as a
fraction of its limit (randomness.z_limit: 1.00 would fail), and the largest group of samples that are
shifts of one another as a fraction of the number that would fail.

    PYTHONPATH=. python3 benchmarks/dropout_false_alarms.py [--cases 20000] [--p 0.3 0.5 0.8]
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np

from gradeconv.specs import dropout, randomness
from reference import layers

SHAPES = {"n": (8, 16), "d": (25, 40)}
P_VALUES = (0.3, 0.5, 0.8)


def judge(x: np.ndarray, p: float, seed: int):
    """The train-mode failure dropout's spec finds in the reference's output for this case, or None."""
    def call(mask_seed: int) -> dict:
        return {"out": layers.dropout_forward(x, {"p": p, "mode": "train", "seed": mask_seed})[0]}

    values = SimpleNamespace(inputs={"x": x}, variables={"p": p, "mode": "train", "mask_seed": seed})
    return dropout.forward_properties(values, call(seed), lambda seed=seed: (None, call(seed)))


def measure(cases: int, p_values=P_VALUES, first_seed: int = 0) -> dict:
    """Judge `cases` reference cases (mask seeds first_seed, first_seed + 1, ...); the alarms and margins."""
    draw = np.random.RandomState(first_seed + 12345)
    alarms: Counter = Counter()
    serial = across = 0.0
    rows_ratio = 0.0
    for index in range(cases):
        shape = tuple(draw.randint(low, high + 1) for low, high in SHAPES.values())
        p = float(p_values[draw.randint(len(p_values))])
        x = draw.uniform(0.5, 2.0, shape) * draw.choice((-1.0, 1.0), shape)
        seed = first_seed + index
        failure = judge(x, p, seed)
        if failure is not None:
            alarms[f"p={p} {shape} seed {seed}: {failure.message[:120]}"] += 1
        kept = layers.dropout_forward(x, {"p": p, "mode": "train", "seed": seed})[0] != 0
        other = layers.dropout_forward(x, {"p": p, "mode": "train", "seed": seed + 1})[0] != 0
        serial = max(serial, *(c.score for c in (randomness.serial_correlation(m, p) for m in (kept, other)) if c))
        largest = randomness.seed_correlation(kept, other, p)
        across = max(across, largest.score if largest else 0.0)
        group, needed = randomness.largest_shifted_group(kept, p)
        if needed:
            rows_ratio = max(rows_ratio, group / needed)
    return {"cases": cases, "masks": 2 * cases, "alarms": alarms, "serial_z": serial, "seed_z": across,
            "rows_ratio": rows_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--p", type=float, nargs="+", default=list(P_VALUES))
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    result = measure(args.cases, tuple(args.p), args.first_seed)
    elapsed = time.perf_counter() - started
    print(f"reference cases judged: {result['cases']} ({result['masks']} masks: seeds s and s + 1), "
          f"p in {args.p}, {1000 * elapsed / result['cases']:.2f} ms a case")
    print(f"false alarms: {sum(result['alarms'].values())}")
    for message, count in result["alarms"].most_common(10):
        print(f"  {count} x {message}")
    print(f"largest correlation within a mask, |z| / its limit:  {result['serial_z']:.2f} (fails above 1.00)")
    print(f"largest correlation between seeds, |z| / its limit: {result['seed_z']:.2f} (fails above 1.00)")
    print(f"largest group of shifted samples / the size that fails: {result['rows_ratio']:.2f} (fails at 1.00)")


if __name__ == "__main__":
    main()
