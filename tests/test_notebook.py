"""gradeconv.check: the students' notebook check, in-process and in a real Jupyter kernel."""
import json
import os
import sys
import types
from pathlib import Path

import pytest

import gradeconv
from gradeconv import rubric as rubrics
from gradeconv.notebook import CheckResult, NotASubmission, CheckedTest, resolve_rubric
from tests.conftest import CORRECT, ROOT, checkout_env

BUGGY = ROOT / "submissions" / "bob_pad0_crop" / "cs231n" / "layers.py"
FAILING = "conv backward dx: no padding (pad = 0)"
DIAGNOSIS = "slicing `[pad:-pad]` gives an empty array when pad = 0"


@pytest.fixture(scope="module")
def buggy():
    return gradeconv.check(BUGGY)


def test_correct_file_passes_and_writes_nothing_to_stderr(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./rubric.yaml here: the bundled default
    result = gradeconv.check(CORRECT)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    assert result.passed and result.score == result.max_score == 100
    assert len(result.tests) == 15 and all(test.passed for test in result.tests)
    assert result.rubric.endswith("default.yaml")
    result.assert_passed()  # does not raise
    assert "all passed" in repr(result) and "<tr>" in result._repr_html_()


def test_no_sandbox_warning_is_shown_not_written_to_stderr(capfd):
    result = gradeconv.check(CORRECT, sandbox="none")
    assert capfd.readouterr().err == ""
    assert result.passed and result.sandbox == "none"
    assert "sandbox: none. Student code ran with the grader's own rights" in result.notes
    assert "sandbox: none." in result._repr_html_() and "sandbox: none." in str(result)


def test_warnings_and_stray_messages_while_grading_go_to_the_notes(capfd, monkeypatch):
    import warnings

    from gradeconv.judging import grading

    real = grading.grade_submission

    def noisy(*args, **kwargs):
        warnings.warn("overflow encountered in multiply", RuntimeWarning)
        print("a stray grader message", file=sys.stderr)
        return real(*args, **kwargs)

    monkeypatch.setattr(grading, "grade_submission", noisy)
    result = gradeconv.check(CORRECT)
    assert capfd.readouterr().err == ""
    assert result.passed
    assert "RuntimeWarning: overflow encountered in multiply" in result.notes
    assert "grader messages:\na stray grader message" in result.notes


def test_buggy_file_shows_the_failure_everywhere(buggy):
    assert not buggy.passed and buggy.score == 90 and buggy.max_score == 100
    (failure,) = buggy.failures
    assert failure.name == FAILING and failure.outcome == "wrong_shape"
    assert failure.message == "dx has shape (1, 1, 0, 0), expected (1, 1, 1, 1)"
    assert failure.case.startswith("x shape (1, 1, 1, 1)")
    assert failure.diagnosis.startswith(DIAGNOSIS)
    text = str(buggy)
    assert f"FAIL {FAILING} (wrong_shape)" in text and DIAGNOSIS in text
    assert "visible tests: 90/100 points" in text
    page = buggy._repr_html_()
    assert page.count("<tr>") == 1 + len(buggy.tests)  # the header, then one row per test
    assert DIAGNOSIS in page and "smallest failing case" in page
    if failure.reproduce:  # extra_data.reproduce: shown once, in a <pre>
        assert "<pre" in page and "conv_backward_naive(dout, cache)" in page
        assert "reproduce it" not in failure.message
    with pytest.raises(AssertionError) as raised:
        buggy.assert_passed()
    assert f"{FAILING} (wrong_shape): {DIAGNOSIS}" in str(raised.value)
    assert "90/100" in str(raised.value) and len(str(raised.value).splitlines()) == 2


def test_ipython_terminal_gets_the_plain_text(buggy):
    printed = []
    printer = types.SimpleNamespace(text=printed.append)
    buggy._repr_pretty_(printer, False)
    assert printed == [str(buggy)]


def test_student_text_is_escaped_in_html():
    hostile = "<script>alert(1)</script> & [bold]x[/bold]"
    test = CheckedTest(name=hostile, number=1, status="failed", outcome="wrong_value", score=0, max_score=5,
                     function="conv_forward_naive", output=f"out differs {hostile}\ndiagnosis: {hostile}",
                     diagnosis=hostile, reproduce=f"print('{hostile}')")
    result = CheckResult(path=f"/tmp/{hostile}.py", rubric="r.yaml", score=0, max_score=5, tests=(test,),
                         notes=f"your code printed (quoted):\n  | {hostile}")
    page = result._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; [bold]x[/bold]" in page
    assert "print(&#x27;&lt;script&gt;" in page


def test_a_module_object_is_checked_by_its_file(buggy):
    module = types.ModuleType("layers")
    module.__file__ = str(BUGGY)
    result = gradeconv.check(module)
    assert result.path == str(BUGGY) and result.score == buggy.score


def test_not_a_submission_is_refused_before_grading():
    with pytest.raises(NotASubmission, match="README.md: not a submission; give your layers.py"):
        gradeconv.check(ROOT / "README.md")
    with pytest.raises(ValueError, match="no such file"):
        gradeconv.check(ROOT / "no_such_layers.py")


def test_rubric_by_name_path_or_object(tmp_path, monkeypatch):
    assert Path(resolve_rubric("assignment2").path) == rubrics.bundled()["assignment2"]
    own = tmp_path / "mine.yaml"
    own.write_text((ROOT / "rubric.yaml").read_text())
    assert Path(resolve_rubric(own).path) == own
    loaded = rubrics.load(own)
    assert resolve_rubric(loaded) is loaded
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rubric.yaml").write_text((ROOT / "rubric.yaml").read_text())
    assert Path(resolve_rubric(None).path).resolve() == (tmp_path / "rubric.yaml").resolve()


# --- a real notebook in a real Jupyter kernel --------------------------------------------------

def _kernelspec(folder):
    """A kernel running this very interpreter and this checkout's gradeconv, findable through JUPYTER_PATH."""
    spec = folder / "kernels" / "gradeconv-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "env": {"PYTHONPATH": checkout_env()["PYTHONPATH"]},
        "display_name": "gradeconv test", "language": "python"}))
    return "gradeconv-test"


def test_real_notebook_shows_the_html_table(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    kernel = _kernelspec(tmp_path / "jupyter")
    cell = nbformat.v4.new_code_cell
    notebook = nbformat.v4.new_notebook(cells=[
        cell(f"import os, sys\nassert os.path.realpath(sys.executable) == {os.path.realpath(sys.executable)!r}"),
        cell(f"import gradeconv\nassert gradeconv.__file__.startswith({str(ROOT)!r}), gradeconv.__file__\n"
             f"good = gradeconv.check({str(CORRECT)!r})\ngood"),
        cell("good.assert_passed()"),
        cell(f"bad = gradeconv.check({str(BUGGY)!r})\nbad"),
        cell("bad.assert_passed()", metadata={"tags": ["raises-exception"]}),
    ])
    (tmp_path / "work").mkdir()
    # timeouts only catch a hang: a busy machine takes several times the usual few seconds
    nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=300, startup_timeout=180,
                            resources={"metadata": {"path": str(tmp_path / "work")}}).execute()
    setup, good, good_assert, bad, bad_assert = (c["outputs"] for c in notebook.cells)
    assert setup == [] and good_assert == []
    for outputs in (good, good_assert):
        assert not [o for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"]
        assert not [o for o in outputs if o["output_type"] == "error"]
    (good_html,) = [o["data"]["text/html"] for o in good if "text/html" in o.get("data", {})]
    assert "layers.py: 100/100 points on the visible tests, all passed" in good_html
    assert good_html.count("&#10004; passed") == 15 and "failed" not in good_html
    (bad_html,) = [o["data"]["text/html"] for o in bad if "text/html" in o.get("data", {})]
    assert "1 of 15 failed" in bad_html and FAILING in bad_html
    assert DIAGNOSIS in bad_html and "&#10008; failed" in bad_html
    (error,) = bad_assert
    assert error["output_type"] == "error" and error["ename"] == "AssertionError"
    assert FAILING in error["evalue"]
