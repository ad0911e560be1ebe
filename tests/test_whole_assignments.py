"""Whole assignments: a cs231n/ folder (or a zip of it) graded file by file, models and update rules included.

A correct submission gets every point of both bundled whole-assignment rubrics; the
package is staged as the course lays it out (subpackages, the course helpers a rubric
provides); a failing model says whether a layer it runs on failed first; and a model
that lies about what it returns fails, never passes.
"""
import shutil
import zipfile
from pathlib import Path

import pytest

from gradeconv import outcomes
from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.sandbox import replies
from gradeconv.sandbox.staging import remove, stage_module
from gradeconv.submissions import Submission, find_module
from tests.conftest import ROOT

SOLUTIONS = ROOT / "tests" / "solutions"


def whole_assignment(root: Path) -> Path:
    """The assignment-2 and assignment-3 solutions merged into one cs231n/ folder, a notebook beside it."""
    folder = root / "student"
    shutil.copytree(SOLUTIONS / "a2", folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SOLUTIONS / "a3", folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "FullyConnectedNets.ipynb").write_text("{}")
    return folder


def grade(path: Path, rubric, sandbox: str | None = None):
    return grade_submission(Submission(id=path.stem, path=path, late=False), rubric, sandbox)


def failing(result) -> set[str]:
    return {test.name for test in result.tests if test.outcome != outcomes.PASSED}


@pytest.mark.parametrize("name", ["assignment2", "assignment3"])
def test_a_correct_whole_assignment_gets_every_point_of_the_bundled_rubric(tmp_path, name):
    rubric = rubrics.load(rubrics.bundled()[name])
    result = grade(whole_assignment(tmp_path), rubric)
    assert failing(result) == set() and result.score == rubric.max_score
    modules = {rubric.module_of(test) for test in rubric.tests}
    assert set(result.files_sha256) == modules and any("/" in module for module in modules)


def test_a_zip_of_the_assignment_folder_is_graded_the_same(tmp_path):
    folder = whole_assignment(tmp_path)
    archive = tmp_path / "submission.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, Path("assignment2") / path.relative_to(folder))
    rubric = rubrics.load(rubrics.bundled()["assignment2"])
    tests = [test for test in rubric.tests if rubric.module_of(test) != "layers.py"]
    rubric = rubric.model_copy(update={"tests": tuple(tests)})
    result = grade(archive, rubric)
    assert failing(result) == set() and result.score == rubric.max_score > 0


def test_the_package_is_staged_as_the_course_lays_it_out(tmp_path):
    folder = whole_assignment(tmp_path) / "cs231n"
    (folder / "fast_layers.py").write_text("from .im2col_cython import col2im_6d_cython\n")  # needs Cython
    (folder / "layer_utils.py").write_text("OWN = True\n")  # the student's own sandwich layers are kept
    (folder / "classifiers" / "__init__.py").write_text("raise SystemExit('ran')\n")  # never copied
    (folder / "classifiers" / "deep" / "deeper").mkdir(parents=True)
    (folder / "classifiers" / "deep" / "deeper" / "far.py").write_text("")  # past MAX_DEPTH
    (folder / "linked").symlink_to(ROOT / "reference", target_is_directory=True)  # never followed
    stage = stage_module(find_module(folder.parent, "classifiers/fc_net.py"), "cs231n", "classifiers/fc_net.py",
                         own_helper=False, provided=("fast_layers.py", "layer_utils.py", "solver.py"))
    try:
        package = stage.package_dir
        assert stage.module == "cs231n.classifiers.fc_net"
        staged = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py"))
        assert staged == ["__init__.py", "classifiers/__init__.py", "classifiers/cnn.py", "classifiers/fc_net.py",
                          "classifiers/rnn.py", "fast_layers.py", "im2col.py", "layer_utils.py", "layers.py",
                          "optim.py", "rnn_layers.py", "solver.py"]
        assert (package / "classifiers" / "__init__.py").read_text() == ""
        assert (package / "fast_layers.py").read_bytes() == (ROOT / "reference/provided/fast_layers.py").read_bytes()
        assert (package / "layer_utils.py").read_text() == "OWN = True\n"
        assert (package / "solver.py").read_bytes() == (ROOT / "reference/provided/solver.py").read_bytes()
    finally:
        remove(stage)


def test_a_file_checked_alone_stages_nothing_beside_it(tmp_path):
    """A lone fc_net.py is graded by itself: no folder around it is copied (its layers are missing)."""
    lone = tmp_path / "fc_net.py"
    shutil.copyfile(SOLUTIONS / "a2" / "cs231n" / "classifiers" / "fc_net.py", lone)
    (tmp_path / "secret.py").write_text("ANSWERS = 1\n")
    stage = stage_module(lone, "cs231n", "classifiers/fc_net.py", own_helper=False)
    try:
        staged = sorted(path.relative_to(stage.package_dir).as_posix() for path in stage.package_dir.rglob("*.py"))
        assert staged == ["__init__.py", "classifiers/__init__.py", "classifiers/fc_net.py", "im2col.py"]
    finally:
        remove(stage)


def small(name: str, keep) -> rubrics.Rubric:
    rubric = rubrics.load(rubrics.bundled()[name])
    tests = tuple(test.model_copy(update={"examples": min(test.examples, 4)}) for test in rubric.tests if keep(test))
    return rubric.model_copy(update={"tests": tests})


def test_a_failing_model_names_the_failing_layer_it_runs_on_or_blames_the_wiring(tmp_path):
    folder = whole_assignment(tmp_path) / "cs231n"
    layers = (folder / "layers.py").read_text()
    (folder / "layers.py").write_text(layers.replace("xhat = xhatT.T\n    out = gamma * xhat + beta",
                                                             "xhat = xhatT.T\n    out = gamma * xhat", 1))
    fc_net = (folder / "classifiers" / "fc_net.py").read_text()
    assert "loss += 0.5 * self.reg * np.sum(W * W)" in fc_net
    (folder / "classifiers" / "fc_net.py").write_text(
        fc_net.replace("loss += 0.5 * self.reg * np.sum(W * W)", "loss += self.reg * np.sum(W * W)"))
    rubric = small("assignment2", lambda test: "layernorm" in test.name or test.function.startswith("affine")
                   or test.function.startswith("relu") or test.function == "softmax_loss"
                   or test.name.startswith("FullyConnectedNet: loss"))
    result = grade(folder.parent, rubric)
    by_name = {test.name: test for test in result.tests}
    layernorm_model = by_name["FullyConnectedNet: loss and gradients with layernorm"]
    assert layernorm_model.outcome == outcomes.WRONG_VALUE
    assert "uses layers that failed their own tests: layernorm_forward" in layernorm_model.output
    plain = by_name["FullyConnectedNet: loss and gradients"]
    assert plain.outcome == outcomes.WRONG_VALUE
    assert "the model is wrong as a whole" in plain.diagnosis and "needs its 0.5" in plain.diagnosis
    assert "fails only when reg > 0" in plain.diagnosis


HOSTILE_MODELS = {
    "params that are not a dict": (
        "class FullyConnectedNet:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        self.params = [1, 2]\n", outcomes.WRONG_TYPE),
    "grads keyed by numbers": (
        "import numpy as np\n"
        "class FullyConnectedNet:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        self.params = {}\n"
        "    def loss(self, X, y=None):\n"
        "        return np.float64(1.0), {1: np.zeros(3)}\n", outcomes.WRONG_VALUE),
    "a dict of 100 entries": (
        "import numpy as np\n"
        "class FullyConnectedNet:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        self.params = {}\n"
        "    def loss(self, X, y=None):\n"
        "        return np.float64(1.0), {f'W{i}': np.zeros(2) for i in range(100)}\n", outcomes.WRONG_VALUE),
    "a constructor that raises": (
        "class FullyConnectedNet:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        raise RuntimeError('no')\n", outcomes.ERROR),
    "a loss that returns the grads it was given": (
        "class FullyConnectedNet:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        self.params = {}\n"
        "    def loss(self, X, y=None):\n"
        "        return 0.0, dict(self.params)\n", outcomes.WRONG_VALUE),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MODELS))
def test_a_model_that_returns_nonsense_fails(tmp_path, name):
    source, outcome = HOSTILE_MODELS[name]
    folder = tmp_path / "student" / "cs231n"
    (folder / "classifiers").mkdir(parents=True)
    (folder / "classifiers" / "fc_net.py").write_text(source)
    rubric = small("assignment2", lambda test: test.name in ("FullyConnectedNet: loss and gradients",
                                                            "FullyConnectedNet: initialisation"))
    result = grade(folder.parent, rubric)
    assert result.score == 0 and {test.outcome for test in result.tests} <= {outcome, outcomes.WRONG_TYPE,
                                                                            outcomes.WRONG_VALUE, outcomes.NOT_IMPLEMENTED}
    assert outcome in {test.outcome for test in result.tests}


def test_a_reply_mapping_is_held_to_the_schema():
    good = {"status": "ok", "value": {"sequence": "tuple", "items": [{"array": 0}, {"mapping": {"W1": {"array": 1}}}]},
            "blobs": [8, 8]}
    assert replies.validate("call", good, 2) is good
    bad_key = {**good, "value": {"mapping": {"W 1": {"array": 0}}}}
    nested = {**good, "value": {"mapping": {"W1": {"mapping": {"x": {"array": 0}}}}}}
    unreferenced = {**good, "value": {"mapping": {"W1": {"array": 0}}}}
    for header, count in ((bad_key, 1), (nested, 1), (unreferenced, 2)):
        with pytest.raises(replies.MalformedReply):
            replies.validate("call", header, count)


def test_a_model_loss_test_checks_the_grads_against_numeric_slopes_of_the_loss():
    """Grads that match the reference pass the directional check of the loss's numeric slopes; a W1 gradient
    twice too large fails it."""
    from gradeconv import specs
    from gradeconv.judging import networks
    from gradeconv.judging.cases import build, from_explicit
    from gradeconv.rubric import GradientCheck

    layer, function = specs.FUNCTIONS["FullyConnectedNet.loss"]
    values = build(from_explicit(function.name, {"n": 3, "d": 4, "depth": 2, "h": 3, "c": 3, "n_test": 1,
                                                 "model_seed": 1, "reg": 0.7, "seed": 5}))
    settings = GradientCheck()
    right = networks.reference_answers(layer.network, function, values)
    assert networks._numeric_check(layer.network, function, values, settings, right) is None
    wrong = {**right, "grads['W1']": 2 * right["grads['W1']"]}
    failure = networks._numeric_check(layer.network, function, values, settings, wrong)
    assert failure is not None and failure.output == "grads['W1']" and "numeric gradient" in failure.message
