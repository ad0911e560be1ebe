"""The installed `gradeconv` command, run as users run it."""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import CORRECT, ROOT, checkout_env

SAMPLE = ROOT / "submissions"
GRADESCOPE_TEST_FIELDS = {"name": str, "number": str, "score": float, "max_score": float, "status": str,
                          "output": str, "visibility": str, "tags": list, "extra_data": dict}


def gradeconv(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=checkout_env(), timeout=timeout)


@pytest.fixture
def small_class(tmp_path):
    """Three quick submissions: correct, pad-0 crop bug, unreadable zip."""
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copytree(SAMPLE / "alice", folder / "alice")
    shutil.copytree(SAMPLE / "bob_pad0_crop", folder / "bob")
    (folder / "carl.zip").write_bytes(b"this is not a zip")
    (folder / "__MACOSX").mkdir()
    return folder


def test_version():
    result = gradeconv("--version")
    assert result.returncode == 0 and "gradeconv 0.1.0" in result.stdout
    installed = subprocess.run(["gradeconv", "--version"], capture_output=True, text=True)
    assert installed.stdout == result.stdout


def test_grade_writes_json_csv_and_feedback(small_class, tmp_path):
    out = tmp_path / "out"
    result = gradeconv(small_class, "--jobs", 2, "--json", out / "r.json", "--csv", out / "g.csv",
                       "--feedback-dir", out / "fb")
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "r.json").read_text())
    assert set(data) == {"gradeconv_version", "hypothesis_version", "numpy_version", "rubric", "submissions"}
    assert data["rubric"]["path"].endswith("rubric.yaml") and len(data["rubric"]["sha256"]) == 64
    scores = {s["id"]: s["score"] for s in data["submissions"]}
    assert scores == {"alice": 100, "bob": 90, "carl": 0}
    carl = next(s for s in data["submissions"] if s["id"] == "carl")
    assert "not a readable zip" in carl["output"]
    rows = list(csv.DictReader(io.StringIO((out / "g.csv").read_text())))
    assert [r["id"] for r in rows] == ["alice", "bob", "carl"]
    assert float(rows[1]["conv backward dx: no padding (pad = 0)"]) == 0
    assert float(rows[1]["score"]) == 90
    feedback = (out / "fb" / "bob.md").read_text()
    assert "[FAIL] conv backward dx: no padding (pad = 0)" in feedback and "[pad:-pad]" in feedback
    assert "Gradebook" in result.stdout and "Most common failures" in result.stdout


def test_default_rubric_is_used_outside_the_project(tmp_path):
    result = gradeconv("--quiet", SAMPLE / "alice", "--json", tmp_path / "r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rubric"]["path"].endswith("default.yaml")
    assert data["submissions"][0]["score"] == 100


def test_bundled_default_rubric_is_the_top_level_one():
    assert (ROOT / "rubric.yaml").read_text() == (ROOT / "gradeconv" / "rubrics" / "default.yaml").read_text()


def test_check_exit_status_follows_visible_tests(tmp_path):
    good = gradeconv("check", CORRECT)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "FAIL" not in good.stdout
    bad = gradeconv("check", SAMPLE / "bob_pad0_crop")
    assert bad.returncode == 1
    assert "FAIL conv backward dx: no padding (pad = 0)" in bad.stdout
    assert "smallest failing case" in bad.stdout and "[pad:-pad]" in bad.stdout


def test_check_shows_visible_tests_only(tmp_path):
    rubric = (ROOT / "rubric.yaml").read_text().replace(
        '  - name: "conv backward db"\n', '  - name: "conv backward db"\n    visibility: hidden\n')
    (tmp_path / "rubric.yaml").write_text(rubric)
    result = gradeconv("check", CORRECT, "--rubric", tmp_path / "rubric.yaml")
    assert result.returncode == 0 and "conv backward db" not in result.stdout
    assert "conv backward dw" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["grade", "no/such/folder"], "no/such/folder: no such file or folder"),
    (["check", "missing.py"], "missing.py: no such file or folder"),
    (["grade", "submissions", "--rubric", "nope.yaml"], "nope.yaml: rubric file not found"),
    (["grade", "submissions", "--jobs", "0"], "--jobs must be at least 1"),
    (["grade", "submissions", "--resume"], "--resume needs --json"),
])
def test_user_errors_are_one_line_with_status_2(args, message):
    result = gradeconv(*args, cwd=ROOT)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_are_usage_errors():
    result = gradeconv("grade", "--bogus")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_malformed_rubric_names_file_line_and_key(tmp_path):
    (tmp_path / "rubric.yaml").write_text("module: layers.py\ntests:\n  - name: t\n    function: conv_forward_naive\n"
                                          "    points: 5\n    pionts: 3\n")
    result = gradeconv("grade", SAMPLE / "alice", "--rubric", tmp_path / "rubric.yaml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'rubric.yaml'}:6: tests.0.pionts: unknown key" in result.stderr


def test_empty_folder_is_a_user_error(tmp_path):
    result = gradeconv("grade", tmp_path, "--json", tmp_path / "r.json", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == (f"gradeconv: {tmp_path}: no submissions found; "
                             "a class folder holds a .py file, a .zip or a folder per student\n")
    assert not (tmp_path / "r.json").exists()


def test_interrupted_batch_keeps_finished_grades_and_resumes(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("a1", "a2", "a3"):
        shutil.copytree(SAMPLE / "alice", folder / name)
    shutil.copytree(SAMPLE / "heidi_infinite_loop", folder / "z_slow")
    results = tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "-m", "gradeconv", folder, "--jobs", "1", "--json", results,
                                "--quiet"], start_new_session=True, env=checkout_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and len(json.loads(results.read_text())["submissions"]) >= 3:
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    kept = json.loads(results.read_text())["submissions"]
    assert [s["id"] for s in kept] == ["a1", "a2", "a3"]
    resumed = gradeconv(folder, "--jobs", 1, "--json", results, "--resume", "--quiet")
    assert resumed.returncode == 0
    final = json.loads(results.read_text())["submissions"]
    assert [s["id"] for s in final] == ["a1", "a2", "a3", "z_slow"]
    assert final[:3] == kept


def test_gradescope_layout(tmp_path):
    submission = tmp_path / "autograder" / "submission"
    shutil.copytree(SAMPLE / "carol_pool_overwrites", submission)
    results = tmp_path / "autograder" / "results" / "results.json"
    run = gradeconv("gradescope", "--submission", submission, "--results", results)
    assert run.returncode == 0, run.stderr
    data = json.loads(results.read_text())
    assert isinstance(data["score"], float) and data["score"] == 87
    assert set(data) == {"score", "output", "output_format", "test_output_format", "test_name_format",
                         "stdout_visibility", "extra_data", "tests"}  # Gradescope's keys only; ours in extra_data
    assert data["extra_data"]["max_score"] == 100 and data["extra_data"]["id"] == "submission"
    assert isinstance(data["output"], str) and data["output"].startswith("```text\n")
    assert len(data["tests"]) == 15
    for test in data["tests"]:
        for field, kind in GRADESCOPE_TEST_FIELDS.items():
            assert isinstance(test[field], kind), (field, test[field])
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
        assert set(test) <= set(GRADESCOPE_TEST_FIELDS) | {"output_format"} and test["output_format"] == "md"
        assert set(test["extra_data"]) == {"function", "outcome", "counterexample", "diagnosis", "cache", "reproduce",
                                             "difference", "description"}


def test_gradescope_still_writes_results_when_the_submission_is_missing(tmp_path):
    results = tmp_path / "results.json"
    run = gradeconv("gradescope", "--submission", tmp_path / "nothing", "--results", results)
    assert run.returncode == 0
    data = json.loads(results.read_text())
    assert data["score"] == 0 and "submission folder not found" in data["output"] and data["tests"] == []


def test_quiet_prints_nothing(tmp_path):
    result = gradeconv("--quiet", SAMPLE / "alice", "--json", tmp_path / "r.json")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert json.loads((tmp_path / "r.json").read_text())["submissions"][0]["score"] == 100


def test_terminal_gets_a_progress_bar_then_the_tables(tmp_path):
    import pty

    controller, terminal = pty.openpty()
    env = checkout_env(COLUMNS="120", TERM="xterm")
    process = subprocess.Popen([sys.executable, "-m", "gradeconv", str(SAMPLE / "alice"), "--jobs", "1"],
                               stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=tmp_path)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed when gradeconv exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=60) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "grading" in screen  # the progress bar's label: piped output never prints it
    assert "Gradebook" in screen and "Pass rate per test" in screen
