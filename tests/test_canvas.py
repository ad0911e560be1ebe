"""grade --canvas-csv: a CSV Canvas's gradebook import accepts, checked cell by cell.

Canvas's format: columns Student, ID, SIS User ID, SIS Login ID, Section, then the
assignment headed "<title> (<id>)"; a Points Possible row; one row per student, matched
by ID (the Canvas user id, here from the bulk-download file names). With Canvas's own
export, only the assignment's column changes.
"""
import csv
import io

import pytest

from gradeconv.platforms import canvas
from gradeconv.submissions import canvas_user_id
from tests.conftest import CORRECT, ROOT
from tests.test_prairielearn import CRASH, gradeconv, write_small_rubric

ASSIGNMENT = "Conv layers (12345)"
BUG = ("\ndef max_pool_forward_naive(x, pool_param):\n    out, cache = _correct_pool(x, pool_param)\n"
       "    return out + 1.0, cache\n")


@pytest.fixture(scope="module")
def canvas_class(tmp_path_factory, small_rubric):
    """A Canvas bulk download: correct, late, crashed, hidden-test failure, formula name; and a rubric."""
    root = tmp_path_factory.mktemp("canvas")
    rubric = write_small_rubric(root / "rubric", small_rubric)
    folder = root / "class"
    folder.mkdir()
    correct = CORRECT.read_text()
    (folder / "smithalice_1001_5001_layers.py").write_text(correct)
    (folder / "jonesbob_LATE_1002_5002_layers.py").write_text(
        correct.replace("def max_pool_forward_naive", "def _correct_pool") + BUG)
    (folder / "crashcarol_1003_5003_layers.py").write_text(correct + "\n" + CRASH)
    (folder / "=evil_1005_5005_layers.py").write_text(correct)
    (folder / "nameless.py").write_text(correct)  # not a Canvas name: no user id
    return root, folder, rubric


def run_grade(root, folder, rubric, *extra):
    done = gradeconv("grade", folder, "--rubric", rubric, "--jobs", 2, "--quiet", "--json", root / "r.json",
                     *extra, cwd=root)
    assert done.returncode == 0, done.stderr
    return done


EXPORT_ROWS = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Homework 1 (111)", "Current Points",
     "Final Points"],
    ["    Points Possible", "", "", "", "", "10.00", "(read only)", "(read only)"],
    ["Smith, Alice", "1001", "S1001", "asmith", "CS231n Section A", "9.00", "9.00", "9.00"],
    ["Jones, Bob", "1002", "S1002", "bjones", "CS231n Section A", "=1+1", "7.50", "7.50"],
    ["Crash, Carol", "1003", "S1003", "ccrash", "CS231n Section B", "", "0.00", "0.00"],
    ["Missing, Dave", "1004", "S1004", "dmissing", "CS231n Section B", "8.50", "8.50", "8.50"],
    ["Student, Test", "1009", "", "test_student", "CS231n Section A", "", "", ""],
]


def export_text(rows, newline="\r\n", bom=True):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return ("\ufeff" if bom else "") + buffer.getvalue()


def test_user_id_comes_from_bulk_download_names():
    assert canvas_user_id("jonesbob_LATE_1002_5002_layers.py") == "1002"
    assert canvas_user_id("smithalice_1001_5001_layers.py") == "1001"
    assert canvas_user_id("alice") is None and canvas_user_id("layers.py") is None


def test_new_import_file(canvas_class):
    root, folder, rubric = canvas_class
    out = root / "canvas.csv"
    done = run_grade(root, folder, rubric, "--canvas-csv", out, "--assignment", ASSIGNMENT)
    assert "without a Canvas user id" in done.stderr and "nameless" in done.stderr
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", ASSIGNMENT]
    max_points = sum(test["points"] for test in __import__("yaml").safe_load(rubric.read_text())["tests"])
    assert rows[1] == ["Points Possible", "", "", "", "", canvas.number(max_points)]
    by_id = {row[1]: row for row in rows[2:]}
    assert set(by_id) == {"1001", "1002", "1003", "1005", ""}
    assert all(len(row) == 6 and row[2:5] == ["", "", ""] for row in rows[2:])
    assert by_id["1001"][0] == "smithalice" and by_id["1001"][5] == canvas.number(max_points)
    assert by_id["1005"][0] == "'=evil"  # a name that would be a formula stays text
    late, crashed = float(by_id["1002"][5]), float(by_id["1003"][5])
    assert 0 < late < max_points  # late: its points as graded (Canvas applies its own late policy)
    assert 0 < crashed < max_points  # crashed max-pool, failed hidden conv test: the pooling backward counts
    assert by_id[""][0] == "nameless"


def test_gradebook_export_without_the_assignment_is_an_error_listing_its_columns(canvas_class):
    root, folder, rubric = canvas_class
    export = root / "export.csv"
    export.write_bytes(export_text(EXPORT_ROWS).encode("utf-8"))
    done = gradeconv("grade", folder, "--rubric", rubric, "--quiet", "--canvas-csv", root / "import.csv",
                     "--assignment", ASSIGNMENT, "--canvas-gradebook", export, cwd=root)
    assert done.returncode == 2 and not (root / "import.csv").exists()
    assert f"no column {ASSIGNMENT!r} in the gradebook export; its assignments: 'Homework 1 (111)'" in done.stderr


def test_gradebook_export_gets_the_column_filled_and_keeps_everything_else(canvas_class):
    root, folder, rubric = canvas_class
    export = root / "export.csv"
    out = root / "import.csv"
    # The column exists (Canvas exports it once the assignment is made): it is filled in place, found by its
    # assignment id even when the title was renamed, and scores are scaled to its Points Possible.
    again = [row[:5] + [cell] + row[5:] for row, cell in
             zip(EXPORT_ROWS, ["Conv layers, renamed (12345)", "10.00", "1.00", "", "", "", ""])]
    export.write_bytes(export_text(again).encode("utf-8"))
    done = run_grade(root, folder, rubric, "--canvas-csv", out, "--assignment", ASSIGNMENT, "--canvas-gradebook", export)
    assert "2 student(s) of the gradebook without a submission" in done.stderr
    assert "not in the gradebook export" in done.stderr and "evil" in done.stderr
    raw = out.read_bytes()
    assert raw.startswith("\ufeff".encode()) and raw.count(b"\r\n") == len(EXPORT_ROWS)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8")[1:], newline="")))
    assert len(rows[0]) == len(again[0]) and rows[0][5] == "Conv layers, renamed (12345)"
    assert rows[1][5] == "10.00"  # points possible as Canvas has it
    scores = {row[1]: row[5] for row in rows[2:]}
    assert float(scores["1001"]) == 10  # full marks: the assignment's 10 points, whatever the rubric's
    assert 0 < float(scores["1002"]) < 10 and 0 < float(scores["1003"]) < 10
    assert scores["1004"] == "" and scores["1009"] == ""  # no submission: no invented zero
    assert [row[:5] + row[6:] for row in rows] == [row[:5] + row[6:] for row in again]  # every other cell as exported
    assert rows[3][6] == "=1+1"  # Homework 1 untouched


@pytest.mark.parametrize("args, message", [
    (["--canvas-csv", "x.csv"], "--canvas-csv needs --assignment"),
    (["--assignment", ASSIGNMENT], "go with --canvas-csv"),
    (["--canvas-csv", "x.csv", "--assignment", ASSIGNMENT, "--canvas-gradebook", "missing.csv"],
     "cannot read the gradebook export"),
])
def test_usage_errors_before_grading(tmp_path, args, message):
    done = gradeconv("grade", ROOT / "submissions" / "alice", *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_not_an_export_is_a_usage_error(tmp_path):
    (tmp_path / "e.csv").write_text("id,score\nalice,3\n")
    done = gradeconv("grade", ROOT / "submissions" / "alice", "--canvas-csv", "x.csv", "--assignment", ASSIGNMENT,
                     "--canvas-gradebook", tmp_path / "e.csv", cwd=tmp_path)
    assert done.returncode == 2 and "not a Canvas gradebook export" in done.stderr
