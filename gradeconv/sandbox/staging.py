"""Laying out one submission for its worker.

The stage is a fresh temporary folder:
    runtime/  the worker and its framing module (ours)
    pkg/      package ``cs231n``: the student's files (the package's .py files, its subpackages such as
              classifiers/ included), the provided helpers (im2col, and those the rubric names)
    work/     the worker's empty, writable working directory
    logs/     the worker's captured stdout and stderr (never mounted in the jail)
The student's original files are only ever read, and only regular files are
copied: never through a symbolic link (which could point at the reference or
another student's work), never a device or FIFO. What was skipped is reported.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import reference.im2col
import reference.provided

from gradeconv.sandbox import wire, worker
from gradeconv.temporary import prefix, remove_tree, temporary_folder
from gradeconv.submissions import NotRegularFile, SubmissionError, read_regular_file

MAX_COPIED_FILE_BYTES = 5 << 20
#: a submission's package is copied this many folders deep, at most this many .py files
MAX_DEPTH = 3
MAX_FILES = 200
HELPER = "im2col.py"
PROVIDED = Path(reference.provided.__file__).parent
#: provided helpers always used instead of the student's copy: the course's version needs a compiled
#: extension that is not built here (fast_layers' im2col_cython); the others only where none is shipped
ALWAYS_PROVIDED = frozenset({"fast_layers.py"})
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


def stage_module(module_file: Path, package: str, module_path: str, own_helper: bool,
                 provided: tuple[str, ...] = ()) -> Stage:
    """Copy one graded module and the rest of its package's .py files (regular files only) into a fresh stage.

    module_path is the graded file inside the package (layers.py, classifiers/fc_net.py); the
    package's root is that many folders above module_file.
    """
    return stage_package({module_path: module_file}, package, own_helper, provided)


def stage_package(files: dict[str, Path], package: str, own_helper: bool, provided: tuple[str, ...] = ()) -> Stage:
    """Copy the graded modules (module path in the package -> the file found) and the rest of their package.

    The package's root is found from the first module that sits at its path inside a package folder; a
    graded file found elsewhere (or given by itself) is written at its path all the same. The stage's
    module is the first one's.
    """
    root = temporary_folder(STAGE_KIND)
    try:
        return _fill(root, files, package, own_helper, provided)
    except BaseException:
        remove_tree(root)
        raise


def _fill(root: Path, files: dict[str, Path], package: str, own_helper: bool, provided: tuple[str, ...]) -> Stage:
    for folder in ("runtime", "pkg", "work", "logs"):
        (root / folder).mkdir()
    shutil.copyfile(worker.__file__, root / "runtime" / "worker.py")
    shutil.copyfile(wire.__file__, root / "runtime" / "wire.py")
    package_dir = root / "pkg" / package
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text("")
    graded = {module_path: _read_module(module_file) for module_path, module_file in files.items()}
    package_root = next((_package_root(module_file, module_path) for module_path, module_file in files.items()
                         if _package_root(module_file, module_path) is not None), None)
    copied, skipped = (_copy_package(package_root, package_dir, exclude=set(files),
                                     modules={*files, HELPER, *provided}) if package_root else (set(), []))
    for module_path, module_bytes in graded.items():
        target = package_dir.joinpath(*module_path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        _package_markers(package_dir, target.parent)
        target.write_bytes(module_bytes)
    shipped = HELPER in copied
    note = None
    if shipped and own_helper:
        note = "used the submission's own im2col.py (rubric: helper: submission)"
    else:
        shutil.copyfile(reference.im2col.__file__, package_dir / HELPER)
        if shipped:
            note = "ignored the submission's im2col.py and used the provided helper"
    for name in provided:
        if name in ALWAYS_PROVIDED or name not in copied:
            shutil.copyfile(PROVIDED / name, package_dir / name)
    first = next(iter(files))
    return Stage(root=root, package=package, module=f"{package}.{first[:-3].replace('/', '.')}", helper_note=note,
                 skipped=tuple(skipped))


def _package_root(module_file: Path, module_path: str) -> Path | None:
    """The package folder holding module_file at module_path; None for a file given by itself (fc_net.py
    checked alone): nothing beside it is copied."""
    parts = tuple(module_path.split("/"))
    return module_file.parents[len(parts) - 1] if module_file.parts[-len(parts):] == parts else None


def _package_markers(package_dir: Path, folder: Path) -> None:
    """An empty __init__.py in each folder from the package down to `folder` that has none."""
    while folder != package_dir:
        marker = folder / "__init__.py"
        if not marker.exists():
            marker.write_text("")
        folder = folder.parent


def _read_module(module_file: Path) -> bytes:
    """The graded module's bytes; it must be a regular file."""
    folder = os.open(module_file.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return read_regular_file(module_file.name, MAX_COPIED_FILE_BYTES, dir_fd=folder)
    except NotRegularFile as error:
        raise SubmissionError(f"{module_file}: {module_file.name} is {error}; submit the file itself") from None
    finally:
        os.close(folder)


def _copy_package(package_root: Path, package_dir: Path, exclude: set[str],
                  modules: set[str] = frozenset()) -> tuple[set[str], list[str]]:
    """Copy the regular .py files of the package, its subfolders MAX_DEPTH deep, never through a link.

    The package's own __init__.py files are not copied (the staged ones are empty: importing the
    package runs nothing of the student's). Returns (relative paths copied, "path (why)" of those skipped).
    Depth first, a folder's files before its subfolders: at most MAX_DEPTH folders are open at once, however
    many subfolders a submission has (thousands of them must not exhaust the grader's file descriptors).
    A folder named like a module the stage holds (a file beside it, or `modules`: the graded files and the
    helpers, by path in the package) is left out: a package wins over a module, and would hide it.
    """
    copied: set[str] = set()
    skipped: list[str] = []
    root = os.open(package_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _copy_folder(root, "", package_dir, exclude, copied, skipped, modules)
    finally:
        os.close(root)
    return copied, skipped


def _copy_folder(folder: int, prefix: str, package_dir: Path, exclude: set[str], copied: set[str],
                 skipped: list[str], modules: set[str]) -> None:
    """The .py files of one open folder (relative path `prefix`), then its subfolders, each opened in turn."""
    subfolders = []
    names = sorted(os.listdir(folder))
    for name in names:
        relative = prefix + name
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            if relative.count("/") + 1 < MAX_DEPTH and name.isidentifier():
                if f"{relative}.py" in modules or f"{name}.py" in names:
                    skipped.append(f"{relative}/ (a folder named like the module {name}.py, which it would hide)")
                else:
                    subfolders.append(name)
            continue
        if not name.endswith(".py") or name == "__init__.py" or relative in exclude:
            continue
        if len(copied) >= MAX_FILES:
            skipped.append(f"{relative} (more than {MAX_FILES} .py files)")
            continue
        try:
            data = read_regular_file(name, MAX_COPIED_FILE_BYTES, dir_fd=folder)
        except NotRegularFile as reason:
            skipped.append(f"{relative} ({reason})")
            continue
        target = package_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        _package_markers(package_dir, target.parent)
        target.write_bytes(data)
        copied.add(relative)
    for name in subfolders:
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=folder)
        try:
            _copy_folder(inner, prefix + name + "/", package_dir, exclude, copied, skipped, modules)
        finally:
            os.close(inner)


def remove(stage: Stage) -> None:
    remove_tree(stage.root)
