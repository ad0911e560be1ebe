"""Hostile and broken submissions cost their author points and nothing else.

Each case plants one misbehaviour into conv_forward_naive (or at import) of the
correct solution, grades it under small limits and checks: the outcome, that
the other functions are still graded normally, that nothing it started is left
running, and that nothing outside its own working directory was written.
"""
import os
import subprocess
import sys
import time
import uuid

import pytest

import gradeconv
from gradeconv.sandbox import process, reaper
from tests.conftest import CORRECT, MODES, SMALL_TESTS, VECTORISED, VECTORISED_IMPORT, skip_unless_available

SOURCE = CORRECT.read_text()
ANCHOR = '    stride, pad = conv_param["stride"], conv_param["pad"]\n    N, C, H, W = x.shape\n    F, _, HH, WW = w.shape\n    H_out'
#: in the command line of what the cases start: this run's own, so another test run beside it is not counted
MARKER = f"gradeconv-hostile-marker-{uuid.uuid4().hex[:12]}"
FAILS_AT_IMPORT = {"infinite_loop_at_import", "syntax_error", "non_utf8_source", "import_error_used_at_import"}
OTHER_TESTS = SMALL_TESTS  # graded beside the planted misbehaviour, which must not touch them


def in_forward(code: str) -> str:
    body = "".join(f"    {line}\n" for line in code.strip("\n").splitlines())
    return SOURCE.replace(ANCHOR, body + ANCHOR, 1)


def at_import(code: str) -> str:
    return code.strip("\n") + "\n" + SOURCE


SPAWN = (f"import subprocess, sys\n"
         f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{MARKER}'], start_new_session=True)\n")
CASES = {
    "infinite_loop": (in_forward("while True:\n    pass"), "timeout"),
    "infinite_loop_at_import": (at_import("while True:\n    pass"), "timeout"),
    "segfault": (in_forward("import ctypes\nctypes.string_at(0)"), "crashed"),
    "os_exit": (in_forward("import os\nos._exit(3)"), "crashed"),
    "sys_exit": (in_forward("import sys\nsys.exit(1)"), "error"),
    "keyboard_interrupt": (in_forward("raise KeyboardInterrupt"), "error"),
    "base_exception": (in_forward("raise BaseException('boom')"), "error"),
    "memory_hog": (in_forward("hog = bytearray(4 << 30)"), "memory"),
    "recursion": (in_forward("def again(k):\n    return again(k + 1)\nagain(0)"), "error"),
    "reads_stdin": (in_forward("input()"), "error"),
    "syntax_error": (SOURCE.replace("def conv_forward_naive(x, w, b, conv_param):",
                                    "def conv_forward_naive(x, w, b, conv_param)"), "error"),
    "non_utf8_source": (None, "error"),
    # a missing or forbidden module costs the functions that use it, not the whole file
    "import_error": (at_import("import no_such_module_xyz").replace(ANCHOR, "    no_such_module_xyz.f()\n" + ANCHOR, 1),
                     "error"),
    "import_error_used_at_import": (at_import("import no_such_module_xyz\nno_such_module_xyz.f()"), "error"),
    "forbidden_import": (at_import("import torch").replace(ANCHOR, "    torch.zeros(1)\n" + ANCHOR, 1), "forbidden"),
    "missing_function": (SOURCE.replace("def conv_forward_naive(", "def conv_forward_naif("), "not_implemented"),
    "returns_none": (in_forward("return None"), "not_implemented"),
    "wrong_tuple_length": (in_forward("return x, x, x"), "wrong_type"),
    "returns_list": (in_forward("return [[0.0]], None"), "wrong_type"),
    "returns_matrix_subclass": (in_forward("return np.ma.masked_array(np.zeros(3)), None"), "wrong_type"),
    "returns_object_array": (in_forward("return np.array([object()]), None"), "wrong_type"),
    "returns_nan": (SOURCE.replace("    cache = (x, w, b, conv_param)\n    return out, cache",
                                   "    out[...] = np.nan\n    return out, (x, w, b, conv_param)", 1), "wrong_value"),
    "ignores_sigterm_sleeps": (in_forward("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                          "time.sleep(3600)"), "timeout"),
    "prints_50mb": (in_forward("import sys\nif not globals().get('printed'):\n"
                               "    globals()['printed'] = sys.stdout.write('x' * (50 << 20))"), "passed"),
    "spawns_child": (in_forward(SPAWN), "passed"),
    "monkeypatches_numpy": (at_import(
        "import numpy, sys\nnumpy.allclose = lambda *a, **k: True\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
        "for m in list(sys.modules.values()):\n    try:\n        m.__dict__['array_equal'] = lambda *a, **k: True\n"
        "    except Exception:\n        pass") + "\n_sum = np.sum\nnp.sum = lambda *a, **k: 0.0 * _sum(*a, **k)\n", "wrong_value"),
    "writes_files": (in_forward("open('written_in_cwd.txt', 'w').write('x')\n"
                                "try:\n    open(__file__ + '.evil', 'w').write('x')\nexcept OSError:\n    pass"), "passed"),
}


def leftover_processes() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if MARKER.encode() in handle.read():
                    found.append(entry)
        except OSError:
            continue
    return found


#: the call limit of the cases that must run out of time (the others get small_rubric's, long enough for a busy machine)
TIMEOUT_SECONDS = 1.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_submission(name, mode, small_rubric, tmp_path, monkeypatch):
    skip_unless_available(mode)
    source, expected = CASES[name]
    rubric = small_rubric
    if expected == "timeout":
        rubric = small_rubric.model_copy(update={"limits": small_rubric.limits.model_copy(
            update={"call_seconds": TIMEOUT_SECONDS})})
    folder = tmp_path / "student" / "cs231n"
    folder.mkdir(parents=True)
    module = folder / "layers.py"
    if source is None:
        module.write_bytes(b"NAME = 'caf\xe9'\n" + SOURCE.encode())
    else:
        module.write_text(source)
    before = sorted(p.name for p in folder.iterdir())
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    result = gradeconv.grade(tmp_path / "student", rubric, sandbox=mode)[0]
    by_name = {t.name: t for t in result.tests}
    forward = by_name["conv forward: no padding (pad = 0)"]
    assert forward.outcome == expected, forward.output
    if expected == "timeout":  # stopped at the call's own deadline
        assert f"(no answer within {TIMEOUT_SECONDS:g} s)" in forward.output, forward.output
    if name not in FAILS_AT_IMPORT:
        for other in OTHER_TESTS:
            assert by_name[other].passed, f"{other}: {by_name[other].output}"
    if name in ("syntax_error", "non_utf8_source"):  # a problem of the file, found without running any of it
        assert result.problem and result.problem.startswith("SyntaxError in layers.py") and result.sandbox is None
    else:
        assert result.sandbox == mode or expected == "forbidden"
    assert leftover_processes() == []
    assert sorted(p.name for p in folder.iterdir()) == before
    assert list(here.iterdir()) == []


def test_large_output_is_truncated_in_the_report(small_rubric, tmp_path):
    folder = tmp_path / "loud" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(CASES["prints_50mb"][0])
    result = gradeconv.grade(tmp_path / "loud", small_rubric)[0]
    assert "bytes cut" in result.output
    assert len(result.output) < 10_000


def test_shipped_helper_is_ignored_by_default_and_said(default_rubric, tmp_path):
    folder = tmp_path / "ships" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(VECTORISED.read_text())
    (folder / "im2col.py").write_text("def im2col_indices(*a, **k):\n    raise RuntimeError('broken copy')\n"
                                      "col2im_indices = im2col_indices\n")
    result = gradeconv.grade(tmp_path / "ships", default_rubric)[0]
    assert result.score == 100
    assert "ignored the submission's im2col.py" in result.output
    own = default_rubric.model_copy(update={"helper": "submission"})
    assert gradeconv.grade(tmp_path / "ships", own)[0].score == 0


@pytest.mark.parametrize("style", [
    "from cs231n.im2col import im2col_indices, col2im_indices",
    "from cs231n.im2col import *",
    "from .im2col import im2col_indices, col2im_indices",
    "from cs231n import im2col\nim2col_indices, col2im_indices = im2col.im2col_indices, im2col.col2im_indices",
    "import cs231n.im2col as im2col\nim2col_indices, col2im_indices = im2col.im2col_indices, im2col.col2im_indices",
    "import im2col\nim2col_indices, col2im_indices = im2col.im2col_indices, im2col.col2im_indices",
])
def test_every_helper_import_style_works(style, small_rubric, tmp_path):
    source = VECTORISED.read_text()
    assert VECTORISED_IMPORT in source
    source = source.replace(VECTORISED_IMPORT, style)
    (tmp_path / "layers.py").write_text(source)
    result = gradeconv.grade(tmp_path / "layers.py", small_rubric)[0]
    assert [t.output for t in result.tests if not t.passed] == []


def test_submission_time_budget_stops_grading_that_submission(small_rubric, tmp_path):
    source = in_forward("import time\ntime.sleep(0.3)")
    (tmp_path / "layers.py").write_text(source)
    rubric = small_rubric.model_copy(update={"limits": small_rubric.limits.model_copy(
        update={"call_seconds": 1.0, "submission_seconds": 1.0})})
    result = gradeconv.grade(tmp_path / "layers.py", rubric)[0]
    outcomes = {t.outcome for t in result.tests}
    assert "not_run" in outcomes
    assert any("time budget of 1 s is used up" in t.output for t in result.tests)
    assert leftover_processes() == []


def test_kill_leaves_no_marked_process_even_while_they_keep_forking():
    """A process that forks new sessions as fast as it can is gone, with all it forked, when kill returns."""
    marker = "kill-test-" + MARKER
    spawner = ("import subprocess, sys\n"
               "for _ in range(300):\n"
               f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', '{MARKER}'],"
               " start_new_session=True)\n")
    env = dict(os.environ, **{process.MARKER_VARIABLE: marker})
    subprocess.Popen([sys.executable, "-c", spawner], env=env, start_new_session=True)
    time.sleep(0.3)  # let it get going: some children exist, more are being forked
    try:
        reaper.by_marker(process.MARKER_VARIABLE, marker).kill_all()
        assert leftover_processes() == []
    finally:
        for pid in map(int, leftover_processes()):
            os.kill(pid, 9)
