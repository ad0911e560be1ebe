"""The world-readable runtime for an unprivileged worker uid, and the no-network seccomp filter.

Everything here runs for real: the runtime is built once into a fresh cache root
under /var/tmp, run as an unprivileged uid when the tests run as root, and the filter is
installed in real child processes.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy
import pytest

from gradeconv.sandbox import runtime as runtimes
from gradeconv.sandbox import seccomp

#: a uid and gid with no passwd entry, just below the worker accounts' range (accounts.py hands
#: out 61000 and up and kills every process of an account it takes or gives back)
WORKER_UID = WORKER_GID = 60999
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
needs_seccomp = pytest.mark.skipif(not seccomp.supported(), reason="no seccomp filter here")


def world_traversable_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="gradeconv-runtime-test-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="module")
def cache_root():
    path = world_traversable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime(cache_root):
    return runtimes.shared_runtime(cache_root)


def run_python(runtime: runtimes.Runtime, code: str, uid: int | None = None,
               preexec_fn=None) -> subprocess.CompletedProcess:
    """The runtime's python running code (as uid, if given) with the runtime's site on sys.path."""
    switch = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    prelude = f"import sys; sys.path.insert(0, {str(runtime.site)!r})\n"
    return subprocess.run([str(runtime.python), "-I", "-S", "-c", prelude + code],
                          env={**runtime.env, "PATH": "/usr/bin:/bin"}, cwd="/",
                          capture_output=True, text=True, timeout=30, preexec_fn=preexec_fn,
                          **switch)


def test_runtime_layout_is_readable_by_all_and_writable_by_owner_only(runtime):
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert runtime.python == runtime.root / "bin" / version
    assert runtime.site == runtime.root / "site"
    stdlib = runtime.root / "lib" / version
    assert (stdlib / "os.py").is_file() and (stdlib / "lib-dynload").is_dir()
    for left_out in runtimes.EXCLUDED_STDLIB:
        assert not (stdlib / left_out).exists()
    assert sorted(path.name for path in runtime.site.iterdir()) == \
        sorted(path.name for path in runtimes._numpy_dirs())
    for folder, dirs, files in os.walk(runtime.root):
        for name in dirs + files:
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISLNK(info.st_mode):
                continue
            allowed = (0o755,) if stat.S_ISDIR(info.st_mode) else (0o644, 0o755)
            assert stat.S_IMODE(info.st_mode) in allowed, os.path.join(folder, name)
            assert info.st_uid == os.geteuid(), os.path.join(folder, name)


@as_root
def test_unprivileged_uid_runs_numpy_from_the_runtime(runtime):
    assert runtimes.runtime_usable_by(runtime, WORKER_UID, WORKER_GID)
    done = run_python(runtime, "import numpy, json, ctypes, resource, os\n"
                               "print(json.dumps([numpy.__version__, os.getuid(), os.getgroups()]))",
                      uid=WORKER_UID)
    assert json.loads(done.stdout) == [numpy.__version__, WORKER_UID, []], done.stderr


@as_root
def test_unprivileged_uid_cannot_use_the_projects_own_interpreter():
    """The premise of the runtime, where the interpreter is private (e.g. under /root)."""
    try:
        done = subprocess.run([os.path.realpath(sys.executable), "-I", "-S", "-c", "import json"],
                              user=WORKER_UID, group=WORKER_GID, extra_groups=[], cwd="/",
                              capture_output=True, timeout=30)
    except PermissionError:  # cannot even execute it
        done = None
    if done is not None and done.returncode == 0:
        pytest.skip("this interpreter is reachable by every user here")
    assert not runtimes.runtime_usable_by(
        runtimes.Runtime(root=Path(sys.prefix), python=Path(os.path.realpath(sys.executable)),
                         site=runtimes._numpy_dirs()[0].parent), WORKER_UID, WORKER_GID)


@as_root
@pytest.mark.parametrize("package", ["hypothesis", "pydantic", "gradeconv", "pytest"])
def test_unprivileged_uid_sees_no_other_package(runtime, package):
    done = run_python(runtime, f"import {package}", uid=WORKER_UID)
    assert done.returncode != 0
    assert f"No module named '{package}'" in done.stderr


@as_root
def test_unprivileged_uid_cannot_write_the_runtime(runtime):
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    targets = [runtime.python, runtime.site / "numpy" / "__init__.py",
               runtime.root / "lib" / version / "os.py", runtime.root / runtimes.MANIFEST]
    code = ("import json\n"
            "outcomes = []\n"
            f"for path in {[str(path) for path in targets]!r} + [{str(runtime.site / 'planted.py')!r}]:\n"
            "    try:\n"
            "        open(path, 'a').close()\n"
            "        outcomes.append('written')\n"
            "    except PermissionError:\n"
            "        outcomes.append('refused')\n"
            "print(json.dumps(outcomes))\n")
    done = run_python(runtime, code, uid=WORKER_UID)
    assert json.loads(done.stdout) == ["refused"] * (len(targets) + 1), done.stderr
    assert not (runtime.site / "planted.py").exists()


def test_second_call_reuses_the_runtime(cache_root, runtime):
    before = os.stat(runtime.root), os.stat(runtime.python)
    again = runtimes.shared_runtime(cache_root)
    after = os.stat(again.root), os.stat(again.python)
    assert again == runtime
    assert [(info.st_ino, info.st_mtime_ns) for info in before] == \
        [(info.st_ino, info.st_mtime_ns) for info in after]
    assert os.listdir(cache_root) == [runtime.root.name]


def _build_after(cache_root: Path, barrier, results) -> None:
    barrier.wait(timeout=30)
    results.put(str(runtimes.shared_runtime(cache_root).root))


def test_concurrent_builds_agree_and_leave_nothing_behind():
    cache_root = world_traversable_dir()
    try:
        context = multiprocessing.get_context("fork")
        barrier, results = context.Barrier(2), context.Queue()
        builders = [context.Process(target=_build_after, args=(cache_root, barrier, results))
                    for _ in range(2)]
        for builder in builders:
            builder.start()
        roots = [results.get(timeout=120) for _ in builders]
        for builder in builders:
            builder.join(timeout=30)
            assert builder.exitcode == 0
        assert roots[0] == roots[1]
        assert os.listdir(cache_root) == [Path(roots[0]).name]  # no temporary build folder left
        built = runtimes.shared_runtime(cache_root)
        assert str(built.root) == roots[0]
        uid, gid = (WORKER_UID, WORKER_GID) if os.geteuid() == 0 else (os.getuid(), os.getgid())
        assert runtimes.runtime_usable_by(built, uid, gid)
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)


def test_cache_root_others_cannot_reach_is_refused():
    private = Path(tempfile.mkdtemp(prefix="gradeconv-private-", dir="/var/tmp"))  # mode 0700
    try:
        with pytest.raises(RuntimeError, match=f"{private} is not traversable"):
            runtimes.shared_runtime(private / "cache")
        assert os.listdir(private / "cache") == []
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_cache_root_others_can_write_is_refused():
    cache_root = world_traversable_dir()
    try:
        os.chmod(cache_root, 0o777)
        with pytest.raises(RuntimeError, match="not writable by group or others"):
            runtimes.shared_runtime(cache_root)
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)


def test_copied_symlinks_never_leave_the_tree(tmp_path):
    source, elsewhere = tmp_path / "source", tmp_path / "elsewhere"
    (source / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (source / "a.txt").write_text("inside")
    (elsewhere / "secret.txt").write_text("outside")
    (source / "sub" / "to_a").symlink_to("../a.txt")
    (source / "absolute_to_a").symlink_to(source / "a.txt")
    (source / "to_file_outside").symlink_to(elsewhere / "secret.txt")
    (source / "to_dir_outside").symlink_to(elsewhere)
    (source / "dangling").symlink_to(tmp_path / "missing")
    target = tmp_path / "target"
    runtimes._copy_tree(source, target)
    assert os.readlink(target / "sub" / "to_a") == "../a.txt"
    assert os.readlink(target / "absolute_to_a") == "a.txt"
    assert not (target / "to_file_outside").is_symlink()
    assert (target / "to_file_outside").read_text() == "outside"
    assert not os.path.lexists(target / "to_dir_outside")
    assert not os.path.lexists(target / "dangling")


NETWORK_PROBE = r"""
import ctypes, errno, json, os, socket, subprocess, sys

def outcome(make):
    try:
        make()
        return "ok"
    except OSError as error:
        return errno.errorcode[error.errno]

def raw_syscall(number, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(ctypes.c_long(number), *args)
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]

results = {
    "inet": outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
    "inet6": outcome(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()),
    "netlink": outcome(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close()),
    "packet": outcome(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()),
    "unix": outcome(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()),
    "socketpair": outcome(lambda: [end.close() for end in socket.socketpair()]),
    "pipe": outcome(lambda: [os.close(fd) for fd in os.pipe()]),
    "io_uring": raw_syscall(425, ctypes.c_uint(1), ctypes.create_string_buffer(120)),
    "keyctl": raw_syscall({"x86_64": 250, "aarch64": 219}.get(os.uname().machine, 250), 0, 0, 0, 0),
    "unshare_user": raw_syscall({"x86_64": 272, "aarch64": 97}.get(os.uname().machine, 272),
                                ctypes.c_ulong(0x10000000)),
    "inotify": raw_syscall({"x86_64": 294, "aarch64": 26}.get(os.uname().machine, 294), 0),
    "thread": outcome(lambda: __import__("threading").Thread(target=int).start()),
    "fork": outcome(lambda: subprocess.run(["true"], check=True)),
}
if os.uname().machine == "x86_64":  # clone() with CLONE_NEWUSER: a child that gets through exits at once
    libc = ctypes.CDLL(None, use_errno=True)
    child = libc.syscall(ctypes.c_long(56), ctypes.c_ulong(0x10000000 | 17), 0, 0, 0, 0)
    if child == 0:
        os._exit(0)
    results["clone_newuser"] = "ok" if child > 0 else errno.errorcode[ctypes.get_errno()]
    if child > 0:
        os.waitpid(child, 0)
if os.uname().machine == "x86_64":  # socket() through the x32 syscall table
    results["x32_socket"] = raw_syscall(0x40000000 + 41, 2, 1, 0)
grandchild = subprocess.run([sys.executable, "-I", "-S", "-c",
                             "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM)"],
                            capture_output=True, text=True)
results["grandchild_inet"] = "PermissionError" if "PermissionError" in grandchild.stderr else "ok"
print(json.dumps(results))
"""

BLOCKED = {"inet": "EACCES", "inet6": "EACCES", "netlink": "EACCES", "packet": "EACCES",
           "unix": "EACCES", "socketpair": "EACCES", "pipe": "ok", "io_uring": "EPERM", "keyctl": "EPERM",
           "unshare_user": "EPERM", "inotify": "EPERM", "thread": "ok", "fork": "ok",
           "grandchild_inet": "PermissionError"}


def probe_network(argv_python: str, **options) -> dict:
    done = subprocess.run([argv_python, "-I", "-S", "-c", NETWORK_PROBE], capture_output=True,
                          text=True, timeout=30, cwd="/", **options)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_seccomp
def test_filter_takes_the_network_away_from_the_child_and_its_children():
    results = probe_network(sys.executable, preexec_fn=seccomp.no_network_installer())
    expected = dict(BLOCKED)
    if os.uname().machine == "x86_64":
        expected["x32_socket"] = "EPERM"
        expected["clone_newuser"] = "EPERM"
    assert results == expected


def test_without_the_filter_the_child_has_the_network():
    results = probe_network(sys.executable)
    assert results["inet"] == results["inet6"] == results["unix"] == results["socketpair"] == "ok"
    assert results["grandchild_inet"] == "ok"
    assert results["unshare_user"] == results["inotify"] == "ok"  # the filter, not the machine, refuses them


@as_root
@needs_seccomp
def test_filter_applies_to_the_unprivileged_uid_in_the_runtime(runtime):
    results = probe_network(str(runtime.python), env={**runtime.env, "PATH": "/usr/bin:/bin"},
                            user=WORKER_UID, group=WORKER_GID, extra_groups=[],
                            preexec_fn=seccomp.no_network_installer())
    assert {name: results[name] for name in BLOCKED} == BLOCKED
    done = run_python(runtime, "import numpy; print(numpy.ones(3).sum())", uid=WORKER_UID,
                      preexec_fn=seccomp.no_network_installer())
    assert done.stdout.strip() == "3.0", done.stderr


def test_every_jump_of_the_filter_lands_inside_it():
    for arch in seccomp.ARCHES.values():
        instructions = seccomp.program(arch)
        for index, (code, jt, jf, _) in enumerate(instructions):
            if code in (seccomp.BPF_JEQ_K, seccomp.BPF_JGE_K):
                assert index + 1 + max(jt, jf) < len(instructions)
        assert instructions[-1][0] == seccomp.BPF_RET_K
