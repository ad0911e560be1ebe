"""Containment at the edges: staging, resuming, the batch pool and the reports.

A submission cannot bring files in through links, an earlier results file with
another rubric or version is not trusted, one submission that kills or hangs its
grading process costs only its own row, and student text in reports stays quoted.
"""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import gradeconv
from gradeconv import batch, submissions
from gradeconv import rubric as rubrics
from gradeconv.reports import feedback, json_report, terminal
from gradeconv.sandbox.staging import remove, stage_module
from gradeconv.submissions import NotRegularFile, Submission, SubmissionError, Unpacked, discover, find_module
from tests.conftest import CORRECT, ROOT, checkout_env

REFERENCE = ROOT / "reference" / "layers.py"
FUNCTIONS = ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive")


def student(tmp_path: Path, name: str = "student") -> Path:
    """A submission folder holding a copy of the correct cs231n/layers.py; returns its cs231n folder."""
    folder = tmp_path / name / "cs231n"
    folder.mkdir(parents=True)
    shutil.copyfile(CORRECT, folder / "layers.py")
    return folder


def every_file(root: Path) -> list[Path]:
    return [Path(folder) / name for folder, dirs, files in os.walk(root) for name in dirs + files]


# --- staging ---------------------------------------------------------------------------------------------------

def test_staging_copies_regular_files_only_and_reports_the_rest(tmp_path):
    folder = student(tmp_path)
    os.symlink(REFERENCE, folder / "helper.py")
    os.symlink("/etc/passwd", folder / "passwd.py")
    os.mkfifo(folder / "pipe.py")
    os.symlink(ROOT / "reference", folder / "tools.py")  # a linked folder with a .py name
    os.symlink(ROOT / "reference", folder / "reference")
    (folder / "utils.py").write_text("HELPERS = 1\n")
    stage = stage_module(find_module(tmp_path / "student", "layers.py"), "cs231n", "layers.py", own_helper=False)
    try:
        assert stage.skipped == ("helper.py (a symbolic link)", "passwd.py (a symbolic link)",
                                 "pipe.py (a named pipe (FIFO))", "tools.py (a symbolic link)")
        staged = stage.package_dir
        assert sorted(p.name for p in staged.iterdir()) == ["__init__.py", "im2col.py", "layers.py", "utils.py"]
        assert (staged / "layers.py").read_bytes() == CORRECT.read_bytes()
        for path in every_file(stage.root):
            mode = os.lstat(path).st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), path
            assert not stat.S_ISREG(mode) or path.read_bytes() != REFERENCE.read_bytes(), path
    finally:
        remove(stage)


def test_a_link_or_fifo_swapped_in_after_the_check_is_not_read(tmp_path, monkeypatch):
    """lstat is fooled on purpose: O_NOFOLLOW and the fstat of the open file still refuse, without blocking."""
    regular = tmp_path / "regular.py"
    regular.write_text("x = 1\n")
    os.symlink(REFERENCE, tmp_path / "link.py")
    os.mkfifo(tmp_path / "fifo.py")
    real_stat = os.stat
    monkeypatch.setattr(submissions.os, "stat", lambda path, **kwargs: real_stat(regular))
    with pytest.raises(NotRegularFile, match="unreadable"):
        submissions.read_regular_file(tmp_path / "link.py", 1 << 20)
    with pytest.raises(NotRegularFile, match="named pipe"):
        submissions.read_regular_file(tmp_path / "fifo.py", 1 << 20)
    monkeypatch.undo()
    assert submissions.read_regular_file(regular, 1 << 20) == b"x = 1\n"
    with pytest.raises(NotRegularFile, match="larger than"):
        submissions.read_regular_file(REFERENCE, 100)


def test_a_graded_module_that_is_a_link_is_refused(tmp_path, small_rubric):
    folder = tmp_path / "linked" / "cs231n"
    folder.mkdir(parents=True)
    os.symlink(CORRECT, folder / "layers.py")
    message = "layers.py is a symbolic link; submit the file itself"
    with pytest.raises(SubmissionError, match=message):
        find_module(tmp_path / "linked", "layers.py")
    os.symlink(CORRECT, tmp_path / "single.py")
    with pytest.raises(SubmissionError, match="single.py is a symbolic link; submit the file itself"):
        with Unpacked(Submission("single", tmp_path / "single.py"), "layers.py"):
            pass
    result = gradeconv.grade(tmp_path / "linked", small_rubric)[0]
    assert result.score == 0 and message in result.output


def test_a_module_inside_a_linked_folder_is_not_found(tmp_path):
    root = tmp_path / "sneaky"
    root.mkdir()
    os.symlink(ROOT / "submissions" / "alice" / "cs231n", root / "cs231n")
    with pytest.raises(SubmissionError, match=r"no layers.py found \(found: no .py files\)"):
        find_module(root, "layers.py")
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True)
    shutil.copyfile(CORRECT, deep / "layers.py")
    assert find_module(root, "layers.py") == deep / "layers.py"  # the deeper real file, not the shallower link


def test_zip_link_members_are_not_extracted(tmp_path, monkeypatch):
    def link_member(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        return info

    archive = tmp_path / "zed.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("cs231n/layers.py", CORRECT.read_text())
        bundle.writestr(link_member("cs231n/helper.py"), str(REFERENCE))
    with Unpacked(Submission("zed", archive), "layers.py") as module:
        assert sorted(p.name for p in module.parent.iterdir()) == ["layers.py"]
    only_link = tmp_path / "yan.zip"
    with zipfile.ZipFile(only_link, "w") as bundle:
        bundle.writestr(link_member("cs231n/layers.py"), str(CORRECT))
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with pytest.raises(SubmissionError, match="no layers.py found"):
        with Unpacked(Submission("yan", only_link), "layers.py"):
            pass
    assert list(private.iterdir()) == []  # no unpacked folder is left behind


def test_a_single_file_in_a_class_folder_is_staged_without_the_other_students_files(tmp_path):
    shutil.copyfile(CORRECT, tmp_path / "amy_1_2_layers.py")
    (tmp_path / "ben_3_4_layers.py").write_text("SECRET = 'ben'\n")
    found = {s.id: s for s in discover([tmp_path])}
    with Unpacked(found["amy"], "layers.py") as module:
        assert [p.name for p in module.parent.iterdir()] == ["amy_1_2_layers.py"]
        stage = stage_module(module, "cs231n", "layers.py", own_helper=False)
    try:
        assert sorted(p.name for p in stage.package_dir.iterdir()) == ["__init__.py", "im2col.py", "layers.py"]
    finally:
        remove(stage)


STUB = '''
import sys


def _reference():
    """The trusted reference, if staging let it in through helper.py (its own imports patched up)."""
    from cs231n import im2col, scratch
    sys.modules.setdefault("reference", type(sys)("reference"))
    sys.modules["reference.im2col"], sys.modules["reference.scratch"] = im2col, scratch
    from cs231n import helper
    return helper
'''
STUB += "".join(f"\n\ndef {name}(*args):\n    return _reference().{name}(*args)\n" for name in FUNCTIONS)


@pytest.mark.parametrize("how", ["copied", "linked"])
def test_the_reference_linked_in_as_a_helper_earns_nothing(how, tmp_path, small_rubric):
    """The attack works when the files are real copies (so the test can fail), and earns 0 through links."""
    folder = tmp_path / "attack" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(STUB)
    place = shutil.copyfile if how == "copied" else os.symlink
    place(REFERENCE, folder / "helper.py")
    place(ROOT / "reference" / "scratch.py", folder / "scratch.py")
    result = gradeconv.grade(tmp_path / "attack", small_rubric)[0]
    if how == "copied":
        assert result.score == small_rubric.max_score, [t.output for t in result.tests]
    else:
        assert result.score == 0, [t.output for t in result.tests]


# --- resume ----------------------------------------------------------------------------------------------------

def fake_row(score: float) -> dict:
    return {"id": "alice", "late": False, "path": "alice", "score": score, "max_score": 100.0,
            "execution_time": 0.0, "output": "from an earlier run", "tests": []}


@pytest.mark.parametrize("earlier, kept, said", [
    ({}, True, None),
    ({"rubric": {"path": "rubric.yaml", "sha256": "0" * 64}}, False, "another rubric (sha256 0000"),
    ({"gradeconv_version": "0.0.1"}, False, "another gradeconv version (0.0.1, now"),
    ({"score": 1234}, False, "regrading 1 malformed or repeated row"),
    ({"id": 7}, False, "regrading 1 malformed or repeated row"),
], ids=["same", "other_rubric", "other_version", "impossible_score", "bad_id"])
def test_resume_trusts_only_rows_of_the_same_rubric_and_version(earlier, kept, said, tmp_path):
    folder = tmp_path / "class"
    shutil.copytree(ROOT / "submissions" / "alice", folder / "alice")
    rubric = rubrics.load(ROOT / "rubric.yaml")
    row = dict(fake_row(37.0), path=str(folder / "alice"))  # the same file: --resume keeps only its own rows
    row.update({key: value for key, value in earlier.items() if key in row})
    document = json_report.document(rubric, [row])
    document.update({key: value for key, value in earlier.items() if key in document})
    results = tmp_path / "r.json"
    results.write_text(json.dumps(document))
    run = subprocess.run([sys.executable, "-m", "gradeconv", "grade", folder, "--rubric", ROOT / "rubric.yaml",
                          "--json", results, "--resume", "--jobs", "1", "--quiet"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120, env=checkout_env())
    assert run.returncode == 0, run.stderr
    rows = json.loads(results.read_text())["submissions"]
    assert [r["id"] for r in rows] == ["alice"]
    assert rows[0]["score"] == (37.0 if kept else 100.0)
    if said is None:
        assert run.stderr == ""
    else:
        assert said in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_read_finished_keeps_only_well_formed_rows_once(tmp_path, default_rubric):
    good, warnings = fake_row(50.0), []
    rows = [good, dict(good), {"id": "x"}, "row", dict(good, id="bob", tests=[{"name": 1}]),
            dict(good, id="nan", score=float("nan")), dict(good, id="flag", score=True)]
    path = tmp_path / "r.json"
    json_report.write(path, default_rubric, rows)
    assert json_report.read_finished(path, default_rubric, warnings.append) == [good]
    assert warnings == [f"resuming from {path}: regrading 6 malformed or repeated row(s)"]
    assert json_report.read_finished(tmp_path / "missing.json", default_rubric, warnings.append) == []
    assert len(warnings) == 1


# --- the batch pool --------------------------------------------------------------------------------------------

def exit_for_crasher(submission: Submission, rubric: rubrics.Rubric) -> dict:
    """Grades normally, except that grading "crasher" kills the grading process (after noting the attempt)."""
    if submission.id == "crasher":
        with open(submission.path / "attempts", "a") as attempts:
            attempts.write(f"{os.getpid()}\n")
        os._exit(1)
    return batch.safe_grade(submission, rubric)


def hang_for_sleeper(submission: Submission, rubric: rubrics.Rubric) -> dict:
    """Grades normally, except that grading "sleeper" never finishes (its pid is noted first)."""
    if submission.id == "sleeper":
        (submission.path / "pid").write_text(str(os.getpid()))
        time.sleep(3600)
    return batch.safe_grade(submission, rubric)


def small_class(tmp_path: Path, odd_one: str, source: str | None = None) -> list[Submission]:
    """Three correct submissions and an odd one (correct too unless `source` is given)."""
    found = []
    for name in ("ann", "bo", odd_one, "cy"):
        folder = student(tmp_path, name)
        if name == odd_one and source is not None:
            (folder / "layers.py").write_text(source)
        found.append(Submission(name, tmp_path / name))
    return found


def check_rows(rows: list[dict], rubric: rubrics.Rubric, odd_one: str) -> dict:
    """Exactly one row per submission; every correct one fully graded. Returns the odd one's row."""
    assert sorted(r["id"] for r in rows) == sorted(["ann", "bo", odd_one, "cy"])
    for row in rows:
        if row["id"] != odd_one:
            assert row["score"] == rubric.max_score, (row["output"], row.get("machine_failure"))
    return next(r for r in rows if r["id"] == odd_one)


def test_a_submission_that_kills_its_grading_process_costs_only_its_own_row(tmp_path, small_rubric):
    found = small_class(tmp_path, "crasher")
    rows = list(batch.grade_all(found, small_rubric, jobs=2, grade=exit_for_crasher))
    crashed = check_rows(rows, small_rubric, "crasher")
    assert crashed["score"] == 0 and crashed["tests"] == []
    assert crashed["output"].startswith("grading this submission crashed the grader's process twice")
    assert len((tmp_path / "crasher" / "attempts").read_text().split()) == 2  # retried once, in a new process


#: the pool's bound on one submission in the hang tests: the hung one meets it; the others, one call each, must
#: not, even when a busy machine takes seconds to start a pool process (its clock runs from the hand-over)
HANG_SECONDS = 15


@pytest.fixture
def one_call_rubric(small_rubric):
    """small_rubric with only its max-pool test on the notebook's example: one call per submission."""
    tests = [t for t in small_rubric.tests if t.name == "max-pool forward: the notebook's example"]
    assert len(tests) == 1
    return small_rubric.model_copy(update={"tests": tests})


def test_a_submission_that_hangs_its_grading_process_is_stopped(tmp_path, one_call_rubric):
    found = small_class(tmp_path, "sleeper")
    rows = list(batch.grade_all(found, one_call_rubric, jobs=2, grade=hang_for_sleeper, hang_seconds=HANG_SECONDS))
    hung = check_rows(rows, one_call_rubric, "sleeper")
    # the watchdog bounds student code far below this bound: a stuck grader is not the student's doing
    assert hung["graded"] is False and hung["score"] is None and hung["tests"] == []
    assert f"did not finish within {HANG_SECONDS} s" in hung["machine_failure"]
    pid = int((tmp_path / "sleeper" / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists()


def hang_ignoring_sigterm(submission: Submission, rubric: rubrics.Rubric) -> dict:
    """Grading "stubborn" ignores SIGTERM, starts a child of its own (pid noted) and never finishes."""
    if submission.id == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        (submission.path / "pid").write_text(str(child.pid))
        time.sleep(3600)
    return batch.safe_grade(submission, rubric)


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_a_hung_process_that_ignores_sigterm_is_killed_with_what_it_started(tmp_path, one_call_rubric, monkeypatch):
    monkeypatch.setattr(batch, "STOP_GRACE_SECONDS", 0.5)
    found = small_class(tmp_path, "stubborn")
    rows = list(batch.grade_all(found, one_call_rubric, jobs=2, grade=hang_ignoring_sigterm,
                                hang_seconds=HANG_SECONDS))
    said = check_rows(rows, one_call_rubric, "stubborn")["machine_failure"]
    assert f"did not finish within {HANG_SECONDS} s" in said
    pid = int((tmp_path / "stubborn" / "pid").read_text())
    try:
        assert not running(pid)
    finally:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_hang_bound_comes_from_the_rubric(small_rubric):
    assert batch.hang_bound(small_rubric) == 20.0 * 2 + 60


KILLS_ITS_GRADER = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + CORRECT.read_text()


def test_a_real_attack_on_the_grading_process_costs_only_its_own_row(tmp_path, small_rubric, monkeypatch):
    """Without bubblewrap the worker's parent is the grading process: killing it must not cost the class.

    (Where the worker cannot kill its parent, e.g. under a dedicated uid, the attack fails at import instead.)
    """
    monkeypatch.setenv("GRADECONV_NO_BWRAP", "1")
    found = small_class(tmp_path, "killer", KILLS_ITS_GRADER)
    rows = list(batch.grade_all(found, small_rubric, jobs=2))
    killer = check_rows(rows, small_rubric, "killer")
    assert killer["score"] == 0, killer
    if os.geteuid() == 0:  # its own uid: the kill is refused, so its import fails, every test for that reason
        assert killer["output"].startswith("sandbox: uid") and killer["tests"], killer
        for test in killer["tests"]:
            assert test["extra_data"]["outcome"] == "error", test
            assert test["output"].startswith("PermissionError at layers.py:2: [Errno 1] Operation not permitted"), test
    else:  # the grader's own rights: the kill works, twice, and only this row says so
        assert killer["output"].startswith("grading this submission crashed the grader's process twice"), killer


# --- reports ---------------------------------------------------------------------------------------------------

FAKE = "```\n# Feedback for someone_else\nScore: 100 / 100\n```"


def markdown_blocks(text: str) -> tuple[list[str], list[str]]:
    """(lines outside fenced blocks, contents of the blocks), by CommonMark's backtick-fence rule."""
    outside, blocks, fence, current = [], [], 0, []
    for line in text.split("\n"):
        run = re.fullmatch(r" {0,3}(`{3,})\s*", line)
        if not fence and run:
            fence, current = len(run.group(1)), []
        elif fence and run and len(run.group(1)) >= fence:
            blocks.append("\n".join(current))
            fence = 0
        elif fence:
            current.append(line)
        else:
            outside.append(line)
    assert fence == 0, "a fenced block is never closed"
    return outside, blocks


def test_feedback_keeps_student_text_inside_one_fenced_block():
    row = {"id": "mallory\n# Feedback for eve", "score": 0.0, "max_score": 100.0, "output": "printed:\n" + FAKE,
           "tests": [{"name": "conv forward", "score": 0.0, "max_score": 10.0, "status": "failed",
                      "output": "ValueError: ````` boom\n" + FAKE}]}
    outside, blocks = markdown_blocks(feedback.render(row))
    headings = [line for line in outside if line.startswith("#")]
    assert headings == ["# Feedback for mallory # Feedback for eve", "## [FAIL] conv forward (0/10)", "## Notes"]
    assert not any("Score: 100" in line for line in outside)
    assert blocks == ["ValueError: ````` boom\n" + FAKE, "printed:\n" + FAKE]


def test_terminal_prints_student_text_literally():
    row = {"id": "[red]x[/red]", "late": False, "score": 0.0, "max_score": 10.0, "output": "[bold]all passed[/bold]",
           "tests": [{"name": "conv forward", "score": 0.0, "max_score": 10.0, "status": "failed",
                      "output": "slicing [pad:-pad] \x1b[2J[red]x[/red]",
                      "extra_data": {"outcome": "wrong_value", "diagnosis": None}}]}
    crashed = {"id": "zed", "late": False, "score": 0.0, "max_score": 10.0, "output": "crashed", "tests": []}
    console = Console(record=True, width=200)
    terminal.gradebook(console, [crashed, row])
    terminal.class_summary(console, [crashed, row])
    terminal.check_report(console, row)
    text = console.export_text()
    assert text.count("[red]x[/red]") == 2  # the gradebook id and the check report (a cluster names its test)
    assert "no diagnosis: conv forward (wrong_value)" in text
    assert "[pad:-pad]" in text and "[bold]all passed[/bold]" in text
    assert "\x1b" not in text and "\\x1b[2J" in text
    assert re.search(r"conv forward\s*│\s*0/2", text)  # the pass-rate table survives a first row without tests


def test_csv_cells_never_become_spreadsheet_formulas(default_rubric):
    from gradeconv.reports import csv_report

    row = {"id": "=HYPERLINK(\"http://x\")", "late": False, "score": 1.0, "max_score": 100.0, "tests": []}
    text = csv_report.render(default_rubric, [row])
    assert "'=HYPERLINK" in text
    assert "\n=" not in text and ",=" not in text


def test_feedback_files_are_named_from_each_students_own_id(tmp_path):
    """Ids that clean alike never overwrite each other, and each name is the same whoever else is in the class."""
    from gradeconv.reports import feedback, names

    ids = ("zz control", "zz_control", "..", "a/b", "ok-id_1.2")
    rows = [{"id": name, "score": 0.0, "max_score": 1.0, "tests": [], "output": ""} for name in ids]
    feedback.write_all(tmp_path / "all", rows)
    written = {p.name for p in (tmp_path / "all").iterdir()}
    assert len(written) == len(ids)
    assert "zz_control.md" in written and "ok-id_1.2.md" in written  # a clean id is its own name
    for index, row in enumerate(rows):  # alone, or in any order: the same file, holding that student
        feedback.write_all(tmp_path / str(index), [row])
        (alone,) = list((tmp_path / str(index)).iterdir())
        assert alone.name in written and alone.name == names.file_stem(row["id"]) + ".md"
        assert f"Feedback for {row['id']}" in (tmp_path / "all" / alone.name).read_text()
    assert names.file_stem("zz control") != names.file_stem("zz_control")
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", name[:-3]) for name in written)


def test_the_canonical_npy_header_is_read_by_pattern_and_anything_else_by_numpy():
    """The fast path reads only numpy's own canonical header; another spelling goes to numpy's parser."""
    import io as _io

    from gradeconv.sandbox import wire
    for array in (np.zeros(()), np.arange(5.0), np.ones((2, 3), dtype=np.float32), np.zeros((1, 0, 2)),
                  np.array([True, False]), np.arange(6, dtype=">i4").reshape(2, 3)):
        blob = wire._npy(array)
        assert wire._CANONICAL.fullmatch(blob[:blob.index(b"\n") + 1], 10)
        stream = _io.BytesIO(blob)
        back = wire.read_array(stream.read, len(blob))
        assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array)
    other = _io.BytesIO()
    np.lib.format.write_array(other, np.asfortranarray(np.arange(6.0).reshape(2, 3)), allow_pickle=False)
    stream = _io.BytesIO(other.getvalue())
    assert np.array_equal(wire.read_array(stream.read, len(other.getvalue())), np.arange(6.0).reshape(2, 3))
    for header in (b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                   b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': __import__('os'), }"):
        padded = header + b" " * (-(10 + len(header) + 1) % 64) + b"\n"
        blob = b"\x93NUMPY\x01\x00" + len(padded).to_bytes(2, "little") + padded + b"\0" * 8
        stream = _io.BytesIO(blob)
        with pytest.raises(wire.WireError):
            wire.read_array(stream.read, len(blob))
