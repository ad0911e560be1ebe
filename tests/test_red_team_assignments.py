"""Adversarial tests of whole-assignment grading: several graded files served by one worker, the package staged
with its subfolders and the course helpers, update rules judged over steps, models built in the worker.

Each test is an attack by a submission that has read gradeconv's source; each asserts the attack gets
nothing (its tests fail, a classmate's grade and the machine are untouched, grading ends in a verdict).
Every grading here runs a few tests with few examples under small limits, so each test stays bounded.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from gradeconv import outcomes
from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.reports import feedback, html_report
from gradeconv.submissions import Submission
from tests.conftest import ROOT, checkout_env, skip_unless_available
from tests.test_attacks import (ATTACK_MODES, FORGER, FORGERIES, assert_honest, assert_nothing_left, grade_batch,
                                leftover_processes, marked_files, marker, ws)

SOLUTIONS = ROOT / "tests" / "solutions"
A2 = SOLUTIONS / "a2" / "cs231n"


def rubric_of(names: set[str], call_seconds: float = 5.0, submission_seconds: float = 60.0, examples: int = 2):
    """The bundled assignment-2 rubric cut to the named tests, few examples each, under small limits."""
    rubric = rubrics.load(rubrics.bundled()["assignment2"])
    tests = tuple(test.model_copy(update={"examples": min(test.examples, examples)})
                  for test in rubric.tests if test.name in names)
    assert {test.name for test in tests} == names
    limits = rubric.limits.model_copy(update={"call_seconds": call_seconds, "submission_seconds": submission_seconds,
                                              "memory_mb": 1024})
    return rubric.model_copy(update={"tests": tests, "limits": limits})


def grade(path: Path, rubric, sandbox: str | None = None):
    return grade_submission(Submission(id=path.name, path=path, late=False), rubric, sandbox)


def by_name(result) -> dict[str, str]:
    return {test.name: test.outcome for test in result.tests}


def student(root: Path, name: str = "student", files: tuple[str, ...] = ("layers.py",)) -> Path:
    """A submission folder holding cs231n/ with the given files of the correct assignment-2 solution."""
    package = root / name / "cs231n"
    package.mkdir(parents=True)
    for file in files:
        (package / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(A2 / file, package / file)
    return root / name


AFFINE = "affine forward"
UPDATE_RULES = {"sgd_momentum", "rmsprop", "adam"}
FC_LOSS = "FullyConnectedNet: loss and gradients"
FC_INIT = "FullyConnectedNet: initialisation"


# --- staging ---------------------------------------------------------------------------------------------------

FD_PROBE = textwrap.dedent('''
    import os, resource, sys
    from pathlib import Path
    from gradeconv.sandbox.staging import remove, stage_package
    open_fds = lambda: len(os.listdir("/proc/self/fd"))
    before = open_fds()
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    package = Path(sys.argv[1])
    try:
        stage = stage_package({"layers.py": package / "layers.py"}, "cs231n", False, ("fast_layers.py",))
    except OSError as error:
        print("failed", error, open_fds() - before)
    else:
        staged = (stage.package_dir / "layers.py").exists() and (stage.package_dir / "d7" / "inner" / "x.py").exists()
        remove(stage)
        print("staged" if staged else "incomplete", open_fds() - before)
''')


def test_thousands_of_subfolders_neither_exhaust_nor_leak_the_graders_file_descriptors(tmp_path):
    """A zip may hold 2000 folders; the staging walk kept every pending folder open (EMFILE under a 1024
    limit: the submission left "not graded" for ever, and the open folders leaked into every later grading)."""
    package = student(tmp_path).joinpath("cs231n")
    for number in range(150):
        (package / f"d{number}").mkdir()
    (package / "d7" / "inner").mkdir()
    (package / "d7" / "inner" / "x.py").write_text("X = 1\n")
    run = subprocess.run([sys.executable, "-c", FD_PROBE, str(package)], capture_output=True, text=True,
                         timeout=60, env=checkout_env(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["staged", "0"]


def test_names_of_files_left_out_stay_on_one_line_and_every_report_is_written(tmp_path):
    """Names of links (a folder submission keeps them: Gradescope unzips with links) reach the output: a line
    break forged a grader's line, and a name that is not UTF-8 made the HTML and feedback reports crash."""
    folder = student(tmp_path, files=("optim.py",))
    package = folder / "cs231n"
    (package / "0x\nsandbox: none (a line of the grader's).py").symlink_to("/etc/passwd")
    os.symlink(b"/etc/passwd", os.fsencode(package) + b"/0\xff.py")
    for number in range(212):  # past MAX_FILES: each file left out would be a line
        (package / f"filler_{number:03}.py").write_text("")
    result = grade(folder, rubric_of({"sgd_momentum"}))
    assert by_name(result) == {"sgd_momentum": outcomes.PASSED}
    lines = result.output.splitlines()
    assert not any(line.startswith("sandbox: none") for line in lines)
    assert "not copied from your submission: 0x\\nsandbox: none (a line of the grader's).py (a symbolic link)" in lines
    assert "not copied from your submission: 0\\xff.py (a symbolic link)" in lines
    assert [line for line in lines if line.startswith("not copied")][10:] == [
        "not copied from your submission: 4 more files"]
    rows = [result.to_json()]
    html_report.write(tmp_path / "report.html", rubric_of({"sgd_momentum"}), rows)
    (tmp_path / "feedback").mkdir()
    feedback.write_all(tmp_path / "feedback", rows)
    assert (tmp_path / "report.html").stat().st_size > 0 and len(list((tmp_path / "feedback").iterdir())) == 1


def test_links_to_a_classmates_files_bring_none_of_them_in(tmp_path):
    """optim.py and classifiers/ linked to a classmate's correct work: none of it is graded as this student's."""
    classmate = student(tmp_path, "classmate", files=("layers.py", "optim.py", "classifiers/fc_net.py"))
    folder = student(tmp_path, "linker")
    (folder / "cs231n" / "optim.py").symlink_to(classmate / "cs231n" / "optim.py")
    (folder / "cs231n" / "classifiers").symlink_to(classmate / "cs231n" / "classifiers", target_is_directory=True)
    result = grade(folder, rubric_of({AFFINE, "sgd_momentum", FC_LOSS}))
    assert by_name(result) == {AFFINE: outcomes.PASSED, "sgd_momentum": outcomes.ERROR, FC_LOSS: outcomes.ERROR}
    assert result.score == 4


def test_odd_layouts_cost_only_the_files_they_break(tmp_path):
    """classifiers a plain file, names that are not identifiers, an __init__ folder, a tree deeper than staged,
    a package __init__.py that exits, an im2col folder beside the helper: the correct layers still pass."""
    folder = student(tmp_path, files=("layers.py", "optim.py"))
    package = folder / "cs231n"
    (package / "classifiers").write_text("class FullyConnectedNet: pass\n")
    (package / "fc-net.py").write_text("raise SystemExit(3)\n")
    (package / "my layers.py").write_text("import os; os._exit(4)\n")
    (package / "__init__").mkdir()
    (package / "__init__" / "x.py").write_text("raise SystemExit(5)\n")
    (package / "__init__.py").write_text("import os; os._exit(6)\n")
    deep = package / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "optim.py").write_text("def sgd_momentum(*a): return None\n")
    (package / "im2col").mkdir()
    (package / "im2col" / "spare.py").write_text("")
    result = grade(folder, rubric_of({AFFINE, "sgd_momentum", FC_LOSS}))
    assert by_name(result) == {AFFINE: outcomes.PASSED, "sgd_momentum": outcomes.PASSED, FC_LOSS: outcomes.ERROR}


# --- one worker, several graded files ----------------------------------------------------------------------------

LYING_FIRST_MODULE = '''

import importlib as _importlib, sys as _sys, types as _types
from collections import OrderedDict as _OrderedDict
import numpy as _np


class _Liar(_np.ndarray):
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False


class _Claims:
    shape = (2, 3)
    dtype = _np.dtype("float64")
    def __array__(self, *args, **kwargs):
        return _np.zeros(self.shape)
    def __eq__(self, other):
        return True


def _lying_rule(w, dw, config=None):
    config = dict(config or {})
    return _np.asarray(w).view(_Liar), _OrderedDict(config, velocity=_Claims(), cache=_Claims(), m=_Claims(),
                                                     v=_Claims(), t=_Claims())


_fake = _types.ModuleType("cs231n.optim")
_fake.sgd_momentum = _fake.rmsprop = _fake.adam = _lying_rule
_sys.modules["cs231n.optim"] = _fake
_real_import = _importlib.import_module
_importlib.import_module = lambda name, package=None: _fake if name.endswith("optim") else _real_import(name, package)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_a_first_module_that_installs_lying_update_rules_for_the_next_earns_nothing_there(tmp_path, mode):
    """layers.py, imported first, puts its own cs231n.optim in place of the file: rules returning an ndarray
    subclass that equals everything and a config of objects that claim to be arrays score nothing."""
    skip_unless_available(mode)
    folder = student(tmp_path)
    layers = folder / "cs231n" / "layers.py"
    layers.write_text(layers.read_text() + LYING_FIRST_MODULE)
    (folder / "cs231n" / "optim.py").write_text("".join(  # stubs: the rules used are those layers.py installs
        f"def {name}(w, dw, config=None):\n    raise NotImplementedError\n" for name in sorted(UPDATE_RULES)))
    result = grade(folder, rubric_of({AFFINE} | UPDATE_RULES), mode)
    assert by_name(result) == {AFFINE: outcomes.PASSED, **{name: outcomes.WRONG_TYPE for name in UPDATE_RULES}}


LYING_CONFIGS = '''
from collections import OrderedDict
import numpy as np
from cs231n import _solution_optim as _solution


def sgd_momentum(w, dw, config=None):
    """Right values, and a NaN the grader must carry back to the next step (its wire has no NaN)."""
    next_w, config = _solution.sgd_momentum(w, dw, config)
    config["spare"] = np.float64("nan")
    return next_w, config


def rmsprop(w, dw, config=None):
    """Right values, and a complex number: not a number the worker sends as one."""
    next_w, config = _solution.rmsprop(w, dw, config)
    config["spare"] = np.complex128(1 + 2j)
    return next_w, config


def adam(w, dw, config=None):
    """Right values in a dict subclass, t as text."""
    next_w, config = _solution.adam(w, dw, config)
    return next_w, OrderedDict(config, t=str(config["t"]))
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_update_rules_whose_config_cannot_be_carried_back_fail_closed(tmp_path, mode):
    """Right steps, but a config the next step cannot get: never a pass, never a traceback."""
    skip_unless_available(mode)
    folder = student(tmp_path, files=())
    shutil.copyfile(A2 / "optim.py", folder / "cs231n" / "_solution_optim.py")
    (folder / "cs231n" / "optim.py").write_text(LYING_CONFIGS)
    result = grade(folder, rubric_of(UPDATE_RULES, examples=6), mode)
    assert by_name(result) == {"sgd_momentum": outcomes.ERROR, "rmsprop": outcomes.WRONG_TYPE,
                               "adam": outcomes.WRONG_TYPE}
    assert "could not judge the reply" in result.tests[0].output


FLAKY_AND_FATAL = {
    "optim.py": '''
import os
if not os.path.exists("imported-once"):  # the worker's cwd: the second import in a worker succeeds
    open("imported-once", "w").close()
    raise ImportError("first time")
from cs231n._solution_optim import sgd_momentum, rmsprop, adam
''',
    "classifiers/fc_net.py": '''
import os, subprocess, sys, time
MARKER = "{marker}"
daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", MARKER], start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("started", daemon.pid, flush=True)
for folder in ("/tmp", "/dev/shm", "/var/tmp", "."):
    try:
        open(os.path.join(folder, MARKER), "w").close()
    except OSError:
        pass
time.sleep(60)  # the import never ends: the worker is stopped, and the session must still end clean


class FullyConnectedNet:
    def loss(self, X, y=None):
        return None
''',
    "classifiers/cnn.py": '''
import os
os._exit(0)  # the worker dies importing this file


class ThreeLayerConvNet:
    def loss(self, X, y=None):
        return None
''',
}


@pytest.mark.parametrize("mode", ["bubblewrap", "uid"])
def test_imports_that_fail_once_hang_or_kill_the_worker_cost_only_their_own_files_and_leave_nothing(tmp_path, mode,
                                                                                                    marker):
    """One worker imports every graded file: an import that fails the first time fails its file's tests
    (never a pass on a retry), one that hangs or kills the worker costs its file alone, and nothing the
    hanging import started or wrote outlives grading."""
    skip_unless_available(mode)
    folder = student(tmp_path)
    package = folder / "cs231n"
    shutil.copyfile(A2 / "optim.py", package / "_solution_optim.py")
    for path, source in FLAKY_AND_FATAL.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(source.replace("{marker}", marker))
    rubric = rubric_of({AFFINE, "sgd_momentum", FC_LOSS, "ThreeLayerConvNet: scores"}, call_seconds=2.0,
                       submission_seconds=40.0)
    try:
        result = grade(folder, rubric, mode)
        assert by_name(result) == {AFFINE: outcomes.PASSED, "sgd_momentum": outcomes.ERROR,
                                   FC_LOSS: outcomes.TIMEOUT, "ThreeLayerConvNet: scores": outcomes.CRASHED}
        assert "| started " in result.output  # the daemon ran
        assert leftover_processes(marker) == []
        assert marked_files(marker, [tmp_path]) == []
    finally:
        for line in leftover_processes(marker):
            os.kill(int(line.split()[0]), 9)
        for path in marked_files(marker, []):
            os.unlink(path)


# --- models ----------------------------------------------------------------------------------------------------

LYING_MODELS = '''
from collections import OrderedDict
import numpy as np
from cs231n.classifiers import _solution_fc_net as _solution


class _Params(dict):
    """Takes the grader's parameters in silence and keeps the model's own."""

    def __setitem__(self, key, value):
        if key not in self:
            super().__setitem__(key, value)


class _Loss(np.ndarray):
    pass


class FullyConnectedNet(_solution.FullyConnectedNet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params = _Params(self.params)  # the initialisation read back is a dict subclass

    def loss(self, X, y=None):
        honest = _solution.FullyConnectedNet.loss(self, X, y)
        if y is None:
            return honest.view(_Loss)
        loss, grads = honest
        return np.asarray(loss).view(_Loss), OrderedDict(grads)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_models_with_a_params_mapping_that_ignores_the_grader_and_subclassed_returns_earn_nothing(tmp_path, mode):
    skip_unless_available(mode)
    folder = student(tmp_path)
    classifiers = folder / "cs231n" / "classifiers"
    classifiers.mkdir()
    shutil.copyfile(A2 / "classifiers" / "fc_net.py", classifiers / "_solution_fc_net.py")
    (classifiers / "fc_net.py").write_text(LYING_MODELS)
    result = grade(folder, rubric_of({FC_LOSS, FC_INIT, "FullyConnectedNet: test-mode scores after a training step"}), mode)
    assert result.score == 0 and len(result.tests) == 3
    assert {test.outcome for test in result.tests} <= {outcomes.WRONG_TYPE, outcomes.WRONG_VALUE}


def test_a_correct_whole_assignment_beside_the_attacks_still_gets_every_point(tmp_path):
    """The honest control: the same small rubric on the merged correct solutions."""
    folder = tmp_path / "honest"
    shutil.copytree(SOLUTIONS / "a2", folder, ignore=shutil.ignore_patterns("__pycache__"))
    rubric = rubric_of({AFFINE, "sgd_momentum", "adam", FC_LOSS, FC_INIT, "ThreeLayerConvNet: scores"})
    result = grade(folder, rubric)
    assert {test.outcome for test in result.tests} == {outcomes.PASSED} and result.score == rubric.max_score


# --- the provided helpers ----------------------------------------------------------------------------------------

DELEGATING_LAYERS = '''


from cs231n import fast_layers as _fast


def conv_forward_naive(x, w, b, conv_param):
    out, _ = _fast.conv_forward_strides(x, w, b, conv_param)
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    return _fast.conv_backward_strides(dout, _fast.conv_forward_strides(x, w, b, conv_param)[1])


def max_pool_forward_naive(x, pool_param):
    return _fast.max_pool_forward_fast(x, pool_param)[0], (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    return _fast.max_pool_backward_fast(dout, _fast.max_pool_forward_fast(x, pool_param)[1])
'''
NAIVE = {"conv forward", "conv forward: no padding (pad = 0)", "conv backward", "conv backward: no padding (pad = 0)",
         "max-pool forward", "max-pool backward", "max-pool backward: overlapping windows (stride < pool size)"}


@pytest.mark.xfail(strict=True, reason="the whole-assignment rubric stages the provided fast_layers.py (correct numpy "
                                       "conv and pool) beside layers.py, and nothing keeps the naive layers from "
                                       "calling it: a policy for the instructor (a source check, or fast_layers "
                                       "staged only for the models), not a sandbox fault")
def test_naive_layers_that_only_call_the_provided_fast_layers_earn_nothing(tmp_path):
    folder = student(tmp_path)
    layers = folder / "cs231n" / "layers.py"
    layers.write_text(layers.read_text() + DELEGATING_LAYERS)
    result = grade(folder, rubric_of(NAIVE))
    assert result.score == 0, by_name(result)


def test_a_folder_named_like_a_graded_file_or_a_helper_does_not_hide_it(tmp_path):
    """A package wins over a module of the same name: classifiers/fc_net/, optim/ or fast_layers/ staged beside
    fc_net.py, optim.py or the provided fast_layers.py made the worker import an empty package instead, failing
    correct files (and running code the graded file's source checks never read)."""
    folder = student(tmp_path, files=("layers.py", "optim.py", "classifiers/fc_net.py", "classifiers/cnn.py"))
    package = folder / "cs231n"
    for shadow in ("classifiers/fc_net", "optim", "fast_layers", "im2col"):
        (package / shadow).mkdir()
        (package / shadow / "notes.py").write_text("")
    result = grade(folder, rubric_of({AFFINE, "sgd_momentum", FC_LOSS, "ThreeLayerConvNet: scores"}))
    assert {test.outcome for test in result.tests} == {outcomes.PASSED}, by_name(result)


# --- forged replies to the new requests (a model's construction, its params, its dict returns) ------------------


#: the generic forgeries of tests/test_attacks.py, and two aimed at the dicts a model returns
MODEL_FORGERIES = {
    **{name: FORGERIES[name] for name in ("status_passed", "index_out_of_range", "extra_array", "shape_mismatch",
                                          "value_not_schema")},
    "mapping_key_not_a_name": 'header["value"] = _json.loads(_json.dumps(header["value"]).replace(\'"W1"\', \'"W 1"\'))',
    "mapping_nested": 'header["value"] = _json.loads(_json.dumps(header["value"]).replace(\'"mapping": {\', '
                      '\'"mapping": {"inner": {"mapping": {}}, \'))',
}
FORGED_TESTS = ("relu forward", "sgd_momentum", "FullyConnectedNet: loss and gradients",
                "FullyConnectedNet: initialisation")


def whole_files() -> dict[str, str]:
    """The correct assignment-2 files (layers.py, optim.py, classifiers/) by their path in the package."""
    package = ROOT / "tests" / "solutions" / "a2" / "cs231n"
    return {path.relative_to(package).as_posix(): path.read_text() for path in sorted(package.rglob("*.py"))}


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_forged_replies_to_a_models_or_an_update_rules_calls_fail_its_tests_and_nothing_else(mode, ws, marker):
    """A file that, once imported, rewrites every later reply of the worker (which serves the whole submission)
    into a forgery: every test of that file fails (an error, never a pass); the other files keep their points,
    those graded before it and those after it (a refused reply ends the worker, and the next one never imports
    the forger again: fc_net.py does not import optim.py); an honest classmate keeps every point."""
    skip_unless_available(mode)
    honest = whole_files()
    attackers, forged_from = {}, {}
    for file, forgeries in (("classifiers/fc_net.py", MODEL_FORGERIES),
                            ("optim.py", {name: MODEL_FORGERIES[name] for name in ("value_not_schema",
                                                                                   "mapping_nested")})):
        for name, forgery in forgeries.items():
            sid = f"forged_{file.split('/')[-1][:-3]}_{name}"
            body = textwrap.indent(forgery, " " * 8)
            attackers[sid] = {**honest, file: honest[file] + "\n" + FORGER.replace("__FORGERY__", body)}
            forged_from[sid] = file
    class_dir = ws / "class"
    for sid, files in {**attackers, "whole": honest}.items():
        for path, source in files.items():
            target = class_dir / sid / "cs231n" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source)
    bundled = rubrics.load(rubrics.bundled()["assignment2"]).model_dump(exclude_none=True)
    bundled["tests"] = [dict(test, examples=min(test["examples"], 3)) for test in bundled["tests"]
                        if test["name"] in FORGED_TESTS]
    rubric = ws / "rubric.yaml"
    rubric.write_text(yaml.safe_dump(bundled, sort_keys=False))
    batch = grade_batch(ws, mode, class_dir, rubric)
    assert_honest(batch, "whole")
    for sid, file in forged_from.items():
        outcomes_of = batch.outcomes(sid)
        forged = FORGED_TESTS[1:2] if file == "optim.py" else FORGED_TESTS[2:]
        assert all(outcomes_of[name] == "passed" for name in FORGED_TESTS if name not in forged), batch.summary(sid)
        assert all(outcomes_of[name] in ("error", "wrong_type", "wrong_value") for name in forged), \
            batch.summary(sid)
    assert_nothing_left(marker, batch, mode, [ws])
