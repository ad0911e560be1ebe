"""Each platform's format, exactly (issue: integrity).

Gradescope's results.json holds only the keys its specification defines, with all
text fenced in Markdown; PrairieLearn's results only its documented fields; a CSV
cell never starts a formula; --resume never keeps a row for another file that
cleans to the same id.
"""
from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from gradeconv import cli
from gradeconv.platforms import canvas, prairielearn
from gradeconv.reports import csv_report, gradescope
from tests.conftest import CORRECT, ROOT

PRAIRIELEARN_TOP = {"gradable", "score", "message", "output", "format_errors", "tests", "images", "partial_scores"}
PRAIRIELEARN_TEST = {"name", "description", "points", "max_points", "message", "output", "images"}
HOSTILE_TEXT = "<img src=x onerror=alert(1)> ``` **bold** [link](http://x) </pre>"


def row(output: str = HOSTILE_TEXT) -> dict:
    test = {"name": "conv forward", "number": "1", "score": 0.0, "max_score": 5.0, "status": "failed",
            "output": output, "visibility": "visible", "tags": [],
            "extra_data": {"function": "conv_forward_naive", "outcome": "error"}}
    hidden = dict(test, name="hidden one", number="2", visibility="hidden", output="secret " + output)
    return {"id": "eve", "late": False, "path": "/class/eve", "graded": True, "score": 0.0, "max_score": 10.0,
            "execution_time": 1.5, "output": output, "sandbox": "bubblewrap", "machine_failure": None,
            "hidden_output": "HIDDEN PRINT", "files_sha256": {"layers.py": "ab" * 32}, "tests": [test, hidden]}


def test_gradescope_results_use_only_specified_keys_and_fence_student_text():
    data = gradescope.results_json(row())
    assert set(data) <= set(gradescope.TOP_LEVEL)
    assert data["output_format"] == data["test_output_format"] == "md"
    assert data["extra_data"]["id"] == "eve" and data["extra_data"]["max_score"] == 10.0
    assert "hidden_output" not in data["extra_data"] and "execution_time" not in json.dumps(data)
    for text in [data["output"], *(test["output"] for test in data["tests"])]:
        fence = text.split("text\n", 1)[0]
        assert set(fence) == {"`"} and ("```" not in text[len(fence):-len(fence)] or len(fence) > 3)
        assert text.endswith("\n" + fence)
    for test in data["tests"]:
        assert set(test) <= set(gradescope.TEST_KEYS)
    assert "HIDDEN PRINT" not in json.dumps(data) and "secret" not in json.dumps(data)


def test_gradescope_fencing_holds_any_run_of_backticks():
    for inner, longest in (("`", 1), ("``", 2), ("`" * 7, 7), ("x\n```\ny", 3), ("plain", 0)):
        text = gradescope.fenced(inner)
        fence = text.split("text\n", 1)[0]
        assert set(fence) == {"`"} and len(fence) == max(3, longest + 1)
        assert text == f"{fence}text\n{inner}\n{fence}"


def test_prairielearn_results_use_only_documented_fields():
    data = prairielearn.from_submission(row())
    assert set(data) <= PRAIRIELEARN_TOP and 0 <= data["score"] <= 1
    for test in data["tests"]:
        assert set(test) <= PRAIRIELEARN_TEST
    assert "HIDDEN PRINT" not in json.dumps(data) and "secret" not in json.dumps(data)
    assert set(prairielearn.not_gradable("x")) <= PRAIRIELEARN_TOP


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "\uff1d1+1",
                                  "\uff0b1", "\uff0d1", "\uff20x", "  =1", "\u3000=1"])
def test_a_csv_cell_never_starts_a_formula(text):
    assert csv_report.cell(text).startswith("'")
    rendered = canvas.render("Conv (1)", 10.0, [canvas.Grade(text, "7", 1.0)])
    (cells,) = [line for line in csv.reader(io.StringIO(rendered, newline="")) if line and line[1] == "7"]
    assert cells[0].startswith("'")


def test_plain_text_cells_are_left_alone():
    assert csv_report.cell("alice") == "alice" and csv_report.cell("a=b") == "a=b"


def test_resume_regrades_a_row_whose_id_now_names_another_file(tmp_path, small_rubric, monkeypatch, capsys):
    """`bob.py` graded, then replaced by a folder `bob/` (the same id): the old row is not the new file's grade."""
    classroom = tmp_path / "class"
    classroom.mkdir()
    buggy = CORRECT.read_text().replace(" + b[f]", "")
    assert buggy != CORRECT.read_text()
    (classroom / "bob.py").write_text(buggy)
    monkeypatch.setattr(cli, "load_rubric", lambda name: small_rubric)
    monkeypatch.setenv("GRADECONV_SANDBOX", "none")
    results = tmp_path / "r.json"
    assert cli.main([str(classroom), "--jobs", "1", "--json", str(results), "--quiet"]) == 0
    (first,) = json.loads(results.read_text())["submissions"]
    assert first["score"] < small_rubric.max_score
    (classroom / "bob.py").unlink()
    (classroom / "bob" / "cs231n").mkdir(parents=True)
    shutil.copy(CORRECT, classroom / "bob" / "cs231n" / "layers.py")
    assert cli.main([str(classroom), "--jobs", "1", "--json", str(results), "--resume", "--quiet"]) == 0
    assert "whose id now names another file" in capsys.readouterr().err
    (again,) = json.loads(results.read_text())["submissions"]
    assert again["id"] == first["id"] == "bob" and again["path"].endswith("bob")
    assert again["score"] == small_rubric.max_score
