"""gradeconv prairielearn: PrairieLearn's external-grader results.json, field by field.

The format is PrairieLearn's "External Grading" docs, "Grading results": score in
[0, 1], gradable, message, output, tests with name, description, points, max_points,
message and output; under 1 MB; the grader creates /grade/results itself.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml

from gradeconv.platforms import prairielearn
from tests.conftest import CORRECT, ROOT

HIDDEN = "conv forward: no padding (pad = 0)"
#: appended to the correct solution: max-pool forward kills its process, conv forward (hidden) is wrong
CRASH = ("import os\n\ndef max_pool_forward_naive(x, pool_param):\n    os._exit(3)\n\n"
         "def conv_forward_naive(x, w, b, conv_param):\n    return np.zeros((1,)), None\n")
PL_TEST_FIELDS = {"name": str, "description": str, "points": float, "max_points": float, "message": str,
                  "output": str}


def gradeconv(*args, cwd, timeout=120):
    """The CLI of this checkout (not whatever `gradeconv` is installed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def write_small_rubric(folder, small_rubric, hidden=HIDDEN, secret="s3cret-for-hidden-tests"):
    """small_rubric as a file, one test hidden and a secret_file beside it."""
    data = small_rubric.model_dump(mode="json", exclude_defaults=True)
    for test in data["tests"]:
        if test["name"] == hidden:
            test["visibility"] = "hidden"
    data["secret_file"] = "secret.txt"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secret.txt").write_text(secret + "\n")
    path = folder / "rubric.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rubric_file(tmp_path_factory, small_rubric):
    return write_small_rubric(tmp_path_factory.mktemp("rubric"), small_rubric)


def check_format(data):
    """Every field PrairieLearn documents, with its type."""
    assert isinstance(data["gradable"], bool)
    assert isinstance(data["score"], float) and 0.0 <= data["score"] <= 1.0
    assert isinstance(data["message"], str) and isinstance(data["output"], str)
    assert isinstance(data["tests"], list)
    for test in data["tests"]:
        assert set(test) == set(PL_TEST_FIELDS), test
        for key, kind in PL_TEST_FIELDS.items():
            assert isinstance(test[key], kind), (key, test)
        assert 0 <= test["points"] <= test["max_points"]


def grade_student(tmp_path, rubric_file, source):
    student = tmp_path / "grade" / "student"
    (student / "cs231n").mkdir(parents=True)
    (student / "cs231n" / "layers.py").write_text(source)
    results = tmp_path / "grade" / "results" / "results.json"  # /grade/results does not exist yet
    done = gradeconv("prairielearn", "--student", student, "--results", results, "--rubric", rubric_file,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert results.stat().st_size < prairielearn.MAX_BYTES
    return json.loads(results.read_text())


def test_correct_submission_scores_one(tmp_path, rubric_file):
    data = grade_student(tmp_path, rubric_file, CORRECT.read_text())
    check_format(data)
    assert data["gradable"] is True and data["score"] == 1.0
    assert all(t["message"] == "passed" and t["points"] == t["max_points"] for t in data["tests"])
    assert data["message"].startswith(f"{len(data['tests'])} of {len(data['tests'])} tests passed")
    hidden = next(t for t in data["tests"] if t["name"] == HIDDEN)
    assert hidden["description"].endswith("(hidden test)") and hidden["output"] == ""


def test_crash_fails_its_tests_and_hidden_details_stay_hidden(tmp_path, rubric_file):
    data = grade_student(tmp_path, rubric_file, CORRECT.read_text() + "\n" + CRASH)
    check_format(data)
    assert data["gradable"] is True and 0.0 < data["score"] < 1.0
    crashed = next(t for t in data["tests"] if t["description"].startswith("max_pool_forward_naive: "))
    assert crashed["points"] == 0 and crashed["message"].startswith("failed (crashed)") and crashed["output"]
    hidden = next(t for t in data["tests"] if t["name"] == HIDDEN)
    assert hidden["points"] == 0 and hidden["description"] == "conv_forward_naive (hidden test)"
    assert hidden["message"] == f"failed; {prairielearn.HIDDEN_NOTE}" and hidden["output"] == ""
    backward = next(t for t in data["tests"] if t["description"].startswith("max_pool_backward_naive: "))
    assert backward["points"] == backward["max_points"] and backward["message"] == "passed"
    expected = sum(t["points"] for t in data["tests"]) / sum(t["max_points"] for t in data["tests"])
    assert data["score"] == pytest.approx(expected)


@pytest.mark.parametrize("layout", ["empty", "missing", "readme_only"])
def test_nothing_to_grade_is_not_gradable(tmp_path, rubric_file, layout):
    student = tmp_path / "student"
    if layout != "missing":
        student.mkdir()
    if layout == "readme_only":
        (student / "README.md").write_text("my answers\n")
    results = tmp_path / "results" / "results.json"
    done = gradeconv("prairielearn", "--student", student, "--results", results, "--rubric", rubric_file,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(results.read_text())
    check_format(data)
    assert data["gradable"] is False and data["tests"] == []
    assert data["message"].startswith("Nothing to grade:")
    assert ("no such file or folder" if layout == "missing" else "no layers.py") in data["message"]


def test_bad_rubric_still_leaves_results(tmp_path):
    (tmp_path / "student").mkdir()
    results = tmp_path / "results" / "results.json"
    done = gradeconv("prairielearn", "--student", tmp_path / "student", "--results", results,
                     "--rubric", tmp_path / "nope.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "rubric file not found" in done.stderr
    data = json.loads(results.read_text())
    assert data["gradable"] is False and "rubric" in data["message"]


def test_huge_output_is_cut_under_one_megabyte_deterministically():
    graded = {"score": 5.0, "max_score": 10.0, "output": "x" * 3_000_000, "tests": [
        {"name": f"t{i}", "score": 0.0, "max_score": 1.0, "status": "failed", "visibility": "visible",
         "output": ("line é\n" * 100_000) + "the end", "extra_data": {"function": "f", "outcome": "wrong_value"}}
        for i in range(10)]}
    results = prairielearn.from_submission(graded)
    fitted = prairielearn.fit(results)
    size = len(prairielearn.encoded(fitted))
    assert size < prairielearn.MAX_BYTES
    assert fitted == prairielearn.fit(prairielearn.from_submission(graded))  # deterministic
    assert fitted["message"].endswith(prairielearn.SHORTENED)
    assert fitted["score"] == 0.5 and [t["points"] for t in fitted["tests"]] == [0.0] * 10
    assert all(t["output"].endswith("the end") and "characters cut" in t["output"] for t in fitted["tests"])
    small = prairielearn.from_submission(dict(graded, output="short", tests=graded["tests"][:1]))
    small["tests"][0]["output"] = "fine"
    assert prairielearn.fit(small) is small  # nothing to cut: unchanged
