"""Rubrics over any layer: bundled rubrics by name, layer-aware validation, tests across several files."""
import subprocess
import sys

import pytest

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.submissions import Submission
from tests.conftest import ROOT, checkout_env

SOLUTION = (ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py").read_text()


def gradeconv(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=checkout_env(), timeout=120)


def test_every_bundled_rubric_loads_and_names_its_functions():
    bundled = rubrics.bundled()
    assert list(bundled)[0] == "default" and "assignment2" in bundled
    for name, path in bundled.items():
        rubric = rubrics.load(path)
        assert rubric.max_score > 0 and rubric.functions, name
    assert rubrics.load(bundled["default"]).sha256 == rubrics.load(ROOT / "rubric.yaml").sha256


def test_rubrics_command_lists_bundled_rubrics_and_one_rubrics_tests(tmp_path):
    listing = gradeconv("rubrics", cwd=tmp_path)
    assert listing.returncode == 0
    for name, path in rubrics.bundled().items():
        rubric = rubrics.load(path)
        assert name in listing.stdout and f"{rubric.max_score:g}" in listing.stdout
    tests = gradeconv("rubrics", "assignment2", cwd=tmp_path)
    assert tests.returncode == 0
    for test in rubrics.load(rubrics.bundled()["assignment2"]).tests[:3]:
        assert test.function in tests.stdout


def test_an_unknown_rubric_name_is_one_line_and_exit_2(tmp_path):
    result = gradeconv("check", ROOT / "tests" / "solutions" / "a2", "--rubric", "assignment9", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no bundled rubric of that name" in result.stderr
    assert "assignment2" in result.stderr  # says which names exist


def test_check_with_a_bundled_rubric_by_name(tmp_path):
    result = gradeconv("check", ROOT / "tests" / "solutions" / "a2", "--rubric", "assignment2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    max_score = rubrics.load(rubrics.bundled()["assignment2"]).max_score
    assert f"{max_score:g}/{max_score:g} points" in result.stdout


LOSS_TEST = "tests:\n  - name: t\n    function: svm_loss\n    points: 5\n"


@pytest.mark.parametrize("text,expected", [
    (LOSS_TEST + "    space: {f: [1, 2]}\n", ":5: tests.0.space.f: unknown key; allowed here: n, c, scale, offset"),
    (LOSS_TEST + "    space: {c: [1, 3]}\n", ":5: tests.0.space.c: must be >= 2"),
    (LOSS_TEST + "    space: {scale: big}\n", ":5: tests.0.space.scale: must be a float"),
    (LOSS_TEST + "    outputs: [out]\n", "outputs of svm_loss are ['loss', 'dx']"),
    (LOSS_TEST + "    cases: [{n: 2}]\n", ":5: tests.0.cases.0: missing c"),
    (LOSS_TEST + "    cases: [{n: 2, c: 3, w: 4}]\n", ":5: tests.0.cases.0.w: unknown key; allowed here: n, c, scale, offset"),
    (LOSS_TEST + "    cases: [{n: 2, c: 3, values: notebook}]\n", ":5: tests.0.cases.0.values: must be random"),
    ("tests:\n  - name: t\n    function: max_pool_forward_naive\n    points: 5\n    space: {overlap: sometimes}\n",
     ":5: tests.0.space.overlap: must be one of ['allowed', 'required', 'forbidden']"),
    ("tests:\n  - name: t\n    function: max_pool_forward_naive\n    points: 5\n    cases: [{n: 1, c: 1, h: 2, w: 2, "
     "field_h: 1, field_w: 1, pad: 1}]\n", ":5: tests.0.cases.0.pad: unknown key"),
    (LOSS_TEST + "    module: rnn_layers.txt\n", ":5: tests.0.module: module must be a .py file inside the package"),
])
def test_layer_aware_rubric_errors_name_the_key(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(rubrics.RubricError) as info:
        rubrics.load(path)
    assert expected in str(info.value)


TWO_FILES = """
module: layers.py
limits: {call_seconds: 2, submission_seconds: 30}
tests:
  - name: "relu forward in layers.py"
    function: relu_forward
    points: 2
    examples: 5
  - name: "relu forward in extra_layers.py"
    function: relu_forward
    module: extra_layers.py
    points: 3
    examples: 5
  - name: "relu backward in layers.py"
    function: relu_backward
    points: 1
    examples: 5
"""


def test_tests_of_several_files_are_graded_in_one_session_each_file_failing_alone(tmp_path):
    rubric_path = tmp_path / "rubric.yaml"
    rubric_path.write_text(TWO_FILES)
    rubric = rubrics.load(rubric_path)
    assert rubric.modules == ["layers.py", "extra_layers.py"]
    package = tmp_path / "student" / "cs231n"
    package.mkdir(parents=True)
    (package / "layers.py").write_text(SOLUTION)
    (package / "extra_layers.py").write_text("import numpy as np\n\ndef relu_forward(x):\n    return x.copy(), x\n")
    result = grade_submission(Submission("student", tmp_path / "student"), rubric)
    outcomes = [(test.name, test.outcome) for test in result.tests]
    assert outcomes == [("relu forward in layers.py", "passed"), ("relu forward in extra_layers.py", "wrong_value"),
                        ("relu backward in layers.py", "passed")]
    assert result.score == 3
    assert result.output.count("sandbox:") == 1  # one worker imported both files
    assert set(result.files_sha256) == {"layers.py", "extra_layers.py"}

    (package / "extra_layers.py").write_text("def relu_forward(x):\n    return x, x\n\nraise SystemExit('broken')\n")
    result = grade_submission(Submission("student", tmp_path / "student"), rubric)
    assert [test.outcome for test in result.tests] == ["passed", "error", "passed"]

    (package / "extra_layers.py").unlink()  # a missing file fails its own tests only
    result = grade_submission(Submission("student", tmp_path / "student"), rubric)
    assert [test.outcome for test in result.tests] == ["passed", "error", "passed"]
    assert "extra_layers.py" in result.tests[1].output


def test_the_readme_lists_every_gradable_function_and_bundled_rubric():
    readme = (ROOT / "README.md").read_text()
    from gradeconv import specs
    missing = [name for name in specs.FUNCTIONS if f"`{name}`" not in readme]
    assert missing == []
    for name, path in rubrics.bundled().items():
        rubric = rubrics.load(path)
        assert f"`{name}`" in readme
        if name != "default":
            assert f"{rubric.max_score:g} points in {len(rubric.tests)} tests" in readme, name
