"""Laying out one submission for its worker.

The stage is a fresh temporary folder:
    runtime/  the worker and its framing module (ours)
    pkg/      package ``cs231n``: the student's files, the provided im2col helper
    work/     the worker's empty, writable working directory
    logs/     the worker's captured stdout and stderr (never mounted in the jail)
The student's original files are only ever read.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import reference.im2col

from gradeconv.sandbox import wire, worker

MAX_COPIED_FILE_BYTES = 5 << 20


@dataclass(frozen=True)
class Stage:
    root: Path
    package: str
    module: str  # dotted, e.g. "cs231n.layers"
    helper_note: str | None  # what happened to a helper the student shipped

    @property
    def package_dir(self) -> Path:
        return self.root / "pkg" / self.package


def stage_module(module_file: Path, package: str, module_name: str, own_helper: bool) -> Stage:
    """Copy the graded module and its sibling .py files into a fresh stage."""
    root = Path(tempfile.mkdtemp(prefix="gradeconv-stage-"))
    for folder in ("runtime", "pkg", "work", "logs"):
        (root / folder).mkdir()
    shutil.copyfile(worker.__file__, root / "runtime" / "worker.py")
    shutil.copyfile(wire.__file__, root / "runtime" / "wire.py")
    package_dir = root / "pkg" / package
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text("")
    for sibling in sorted(module_file.parent.glob("*.py")):
        if sibling.is_file() and sibling.stat().st_size <= MAX_COPIED_FILE_BYTES:
            if sibling.name != "__init__.py":
                shutil.copyfile(sibling, package_dir / sibling.name)
    shutil.copyfile(module_file, package_dir / f"{module_name}.py")
    shipped = (module_file.parent / "im2col.py").is_file() and module_file.name != "im2col.py"
    note = None
    if shipped and own_helper:
        note = "used the submission's own im2col.py (rubric: helper: submission)"
    else:
        shutil.copyfile(reference.im2col.__file__, package_dir / "im2col.py")
        if shipped:
            note = "ignored the submission's im2col.py and used the provided helper"
    return Stage(root=root, package=package, module=f"{package}.{module_name}", helper_note=note)


def remove(stage: Stage) -> None:
    shutil.rmtree(stage.root, ignore_errors=True)
