"""Feedback sized for a person (issue 20, items 4 and 5): `gradeconv check`'s output, submission-level
problems said once, and the instructors' files (HTML report, Canvas, PrairieLearn)."""
import json
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from gradeconv.judging import problems
from gradeconv.platforms import canvas, prairielearn
from gradeconv.reports import feedback, html_report, terminal
from tests.conftest import CORRECT, ROOT

FRANK = ROOT / "submissions" / "frank_missing_bias"
GRACE = ROOT / "submissions" / "grace_syntax_error.py"
BIAS = "(exactly the bias b is missing)"


def gradeconv(*args, columns="40", cwd=None):
    """`gradeconv ARGS` piped (never a terminal), at a narrow COLUMNS unless told."""
    env = dict(os.environ, COLUMNS=columns)
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def frank_text():
    return gradeconv("check", FRANK)


@pytest.fixture(scope="module")
def frank_json():
    run = gradeconv("check", FRANK, "--json")
    assert run.returncode == 1, run.stderr
    return json.loads(run.stdout)


# ---------------------------------------------------------------- check: the text a student reads

def test_check_on_one_missing_bias_fits_in_60_lines_with_one_reproduction(frank_text):
    assert frank_text.returncode == 1, frank_text.stderr
    lines = frank_text.stdout.splitlines()
    assert len(lines) <= 60, len(lines)
    assert frank_text.stdout.count("reproduce it (paste") == 1  # one per failing function, not five
    assert frank_text.stdout.count("import numpy as np") == 1
    assert len([line for line in lines if line.startswith("FAIL ")]) == 5
    assert "dout" not in frank_text.stdout  # a forward's reproduction has no upstream gradient
    # the one shown is the smallest case: 1x1 inputs
    assert "x = np.array([[[[0.1257302210933933]]]])" in frank_text.stdout


def test_check_never_hard_wraps_when_piped_at_40_columns(frank_text):
    lines = frank_text.stdout.splitlines()
    wrong = [line for line in lines if "out is wrong" in line]
    assert len(wrong) == 5 and all(line.rstrip().endswith(BIAS) for line in wrong)  # whole sentences
    assert max(map(len, lines)) > 80  # long lines are kept whole, the terminal wraps them if it must
    assert any(line.startswith("     smallest failing case: x shape (1, 1, 1, 1), w shape (1, 1, 1, 1), stride 1, pad 0")
               for line in lines)


def test_reproductions_draw_large_arrays_and_pass_no_unused_argument(frank_json):
    tests = {t["name"]: t for t in frank_json["submissions"][0]["tests"]}
    notebook = tests["conv forward: the notebook's example"]["extra_data"]["reproduce"]
    assert "x = np.linspace(-0.1, 0.5, num=96).reshape((2, 3, 4, 4))" in notebook
    assert "w = np.linspace(-0.2, 0.3, num=144).reshape((3, 3, 4, 4))" in notebook
    assert "dout" not in notebook
    non_square = tests["conv forward: non-square inputs and kernels (H != W)"]["extra_data"]["reproduce"]
    assert "rng = np.random.default_rng(" in non_square and "x = rng.standard_normal((1, 2, 5, 7))" in non_square
    assert "dout" not in non_square
    for snippet in (notebook, non_square):  # no array literal above a few dozen values
        for literal in re.findall(r"np\.array\((\[.*?\])\)", snippet):
            assert literal.count(",") + 1 <= 36, literal[:80]


def test_drawn_reproduction_still_fails_on_the_bug_and_passes_on_a_correct_file(frank_json, tmp_path):
    tests = {t["name"]: t for t in frank_json["submissions"][0]["tests"]}
    snippet = tests["conv forward: non-square inputs and kernels (H != W)"]["extra_data"]["reproduce"]
    for folder, fails in ((FRANK, True), (CORRECT.parent.parent, False)):
        run = subprocess.run([sys.executable, "-c", snippet], cwd=folder, capture_output=True, text=True, timeout=60)
        assert (run.returncode != 0) == fails, run.stderr
        assert ("AssertionError" in run.stderr) == fails and ("no difference found" in run.stdout) != fails


def test_brief_gives_one_line_per_failing_test():
    run = gradeconv("check", FRANK, "--brief")
    assert run.returncode == 1
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert [line.startswith("FAIL conv forward") for line in lines[:-1]] == [True] * 5
    assert all(BIAS in line for line in lines[:-1])
    assert lines[-1] == "visible tests: 68/100 points"
    assert "PASS" not in run.stdout and "reproduce" not in run.stdout


def test_function_checks_only_that_function_and_names_the_others_when_unknown():
    run = gradeconv("check", FRANK, "--function", "conv_backward_naive", "--brief")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "visible tests: 37/37 points"  # conv backward's five tests
    unknown = gradeconv("check", FRANK, "--function", "conv_forward")
    assert unknown.returncode == 2
    assert "--function conv_forward: no visible test" in unknown.stderr
    assert "conv_forward_naive, conv_backward_naive, max_pool_forward_naive" in unknown.stderr


def test_json_is_the_result_on_stdout(frank_json):
    assert {"gradeconv_version", "rubric", "submissions"} <= set(frank_json)
    (submission,) = frank_json["submissions"]
    assert submission["score"] == 68 and submission["max_score"] == 100
    assert submission["hidden_max_score"] == 0 and submission["problem"] is None
    assert {t["extra_data"]["description"] for t in submission["tests"]} >= {
        "conv_forward_naive: out checked on 1 fixed case"}


def test_check_names_the_points_of_hidden_tests(tmp_path):
    text = (ROOT / "rubric.yaml").read_text()
    hidden = text.replace('  - name: "max-pool forward: non-square inputs and windows"\n',
                          '  - name: "max-pool forward: non-square inputs and windows"\n    visibility: hidden\n')
    assert hidden != text
    (tmp_path / "hidden.yaml").write_text(hidden)
    run = gradeconv("check", CORRECT, "--rubric", tmp_path / "hidden.yaml", "--function", "max_pool_forward_naive")
    assert run.returncode == 0, run.stderr
    assert ("visible tests: 5/5 points; 7 more points in hidden tests are graded by your instructor"
            in run.stdout.splitlines())


# ---------------------------------------------------------------- submission-level problems

def test_a_syntax_error_is_one_line_with_its_source_and_caret_and_exit_2():
    run = gradeconv("check", GRACE)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines[0] == f"gradeconv: {GRACE}: SyntaxError in layers.py:45: expected ':'"
    assert lines[1] == "    def max_pool_forward_naive(x, pool_param)"
    assert lines[2] == "    " + " " * len("def max_pool_forward_naive(x, pool_param)") + "^"
    assert len(lines) == 3 and run.stderr.count("SyntaxError") == 1


def test_the_wrong_module_is_said_once(tmp_path):
    layers = tmp_path / "layers.py"
    layers.write_bytes(CORRECT.read_bytes())
    run = gradeconv("check", layers, "--rubric", "assignment3-layers")
    assert run.returncode == 2
    assert run.stderr.count("this is not rnn_layers.py") == 1
    assert "has no function" not in run.stderr + run.stdout
    assert len(run.stderr.splitlines()) == 1


def test_module_problems_without_running_anything():
    syntax = problems.module_problem(b"import numpy as np\n\nx = (1,\ndef f(:\n", "layers.py", ["f"])
    assert syntax.outcome == "error" and syntax.headline.startswith("SyntaxError in layers.py:")
    assert len(syntax.message.splitlines()) == 3 and syntax.message.splitlines()[2].strip() == "^"
    assert problems.module_problem(b"\x00", "layers.py", ["f"]).outcome == "error"
    wrong = problems.module_problem(b"def affine_forward(x):\n    pass\n", "rnn_layers.py",
                                    ["rnn_step_forward", "rnn_forward", "lstm_forward", "lstm_backward"], "layers.py")
    assert wrong.message.startswith("this is not rnn_layers.py: layers.py defines none of its functions "
                                    "(rnn_step_forward, rnn_forward, lstm_forward, ...)")
    same_name = problems.module_problem(b"x = 1\n", "layers.py", ["f"], "layers.py")
    assert same_name.message.startswith("layers.py defines none of the functions this rubric grades")
    for fine in (b"def f(): pass\n", b"from helpers import *\n", b"if True:\n    def f(): pass\n",
                 b"f = lambda: 1\n", b"globals()['f'] = print\n", b"def __getattr__(name): return print\n",
                 b"try:\n    from a import f\nexcept ImportError:\n    pass\n"):
        assert problems.module_problem(fine, "layers.py", ["f"]) is None, fine


def _problem_row(problem="SyntaxError in layers.py:3: expected ':'\n    def f(x)\n            ^"):
    tests = [{"name": f"test {n}", "number": str(n), "score": 0.0, "max_score": 5.0, "status": "failed",
              "output": problem.splitlines()[0], "visibility": "visible", "tags": [],
              "extra_data": {"function": "f", "outcome": "error"}} for n in range(1, 16)]
    return {"id": "grace", "late": False, "path": "grace.py", "graded": True, "score": 0.0, "max_score": 75.0,
            "execution_time": 0.1, "output": problem, "sandbox": None, "problem": problem, "tests": tests}


def test_class_reports_say_a_submission_problem_once_per_student():
    row = _problem_row()
    console = Console(record=True, width=200)
    terminal.gradebook(console, [row])
    assert console.export_text().count("SyntaxError") == 1
    text = feedback.render(row)
    assert text.count("SyntaxError in layers.py:3") == 2  # the problem block and the notes: never per test
    assert text.count("## [FAIL]") == 15
    page = html_report.render([row], ["test 1"], "CS231n A2", date="2025-05-01")
    section = page[page.index('<section class="student"'):]
    assert section.count("SyntaxError in layers.py:3") == 2  # the problem block and the notes
    assert section.count('class="failure"') == 1


# ---------------------------------------------------------------- the HTML report

def _row(name, score, failing=(), diagnosis=None):
    tests = [{"name": test, "number": str(n), "score": 0.0 if test in failing else 10.0, "max_score": 10.0,
              "status": "failed" if test in failing else "passed", "output": "out is wrong" if test in failing else "passed",
              "visibility": "visible", "tags": [],
              "extra_data": {"function": "f", "outcome": "wrong_value" if test in failing else "passed",
                             "diagnosis": diagnosis if test in failing else None}}
             for n, test in enumerate(["a", "b"], 1)]
    return {"id": name, "late": False, "path": name, "graded": True, "score": score, "max_score": 20.0,
            "execution_time": 0.1, "output": "", "tests": tests}


def test_html_report_has_title_date_and_a_reason_column():
    rows = [_row("alice", 20.0), _row("bob", 10.0, ["a"], "add the bias b[f]"), _problem_row()]
    page = html_report.render(rows, ["a", "b"], "CS231n 2025: assignment 2", date="2025-05-01")
    assert "<title>CS231n 2025: assignment 2</title>" in page and "<h1>CS231n 2025: assignment 2</h1>" in page
    assert "graded 2025-05-01" in page
    table = page[page.index('<table id="student-table"'):]
    table = table[:table.index("</table>")]
    assert "<button type=\"button\">reason</button>" in table
    assert ">add the bias b[f]</td>" in table
    assert ">SyntaxError in layers.py:3: expected &#x27;:&#x27;</td>" in table
    assert table.count("<tr>") == 1 + 3


def test_html_report_title_comes_from_the_rubric_or_the_option(tmp_path):
    from types import SimpleNamespace
    rubric = SimpleNamespace(tests=[], path="/somewhere/rubric.yaml", title="CS231n: conv layers")
    html_report.write(tmp_path / "a.html", rubric, [_row("alice", 20.0)])
    assert "<h1>CS231n: conv layers</h1>" in (tmp_path / "a.html").read_text()
    html_report.write(tmp_path / "b.html", rubric, [_row("alice", 20.0)], "Spring 2025, A2")
    assert "<h1>Spring 2025, A2</h1>" in (tmp_path / "b.html").read_text()
    assert "/somewhere" not in (tmp_path / "a.html").read_text().split("<h2")[0]


def test_pass_rate_bars_are_coloured_by_rate():
    colours = [html_report.rate_colour(rate) for rate in (10, 49, 50, 79, 80, 99, 100)]
    assert colours[0] == colours[1] and colours[2] == colours[3] and colours[4] == colours[5]
    assert len(set(colours)) == 4


# ---------------------------------------------------------------- Canvas

EXPORT = ("Student,ID,SIS User ID,SIS Login ID,Section,Conv layers (555),Homework 1 (111)\n"
          "Points Possible,,,,,50,10\n"
          "\"Smith, Ann\",1001,,,A,,\n"
          "\"Doe, Bo\",1002,,,A,,\n")


def test_canvas_scores_are_scaled_to_the_exports_points_possible():
    rows = [canvas.Grade("smith", "1001", 80.0), canvas.Grade("doe", "1002", None)]
    text, report = canvas.fill(EXPORT, "Conv layers (555)", 100.0, rows)
    lines = text.splitlines()
    assert lines[1] == "Points Possible,,,,,50,10"
    assert lines[2] == '"Smith, Ann",1001,,,A,40,'
    assert lines[3] == '"Doe, Bo",1002,,,A,,'  # not graded: empty, never 0
    text, _ = canvas.fill(EXPORT, "Conv layers (555)", 100.0, rows, points_possible=20.0)
    assert text.splitlines()[2] == '"Smith, Ann",1001,,,A,16,'


def test_canvas_new_import_is_scaled_to_points_possible():
    text = canvas.render("Conv layers", 100.0, [canvas.Grade("smith", "1001", 75.0)], points_possible=10.0)
    assert text.splitlines()[1:] == ["Points Possible,,,,,10", "smith,1001,,,,7.5"]


def test_an_assignment_not_in_the_export_is_an_error_listing_the_columns():
    with pytest.raises(canvas.CanvasError) as error:
        canvas.fill(EXPORT, "Pool layers", 100.0, [])
    message = str(error.value)
    assert "no column 'Pool layers'" in message
    assert "'Conv layers (555)', 'Homework 1 (111)'" in message


def test_canvas_names_drop_the_suffix_of_a_second_file(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("smith_1001_1_layers.py", "smith_1001_2_layers.py"):
        (folder / name).write_bytes(GRACE.read_bytes())
    run = gradeconv("grade", folder, "--jobs", 1, "--quiet", "--canvas-csv", tmp_path / "import.csv",
                    "--assignment", "Conv layers", "--points-possible", 10, columns="200")
    assert run.returncode == 0, run.stderr
    rows = (tmp_path / "import.csv").read_text().splitlines()
    assert rows[1] == "Points Possible,,,,,10"
    assert rows[2:] == ["smith,1001,,,,0"]


def test_canvas_options_are_checked_before_grading(tmp_path):
    (tmp_path / "export.csv").write_text(EXPORT)
    run = gradeconv("grade", GRACE, "--canvas-csv", tmp_path / "out.csv", "--canvas-gradebook",
                    tmp_path / "export.csv", "--assignment", "Nope (9)", columns="200")
    assert run.returncode == 2 and "its assignments: 'Conv layers (555)', 'Homework 1 (111)'" in run.stderr
    run = gradeconv("grade", GRACE, "--canvas-csv", tmp_path / "out.csv", "--assignment", "A",
                    "--points-possible", "-3", columns="200")
    assert run.returncode == 2 and "--points-possible must be a positive number" in run.stderr


# ---------------------------------------------------------------- PrairieLearn

def test_prairielearn_shows_heat_maps_as_images_and_descriptions(frank_json):
    results = prairielearn.from_submission(frank_json["submissions"][0])
    failing = [test for test in results["tests"] if test["points"] < test["max_points"]]
    assert len(failing) == 5
    for test in failing:
        (image,) = test["images"]
        assert image["url"].startswith("data:image/png;base64,") and "|got - expected| of out" in image["label"]
    assert all("images" not in test for test in results["tests"] if test["points"] == test["max_points"])
    assert all(test["description"].startswith(("conv_", "max_pool_")) and "checked on" in test["description"]
               for test in results["tests"])
    assert len(prairielearn.encoded(prairielearn.fit(results))) < prairielearn.MAX_BYTES


def test_prairielearn_drops_pictures_before_words_to_stay_under_1_mb(frank_json):
    results = prairielearn.from_submission(frank_json["submissions"][0])
    image = next(test["images"][0] for test in results["tests"] if test.get("images"))
    many = dict(results, tests=[dict(results["tests"][0], name=f"t{n}", images=[image], output="x" * 2000)
                                for n in range(200)])
    assert len(prairielearn.encoded(many)) > prairielearn.MAX_BYTES
    fitted = prairielearn.fit(many)
    assert len(prairielearn.encoded(fitted)) < prairielearn.MAX_BYTES
    assert 0 < sum("images" in test for test in fitted["tests"]) < 200
    assert all(test["output"] == "x" * 2000 for test in fitted["tests"])  # the words are kept whole
    assert "Some pictures were left out" in fitted["message"]
