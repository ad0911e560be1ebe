"""Attacks on the layer engine's new paths: dict arguments reported back (batchnorm's running averages),
scalar returns (losses), dropout judged by properties, the shared case plan, and per-module sessions.

Each attack is graded beside (or between) honest submissions in this process, with small limits, and
must score 0 on the attacked tests while honest code keeps full marks. A hole found is an
`xfail(strict=True)` test whose reason starts with "HOLE:".
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission
from gradeconv.submissions import Submission
from tests.conftest import skip_unless_available
from tests.test_attacks import FIND_WORKER

ROOT = Path(__file__).resolve().parent.parent
A2 = (ROOT / "tests" / "solutions" / "a2" / "cs231n" / "layers.py").read_text()
A3 = (ROOT / "tests" / "solutions" / "a3" / "cs231n" / "rnn_layers.py").read_text()
DROPOUT = ("dropout forward", "dropout backward")
RUNNING = "batchnorm running averages: momentum and eps from bn_param"
BN_TRAIN = "batchnorm forward (train mode)"
SOFTMAX = "softmax loss and gradient"
SVM = "svm loss and gradient"


def small(names, bundled: str = "assignment2", examples: int | None = None) -> rubrics.Rubric:
    """A bundled rubric restricted to the named tests, under small limits."""
    data = rubrics.load(ROOT / "gradeconv" / "rubrics" / f"{bundled}.yaml").model_dump()
    data["limits"] = {"call_seconds": 2.0, "submission_seconds": 20.0, "memory_mb": 1024}
    data["tests"] = [test for test in data["tests"] if test["name"] in names]
    assert {test["name"] for test in data["tests"]} == set(names), "a test name changed in the bundled rubric"
    if examples is not None:
        for test in data["tests"]:
            test["examples"] = min(test["examples"], examples)
    return rubrics.Rubric.model_validate(data)


@pytest.fixture(params=["bubblewrap", "uid"])
def grade(request):
    """grade(files) -> SubmissionResult, with files {name: source} staged as cs231n/ in a fresh folder,
    graded in each sandbox mode an autograder uses (namespaces, or a worker uid without them)."""
    skip_unless_available(request.param)
    roots = []

    def run(files: dict[str, str], rubric: rubrics.Rubric, sid: str = "student"):
        root = Path(tempfile.mkdtemp(prefix="gcatk-layers-", dir="/tmp"))
        roots.append(root)
        os.chmod(root, 0o755)
        package = root / sid / "cs231n"
        package.mkdir(parents=True)
        for name, source in files.items():
            (package / name).write_text(source)
        return grade_submission(Submission(sid, root / sid), rubric, sandbox=request.param)

    yield run
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def scores(result) -> dict[str, float]:
    return {test.name: test.score for test in result.tests}


def summary(result) -> str:
    return "\n".join(f"{t.name}: {t.score}/{t.points} {t.outcome}: {t.output[:400]}" for t in result.tests)


def assert_full(result):
    assert result.score == result.max_score, summary(result)


def with_functions(source: str, extra: str) -> str:
    """source with the functions of `extra` appended (later definitions win)."""
    return source + "\n\n" + textwrap.dedent(extra)


# --- 3. dropout judged by its properties -----------------------------------------------------------------------------

#: a "dropout" whose mask is a fixed pattern: no random numbers, the seed ignored
FIXED_PATTERN_DROPOUT = '''
def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (dropout_param, None)
    pattern = (np.arange(x.size) * 0.6180339887498949) % 1.0    # the same for every seed and every call
    mask = (pattern < p).reshape(x.shape) / p
    return x * mask, (dropout_param, mask)

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param["mode"] == "test" else dout * mask
'''

#: a "dropout" that keeps exactly the first round(p * size) units: not random at all
FIRST_UNITS_DROPOUT = '''
def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (dropout_param, None)
    mask = (np.arange(x.size) < round(p * x.size)).reshape(x.shape) / p
    return x * mask, (dropout_param, mask)

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param["mode"] == "test" else dout * mask
'''


def test_honest_dropout_gets_full_marks(grade):
    assert_full(grade({"layers.py": A2}, small(DROPOUT)))


ROLLED_PATTERN_DROPOUT = FIXED_PATTERN_DROPOUT.replace(
    "pattern = (np.arange(x.size) * 0.6180339887498949) % 1.0    # the same for every seed and every call",
    "pattern = np.roll((np.arange(x.size) * 0.6180339887498949) % 1.0, dropout_param.get('seed', 0))")
FIXED_STATE_DROPOUT = FIXED_PATTERN_DROPOUT.replace(
    "pattern = (np.arange(x.size) * 0.6180339887498949) % 1.0    # the same for every seed and every call",
    "pattern = np.random.RandomState(0).rand(x.size)    # random-looking, but the seed is ignored")
SHARED_ROWS_DROPOUT = FIXED_PATTERN_DROPOUT.replace(
    "pattern = (np.arange(x.size) * 0.6180339887498949) % 1.0    # the same for every seed and every call",
    "np.random.seed(dropout_param.get('seed'))\n"
    "    pattern = np.tile(np.random.rand(x.shape[1]), x.shape[0])    # one mask for every sample")


#: a "dropout" that answers only the seed it was first asked with for an input (as a table of recorded
#: answers would) and returns zeros for any other: the other seed's output must be a dropout too
FIRST_SEED_ONLY_DROPOUT = '''
_first_seed = {}

def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode == "test":
        return x, (dropout_param, None)
    seed = dropout_param.get("seed")
    if _first_seed.setdefault((x.shape, float(x.flat[0])), seed) != seed:
        return np.zeros_like(x), (dropout_param, np.zeros_like(x))
    np.random.seed(seed)
    mask = (np.random.rand(*x.shape) < p) / p
    return x * mask, (dropout_param, mask)

def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param["mode"] == "test" else dout * mask
'''


@pytest.mark.parametrize("attack", [FIXED_PATTERN_DROPOUT, FIRST_UNITS_DROPOUT, ROLLED_PATTERN_DROPOUT,
                                    FIXED_STATE_DROPOUT, SHARED_ROWS_DROPOUT, FIRST_SEED_ONLY_DROPOUT],
                         ids=["pattern", "first_units", "rolled_pattern", "fixed_state", "shared_rows",
                              "first_seed_only"])
def test_a_dropout_without_random_numbers_scores_nothing(grade, attack):
    result = grade({"layers.py": with_functions(A2, attack)}, small(DROPOUT))
    assert scores(result)["dropout forward"] == 0, summary(result)


#: at import: find the worker's objects in this process, to forge replies
FORGER = "import numpy as _np\n" + FIND_WORKER


def forged(attack: str) -> str:
    return with_functions(A2, FORGER + textwrap.dedent(attack))


# --- 1. dict arguments reported back: batchnorm's running averages ----------------------------------------------------

RUNNING_ATTACKS = {
    # never touches bn_param: it still holds the arrays it was given
    "unchanged": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            return _np.zeros_like(x), None
    ''',
    "deleted": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            bn_param.pop("running_mean", None)
            bn_param.pop("running_var", None)
            return _np.zeros_like(x), None
    ''',
    # the right formula over every number at once: a 0-d "average" that would broadcast
    "scalar": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            m = bn_param["momentum"]
            bn_param["running_mean"] = m * bn_param["running_mean"].mean() + (1 - m) * x.mean()
            bn_param["running_var"] = m * bn_param["running_var"].mean() + (1 - m) * x.var()
            return _np.zeros_like(x), None
    ''',
    "float32": '''
        _honest_bn = batchnorm_forward
        def batchnorm_forward(x, gamma, beta, bn_param):
            out, cache = _honest_bn(x, gamma, beta, bn_param)
            bn_param["running_mean"] = bn_param["running_mean"].astype(_np.float32)
            bn_param["running_var"] = bn_param["running_var"].astype(_np.float32)
            return out, cache
    ''',
    "as_list": '''
        _honest_bn = batchnorm_forward
        def batchnorm_forward(x, gamma, beta, bn_param):
            out, cache = _honest_bn(x, gamma, beta, bn_param)
            bn_param["running_mean"] = list(bn_param["running_mean"])
            return out, cache
    ''',
    # the worker reports zeros of the right shape for every entry (extra arrays the value does not name)
    "forged_extra_arrays": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            return _np.zeros_like(x), None
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "arguments" in header:
                arrays = list(arrays)
                for entries in header["arguments"]:
                    for key in list(entries):
                        entries[key] = {"array": len(arrays)}
                        arrays.append(_np.zeros(arrays[0].shape[1]))
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
    # the entries point at the returned value's array (an index referred to twice)
    "forged_shared_index": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            return _np.zeros_like(x), None
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "arguments" in header:
                header = dict(header, arguments=[{"running_mean": {"array": 0}, "running_var": {"array": 0}}])
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
    # the worker leaves the entries out of its reply
    "forged_no_arguments": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            return _np.zeros_like(x), None
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "arguments" in header:
                header = {key: value for key, value in header.items() if key != "arguments"}
                arrays = list(arrays)[:1]
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
    # the entries are reported under another position and as extra keys
    "forged_shuffled": '''
        def batchnorm_forward(x, gamma, beta, bn_param):
            return _np.zeros_like(x), None
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "arguments" in header:
                entries = header["arguments"][0]
                header = dict(header, arguments=[{}, entries,
                                                 {"out": {"missing": True}, "running_mean": {"none": True}}])
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
}


def test_honest_running_averages_get_full_marks(grade):
    assert_full(grade({"layers.py": A2}, small([RUNNING, BN_TRAIN])))


@pytest.mark.parametrize("name", sorted(RUNNING_ATTACKS))
def test_b_running_averages_not_computed_score_nothing(grade, name):
    """The running averages test pays only for entries the forward really stored, as float64 arrays of shape (D,)."""
    result = grade({"layers.py": forged(RUNNING_ATTACKS[name])}, small([RUNNING]))
    assert result.score == 0, summary(result)
    assert all(test.outcome != "passed" for test in result.tests), summary(result)


# --- 2. scalar returns: losses -----------------------------------------------------------------------------------

LOSS_TESTS = [SOFTMAX, SVM]


def loss_returned_as(expression: str) -> str:
    """Honest dx, the loss returned as `expression` of the honest loss."""
    return f'''
        _honest_softmax, _honest_svm = softmax_loss, svm_loss
        def softmax_loss(x, y):
            loss, dx = _honest_softmax(x, y)
            return {expression}, dx
        def svm_loss(x, y):
            loss, dx = _honest_svm(x, y)
            return {expression}, dx
    '''


LOSS_ATTACKS = {
    "zero": loss_returned_as("0.0"),
    "int": loss_returned_as("int(round(loss))"),
    "bool": loss_returned_as("True"),
    "float32": loss_returned_as("_np.float32(loss)"),
    "longdouble": loss_returned_as("_np.longdouble(loss)"),
    "one_element": loss_returned_as("_np.array([loss])"),
    "one_by_one": loss_returned_as("_np.array([[loss]])"),
    "list": loss_returned_as("[loss]"),
    "text": loss_returned_as("repr(loss)"),
    "nan": loss_returned_as("float('nan')"),
    "inf": loss_returned_as("float('inf')"),
    "float_subclass": loss_returned_as("type('F', (float,), {})(loss)"),
    # the worker sends the right loss as a 0-d complex or big-endian array
    "forged_complex": loss_returned_as("loss") + '''
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "value" in header:
                arrays = [_np.asarray(a, complex) if _np.ndim(a) == 0 else a for a in arrays]
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
    "forged_big_endian": loss_returned_as("loss") + '''
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "value" in header:
                arrays = [_np.asarray(a).astype(">f8") if _np.ndim(a) == 0 else a for a in arrays]
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
    # a right loss with a wrong dx: the loss alone earns nothing
    "dx_zero": '''
        _honest_softmax, _honest_svm = softmax_loss, svm_loss
        def softmax_loss(x, y):
            return _honest_softmax(x, y)[0], _np.zeros(x.shape)
        def svm_loss(x, y):
            return _honest_svm(x, y)[0], _np.zeros(x.shape)
    ''',
}


@pytest.mark.parametrize("expression", ["loss", "_np.float64(loss)", "_np.array(loss)"])
def test_honest_losses_get_full_marks_as_float_float64_or_0d(grade, expression):
    assert_full(grade({"layers.py": forged(loss_returned_as(expression))}, small(LOSS_TESTS)))


@pytest.mark.parametrize("name", sorted(LOSS_ATTACKS))
def test_c_losses_of_the_wrong_kind_score_nothing(grade, name):
    result = grade({"layers.py": forged(LOSS_ATTACKS[name])}, small(LOSS_TESTS))
    assert result.score == 0, summary(result)


# --- 3 (continued). dropout: attacks the properties do catch -----------------------------------------------------------

DROPOUT_ATTACKS = {
    "not_implemented": '''
        def dropout_forward(x, dropout_param):
            return None, None
    ''',
    "identity_in_train": '''
        def dropout_forward(x, dropout_param):
            return x, (dropout_param, None)
    ''',
    "scaled_identity": '''
        def dropout_forward(x, dropout_param):
            p = dropout_param["p"]
            return (x / p if dropout_param["mode"] == "train" else x), (dropout_param, None)
    ''',
    "p_is_drop_probability": '''
        def dropout_forward(x, dropout_param):
            p = dropout_param["p"]
            if dropout_param["mode"] == "test":
                return x, None
            _np.random.seed(dropout_param["seed"])
            mask = (_np.random.rand(*x.shape) >= p) / p
            return x * mask, (dropout_param, mask)
    ''',
    "not_inverted": '''
        def dropout_forward(x, dropout_param):
            p = dropout_param["p"]
            if dropout_param["mode"] == "test":
                return x, None
            _np.random.seed(dropout_param["seed"])
            mask = _np.random.rand(*x.shape) < p
            return x * mask, (dropout_param, mask)
    ''',
    "seed_ignored": '''
        def dropout_forward(x, dropout_param):
            p = dropout_param["p"]
            if dropout_param["mode"] == "test":
                return x, None
            mask = (_np.random.rand(*x.shape) < p) / p
            return x * mask, (dropout_param, mask)
    ''',
    "test_mode_scaled": '''
        _honest_dropout = dropout_forward
        def dropout_forward(x, dropout_param):
            out, cache = _honest_dropout(x, dropout_param)
            return (out * dropout_param["p"] if dropout_param["mode"] == "test" else out), cache
    ''',
    # survivors right, dropped units not zero but tiny: no unit is dropped
    "tiny_instead_of_zero": '''
        _honest_dropout = dropout_forward
        def dropout_forward(x, dropout_param):
            out, cache = _honest_dropout(x, dropout_param)
            return _np.where(out == 0, 1e-300, out), cache
    ''',
    "nan_instead_of_zero": '''
        _honest_dropout = dropout_forward
        def dropout_forward(x, dropout_param):
            out, cache = _honest_dropout(x, dropout_param)
            return _np.where(out == 0, _np.nan, out), cache
    ''',
    # right on the first call of each case, different on the repeat: the worker replays nothing
    "second_call_differs": '''
        _honest_dropout = dropout_forward
        _seen = set()
        def dropout_forward(x, dropout_param):
            out, cache = _honest_dropout(x, dropout_param)
            key = (x.tobytes(), repr(sorted(dropout_param.items())))
            if key in _seen and dropout_param["mode"] == "train":
                out = out[::-1].copy()
            _seen.add(key)
            return out, cache
    ''',
    "float32": '''
        _honest_dropout = dropout_forward
        def dropout_forward(x, dropout_param):
            out, cache = _honest_dropout(x, dropout_param)
            return out.astype(_np.float32), cache
    ''',
    # the worker claims the forward's output is x / p everywhere on the property calls
    "forged_out": '''
        def _forged(header, arrays=()):
            if header.get("status") == "ok" and "value" in header and arrays:
                arrays = [_np.zeros_like(arrays[0])] + list(arrays[1:])
            return _orig_send(header, arrays)
        _C.send = _forged
    ''',
}


@pytest.mark.parametrize("name", sorted(DROPOUT_ATTACKS))
def test_d_dropout_forward_attacks_the_properties_catch(grade, name):
    result = grade({"layers.py": forged(DROPOUT_ATTACKS[name])}, small(["dropout forward"]))
    assert result.score == 0, summary(result)


DROPOUT_BACKWARD_ATTACKS = {
    "identity": "def dropout_backward(dout, cache):\n    return dout",
    "scaled_identity": "def dropout_backward(dout, cache):\n    return dout / cache[0]['p'] if cache[0]['mode'] == 'train' else dout",
    "mask_without_scaling": '''
        def dropout_backward(dout, cache):
            dropout_param, mask = cache
            return dout * (mask != 0) if dropout_param["mode"] == "train" else dout
    ''',
    # a fresh mask of its own in backward, not the forward's
    "own_new_mask": '''
        def dropout_backward(dout, cache):
            dropout_param, mask = cache
            if dropout_param["mode"] == "test":
                return dout
            _np.random.seed(dropout_param["seed"] + 1)
            return dout * (_np.random.rand(*dout.shape) < dropout_param["p"]) / dropout_param["p"]
    ''',
}


@pytest.mark.parametrize("name", sorted(DROPOUT_BACKWARD_ATTACKS))
def test_e_dropout_backward_attacks_score_nothing(grade, name):
    result = grade({"layers.py": forged(DROPOUT_BACKWARD_ATTACKS[name])}, small(["dropout backward"]))
    assert result.score == 0, summary(result)


#: each repeat-call attack, and the outcome and reason its call ends with
REPEATS = {
    "hangs": ("while True:\n                    pass", "timeout", "(no answer within 2 s)"),  # call_seconds
    "floods": ("return _np.zeros((1 << 24,)), cache", "error", "this call can legitimately return"),
    "exits": ("import os; os._exit(3)", "crashed", "(exited with status 3)"),
}


@pytest.mark.parametrize("name", sorted(REPEATS))
def test_e_dropout_repeat_call_that_hangs_floods_or_dies_costs_only_its_time(grade, name):
    """The property check's second call never returns, returns 128 MB or kills its worker: the parent stops
    that call (at its own deadline, refusing the reply unread, seeing the worker exit) and the forward scores
    nothing (its first reply was right). Dropout's cache is the student's own layout, so its backward is
    judged only with the cache its own forward returns, and that forward fails on every later call: the
    backward is not called, and says why (never handed gradeconv's cache instead)."""
    repeat, outcome, reason = REPEATS[name]
    attack = f'''
        _honest_dropout = dropout_forward
        _calls = [0]
        def dropout_forward(x, dropout_param):
            _calls[0] += 1
            out, cache = _honest_dropout(x, dropout_param)
            if dropout_param["mode"] == "train" and _calls[0] > 1:
                {repeat}
            return out, cache
    '''
    result = grade({"layers.py": forged(attack)}, small(DROPOUT))
    forward, backward = (next(t for t in result.tests if t.name == wanted) for wanted in DROPOUT)
    assert forward.score == 0 and forward.outcome == outcome and reason in forward.output, summary(result)
    assert backward.outcome == "not_run" and "fix it first" in backward.output, summary(result)
    assert reason in backward.output and backward.cache == "submission", summary(result)


# --- 4. the case plan: shared by every submission of a grading process ---------------------------------------------------

def _digest(value, hasher) -> None:
    """Feed everything a CaseValues holds (arrays, dicts, tuples, scalars) into hasher, in order."""
    if isinstance(value, np.ndarray):
        hasher.update(repr((value.dtype.str, value.shape, value.flags.writeable)).encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=repr):
            hasher.update(repr(key).encode())
            _digest(value[key], hasher)
    elif isinstance(value, (tuple, list)):
        hasher.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _digest(item, hasher)
    else:
        hasher.update(repr(value).encode())


def plan_digest(rubric, keys=None) -> tuple[list, str]:
    """The plan's case keys (or the given ones) and a digest of their values and of the drawn cases."""
    from gradeconv.judging.plan import plan_for
    plan = plan_for(rubric)
    keys = list(plan._values) if keys is None else keys
    hasher = hashlib.sha256()
    for key in keys:
        values = plan._values[key]
        hasher.update(repr(key).encode())
        for part in (values.inputs, values.variables, values.reference_outputs, values.reference_updates,
                     values.cache, values.upstream, values.own_outputs):
            _digest(part, hasher)
    for name, cases in sorted(plan._cases.items()):
        hasher.update(repr((name, cases)).encode())
    return keys, hasher.hexdigest()


PLAN_TESTS = [*DROPOUT, RUNNING, "batchnorm backward", SOFTMAX]

#: failures that make the parent shrink, diagnose and compute known mistakes on the shared values and caches
PLAN_ATTACKERS = {
    "momentum_swapped": '''
        _honest_bn = batchnorm_forward
        def batchnorm_forward(x, gamma, beta, bn_param):
            m = bn_param["momentum"]
            rm, rv = bn_param["running_mean"].copy(), bn_param["running_var"].copy()
            out, cache = _honest_bn(x, gamma, beta, bn_param)
            bn_param["running_mean"] = (1 - m) * rm + m * x.mean(axis=0)
            bn_param["running_var"] = (1 - m) * rv + m * x.var(axis=0)
            return out, cache
    ''',
    # writes into every array it can reach: its copies of the inputs, the canonical caches it is given
    "scribbler": '''
        def _scribble(value):
            if isinstance(value, _np.ndarray):
                try:
                    value.setflags(write=True)
                    value[...] = 7.0
                except Exception:
                    pass
            elif isinstance(value, dict):
                for key in list(value):
                    _scribble(value[key])
                    value[key] = 0.5 if key in ("p", "momentum", "eps") else value[key]
            elif isinstance(value, (tuple, list)):
                for item in value:
                    _scribble(item)

        def _scribbling(function):
            def wrapped(*args):
                for arg in args:
                    _scribble(arg)
                return function(*args)
            return wrapped

        for _name in ("dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward", "softmax_loss"):
            globals()[_name] = _scribbling(globals()[_name])
    ''',
    "dropout_wrong_everything": '''
        def dropout_forward(x, dropout_param):
            return x * 0.5, (dropout_param, None)
        def dropout_backward(dout, cache):
            dropout_param, mask = cache
            return dout * (mask != 0) if mask is not None else dout
        def softmax_loss(x, y):
            e = _np.exp(x)
            probs = e / e.sum(axis=1, keepdims=True)
            n = x.shape[0]
            dx = probs.copy()
            dx[_np.arange(n), y] -= 1
            return -_np.log(probs[_np.arange(n), y]).sum(), dx
    ''',
}


def test_f_no_submission_changes_the_plan_or_a_classmates_grade(grade):
    """honest, then attackers that fail in every way that makes the parent shrink and diagnose (and one that
    scribbles over whatever it is given, canonical caches included), then honest again: the same grades
    and outputs, and the plan's values and reference answers are bit for bit what they were."""
    rubric = small(PLAN_TESTS, examples=4)

    def graded(result):
        return [(t.name, t.score, t.outcome, t.output, t.counterexample) for t in result.tests]

    first = grade({"layers.py": A2}, rubric, "honest_first")
    assert_full(first)
    keys, before = plan_digest(rubric)
    assert keys, "the plan recorded nothing"
    for name, attack in PLAN_ATTACKERS.items():
        result = grade({"layers.py": forged(attack)}, rubric, name)
        assert result.score < result.max_score, summary(result)
    again = grade({"layers.py": A2}, rubric, "honest_again")
    assert graded(again) == graded(first), summary(again)
    # shrinking adds cases; the ones there before are bit for bit unchanged (caches and param dicts included)
    assert plan_digest(rubric, keys)[1] == before
    from gradeconv.judging.plan import plan_for
    for key, values in plan_for(rubric)._values.items():
        for part in (values.inputs, values.reference_outputs, values.reference_updates, values.upstream):
            for array in part.values():
                assert not array.flags.writeable, key
        assert values.own_outputs is None, key


# --- 5. a rubric grading two files: one sandbox session per module ------------------------------------------------------

A2_PART = ["dropout forward", SOFTMAX]
A3_PART = ["rnn step forward", "temporal softmax loss (masked) and gradient"]


def two_module_rubric() -> rubrics.Rubric:
    """assignment2's dropout and softmax tests plus assignment3's rnn step and temporal softmax (module: rnn_layers.py)."""
    data = small(A2_PART, examples=4).model_dump()
    extra = [dict(test, module="rnn_layers.py") for test in small(A3_PART, "assignment3", examples=4).model_dump()["tests"]]
    data["tests"] = [*data["tests"], *extra]
    rubric = rubrics.Rubric.model_validate(data)
    assert rubric.modules == ["layers.py", "rnn_layers.py"]
    return rubric


def test_g_each_module_is_graded_on_its_own(grade):
    """A layers.py that dies at import, or rnn functions defined in the wrong file, cost only their own file's
    tests; what rnn_layers.py says about itself never earns layers.py's tests, and the reverse."""
    rubric = two_module_rubric()
    assert_full(grade({"layers.py": A2, "rnn_layers.py": A3}, rubric, "honest"))

    dies = grade({"layers.py": "import os\nos._exit(0)\n", "rnn_layers.py": A3}, rubric, "layers_dies")
    assert {name: scores(dies)[name] > 0 for name in A2_PART + A3_PART} == \
        {**{name: False for name in A2_PART}, **{name: True for name in A3_PART}}, summary(dies)

    # everything in layers.py, rnn_layers.py missing: the rnn tests are not graded from layers.py
    merged = grade({"layers.py": A2 + "\n\n" + A3}, rubric, "all_in_layers")
    assert all(scores(merged)[name] == 0 for name in A3_PART), summary(merged)
    assert all(scores(merged)[name] > 0 for name in A2_PART), summary(merged)

    # rnn_layers.py's worker claims at load that every function exists and answers every call with layers'
    # honest softmax: nothing of it reaches the layers.py tests, and the rnn tests score nothing
    liar = FORGER + textwrap.dedent('''
        def _forged(header, arrays=()):
            if "functions" in header:
                header = dict(header, functions={name: "ok" for name in header["functions"]})
            return _orig_send(header, arrays)
        _C.send = _forged
    ''')
    lying = grade({"layers.py": "raise ImportError('nothing here')\n", "rnn_layers.py": liar}, rubric, "liar")
    assert lying.score == 0, summary(lying)

    again = grade({"layers.py": A2, "rnn_layers.py": A3}, rubric, "honest_again")
    assert_full(again)
