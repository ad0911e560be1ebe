"""Finding submissions and their graded module.

A submission is a .py file, a folder or a .zip. In a folder of submissions, every
other file (a readme, a CSV, an image, a notebook) and every folder without a
.py, .ipynb or .zip anywhere inside is skipped, with the reason, never graded as a
student. Ids come from names, without their .py, .zip or .ipynb; Canvas
bulk-download names (``<name>[_LATE]_<userid>_<attachmentid>_<filename>``) give
the student's name and a late flag. Duplicate ids get a suffix, never merged.

Nothing here follows a symbolic link below a submission: a link could bring the
reference, the rubric or another student's work into a student's grading.
"""
from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gradeconv.temporary import remove_tree, temporary_folder

JUNK_NAMES = {"__MACOSX", "__pycache__"}  # and every dot-name: ._*, .ipynb_checkpoints, .git
CANVAS_NAME = re.compile(r"^(?P<name>[^_]+?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$")
MAX_ZIP_BYTES = 50 << 20
MAX_ZIP_MEMBERS = 2000
MAX_MODULE_BYTES = 5 << 20
#: what a file must end with (any case) to be graded: a student's .py or .zip
SUBMISSION_SUFFIXES = (".py", ".zip")
#: a folder of a class folder is a student's when it holds one of these at any depth
STUDENT_WORK_SUFFIXES = (".py", ".zip", ".ipynb")
#: entries looked at below a folder before it is taken as a student's without further search
MAX_FOLDER_SCAN = 10_000
#: open flags for reading a submission's file: never through a link, never blocking on a FIFO
SAFE_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SubmissionError(Exception):
    """A submission that cannot be read: the message says what and how to fix it."""


class NotRegularFile(Exception):
    """A file that is not read because it is not a plain regular file; the message says what it is."""


@dataclass(frozen=True)
class Submission:
    id: str
    path: Path
    late: bool = False
    alone: bool = False  # a .py file among other students' files: graded without its siblings


@dataclass(frozen=True)
class Skipped:
    """Something found in a class folder that is not graded: `reason` says why, in words."""
    path: Path
    reason: str


@dataclass(frozen=True)
class Found:
    """What discovery found: the submissions, what it skipped, and the given folders without any submission."""
    submissions: list[Submission]
    skipped: list[Skipped]
    empty: list[Path]


def file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words ("a symbolic link"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "a special file"


def read_regular_file(path: Path | str, limit: int, dir_fd: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, never following a link.

    Checked with lstat, opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO swapped in
    cannot block) and checked again on the open descriptor, so a swap between the
    check and the open cannot redirect the read. Raises NotRegularFile otherwise.
    """
    try:
        kind = file_kind(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        if kind:
            raise NotRegularFile(kind)
        fd = os.open(path, SAFE_READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        raise NotRegularFile(f"unreadable ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if file_kind(info.st_mode):
            raise NotRegularFile(file_kind(info.st_mode))
        if info.st_size > limit or len(data := _read_at_most(fd, limit + 1)) > limit:
            raise NotRegularFile(f"larger than {limit >> 20} MB")  # checked twice: the file may grow
        return data
    except OSError as error:
        raise NotRegularFile(f"unreadable ({error.strerror})") from None
    finally:
        os.close(fd)


def _read_at_most(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def is_junk(path: Path) -> bool:
    return path.name in JUNK_NAMES or path.name.startswith(".")


def parse_name(name: str) -> tuple[str, bool]:
    """(id, late) from a file or folder name, understanding Canvas bulk-download names."""
    match = CANVAS_NAME.match(name)
    if match:
        return match["name"], bool(match["late"])
    for suffix in STUDENT_WORK_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], False
    return name, False


def canvas_user_id(name: str) -> str | None:
    """The Canvas user id in a bulk-download name (`<name>[_LATE]_<userid>_<attachmentid>_<file>`), else None."""
    match = CANVAS_NAME.match(name)
    return match["user"] if match else None


def _present(path: Path) -> bool:
    """A file or a link (even a dangling one) is there: find_module judges which."""
    return path.is_file() or path.is_symlink()


def is_single_submission(folder: Path, module_file: str, package: str = "cs231n") -> bool:
    """A folder holding the graded module itself, or in the course's package (or any package) right below it."""
    if _present(folder / module_file):
        return True
    return any(_present(child / module_file) for child in folder.iterdir()
               if child.is_dir() and not is_junk(child) and (child.name == package or (child / "__init__.py").is_file()))


def discover(paths: list[Path], module_file: str = "layers.py", package: str = "cs231n") -> list[Submission]:
    """Every submission in `paths`: each a submission itself or a folder of them (see find_submissions)."""
    return find_submissions(paths, module_file, package).submissions


def find_submissions(paths: list[Path], module_file: str = "layers.py", package: str = "cs231n") -> Found:
    """The submissions in `paths`, each a submission itself or a folder of them, and what was skipped.

    A .py file found in a folder of submissions is graded alone: its siblings are
    other students' files, never staged with it. A file given by name that is not
    a .py or a .zip is skipped like one found in a folder.
    """
    entries: list[tuple[Path, bool]] = []
    skipped: list[Skipped] = []
    empty: list[Path] = []
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise SubmissionError(f"{path}: no such file or folder")
        if path.is_dir() and not is_single_submission(path, module_file, package):
            try:
                children = sorted(child for child in path.iterdir() if not is_junk(child))
            except OSError as error:
                raise SubmissionError(f"{path}: cannot list this folder ({error.strerror})") from None
            found = len(entries)
            for child in children:
                reason = not_a_submission(child)
                if reason:
                    skipped.append(Skipped(child, reason))
                else:
                    entries.append((child, True))
            if len(entries) == found:
                empty.append(path)
        elif path.is_dir() or not (reason := not_a_submission(path)):
            entries.append((path, False))
        else:
            skipped.append(Skipped(path, reason))
    return Found(assign_ids(entries), skipped, empty)


def not_a_submission(path: Path) -> str | None:
    """Why an entry of a class folder is not a student's submission (a few words), or None if it is one.

    A .py or .zip file is one (even a link or a FIFO: grading says what is wrong with
    it), and so is a folder holding a .py, .ipynb or .zip at any depth: a student who
    submitted the wrong file still gets a row saying so. Anything else is not.
    """
    if path.is_dir():
        return None if _holds_student_work(path) else "a folder without any .py, .zip or .ipynb file"
    if path.name.lower().endswith(SUBMISSION_SUFFIXES):
        return None
    if path.name.lower().endswith(".ipynb"):
        return "a notebook, not graded (the .py file, .zip or folder holding the graded module is)"
    if path.is_symlink() and not path.exists():
        return "a dangling symbolic link"
    return "not a .py file, a .zip or a folder"


def _holds_student_work(folder: Path) -> bool:
    for count, (path, _) in enumerate(walk(folder)):
        if path.name.lower().endswith(STUDENT_WORK_SUFFIXES) or count >= MAX_FOLDER_SCAN:
            return True
    return False


def assign_ids(entries: list[tuple[Path, bool]]) -> list[Submission]:
    """Submissions for (path, in a class folder) entries, with ids from their names."""
    submissions, seen = [], {}
    for entry, in_class_folder in entries:
        base, late = parse_name(entry.name)
        count = seen.get(base, 0) + 1
        seen[base] = count
        alone = in_class_folder and not entry.is_dir()
        submissions.append(Submission(base if count == 1 else f"{base}-{count}", entry, late, alone))
    return submissions


def walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below root with its lstat, skipping junk; never descends into a linked folder."""
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if is_junk(path):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                folders.append(path)
            yield path, info


def is_module(path: Path, module_file: str) -> bool:
    """Whether path is the graded file: layers.py by name, classifiers/fc_net.py by its folder too."""
    parts = tuple(module_file.split("/"))
    return path.parts[-len(parts):] == parts


def find_module(root: Path, module_file: str) -> Path:
    """The graded module at the shallowest depth below root (ties: alphabetical).

    Only a regular file counts, reached without passing through any link below root
    (root itself may be a linked folder); a graded module that is a link is an error.
    """
    if not root.is_dir():
        return _single_file(root)
    matches = [(path, info) for path, info in walk(root) if is_module(path, module_file)]
    regular = [path for path, info in matches if stat.S_ISREG(info.st_mode)]
    if regular:
        found = min(regular, key=lambda p: (len(p.relative_to(root).parts), p.as_posix()))
        if not found.resolve().is_relative_to(root.resolve()):
            raise SubmissionError(f"{root}: {found.relative_to(root)} is outside the submission")
        return found
    odd = sorted(((path, info) for path, info in matches if not stat.S_ISDIR(info.st_mode)),
                 key=lambda match: (len(match[0].relative_to(root).parts), match[0].as_posix()))
    if odd:  # e.g. layers.py is a link: say so rather than "not found"
        path, info = odd[0]
        raise SubmissionError(f"{root}: {path.relative_to(root).as_posix()} is {file_kind(info.st_mode)}; "
                              "submit the file itself")
    python_files = sorted(path.relative_to(root).as_posix() for path, _ in walk(root) if path.suffix == ".py")
    found = ", ".join(python_files[:5]) or "no .py files"
    raise SubmissionError(f"{root}: no {module_file} found (found: {found}); "
                          f"submit your {module_file}")


def _single_file(path: Path) -> Path:
    """A submission given as one file: it must be the file itself, not a link to one."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as error:
        raise SubmissionError(f"{path}: cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise SubmissionError(f"{path}: {path.name} is {file_kind(mode)}; submit the file itself")
    return path


def extract_zip(archive: Path) -> Path:
    """Unpack a .zip into a fresh temporary folder, refusing unsafe or oversized archives."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise SubmissionError(f"{archive}: more than {MAX_ZIP_MEMBERS} files in the zip")
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise SubmissionError(f"{archive}: unpacks to more than {MAX_ZIP_BYTES >> 20} MB")
            target = temporary_folder("zip")
            try:
                _extract_members(bundle, members, target)
            except BaseException:
                remove_tree(target)
                raise
            return target
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionError(f"{archive}: not a readable zip file ({error})") from None


def _extract_members(bundle: zipfile.ZipFile, members: list[zipfile.ZipInfo], target: Path) -> None:
    """Extract the members that stay inside target, skipping links."""
    for member in members:
        name = Path(member.filename)
        if name.is_absolute() or ".." in name.parts:
            continue
        if stat.S_ISLNK(member.external_attr >> 16):
            continue
        bundle.extract(member, target)


class Unpacked:
    """Context manager giving the graded module of a submission, unzipping if needed; find() gives
    its other graded modules from the same unpacked copy."""

    def __init__(self, submission: Submission, module_file: str):
        self.submission, self.module_file = submission, module_file
        self._extracted: Path | None = None
        self._temporaries: list[Path] = []

    def __enter__(self) -> Path:
        try:
            return self.find(self.module_file)
        except BaseException:
            self.close()  # no temporary folder is left behind when the submission cannot be read
            raise

    def find(self, module_file: str) -> Path:
        """A graded module of the submission (a zip is unpacked once, on first use)."""
        path = self.submission.path
        if path.is_file() and path.suffix.lower() == ".zip":
            if self._extracted is None:
                self._extracted = extract_zip(path)
                self._temporaries.append(self._extracted)
            return find_module(self._extracted, module_file)
        if path.is_file() and path.suffix != ".py":
            raise SubmissionError(f"{path}: expected a .py file, a folder or a .zip")
        module = find_module(path, module_file)
        if self.submission.alone:
            module = self._isolate(module)
        return module

    def _isolate(self, module: Path) -> Path:
        """A copy of the module alone in a fresh folder, so its siblings are not staged with it."""
        try:
            data = read_regular_file(module, MAX_MODULE_BYTES)
        except NotRegularFile as error:
            raise SubmissionError(f"{module}: {module.name} is {error}") from None
        folder = temporary_folder("file")
        self._temporaries.append(folder)
        copy = folder / module.name
        copy.write_bytes(data)
        return copy

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for folder in self._temporaries:
            remove_tree(folder)
        self._temporaries = []
