"""Finding submissions and their graded module.

A submission is a .py file, a folder or a .zip. Ids come from names; Canvas
bulk-download names (``<name>[_LATE]_<userid>_<attachmentid>_<filename>``) give
the student's name and a late flag. Duplicate ids get a suffix, never merged.
"""
from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

JUNK_NAMES = {"__MACOSX", "__pycache__"}  # and every dot-name: ._*, .ipynb_checkpoints, .git
CANVAS_NAME = re.compile(r"^(?P<name>[^_]+?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$")
MAX_ZIP_BYTES = 50 << 20
MAX_ZIP_MEMBERS = 2000


class SubmissionError(Exception):
    """A submission that cannot be read: the message says what and how to fix it."""


@dataclass(frozen=True)
class Submission:
    id: str
    path: Path
    late: bool = False


def is_junk(path: Path) -> bool:
    return path.name in JUNK_NAMES or path.name.startswith(".")


def parse_name(name: str) -> tuple[str, bool]:
    """(id, late) from a file or folder name, understanding Canvas bulk-download names."""
    match = CANVAS_NAME.match(name)
    if match:
        return match["name"], bool(match["late"])
    stem = name[:-4] if name.endswith((".zip", ".ZIP")) else name
    stem = stem[:-3] if stem.endswith(".py") else stem
    return stem, False


def is_single_submission(folder: Path, module_file: str) -> bool:
    """A folder holding the graded module itself or in a package right below it."""
    if (folder / module_file).is_file():
        return True
    return any((child / module_file).is_file() for child in folder.iterdir()
               if child.is_dir() and not is_junk(child) and (child / "__init__.py").is_file())


def discover(paths: list[Path], module_file: str = "layers.py") -> list[Submission]:
    """Every submission in `paths`: each a submission itself or a folder of them."""
    entries: list[Path] = []
    for path in paths:
        if not path.exists():
            raise SubmissionError(f"{path}: no such file or folder")
        if path.is_dir() and not is_single_submission(path, module_file):
            entries += sorted(child for child in path.iterdir() if not is_junk(child))
        else:
            entries.append(path)
    return assign_ids(entries)


def assign_ids(entries: list[Path]) -> list[Submission]:
    submissions, seen = [], {}
    for entry in entries:
        base, late = parse_name(entry.name)
        count = seen.get(base, 0) + 1
        seen[base] = count
        submissions.append(Submission(base if count == 1 else f"{base}-{count}", entry, late))
    return submissions


def find_module(root: Path, module_file: str) -> Path:
    """The graded module at the shallowest depth below root (ties: alphabetical)."""
    if root.is_file():
        return root
    candidates = [path for path in root.rglob(module_file)
                  if path.is_file() and not any(is_junk(Path(part)) for part in path.relative_to(root).parts)]
    if not candidates:
        python_files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                              if not any(is_junk(Path(part)) for part in p.relative_to(root).parts))
        found = ", ".join(python_files[:5]) or "no .py files"
        raise SubmissionError(f"{root}: no {module_file} found (found: {found}); "
                              f"submit your {module_file}")
    return min(candidates, key=lambda p: (len(p.relative_to(root).parts), p.as_posix()))


def extract_zip(archive: Path) -> Path:
    """Unpack a .zip into a fresh temporary folder, refusing unsafe or oversized archives."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise SubmissionError(f"{archive}: more than {MAX_ZIP_MEMBERS} files in the zip")
            if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                raise SubmissionError(f"{archive}: unpacks to more than {MAX_ZIP_BYTES >> 20} MB")
            target = Path(tempfile.mkdtemp(prefix="gradeconv-zip-"))
            for member in members:
                name = Path(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    continue
                if stat.S_ISLNK(member.external_attr >> 16):
                    continue
                bundle.extract(member, target)
            return target
    except (zipfile.BadZipFile, OSError) as error:
        raise SubmissionError(f"{archive}: not a readable zip file ({error})") from None


class Unpacked:
    """Context manager giving the graded module of a submission, unzipping if needed."""

    def __init__(self, submission: Submission, module_file: str):
        self.submission, self.module_file = submission, module_file
        self._temporary: Path | None = None

    def __enter__(self) -> Path:
        path = self.submission.path
        if path.is_file() and path.suffix.lower() == ".zip":
            self._temporary = extract_zip(path)
            return find_module(self._temporary, self.module_file)
        if path.is_file() and path.suffix != ".py":
            raise SubmissionError(f"{path}: expected a .py file, a folder or a .zip")
        return find_module(path, self.module_file)

    def __exit__(self, *exc_info) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
