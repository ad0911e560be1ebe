"""Reproduction snippets: in the JSON and feedback, drawn from the seed when large, never for hidden tests."""
import json

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.reports import feedback
from gradeconv.judging.reproduce import HEADING
from gradeconv.submissions import Submission
from tests.conftest import ROOT, checkout_env, mutate
from tests.reproductions import assert_reproductions, correct_copy

A2 = ROOT / "tests" / "solutions" / "a2"
SOLUTION = (A2 / "cs231n" / "layers.py").read_text()
BOB = Submission("bob", ROOT / "submissions" / "bob_pad0_crop")
PAD0 = "conv backward dx: no padding (pad = 0)"


def only(rubric, name: str, **changes) -> rubrics.Rubric:
    data = rubric.model_dump()
    data["tests"] = [{**test, **changes} for test in data["tests"] if test["name"] == name]
    return rubrics.Rubric.model_validate(data)


def test_a_visible_failure_carries_its_snippet_in_json_output_and_feedback(default_rubric):
    row = grade_submission(BOB, only(default_rubric, PAD0)).to_json()
    test = row["tests"][0]
    snippet = test["extra_data"]["reproduce"]
    assert snippet and "conv_backward_naive(dout, cache)" in snippet and "np.testing.assert_allclose" in snippet
    assert f"{HEADING}\n{snippet}" in test["output"]  # what Gradescope and `gradeconv check` show
    json.dumps(row)
    markdown = feedback.render(row)
    assert f"```python\n{snippet.rstrip()}\n```" in markdown
    assert markdown.count("expected_dx = ") == 1  # the snippet once, in its own python block


def test_hidden_tests_keep_their_inputs_to_themselves(default_rubric):
    for visibility in ("hidden", "after_due_date", "after_published"):
        test = grade_submission(BOB, only(default_rubric, PAD0, visibility=visibility)).tests[0]
        assert not test.passed and test.reproduce is None and HEADING not in test.output


def test_large_inputs_are_drawn_again_from_the_seed(tmp_path):
    rubric = rubrics.Rubric.model_validate({
        "limits": {"call_seconds": 2, "submission_seconds": 30},
        "tests": [{"name": "relu forward on large inputs", "function": "relu_forward", "points": 1,
                   "examples": 3, "space": {"n": [20, 30], "d": [20, 30]}},
                  {"name": "relu backward on large inputs", "function": "relu_backward", "points": 1,
                   "examples": 3, "space": {"n": [20, 30], "d": [20, 30]}}]})
    buggy = mutate(mutate(SOLUTION, "out = np.maximum(0, x)", "out = np.maximum(0.001, x)"),
                   "dx = dout * (x > 0)", "dx = dout * (x >= 0.5)")
    package = tmp_path / "buggy" / "cs231n"
    package.mkdir(parents=True)
    (package / "layers.py").write_text(buggy)
    result = grade_submission(Submission("buggy", package.parent), rubric)
    assert [test.passed for test in result.tests] == [False, False]
    for test in result.tests:
        assert "rng = np.random.default_rng(" in test.reproduce and "np.array([[" not in test.reproduce
        assert "assert np.shape(" in test.reproduce  # the large expected output is checked where it failed
    assert assert_reproductions(result, package.parent, correct_copy(A2, tmp_path)) == 2


def test_gradeconv_check_prints_the_snippet_flush_left_and_unwrapped(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "gradeconv", "check", ROOT / "submissions" / "bob_pad0_crop"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120, env=checkout_env(COLUMNS="50"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == HEADING) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(("PASS ", "FAIL ")))
    pasted = "\n".join(lines[start:end]) + "\n"
    assert pasted.startswith("# gradeconv: test 'conv backward dx: no padding (pad = 0)'")
    compile(pasted, "pasted", "exec")  # what a student copies from the terminal is valid Python
    assert "np.testing.assert_allclose(dx, expected_dx, rtol=1e-06, atol=1e-08)" in lines[start:end]  # unwrapped


def test_a_wrong_value_carries_where_it_differs_for_visible_tests_only(default_rubric):
    frank = Submission("frank", ROOT / "submissions" / "frank_missing_bias")
    name = "conv forward: the notebook's example"
    test = grade_submission(frank, only(default_rubric, name)).tests[0]
    difference = test.difference
    assert difference["output"] == "out" and difference["shape"] == [2, 3, 2, 2]
    # exactly the bias is missing: |got - expected| is b[f] everywhere in filter f's channel
    assert all(len({value for row in channel for value in row}) == 1 for channel in difference["values"][0])
    hidden = grade_submission(frank, only(default_rubric, name, visibility="hidden")).tests[0]
    assert hidden.difference is None  # |got - expected| would give a hidden case's answers away
