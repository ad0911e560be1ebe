"""What the machine does wrong never costs a student a point (issue: infrastructure failures).

Faults are injected where the machine fails in real life: the sandbox's command
exits before the worker starts (bwrap's "Creating new namespace failed"), no
worker account is free, the runtime copy is missing, the disk is full while
staging, Landlock's probe fails after it once confined a worker, a worker is
SIGKILLed from outside. A failure that goes away is retried and the grade is
the one honest code earns; one that stays makes the submission *not graded*:
no score (empty cells, never 0), a reason for the staff, regraded by --resume,
and a non-zero exit status. What the student's code does to itself (killing its
own worker every time) stays the student's.
"""
from __future__ import annotations

import csv
import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from gradeconv import cli
from gradeconv.judging import grading
from gradeconv.platforms import prairielearn
from gradeconv.reports import gradescope
from gradeconv.sandbox import accounts, landlock, runtime
from gradeconv.sandbox.failures import MachineFailure
from gradeconv.sandbox.process import WorkerProcess
from gradeconv.submissions import Submission
from tests.conftest import CORRECT, MODES, skip_unless_available

BWRAP_REFUSES = "bwrap: Creating new namespace failed: Resource temporarily unavailable"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(grading, "BACKOFF_SECONDS", (0.05, 0.1))


@pytest.fixture
def correct(tmp_path):
    folder = tmp_path / "class" / "ann" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(CORRECT.read_text())
    return Submission("ann", tmp_path / "class" / "ann")


def failing_starts(monkeypatch, failures: int) -> list[int]:
    """The first `failures` workers started exit at once as bwrap does when the kernel refuses a namespace."""
    started = []
    launch = WorkerProcess._launch

    def launch_or_fail(self, *args):
        argv, env, options = launch(self, *args)
        started.append(len(started))
        if len(started) <= failures:
            python = str(self.isolation.runtime.python) if self.isolation.runtime is not None else sys.executable
            argv = [python, "-c", f"import sys; sys.stderr.write({BWRAP_REFUSES!r} + '\\n'); sys.exit(1)"]
            options = {key: value for key, value in options.items() if key != "preexec_fn"}
        return argv, env, options

    monkeypatch.setattr(WorkerProcess, "_launch", launch_or_fail)
    return started


@pytest.mark.parametrize("mode", MODES)
def test_a_sandbox_that_fails_to_start_once_is_retried_and_the_grade_is_earned(mode, monkeypatch, correct,
                                                                                small_rubric):
    skip_unless_available(mode)
    started = failing_starts(monkeypatch, failures=1)
    result = grading.grade_submission(correct, small_rubric, mode)
    assert result.graded and result.score == small_rubric.max_score, result.output
    assert len(started) >= 2  # the failed start, then the ones that graded


@pytest.mark.parametrize("mode", MODES)
def test_a_sandbox_that_never_starts_leaves_the_submission_not_graded(mode, monkeypatch, correct, small_rubric):
    skip_unless_available(mode)
    started = failing_starts(monkeypatch, failures=10 ** 6)
    result = grading.grade_submission(correct, small_rubric, mode)
    assert not result.graded and result.score is None and result.tests == ()
    assert len(started) == grading.MACHINE_ATTEMPTS
    assert "the sandbox did not start" in result.machine_failure and BWRAP_REFUSES in result.machine_failure
    assert f"({grading.MACHINE_ATTEMPTS} times)" in result.machine_failure
    row = result.to_json()
    assert row["graded"] is False and row["score"] is None
    assert "not your code" in row["output"] and "resubmit" in row["output"]


@pytest.mark.parametrize("fault", ["no free account", "runtime missing", "disk full", "landlock probe"])
def test_each_machine_fault_is_not_the_students(fault, monkeypatch, correct, small_rubric):
    mode = "none" if fault == "disk full" else "uid"
    skip_unless_available(mode)
    if fault == "no free account":
        monkeypatch.setattr(accounts, "SLOTS", 0)
        expected = "worker accounts"
    elif fault == "runtime missing":
        def gone(*args, **kwargs):
            raise RuntimeError("/var/cache/gradeconv/runtime has no readable manifest.json")
        monkeypatch.setattr(runtime, "shared_runtime", gone)
        expected = "runtime could not be prepared"
    elif fault == "disk full":
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(grading, "stage_package", full)
        expected = "No space left on device"
    else:
        if not landlock.abi():
            pytest.skip("this kernel has no Landlock")
        monkeypatch.setenv(landlock.REQUIRED_VARIABLE, "1")  # an earlier probe of the batch confined a worker
        monkeypatch.setattr(landlock, "_CONFINED_RUNS", {})
        monkeypatch.setattr(landlock, "runs", lambda *args, **kwargs: False)
        expected = "Landlock confined this batch's workers before"
    result = grading.grade_submission(correct, small_rubric, mode)
    assert not result.graded and result.score is None, result.output
    assert expected in result.machine_failure


def test_landlock_failing_before_it_ever_worked_grades_unconfined_and_says_so(monkeypatch, correct, small_rubric):
    """Without an earlier success the machine simply has no usable Landlock: graded, with the weaker sandbox named."""
    skip_unless_available("uid")
    monkeypatch.delenv(landlock.REQUIRED_VARIABLE, raising=False)
    monkeypatch.setattr(landlock, "_CONFINED_RUNS", {})
    monkeypatch.setattr(landlock, "runs", lambda *args, **kwargs: False)
    result = grading.grade_submission(correct, small_rubric, "uid")
    assert result.graded and result.score == small_rubric.max_score
    assert "not confined by Landlock" in result.output


PID_NOTE = """
import os as _os
with open({path!r}, "a") as _note:
    _note.write(f"{{_os.getpid()}}\\n")
"""


def test_a_worker_killed_from_outside_is_graded_again(monkeypatch, tmp_path, small_rubric):
    """The kernel's OOM killer or another program SIGKILLs the first worker: the second grade counts."""
    notes = tmp_path / "pids"
    folder = tmp_path / "ann" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(PID_NOTE.format(path=str(notes)) + CORRECT.read_text())
    stop = threading.Event()

    def kill_the_first_worker() -> None:
        while not stop.is_set():
            if notes.exists() and notes.read_text().strip():
                os.kill(int(notes.read_text().split()[0]), signal.SIGKILL)
                return
            time.sleep(0.001)

    killer = threading.Thread(target=kill_the_first_worker)
    killer.start()
    slow = small_rubric.model_copy(update={"limits": small_rubric.limits.model_copy(update={"call_seconds": 5.0})})
    try:
        result = grading.grade_submission(Submission("ann", tmp_path / "ann"), slow, "none")
    finally:
        stop.set()
        killer.join()
    assert result.graded and result.score == small_rubric.max_score, result.output
    assert len(notes.read_text().split()) >= 2  # the killed worker, then the grade that counted


SELF_KILL = "import os, signal\n" + CORRECT.read_text().replace(
    "def max_pool_forward_naive(x, pool_param):",
    "def max_pool_forward_naive(x, pool_param):\n    os.kill(os.getpid(), signal.SIGKILL)", 1)


@pytest.mark.parametrize("mode", MODES)
def test_code_that_kills_its_own_worker_every_time_is_charged_for_it(mode, tmp_path, small_rubric):
    skip_unless_available(mode)
    assert SELF_KILL != "import os, signal\n" + CORRECT.read_text()
    folder = tmp_path / "bo" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(SELF_KILL)
    result = grading.grade_submission(Submission("bo", tmp_path / "bo"), small_rubric, mode)
    assert result.graded, result.machine_failure
    outcomes = {test.function: test.outcome for test in result.tests}
    assert outcomes["max_pool_forward_naive"] == "crashed"
    assert outcomes["conv_forward_naive"] == "passed"
    assert 0 < result.score < small_rubric.max_score


def test_the_batch_reports_not_graded_rows_everywhere_and_resume_grades_them(monkeypatch, tmp_path, small_rubric,
                                                                             capsys):
    classroom = tmp_path / "class"
    for name in ("ann", "bo"):
        (classroom / name / "cs231n").mkdir(parents=True)
        (classroom / name / "cs231n" / "layers.py").write_text(CORRECT.read_text())
    monkeypatch.setattr(cli, "load_rubric", lambda name: small_rubric)
    monkeypatch.setenv("GRADECONV_SANDBOX", "none")
    outputs = {"json": tmp_path / "r.json", "csv": tmp_path / "g.csv", "feedback": tmp_path / "feedback",
               "html": tmp_path / "r.html", "canvas": tmp_path / "canvas.csv"}
    arguments = [str(classroom), "--jobs", "1", "--json", str(outputs["json"]), "--csv", str(outputs["csv"]),
                 "--feedback-dir", str(outputs["feedback"]), "--html", str(outputs["html"]),
                 "--canvas-csv", str(outputs["canvas"]), "--assignment", "Conv (123)"]
    original_stage = grading.stage_package

    def stage_or_fail(files, *args, **kwargs):
        if any(module_file.parent.parent.name == "bo" for module_file in files.values()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_stage(files, *args, **kwargs)

    monkeypatch.setattr(grading, "stage_package", stage_or_fail)
    status = cli.main(arguments)
    err = capsys.readouterr().err
    assert status == cli.NOT_GRADED
    assert "1 submission(s) not graded" in err and "--resume" in err
    rows = {row["id"]: row for row in json.loads(outputs["json"].read_text())["submissions"]}
    assert rows["ann"]["graded"] is True and rows["ann"]["score"] == small_rubric.max_score
    assert rows["bo"]["graded"] is False and rows["bo"]["score"] is None
    assert "No space left on device" in rows["bo"]["machine_failure"]
    gradebook = {row["id"]: row for row in csv.DictReader(outputs["csv"].open())}
    assert gradebook["bo"]["score"] == "" and float(gradebook["ann"]["score"]) == small_rubric.max_score
    assert all(gradebook["bo"][test.name] == "" for test in small_rubric.tests)
    canvas_rows = list(csv.reader(outputs["canvas"].open()))
    bo_cells = [row for row in canvas_rows if row[0] == "bo"]
    assert bo_cells and bo_cells[0][-1] == ""  # an empty cell, never 0
    assert "Score: not graded" in (outputs["feedback"] / "bo.md").read_text()
    assert "not graded (the machine failed" in outputs["html"].read_text()

    monkeypatch.setattr(grading, "stage_package", original_stage)  # the machine is fixed
    status = cli.main([*arguments, "--resume"])
    err = capsys.readouterr().err
    assert status == 0 and "grading the 1 submission(s) that were not graded" in err
    rows = {row["id"]: row for row in json.loads(outputs["json"].read_text())["submissions"]}
    assert rows["bo"]["graded"] is True and rows["bo"]["score"] == small_rubric.max_score


def test_platforms_tell_the_student_to_resubmit(correct, small_rubric, monkeypatch):
    monkeypatch.setattr(accounts, "SLOTS", 0)
    skip_unless_available("uid")
    row = grading.grade_submission(correct, small_rubric, "uid").to_json()
    scope = gradescope.not_graded(row)
    assert scope["tests"] == [] and "resubmit" in scope["output"] and "worker accounts" in scope["output"]
    learn = prairielearn.not_gradable(row["output"])
    assert learn["gradable"] is False and "resubmit" in learn["message"]


def test_gradescope_and_prairielearn_commands_write_not_graded_results(tmp_path, monkeypatch, small_rubric):
    skip_unless_available("uid")
    monkeypatch.setattr(accounts, "SLOTS", 0)
    monkeypatch.setenv("GRADECONV_SANDBOX", "uid")
    monkeypatch.setattr(cli, "load_rubric", lambda name: small_rubric)
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "layers.py").write_text(CORRECT.read_text())
    scope_results = tmp_path / "gs" / "results.json"
    assert cli.main(["gradescope", "--submission", str(submission), "--results", str(scope_results)]) \
        == cli.NOT_GRADED
    written = json.loads(scope_results.read_text())
    assert written["tests"] == [] and "Not graded" in written["output"] and "worker accounts" in written["output"]
    learn_results = tmp_path / "pl" / "results.json"
    assert cli.main(["prairielearn", "--student", str(submission), "--results", str(learn_results)]) == 0
    learned = json.loads(learn_results.read_text())
    assert learned["gradable"] is False and "Not graded" in learned["message"]


def test_a_machine_failure_is_raised_through_the_session_not_swallowed_as_a_test_failure(monkeypatch, correct,
                                                                                          small_rubric):
    """The runner turns every exception while judging into a failed test; a start failure must not be one."""
    calls = []

    def refuse(self, *args, **kwargs):
        calls.append(1)
        raise MachineFailure("the sandbox did not start (injected)")

    monkeypatch.setattr(WorkerProcess, "__init__", refuse)
    result = grading.grade_submission(correct, small_rubric, "none")
    assert not result.graded and "injected" in result.machine_failure
    assert len(calls) == grading.MACHINE_ATTEMPTS


@pytest.mark.parametrize("mode", MODES)
def test_a_watchdog_that_fails_stops_the_worker_and_the_grade_is_taken_again(mode, monkeypatch, correct,
                                                                              small_rubric):
    """An unwatched worker is never graded: the attempt is the machine's failure, and the next one counts."""
    skip_unless_available(mode)
    from gradeconv.sandbox.session import Session

    failures = []
    over_budget = Session._over_budget

    def fails_once(self):
        if not failures:
            failures.append(1)
            raise ChildProcessError(10, "No child processes")
        return over_budget(self)

    monkeypatch.setattr(Session, "_over_budget", fails_once)
    sessions = []
    init = Session.__init__

    def counted(self, *args, **kwargs):
        sessions.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Session, "__init__", counted)
    result = grading.grade_submission(correct, small_rubric, mode)
    assert failures and result.graded and result.score == small_rubric.max_score, result.output
    assert len(sessions) == 2  # the unwatched attempt was thrown away, whatever it scored


def test_signalling_an_account_survives_its_helper_being_reaped_by_another_thread(monkeypatch):
    """The watchdog's SIGSTOP helper may be reaped by reap_orphans in the grading thread before it waits."""
    skip_unless_available("uid")
    from gradeconv.sandbox import reaper

    real_waitpid = os.waitpid

    def reaped_elsewhere(pid, options):
        real_waitpid(pid, options)
        raise ChildProcessError(10, "No child processes")

    monkeypatch.setattr(reaper.os, "waitpid", reaped_elsewhere)
    reaper.signal_as(accounts.UID_BASE + accounts.SLOTS - 2, signal.SIGCONT)  # no exception escapes
