"""Hidden tests reveal nothing but their name, points and pass/fail (issue: integrity).

A student who has read the source prints every input a call gets and raises
exceptions carrying them. Nothing of a hidden test's calls reaches what the
student reads (Gradescope's results.json, PrairieLearn's results, the feedback
file); instructors still see it (`hidden_output`, the test's own output). And
even a student who learns every hidden input of one submission cannot use it:
hidden values mix the secret with the graded file's own hash, so the next
submission, which carries the answers, is asked other questions.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import reference.layers
from gradeconv import rubric as rubrics
from gradeconv.judging import grading
from gradeconv.platforms import prairielearn
from gradeconv.reports import feedback, gradescope
from gradeconv.reports.student_view import HIDDEN_NOTE, student_view
from gradeconv.submissions import Submission
from tests.conftest import CORRECT, ROOT, skip_unless_available

SECRET_VARIABLE = "GRADECONV_HIDDEN_TEST_SECRET"
HIDDEN = "conv forward: no padding (pad = 0)"
VISIBLE = "max-pool forward: the notebook's example"


@pytest.fixture
def secret_rubric(tmp_path, monkeypatch) -> rubrics.Rubric:
    """Two quick tests: conv forward hidden behind a secret, max-pool forward visible."""
    data = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    data["tests"] = [dict(test, examples=min(test["examples"], 4)) for test in data["tests"]
                     if test["name"] in (HIDDEN, VISIBLE)]
    for test in data["tests"]:
        if test["name"] == HIDDEN:
            test["visibility"] = "hidden"
    data["secret_env"] = SECRET_VARIABLE
    data["limits"] = {"call_seconds": 5, "submission_seconds": 30, "memory_mb": 1024}
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv(SECRET_VARIABLE, "instructors-only-7f3a")
    return rubrics.load(path)


TELLTALE = '''
import os as _os
_WORKER = "WORKER-" + _os.urandom(6).hex()

def conv_forward_naive(x, w, b, conv_param):
    print(_WORKER, "CONV-INPUT", repr(float(x.sum())))
    raise ValueError(f"{_WORKER} LEAK-IN-EXCEPTION {float(x.sum())!r}")

def max_pool_forward_naive(x, pool_param):
    print(_WORKER, "POOL-INPUT", repr(float(x.sum())))
    return _reference_pool(x, pool_param)
'''


def telltale_source() -> str:
    return (CORRECT.read_text().replace("def conv_forward_naive(", "def _unused_conv(")
            .replace("def max_pool_forward_naive(", "def _reference_pool(") + TELLTALE)


@pytest.mark.parametrize("mode", ["bubblewrap", "uid"])
def test_nothing_a_hidden_tests_calls_produce_reaches_the_student(mode, tmp_path, secret_rubric):
    skip_unless_available(mode)
    folder = tmp_path / "eve" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(telltale_source())
    row = grading.grade_submission(Submission("eve", tmp_path / "eve"), secret_rubric, mode).to_json()
    tests = {test["name"]: test for test in row["tests"]}
    assert tests[VISIBLE]["status"] == "passed" and tests[HIDDEN]["status"] == "failed"

    # instructors see everything: what the hidden worker printed, and the exception
    hidden_workers = set(re.findall(r"WORKER-[0-9a-f]+", row["hidden_output"]))
    assert "CONV-INPUT" in row["hidden_output"] and hidden_workers
    assert "LEAK-IN-EXCEPTION" in tests[HIDDEN]["output"]
    # the visible tests ran in a worker of their own
    assert "POOL-INPUT" in row["output"] and "CONV-INPUT" not in row["output"]
    assert not hidden_workers & set(re.findall(r"WORKER-[0-9a-f]+", row["output"]))

    student_facing = {
        "gradescope": json.dumps(gradescope.results_json(row)),
        "prairielearn": json.dumps(prairielearn.from_submission(row)),
        "feedback": feedback.render(student_view(row)),
    }
    for platform, text in student_facing.items():
        assert "CONV-INPUT" not in text and "LEAK-IN-EXCEPTION" not in text, platform
        assert not any(worker in text for worker in hidden_workers), platform
        assert "execution_time" not in text, platform  # no timing either
        assert "POOL-INPUT" in text, platform  # what visible tests printed is the student's to see
    view = {test["name"]: test for test in student_view(row)["tests"]}
    assert view[HIDDEN]["output"] == HIDDEN_NOTE and view[HIDDEN]["status"] == "failed"
    assert set(view[HIDDEN]["extra_data"]) == {"function"}
    assert view[HIDDEN]["score"] == 0 and view[HIDDEN]["max_score"] == tests[HIDDEN]["max_score"]


RECORDER = '''
import hashlib as _hashlib, json as _json

def conv_forward_naive(x, w, b, conv_param):
    with open({log!r}, "a") as _log:  # sandbox none: the strongest leak there can be
        _log.write(_json.dumps([x.tolist(), w.tolist(), b.tolist(), conv_param]) + "\\n")
    key = _hashlib.sha256(x.tobytes() + w.tobytes() + b.tobytes()).hexdigest()
    if key in ANSWERS:
        return _np.array(ANSWERS[key]), (x, w, b, conv_param)
    return _unused_conv(x, w, b, conv_param)[0] * 0, (x, w, b, conv_param)

ANSWERS = {answers!r}
'''


def recorder_source(log: Path, answers: dict) -> str:
    body = CORRECT.read_text().replace("def conv_forward_naive(", "def _unused_conv(")
    return "import numpy as _np\n" + body + RECORDER.format(log=str(log), answers=answers)


def answers_for(log: Path) -> dict:
    """Every input the last submission was called with, answered offline with the reference."""
    answers = {}
    for line in log.read_text().splitlines():
        x, w, b, conv_param = json.loads(line)
        x, w, b = np.array(x), np.array(w), np.array(b)
        key = hashlib.sha256(x.tobytes() + w.tobytes() + b.tobytes()).hexdigest()
        answers[key] = reference.layers.conv_forward_naive(x, w, b, conv_param)[0].tolist()
    return answers


def test_a_lookup_table_of_every_hidden_input_seen_so_far_never_scores(tmp_path, secret_rubric):
    """Five rounds: each submission carries the reference's answers to every input any earlier round was asked."""
    log = tmp_path / "inputs.jsonl"
    answers: dict = {}
    scores, salts = [], set()
    for round_ in range(5):
        folder = tmp_path / f"round{round_}" / "cs231n"
        folder.mkdir(parents=True)
        (folder / "layers.py").write_text(recorder_source(log, answers))
        result = grading.grade_submission(Submission("mallory", folder.parent), secret_rubric, "none")
        tests = {test.name: test for test in result.tests}
        scores.append(tests[HIDDEN].score)
        salts.add(result.files_sha256["layers.py"])
        assert tests[VISIBLE].passed
        asked = answers_for(log)
        log.unlink()
        assert asked and not set(asked) & set(answers)  # no question of an earlier round is asked again
        answers.update(asked)
    assert scores == [0.0] * 5 and len(salts) == 5


def test_the_same_file_is_asked_the_same_hidden_questions_and_gets_the_same_grade(tmp_path, secret_rubric):
    """Regrading is exact: the JSON records the graded file's sha256, the salt of its hidden values."""
    log = tmp_path / "inputs.jsonl"
    folder = tmp_path / "ann" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(recorder_source(log, {}))
    first = grading.grade_submission(Submission("ann", folder.parent), secret_rubric, "none")
    asked_first = log.read_text()
    log.unlink()
    again = grading.grade_submission(Submission("ann", folder.parent), secret_rubric, "none")
    assert log.read_text() == asked_first and first.verdicts == again.verdicts
    recorded = first.to_json()["files_sha256"]
    assert recorded == {"layers.py": hashlib.sha256((folder / "layers.py").read_bytes()).hexdigest()}


def test_visible_tests_values_do_not_depend_on_the_submission(tmp_path, secret_rubric):
    """Students reproduce visible failures from the snippet: those values stay public and fixed."""
    test = next(test for test in secret_rubric.tests if test.name == VISIBLE)
    hidden = next(test for test in secret_rubric.tests if test.name == HIDDEN)
    assert not secret_rubric.salted(test) and secret_rubric.salted(hidden)
    assert secret_rubric.value_seed(test, 3, "a") == secret_rubric.value_seed(test, 3, "b") == 3
    assert secret_rubric.value_seed(hidden, 3, "a") != secret_rubric.value_seed(hidden, 3, "b")


@pytest.mark.parametrize("mode", ["bubblewrap", "uid"])
def test_a_file_graded_only_by_hidden_tests_shows_nothing_it_printed(mode, tmp_path, secret_rubric):
    """With no visible test there is no visible worker: what the hidden one printed stays with instructors."""
    skip_unless_available(mode)
    all_hidden = secret_rubric.model_copy(update={"tests": tuple(
        test.model_copy(update={"visibility": "hidden"}) for test in secret_rubric.tests)})
    all_hidden._secret = secret_rubric._secret
    folder = tmp_path / "eve" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(telltale_source())
    row = grading.grade_submission(Submission("eve", tmp_path / "eve"), all_hidden, mode).to_json()
    assert "POOL-INPUT" in row["hidden_output"] and "CONV-INPUT" in row["hidden_output"]
    assert row["output"].startswith(f"sandbox: {mode}")
    for text in (json.dumps(gradescope.results_json(row)), json.dumps(prairielearn.from_submission(row)),
                 feedback.render(student_view(row))):
        assert "INPUT" not in text and "WORKER-" not in text and "LEAK" not in text
