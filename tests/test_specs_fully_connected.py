"""The affine, relu and loss specs catch real bugs: each fails exactly its tests, with the right diagnosis."""
from pathlib import Path

import pytest

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.submissions import Submission
from tests.conftest import ROOT, mutate
from tests.reproductions import assert_reproductions, correct_copy

SOLUTION = (ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py").read_text()
FUNCTIONS = {"affine_forward", "affine_backward", "relu_forward", "relu_backward", "svm_loss", "softmax_loss"}
SOFTMAX = "softmax loss and gradient"
LARGE = "softmax loss: large scores (numeric stability)"
SPREAD = "softmax loss: rows at very different offsets"

# (bug, anchor in the correct solution, replacement, tests that must fail, words the report must contain)
BUGS = [
    ("affine_missing_bias", "out = x_row.dot(w) + b", "out = x_row.dot(w)", {"affine forward"},
     "exactly the bias b is missing"),
    ("affine_dx_left_flat", "dx = dout.dot(w.T).reshape(x.shape)", "dx = dout.dot(w.T)", {"affine backward"},
     "reshape dx back to x's own shape"),
    ("affine_db_summed_over_features", "db = np.sum(dout, axis=0)", "db = np.sum(dout, axis=1)",
     {"affine backward"}, "db has shape"),
    ("relu_mask_from_dout", "dx = dout * (x > 0)", "dx = dout * (dout > 0)", {"relu backward"},
     "the mask comes from the forward's input x"),
    ("relu_in_place", "out = np.maximum(0, x)", "x[x < 0] = 0\n    out = x", {"relu forward"}, "in place"),
    ("relu_float32", "out = np.maximum(0, x)", "out = np.maximum(0, x).astype(np.float32)", {"relu forward"},
     "return float64 arrays"),
    ("svm_counts_correct_class", "            if j == y[i]:\n                continue\n", "",
     {"svm loss and gradient"}, "skip the correct class"),
    ("svm_not_averaged", "    loss /= N\n    dx /= N\n", "", {"svm loss and gradient"}, "average the loss"),
    ("softmax_without_max_shift", "shifted_logits = x - np.max(x, axis=1, keepdims=True)", "shifted_logits = x",
     {LARGE, SPREAD}, "subtract each row's max score"),
    # the max of all scores: fine while every row sits near it, an infinite loss for rows far below it
    ("softmax_global_max", "shifted_logits = x - np.max(x, axis=1, keepdims=True)", "shifted_logits = x - np.max(x)",
     {SPREAD}, "subtract each row's own max"),
    ("softmax_dx_not_averaged", "    dx[np.arange(N), y] -= 1\n    dx /= N\n", "    dx[np.arange(N), y] -= 1\n",
     {SOFTMAX, LARGE, SPREAD}, "fails only when N > 1"),
]


@pytest.fixture(scope="module")
def rubric():
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    data["tests"] = [test for test in data["tests"] if test["function"] in FUNCTIONS]
    return rubrics.Rubric.model_validate(data)


def grade(folder: Path, rubric):
    return grade_submission(Submission(folder.name, folder), rubric)


def test_the_correct_solution_passes_every_test(write_submission, rubric):
    result = grade(write_submission("correct", SOLUTION), rubric)
    assert [test.name for test in result.tests if not test.passed] == []
    assert result.score == rubric.max_score


@pytest.mark.parametrize("bug,old,new,should_fail,words", BUGS, ids=[bug[0] for bug in BUGS])
def test_bug_fails_exactly_its_tests(write_submission, tmp_path, rubric, bug, old, new, should_fail, words):
    folder = write_submission(bug, mutate(SOLUTION, old, new))
    result = grade(folder, rubric)
    correct = correct_copy(ROOT / "tests" / "solutions" / "a2", tmp_path)
    assert assert_reproductions(result, folder, correct) == len(should_fail)  # each failure reproduces
    failed = {test.name for test in result.tests if not test.passed}
    assert failed == should_fail
    report = "\n".join(test.output for test in result.tests if not test.passed)
    assert words in report
    for test in result.tests:
        if not test.passed:
            assert test.counterexample is not None, test.output  # the smallest failing case is named
