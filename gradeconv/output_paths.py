"""Output paths checked before anything is graded, by probing the file system.

Each check raises OutputPathError with one line, "<path>: <what is wrong and what to do>",
for a path the reports could not be written to at the end: a folder where a file goes (or
a file where a folder goes), a parent that is a file, a folder nothing can be created in
(tried with a temporary file beside the output, created and removed at once, so an
existing results file, which --resume reads, is never touched), a device or FIFO that
writing atomically would replace, two outputs on one file, or an output on an input.
Missing parent folders are fine: the reports create them.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from gradeconv.submissions import file_kind

PROBE_PREFIX = ".gradeconv-probe-"
#: how much of an existing --json file is read to see whether it holds gradeconv results
RESULTS_HEAD = 4096


class OutputPathError(Exception):
    """An output path the reports could not be written to; the message is one line."""


def check_file(path: Path, option: str, example: str) -> None:
    """`path` can be written as a file (`option` names it in the message, `example` is a file name to suggest)."""
    path = Path(path)
    try:
        info = os.stat(path)  # a link to a folder is a folder here
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        info = None  # a parent is a file: said below
    except OSError as error:
        raise OutputPathError(f"{path}: cannot be looked at ({error.strerror}); give another file for {option}") \
            from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputPathError(f"{path}: is a folder; give a file for {option}, e.g. {path / example}")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputPathError(f"{path}: is {file_kind(info.st_mode)}, which writing {option} would replace; "
                              f"give a regular file for {option}")
    _probe(path.parent, path, option)


def check_folder(path: Path, option: str) -> None:
    """`path` is a folder files can be written in, or one that can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: is a file, not a folder; give a folder for {option} "
                              "(it is created if missing)")
    _probe(path, path, option)


def check_results_file(path: Path) -> None:
    """An existing --json file is rewritten: refuse one that holds something other than gradeconv results.

    Only its start is read (a class's results can be large): gradeconv writes "gradeconv_version" first.
    """
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO cannot block
    except OSError:
        return  # missing (fine), or said by check_file
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return
        head = os.read(descriptor, RESULTS_HEAD)
    except OSError:
        return
    finally:
        os.close(descriptor)
    if head.strip() and not (head.lstrip().startswith(b"{") and b'"gradeconv_version"' in head):
        raise OutputPathError(f"{path}: exists and is not a gradeconv results file, and --json would overwrite "
                              "it; move it away or give another file for --json")


def check_distinct(outputs: dict[str, Path | None], inputs: dict[Path, str]) -> None:
    """No two outputs on one file, and no output on an input (`inputs`: path -> what it is, in words)."""
    seen: dict[str, str] = {}
    known = {_identity(path): what for path, what in inputs.items()}
    for option, path in outputs.items():
        if path is None:
            continue
        key = _identity(path)
        if key in seen:
            raise OutputPathError(f"{path}: given to both {seen[key]} and {option}; give each its own path")
        if key in known:
            raise OutputPathError(f"{path}: is {known[key]}, which {option} would overwrite; "
                                  f"give another path for {option}")
        seen[key] = option


def _identity(path: Path) -> str:
    return os.path.realpath(path)


def _probe(folder: Path, path: Path, option: str) -> None:
    """Create and remove a temporary file in `folder`, or in its nearest existing ancestor if it is missing."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if os.path.lexists(p) or p == p.parent)
    if not existing.is_dir():
        what = "a file" if existing.exists() else "a dangling symbolic link"
        raise OutputPathError(f"{path}: {existing} is {what}, not a folder; choose a path in a folder for {option}")
    try:
        descriptor, probe = tempfile.mkstemp(dir=existing, prefix=PROBE_PREFIX)
    except OSError as error:
        raise OutputPathError(f"{path}: cannot write in {existing} ({error.strerror}); "
                              f"choose a folder you can write to for {option}") from None
    os.close(descriptor)
    os.unlink(probe)
