"""Laying out one submission for its worker.

The stage is a fresh temporary folder:
    runtime/  the worker and its framing module (ours)
    pkg/      package ``cs231n``: the student's files, the provided im2col helper
    work/     the worker's empty, writable working directory
    logs/     the worker's captured stdout and stderr (never mounted in the jail)
The student's original files are only ever read, and only regular files are
copied: never through a symbolic link (which could point at the reference or
another student's work), never a device or FIFO. What was skipped is reported.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import reference.im2col

from gradeconv.sandbox import wire, worker
from gradeconv.temporary import prefix, remove_tree, temporary_folder
from gradeconv.submissions import NotRegularFile, SubmissionError, read_regular_file

MAX_COPIED_FILE_BYTES = 5 << 20
HELPER = "im2col.py"
STAGE_KIND = "stage"
STAGE_PREFIX = prefix(STAGE_KIND)  # every stage's name starts so (accounts.py finds stale ones by it)


@dataclass(frozen=True)
class Stage:
    root: Path
    package: str
    module: str  # dotted, e.g. "cs231n.layers"
    helper_note: str | None  # what happened to a helper the student shipped
    skipped: tuple[str, ...] = ()  # sibling files not copied, with why: "helper.py (a symbolic link)"

    @property
    def package_dir(self) -> Path:
        return self.root / "pkg" / self.package


def stage_module(module_file: Path, package: str, module_name: str, own_helper: bool) -> Stage:
    """Copy the graded module and its sibling .py files (regular files only) into a fresh stage."""
    root = temporary_folder(STAGE_KIND)
    try:
        return _fill(root, module_file, package, module_name, own_helper)
    except BaseException:
        remove_tree(root)
        raise


def _fill(root: Path, module_file: Path, package: str, module_name: str, own_helper: bool) -> Stage:
    for folder in ("runtime", "pkg", "work", "logs"):
        (root / folder).mkdir()
    shutil.copyfile(worker.__file__, root / "runtime" / "worker.py")
    shutil.copyfile(wire.__file__, root / "runtime" / "wire.py")
    package_dir = root / "pkg" / package
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text("")
    folder = os.open(module_file.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        module_bytes = _read_module(module_file, folder)
        copied, skipped = _copy_siblings(folder, module_file.name, package_dir)
    finally:
        os.close(folder)
    (package_dir / f"{module_name}.py").write_bytes(module_bytes)
    shipped = HELPER in copied
    note = None
    if shipped and own_helper:
        note = "used the submission's own im2col.py (rubric: helper: submission)"
    else:
        shutil.copyfile(reference.im2col.__file__, package_dir / HELPER)
        if shipped:
            note = "ignored the submission's im2col.py and used the provided helper"
    return Stage(root=root, package=package, module=f"{package}.{module_name}", helper_note=note,
                 skipped=tuple(skipped))


def _read_module(module_file: Path, folder: int) -> bytes:
    """The graded module's bytes; it must be a regular file."""
    try:
        return read_regular_file(module_file.name, MAX_COPIED_FILE_BYTES, dir_fd=folder)
    except NotRegularFile as error:
        raise SubmissionError(f"{module_file}: {module_file.name} is {error}; submit the file itself") from None


def _copy_siblings(folder: int, graded: str, package_dir: Path) -> tuple[set[str], list[str]]:
    """Copy the regular .py files of the open folder; (names copied, "name (why)" of those skipped)."""
    copied, skipped = set(), []
    names = sorted(name for name in os.listdir(folder)
                   if name.endswith(".py") and name not in ("__init__.py", graded))
    for name in names:
        try:
            data = read_regular_file(name, MAX_COPIED_FILE_BYTES, dir_fd=folder)
        except NotRegularFile as reason:
            skipped.append(f"{name} ({reason})")
            continue
        (package_dir / name).write_bytes(data)
        copied.add(name)
    return copied, skipped


def remove(stage: Stage) -> None:
    remove_tree(stage.root)
