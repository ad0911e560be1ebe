"""Red team: worker accounts, 'ready' and unexplained SIGKILLs (commits b66d37f..c0ccaf5).

1. bwrap's own PID 1 of a jail is left to the machine's PID 1 when bwrap outside the jail is killed
   with it; where that PID 1 never reaps (gradeconv as its container's PID 1), each graded submission
   left one zombie of its account, and 32 of them (RLIMIT_NPROC) made every later bwrap of that account
   fail: every later submission of the batch was *not graded*.
2. Code that deserves 0 SIGKILLs its own worker so that no two gradings agree: it was *not graded*
   (no score, regraded for ever) instead of getting its 0.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradeconv.judging import grading
from gradeconv.sandbox import accounts
from gradeconv.submissions import Submission
from tests.conftest import ROOT, skip_unless_available

needs_root_and_unshare = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(),
                                            reason="worker accounts and a PID namespace need root and unshare")

#: runs as PID 1 of a new PID namespace, as gradeconv does as a container's entry point: it never reaps
#: orphans, so every process left to PID 1 stays a zombie, counted by the kernel against its uid's RLIMIT_NPROC
PID1_SESSIONS = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from gradeconv.sandbox import Limits, Session, stage_module
    assert os.getpid() == 1

    def zombies(uid):
        found = 0
        for entry in os.listdir("/proc"):
            try:
                state = open(f"/proc/{entry}/stat").read().rpartition(")")[2].split()[0]
                found += state == "Z" and os.stat(f"/proc/{entry}").st_uid == uid
            except (OSError, ValueError, IndexError):
                pass
        return found

    source = Path(sys.argv[1])
    counts = []
    for _ in range(4):
        session = Session(stage_module(source, "cs231n", "layers.py", own_helper=False), Limits(),
                          ["max_pool_forward_naive"], "bubblewrap")
        uid = session.isolation.account.uid
        assert session.load().status == "ok"
        for _ in range(int(sys.argv[2])):  # calls that end the worker by itself (os._exit), if any
            session.call("max_pool_forward_naive", [])
        session.close()
        time.sleep(0.2)
        counts.append(zombies(uid))
    print(counts)
""")


def sessions_as_pid1(tmp_path: Path, source: str, crashes: int = 0) -> list[int]:
    """Zombies of the account after each of four bubblewrap sessions run by a PID 1 that never reaps."""
    module = tmp_path / "layers.py"
    module.write_text(source)
    # accounts of this test alone: a grader in another PID namespace (another test process) sees no keeper here
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADECONV_SANDBOX": "bubblewrap",
           "GRADECONV_UID_BASE": str(1_000_000 + os.getpid() * accounts.SLOTS)}
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", PID1_SESSIONS,
                           str(module), str(crashes)], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return eval(done.stdout.strip().splitlines()[-1], {})  # a list of ints printed by our own script


@needs_root_and_unshare
def test_a_closed_bubblewrap_session_leaves_no_zombie_of_its_account(tmp_path):
    """Before: one more zombie of the account per session ([2, 3, 4, 5]); after 32, bwrap cannot fork."""
    skip_unless_available("bubblewrap")
    counts = sessions_as_pid1(tmp_path, (ROOT / "submissions" / "alice" / "cs231n" / "layers.py").read_text())
    assert counts == [counts[0]] * 4, counts  # the first session's probes of the account leave theirs once


@needs_root_and_unshare
def test_a_worker_that_exits_by_itself_leaves_no_zombie_of_its_account(tmp_path):
    """bwrap exits without reaping its jail's first process when the worker exits by itself: the grader reaps it
    (before, a student crashing ~30 workers poisoned the account where PID 1 never reaps)."""
    skip_unless_available("bubblewrap")
    counts = sessions_as_pid1(tmp_path, "import os\ndef max_pool_forward_naive(*args):\n    os._exit(3)\n", crashes=3)
    assert counts == [counts[0]] * 4, counts


#: deserves 0 (wrong shapes everywhere) and kills its own worker once per grading, in conv forward in gradings
#: 1 and 3 and in max-pool forward in grading 2, so no two gradings in a row agree (a grading is told by its
#: fresh work folder, the worker's cwd, kept across the workers of one grading)
SELF_KILL_EACH_GRADING_ELSEWHERE = textwrap.dedent("""
    import os, signal
    import numpy as np
    _LOG = {log!r}
    _HERE = os.getcwd()

    def _gradings():
        try:
            with open(_LOG) as handle:
                return handle.read().split()
        except FileNotFoundError:
            return []

    if _HERE + ":" not in _gradings():
        with open(_LOG, "a") as handle:
            handle.write(_HERE + ": ")
    _STARTS = [entry for entry in _gradings() if entry.endswith(":")]
    _TARGET = ("conv_forward_naive", "max_pool_forward_naive")[_STARTS.index(_HERE + ":") % 2]

    def _call(name):
        if name == _TARGET and _HERE + ":killed" not in _gradings():
            with open(_LOG, "a") as handle:
                handle.write(_HERE + ":killed ")
            os.kill(os.getpid(), signal.SIGKILL)
        return np.zeros((1,))

    def conv_forward_naive(x, w, b, conv_param):
        return _call("conv_forward_naive")

    def max_pool_forward_naive(x, pool_param):
        return _call("max_pool_forward_naive")
""")


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(grading, "BACKOFF_SECONDS", (0.05, 0.1))


def test_code_killing_itself_differently_in_each_grading_gets_its_zero_not_not_graded(tmp_path, small_rubric,
                                                                                       quick_backoff, monkeypatch):
    """Before: not graded ('the grading machine failed, not your code'), score None, for ever under --resume."""
    folder = tmp_path / "bo" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(SELF_KILL_EACH_GRADING_ELSEWHERE.format(log=str(tmp_path / "gradings")))
    monkeypatch.setattr(grading, "oom_kills", lambda: 7, raising=False)  # the kernel's OOM killer did nothing meanwhile
    result = grading.grade_submission(Submission("bo", tmp_path / "bo"), small_rubric, "none")
    assert result.unexplained_kills  # it did kill itself in the grading that counts
    assert result.graded and result.score == 0.0, result.machine_failure
    assert grading.SELF_KILLED_NOTE in result.output


def test_when_the_oom_killer_ran_meanwhile_repeated_kills_stay_not_graded(tmp_path, small_rubric, quick_backoff,
                                                                          monkeypatch):
    """The machine may be the killer: the submission must not be charged, as before."""
    folder = tmp_path / "bo" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(SELF_KILL_EACH_GRADING_ELSEWHERE.format(log=str(tmp_path / "gradings")))
    counter = iter(range(100))
    monkeypatch.setattr(grading, "oom_kills", lambda: next(counter), raising=False)
    result = grading.grade_submission(Submission("bo", tmp_path / "bo"), small_rubric, "none")
    assert not result.graded and result.score is None


def test_oom_kills_reads_the_kernels_counter():
    assert isinstance(grading.oom_kills(), int) or not Path("/proc/vmstat").exists()
