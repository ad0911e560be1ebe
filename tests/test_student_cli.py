"""What a new user meets at once: a path that is not a submission, and square brackets on the terminal."""
import io
import shutil
import subprocess
import sys

import pytest
from rich.console import Console

from gradeconv import rubric as rubrics
from gradeconv.reports import terminal
from tests.conftest import ROOT, checkout_env

SAMPLE = ROOT / "submissions"
DIAGNOSIS = "slicing `[pad:-pad]` gives an empty array when pad = 0: crop with `[pad:pad + H]` instead"


def gradeconv(*args, cwd=None):
    env = checkout_env(COLUMNS="250")  # wide: a diagnosis stays on one line
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def _not_submissions(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "layers.ipynb").write_text("{}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "utils.py").write_text("x = 1\n")
    return {
        ROOT / "README.md": "README.md: not a submission; give your layers.py (a .py file), a .zip",
        tmp_path / "notes.txt": "notes.txt: not a submission; give your layers.py",
        tmp_path / "layers.ipynb": "layers.ipynb: not a submission; give your layers.py",
        tmp_path / "empty": "empty: no layers.py in this folder; give your layers.py",
        tmp_path / "other": "other: no layers.py in this folder; give your layers.py",
    }


def test_check_refuses_what_is_not_a_submission(tmp_path):
    for path, message in _not_submissions(tmp_path).items():
        result = gradeconv("check", path, cwd=tmp_path)
        assert result.returncode == 2, (path, result.stdout, result.stderr)
        assert result.stdout == "" and "FAIL" not in result.stderr and "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("gradeconv: ") and message in line, line


def test_check_still_takes_a_file_a_folder_and_a_zip(tmp_path):
    shutil.make_archive(str(tmp_path / "alice"), "zip", SAMPLE / "alice")
    for path in (SAMPLE / "alice" / "cs231n" / "layers.py", SAMPLE / "alice", tmp_path / "alice.zip"):
        result = gradeconv("check", path, cwd=tmp_path)
        assert result.returncode == 0, (path, result.stdout, result.stderr)
        assert "visible tests: 100/100 points" in result.stdout


def test_square_brackets_survive_the_class_summary_and_the_check_report(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copytree(SAMPLE / "alice", folder / "alice")
    shutil.copytree(SAMPLE / "bob_pad0_crop", folder / "bob")
    graded = gradeconv(folder, "--jobs", 1, cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    summary = graded.stdout[graded.stdout.index("Most common failures"):]
    assert DIAGNOSIS in summary and "largest error" not in summary  # clustered by diagnosis, not by numbers
    checked = gradeconv("check", SAMPLE / "bob_pad0_crop", cwd=tmp_path)
    assert checked.returncode == 1
    assert f"diagnosis: {DIAGNOSIS}" in checked.stdout


def test_square_brackets_survive_the_rubric_tables(tmp_path):
    folder = tmp_path / "course [2024]"
    folder.mkdir()
    (folder / "rubric[v2].yaml").write_text((ROOT / "rubric.yaml").read_text())
    listed = gradeconv("rubrics", folder / "rubric[v2].yaml", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{folder / 'rubric[v2].yaml'}: 15 tests, 100 points" in listed.stdout


MARKUP = ["[pad:-pad]", "[bold red]", "[/]", "[link=http://x]", ":smile:", "[x[0]]"]


def _render(draw) -> str:
    stream = io.StringIO()
    draw(Console(file=stream, width=400, force_terminal=True, color_system=None))
    return stream.getvalue()


def test_every_terminal_renderer_prints_brackets_as_they_are(tmp_path):
    """Ids, test names, outputs, diagnoses, printed output and rubric paths: all shown literally."""
    text = " ".join(MARKUP)
    test = {"name": f"test {text}", "number": "1", "score": 0.0, "max_score": 5.0, "status": "failed",
            "output": f"out {text}\ndiagnosis: {text}", "visibility": "visible", "tags": [],
            "extra_data": {"function": "conv_forward_naive", "outcome": "wrong_value", "diagnosis": f"d {text}"}}
    submission = {"id": f"id {text}", "late": False, "score": 0.0, "max_score": 5.0, "tests": [test],
                  "output": f"your code printed (quoted):\n  | {text}"}
    shown = _render(lambda console: (terminal.gradebook(console, [submission]),
                                     terminal.class_summary(console, [submission]),
                                     terminal.check_report(console, submission)))
    for expected in (f"id {text}", f"test {text}", f"out {text}", f"d {text}", f"  | {text}"):
        assert expected in shown, expected
    path = tmp_path / "r[1] :smile:.yaml"
    path.write_text((ROOT / "rubric.yaml").read_text())
    rubric = rubrics.load(path)
    shown = _render(lambda console: (terminal.rubric_tests(console, rubric),
                                     terminal.rubric_list(console, [(f"n{text}", rubric)])))
    assert f"{path}: 15 tests" in shown and f"n{text}" in shown


@pytest.mark.parametrize("renderer", ["gradebook", "class_summary", "check_report", "rubric_list", "rubric_tests"])
def test_no_renderer_hands_rich_a_markup_string(renderer, monkeypatch):
    """A str given to console.print or a Table is parsed as markup: every renderer gives Text."""
    from rich.table import Table

    seen = []
    original_print, original_row = Console.print, Table.add_row
    monkeypatch.setattr(Console, "print", lambda self, *items, **kw: (seen.extend(items), original_print(self, *items, **kw)))
    monkeypatch.setattr(Table, "add_row", lambda self, *cells, **kw: (seen.extend(cells), original_row(self, *cells, **kw)))
    rubric = rubrics.load(ROOT / "rubric.yaml")
    test = {"name": "t", "number": "1", "score": 0.0, "max_score": 5.0, "status": "failed", "output": "o",
            "visibility": "visible", "tags": [], "extra_data": {"outcome": "wrong_value", "diagnosis": "d"}}
    submission = {"id": "s", "late": True, "score": 0.0, "max_score": 5.0, "tests": [test], "output": "x"}
    arguments = {"gradebook": [[submission]], "class_summary": [[submission]], "check_report": [submission],
                 "rubric_list": [[("default", rubric)]], "rubric_tests": [rubric]}[renderer]
    console = Console(file=io.StringIO())
    getattr(terminal, renderer)(console, *arguments)
    tables = [item for item in seen if isinstance(item, Table)]
    assert not [item for item in seen if isinstance(item, str)]
    assert not [table.title for table in tables if isinstance(table.title, str)]
