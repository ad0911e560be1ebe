"""Build a course package `cs231n` in a temporary folder and import from it.

The course helpers in reference/provided use relative imports (they are staged
as cs231n.fast_layers and so on), so tests import them the way a submission
does: from a real package on sys.path, removed again afterwards.
"""
from __future__ import annotations

import contextlib
import importlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDED = ROOT / "reference" / "provided"
SOLUTIONS = ROOT / "tests" / "solutions"
HELPERS = ("fast_layers.py", "layer_utils.py", "solver.py")

#: the reference layers import reference.im2col and reference.scratch, so the
#: package gets a thin module that re-exports them instead of a copy
REFERENCE_LAYERS = "from reference.layers import *  # noqa: F401,F403\n"


def build(root: Path, files: dict[str, str | Path]) -> Path:
    """Write cs231n/ under root: `files` maps a path inside the package to source text or a file to copy.

    im2col.py (the provided helper) and every needed __init__.py are added.
    """
    package = root / "cs231n"
    files = {"__init__.py": "", "im2col.py": ROOT / "reference" / "im2col.py", **files}
    for name, content in files.items():
        target = package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content)
    for folder in {(package / name).parent for name in files}:
        (folder / "__init__.py").touch()
    return root


def helpers() -> dict[str, Path]:
    """The three course helpers of reference/provided, by their name in the package."""
    return {name: PROVIDED / name for name in HELPERS}


def _forget() -> None:
    for name in [m for m in sys.modules if m == "cs231n" or m.startswith("cs231n.")]:
        del sys.modules[name]


@contextlib.contextmanager
def imported(root: Path, *modules: str):
    """Yield the named modules (e.g. 'cs231n.fast_layers') of the package under root; clean up after."""
    _forget()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield [importlib.import_module(name) for name in modules]
    finally:
        sys.path.remove(str(root))
        _forget()
