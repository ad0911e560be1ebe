"""Temporary folders of killed graders are removed by the next run, and nothing else is."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gradeconv import temporary
from tests.conftest import checkout_env

MAKE_AND_DIE = """
import os, signal, sys
from gradeconv.temporary import temporary_folder
folder = temporary_folder(sys.argv[1])
(folder / "pkg").mkdir()
(folder / "pkg" / "layers.py").write_text("# a student's file")
print(folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_graders_folder(kind: str) -> Path:
    """A folder made by a grader process that was then killed (so it could not remove it)."""
    done = subprocess.run([sys.executable, "-c", MAKE_AND_DIE, kind], capture_output=True, text=True, timeout=60,
                          env=checkout_env())
    assert done.returncode == -signal.SIGKILL, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.is_dir()
    return folder


def test_a_killed_graders_folder_is_removed_by_the_next_sweep():
    folder = killed_graders_folder("stage")
    try:
        assert folder in temporary.sweep("stage")
        assert not folder.exists()
    finally:
        subprocess.run(["rm", "-rf", str(folder)])


def test_a_living_process_keeps_its_folders_and_other_kinds_are_left_alone():
    mine = temporary.temporary_folder("stage")
    other_kind = killed_graders_folder("zip")
    try:
        assert temporary.sweep("stage") == []
        assert mine.is_dir() and other_kind.is_dir()
        assert temporary.sweep("zip") == [other_kind]
    finally:
        subprocess.run(["rm", "-rf", str(mine), str(other_kind)])


def test_the_sweep_touches_no_link_no_other_namespace_and_no_one_elses_folder(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=60)
    pid = int(dead.stdout)  # a process that is gone
    namespace = temporary._namespace()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("not ours to remove")
    planted = tmp_path / f"gradeconv-stage-{namespace}-{pid}-link"
    planted.symlink_to(target)
    foreign = tmp_path / f"gradeconv-stage-{namespace + 1}-{pid}-other"
    foreign.mkdir()
    orphan = tmp_path / f"gradeconv-stage-{namespace}-{pid}-orphan"
    orphan.mkdir()
    unowned = tmp_path / f"gradeconv-stage-{namespace}-{pid}-unowned"
    unowned.mkdir()
    if os.geteuid() == 0:
        os.chown(unowned, 65534, 65534)
    expected = {orphan} if os.geteuid() == 0 else {orphan, unowned}  # without root it is ours, an orphan too
    assert set(temporary.sweep("stage", tmp_path)) == expected
    assert planted.is_symlink() and (target / "keep.txt").exists() and foreign.is_dir()
    assert unowned.is_dir() == (os.geteuid() == 0)


@pytest.mark.parametrize("kind", ["stage", "dask", "zip", "file"])
def test_every_kind_of_grading_folder_is_named_for_its_process(kind):
    folder = temporary.temporary_folder(kind)
    try:
        assert folder.name.startswith(f"gradeconv-{kind}-{temporary._namespace()}-{os.getpid()}-")
        assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    finally:
        folder.rmdir()
