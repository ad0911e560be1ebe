"""Mistakes a user can make are refused in one line, with status 2, before any student is graded.

Output paths that cannot be written (probed, and the checks hold for root too: a parent
that is a file, a folder where a file goes, a file where a folder goes, a device, a
folder nothing can be created in), an empty class folder, and files in a class folder
that are not submissions (skipped with a line each, never graded as students).

The in-process tests replace grading with a recorder: a refusal must come before it.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gradeconv import cli, output_paths
from gradeconv.submissions import find_submissions, parse_name
from tests.conftest import CORRECT, ROOT

RUBRIC = ROOT / "rubric.yaml"
ASSIGNMENT = "Conv layers (12345)"


def gradeconv(*args, cwd):
    """The CLI of this checkout (not whatever `gradeconv` is installed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


@pytest.fixture
def graded(monkeypatch):
    """Grading replaced by a recorder: the submissions it was asked to grade (and the class protection)."""
    calls = []

    def fake_graded(todo, rubric, args):
        calls.append(("graded", [s.id for s in todo]))
        return iter(())

    def fake_grade_submission(submission, rubric, *rest):
        calls.append(("grade_submission", submission.id))
        raise AssertionError("a submission was graded")

    monkeypatch.setattr(cli, "_graded", fake_graded)
    monkeypatch.setattr(cli, "protect_class", lambda submissions, rubric: calls.append(("protect", len(submissions))))
    monkeypatch.setattr(cli, "grade_submission", fake_grade_submission)
    return calls


@pytest.fixture
def room(tmp_path, monkeypatch):
    """A class of one correct submission, its rubric, a regular file and a folder to aim outputs at; cwd is tmp_path."""
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(CORRECT, folder / "alice.py")
    shutil.copy(RUBRIC, tmp_path / "rubric.yaml")  # a copy: a test that fails must not overwrite the real one
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root: Path) -> dict:
    """Every path below root: each file with its size and modification time (a folder's changes with a probe)."""
    return {str(path.relative_to(root)): "folder" if path.is_dir() and not path.is_symlink()
            else (path.lstat().st_size, path.lstat().st_mtime_ns) for path in sorted(root.rglob("*"))}


def refused(capsys, argv) -> str:
    """Run the CLI in-process; it must return 2 with exactly one line on stderr and nothing on stdout."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("gradeconv: ") and "Traceback" not in err
    return line


GRADE_REFUSALS = [
    (["--json", "afile/r.json"], "gradeconv: afile/r.json: afile is a file, not a folder; choose a path in a folder "
                                 "for --json"),
    (["--json", "adir"], "gradeconv: adir: is a folder; give a file for --json, e.g. adir/results.json"),
    (["--csv", "adir"], "gradeconv: adir: is a folder; give a file for --csv, e.g. adir/gradebook.csv"),
    (["--html", "afile/deeper/report.html"], "gradeconv: afile/deeper/report.html: afile is a file, not a folder"),
    (["--html", "adir"], "gradeconv: adir: is a folder; give a file for --html"),
    (["--feedback-dir", "afile"], "gradeconv: afile: is a file, not a folder; give a folder for --feedback-dir"),
    (["--feedback-dir", "afile/feedback"], "gradeconv: afile/feedback: afile is a file, not a folder"),
    (["--canvas-csv", "adir", "--assignment", ASSIGNMENT], "gradeconv: adir: is a folder; give a file for "
                                                          "--canvas-csv, e.g. adir/import.csv"),
    (["--canvas-csv", "afile/import.csv", "--assignment", ASSIGNMENT], "gradeconv: afile/import.csv: afile is a file"),
    (["--csv", "pipe"], "gradeconv: pipe: is a named pipe (FIFO), which writing --csv would replace; give a "
                        "regular file for --csv"),  # like /dev/null, which a test must never risk replacing
    (["--json", "out/r.json", "--csv", "out/r.json"], "gradeconv: out/r.json: given to both --json and --csv"),
    (["--csv", "class/alice.py"], "gradeconv: class/alice.py: is a submission, which --csv would overwrite"),
    (["--json", "rubric.yaml"], "gradeconv: rubric.yaml: is the rubric, which --json would overwrite"),
    (["--json", "afile"], "gradeconv: afile: exists and is not a gradeconv results file, and --json would overwrite "
                          "it; move it away or give another file for --json"),
    (["--json", "link/r.json"], "gradeconv: link/r.json: link is a dangling symbolic link, not a folder"),
]


@pytest.mark.parametrize("options, message", GRADE_REFUSALS, ids=[" ".join(map(str, o)) for o, _ in GRADE_REFUSALS])
def test_an_output_that_cannot_be_written_is_refused_before_grading(room, capsys, graded, options, message):
    (room / "link").symlink_to(room / "nowhere")
    os.mkfifo(room / "pipe")
    before = snapshot(room)
    line = refused(capsys, ["grade", "class", "--rubric", "rubric.yaml", *options])
    assert line.startswith(message), line
    assert graded == []  # nothing graded, the class not even protected
    assert snapshot(room) == before  # no output, no probe file, no folder made, the class untouched


def test_a_folder_nothing_can_be_created_in_is_refused(room, capsys, graded):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    line = refused(capsys, ["grade", "class", "--rubric", RUBRIC, "--csv", "/proc/gradeconv/grades.csv"])
    assert line.startswith("gradeconv: /proc/gradeconv/grades.csv: cannot write in /proc (")
    assert line.endswith("choose a folder you can write to for --csv")
    assert graded == []


def test_the_user_sees_one_line_and_status_2_from_the_command(tmp_path):
    """The same refusal from the installed command line, with a class that would take long to grade."""
    shutil.copytree(ROOT / "submissions" / "heidi_infinite_loop", tmp_path / "class" / "heidi")
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    run = gradeconv("grade", "class", "--json", "r.json", "--feedback-dir", "afile", cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    assert run.stderr == ("gradeconv: afile: is a file, not a folder; give a folder for --feedback-dir "
                          "(it is created if missing)\n")
    assert snapshot(tmp_path) == before  # not even the --json file grading starts with


def test_outputs_that_can_be_written_pass_and_nothing_is_left_behind(room, capsys, graded):
    """Missing folders are fine (the reports make them); an earlier results file is neither changed nor refused."""
    cli.main(["grade", "class", "--rubric", str(RUBRIC), "--json", "results.json", "--quiet"])
    (room / "results.json").touch()
    os.utime(room / "results.json", ns=(1, 1))
    earlier = (room / "results.json").read_bytes()
    graded.clear()
    capsys.readouterr()
    before = snapshot(room)
    for path, example in [(room / "results.json", "r.json"), (room / "new" / "deeper" / "r.json", "r.json")]:
        output_paths.check_file(path, "--json", example)
    output_paths.check_folder(room / "new" / "feedback", "--feedback-dir")
    output_paths.check_folder(room / "adir", "--feedback-dir")
    output_paths.check_results_file(room / "results.json")
    assert snapshot(room) == before and (room / "results.json").read_bytes() == earlier
    status = cli.main(["grade", "class", "--rubric", str(RUBRIC), "--json", "results.json", "--resume",
                       "--csv", "new/g.csv", "--feedback-dir", "new/fb", "--quiet"])
    assert status == 0, capsys.readouterr()
    assert graded == [("protect", 1), ("graded", ["alice"])]


def test_canvas_csv_may_fill_the_gradebook_export_in_place(room, capsys, graded):
    export = room / "export.csv"
    export.write_text(f"Student,ID,SIS User ID,SIS Login ID,Section,{ASSIGNMENT}\n    Points Possible,,,,,\n")
    status = cli.main(["grade", "class", "--rubric", str(RUBRIC), "--quiet", "--canvas-csv", str(export),
                       "--assignment", ASSIGNMENT, "--canvas-gradebook", str(export)])
    assert status == 0, capsys.readouterr()
    assert ASSIGNMENT in export.read_text()
    line = refused(capsys, ["grade", "class", "--rubric", RUBRIC, "--csv", export, "--canvas-csv", "import.csv",
                            "--assignment", ASSIGNMENT, "--canvas-gradebook", export])
    assert line.startswith(f"gradeconv: {export}: is the Canvas gradebook export, which --csv would overwrite")


@pytest.mark.parametrize("command, option", [("gradescope", "--submission"), ("prairielearn", "--student"),
                                             ("gradescope-zip", None)])
def test_platform_outputs_are_refused_before_grading(room, capsys, graded, monkeypatch, command, option):
    monkeypatch.setattr(cli.gradescope_zip, "build", lambda *args, **kwargs: graded.append(("build", args)))
    where = ["--results"] if option else ["-o"]
    source = [option, room / "class"] if option else []
    for target, message in [("adir", "gradeconv: adir: is a folder; give a file for "),
                            ("afile/out", "gradeconv: afile/out: afile is a file, not a folder")]:
        line = refused(capsys, [command, *source, *where, target])
        assert line.startswith(message), line
    assert graded == [] and sorted(p.name for p in room.iterdir()) == ["adir", "afile", "class", "rubric.yaml"]
    assert list((room / "adir").iterdir()) == []


# --- what counts as a submission --------------------------------------------------------------------------------


@pytest.fixture
def mixed_class(tmp_path):
    """A Canvas-style class folder with students' work and the files that come with it."""
    folder = tmp_path / "class"
    folder.mkdir()
    correct = CORRECT.read_text()
    (folder / "alice.py").write_text(correct)
    with zipfile.ZipFile(folder / "bob.zip", "w") as bundle:
        bundle.writestr("cs231n/layers.py", correct)
    (folder / "carol" / "cs231n").mkdir(parents=True)
    (folder / "carol" / "cs231n" / "layers.py").write_text(correct)
    (folder / "dave").mkdir()
    (folder / "dave" / "layer.py").write_text(correct)  # the wrong name: still dave's row, saying so
    (folder / "erin").mkdir()
    (folder / "erin" / "hw.ipynb").write_text("{}")  # only a notebook: still erin's row
    (folder / "smithjane_LATE_1001_2001_layers.py").write_text(correct)
    (folder / "smithjane_1001_2002_assignment.ipynb").write_text("{}")
    (folder / "Frank.PY").write_text(correct)
    (folder / "readme.txt").write_text("instructions")
    (folder / "data.csv").write_text("a,b\n")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n")
    (folder / "images").mkdir()
    (folder / "images" / "plot.png").write_bytes(b"\x89PNG\r\n")
    (folder / "empty").mkdir()
    (folder / "gone").symlink_to(tmp_path / "nowhere")
    (folder / "__MACOSX").mkdir()
    (folder / ".DS_Store").write_text("")
    return folder


def test_only_submissions_are_graded_and_the_rest_is_skipped_with_a_reason(mixed_class):
    found = find_submissions([mixed_class])
    assert [(s.id, s.path.name, s.late) for s in found.submissions] == [
        ("Frank", "Frank.PY", False), ("alice", "alice.py", False), ("bob", "bob.zip", False),
        ("carol", "carol", False), ("dave", "dave", False), ("erin", "erin", False),
        ("smithjane", "smithjane_LATE_1001_2001_layers.py", True)]
    assert {s.path.name: s.reason for s in found.skipped} == {
        "data.csv": "not a .py file, a .zip or a folder",
        "empty": "a folder without any .py, .zip or .ipynb file",
        "gone": "a dangling symbolic link",
        "images": "a folder without any .py, .zip or .ipynb file",
        "photo.png": "not a .py file, a .zip or a folder",
        "readme.txt": "not a .py file, a .zip or a folder",
        "smithjane_1001_2002_assignment.ipynb": "a notebook, not graded (the .py file, .zip or folder holding the "
                                                "graded module is)",
    }
    assert found.empty == []


@pytest.mark.parametrize("name, expected", [
    ("alice.py", "alice"), ("alice.PY", "alice"), ("bob.zip", "bob"), ("bob.ZIP", "bob"), ("erin.ipynb", "erin"),
    ("smithjane_1001_2002_assignment.ipynb", "smithjane"), ("carol", "carol"), ("dan.tar.gz", "dan.tar.gz"),
])
def test_ids_never_keep_py_zip_or_ipynb(name, expected):
    assert parse_name(name)[0] == expected


def test_skipped_files_are_named_on_stderr_and_not_graded(mixed_class, capsys, graded, tmp_path):
    assert cli.main(["grade", str(mixed_class), "--rubric", str(RUBRIC)]) == 0
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith("gradeconv: skipped ")]
    assert skipped == [f"gradeconv: skipped {mixed_class / name}: {reason}" for name, reason in [
        ("data.csv", "not a .py file, a .zip or a folder"), ("empty", "a folder without any .py, .zip or .ipynb file"),
        ("gone", "a dangling symbolic link"), ("images", "a folder without any .py, .zip or .ipynb file"),
        ("photo.png", "not a .py file, a .zip or a folder"), ("readme.txt", "not a .py file, a .zip or a folder"),
        ("smithjane_1001_2002_assignment.ipynb",
         "a notebook, not graded (the .py file, .zip or folder holding the graded module is)")]]
    assert graded[-1] == ("graded", ["Frank", "alice", "bob", "carol", "dave", "erin", "smithjane"])
    assert cli.main(["grade", str(mixed_class), "--rubric", str(RUBRIC), "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: nothing but errors


def test_many_skipped_files_end_in_a_count(tmp_path, capsys, graded):
    shutil.copy(CORRECT, tmp_path / "alice.py")
    for number in range(25):
        (tmp_path / f"scan{number:02}.jpg").write_bytes(b"")
    assert cli.main(["grade", str(tmp_path), "--rubric", str(RUBRIC)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert lines[:10] == [f"gradeconv: skipped {tmp_path / f'scan{n:02}.jpg'}: not a .py file, a .zip or a folder"
                          for n in range(10)]
    assert lines[10:] == ["gradeconv: skipped 15 more files or folders that are not submissions "
                          "(a .py file, a .zip or a folder per student)"]


def test_an_empty_class_is_an_error_before_grading(tmp_path, capsys, graded):
    (tmp_path / "empty").mkdir()
    line = refused(capsys, ["grade", tmp_path / "empty", "--rubric", RUBRIC, "--json", tmp_path / "r.json"])
    assert line == (f"gradeconv: {tmp_path / 'empty'}: no submissions found; "
                    "a class folder holds a .py file, a .zip or a folder per student")
    (tmp_path / "empty" / "readme.txt").write_text("x")
    (tmp_path / "empty" / "scores.csv").write_text("x")
    line = refused(capsys, ["grade", tmp_path / "empty", "--rubric", RUBRIC, "--json", tmp_path / "r.json"])
    assert line.startswith(f"gradeconv: {tmp_path / 'empty'}: no submissions found (2 skipped: readme.txt, "
                           "scores.csv); ")
    line = refused(capsys, ["grade", tmp_path / "empty" / "readme.txt", "--rubric", RUBRIC])
    assert line == (f"gradeconv: {tmp_path / 'empty' / 'readme.txt'}: not a submission (not a .py file, a .zip or "
                    "a folder); give a .py file, a .zip, or a folder of them")
    assert graded == [] and not (tmp_path / "r.json").exists()


def test_an_empty_folder_among_others_is_named_and_the_rest_graded(tmp_path, capsys, graded):
    (tmp_path / "section1").mkdir()
    (tmp_path / "section2").mkdir()
    shutil.copy(CORRECT, tmp_path / "section2" / "alice.py")
    assert cli.main(["grade", str(tmp_path / "section1"), str(tmp_path / "section2"), "--rubric", str(RUBRIC)]) == 0
    assert f"gradeconv: skipped {tmp_path / 'section1'}: no submissions in this folder\n" in capsys.readouterr().err
    assert graded[-1] == ("graded", ["alice"])


def test_a_skipped_file_is_graded_for_real_by_nobody(mixed_class, tmp_path):
    """End to end: the JSON holds the students only, and stderr says what was skipped."""
    for name in ("bob.zip", "carol", "dave", "erin", "Frank.PY", "smithjane_LATE_1001_2001_layers.py"):
        path = mixed_class / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run = gradeconv("grade", mixed_class, "--json", tmp_path / "r.json", "--jobs", 1, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"gradeconv: skipped {mixed_class / 'readme.txt'}: not a .py file, a .zip or a folder" in run.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["submissions"]
    assert [(row["id"], row["score"]) for row in rows] == [("alice", 100)]
