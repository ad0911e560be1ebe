"""Finding, measuring and killing every process of one submission.

A submission's processes are recognised by something they cannot forge where
the sandbox provides it: their uid (a dedicated account) or their PID
namespace (bubblewrap). Without either, by a marker in their environment,
which a process can drop: that mode is reported as ``sandbox: none``.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Callable

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Usage:
    processes: int
    resident_bytes: int


@dataclass(frozen=True)
class Group:
    """The processes of one submission, and how to recognise them."""

    describe: str
    belongs: Callable[[str], bool]  # given a /proc entry (a pid as text)

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
        return Usage(len(pids), sum(map(_resident_bytes, pids)))

    def kill_all(self, wait: float = KILL_WAIT_SECONDS) -> bool:
        """SIGKILL every member until none is left; False if some survived `wait` seconds."""
        deadline = time.monotonic() + wait
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


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _alive(entry: str) -> bool:
    """Not a zombie: a zombie holds no memory and cannot be killed again, only reaped by its parent."""
    try:
        with open(f"/proc/{entry}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2][1:2] != b"Z"
    except OSError:
        return False


def by_uid(uid: int) -> Group:
    """Every process running as uid (a dedicated account: nothing else runs as it)."""

    def belongs(entry: str) -> bool:
        try:
            return os.stat(f"/proc/{entry}").st_uid == uid and _alive(entry)
        except OSError:
            return False

    return Group(f"uid {uid}", belongs)


def by_namespace(inode: int) -> Group:
    """Every process inside one PID namespace."""

    def belongs(entry: str) -> bool:
        try:
            return os.stat(f"/proc/{entry}/ns/pid").st_ino == inode and _alive(entry)
        except OSError:
            return False

    return Group(f"PID namespace {inode}", belongs)


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
