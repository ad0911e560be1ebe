"""The normalization and dropout specs catch real bugs: each fails exactly its tests, with the right diagnosis.

Every bug is planted in the correct student-style solution and graded with the
assignment-2 rubric's normalization and dropout tests (the default sandbox). The
backwards always get the student's own cache (its layout is theirs): a wrong
forward whose cache is still right costs only the forward's tests, one whose
cache holds the wrong values also fails the backwards that read them, with a
note that the forward is wrong on that case. The solution's spatial batchnorm
calls its own batchnorm.
"""
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.submissions import Submission
from tests.conftest import ROOT, mutate
from tests.reproductions import assert_snippets, correct_copy, snippets_of

SOLUTION_PATH = ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py"
SOLUTION = SOLUTION_PATH.read_text()
FUNCTIONS = {"batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt", "layernorm_forward",
             "layernorm_backward", "dropout_forward", "dropout_backward", "spatial_batchnorm_forward",
             "spatial_batchnorm_backward", "spatial_groupnorm_forward", "spatial_groupnorm_backward"}

BN_TRAIN = "batchnorm forward (train mode)"
BN_TEST = "batchnorm forward (test mode: running statistics)"
BN_RUNNING = "batchnorm running averages: momentum and eps from bn_param"
BN_BACKWARD = "batchnorm backward"
BN_ALT = "batchnorm backward (alternative)"
BN_DEFAULTS = "batchnorm forward: bn_param without eps and momentum (the course's defaults)"
LN_DEFAULTS = "layernorm forward: ln_param without eps (the course's default)"
LN_FORWARD, LN_BACKWARD = "layernorm forward", "layernorm backward"
DROP_FORWARD, DROP_BACKWARD = "dropout forward", "dropout backward"
DROP_ANY_SHAPE = "dropout forward: x of 1, 3 or 4 dimensions"
SBN_FORWARD, SBN_BACKWARD = "spatial batchnorm forward", "spatial batchnorm backward"
GN_FORWARD, GN_BACKWARD = "spatial groupnorm forward", "spatial groupnorm backward"
#: a running-average bug costs the test that scores the running averages (the others score out), and the
#: one that calls batchnorm without eps and momentum, which scores everything
RUNNING_TESTS = {BN_RUNNING}
BN_EVERYTHING_TRAIN = {BN_TRAIN, BN_DEFAULTS, BN_BACKWARD, BN_ALT, SBN_FORWARD, SBN_BACKWARD}
BN_FORWARD_TRAIN = {BN_TRAIN, BN_DEFAULTS, SBN_FORWARD}
#: the note a backward's failure gets when its own forward is wrong on the failing case
FORWARD_WRONG = "judged with your forward's cache; your forward is wrong on this case: fix it first"
GN_ALL = {GN_FORWARD, GN_BACKWARD}

#: dgamma and dbeta summed with keepdims: (1, C, 1, 1) whatever gamma's shape, as the course's own solutions do
GN_COURSE_CONVENTION = [
    ("dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True).reshape(gamma.shape)",
     "dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)"),
    ("dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True).reshape(gamma.shape)",
     "dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)")]

BN_RUNNING_LINES = ("        running_mean = momentum * running_mean + (1 - momentum) * mu\n"
                    "        running_var = momentum * running_var + (1 - momentum) * var\n")

# (bug, [(anchor in the correct solution, replacement)], tests that must fail, words the report must contain)
BUGS = [
    # --- batchnorm forward ---
    # the cache holds the unbiased variance: the backwards that read it are wrong too, and say why
    ("bn_unbiased_variance", [("var = np.mean(sq, axis=0)", "var = np.sum(sq, axis=0) / (N - 1)")],
     BN_EVERYTHING_TRAIN | {BN_RUNNING}, ["ddof=1", FORWARD_WRONG]),
    # out uses the unbiased variance, the cache is right: the backwards (correct) keep their points
    ("bn_unbiased_variance_forward_only",
     [("        out = gamma * xhat + beta\n\n        running_mean",
       "        out = gamma * xmu / np.sqrt(np.var(x, axis=0, ddof=1) + eps) + beta\n\n        running_mean")],
     BN_FORWARD_TRAIN, ["ddof=1"]),
    ("bn_running_not_updated", [(BN_RUNNING_LINES, "")], RUNNING_TESTS | {BN_DEFAULTS},
     ["the running average was not updated", "bn_param['running_mean']"]),
    ("bn_momentum_swapped", [(BN_RUNNING_LINES, BN_RUNNING_LINES.replace("momentum *", "M *").replace(
        "(1 - momentum)", "momentum").replace("M *", "(1 - momentum) *"))], RUNNING_TESTS | {BN_DEFAULTS},
     ["swapped"]),
    ("bn_momentum_fixed", [('momentum = bn_param.get("momentum", 0.9)', "momentum = 0.9")], RUNNING_TESTS,
     ["read momentum from bn_param", "fails only when momentum != 0.9"]),
    ("bn_eps_outside_sqrt", [("sqrtvar = np.sqrt(var + eps)", "sqrtvar = np.sqrt(var) + eps")],
     BN_EVERYTHING_TRAIN, ["eps inside the square root"]),
    ("bn_without_gamma_beta", [("        out = gamma * xhat + beta\n\n        running_mean",
                                "        out = xhat\n\n        running_mean")],
     BN_FORWARD_TRAIN, ["exactly gamma and beta are missing"]),
    ("bn_test_mode_batch_statistics", [("std = np.sqrt(running_var + eps)\n        xhat = (x - running_mean) / std",
                                        "std = np.sqrt(x.var(axis=0) + eps)\n        xhat = (x - x.mean(axis=0)) / std")],
     {BN_TEST, BN_DEFAULTS, SBN_FORWARD}, ["not the batch's statistics", "fails only when mode = test"]),
    # called as the notebook does, bn_param = {'mode': 'train'}: a default of the student's own shows
    ("bn_default_eps", [('eps = bn_param.get("eps", 1e-5)', 'eps = bn_param.get("eps", 1e-8)')], {BN_DEFAULTS},
     ["bn_param.get('eps', 1e-5)", "fails only when bn_param leaves out eps and momentum"]),
    ("bn_eps_required", [('eps = bn_param.get("eps", 1e-5)', 'eps = bn_param["eps"]')], {BN_DEFAULTS},
     ["KeyError"]),
    ("bn_default_momentum", [('momentum = bn_param.get("momentum", 0.9)', 'momentum = bn_param.get("momentum", 0.99)')],
     {BN_DEFAULTS}, ["bn_param.get('momentum', 0.9)"]),
    # --- batchnorm backward ---
    ("bn_dgamma_per_sample", [("dgamma = np.sum(dgammax * xhat, axis=0)", "dgamma = np.sum(dgammax * xhat, axis=1)")],
     {BN_BACKWARD}, ["sum dgamma and dbeta over the batch"]),
    ("bn_alt_dx_without_variance_term",
     [(" - xhat * np.sum(dxhat * xhat, axis=0))", ")")], {BN_ALT, SBN_BACKWARD}, ["dx is missing the term through var"]),
    ("bn_dgamma_from_x", [('cache = {"mode": mode, "xhat": xhat,', 'cache = {"mode": mode, "x": x, "xhat": xhat,'),
                          ("dgamma = np.sum(dgammax * xhat, axis=0)", 'dgamma = np.sum(dgammax * cache["x"], axis=0)')],
     {BN_BACKWARD}, ["use the normalised input, not x"]),
    # --- layernorm ---
    ("ln_over_the_batch", [("xT = x.T  # (D, N): normalise every column now", "xT = x"),
                           ("xhat = xhatT.T\n", "xhat = xhatT\n")],
     {LN_FORWARD, LN_DEFAULTS, LN_BACKWARD}, ["over axis 1", FORWARD_WRONG]),
    ("ln_dgamma_per_sample", [("dgamma = np.sum(dout * xhatT.T, axis=0)", "dgamma = np.sum(dout * xhatT.T, axis=1)")],
     {LN_BACKWARD}, ["transpose back before summing"]),
    ("ln_eps_outside_sqrt", [("var = np.mean(xmu ** 2, axis=0)\n    ivar = 1.0 / np.sqrt(var + eps)",
                              "var = np.mean(xmu ** 2, axis=0)\n    ivar = 1.0 / (np.sqrt(var) + eps)")],
     {LN_FORWARD, LN_DEFAULTS, LN_BACKWARD}, ["eps inside the square root"]),
    ("ln_eps_fixed", [('eps = ln_param.get("eps", 1e-5)', "eps = 1e-5")], {LN_FORWARD, LN_BACKWARD},
     ["fails only when eps != 1e-5", "read eps from ln_param"]),
    ("ln_default_eps", [('eps = ln_param.get("eps", 1e-5)', 'eps = ln_param.get("eps", 1e-8)')], {LN_DEFAULTS},
     ["ln_param.get('eps', 1e-5)"]),
    # --- dropout ---
    ("dropout_p_drops", [("mask = (np.random.rand(*x.shape) < p) / p", "mask = (np.random.rand(*x.shape) > p) / (1 - p)")],
     {DROP_FORWARD, DROP_BACKWARD, DROP_ANY_SHAPE}, ["probability of keeping a unit",
                                                     "fails only when mode = train and when p != 0.5",
                                     FORWARD_WRONG]),
    ("dropout_not_inverted", [("mask = (np.random.rand(*x.shape) < p) / p", "mask = np.random.rand(*x.shape) < p")],
     {DROP_FORWARD, DROP_BACKWARD, DROP_ANY_SHAPE}, ["(not inverted)", "divides the kept units by p",
                                                     FORWARD_WRONG]),
    ("dropout_unseeded", [('np.random.seed(dropout_param["seed"])', "pass")], {DROP_FORWARD, DROP_ANY_SHAPE},
     ["not reproducible", "np.random.seed(dropout_param['seed'])"]),
    ("dropout_test_mode_scaled", [("        out = x\n\n    cache = (dropout_param, mask)",
                                   "        out = x * p\n\n    cache = (dropout_param, mask)")],
     {DROP_FORWARD, DROP_ANY_SHAPE}, ["in test mode out must equal x", "must not multiply by p",
                                      "fails only when mode = test"]),
    ("dropout_mask_of_n_by_d", [("mask = (np.random.rand(*x.shape) < p) / p",
                                 "N, D = x.shape\n        mask = (np.random.rand(N, D) < p) / p")],
     {DROP_ANY_SHAPE}, ["np.random.rand(*x.shape)", "when x is not 2-D"]),
    ("dropout_backward_unscaled", [("mask = (np.random.rand(*x.shape) < p) / p\n        out = x * mask",
                                    "mask = np.random.rand(*x.shape) < p\n        out = x * mask / p")],
     {DROP_BACKWARD}, ["its 1 / p scaling included"]),
    # --- spatial batchnorm ---
    ("sbn_reshape_without_transpose",
     [("x_flat = x.transpose(0, 2, 3, 1).reshape(-1, C)", "x_flat = x.reshape(-1, C)"),
      ("out = out_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)", "out = out_flat.reshape(N, C, H, W)")],
     {SBN_FORWARD, SBN_BACKWARD}, ["x.transpose(0, 2, 3, 1).reshape(-1, C)"]),
    ("sbn_dbeta_over_n_only", [("dx = dx_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)\n",
                                "dx = dx_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)\n"
                                "    dbeta = np.sum(dout, axis=0)\n")],
     {SBN_BACKWARD}, ["over N, H and W"]),
    # --- spatial groupnorm ---
    ("gn_strided_groups", [("x_group = x.reshape(N, G, C // G, H, W)\n    mean = np.mean(x_group, axis=(2, 3, 4), "
                            "keepdims=True)\n    var = np.var(x_group, axis=(2, 3, 4), keepdims=True)",
                            "x_group = x.reshape(N, C // G, G, H, W)\n    mean = np.mean(x_group, axis=(1, 3, 4), "
                            "keepdims=True)\n    var = np.var(x_group, axis=(1, 3, 4), keepdims=True)")],
     GN_ALL, ["group consecutive channels", "fails only when G > 1 and when a group has more than one channel"]),
    ("gn_ignores_groups", [("x_group = x.reshape(N, G, C // G, H, W)\n    mean",
                            "x_group = x.reshape(N, 1, C, H, W)\n    mean")],
     GN_ALL, ["normalise each of the G groups separately", "fails only when G > 1"]),
    ("gn_eps_outside_sqrt", [("ivar = 1.0 / np.sqrt(var + eps)\n    x_hat = ((x_group",
                              "ivar = 1.0 / (np.sqrt(var) + eps)\n    x_hat = ((x_group")],
     GN_ALL, ["eps inside the square root"]),
    # the course's convention: dgamma and dbeta of shape (1, C, 1, 1), however gamma was given
    ("gn_dgamma_keeps_broadcast_shape", GN_COURSE_CONVENTION, set(), []),
]


def _rubric():
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    data["tests"] = [test for test in data["tests"] if test["function"] in FUNCTIONS]
    return rubrics.Rubric.model_validate(data)


def _grade(folder: Path, name: str, source: str):
    """(failed test names, {failed test name: output}, score) of one submission."""
    submission = folder / name / "cs231n"
    submission.mkdir(parents=True)
    (submission / "layers.py").write_text(source)
    result = grade_submission(Submission(name, folder / name), _rubric())
    failed = {test.name: test for test in result.tests if not test.passed}
    return ({name: (test.output, test.counterexample is not None) for name, test in failed.items()},
            result.score, result.max_score, snippets_of(result), folder / name)


def _source(edits) -> str:
    source = SOLUTION
    for old, new in edits:
        source = mutate(source, old, new)
    return source


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every mutant (and the correct solution) graded once, two at a time."""
    folder = tmp_path_factory.mktemp("normalization")
    jobs = {"correct": SOLUTION, **{bug: _source(edits) for bug, edits, _, _ in BUGS}}
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_grade, folder, name, source) for name, source in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_the_rubric_covers_every_function():
    assert {test.function for test in _rubric().tests} == FUNCTIONS


def test_the_correct_solution_passes_every_test(graded):
    failed, score, max_score, _, _ = graded["correct"]
    assert failed == {}
    assert score == max_score


@pytest.mark.parametrize("bug,edits,should_fail,words", BUGS, ids=[bug[0] for bug in BUGS])
def test_bug_fails_exactly_its_tests(graded, bug, edits, should_fail, words, tmp_path):
    failed, score, max_score, snippets, folder = graded[bug]
    assert set(failed) == should_fail, {name: output for name, (output, _) in failed.items()}
    report = "\n".join(output for output, _ in failed.values())
    for word in words:
        assert word in report, report
    assert all(named for _, named in failed.values())  # every failure names its smallest failing case
    correct = correct_copy(SOLUTION_PATH.parent.parent, tmp_path)
    assert assert_snippets(snippets, folder, correct) == len(should_fail)  # each failure reproduces


VECTOR_TEST = {"name": "spatial groupnorm backward: gamma and beta of shape (C,)",
               "function": "spatial_groupnorm_backward", "points": 2, "examples": 6,
               "space": {"affine_shape": "vector"}}


def test_gamma_of_shape_c_stays_a_rubric_option(tmp_path):
    """The (C,) convention is not in the bundled rubric, but a rubric may still ask for it."""
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    assert all(test["space"].get("affine_shape", "broadcast") == "broadcast" for test in data["tests"]
               if test["function"].startswith("spatial_groupnorm"))
    data["tests"] = [VECTOR_TEST]
    rubric = rubrics.Rubric.model_validate(data)
    for name, source, passes in (("correct", SOLUTION, True), ("keepdims", _source(GN_COURSE_CONVENTION), False)):
        submission = tmp_path / name / "cs231n"
        submission.mkdir(parents=True)
        (submission / "layers.py").write_text(source)
        test = grade_submission(Submission(name, tmp_path / name), rubric).tests[0]
        assert test.passed == passes, test.output
        assert passes or "give dgamma and dbeta gamma's own shape" in test.output
