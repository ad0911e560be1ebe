import os
import shutil
from pathlib import Path

import pytest

from gradeconv import rubric as rubrics
from gradeconv.sandbox import bubblewrap

#: every sandbox mode, each run where the machine offers it
MODES = ["bubblewrap", "uid", "none"]


def skip_unless_available(mode: str) -> None:
    if mode == "bubblewrap" and not bubblewrap.available():
        pytest.skip("bubblewrap is not usable on this machine")
    if mode == "uid" and os.geteuid() != 0:
        pytest.skip("the uid sandbox needs root")

ROOT = Path(__file__).resolve().parent.parent
CORRECT = ROOT / "submissions" / "alice" / "cs231n" / "layers.py"
#: the sample class's correct vectorised solution (it imports the helper as `from im2col import ...`)
VECTORISED = ROOT / "submissions" / "judyjones_LATE_48213_990417_layers.py"
VECTORISED_IMPORT = "from im2col import im2col_indices, col2im_indices"


@pytest.fixture(scope="session")
def default_rubric():
    return rubrics.load(ROOT / "rubric.yaml")


def mutate(source: str, old: str, new: str) -> str:
    """The correct solution with one bug planted; fails loudly if the anchor text is gone."""
    assert source.count(old) >= 1, f"anchor not found: {old!r}"
    return source.replace(old, new)


@pytest.fixture
def write_submission(tmp_path):
    """Write a layers.py (inside cs231n/) and return the submission folder."""

    def write(name: str, source: str) -> Path:
        folder = tmp_path / name / "cs231n"
        folder.mkdir(parents=True)
        (folder / "layers.py").write_text(source)
        return tmp_path / name

    return write
