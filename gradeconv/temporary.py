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
import subprocess
import tempfile
from pathlib import Path

#: `rm -rf` on a tree shutil cannot remove: bounded, as a tree is (scratch limits, zip limits)
REMOVE_SECONDS = 120.0

_SWEPT: set[str] = set()
_NAME = re.compile(r"^gradeconv-(?P<kind>[a-z]+)-(?P<namespace>\d+)-(?P<pid>\d+)-[^/]+$")


def prefix(kind: str) -> str:
    """The start of the name of every temporary folder of this kind, whichever process made it."""
    return f"gradeconv-{kind}-"


def temporary_folder(kind: str) -> Path:
    """A fresh private folder (mode 0700) in the temporary folder, named for this process."""
    if kind not in _SWEPT:
        _SWEPT.add(kind)
        sweep(kind)
    return Path(tempfile.mkdtemp(prefix=f"{prefix(kind)}{_namespace()}-{os.getpid()}-"))


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
            remove_tree(path)
            removed.append(path)
    return removed


def remove_tree(path: Path) -> bool:
    """Remove a folder tree of any depth, never following a link out of it; True when nothing is left.

    shutil.rmtree recurses once per level, so student code that nests folders deeper than
    Python's recursion limit would make it raise; `rm -rf` (fts) removes such a tree too.
    """
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        pass
    if os.path.lexists(path):
        try:
            subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=REMOVE_SECONDS)
        except (OSError, subprocess.SubprocessError):
            pass
    return not os.path.lexists(path)


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
