"""Landlock: the files a worker account may touch, enforced by the kernel.

The uid sandbox has no mount namespace of its own, so without this its worker
may read every file the world may read: other courses' files, and packages
installed for the system's Python (which is how a forbidden package could be
imported after removing the worker's import hook). Where the kernel offers
Landlock (Linux 5.13 or later, not refused by a container's seccomp profile),
the worker gets a ruleset, built here in the parent and applied in the child
between fork and exec, that allows

- reading and running: the runtime (Python, its standard library, numpy), the
  stage's runtime and pkg folders (the worker, the submission), the folders of
  the shared libraries those load (whole folders: the C library loads some,
  such as libgcc_s, only when needed), locales, /proc and the CPU topology in
  /sys (OpenBLAS reads it);
- reading and writing a few devices (/dev/null, /dev/urandom);
- reading and writing, but not running: the stage's work folder (TMPDIR and
  HOME point there);

and nothing else: the machine's shared /tmp and /dev/shm are out of reach, so
nothing other users keep there can be read and nothing is left there. With
Landlock ABI 6 the worker's signals and abstract Unix sockets are also scoped
to its own processes. Where Landlock is missing the uid sandbox works as
before: its account's rights and the protections of gradeconv/sandbox/accounts.py.
"""
from __future__ import annotations

import ctypes
import functools
import os
import stat
import struct
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from gradeconv.sandbox.failures import MachineFailure
from gradeconv.sandbox.runtime import Runtime, runs

PR_SET_NO_NEW_PRIVS = 38
#: syscall numbers, the same on every architecture since Linux 5.13
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE = 1 << 4, 1 << 5
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (1 << bit for bit in range(6, 13))
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
#: file system rights each ABI knows: a ruleset handles all of them, so unnamed ones are denied
ABI_FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
#: ABI 4: TCP rights (none is granted)
BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1
#: ABI 6: signals and abstract Unix sockets reach only processes of the same ruleset
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = EXECUTE | READ_FILE | READ_DIR
#: no EXECUTE: what the worker writes it cannot run (memfds aside: Landlock does not see them)
WRITE = (READ_FILE | READ_DIR | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_FIFO
         | MAKE_SYM | REFER | TRUNCATE)
#: rights that apply to a file (the rest only to folders)
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
SYSTEM_READ = ("/proc", "/sys/devices/system/cpu", "/usr/lib/locale", "/usr/share/locale",
               "/etc/ld.so.cache")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl.restype = ctypes.c_int
    return libc


def _fs_rights(abi: int) -> int:
    return ABI_FS_RIGHTS.get(abi, ABI_FS_RIGHTS[5])


@functools.lru_cache(maxsize=1)
def abi() -> int:
    """The kernel's Landlock ABI version, once it is shown to confine a child; 0 when it cannot."""
    try:
        version = _libc().syscall(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    if version < 1 or not _confines_a_child(version):
        return 0
    return int(version)


def ruleset(read: Iterable[str], write: Iterable[str], devices: Iterable[str] = DEVICES) -> int:
    """A ruleset file descriptor allowing `read` (read and run) and `write` (also create and change) beneath
    each path, and reading and writing the `devices`; paths that do not exist are left out."""
    version = abi()
    if not version:
        raise OSError("Landlock is not available")
    libc = _libc()
    handled = _fs_rights(version)
    networking = BIND_TCP | CONNECT_TCP if version >= 4 else 0  # seccomp refuses sockets already
    scopes = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0
    attribute = struct.pack("=QQQ", handled, networking, scopes)
    size = 24 if version >= 6 else 16 if version >= 4 else 8
    buffer = ctypes.create_string_buffer(attribute[:size], size)
    fd = libc.syscall(CREATE_RULESET, buffer, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise _error("landlock_create_ruleset")
    try:
        for paths, rights in ((read, READ), (write, WRITE), (devices, READ_FILE | WRITE_FILE)):
            for path in paths:
                _allow(libc, fd, path, rights & handled)
    except BaseException:
        os.close(fd)
        raise
    return int(fd)


def _allow(libc, ruleset_fd: int, path: str, rights: int) -> None:
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to allow
    try:
        if not stat.S_ISDIR(os.fstat(target).st_mode):
            rights &= FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, target), 12)
        if libc.syscall(ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(RULE_PATH_BENEATH), rule,
                        ctypes.c_uint32(0)) != 0:
            raise _error(f"landlock_add_rule({path})")
    finally:
        os.close(target)


class Restrictor:
    """preexec_fn part that confines the child to a prebuilt ruleset: prctl and one system call only."""

    def __init__(self, ruleset_fd: int):
        self.ruleset_fd = ruleset_fd
        libc = _libc()
        self.prctl, self.syscall = libc.prctl, libc.syscall

    def __call__(self) -> None:
        if self.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _error("prctl(PR_SET_NO_NEW_PRIVS)")
        if self.syscall(RESTRICT_SELF, ctypes.c_int(self.ruleset_fd), ctypes.c_uint32(0)) != 0:
            raise _error("landlock_restrict_self")


def _error(call: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}")


def _confines_a_child(version: int) -> bool:
    """A forked child under a ruleset allowing nothing cannot open this interpreter's binary."""
    libc = _libc()
    attribute = ctypes.create_string_buffer(struct.pack("=Q", _fs_rights(version)), 8)
    fd = libc.syscall(CREATE_RULESET, attribute, ctypes.c_size_t(8), ctypes.c_uint32(0))
    if fd < 0:
        return False
    restrict = Restrictor(int(fd))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            restrict()
            try:
                os.close(os.open(os.path.realpath(sys.executable), os.O_RDONLY))
                code = 2  # the ruleset let it through
            except PermissionError:
                code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


#: set (to "1") by a batch whose first probe confined a worker: its grading processes must confine theirs too
REQUIRED_VARIABLE = "GRADECONV_LANDLOCK_REQUIRED"


def usable(runtime: Runtime) -> bool:
    """Whether uid-mode workers of this runtime can be confined: the kernel has Landlock, the runtime's
    libraries are known, and its python starts and imports numpy under a worker's rules.

    Once a probe has confined a worker here (or in the batch that started this process), a probe that
    fails later is the machine failing, not a reason to grade unconfined: MachineFailure.
    """
    if runtime.library_folders is None or not abi():
        return False
    if _runs_confined(runtime):
        return True
    if os.environ.get(REQUIRED_VARIABLE) == "1":
        raise MachineFailure("Landlock confined this batch's workers before, but its probe failed now")
    return False


def worker_ruleset(runtime: Runtime, stage_root: Path) -> int:
    """The ruleset of a uid-mode worker for this stage (see the module's docstring); OSError if it cannot
    be built. Call only where usable(runtime)."""
    return ruleset(*_worker_paths(runtime, stage_root))


def _worker_paths(runtime: Runtime, stage_root: Path) -> tuple[list[str], list[str]]:
    read = [str(runtime.root), str(stage_root / "runtime"), str(stage_root / "pkg"), *runtime.library_folders,
            *SYSTEM_READ]
    write = [str(stage_root / "work")]
    return read, write


_CONFINED_RUNS: dict[Path, bool] = {}


def _runs_confined(runtime: Runtime) -> bool:
    """Whether the runtime's python imports numpy under a worker's rules, tried once per runtime."""
    if runtime.root not in _CONFINED_RUNS:
        with tempfile.TemporaryDirectory(prefix="gradeconv-landlock-") as stage:
            os.mkdir(Path(stage) / "work")
            fd = ruleset(*_worker_paths(runtime, Path(stage)))
            try:
                confined = runs(runtime, cwd=stage, silent=True, preexec_fn=Restrictor(fd), pass_fds=(fd,))
            finally:
                os.close(fd)
        if not confined and os.environ.get(REQUIRED_VARIABLE) == "1":
            return False  # not remembered: the next submission probes again
        _CONFINED_RUNS[runtime.root] = confined
        if confined:
            os.environ[REQUIRED_VARIABLE] = "1"  # this process, and the grading processes it starts
    return _CONFINED_RUNS[runtime.root]
