"""Escape routes found by attacking the sandbox as a student who read its source, each closed.

Every attack runs at import of an otherwise correct submission, under small
limits, in each mode where it applies; the tests assert it is stopped, that it
leaves nothing behind and that the honest functions are still graded.
"""
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import gradeconv
from gradeconv import outcomes
from gradeconv.judging import search
from gradeconv import rubric as rubrics
from gradeconv.sandbox import accounts, bubblewrap, reaper
from tests.conftest import CORRECT, skip_unless_available

ROOT = Path(__file__).resolve().parent.parent
SURVIVOR = "gcsurvivor"
SHM_KEY = 0x67630901
FORWARD = "conv forward: no padding (pad = 0)"


@pytest.fixture(scope="module")
def tight_rubric(default_rubric):
    data = default_rubric.model_dump()
    data["limits"] = {"call_seconds": 3.0, "submission_seconds": 20.0, "memory_mb": 256, "processes": 16,
                      "scratch_mb": 16}
    data["tests"] = [dict(t, examples=min(t["examples"], 3)) for t in data["tests"]
                     if t["name"] in (FORWARD, "max-pool forward: the notebook's example")]
    return rubrics.Rubric.model_validate(data)


def grade_with(tmp_path, code: str, rubric, mode: str):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "layers.py").write_text(code + "\n" + CORRECT.read_text())
    return gradeconv.grade(folder / "layers.py", rubric, sandbox=mode)[0]


def running_threads_named(name: str) -> list[str]:
    """pid/tid of every live thread with this name (a zombie does not count)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                state = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if comm == name and state != "Z":
                found.append(f"{pid}/{tid}")
    return found


HIDDEN_THREAD = f"""
import ctypes, os, threading, time
def _linger():
    ctypes.CDLL(None).prctl(15, b"{SURVIVOR}", 0, 0, 0)
    time.sleep(30)
if os.fork() == 0:
    os.setsid()
    threading.Thread(target=_linger).start()
    ctypes.CDLL(None).syscall(60, 0)  # SYS_exit: only the first thread ends; the process looks like a zombie
"""


@pytest.mark.parametrize("mode", ["uid", "bubblewrap"])
def test_a_process_whose_first_thread_exited_does_not_outlive_grading(mode, tight_rubric, tmp_path):
    skip_unless_available(mode)
    result = grade_with(tmp_path, HIDDEN_THREAD, tight_rubric, mode)
    assert result.score == result.max_score, result.output
    assert running_threads_named(SURVIVOR) == []


SHARED_MEMORY = f"""
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
_id = _libc.shmget({SHM_KEY}, 4 << 20, 0o1666)
print("shmget", _id, ctypes.get_errno())
"""


def shared_memory_keys() -> set[int]:
    rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(row.split()[0]) for row in rows}


@pytest.mark.parametrize("mode", ["uid", "bubblewrap"])
def test_system_v_shared_memory_is_gone_after_grading(mode, tight_rubric, tmp_path):
    skip_unless_available(mode)
    if SHM_KEY in shared_memory_keys():
        pytest.skip("a segment with the test's key exists already")
    result = grade_with(tmp_path, SHARED_MEMORY, tight_rubric, mode)
    assert result.score == result.max_score, result.output
    assert "shmget -1 1" in result.output  # refused with EPERM: a detached segment is memory nobody counts
    assert SHM_KEY not in shared_memory_keys()


MEMFD_HOG = """
import os, time
_held = []
def _hog():
    for _ in range(6):  # 60 MB each: under the per-file limit, 360 MB together
        fd = os.memfd_create("hog")
        for _ in range(60):
            os.write(fd, b"x" * (1 << 20))
        _held.append(fd)
    time.sleep(60)  # held until the watchdog stops it (the call limit bounds it otherwise)
"""


@pytest.mark.parametrize("mode", ["uid", "bubblewrap"])
def test_memory_held_in_a_memfd_counts_against_the_limit(mode, tight_rubric, tmp_path):
    skip_unless_available(mode)
    code = MEMFD_HOG
    source = CORRECT.read_text().replace(
        '    stride, pad = conv_param["stride"], conv_param["pad"]\n',
        '    stride, pad = conv_param["stride"], conv_param["pad"]\n    _hog()\n', 1)
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "layers.py").write_text(code + source)
    # a call limit a busy machine cannot reach while writing the memory: the watchdog decides, not a race
    rubric = tight_rubric.model_copy(update={"limits": tight_rubric.limits.model_copy(update={"call_seconds": 20.0})})
    result = gradeconv.grade(folder / "layers.py", rubric, sandbox=mode)[0]
    assert result.tests, f"not graded: {result.machine_failure}"  # says why, should the machine fail it
    forward = next(t for t in result.tests if t.name == FORWARD)
    assert forward.outcome == outcomes.CRASHED, forward.output
    assert "MB of memory (the limit is 256 MB)" in forward.output
    others = [t for t in result.tests if t.name != FORWARD]
    assert all(t.passed for t in others)


def test_hypothesis_home_is_private_and_a_planted_one_is_not_used(tmp_path, monkeypatch):
    home = search.private_home()
    info = home.lstat()
    assert info.st_uid == os.geteuid() and info.st_mode & 0o077 == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    planted = shared / f"gradeconv-hypothesis-{os.geteuid()}"
    planted.symlink_to(tmp_path)  # a student's link where the grader's folder should be
    chosen = search.private_home()
    assert chosen != planted and not chosen.is_symlink()
    assert chosen.lstat().st_mode & 0o077 == 0


def test_student_exception_text_stays_on_one_line(tight_rubric, tmp_path):
    fake = "\\n=== gradeconv: all tests passed ===\\nscore: 100/100"
    source = CORRECT.read_text().replace(
        '    stride, pad = conv_param["stride"], conv_param["pad"]\n',
        f'    raise ValueError("{fake}")\n', 1)
    (tmp_path / "layers.py").write_text(source)
    result = gradeconv.grade(tmp_path / "layers.py", tight_rubric)[0]
    forward = next(t for t in result.tests if t.name == FORWARD)
    first = forward.output.splitlines()[0]
    assert first.startswith("ValueError at layers.py:") and "all tests passed" in first
    assert not any(line.startswith("===") for line in forward.output.splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root")
def test_a_worker_account_cannot_read_this_checkout(tight_rubric, tmp_path):
    """The checkout holds the reference again in .git: a worker account must not get in."""
    targets = [ROOT / ".git" / "HEAD", ROOT / "pyproject.toml", ROOT / "reference" / "layers.py"]
    probe = ("import os\n_seen = []\n"
             f"for _p in {[str(t) for t in targets]!r}:\n"
             "    try:\n        open(_p).read(1); _seen.append('READ ' + _p)\n"
             "    except OSError as _e:\n        _seen.append('denied ' + _p)\n"
             "print(*_seen, sep='\\n')\n")
    result = grade_with(tmp_path, probe, tight_rubric, "uid")
    assert "READ" not in result.output
    assert result.output.count("denied") == len(targets)


@pytest.mark.skipif(os.geteuid() != 0, reason="sweeping System V objects of another uid needs root")
def test_sweep_removes_every_ipc_object_of_the_account(tmp_path):
    uid = 60998
    code = ("import ctypes; l = ctypes.CDLL(None)\n"
            "assert l.shmget(0, 1 << 16, 0o1600) >= 0\nassert l.msgget(0, 0o1600) >= 0\n"
            "assert l.semget(0, 1, 0o1600) >= 0\n")
    # Debian's interpreter: the project's may live where another uid cannot enter
    subprocess.run(["/usr/bin/python3", "-c", code], check=True, user=uid, group=uid, extra_groups=[], cwd="/")
    kinds = {kind for kind, _ in accounts.ipc_objects(uid)}
    assert kinds == {"shm", "msg", "sem"}
    accounts.sweep(accounts.Account(uid, uid))
    assert accounts.ipc_objects(uid) == []



@pytest.mark.skipif(os.geteuid() != 0, reason="stages are group-owned by a worker account only as root")
def test_a_stage_left_by_a_killed_grader_is_removed_before_its_group_is_used_again(tmp_path, private_accounts):
    """A killed grader leaves its stage readable by the account's group: the next holder must not find it."""
    account = accounts.acquire()
    try:
        stale = Path(tempfile.mkdtemp(prefix="gradeconv-stage-"))
        for folder in ("runtime", "pkg", "work"):
            (stale / folder).mkdir()
        (stale / "pkg" / "layers.py").write_text("# a classmate's solution\n")
        accounts.grant(account, stale)
    finally:
        accounts.abandon(account)  # the grader died holding it: no release, no sweep
    again = accounts.acquire()
    try:
        assert again.gid == account.gid
        assert not stale.exists()
    finally:
        accounts.release(again)


KERNEL_SETTINGS = """
import os
for _path in ("/proc/sys/kernel/core_pattern", "/proc/sys/fs/file-max", "/proc/sys/vm/overcommit_memory"):
    try:
        os.close(os.open(_path, os.O_WRONLY))  # opened, never written
        print("WRITABLE", _path)
    except OSError as _error:
        print("refused", _path, _error.errno)
"""


@pytest.mark.parametrize("mode", ["uid", "bubblewrap"])
def test_the_hosts_kernel_settings_cannot_be_opened_for_writing(mode, tight_rubric, tmp_path):
    """Under bubblewrap the worker is uid 0 without capabilities, and /proc/sys checks the uid alone."""
    skip_unless_available(mode)
    result = grade_with(tmp_path, KERNEL_SETTINGS, tight_rubric, mode)
    assert "WRITABLE" not in result.output
    assert result.output.count("refused") == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root grader has worker accounts")
def test_the_jail_of_a_root_grader_runs_student_code_as_a_worker_account(tight_rubric, tmp_path):
    """Not as uid 0: the kernel grants some things by uid alone (/proc/sys, keyrings, no process limit)."""
    skip_unless_available("bubblewrap")
    account = accounts.acquire()
    usable = bubblewrap.available_to(account.uid, account.gid)
    accounts.release(account)
    if not usable:
        pytest.skip("this kernel gives unprivileged accounts no user namespaces: the jail runs as uid 0")
    result = grade_with(tmp_path, 'import os\nprint("running as", os.getuid(), os.getgroups())\n', tight_rubric,
                        "bubblewrap")
    assert result.score == result.max_score, result.output
    uid = int(result.output.split("running as ")[1].split()[0])
    assert accounts.UID_BASE <= uid < accounts.UID_BASE + accounts.SLOTS
    assert "running as %d []" % uid in result.output


def nested(top: Path, depth: int) -> Path:
    """top/a/a/.../a, `depth` folders below top, made relative to open folders (no path grows long)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    return top


def test_scratch_nested_past_the_depth_limit_is_reported_and_still_removed(tmp_path):
    shallow = nested(tmp_path / "shallow", 10)
    assert not accounts.scratch_use(60997, [shallow]).too_deep
    deep = nested(tmp_path / "deep", 1200)  # past Python's recursion limit and, as a path, past PATH_MAX
    assert accounts.scratch_use(60997, [deep]).too_deep
    assert accounts.remove_entry(deep) and not deep.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="files of another uid need root")
def test_the_sweep_finds_an_accounts_files_inside_folders_anyone_may_write():
    """Files left in a world-writable folder inside /tmp (like /tmp/.X11-unix) are the account's too."""
    uid = 60998
    shared = Path(tempfile.mkdtemp(prefix="gradeconv-test-shared-", dir="/tmp"))
    try:
        os.chmod(shared, 0o1777)
        inner = shared / "inner"
        inner.mkdir()
        os.chmod(inner, 0o1777)
        left = inner / "left-behind"
        left.write_text("x" * 5000)
        os.chown(left, uid, uid)
        assert left in accounts.scratch_entries(uid)
        assert accounts.scratch_use(uid, []).bytes >= 4096
        assert accounts.sweep(accounts.Account(uid, uid)).clean
        assert not left.exists() and inner.exists()
    finally:
        subprocess.run(["rm", "-rf", str(shared)])


RENAMER = """
import os, sys
folder = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
current, number = "a", 0
while True:
    number += 1
    try:
        os.rename(current, "n%d" % number, src_dir_fd=folder, dst_dir_fd=folder)
        current = "n%d" % number
    except OSError:
        pass
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="stopping another uid's processes needs root")
def test_the_scratch_count_sees_files_below_a_folder_renamed_over_and_over():
    """A walk by path missed what lies below a folder that keeps changing its name; the count stops the
    account's processes and walks by folder descriptors, so it sees every file, every time."""
    uid = 60996
    base = Path(tempfile.mkdtemp(prefix="gradeconv-test-rename-", dir="/var/tmp"))  # the uid can reach it
    try:
        counts = _counts_while_renaming(uid, base)
    finally:
        subprocess.run(["rm", "-rf", str(base)])
    assert counts == [1 + 3 + 500] * 5  # work itself, m, the moving folder, b and the files


def _counts_while_renaming(uid: int, tmp_path: Path) -> list[int]:
    root = tmp_path / "work"
    below = root / "m" / "a" / "b"
    below.mkdir(parents=True)
    for number in range(500):
        (below / f"f{number}").write_text("x")
    for folder, dirs, files in os.walk(root):  # the account's own work folder, in a folder that is not
        for name in [folder, *(os.path.join(folder, entry) for entry in dirs + files)]:
            os.chown(name, uid, uid)
    os.chmod(tmp_path, 0o755)
    renamer = subprocess.Popen(["/usr/bin/python3", "-c", RENAMER, str(root / "m")], user=uid, group=uid,
                               extra_groups=[], cwd="/")
    try:
        deadline = time.monotonic() + 60  # a busy machine starts it slowly: count once it is renaming
        while (root / "m" / "a").exists() and renamer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert renamer.poll() is None and not (root / "m" / "a").exists(), "the renamer did not start"
        return [accounts.scratch_use(uid, [root]).files for _ in range(5)]
    finally:
        renamer.kill()
        renamer.wait(timeout=10)


def test_the_scratch_count_never_follows_a_link(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    (root / "to_usr").symlink_to("/usr")  # a tree the account could not even read
    assert accounts.scratch_use(60997, [root]).files == 2


def test_busy_cores_count_what_exited_processes_used_and_wait_for_a_full_window():
    busy = reaper.BusyCores(window=1.0)
    assert busy.add(0.0, {10: 0.0, 11: 0.0}) == 0.0
    assert busy.add(0.5, {10: 0.5, 11: 0.5}) == 0.0  # half a window seen: no verdict yet
    # pid 11 exited (its time gone from every later look), pid 12 started: nothing already used is lost
    assert busy.add(1.0, {10: 1.0, 12: 0.5}) == pytest.approx(2.0)
    assert busy.add(2.0, {10: 1.5, 12: 0.5}) == pytest.approx(0.5)  # the window slid past the busy second
    assert busy.add(2.5, {10: 1.5, 12: 0.5}) == pytest.approx(0.5 / 1.5)  # from the oldest look a window back
