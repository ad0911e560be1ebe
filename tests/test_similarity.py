"""`gradeconv similarity`: disguised copies are caught, independent solutions and starter code are not."""
from __future__ import annotations

import csv
import html
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradeconv import cli, similarity
from gradeconv.fingerprints import Unparsable, module_prints
from gradeconv.reports import html_report, similarity_report
from tests.conftest import CORRECT, ROOT, VECTORISED
from tests.disguises import KINDS, disguise
from tests.test_html_report import Elements, open_in_chromium

CORPUS = ROOT / "benchmarks" / "similarity_corpus"
REFERENCE_LAYERS = ROOT / "reference" / "layers.py"
SOLUTION_A2 = ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py"  # its conv and pool layers are alice's
SOLUTION_A3 = ROOT / "tests" / "solutions" / "a3" / "cs231n" / "rnn_layers.py"
#: independently written solutions (none copies another)
INDEPENDENT = {"alice": CORRECT, "judyjones": VECTORISED, "solution_a3": SOLUTION_A3,
               **{path.stem: path for path in sorted(CORPUS.glob("*.py"))}}

STARTER = '''
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    """A naive implementation of the forward pass for a convolutional layer.

    Input: x (N, C, H, W), w (F, C, HH, WW), b (F,), conv_param {'stride', 'pad'}.
    Returns a tuple of (out, cache).
    """
    out = None
    ###########################################################################
    # TODO: Implement the convolutional forward pass.                         #
    ###########################################################################
    pass
    cache = (x, w, b, conv_param)
    return out, cache


def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass for batch normalization."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)

    N, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))

    out, cache = None, None
    if mode == "train":
        # TODO: the training-time forward pass
        pass
    elif mode == "test":
        # TODO: the test-time forward pass
        pass
    else:
        raise ValueError('Invalid forward batchnorm mode "%s"' % mode)

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache
'''


def side(name: str, source: str, kind: str = "submission") -> similarity.Side:
    return similarity.Side(name, kind, name, module_prints(source))


def pairs(report: similarity.Report) -> set[tuple[str, str]]:
    return {(m.a, m.b) for m in report.matches}


def long_functions(source: str) -> list[str]:
    """The functions long enough to be compared alone."""
    return [name for name, function in module_prints(source).items()
            if len(function.fingerprints) >= similarity.DEFAULT_MIN_FINGERPRINTS]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("original", ["alice", "judyjones", "offsets_layers", "loops_a2_layers", "solution_a3"])
def test_each_disguise_is_caught_against_its_original(original, kind):
    source = INDEPENDENT[original].read_text()
    copy = disguise(source, kind, seed=7)
    assert copy != source
    report = similarity.compare([side(original, source), side("copier", copy)], [])
    flagged = {m.function for m in report.matches if {m.a, m.b} == {original, "copier"}}
    assert None in flagged  # the whole file
    assert set(long_functions(source)) <= flagged  # and every function long enough to tell


def test_disguises_leave_the_fingerprints_of_renaming_layout_comments_order_and_augmented_assignment():
    source = CORRECT.read_text()
    for kind in ("rename", "reformat", "comments", "augassign", "while"):
        original, copy = module_prints(source), module_prints(disguise(source, kind, seed=3))
        assert {n: set(f.fingerprints) for n, f in copy.items()} == {n: set(f.fingerprints) for n, f in original.items()}, kind


@pytest.mark.parametrize("with_a2", [False, True])
def test_independent_solutions_are_not_flagged(with_a2):
    students = [side(name, path.read_text()) for name, path in INDEPENDENT.items()]
    if with_a2:  # the assignment 2 solution took alice's conv and pool layers: not alongside alice
        students = [s for s in students if s.id != "alice"] + [side("solution_a2", SOLUTION_A2.read_text())]
    report = similarity.compare(students, [similarity.reference_side()])
    assert report.matches == []
    below = similarity.compare(students, [similarity.reference_side()], similarity.Settings(threshold=0.1))
    assert below.matches  # they do share something: the threshold is what keeps them apart


def test_a_copy_of_the_reference_is_flagged_as_reference():
    copied = disguise(REFERENCE_LAYERS.read_text(), "all", seed=1)
    report = similarity.compare([side("mallory", copied), side("alice", CORRECT.read_text())],
                                [similarity.reference_side()])
    assert pairs(report) == {("mallory", "reference")}
    flagged = {m.function for m in report.matches}
    assert {None, "conv_forward_naive", "conv_backward_naive", "batchnorm_forward", "softmax_loss"} <= flagged
    assert all(0.6 <= m.similarity <= 1 for m in report.matches)


def test_copies_of_a_known_solution_and_between_students(tmp_path):
    known = tmp_path / "known"
    (known / "solution_2019" / "cs231n").mkdir(parents=True)
    shutil.copy(CORPUS / "strided_layers.py", known / "solution_2019" / "cs231n" / "layers.py")
    shutil.copy(CORPUS / "positions_layers.py", known / "found_online.py")
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    (class_folder / "ann.py").write_text(disguise((CORPUS / "strided_layers.py").read_text(), "all", seed=2))
    (class_folder / "ben.py").write_text(disguise((CORPUS / "indexed_layers.py").read_text(), "rename", seed=2))
    (class_folder / "cat.py").write_text(disguise((CORPUS / "indexed_layers.py").read_text(), "while", seed=5))
    (class_folder / "dan.py").write_text(CORRECT.read_text())
    found = cli.find_submissions([class_folder]).submissions
    report = similarity.find_copies(found, "layers.py", known=[known])
    assert pairs(report) == {("ann", str(known / "solution_2019")), ("ben", "cat")}


def starter_prints(source: str) -> frozenset[int]:
    return frozenset(f for function in module_prints(source).values() for f in function.fingerprints)


def test_starter_code_alone_is_not_flagged():
    """Signatures, docstrings, comments and a short scaffold leave too little; a long scaffold needs --starter."""
    short = STARTER[:STARTER.index("def batchnorm_forward")]
    for starter in (short, STARTER):
        files = [side(f"student{i}", disguise(starter, kind, seed=i)) for i, kind in enumerate(KINDS)]
        report = similarity.compare([*files, side("alice", CORRECT.read_text())], [similarity.reference_side()],
                                    starter=starter_prints(STARTER) if starter == STARTER else frozenset())
        assert report.matches == []


def test_starter_file_removes_the_code_every_student_was_given():
    own = ["\n    out = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) * gamma + beta",
           "\n    mu = np.mean(x, axis=0)\n    out = gamma * (x - mu) / np.sqrt(np.var(x, axis=0) + eps) + beta"]
    scaffold = STARTER.replace("        # TODO: the training-time forward pass\n        pass", "        " + own[0].strip())
    first = side("first", scaffold)
    second = side("second", STARTER.replace("        # TODO: the training-time forward pass\n        pass",
                                             own[1].replace("\n    ", "\n        ")))
    everything = similarity.Settings(threshold=0.0)

    def batchnorm(starter: frozenset[int]) -> float:
        report = similarity.compare([first, second], [], everything, starter)
        return next(m.similarity for m in report.matches if m.function == "batchnorm_forward")

    assert batchnorm(frozenset()) > 0.4  # the scaffold makes two different training passes look alike
    assert batchnorm(starter_prints(STARTER)) < 0.1


def test_what_more_than_half_a_large_class_shares_is_an_idiom():
    source = CORRECT.read_text()
    everyone = [side(f"s{i}", disguise(source, "rename", seed=i)) for i in range(22)]
    assert similarity.compare(everyone, []).matches == []
    few = everyone[:4] + [side(name, path.read_text()) for name, path in INDEPENDENT.items() if name != "alice"]
    assert len(pairs(similarity.compare(few, []))) == 6  # 4 copies among 10 students: every pair of them


def test_unreadable_submissions_are_listed_not_compared():
    report = similarity.compare([side("alice", CORRECT.read_text()),
                                 similarity.Side("grace", "submission", "grace.py", problem="not valid Python")], [])
    assert [s.id for s in report.not_compared] == ["grace"] and report.matches == []


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The CLI on a class of four (two copying pairs, one of them with a formula for a name), its JSON, CSV and HTML."""
    root = tmp_path_factory.mktemp("similarity")
    folder = root / "class"
    folder.mkdir()
    hostile = "</pre><script>window.pwned=1</script><b>bold</b>"
    (folder / "alice.py").write_text(CORRECT.read_text())
    (folder / "=HYPERLINK(1).py").write_text(disguise(CORRECT.read_text(), "all", seed=4).replace(
        "def conv_forward_naive(", f"def conv_forward_naive(\n        # {hostile}\n        "))
    (folder / "judy.py").write_text(VECTORISED.read_text())
    shutil.copy(CORPUS / "strided_layers.py", folder / "<b>mallory<i>.py")
    result = subprocess.run([sys.executable, "-m", "gradeconv", "similarity", str(folder), "--json", "out.json",
                             "--csv", "out.csv", "--html", "out.html", "--rubric", "default", "--jobs", "1"],
                            capture_output=True, text=True, cwd=root, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return root, result.stdout, hostile


def test_json_lists_the_flagged_pairs_most_similar_first(outputs):
    root, stdout, _ = outputs
    data = json.loads((root / "out.json").read_text())
    assert data and all(set(entry) == {"a", "b", "function", "similarity"} for entry in data)
    assert {(e["a"], e["b"]) for e in data} == {("=HYPERLINK(1)", "alice")}
    assert [e["similarity"] for e in data] == sorted((e["similarity"] for e in data), reverse=True)
    assert None in [e["function"] for e in data] and all(0 <= e["similarity"] <= 1 for e in data)
    assert "1 pairs at or above similarity 0.6" in " ".join(stdout.split())


def test_csv_cells_never_start_a_formula(outputs):
    root, _, _ = outputs
    rows = list(csv.reader(io.StringIO((root / "out.csv").read_text())))
    assert rows[0] == ["a", "b", "function", "similarity"]
    assert {row[0] for row in rows[1:]} == {"'=HYPERLINK(1)"}
    assert "" in [row[2] for row in rows[1:]] and all(0 <= float(row[3]) <= 1 for row in rows[1:])


def test_html_shows_pairs_side_by_side_and_escapes_student_text(outputs):
    root, _, hostile = outputs
    text = (root / "out.html").read_text(encoding="utf-8")
    parsed = Elements(text)
    assert parsed.scripts == [html_report.SORT_SCRIPT]
    assert [tag for tag, _ in parsed.tags if tag == "b"] == []
    assert html.escape(hostile) in text and "<script>window.pwned" not in text
    policy = next(attrs["content"] for _, attrs in parsed.tags if attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert not [attrs for _, attrs in parsed.tags if any(name.startswith("on") or name == "src" for name in attrs)]
    assert text.count('<div class="side-by-side">') >= 4 and "<mark>" in text
    assert "=HYPERLINK(1) and alice" in text


def test_grade_with_similarity_adds_the_section_to_the_class_report(tmp_path, monkeypatch):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "alice.py").write_text(CORRECT.read_text())
    (folder / "copier.py").write_text(disguise(CORRECT.read_text(), "all", seed=9).replace(
        "    return", "    # </pre><script>window.pwned=1</script>\n    return"))
    rows = [{"id": name, "late": False, "path": str(folder / f"{name}.py"), "score": 1.0, "max_score": 1.0,
             "execution_time": 0.1, "output": "", "tests": []} for name in ("alice", "copier")]
    monkeypatch.setattr(cli, "_graded", lambda todo, rubric, args: iter(rows))
    monkeypatch.setattr(cli, "protect_class", lambda submissions, rubric: None)
    report = tmp_path / "report.html"
    assert cli.main(["grade", str(folder), "--rubric", "default", "--quiet", "--similarity", "--html", str(report)]) == 0
    text = report.read_text(encoding="utf-8")
    assert '<section id="similarity">' in text and "alice and copier" in text
    findings, console = open_in_chromium(report, tmp_path)
    assert findings["errors"] == [] and console == [] and findings["pwned"] is None
    assert ["#similar-0", "DETAILS.pair"] in findings["links"]
    assert all(target is not None for _, target in findings["links"])


@pytest.mark.parametrize("arguments, message", [
    (["CLASS", "--known", "missing"], "gradeconv: --known missing: no such folder;"),
    (["CLASS", "--known", "afile"], "gradeconv: --known afile: not a folder;"),
    (["missing"], "gradeconv: missing: no such file or folder"),
    (["CLASS", "--starter", "missing.py"], "gradeconv: --starter missing.py: unreadable (No such file or directory)"),
    (["CLASS", "--threshold", "1.5"], "gradeconv: --threshold must be between 0 and 1, not 1.5"),
])
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, arguments, message):
    (tmp_path / "CLASS").mkdir()
    (tmp_path / "CLASS" / "alice.py").write_text(CORRECT.read_text())
    (tmp_path / "afile").write_text("x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(similarity, "read_class", lambda *args: pytest.fail("fingerprinted before the error"))
    assert cli.main(["similarity", *arguments, "--rubric", "default"]) == cli.USAGE_ERROR
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_the_terminal_table_shows_ids_literally():
    report = similarity.compare([side("[bold]x[/bold]", CORRECT.read_text()),
                                 side("y", disguise(CORRECT.read_text(), "all"))], [])
    console = similarity_report.Console(record=True, width=200)
    similarity_report.terminal(console, report)
    assert "[bold]x[/bold]" in console.export_text()


def test_a_student_named_reference_is_not_confused_with_the_reference():
    copied = disguise(REFERENCE_LAYERS.read_text(), "rename", seed=1)
    report = similarity.compare([side("reference", copied)], [similarity.reference_side()])
    assert pairs(report) == {("reference", "reference (bundled)")}


def test_hostile_sources_are_refused_or_fingerprinted_quickly():
    import time
    deep = "def f(x):\n    return " + "(" * 5000 + "x" + ")" * 5000 + "\n"
    with pytest.raises(Unparsable):
        module_prints(deep)
    started = time.perf_counter()
    long_block = "def f(x):\n" + "".join(f"    a{i} = x + {i}\n" for i in range(20000))
    assert module_prints(long_block)["f"].tokens == 20000 * 6  # in order: not 20,000 squared comparisons
    assert time.perf_counter() - started < 10
