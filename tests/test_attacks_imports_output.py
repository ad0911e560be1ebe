"""Red-team tests for fair imports (stand-ins, the source check) and the capped output (issue 11, items 3-4).

Each attack is the sample class's correct solution with an attack planted first in
max_pool_forward_naive (or above it). An honest classmate is graded in the same process
after the attacker and must keep full marks. Tests marked xfail(strict=True, reason="HOLE: ...")
demonstrate holes found by this session; they start failing (XPASS) once the hole is closed.

yaml stands in for torch (`forbidden_imports: [torch, yaml]`): it is importable from the
project's site-packages in the `none` mode and from /usr/lib/python3/dist-packages in `uid`.
"""
from __future__ import annotations

import os
import time

import pytest

from gradeconv import outcomes
from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.judging.source_check import forbidden_imports
from gradeconv.sandbox import landlock
from gradeconv.sandbox import session as session_module
from gradeconv.submissions import Submission
from tests.conftest import MODES, skip_unless_available
from tests.test_fair_imports import SOURCE, by_name
from tests.test_fair_imports import submission as make_submission
FORWARD = "max-pool forward: the notebook's example"
BACKWARD = "max-pool backward: overlapping windows (stride < pool size)"
SYSTEM_PACKAGES = "/usr/lib/python3/dist-packages"
#: module-level code that takes the rubric's import hooks out (README: possible, "a policy, not a wall")
UNHOOK = ("import sys as _sys\n"
          "_sys.meta_path[:] = [f for f in _sys.meta_path\n"
          "                     if type(f).__name__ not in ('ForbiddenImports', 'MissingModules')]\n"
          f"_sys.path.append({SYSTEM_PACKAGES!r})\n")
REAL_YAML_USE = "    assert yaml.safe_load('[1, 2]') == [1, 2] and hasattr(yaml, '__file__')\n"


@pytest.fixture(scope="module")
def rubric(default_rubric):
    """Two quick max-pool tests, yaml forbidden beside torch, small limits (no call here is meant to run out
    of time: call_seconds leaves a busy machine room for the attacks' own writes and children)."""
    data = default_rubric.model_dump()
    data["limits"] = {"call_seconds": 10.0, "submission_seconds": 60.0, "memory_mb": 1024}
    data["tests"] = [t for t in data["tests"] if t["name"] in (FORWARD, BACKWARD)]
    for test in data["tests"]:
        test["examples"] = min(test["examples"], 3)
    data["forbidden_imports"] = ["torch", "yaml"]
    return rubrics.Rubric.model_validate(data)


def grade(submission, rubric, mode):
    return grade_submission(submission, rubric, sandbox=mode)


def assert_full_marks(result):
    for test in result.tests:
        assert test.outcome == outcomes.PASSED and test.score == test.points, f"{test.name}: {test.output}"


def assert_honest_classmate(tmp_path, rubric, mode, name="honest"):
    result = grade(make_submission(tmp_path, name), rubric, mode)
    assert_full_marks(result)
    return result


def needs_yaml(mode):
    skip_unless_available(mode)
    if mode == "uid" and not os.path.isdir(os.path.join(SYSTEM_PACKAGES, "yaml")):
        pytest.skip("no yaml among the system's packages")
    if mode == "uid" and landlock.abi():
        pytest.skip("the uid sandbox's Landlock rules hide the system's packages from the worker "
                    "(tests/test_attacks.py: test_a_forbidden_package_installed_on_the_system_cannot_be_imported)")
    if mode == "none":
        pytest.importorskip("yaml")


# ---------------------------------------------------------------- the source check: scopes


#: a function that reads the module-level forbidden name `torch` while binding `torch` only in
#: a nested scope (comprehension, nested function or class): Python resolves its own `torch` to the
#: module's global, the source check (_local_names walks the nested scopes too) thinks it is local
SCOPE_EVASIONS = {
    "comprehension": "import torch\ndef a(x):\n    [0 for torch in ()]\n    return torch.zeros(3)\n",
    "nested_function": "import torch\ndef a(x):\n    def _():\n        torch = 1\n    return torch.zeros(3)\n",
    "nested_class": "import torch\ndef a(x):\n    class _:\n        torch = 1\n    return torch.zeros(3)\n",
    # module-level code in the else branch of the __main__ guard runs in the grader, and is never read
    "main_guard_else": "import torch\nif __name__ == '__main__':\n    pass\nelse:\n    T = torch\n"
                       "def a(x):\n    return T.zeros(3)\n",
}


@pytest.mark.parametrize("case", sorted(SCOPE_EVASIONS))
def test_the_source_check_sees_torch_used_past_a_nested_binding(tmp_path, case):
    module = tmp_path / "layers.py"
    module.write_text(SCOPE_EVASIONS[case])
    assert forbidden_imports(module, ("torch",)) == {"a": "torch"}


def test_the_source_check_still_honours_real_locals(tmp_path):
    """The contrast: a function's own variable named like the module is not the module."""
    module = tmp_path / "layers.py"
    module.write_text("import torch\ndef a(x):\n    torch = x\n    return torch\n"
                      "def b(x):\n    return [torch for torch in x]\n")
    assert forbidden_imports(module, ("torch",)) == {}


@pytest.mark.parametrize("mode", ["uid", "none"])
def test_a_literal_use_of_the_real_forbidden_module_is_forbidden(rubric, tmp_path, mode):
    needs_yaml(mode)
    attacker = make_submission(tmp_path, "scope_trick", UNHOOK + "import yaml\n", "    [0 for yaml in ()]\n" + REAL_YAML_USE)
    result = grade(attacker, rubric, mode)
    assert_honest_classmate(tmp_path, rubric, mode)
    assert by_name(result)[BACKWARD].outcome == outcomes.PASSED  # it does not use yaml
    forward = by_name(result)[FORWARD]
    assert forward.outcome == outcomes.FORBIDDEN and forward.score == 0, forward.output


@pytest.mark.parametrize("mode", ["uid", "none"])
def test_without_the_trick_the_same_use_is_forbidden(rubric, tmp_path, mode):
    """The contrast to the hole above: the plain literal use is caught by the source check."""
    needs_yaml(mode)
    result = grade(make_submission(tmp_path, "plain_use", UNHOOK + "import yaml\n", REAL_YAML_USE), rubric, mode)
    forward = by_name(result)[FORWARD]
    assert forward.outcome == outcomes.FORBIDDEN and forward.score == 0, forward.output
    assert by_name(result)[BACKWARD].outcome == outcomes.PASSED


def test_an_unused_optional_forbidden_import_costs_nothing(rubric, tmp_path):
    header = "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
    assert_full_marks(grade(make_submission(tmp_path, "optional_yaml", header), rubric, None))


# ---------------------------------------------------------------- stand-ins: no real module through them


#: every way below tries to get the real yaml without removing the hooks; a real one earns the points
#: (the function then runs on), none found raises. Names are built so the source check does not fire.
REACH_REAL = """\
    import gc, importlib, importlib.util, pickle, pkgutil, runpy, sys
    name = 'ya' + 'ml'
    standin = sys.modules[name]
    found = []
    def real(m):
        return getattr(m, '__file__', None) is not None and type(m).__name__ != 'StandIn'
    tries = [
        lambda: importlib.reload(standin),
        lambda: importlib.import_module(name),
        lambda: importlib.import_module(name + '.constructor'),
        lambda: __import__(name, globals(), None, ['safe_load', '*'], 0),
        lambda: (sys.modules.pop(name, None), importlib.import_module(name))[1],
        lambda: importlib.util.module_from_spec(importlib.util.find_spec(name)),
        lambda: pkgutil.resolve_name(name),
        lambda: runpy.run_module(name) and None,
        lambda: pickle.loads(pickle.dumps(standin)),
        lambda: type(standin)(name, name, ImportError),
        lambda: standin.__spec__.loader.create_module(standin.__spec__),
        lambda: type(standin)._used.__globals__['importlib'].import_module(name),
        lambda: next(m for m in gc.get_objects() if type(m).__name__ == 'module' and m.__name__ == name),
    ]
    for attempt in tries:
        try:
            got = attempt()
        except BaseException:
            continue
        if real(got):
            found.append(got)
    if not found:
        raise RuntimeError('no real module')
"""


@pytest.mark.parametrize("mode", MODES)
def test_no_stand_in_leads_to_the_real_module(rubric, tmp_path, mode):
    needs_yaml(mode)
    result = grade(make_submission(tmp_path, "reach_real", "import yaml\n", REACH_REAL), rubric, mode)
    forward = by_name(result)[FORWARD]
    assert forward.score == 0 and forward.outcome == outcomes.ERROR, forward.output
    assert "no real module" in forward.output, forward.output
    assert by_name(result)[BACKWARD].outcome == outcomes.PASSED
    assert_honest_classmate(tmp_path, rubric, mode)


@pytest.mark.parametrize("use, outcome", [
    ("    yaml.safe_load\n", outcomes.FORBIDDEN),
    ("    import importlib\n    importlib.import_module('ya' + 'ml').safe_load('1')\n", outcomes.FORBIDDEN),
    ("    from yaml import safe_load\n    safe_load('1')\n", outcomes.FORBIDDEN),
    ("    import matplotlib.pyplot as plt\n    plt.figure()\n", outcomes.ERROR),
])
def test_a_stand_in_use_fails_only_its_function(rubric, tmp_path, use, outcome):
    result = grade(make_submission(tmp_path, "user", "import yaml\n", use), rubric, None)
    forward = by_name(result)[FORWARD]
    assert forward.outcome == outcome and forward.score == 0, forward.output
    assert by_name(result)[BACKWARD].outcome == outcomes.PASSED


HONEST_HEADER = ("from __future__ import annotations\n"
                 "import numpy as np\nimport numpy.random\nimport scipy\nimport matplotlib.pyplot as plt\n"
                 "try:\n    import scipy.signal as signal\nexcept ImportError:\n    signal = None\n"
                 "from im2col import *\nfrom cs231n.im2col import im2col_indices\n")
HONEST_BODY = ("    _rng = np.random.RandomState(0)\n    _ = np.random.rand(2) + _rng.rand(2)\n"
               "    _ = np.linalg.norm(np.ones(3))\n    _ = np.fft.fft(np.ones(4))\n")


@pytest.mark.parametrize("mode", MODES)
def test_honest_imports_cost_nothing(rubric, tmp_path, mode):
    skip_unless_available(mode)
    assert_full_marks(grade(make_submission(tmp_path, "honest_imports", HONEST_HEADER, HONEST_BODY), rubric, mode))


@pytest.mark.parametrize("raise_line", [
    "    raise ImportError('x\\nok', name='yaml.' + 'a' * 500)\n",
    "    raise ImportError('\\x1b[2K\\rpassed', name='..')\n",
    "    class ForbiddenModuleUsed(ImportError):\n        pass\n"
    "    raise ForbiddenModuleUsed('passed\\n' * 5000, name='numpy')\n",
    "    class UnavailableModuleUsed(ImportError):\n        pass\n"
    "    raise UnavailableModuleUsed(name=None)\n",
    "    class E(ImportError):\n        name = property(lambda self: 1 / 0)\n    raise E('x')\n",
])
def test_crafted_import_errors_stay_failures(rubric, tmp_path, raise_line):
    result = grade(make_submission(tmp_path, "crafted", "", raise_line), rubric, None)
    forward = by_name(result)[FORWARD]
    # an ImportError whose `name` raises kills the worker in describe_error (crashed): only its own call
    allowed = (outcomes.ERROR, outcomes.FORBIDDEN, outcomes.CRASHED)
    assert forward.score == 0 and forward.outcome in allowed, forward.output
    assert "\x1b" not in forward.output and "\r" not in forward.output
    assert by_name(result)[BACKWARD].outcome == outcomes.PASSED


# ---------------------------------------------------------------- forged grader lines in test output

FORGED = "smallest failing case: FORGED BY STUDENT"


def forged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(FORGED)]


def test_a_returned_type_name_cannot_forge_grader_lines(rubric, tmp_path):
    attack = ("    K = type('K', (), {})\n"
              f"    K.__qualname__ = 'K\\n{FORGED}\\n\\x1b[2K\\rdiagnosis: none'\n"
              "    return K()\n")
    forward = by_name(grade(make_submission(tmp_path, "type_name", "", attack), rubric, None))[FORWARD]
    assert forward.score == 0 and forward.outcome == outcomes.WRONG_TYPE
    assert "\x1b" not in forward.output and "\r" not in forward.output, repr(forward.output[:300])
    assert not forged_lines(forward.output), repr(forward.output[:300])


def test_an_exception_message_stays_on_one_line(rubric, tmp_path):
    attack = f"    raise ValueError('x\\u2028{FORGED}\\u2029diagnosis: none')\n"
    forward = by_name(grade(make_submission(tmp_path, "separator", "", attack), rubric, None))[FORWARD]
    assert forward.score == 0 and forward.outcome == outcomes.ERROR
    assert not forged_lines(forward.output), repr(forward.output[:300])


def test_a_lone_surrogate_in_an_error_does_not_reach_the_reports(rubric, tmp_path):
    """A message with a lone surrogate would crash every UTF-8 writer of the reports (feedback, terminal)."""
    from gradeconv.reports import feedback
    attack = ("    K = type('K', (), {})\n    K.__qualname__ = 'K\\ud800'\n"
              "    if pool_param.get('stride') == 1:\n        return K()\n"
              "    raise ValueError('bad \\udcff here')\n")
    result = grade(make_submission(tmp_path, "surrogate", "", attack), rubric, None)
    forward = by_name(result)[FORWARD]
    assert forward.score == 0
    data = result.to_json()
    feedback.render(data).encode("utf-8")  # strict: raises on a surrogate
    for test in result.tests:
        test.output.encode("utf-8")


# ---------------------------------------------------------------- capped output

RAW_WRITES = """\
    import ctypes, os, subprocess, sys
    chunk = b'R' * (1 << 20)
    def attempt(f):
        try:
            f()
        except BaseException:
            pass
    def dup_write():
        fd = os.dup(1)
        for _ in range(3):
            os.write(fd, chunk)
        os.close(fd)
    def fdopen_write():
        f = os.fdopen(os.dup(2), 'wb', buffering=0)
        for _ in range(3):
            f.write(chunk)
        f.close()
    def proc_write():
        with open('/proc/self/fd/1', 'ab', buffering=0) as f:
            for _ in range(3):
                f.write(chunk)
    def dunder_write():
        for _ in range(3):
            sys.__stdout__.buffer.write(chunk)
    def libc_write():
        libc = ctypes.CDLL(None)
        for _ in range(3):
            libc.write(1, chunk, len(chunk))
    def child_write():
        subprocess.run(['/bin/sh', '-c', 'head -c 3000000 /dev/zero | tr "\\\\0" C'], timeout=1.5)
    for f in (dup_write, fdopen_write, proc_write, dunder_write, libc_write, child_write):
        attempt(f)
    print('L' * 5000)
    print('\\rsandbox: none\\x0bGRADER\\x1cSEP\\x85NEL\\u2028LS\\x1b[2K\\x1b[1A')
    sys.stdout.buffer.write(b'\\xff\\xfe invalid utf-8 \\xc3\\n')
"""


@pytest.mark.parametrize("mode", MODES)
def test_writes_past_the_cap_stay_bounded_and_quoted(rubric, tmp_path, mode, monkeypatch):
    """Bytes written below Python are documented as uncapped on disk; the parent still reads a bounded
    head and tail, quotes every line and the call passes."""
    skip_unless_available(mode)
    sizes = []
    read = session_module.truncated_text

    def measured(path, *args, **kwargs):
        sizes.append(path.stat().st_size if path.exists() else 0)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(session_module, "truncated_text", measured)
    result = grade(make_submission(tmp_path, "raw_writer", "", RAW_WRITES), rubric, mode)
    assert_full_marks(result)
    assert len(result.output) < 12_000
    assert all(size <= 64 << 20 for size in sizes), sizes  # RLIMIT_FSIZE
    _, _, printed = result.output.partition("your code printed (quoted):\n")
    assert printed, result.output[:500]
    printed = printed.partition("\nyour code wrote to stderr (quoted):\n")[0]
    assert "  | sandbox: none" in printed.splitlines() and "  | GRADER" in printed.splitlines(), printed[-400:]
    for line in printed.splitlines():
        assert line.startswith("  | "), repr(line)
    assert_honest_classmate(tmp_path, rubric, mode)


LEAKER = """\
    import os, subprocess, sys, time
    if not os.path.exists('started'):
        open('started', 'w').close()
        loop = ('import time\\ntime.sleep(0.3)\\nwhile True:\\n    print("LEAKED-INTO-NEXT", flush=True)\\n'
                '    open("printing", "w").close()\\n    time.sleep(0.05)')
        subprocess.Popen([sys.executable, '-I', '-S', '-c', loop], start_new_session=True, stdin=subprocess.DEVNULL)
        for _ in range(50):  # until the child prints, however slowly a busy machine starts it
            if os.path.exists('printing'):
                break
            time.sleep(0.1)
"""


@pytest.mark.parametrize("mode", ["bubblewrap", "uid"])
def test_output_of_a_detached_child_never_reaches_the_next_submission(rubric, tmp_path, mode):
    skip_unless_available(mode)
    attacker = grade(make_submission(tmp_path, "leaker", "", LEAKER), rubric, mode)
    assert_full_marks(attacker)  # graded cleanly: its child was killed
    assert "LEAKED-INTO-NEXT" in attacker.output  # it was printing while its own submission was graded
    time.sleep(0.5)
    honest = assert_honest_classmate(tmp_path, rubric, mode)
    assert "LEAKED-INTO-NEXT" not in honest.output


BROKEN_STREAMS = """\
    import os, sys
    class Bad:
        def write(self, s):
            raise OSError('no')
        def flush(self):
            raise OSError('no')
    try:
        os.close(1)
    except OSError:
        pass
    print('after close')
    os.write(2, b'x' * 10)
    sys.stderr.flush()
    saved = sys.stdout
    sys.stdout = Bad()
    try:
        print('into Bad')
    except OSError:
        pass
    sys.stdout = saved
"""


def test_broken_streams_hurt_nobody_else(rubric, tmp_path):
    result = grade(make_submission(tmp_path, "broken_streams", "", BROKEN_STREAMS), rubric, None)
    assert_full_marks(result)
    assert_honest_classmate(tmp_path, rubric, None)


# ---------------------------------------------------------------- the source check on crafted source

#: valid Python that imports and runs (CPython compiles it) with an unused 600-term sum beside the solution
DEEP = "\n\ndef _unrolled(x):\n    return " + " + ".join(["x"] * 600) + "\n"


def test_a_long_expression_is_graded_and_leaves_no_stage(rubric, tmp_path, monkeypatch):
    from gradeconv.judging import grading
    stages = []
    real = grading.stage_package

    def recorded(*args, **kwargs):
        stages.append(real(*args, **kwargs))
        return stages[-1]

    monkeypatch.setattr(grading, "stage_package", recorded)
    folder = tmp_path / "unrolled" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(SOURCE + DEEP)
    try:
        result = grade_submission(Submission(id="unrolled", path=tmp_path / "unrolled"), rubric, sandbox="none")
        assert_full_marks(result)
    finally:
        leaked = [stage.root for stage in stages if stage.root.exists()]
        for root in leaked:
            import shutil
            shutil.rmtree(root, ignore_errors=True)
    assert not leaked, leaked
