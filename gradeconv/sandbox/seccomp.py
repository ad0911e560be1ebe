"""A seccomp filter that takes sockets and kernel keyrings away from a worker.

Without bubblewrap the worker cannot get a network namespace of its own, so it
gets this filter instead, installed in the child between fork and exec
(subprocess's preexec_fn) and inherited by everything it runs. Under bubblewrap
the same program is handed to bwrap (``--seccomp``), because a jail without a
user namespace shares its uid's kernel keyrings with the host.

- socket() fails with EACCES for every address family, AF_UNIX included
  (abstract Unix sockets carry no permissions: any host daemon listening on
  one would be reachable); socketpair() and pipes still work;
- socketpair() fails with EACCES too: full socket buffers are kernel memory
  that no process's size shows; pipes still work;
- add_key(), request_key() and keyctl() fail with EPERM: keyrings belong to a
  uid and outlive its processes, so they would carry secrets between students;
  so do mq_open() and System V IPC (shmget, shmat, msgget, semget): queues and
  segments outlive their processes, and a detached segment is memory no
  process's size shows;
- fallocate() fails with EPERM: it fills gigabytes of a shared disk in
  milliseconds, faster than any watchdog looks (writing takes real time);
- no new namespaces: unshare() and setns() fail with EPERM, clone() with any
  CLONE_NEW* flag too, and clone3() (whose flags a filter cannot read) with
  ENOSYS, so the C library falls back to clone(). A user namespace would give
  the worker mounts (memory file systems nobody counts) and a view of its own;
- io_uring_setup() fails with EPERM (an io_uring can open sockets without socket());
- inotify_init() and inotify_init1() fail with EPERM: Landlock does not cover
  inotify, so a watch on a folder the worker may not list would tell the names
  of files created there;
- a system call of another ABI fails with EPERM: x32 on x86_64 (nr >= 0x40000000),
  and any other arch value (e.g. 32-bit int 0x80 calls, where socketcall lives),
  so the filter cannot be sidestepped through another syscall table.

Everything else is allowed. Only x86_64 and aarch64 are known; elsewhere
supported() is False and the caller decides what to do without the filter.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import socket
import struct
from dataclasses import dataclass
from typing import Callable

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# classic BPF opcodes
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

# offsets into struct seccomp_data (little endian)
NR_OFFSET = 0
ARCH_OFFSET = 4
ARG0_LOW_OFFSET = 16

X32_SYSCALL_BIT = 0x40000000
#: CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


@dataclass(frozen=True)
class Arch:
    """The numbers the filter needs for one architecture."""

    audit: int  # AUDIT_ARCH_* as seen in seccomp_data.arch
    socket: int
    io_uring_setup: int
    keyrings: tuple[int, ...]  # add_key, request_key, keyctl
    socketpair: int
    mq_open: int
    fallocate: int
    sysv_ipc: tuple[int, ...]  # shmget, shmat, msgget, semget
    unshare: int
    setns: int
    clone: int
    clone3: int
    has_x32: bool
    inotify: tuple[int, ...] = ()  # inotify_init (where there is one), inotify_init1


ARCHES = {
    "x86_64": Arch(audit=0xC000003E, socket=41, io_uring_setup=425, keyrings=(248, 249, 250),
                   socketpair=53, mq_open=240, fallocate=285, sysv_ipc=(29, 30, 68, 64), unshare=272, setns=308, clone=56, clone3=435,
                   has_x32=True, inotify=(253, 294)),
    "aarch64": Arch(audit=0xC00000B7, socket=198, io_uring_setup=425, keyrings=(217, 218, 219),
                    socketpair=199, mq_open=180, fallocate=47, sysv_ipc=(194, 196, 186, 190), unshare=97, setns=268, clone=220, clone3=435,
                    has_x32=False, inotify=(26,)),
}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def machine_arch() -> Arch | None:
    """This process's architecture, if the filter knows it (a 32-bit Python is not known)."""
    if struct.calcsize("P") != 8:
        return None
    return ARCHES.get(os.uname().machine)


def program(arch: Arch) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions.

    Jump targets are written as the names of the final return instructions
    ("allow", "eacces", "eperm", "enosys"; None is the next instruction) and resolved to
    relative offsets at the end.
    """
    body = [
        (BPF_LD_W_ABS, None, None, ARCH_OFFSET),
        (BPF_JEQ_K, None, "eperm", arch.audit),
        (BPF_LD_W_ABS, None, None, NR_OFFSET),
    ]
    if arch.has_x32:
        body.append((BPF_JGE_K, "eperm", None, X32_SYSCALL_BIT))
    body.append((BPF_JEQ_K, "eperm", None, arch.io_uring_setup))
    refused = (*arch.keyrings, arch.mq_open, *arch.sysv_ipc, arch.fallocate, arch.unshare, arch.setns,
               *arch.inotify)
    body += [(BPF_JEQ_K, "eperm", None, number) for number in refused]
    body += [
        (BPF_JEQ_K, "enosys", None, arch.clone3),
        (BPF_JEQ_K, "eacces", None, arch.socketpair),
        (BPF_JEQ_K, "eacces", None, arch.socket),
        (BPF_JEQ_K, None, "allow", arch.clone),
        (BPF_LD_W_ABS, None, None, ARG0_LOW_OFFSET),  # clone's flags
        (BPF_JSET_K, "eperm", "allow", CLONE_NEW_FLAGS),
    ]
    returns = {"allow": SECCOMP_RET_ALLOW,
               "eacces": SECCOMP_RET_ERRNO | errno.EACCES,
               "eperm": SECCOMP_RET_ERRNO | errno.EPERM,
               "enosys": SECCOMP_RET_ERRNO | errno.ENOSYS}
    where = {name: len(body) + index for index, name in enumerate(returns)}

    def offset(index: int, target: str | None) -> int:
        return 0 if target is None else where[target] - index - 1

    resolved = [(code, offset(i, jt), offset(i, jf), k) for i, (code, jt, jf, k) in enumerate(body)]
    return resolved + [(BPF_RET_K, 0, 0, value) for value in returns.values()]


class _Installer:
    """preexec_fn that sets no_new_privs and installs a prebuilt filter (if any): prctl calls only.

    It keeps the instruction array and the sock_fprog pointing at it alive for as
    long as it exists.
    """

    def __init__(self, instructions: list[tuple[int, int, int, int]] | None):
        self.address = None
        if instructions is not None:
            self.filters = (_SockFilter * len(instructions))(*[_SockFilter(*i) for i in instructions])
            self.fprog = _SockFprog(len(instructions), ctypes.cast(self.filters, ctypes.POINTER(_SockFilter)))
            self.address = ctypes.addressof(self.fprog)
        libc = ctypes.CDLL(None, use_errno=True)
        self.prctl = libc.prctl
        self.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                               ctypes.c_ulong]
        self.prctl.restype = ctypes.c_int

    def __call__(self) -> None:
        if self.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
        if self.address is not None and self.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self.address, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl(PR_SET_SECCOMP): {os.strerror(code)}")


def _machine_program() -> list[tuple[int, int, int, int]]:
    arch = machine_arch()
    if arch is None:
        raise RuntimeError(f"no seccomp filter for this architecture ({os.uname().machine})")
    return program(arch)


def program_bytes() -> bytes:
    """The filter as the raw struct sock_filter array bwrap's --seccomp reads from a file descriptor."""
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in _machine_program())


def no_network_installer() -> Callable[[], None]:
    """A preexec_fn that installs the no-network filter in the child; raises OSError if it cannot.

    The filter is built here, in the parent, so the child only makes the two prctl calls.
    """
    return _Installer(_machine_program())


def no_new_privileges_installer() -> Callable[[], None]:
    """Where the filter is not supported: a preexec_fn that at least forbids setuid gains."""
    return _Installer(None)


@functools.lru_cache(maxsize=1)
def supported() -> bool:
    """Whether the filter is known for this machine and actually works (probed once, in a fork)."""
    if machine_arch() is None:
        return False
    try:
        install = no_network_installer()
    except (OSError, AttributeError):  # no libc prctl
        return False
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _probe_in_child(install)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _probe_in_child(install: Callable[[], None]) -> int:
    """Exit status of the forked probe: 0 if socket() is refused and pipes still work."""
    try:
        install()
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            return 2  # the filter let it through
        except PermissionError:
            pass
        for end in os.pipe():
            os.close(end)
        return 0
    except BaseException:  # never return into the parent's code
        return 1
