"""Graders sharing one machine never share a worker account (issue: infrastructure failures).

The claim on an account does not live in the file system: an abstract Unix socket
(one name per network namespace) and a keeper thread whose file-system uid is the
account's (seen in /proc by every grader of the PID namespace). So graders with
different TMPDIRs, a private mount namespace, or even a network namespace of their
own each take their own account, and no grader's sweep kills another's students.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

from gradeconv.sandbox import accounts
from tests.conftest import CORRECT, ROOT, skip_unless_available

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(),
                                reason="worker accounts and namespaces need root and unshare")

HOLD = textwrap.dedent("""
    import sys, time
    from gradeconv.sandbox import accounts
    account = accounts.acquire()
    print(account.uid, flush=True)
    sys.stdin.readline()  # held until the test says so
    accounts.release(account)
""")


def grader(tmp_path: Path, name: str, *namespaces: str) -> subprocess.Popen:
    """A process that takes one account and holds it; in its own TMPDIR and the given namespaces."""
    tmpdir = tmp_path / name
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)}
    prefix = ["unshare", *namespaces, "--"] if namespaces else []
    return subprocess.Popen([*prefix, sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def finish(process: subprocess.Popen) -> None:
    try:
        process.communicate("\n", timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def test_graders_in_other_temporary_folders_and_namespaces_take_other_accounts(tmp_path):
    mine = accounts.acquire()
    others = [grader(tmp_path, "plain"), grader(tmp_path, "private-mounts", "--mount"),
              grader(tmp_path, "own-network", "--mount", "--net")]
    try:
        taken = [int(process.stdout.readline()) for process in others]
        assert len({mine.uid, *taken}) == 4, (mine.uid, taken)
        # the one in its own network namespace cannot see our lock: our keeper, seen in /proc, told it
        assert accounts.holders(mine.uid).keepers == (mine.keeper.tid,)
        assert accounts.holders(mine.uid, mine.keeper.tid).keepers == ()
        assert all(len(accounts.holders(uid).keepers) == 1 for uid in taken)
    finally:
        for process in others:
            finish(process)
        accounts.release(mine)


def test_graders_racing_from_separate_network_namespaces_never_share_an_account(tmp_path):
    """Neither sees the other's socket: each sees the other's keeper, and a collision makes both move on."""
    for round_ in range(5):
        folder = tmp_path / str(round_)
        folder.mkdir()
        racers = [grader(folder, name, "--net") for name in ("a", "b", "c")]
        try:
            taken = [int(process.stdout.readline()) for process in racers]
            assert len(set(taken)) == 3, taken
        finally:
            for process in racers:
                finish(process)


def test_a_dead_graders_leftovers_are_swept_but_a_live_keepers_account_is_left_alone(private_accounts):
    """Processes of an account without a keeper belong to a grader that died: they go, and the account is used."""
    held = accounts.acquire()
    try:
        sleeper = subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(60)"], user=held.uid,
                                   group=held.gid, extra_groups=[], cwd="/")
        accounts.abandon(held)  # the grader dies: its keeper and lock go with it, its worker stays
        again = accounts.acquire()
        try:
            assert again.uid == held.uid, accounts.holders(held.uid)
            # killed by the sweep of the account's new holder (which may also have reaped it: it is our child)
            assert not running(sleeper.pid)
        finally:
            accounts.release(again)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


SQUATTER = textwrap.dedent("""
    import socket, sys, time
    held = []
    for uid in range(int(sys.argv[1]), int(sys.argv[2])):
        name = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            name.bind("\\0gradeconv-worker-account-%d" % uid)
        except OSError:  # held by a grader already
            continue
        held.append(name)
    print("squatting", flush=True)
    time.sleep(60)
""")


def test_a_worker_squatting_every_accounts_lock_name_keeps_no_grader_out():
    """Where no seccomp filter stops a uid-mode worker from binding abstract sockets, it can take every lock
    name; names held only by processes that are not root are not graders' claims, and the keepers decide."""
    squatter_uid = accounts.UID_BASE + accounts.SLOTS - 1
    squatter = subprocess.Popen(["/usr/bin/python3", "-c", SQUATTER, str(accounts.UID_BASE),
                                 str(accounts.UID_BASE + accounts.SLOTS)], user=squatter_uid, group=squatter_uid,
                                extra_groups=[], cwd="/", stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "squatting"
        taken = accounts.acquire()
        try:
            assert taken.uid != squatter_uid and taken.lock is None and taken.keeper.acting
            assert accounts.holders(taken.uid).keepers == (taken.keeper.tid,)
        finally:
            accounts.release(taken)
    finally:
        squatter.kill()
        squatter.wait()


HOSTILE = textwrap.dedent("""
    import os, signal, time
    # kill every process this account may signal, for a while: with a shared uid, classmates would die
    if os.fork() == 0:
        os.setsid()
        end = time.time() + 4
        while time.time() < end:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.01)
        os._exit(0)
""")


def write_class(folder: Path) -> None:
    for name in ("ann", "bo", "cy"):
        target = folder / name / "cs231n"
        target.mkdir(parents=True)
        source = CORRECT.read_text()
        (target / "layers.py").write_text(HOSTILE + source if name == "bo" else source)


def write_rubric(path: Path) -> None:
    data = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    keep = {"conv forward: no padding (pad = 0)", "max-pool backward: overlapping windows (stride < pool size)",
            "conv backward db"}
    data["tests"] = [dict(test, examples=min(test["examples"], 6)) for test in data["tests"] if test["name"] in keep]
    # generous: on a loaded machine honest calls must not time out (what is tested is who kills whom)
    data["limits"] = {"call_seconds": 30, "submission_seconds": 120, "memory_mb": 1024}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["uid", "bubblewrap"])
def test_three_batches_on_one_machine_with_hostile_students_grade_every_honest_one_fully(mode, tmp_path):
    """Two batches in different TMPDIRs and one in a private mount and network namespace, side by side."""
    skip_unless_available(mode)
    rubric = tmp_path / "rubric.yaml"
    write_rubric(rubric)
    runs, scratches = [], []
    for name, namespaces in (("a", ()), ("b", ()), ("c", ("--mount", "--net"))):
        folder = tmp_path / name
        write_class(folder / "class")
        scratch = Path(tempfile.mkdtemp(prefix=f"gradeconv-test-tmpdir-{name}-", dir="/tmp"))
        os.chmod(scratch, 0o711)  # stages inside must be reachable by the worker accounts
        scratches.append(scratch)
        env = {**os.environ, "TMPDIR": str(scratch), "GRADECONV_SANDBOX": mode, "PYTHONPATH": str(ROOT)}
        prefix = ["unshare", *namespaces, "--"] if namespaces else []
        command = [*prefix, sys.executable, "-m", "gradeconv", "grade", str(folder / "class"), "--rubric",
                   str(rubric), "--jobs", "2", "--json", str(folder / "results.json"), "--quiet"]
        runs.append((folder, subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)))
    maximum = sum(test["points"] for test in yaml.safe_load(rubric.read_text())["tests"])
    for folder, process in runs:
        try:
            _, stderr = process.communicate(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
    for scratch in scratches:
        shutil.rmtree(scratch, ignore_errors=True)
    for folder, process in runs:
        assert process.returncode == 0, stderr[-2000:]
        rows = {row["id"]: row for row in json.loads((folder / "results.json").read_text())["submissions"]}
        for honest in ("ann", "cy"):
            assert rows[honest]["graded"] and rows[honest]["score"] == maximum, (folder.name, rows[honest]["output"])
        assert rows["bo"]["graded"] and rows["bo"]["score"] < maximum  # it killed its own worker, no one else's
