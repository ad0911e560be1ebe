"""Dropout's train-mode checks see through masks without randomness (issue 19, item 5).

The attacks (tests/dropout_attacks.py) keep p of the units, scale them, repeat for the same seed and
change for another, yet follow a fixed pattern: Weyl sequences, an LCG of period 128, a random block
repeated, one mask rolled by the seed, rows shifted from one row. Each must fail with a message that
names the pattern, while honest masks (the reference, the course solution, other numpy draws) never
do: a bounded measurement here, the full one in benchmarks/dropout_false_alarms.py.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gradeconv.specs import dropout, randomness
from gradeconv.judging.reproduce import HEADING
from tests.dropout_attacks import BODIES, mask_of, source
from tests.test_attacks_layers import A2, DROPOUT, grade, scores, small, summary, with_functions  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
#: the attacks that passed dropout forward before these checks (all or 90% of the rubric's cases; the red
#: team's weyl_p1p passed 93% of them, and still fails as before when every row is the same, d % 4 == 0 at p = 0.5)
PASSED_BEFORE = ("weyl_p1p_rows", "weyl_2d", "lcg_128", "block_64_exact", "block_97", "rolled_fixed",
                 "rolled_fixed_far")
NEW_REASONS = ("the mask is not random", "the masks of two different seeds are not independent")
#: cases like the rubric's: (shape, p, seed)
CASES = [((8, 25), 0.3, 0), ((8, 40), 0.5, 17), ((16, 25), 0.8, 4242), ((11, 37), 0.3, 9999),
         ((16, 40), 0.8, 123), ((13, 29), 0.5, 7)]


def _judge(forward, shape, p: float, seed: int):
    """dropout's train-mode judgement of `forward` on one case, in this process (as the engine calls it)."""
    x = np.random.RandomState(seed).uniform(0.5, 2.0, shape)

    def call(mask_seed: int) -> dict:
        return {"out": forward(x.copy(), {"p": p, "mode": "train", "seed": mask_seed})[0]}

    values = SimpleNamespace(inputs={"x": x}, variables={"p": p, "mode": "train", "mask_seed": seed})
    return dropout.forward_properties(values, call(seed), lambda seed=seed: (None, call(seed)))


def _attack(name: str):
    scope: dict = {"np": np}
    exec(source(name), scope)
    return scope["dropout_forward"]


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_attack_fails_every_case(name):
    forward = _attack(name)
    for shape, p, seed in CASES:
        failure = _judge(forward, shape, p, seed)
        assert failure is not None, f"{name} passed {shape} p={p} seed={seed}"
        if name in PASSED_BEFORE:
            assert failure.message.startswith(NEW_REASONS), failure.message


HONEST = {
    "reference": "from reference.layers import dropout_forward as forward",
    "binomial": ("def forward(x, param):\n    np.random.seed(param['seed'])\n"
                 "    return x * np.random.binomial(1, param['p'], x.shape) / param['p'], None"),
    "uniform_flat": ("def forward(x, param):\n    np.random.seed(param['seed'])\n"
                     "    mask = (np.random.uniform(size=x.size) < param['p']).reshape(x.shape)\n"
                     "    return x * mask / param['p'], None"),
    "generator": ("def forward(x, param):\n    rng = np.random.default_rng(param['seed'])\n"
                  "    return x * (rng.random(x.shape) < param['p']) / param['p'], None"),
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_masks_raise_no_false_alarm(name):
    """120 cases of the rubric's space (240 masks) for each honest way to draw the mask."""
    scope: dict = {"np": np}
    exec(HONEST[name], scope)
    draw = np.random.RandomState(2024)
    for index in range(120):
        shape = (draw.randint(8, 17), draw.randint(25, 41))
        p = float(draw.choice((0.3, 0.5, 0.8)))
        failure = _judge(scope["forward"], shape, p, 50_000 + index)
        assert failure is None, f"{name} {shape} p={p}: {failure.message}"


def test_reference_false_alarms_measured():
    """The benchmark's measurement on 600 reference cases: no alarm, and every statistic clear of its limit."""
    path = ROOT / "benchmarks" / "dropout_false_alarms.py"
    spec = importlib.util.spec_from_file_location("dropout_false_alarms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.measure(600, first_seed=70_000)
    assert sum(result["alarms"].values()) == 0, result["alarms"]
    assert result["serial_z"] < 0.9 and result["seed_z"] < 0.9 and result["rows_ratio"] < 0.9, result


# --- the statistics and their messages ---------------------------------------------------------------------------------

def test_a_repeated_block_names_its_period():
    block = np.random.RandomState(3).rand(7) < 0.5
    kept = np.tile(block, 40)[:240].reshape(8, 30)
    assert "repeat with period 7" in randomness.serial_pattern(kept, 0.5)


def test_a_correlation_names_its_lag_in_rows_and_columns():
    rng = np.random.RandomState(4)
    row = rng.rand(30) < 0.5
    kept = np.stack([np.roll(row, 2 * i) ^ (rng.rand(30) < 0.05) for i in range(10)])  # near shifts, not exact
    why = randomness.serial_pattern(kept, 0.5)
    assert why and "the unit below it and 2 columns to the right" in why and "lag 32" in why, why


def test_shifted_samples_and_seeds_are_named():
    rng = np.random.RandomState(5)
    row = rng.rand(30) < 0.3
    kept = np.stack([np.roll(row, rng.randint(30)) for _ in range(12)])
    assert "12 of the 12 samples' masks are shifted copies" in randomness.shifted_rows(kept, 0.3)
    mask = rng.rand(10, 30) < 0.3
    assert randomness.seed_pattern(mask, np.roll(mask, 37), 0.3).endswith("shifted by 37 units")
    noisy = np.where(rng.rand(10, 30) < 0.1, rng.rand(10, 30) < 0.3, np.roll(mask, -5))
    assert "correlated once one is shifted by 5 units" in randomness.seed_pattern(mask, noisy, 0.3)


def test_the_limits_follow_the_exact_tails():
    # p = 0.5: products are +-1/4, the sum a binomial: its 1e-12 two-sided tail is near z = 7
    assert 6.5 < randomness.z_limit(0.5, 100, 100) < 7.2
    # skewed p has the heavier tail, and a longer sum a lighter one
    assert randomness.z_limit(0.8, 100, 100) > randomness.z_limit(0.8, 300, 100) > randomness.z_limit(0.5, 300, 100)
    # too few units of the rarer kind: not judged at all
    assert randomness.serial_correlation(np.random.rand(8, 25) < 0.05, 0.95) is None


# --- graded in the sandbox ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PASSED_BEFORE)
def test_attacks_that_passed_score_nothing_with_the_reason(grade, name, tmp_path):
    files = {"layers.py": with_functions(A2, source(name))}
    result = grade(files, small(DROPOUT, examples=4))
    test = next(t for t in result.tests if t.name == "dropout forward")
    assert test.score == 0 and any(reason in test.output for reason in NEW_REASONS), summary(result)
    assert scores(result)["dropout backward"] == 3, summary(result)  # the backward matches its own mask
    # the reproduction shows the same failure next to the attack
    (tmp_path / "cs231n").mkdir()
    (tmp_path / "cs231n" / "__init__.py").write_text("")
    (tmp_path / "cs231n" / "layers.py").write_text(files["layers.py"])
    snippet = test.output.split(HEADING, 1)[1]
    run = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode != 0 and any(reason in run.stderr for reason in NEW_REASONS), run.stdout + run.stderr
