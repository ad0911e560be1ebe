"""A module the sandbox does not provide, or the rubric forbids, costs only the functions that use it.

Importing one gives the submission a stand-in that fails on first real use (issue 11, item 3):
`error: uses matplotlib, which the grader does not provide`, `forbidden: uses torch`. The real
forbidden module never reaches student code, and nothing the worker claims turns into points.
"""
from pathlib import Path

import pytest

from gradeconv import outcomes
from gradeconv.judging.grading import grade_submission
from gradeconv.judging.source_check import MODULE_LEVEL, forbidden_imports
from gradeconv.submissions import Submission
from tests.conftest import CORRECT

SOURCE = CORRECT.read_text()
POOL_FORWARD = "def max_pool_forward_naive(x, pool_param):\n"
POOL_FORWARD_TEST = "max-pool forward: the notebook's example"
EDITOR_IMPORTS = ("import matplotlib.pyplot as plt\nfrom IPython import display\nimport traitlets\n"
                  "from IPython.display import clear_output\nfrom past.builtins import xrange\n"
                  "from torch import nn\nimport torch\nimport torch.nn.functional as F\nimport tensorflow as tf\n"
                  "from cs231n.layer_utils import *\nfrom . import fast_layers\n")


def submission(tmp_path: Path, name: str, header: str = "", in_pool_forward: str = "") -> Submission:
    """The correct solution with `header` above it and `in_pool_forward` first in max_pool_forward_naive."""
    source = header + SOURCE.replace(POOL_FORWARD, POOL_FORWARD + in_pool_forward, 1)
    folder = tmp_path / name / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(source)
    return Submission(id=name, path=tmp_path / name)


def by_name(result):
    return {test.name: test for test in result.tests}


def assert_only_pool_forward_failed(result, outcome: str, message: str):
    tests = by_name(result)
    failed = tests.pop(POOL_FORWARD_TEST)
    assert failed.outcome == outcome and failed.score == 0, failed.output
    assert failed.output.startswith(message), failed.output
    for test in tests.values():
        assert test.outcome == outcomes.PASSED and test.score == test.points, f"{test.name}: {test.output}"


def test_unused_editor_imports_cost_nothing(small_rubric, tmp_path):
    result = grade_submission(submission(tmp_path, "auto_imports", EDITOR_IMPORTS), small_rubric)
    assert result.score == result.max_score, [t.output for t in result.tests if not t.passed]


def test_a_function_using_matplotlib_fails_alone(small_rubric, tmp_path):
    sub = submission(tmp_path, "plots", EDITOR_IMPORTS, "    plt.imshow(x[0, 0])\n")
    assert_only_pool_forward_failed(grade_submission(sub, small_rubric), outcomes.ERROR,
                                    "uses matplotlib, which the grader does not provide (layers.py:")


def test_calling_a_name_imported_from_a_missing_module_fails_clearly(small_rubric, tmp_path):
    sub = submission(tmp_path, "displays", EDITOR_IMPORTS, "    display(x)\n")
    assert_only_pool_forward_failed(grade_submission(sub, small_rubric), outcomes.ERROR,
                                    "uses IPython, which the grader does not provide")


def test_a_function_using_torch_is_forbidden_alone(small_rubric, tmp_path):
    """Seen in the source by the parent, whatever the worker says."""
    sub = submission(tmp_path, "torch_user", EDITOR_IMPORTS, "    pool = nn.MaxPool2d(2)\n")
    assert_only_pool_forward_failed(grade_submission(sub, small_rubric), outcomes.FORBIDDEN, "uses torch")


def test_a_forbidden_import_the_source_check_cannot_see_gets_a_stand_in(small_rubric, tmp_path):
    """importlib with a built name: no import statement to read; the worker's stand-in fails the use."""
    use = "    import importlib\n    t = importlib.import_module('to' + 'rch')\n    t.zeros(3)\n"
    assert_only_pool_forward_failed(grade_submission(submission(tmp_path, "hidden_torch", "", use), small_rubric),
                                    outcomes.FORBIDDEN, "uses torch, which this assignment forbids")


def test_the_real_forbidden_module_never_reaches_student_code(small_rubric, tmp_path):
    """yaml is installed where the `none` mode's worker can import it; forbidden, it is a stand-in all the same."""
    pytest.importorskip("yaml")
    rubric = small_rubric.model_copy(update={"forbidden_imports": ("torch", "yaml")})
    use = ("    import importlib, sys\n    m = importlib.import_module('ya' + 'ml')\n"
           "    assert type(m).__name__ == 'StandIn' and not hasattr(sys.modules['yaml'], '__file__')\n"
           "    m.safe_load('1')\n")
    result = grade_submission(submission(tmp_path, "yaml_user", "import yaml\n", use), rubric, sandbox="none")
    assert_only_pool_forward_failed(result, outcomes.FORBIDDEN, "uses yaml, which this assignment forbids")


def test_a_use_at_import_fails_the_whole_file(small_rubric, tmp_path):
    result = grade_submission(submission(tmp_path, "styles", EDITOR_IMPORTS + "plt.style.use('ggplot')\n"),
                              small_rubric)
    for test in result.tests:
        assert test.outcome == outcomes.ERROR, test.output
        assert test.output.startswith("uses matplotlib, which the grader does not provide (layers.py:12)")


def test_a_forged_stand_in_error_is_no_better_than_a_failure(small_rubric, tmp_path):
    """A wrong function raising the worker's own exception names: still zero, and `forbidden` only for a
    module the rubric really forbids."""
    forge = ("    class ForbiddenModuleUsed(ImportError):\n        pass\n"
             "    raise ForbiddenModuleUsed('uses numpy', name='numpy')\n")
    assert_only_pool_forward_failed(grade_submission(submission(tmp_path, "forger", "", forge), small_rubric),
                                    outcomes.ERROR, "uses numpy, which the grader does not provide")


@pytest.mark.parametrize("kind", outcomes.STAND_IN_USED)
@pytest.mark.parametrize("module", ["torch", "numpy", "matplotlib", None])
def test_no_stand_in_claim_maps_to_a_pass(kind, module):
    header = {"status": "raised", "type": kind, "message": "passed", "module": module, "where": None}
    outcome, message = outcomes.raised(header, "a call", ("torch",))
    expected = outcomes.FORBIDDEN if module == "torch" else outcomes.ERROR
    assert outcome == expected and message.startswith(f"uses {module or '?'}")


@pytest.mark.parametrize("source, expected", [
    ("import torch\nimport numpy as np\ndef a(x):\n    return np.zeros(3)\n", {}),
    ("from torch import nn\ndef a():\n    return nn.Linear\ndef b():\n    return 1\n", {"a": "torch"}),
    ("import torch.nn.functional as F\ndef h(x):\n    return F.relu(x)\ndef a(x):\n    return h(x)\n"
     "def b():\n    return 2\n", {"h": "torch", "a": "torch"}),
    ("def a():\n    import tensorflow as tf\n    return 1\ndef b():\n    return 1\n", {"a": "tensorflow"}),
    ("import torch\nT = torch\ndef a():\n    return T.zeros\n", {"a": "torch"}),
    ("import torch\nx = torch.zeros(3)\ndef a(x):\n    return x\n", {MODULE_LEVEL: "torch"}),
    ("from torch import *\ndef a():\n    return 1\n", {MODULE_LEVEL: "torch"}),
    ("import torch\ndef a():\n    return 1\nif __name__ == '__main__':\n    print(torch.zeros(3))\n", {}),
    ("import matplotlib.pyplot as plt\ndef a():\n    plt.plot()\n", {}),
    ("import torch.nn.functional as F\ndef a(w):\n    F, C = w.shape\n    return F\n", {}),  # its own F
    ("def a(:\n", {}),
])
def test_the_source_check_names_the_functions_using_a_forbidden_module(tmp_path, source, expected):
    module = tmp_path / "layers.py"
    module.write_text(source)
    assert forbidden_imports(module, ("torch", "tensorflow", "jax")) == expected
