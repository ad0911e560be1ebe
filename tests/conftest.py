import os
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


#: the quick tests of small_rubric besides the conv forward "no padding" ones
SMALL_TESTS = {"max-pool forward: the notebook's example", "max-pool backward: overlapping windows (stride < pool size)"}


@pytest.fixture(scope="session")
def small_rubric(default_rubric):
    """The default rubric reduced to a few quick tests under small limits (call_seconds leaves a busy machine
    room for every honest call: a test that needs a call to run out of time sets its own)."""
    data = default_rubric.model_dump()
    data["limits"] = {"call_seconds": 5.0, "submission_seconds": 20.0, "memory_mb": 1024}
    data["tests"] = [t for t in data["tests"] if t["name"] in SMALL_TESTS or t["name"].startswith("conv forward: no pad")]
    for test in data["tests"]:
        test["examples"] = min(test["examples"], 5)
    return rubrics.Rubric.model_validate(data)


@pytest.fixture
def private_accounts(monkeypatch):
    """Worker accounts from a uid range of this test process alone (its pid's): another grader or test run on the
    machine cannot take an account the test gives up and expects to get back."""
    from gradeconv.sandbox import accounts
    monkeypatch.setattr(accounts, "UID_BASE", 1_000_000 + os.getpid() * accounts.SLOTS)


def checkout_env(base: dict | None = None, **extra: str) -> dict:
    """An environment in which `python -m gradeconv` (from any folder) runs this checkout's gradeconv, not
    whichever one is installed (another checkout's editable install, say)."""
    env = {**(os.environ if base is None else base), **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def mutate(source: str, old: str, new: str) -> str:
    """The correct solution with one bug planted; fails loudly if the anchor text is gone."""
    assert source.count(old) >= 1, f"anchor not found: {old!r}"
    return source.replace(old, new)


@pytest.fixture
def write_submission(tmp_path):
    """Write a layers.py (or another module) inside cs231n/ and return the submission folder."""

    def write(name: str, source: str, module: str = "layers.py") -> Path:
        folder = tmp_path / name / "cs231n"
        folder.mkdir(parents=True)
        (folder / module).write_text(source)
        return tmp_path / name

    return write
