"""Finding, measuring and killing every process of one submission.

A submission's processes are recognised by something they cannot forge where
the sandbox provides it: their uid (a dedicated account) or their PID
namespace (bubblewrap). Without either, by a marker in their environment,
which a process can drop: that mode is reported as ``sandbox: none``.
"""
from __future__ import annotations

import collections
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Usage:
    processes: int  # threads included: each is a task the kernel must hold
    resident_bytes: int  # resident memory, plus files held open but not visible (memfd, deleted)
    cpu_seconds: dict[int, float] = field(default_factory=dict)  # by pid: its processor time and its reaped children's


@dataclass(frozen=True)
class Group:
    """The processes of one submission, and how to recognise them."""

    describe: str
    belongs: Callable[[str], bool]  # given a /proc entry (a pid as text)
    kill_at_once: Callable[[], None] | None = None  # a kill no member can escape, where there is one

    def pids(self) -> list[int]:
        own = os.getpid()
        found = []
        try:
            entries = os.listdir("/proc")
        except OSError:
            return found
        for entry in entries:
            if entry.isdigit() and int(entry) != own and self.belongs(entry):
                found.append(int(entry))
        return found

    def usage(self) -> Usage:
        pids = self.pids()
        return Usage(sum(map(_tasks, pids)), sum(map(_resident_bytes, pids)) + _hidden_file_bytes(pids),
                     {pid: _cpu_seconds(pid) for pid in pids})

    def kill_all(self, wait: float = KILL_WAIT_SECONDS) -> bool:
        """SIGKILL every member until none is left; False if some survived `wait` seconds."""
        deadline = time.monotonic() + wait
        if self.kill_at_once is not None and self.pids():
            self.kill_at_once()
        while pids := self.pids():
            if time.monotonic() > deadline:
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:  # gone already
                    pass
            time.sleep(0.002)
        return True


def _tasks(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


class BusyCores:
    """Cores a group's processes kept busy over the last `window` seconds, from polled processor times.

    Each process's growth since the last look is added up, so a process that exits (or is reaped
    outside the group) takes nothing already counted with it.
    """

    def __init__(self, window: float):
        self.window = window
        self.seen: dict[int, float] = {}  # processor seconds of each process at the last look
        self.used = 0.0  # processor seconds of all the processes so far, as far as seen
        self.samples: collections.deque[tuple[float, float]] = collections.deque()  # (when, used)

    def add(self, now: float, cpu_seconds: dict[int, float]) -> float:
        """Record a look at the processes' processor times; the cores busy over the window (0 until then)."""
        for pid, seconds in cpu_seconds.items():
            self.used += max(0.0, seconds - self.seen.get(pid, 0.0))
        self.seen = dict(cpu_seconds)
        self.samples.append((now, self.used))
        while len(self.samples) > 1 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()
        start, used = self.samples[0]
        if now - start < self.window:
            return 0.0
        return (self.used - used) / (now - start)


def _cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
        return sum(int(field) for field in fields[11:15]) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _hidden_file_bytes(pids: list[int]) -> int:
    """Bytes of files the processes hold open that no folder shows: memfds and deleted files.

    They cost memory or disk like any other, yet count in no resident size and
    no scratch folder.
    """
    seen: dict[tuple[int, int], int] = {}
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(path)
                if target.startswith("/memfd:") or target.endswith(" (deleted)"):
                    info = os.stat(path)
                    seen[(info.st_dev, info.st_ino)] = info.st_blocks * 512
            except OSError:
                continue
    return sum(seen.values())


def _alive(entry: str) -> bool:
    """Some thread of the process is not a zombie.

    A zombie holds no memory and cannot be killed again, only reaped by its
    parent; but a process whose first thread exited while others run shows as
    a zombie too, so every thread is looked at.
    """
    try:
        tasks = os.listdir(f"/proc/{entry}/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/{entry}/task/{task}/stat", "rb") as handle:
                if handle.read().rpartition(b")")[2][1:2] != b"Z":
                    return True
        except OSError:
            continue
    return False


def by_uid(uid: int) -> Group:
    """Every process running as uid (a dedicated account: nothing else runs as it)."""

    def belongs(entry: str) -> bool:
        try:
            return os.stat(f"/proc/{entry}").st_uid == uid and _alive(entry)
        except OSError:
            return False

    return Group(f"uid {uid}", belongs, lambda: kill_as(uid))


def kill_as(uid: int) -> None:
    """kill(-1, SIGKILL) from a child running as uid: every process of uid at once, by the kernel.

    Nothing of uid can hide from it, and a fork racing the kill is caught by the
    scans that follow. Only root can do this; otherwise nothing happens.
    """
    signal_as(uid, signal.SIGKILL, rounds=100)


def signal_as(uid: int, number: int, rounds: int = 3) -> None:
    """kill(-1, number) `rounds` times from a child running as uid: every process of uid, by the kernel.

    Only root can do this; otherwise nothing happens.
    """
    if os.geteuid() != 0:
        return
    child = os.fork()
    if child == 0:  # only async-signal-safe work here: no locks, no allocation to speak of
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(rounds):
                os.kill(-1, number)
        except OSError:
            pass
        finally:
            os._exit(0)
    try:
        os.waitpid(child, 0)
    except ChildProcessError:  # reap_orphans() in the grading thread took it: it had exited, its work done
        pass


def by_namespace(inode: int, init_pid: int) -> Group:
    """Every process inside one PID namespace, whose first process is init_pid (seen from here)."""

    def belongs(entry: str) -> bool:
        try:
            return os.stat(f"/proc/{entry}/ns/pid").st_ino == inode and _alive(entry)
        except OSError:
            return False

    def kill_init() -> None:
        """The kernel kills every process of a PID namespace when its first process dies."""
        try:
            if os.stat(f"/proc/{init_pid}/ns/pid").st_ino == inode:  # not a recycled pid
                os.kill(init_pid, signal.SIGKILL)
        except OSError:
            pass

    return Group(f"PID namespace {inode}", belongs, kill_init)


def by_marker(variable: str, marker: str) -> Group:
    """Every process whose environment still carries the marker (a process can drop it)."""
    needle = f"{variable}={marker}".encode()

    def belongs(entry: str) -> bool:
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                return needle in handle.read().split(b"\0") and _alive(entry)
        except OSError:
            return False

    return Group(f"marker {marker}", belongs)


PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Make this process the one that orphans of its workers are handed to (a child subreaper).

    A worker's processes that outlive their parent (a jail's first process once bwrap exits, a student's
    double fork) would otherwise go to PID 1; where PID 1 never reaps (a grader that is its container's
    PID 1, or a minimal init), their zombies would count against the account's process limit for ever.
    Here reap_orphans() collects them.
    """
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _children() -> list[str]:
    """This process's children (orphans it adopted included), from each of its threads' list; every
    process of the machine where the kernel keeps no such list."""
    try:
        tasks = os.listdir("/proc/self/task")
        found = []
        for task in tasks:
            with open(f"/proc/self/task/{task}/children") as handle:
                found += handle.read().split()
        return found
    except OSError:
        return numbered("/proc")


def numbered(folder: str) -> list[str]:
    """The entries of a /proc folder that are numbers (processes, threads); none if it cannot be read."""
    try:
        return [entry for entry in os.listdir(folder) if entry.isdigit()]
    except OSError:
        return []


def reap_orphans(uid: int) -> int:
    """Reap the zombies of uid that are this process's children (never one it started and still waits for:
    call once those are waited for); how many were reaped."""
    own, reaped = os.getpid(), 0
    for entry in _children():
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            if fields[0] != b"Z" or int(fields[1]) != own or os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            os.waitpid(int(entry), os.WNOHANG)
            reaped += 1
        except (OSError, ValueError, IndexError):  # gone, or not ours after all
            continue
    return reaped
