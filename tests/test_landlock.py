"""Landlock rules of the uid sandbox: what a confined worker may read, write and run, and the fallback."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.sandbox import landlock
from gradeconv.sandbox import runtime as runtimes
from gradeconv.sandbox.session import UNCONFINED_NOTE
from gradeconv.submissions import Submission
from tests.conftest import ROOT, skip_unless_available

needs_landlock = pytest.mark.skipif(not landlock.abi(), reason="the kernel offers no Landlock")

PROBE = """
import json, os, sys
sys.path.insert(0, SITE)
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as error:
        return type(error).__name__
def read(path):
    with open(path, "rb") as handle:
        handle.read(1)
def write(path):
    with open(path, "w") as handle:
        handle.write("x")
def run_written(path):
    with open(path, "w") as handle:
        handle.write("#!" + sys.executable + "\\nprint(1)\\n")
    os.chmod(path, 0o755)
    import subprocess
    subprocess.run([path], check=True, capture_output=True)
import numpy
print(json.dumps({name: attempt(action) for name, action in {
    "read own stage": lambda: read(os.path.join(STAGE, "pkg", "layers.py")),
    "write work": lambda: write(os.path.join(STAGE, "work", "scratch")),
    "write stage": lambda: write(os.path.join(STAGE, "planted")),
    "read outside": lambda: read(OUTSIDE),
    "write outside": lambda: write(OUTSIDE + ".new"),
    "write /tmp": lambda: (write(TMP_FILE), os.unlink(TMP_FILE)),
    "list /tmp": lambda: os.listdir("/tmp"),
    "read /dev/urandom": lambda: read("/dev/urandom"),
    "run a program": lambda: os.close(os.open("/usr/bin/id", os.O_RDONLY)),
    "run what it wrote": lambda: run_written(os.path.join(STAGE, "work", "tool")),
}.items()}))
"""


@pytest.fixture
def places():
    """A stage (pkg, work) and a world-readable file outside it, both removed afterwards."""
    stage = Path(tempfile.mkdtemp(prefix="gradeconv-landlock-stage-", dir="/var/tmp"))  # outside /tmp's rule
    outside = Path(tempfile.mkdtemp(prefix="gradeconv-landlock-outside-", dir="/var/tmp"))
    (stage / "pkg").mkdir()
    (stage / "work").mkdir()
    (stage / "pkg" / "layers.py").write_text("x = 1\n")
    (outside / "notes.txt").write_text("notes\n")
    yield stage, outside / "notes.txt"
    shutil.rmtree(stage)
    shutil.rmtree(outside)


def confined_probe(runtime: runtimes.Runtime, stage: Path, outside: Path) -> dict[str, str]:
    assert landlock.usable(runtime)
    fd = landlock.worker_ruleset(runtime, stage)
    try:
        code = (f"SITE, STAGE, OUTSIDE = {str(runtime.site)!r}, {str(stage)!r}, {str(outside)!r}\n"
                f"TMP_FILE = {f'/tmp/gradeconv-landlock-{os.getpid()}'!r}\n" + PROBE)
        done = subprocess.run([str(runtime.python), "-I", "-S", "-c", code], env={**runtime.env, "PATH": "/usr/bin"},
                              cwd=stage / "work", capture_output=True, text=True, timeout=30,
                              preexec_fn=landlock.Restrictor(fd), pass_fds=(fd,))
    finally:
        os.close(fd)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return json.loads(done.stdout)


@needs_landlock
def test_a_confined_worker_reads_its_stage_and_writes_only_its_work_folder(places):
    runtime = runtimes.shared_runtime()
    stage, outside = places
    assert confined_probe(runtime, stage, outside) == {
        "read own stage": "ok", "write work": "ok", "write stage": "PermissionError",
        "read outside": "PermissionError", "write outside": "PermissionError", "write /tmp": "PermissionError",
        "list /tmp": "PermissionError", "read /dev/urandom": "ok", "run a program": "PermissionError",
        "run what it wrote": "PermissionError",
    }
    assert not (stage / "planted").exists() and not outside.with_suffix(".txt.new").exists()


@needs_landlock
def test_the_same_probe_unconfined_reaches_everything(places):
    """The contrast: the probe itself would reach the files the rules deny."""
    runtime = runtimes.shared_runtime()
    stage, outside = places
    code = (f"SITE, STAGE, OUTSIDE = {str(runtime.site)!r}, {str(stage)!r}, {str(outside)!r}\n"
            f"TMP_FILE = {f'/tmp/gradeconv-landlock-{os.getpid()}'!r}\n" + PROBE)
    done = subprocess.run([str(runtime.python), "-I", "-S", "-c", code], env={**runtime.env, "PATH": "/usr/bin"},
                          cwd=stage / "work", capture_output=True, text=True, timeout=30)
    assert set(json.loads(done.stdout).values()) == {"ok"}, done.stderr


def test_the_runtime_records_the_folders_of_its_system_libraries():
    runtime = runtimes.shared_runtime()
    assert runtime.library_folders, "the runtime's manifest names no library folder"
    libc = [folder for folder in runtime.library_folders if list(Path(folder).glob("libc.so*"))]
    assert libc, runtime.library_folders
    assert all(not folder.startswith(str(runtime.root)) for folder in runtime.library_folders)
    assert not any("python" in folder and "packages" in folder for folder in runtime.library_folders)


def test_paths_that_do_not_exist_are_left_out_of_a_ruleset(tmp_path):
    if not landlock.abi():
        with pytest.raises(OSError):
            landlock.ruleset([str(tmp_path)], [])
        return
    fd = landlock.ruleset([str(tmp_path / "missing"), str(tmp_path)], [str(tmp_path / "also-missing")])
    assert fd >= 0
    os.close(fd)


def test_without_landlock_the_uid_sandbox_grades_as_before_and_says_so(monkeypatch):
    """A kernel or container without Landlock: no rules, the uid sandbox still grades correctly, and every
    result says its files were not confined."""
    skip_unless_available("uid")
    monkeypatch.setattr(landlock, "abi", lambda: 0)
    assert not landlock.usable(runtimes.shared_runtime())
    result = grade_submission(Submission("alice", ROOT / "submissions" / "alice"), _small_rubric(), sandbox="uid")
    assert result.sandbox == "uid" and result.score == result.max_score, result.output
    assert result.output.splitlines()[:2] == ["sandbox: uid", UNCONFINED_NOTE]


@needs_landlock
def test_with_landlock_the_uid_sandbox_grades_honest_code_in_full():
    skip_unless_available("uid")
    result = grade_submission(Submission("alice", ROOT / "submissions" / "alice"), _small_rubric(), sandbox="uid")
    assert result.sandbox == "uid" and result.score == result.max_score, result.output
    assert result.output == "sandbox: uid", result.output  # confined, and nothing printed to stderr


def _small_rubric() -> rubrics.Rubric:
    data = rubrics.load(ROOT / "rubric.yaml").model_dump()
    data["tests"] = data["tests"][:3]
    return rubrics.Rubric.model_validate(data)
