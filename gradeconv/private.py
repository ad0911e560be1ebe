"""Folders in the shared temporary folder that only this user owns and can enter.

A fixed name in /tmp could be planted by student code (a link, a FIFO, a folder
others can write), so a folder is used only after checking it is ours, a real
folder and closed to others.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def private_folder(purpose: str) -> Path | None:
    """/tmp/gradeconv-<purpose>-<euid>, made if missing; None when the name is taken by something else."""
    folder = Path(tempfile.gettempdir()) / f"gradeconv-{purpose}-{os.geteuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        return None
    return folder
