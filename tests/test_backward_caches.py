"""Which cache a backward gets, and how it is credited when its own forward is wrong.

Where the course leaves the cache's layout to the student (normalisations,
dropout, recurrent layers) the backward always gets the student's own cache. It
is credited when it returns what the course's backward returns at the same
inputs, whatever its forward did; a backward only consistent with a wrong
forward is never credited, and a failure judged that way says the forward is
wrong on that case. Conv, pool, affine and relu, whose cache the course fixes,
get the reference's cache when their forward is wrong.
"""
from pathlib import Path

import pytest

from gradeconv import outcomes
from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.judging.runner import FORWARD_WRONG
from gradeconv.submissions import Submission

NOTE = FORWARD_WRONG.strip(" ()")

LAYERNORM_BACKWARD = '''
def layernorm_backward(dout, cache):
    xhat, ivar, gamma = cache["xhat"], cache["ivar"], cache["gamma"]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = ivar * (dxhat - dxhat.mean(axis=1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    return dx, dgamma, dbeta
'''

RIGHT_CACHE = '''
def _normalised(x, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mean = x.mean(axis=1, keepdims=True)
    ivar = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    return (x - mean) * ivar, ivar
'''

SUBMISSIONS = {
    # out is twice what it should be, but the cache holds the right values: the backward is right
    "doubled_out": "import numpy as np\n" + RIGHT_CACHE + '''
def layernorm_forward(x, gamma, beta, ln_param):
    xhat, ivar = _normalised(x, ln_param)
    return 2 * (gamma * xhat + beta), {"xhat": xhat, "ivar": ivar, "gamma": gamma}
''' + LAYERNORM_BACKWARD,
    # a constant forward and the backward of that constant: consistent with each other, both wrong
    "constant": '''import numpy as np

def layernorm_forward(x, gamma, beta, ln_param):
    return np.zeros_like(x), x.shape

def layernorm_backward(dout, cache):
    N, D = cache
    return np.zeros((N, D)), np.zeros(D), np.zeros(D)
''',
    # the cache misses what its backward reads: the backward crashes inside the student's own code
    "short_cache": "import numpy as np\n" + RIGHT_CACHE + '''
def layernorm_forward(x, gamma, beta, ln_param):
    xhat, ivar = _normalised(x, ln_param)
    return xhat, {"xhat": xhat, "ivar": ivar}
''' + LAYERNORM_BACKWARD,
    # no forward at all: nothing to call the backward with
    "no_forward": "import numpy as np\n" + LAYERNORM_BACKWARD,
    # a forward that raises on batches of more than one sample
    "forward_raises": "import numpy as np\n" + RIGHT_CACHE + '''
def layernorm_forward(x, gamma, beta, ln_param):
    if x.shape[0] > 1:
        raise ValueError("only one sample, please")
    xhat, ivar = _normalised(x, ln_param)
    return gamma * xhat + beta, {"xhat": xhat, "ivar": ivar, "gamma": gamma}
''' + LAYERNORM_BACKWARD,
    "correct": "import numpy as np\n" + RIGHT_CACHE + '''
def layernorm_forward(x, gamma, beta, ln_param):
    xhat, ivar = _normalised(x, ln_param)
    return gamma * xhat + beta, {"xhat": xhat, "ivar": ivar, "gamma": gamma}
''' + LAYERNORM_BACKWARD,
}

GRADIENT = {"mode": "directional", "directions": 2}


def _rubric(tests: list[dict]) -> rubrics.Rubric:
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    data["tests"] = tests
    return rubrics.Rubric.model_validate(data)


BACKWARD = {"name": "layernorm backward", "function": "layernorm_backward", "points": 5, "examples": 4,
            "checks": {"gradient": GRADIENT}}
#: no value comparison, only the numeric gradient of the student's own forward
OWN_SLOPES = {"name": "layernorm backward: own slopes", "function": "layernorm_backward", "points": 5,
              "examples": 4, "checks": {"reference": None, "gradient": {**GRADIENT, "forward": "submission"}}}


def _graded(tmp_path: Path, name: str, source: str, tests: list[dict]):
    folder = tmp_path / name / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(source)
    return {test.name: test for test in grade_submission(Submission(name, tmp_path / name), _rubric(tests)).tests}


def test_a_right_backward_is_credited_with_its_own_cache_from_a_wrong_forward(tmp_path):
    test = _graded(tmp_path, "doubled_out", SUBMISSIONS["doubled_out"], [BACKWARD])["layernorm backward"]
    assert test.passed, test.output


@pytest.mark.parametrize("tests", [[BACKWARD], [OWN_SLOPES]], ids=["reference", "own slopes"])
def test_a_backward_only_consistent_with_a_constant_forward_is_never_credited(tmp_path, tests):
    test = next(iter(_graded(tmp_path, "constant", SUBMISSIONS["constant"], tests).values()))
    assert not test.passed
    assert test.cache == "submission"
    assert NOTE in test.output, test.output


def test_a_crash_on_its_own_cache_says_the_forward_is_wrong_not_gradeconv_data(tmp_path):
    test = _graded(tmp_path, "short_cache", SUBMISSIONS["short_cache"], [BACKWARD])["layernorm backward"]
    assert test.outcome == outcomes.ERROR
    assert "KeyError" in test.output and "'gamma'" in test.output
    assert NOTE in test.output
    assert test.cache == "submission"


def test_without_a_forward_the_backward_is_not_called_and_says_why(tmp_path):
    test = _graded(tmp_path, "no_forward", SUBMISSIONS["no_forward"], [BACKWARD])["layernorm backward"]
    assert test.outcome == outcomes.NOT_RUN
    assert "layernorm_backward was not called: it takes the cache your layernorm_forward returns" in test.output
    assert "fix it first" in test.output


def test_a_forward_that_raises_on_a_case_fails_the_backward_there_naming_the_forward(tmp_path):
    test = _graded(tmp_path, "forward_raises", SUBMISSIONS["forward_raises"], [BACKWARD])["layernorm backward"]
    assert test.outcome == outcomes.ERROR
    assert "layernorm_forward failed on this case (ValueError" in test.output
    assert test.counterexample["n"] == 2  # the smallest case it raises on


def test_the_correct_layernorm_passes_both_ways(tmp_path):
    tests = _graded(tmp_path, "correct", SUBMISSIONS["correct"], [BACKWARD, OWN_SLOPES])
    assert all(test.passed for test in tests.values()), tests


DROPOUT = '''import numpy as np

def dropout_forward(x, dropout_param):
    return x.copy(), (dropout_param, np.ones_like(x))

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout * mask
'''


def test_dropout_backward_consistent_with_a_forward_that_drops_nothing_fails(tmp_path):
    tests = [{"name": "dropout backward", "function": "dropout_backward", "points": 3, "examples": 4,
              "space": {"mode": "train"}}]
    test = _graded(tmp_path, "dropout", DROPOUT, tests)["dropout backward"]
    assert not test.passed
    assert NOTE in test.output


AFFINE = '''import numpy as np

def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1).dot(w), (x, w, b)

def affine_backward(dout, cache):
    x, w, b = cache
    return dout.dot(w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T.dot(dout), dout.sum(axis=0)
'''


def test_a_fixed_layout_gets_the_canonical_cache_when_its_forward_is_wrong(tmp_path):
    tests = [{"name": "affine backward", "function": "affine_backward", "points": 3, "examples": 4}]
    test = _graded(tmp_path, "affine", AFFINE, tests)["affine backward"]
    assert test.passed, test.output
