"""Rubric validation messages, and how submissions are found and named."""
import zipfile

import pytest

from gradeconv import cli
from gradeconv import rubric as rubrics
from gradeconv.submissions import SubmissionError, Unpacked, discover, parse_name
from tests.conftest import ROOT

VALID_TEST = "tests:\n  - name: t\n    function: conv_forward_naive\n    points: 5\n"


@pytest.mark.parametrize("text,expected", [
    ("tests: [", ":1: not valid YAML"),
    ("- just a list", "the rubric must be a mapping"),
    ("module: layers.py\n", ":1: tests: Field required"),
    ("path: x\n" + VALID_TEST, ":1: path: unknown key"),
    ("colour: red\n" + VALID_TEST, ":1: colour: unknown key; allowed here: module, package, helper, limits"),
    (VALID_TEST + "    space: {padd: [0, 1]}\n", ":5: tests.0.space.padd: unknown key; allowed here: n, c, f, out_h"),
    (VALID_TEST + "    visibility: secret\n", ":5: tests.0.visibility: must be one of"),
    (VALID_TEST + "    space: {pad: [2, 1]}\n", ":5: tests.0.space.pad: range [2, 1] is empty"),
    (VALID_TEST.replace("conv_forward_naive", "conv_forward_fast"), ":3: tests.0.function: unknown function 'conv_forward_fast'"),
    (VALID_TEST + "    outputs: [dw]\n", "outputs of conv_forward_naive are ['out']"),
    ("module: layers.txt\n" + VALID_TEST, ":1: module: module must be a .py file inside the package"),
    ("limits: {call_seconds: 0}\n" + VALID_TEST, ":1: limits.call_seconds: Input should be greater than 0"),
    (VALID_TEST + VALID_TEST[7:], "test names must be unique"),
])
def test_bad_rubrics_name_file_line_and_key(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(rubrics.RubricError) as info:
        rubrics.load(path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)
    assert "Tuple should have at least 1 item" not in str(info.value)  # only the items' own errors


def test_default_rubric_is_worth_100_points():
    rubric = rubrics.load(ROOT / "rubric.yaml")
    assert rubric.max_score == 100
    assert set(rubric.functions) == {"conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
                                     "max_pool_backward_naive"}


@pytest.mark.parametrize("name,expected", [
    ("smithjane_LATE_12345_67890_layers.py", ("smithjane", True)),
    ("smithjane_12345_67890_layers-1.py", ("smithjane", False)),
    ("alice.zip", ("alice", False)),
    ("bob.py", ("bob", False)),
    ("carol", ("carol", False)),
])
def test_names_and_canvas_late_flag(name, expected):
    assert parse_name(name) == expected


def test_discovery_ignores_junk_and_disambiguates_ids(tmp_path):
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "._alice.py").write_text("")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "alice.py").write_text("")
    (tmp_path / "alice_1_2_layers.py").write_text("")
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "layer.py").write_text("")  # the wrong file, but a student's folder
    found = discover([tmp_path])
    assert sorted(s.id for s in found) == ["alice", "alice-2", "alice-3"]
    assert len({s.path for s in found}) == 3


def test_a_folder_with_the_module_is_one_submission(tmp_path):
    (tmp_path / "cs231n").mkdir()
    (tmp_path / "cs231n" / "__init__.py").write_text("")
    (tmp_path / "cs231n" / "layers.py").write_text("")
    assert [s.path for s in discover([tmp_path])] == [tmp_path]


def test_module_found_at_shallowest_depth_in_zip(tmp_path):
    archive = tmp_path / "dan.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("hw/deep/er/layers.py", "DEEP = 1\n")
        bundle.writestr("hw/cs231n/layers.py", "SHALLOW = 1\n")
        bundle.writestr("__MACOSX/layers.py", "junk")
        bundle.writestr("../escape.py", "x")
    submission = discover([archive])[0]
    with Unpacked(submission, "layers.py") as module:
        assert module.read_text() == "SHALLOW = 1\n"
        extracted = module.parents[2]
        assert not (extracted.parent / "escape.py").exists()
    assert not extracted.exists()


def test_missing_module_says_what_was_found(tmp_path):
    (tmp_path / "eve").mkdir()
    (tmp_path / "eve" / "layer.py").write_text("")
    submission = discover([tmp_path])[0]
    with pytest.raises(SubmissionError, match="no layers.py found \\(found: layer.py\\)"):
        with Unpacked(submission, "layers.py"):
            pass


def test_a_folder_holding_the_course_package_is_one_submission(tmp_path):
    """bob/cs231n/layers.py without an __init__.py is bob's submission, not a class with a student 'cs231n'."""
    (tmp_path / "bob" / "cs231n").mkdir(parents=True)
    (tmp_path / "bob" / "cs231n" / "layers.py").write_text("x = 1\n")
    found = discover([tmp_path / "bob"])
    assert [(s.id, s.path) for s in found] == [("bob", tmp_path / "bob")]
    assert [s.id for s in discover([tmp_path])] == ["bob"]  # and the class folder above it holds bob


def hidden_rubric(tmp_path, monkeypatch, secret: bool = True) -> rubrics.Rubric:
    """The default rubric with every test hidden and, unless told otherwise, a secret."""
    text = (ROOT / "rubric.yaml").read_text().replace("    points:", "    visibility: hidden\n    points:")
    if secret:
        text += "secret_env: GRADECONV_TEST_SECRET\n"
        monkeypatch.setenv("GRADECONV_TEST_SECRET", "a long random secret")
    (tmp_path / "rubric.yaml").write_text(text)
    return rubrics.load(tmp_path / "rubric.yaml")


def test_a_rubric_without_a_secret_says_its_answers_can_be_recorded(tmp_path, monkeypatch):
    (warning,) = rubrics.load(ROOT / "rubric.yaml").predictable()
    assert "worked out in advance" in warning and "secret_env or secret_file" in warning
    assert len(hidden_rubric(tmp_path, monkeypatch, secret=False).predictable()) == 1


def test_hidden_tests_behind_a_secret_name_only_their_public_notebook_cases(tmp_path, monkeypatch):
    rubric = hidden_rubric(tmp_path, monkeypatch)
    notebook_tests = [test.name for test in rubric.tests if any(c.get("values") == "notebook" for c in test.cases)]
    warnings = rubric.predictable()
    assert len(warnings) == len(notebook_tests) == 2
    assert all(repr(name) in warning for name, warning in zip(notebook_tests, warnings))


def test_grade_warns_about_a_rubric_whose_answers_can_be_recorded(tmp_path, capsys):
    assert cli.main(["grade", str(ROOT / "submissions" / "alice"), "--json", str(tmp_path / "out.json")]) == 0
    assert "gradeconv: warning: every case of this rubric can be worked out in advance" in capsys.readouterr().err
    assert cli.main(["grade", str(ROOT / "submissions" / "alice"), "--quiet",
                     "--json", str(tmp_path / "out.json")]) == 0
    assert capsys.readouterr().err == ""  # --quiet prints nothing
