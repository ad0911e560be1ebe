"""Temporary folders that a later run removes when the process that made them was killed.

A grader killed mid-batch (SIGKILL, an out-of-memory kill, a lost Dask worker)
cannot remove its stages and unpacked submissions. Each folder's name carries
the PID namespace and the pid of the process that made it,
``gradeconv-<kind>-<namespace>-<pid>-<random>``, and the first folder a process
makes removes those of its own kind left in the temporary folder by processes
that are gone: same owner, same PID namespace (another container's pids say
nothing here), and a pid no process has any more. A pid in use again keeps its
folders until a later sweep: only certain leftovers are removed.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

_SWEPT: set[str] = set()
_NAME = re.compile(r"^gradeconv-(?P<kind>[a-z]+)-(?P<namespace>\d+)-(?P<pid>\d+)-[^/]+$")


def temporary_folder(kind: str) -> Path:
    """A fresh private folder (mode 0700) in the temporary folder, named for this process."""
    if kind not in _SWEPT:
        _SWEPT.add(kind)
        sweep(kind)
    return Path(tempfile.mkdtemp(prefix=f"gradeconv-{kind}-{_namespace()}-{os.getpid()}-"))


def sweep(kind: str, folder: Path | None = None) -> list[Path]:
    """Remove the `kind` folders in `folder` (the temporary folder) whose process is gone; those removed."""
    folder = folder or Path(tempfile.gettempdir())
    namespace = _namespace()
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for name in entries:
        match = _NAME.match(name)
        if match is None or match["kind"] != kind or int(match["namespace"]) != namespace:
            continue
        path = folder / name
        if _ours(path) and not _alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _ours(path: Path) -> bool:
    """A real folder (never a link someone planted) owned by this user."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True
