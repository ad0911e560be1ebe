"""Python 2 leftovers and names numpy 2 removed get a hint saying what to write instead (issue 11, item 5),
whether the error comes when the file is imported or inside a graded function."""
import pytest

from gradeconv import outcomes
from gradeconv.judging import diagnosis
from gradeconv.judging.grading import grade_submission
from gradeconv.results import CaseResult
from gradeconv.submissions import Submission
from tests.conftest import CORRECT

SOURCE = CORRECT.read_text()
POOL_FORWARD = "def max_pool_forward_naive(x, pool_param):\n"
POOL_FORWARD_TEST = "max-pool forward: the notebook's example"

#: name -> (code planted first in max_pool_forward_naive, words of the hint)
IN_A_FUNCTION = {
    "xrange": ("    for _ in xrange(2):\n        pass\n", "write `range`"),
    "np_int": ("    a = np.zeros(2, dtype=np.int)\n", "write `int`"),
    "np_float": ("    a = np.zeros(2, dtype=np.float)\n", "write `float`"),
    "np_lib_pad": ("    a = np.lib.pad(x, 1)\n", "write `np.pad`"),
    "unravel_dims": ("    a = np.unravel_index(0, dims=(2, 2))\n", "write `np.unravel_index(i, shape)`"),
    "slash_sizes": ("    a = np.zeros((x.shape[2] / 2, 1))\n", "use integer division `//`"),
    "past_xrange": ("    from past.builtins import xrange\n    for _ in xrange(2):\n        pass\n",
                    "write `range` and drop that import"),
}
#: name -> (source placed above the correct solution, words of the hint)
AT_IMPORT = {
    "print_statement": ('print "loading layers"\n', "write `print(x)`"),
    "xrange_at_import": ("SIZES = [k for k in xrange(3)]\n", "write `range`"),
    "np_float_at_import": ("import numpy as np\nDTYPE = np.float\n", "write `float`"),
}


def grade(tmp_path, rubric, name: str, source: str):
    folder = tmp_path / name / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(source)
    return {test.name: test for test in grade_submission(Submission(id=name, path=tmp_path / name), rubric).tests}


@pytest.mark.parametrize("name", sorted(IN_A_FUNCTION))
def test_a_hint_for_an_error_inside_a_graded_function(name, small_rubric, tmp_path):
    code, hint = IN_A_FUNCTION[name]
    tests = grade(tmp_path, small_rubric, name, SOURCE.replace(POOL_FORWARD, POOL_FORWARD + code, 1))
    failed = tests.pop(POOL_FORWARD_TEST)
    assert failed.outcome == outcomes.ERROR and failed.score == 0
    assert hint in (failed.diagnosis or ""), failed.output
    assert f"diagnosis: {failed.diagnosis}" in failed.output  # what the student reads
    assert all(test.passed for test in tests.values())


@pytest.mark.parametrize("name", sorted(AT_IMPORT))
def test_a_hint_for_an_error_when_the_file_is_imported(name, small_rubric, tmp_path):
    header, hint = AT_IMPORT[name]
    for test in grade(tmp_path, small_rubric, name, header + SOURCE).values():
        assert test.outcome == outcomes.ERROR
        assert hint in (test.diagnosis or "") and f"diagnosis: {test.diagnosis}" in test.output, test.output


@pytest.mark.parametrize("message, hint", [
    ("NameError at layers.py:3: name 'xrange' is not defined", "write `range`"),
    ("SyntaxError in layers.py:1: Missing parentheses in call to 'print'. Did you mean print(...)?",
     "write `print(x)`"),
    ("AttributeError at layers.py:9: module 'numpy' has no attribute 'int'.\\n`np.int` was a deprecated alias",
     "write `int`"),
    ("AttributeError at layers.py:9: module 'numpy' has no attribute 'float'.\\n`np.float` was a deprecated alias "
     "for the builtin `float`... use `np.float64` here", "write `float`"),
    ("AttributeError at layers.py:9: module 'numpy.lib' has no attribute 'pad'", "write `np.pad`"),
    ("TypeError at layers.py:9: unravel_index() got an unexpected keyword argument 'dims'", "`shape`"),
    ("AttributeError at layers.py:9: 'dict' object has no attribute 'iteritems'", "write `.items()`"),
])
def test_each_hint_is_matched_on_the_message(message, hint):
    hints = diagnosis.hints(CaseResult(outcomes.ERROR, message), "max_pool_forward_naive", [])
    assert any(hint in text for text in hints), hints
    assert not any("`//`" in text for text in hints), hints  # np.float's message is not a `/` size


def test_an_unrelated_error_gets_no_version_hint():
    hints = diagnosis.hints(CaseResult(outcomes.ERROR, "NameError at layers.py:3: name 'xrang' is not defined"),
                            "max_pool_forward_naive", [])
    assert hints == []
