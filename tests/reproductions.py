"""Running a result's reproduction snippets in fresh interpreters, next to a buggy and a correct file."""
from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TIMEOUT = 60


def run(snippet: str, folder: Path, name: str) -> subprocess.CompletedProcess:
    """Run the snippet as a file next to the folder's cs231n/ package, as a student would."""
    path = folder / f"reproduce_{name}.py"
    path.write_text(snippet)
    try:
        return subprocess.run([sys.executable, "-E", "-s", path.name], cwd=folder, capture_output=True, text=True,
                              timeout=TIMEOUT)
    finally:
        path.unlink()


def correct_copy(solution: Path, tmp_path: Path) -> Path:
    """A throwaway copy of a correct submission folder (the snippets are written into it)."""
    copy = tmp_path / "correct_copy"
    if not copy.exists():
        shutil.copytree(solution, copy)
    return copy


def assert_reproductions(result, buggy: Path, correct: Path) -> int:
    """Every snippet fails next to the buggy file and passes next to the correct one; returns how many ran."""
    return assert_snippets(snippets_of(result), buggy, correct)


def snippets_of(result) -> list[tuple[str, str, str]]:
    """(test number, test name, snippet) of each failing test with a reproduction."""
    return [(str(test.number), test.name, test.reproduce) for test in result.tests if test.reproduce]


def assert_snippets(snippets: list[tuple[str, str, str]], buggy: Path, correct: Path) -> int:
    with ThreadPoolExecutor(4) as pool:
        on_buggy = list(pool.map(lambda item: run(item[2], buggy, item[0]), snippets))
        on_correct = list(pool.map(lambda item: run(item[2], correct, item[0]), snippets))
    for (_, name, snippet), bad, good in zip(snippets, on_buggy, on_correct):
        assert bad.returncode != 0, f"{name}: the snippet does not show the failure\n{snippet}\n{bad.stdout}"
        assert good.returncode == 0, f"{name}: the snippet fails on a correct file\n{snippet}\n{good.stderr}"
    return len(snippets)
