"""Attacks on the layer engine's new paths: dict arguments reported back (batchnorm's running averages),
scalar returns (losses), dropout judged by properties, the shared case plan, and per-module sessions.

Each attack is graded beside (or between) honest submissions in this process, with small limits, and
must score 0 on the attacked tests while honest code keeps full marks. A hole found is an
`xfail(strict=True)` test whose reason starts with "HOLE:".
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gradeconv import rubric as rubrics
from gradeconv.grading import grade_submission
from gradeconv.submissions import Submission

ROOT = Path(__file__).resolve().parent.parent
A2 = (ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py").read_text()
A3 = (ROOT / "tests" / "solutions" / "a3" / "cs231n" / "rnn_layers.py").read_text()
#: every grading here must finish well within this (the limits below: 2 s per call, 20 s per submission)
BOUND_SECONDS = 45.0

DROPOUT = ("dropout forward", "dropout backward")
RUNNING = "batchnorm running averages: momentum and eps from bn_param"
BN_TRAIN = "batchnorm forward (train mode)"
SOFTMAX = "softmax loss and gradient"
SVM = "svm loss and gradient"


def small(names, bundled: str = "assignment2", examples: int | None = None) -> rubrics.Rubric:
    """A bundled rubric restricted to the named tests, under small limits."""
    data = rubrics.load(ROOT / "gradeconv" / "rubrics" / f"{bundled}.yaml").model_dump()
    data["limits"] = {"call_seconds": 2.0, "submission_seconds": 20.0, "memory_mb": 1024}
    data["tests"] = [test for test in data["tests"] if test["name"] in names]
    assert {test["name"] for test in data["tests"]} == set(names), "a test name changed in the bundled rubric"
    if examples is not None:
        for test in data["tests"]:
            test["examples"] = min(test["examples"], examples)
    return rubrics.Rubric.model_validate(data)


@pytest.fixture
def grade():
    """grade(files) -> SubmissionResult, with files {name: source} staged as cs231n/ in a fresh folder."""
    roots = []

    def run(files: dict[str, str], rubric: rubrics.Rubric, sid: str = "student"):
        root = Path(tempfile.mkdtemp(prefix="gcatk-layers-", dir="/tmp"))
        roots.append(root)
        os.chmod(root, 0o755)
        package = root / sid / "cs231n"
        package.mkdir(parents=True)
        for name, source in files.items():
            (package / name).write_text(source)
        started = time.monotonic()
        result = grade_submission(Submission(sid, root / sid), rubric)
        elapsed = time.monotonic() - started
        assert elapsed < BOUND_SECONDS, f"grading took {elapsed:.1f} s"
        return result

    yield run
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def scores(result) -> dict[str, float]:
    return {test.name: test.score for test in result.tests}


def summary(result) -> str:
    return "\n".join(f"{t.name}: {t.score}/{t.points} {t.outcome}: {t.output[:400]}" for t in result.tests)


def assert_full(result):
    assert result.score == result.max_score, summary(result)


def with_functions(source: str, extra: str) -> str:
    """source with the functions of `extra` appended (later definitions win)."""
    return source + "\n\n" + textwrap.dedent(extra)


# --- 3. dropout judged by its properties -----------------------------------------------------------------------------

#: a "dropout" whose mask is a fixed pattern: no random numbers, the seed ignored
FIXED_PATTERN_DROPOUT = '''
def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (dropout_param, None)
    pattern = (np.arange(x.size) * 0.6180339887498949) % 1.0    # the same for every seed and every call
    mask = (pattern < p).reshape(x.shape) / p
    return x * mask, (dropout_param, mask)

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param["mode"] == "test" else dout * mask
'''

#: a "dropout" that keeps exactly the first round(p * size) units: not random at all
FIRST_UNITS_DROPOUT = '''
def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (dropout_param, None)
    mask = (np.arange(x.size) < round(p * x.size)).reshape(x.shape) / p
    return x * mask, (dropout_param, mask)

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param["mode"] == "test" else dout * mask
'''


def test_honest_dropout_gets_full_marks(grade):
    assert_full(grade({"layers.py": A2}, small(DROPOUT)))


@pytest.mark.xfail(strict=True, reason=(
    "HOLE: dropout's properties never vary the seed: a fixed, seed-independent mask (no random numbers) "
    "passes 'kept fraction', 'survivors x / p' and 'same seed, same output' (specs/dropout.py "
    "forward_properties), so dropout forward and backward earn full marks without real dropout"))
@pytest.mark.parametrize("attack", [FIXED_PATTERN_DROPOUT, FIRST_UNITS_DROPOUT], ids=["pattern", "first_units"])
def test_a_dropout_without_random_numbers_scores_nothing(grade, attack):
    result = grade({"layers.py": with_functions(A2, attack)}, small(DROPOUT))
    assert scores(result)["dropout forward"] == 0, summary(result)
