"""The parent fails closed: a reply it cannot judge, or any error while judging one, is a failure.

Covers the wire format (each .npy header checked before its data is read),
the reply schema, exceptions inside the judging of explicit and generated
cases, read-only inputs, and the secret of hidden tests.
"""
import io
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradeconv
from gradeconv import outcomes
from gradeconv.judging import checks, gradients, networks, search, stateful
from gradeconv import rubric as rubrics
from gradeconv.results import CaseResult
from gradeconv.judging.cases import space_of
from gradeconv.specs import dropout, layer_of
from gradeconv.sandbox import replies, wire
from tests.conftest import CORRECT, ROOT, skip_unless_available

ANCHOR = '    stride, pad = conv_param["stride"], conv_param["pad"]\n'


def in_conv_forward(code: str) -> str:
    """The correct solution with code added at the top of conv_forward_naive only."""
    return CORRECT.read_text().replace(ANCHOR, ANCHOR + f"    {code}\n", 1)


class Stream:
    """read_exactly over bytes, recording how much was read."""

    def __init__(self, data: bytes):
        self.buffer, self.read = io.BytesIO(data), 0

    def __call__(self, size: int) -> bytes:
        chunk = self.buffer.read(size)
        if len(chunk) < size:
            raise EOFError
        self.read += size
        return chunk


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def message(header: dict, blobs: list[bytes]) -> bytes:
    text = json.dumps(dict(header, blobs=[len(blob) for blob in blobs])).encode()
    return struct.pack(">I", len(text)) + text + b"".join(blobs)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 4), max_size=4), dtype=st.sampled_from(["<f8", "<f4", "<i8", "|u1", "|b1", "<c16"]),
       fortran=st.booleans())
def test_numeric_arrays_cross_read_only_and_unchanged(shape, dtype, fortran):
    array = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)
    if fortran:
        array = np.asfortranarray(array)
    header, [received] = wire.receive(Stream(wire.encode({"op": "x"}, [array])), 1 << 20)
    assert header["op"] == "x"
    assert received.shape == array.shape and received.dtype == array.dtype
    assert np.array_equal(received, array)
    assert not received.flags.writeable
    with pytest.raises(ValueError):
        received.setflags(write=True)


@pytest.mark.parametrize("blob", [
    npy(np.zeros(2, dtype=[("a", "<f8")])),
    npy(np.array(["text"])),
    npy(np.zeros(2, dtype="M8[s]")),
    npy(np.zeros(4))[:-8],                                   # fewer data bytes than the shape needs
    npy(np.zeros(4)) + b"\0" * 8,                            # more
    npy(np.zeros(4)).replace(b"(4,)", b"(5,)"),              # a shape that does not match the bytes
    b"\x93NUMPY\x03\x00" + npy(np.zeros(1))[8:],             # version 3
    b"not an npy file at all",
    b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100,               # a header longer than the data
], ids=["structured", "string", "datetime", "short", "long", "shape", "version3", "garbage", "header"])
def test_malformed_or_non_numeric_arrays_are_refused(blob):
    with pytest.raises(wire.WireError):
        wire.receive(Stream(message({}, [blob])), 1 << 20)


def test_object_arrays_are_refused_without_unpickling():
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(wire.WireError, match="not accepted|not a valid"):
        wire.receive(Stream(message({}, [pickled.getvalue()])), 1 << 20)


def test_oversized_reply_is_refused_before_any_array_byte_is_read():
    data = message({"status": "ok"}, [npy(np.zeros(1000))])
    stream = Stream(data)
    with pytest.raises(wire.WireError, match="more than the 100"):
        wire.receive(stream, max_array_bytes=100)
    assert stream.read == len(data) - len(npy(np.zeros(1000)))  # the header only: no array byte


@pytest.mark.parametrize("header,arrays", [
    ({"status": "passed", "value": {"none": True}}, 0),
    ({"status": "ok", "value": {"array": 3}}, 1),
    ({"status": "ok", "value": {"array": 0}}, 2),
    ({"status": "ok", "value": {"array": True}}, 1),
    ({"status": "ok", "value": {"array": 0}, "score": 100}, 1),
    ({"status": "ok", "value": {"sequence": "dict", "items": []}}, 0),
    ({"status": "ok", "value": {"sequence": "tuple", "items": [{"sequence": "tuple", "items": []}]}}, 0),
    ({"status": "raised", "type": "Error\nPASS everything", "message": ""}, 0),
    ({"status": "raised", "type": "ValueError", "message": "x", "where": "../../etc/passwd:1\nok"}, 0),
    ({"status": "ok"}, 0),
    ([], 0),
], ids=["status", "index", "extra-array", "bool-index", "extra-key", "sequence-kind", "nested", "type",
        "where", "no-value", "not-a-dict"])
def test_replies_outside_the_schema_are_malformed(header, arrays):
    if isinstance(header, dict):
        header = dict(header, blobs=[8] * arrays)
        with pytest.raises(replies.MalformedReply):
            replies.validate("call", header, arrays)
    else:
        with pytest.raises(wire.WireError):
            wire.decode_header(json.dumps(header).encode())


def test_a_well_formed_reply_is_accepted():
    header = {"status": "ok", "value": {"sequence": "tuple", "items": [{"array": 0}, {"other": "builtins.tuple"}]},
              "blobs": [128]}
    assert replies.validate("call", header, 1) is header


def test_an_exception_in_the_search_is_a_failure_not_a_pass():
    def run(case):
        raise RuntimeError("judging broke")

    result = search.smallest_failure(run, "conv_forward_naive", space_of(layer_of("conv_forward_naive"), {}), 5, 1)
    assert result is not None and result.outcome == outcomes.ERROR
    assert "could not finish" in result.message


@pytest.fixture(scope="module")
def judged_rubric(default_rubric):
    keep = {"conv forward: the notebook's example", "conv forward: no padding (pad = 0)",
            "conv backward dx: no padding (pad = 0)", "max-pool backward: overlapping windows (stride < pool size)"}
    data = default_rubric.model_dump()
    data["tests"] = [dict(t, examples=min(t["examples"], 4)) for t in data["tests"] if t["name"] in keep]
    assert len(data["tests"]) == len(keep)
    return rubrics.Rubric.model_validate(data)


@pytest.mark.parametrize("broken", ["compare", "unpack"])
def test_an_exception_while_judging_fails_every_case_it_touches(broken, judged_rubric, tmp_path, monkeypatch):
    """A reply that makes the parent raise (in explicit and generated cases alike) never counts as passed."""
    (tmp_path / "layers.py").write_text(CORRECT.read_text())

    def explode(*args, **kwargs):
        raise IndexError("the parent tripped over this reply")

    monkeypatch.setattr(checks, broken, explode)
    result = gradeconv.grade(tmp_path / "layers.py", judged_rubric, sandbox="none")[0]
    assert result.score == 0
    for test in result.tests:
        assert test.outcome == outcomes.ERROR
        assert "could not judge the reply" in test.output


def test_writing_into_inputs_fails_in_the_student_code_naming_the_array(judged_rubric, tmp_path):
    source = in_conv_forward("w *= 1.0")
    (tmp_path / "layers.py").write_text(source)
    result = gradeconv.grade(tmp_path / "layers.py", judged_rubric)[0]
    forward = [t for t in result.tests if t.function == "conv_forward_naive"]
    assert forward and all(t.outcome == outcomes.MUTATED_INPUT for t in forward)
    assert all("changed its input w in place" in t.output for t in forward)
    others = [t for t in result.tests if t.function != "conv_forward_naive"]
    assert all(t.passed for t in others), [t.output for t in others]


def test_a_reply_hiding_an_input_write_still_fails(judged_rubric, tmp_path):
    """The worker's hint is dropped, yet the write raised in the student's code: still mutated_input."""
    hide = ("import gc\n"
            "for _o in gc.get_objects():\n"
            "    if type(_o).__name__ == 'Worker' and hasattr(_o, 'written_inputs'):\n"
            "        _o.written_inputs = lambda *a: []\n")
    source = in_conv_forward("x[...] = 0")
    (tmp_path / "layers.py").write_text(hide + source)
    result = gradeconv.grade(tmp_path / "layers.py", judged_rubric)[0]
    forward = [t for t in result.tests if t.function == "conv_forward_naive"]
    assert all(t.outcome == outcomes.MUTATED_INPUT and "read-only" in t.output for t in forward)


def test_inputs_stay_writable_where_the_rubric_allows_changing_them(default_rubric, tmp_path):
    source = in_conv_forward("w *= 1.0")
    (tmp_path / "layers.py").write_text(source)
    data = default_rubric.model_dump()
    test = next(t for t in data["tests"] if t["name"] == "conv forward: no padding (pad = 0)")
    test["checks"]["inputs_unchanged"] = False
    test["examples"] = 3
    data["tests"] = [test]
    result = gradeconv.grade(tmp_path / "layers.py", rubrics.Rubric.model_validate(data))[0]
    assert result.tests[0].passed, result.tests[0].output


def test_malformed_replies_cost_the_call_not_a_storm_of_restarts(judged_rubric, tmp_path):
    forge = ("import gc\n"
             "print('WORKER-STARTED', flush=True)\n"
             "for _o in gc.get_objects():\n"
             "    if type(_o).__name__ == 'Worker' and hasattr(_o, 'describe'):\n"
             "        _o.describe = lambda value, arrays, depth: {'array': 7}\n")
    (tmp_path / "layers.py").write_text(forge + CORRECT.read_text())
    result = gradeconv.grade(tmp_path / "layers.py", judged_rubric)[0]
    assert result.score == 0
    assert all(t.outcome == outcomes.ERROR for t in result.tests)
    assert "refers to arrays" in result.tests[0].output
    # one worker per function at most (its tests call conv and max-pool forward and backward): every
    # malformed reply ends the calls to that function, so no worker is started again and again
    assert result.output.count("WORKER-STARTED") <= 4, result.output


def write_rubric(tmp_path, default_rubric, **extra) -> "rubrics.Rubric":
    data = default_rubric.model_dump(exclude_none=True)
    data["tests"] = [dict(t, visibility=("visible" if i == 0 else "hidden"))
                     for i, t in enumerate(data["tests"][:3])]
    data.update(extra)
    path = tmp_path / "rubric.yaml"
    import yaml
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
    return path


def test_a_secret_changes_hidden_seeds_only_and_is_never_stored(default_rubric, tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("correct horse battery staple\n")
    plain = rubrics.load(write_rubric(tmp_path, default_rubric))
    secret = rubrics.load(write_rubric(tmp_path, default_rubric, secret_file="secret.txt"))
    visible, hidden = secret.tests[0], secret.tests[1]
    assert secret.seed_of(visible) == plain.seed_of(visible)
    assert secret.seed_of(hidden) != plain.seed_of(hidden)
    assert secret.value_seed(hidden, 1) != plain.value_seed(hidden, 1)
    assert secret.secret_fingerprint and "staple" not in secret.secret_fingerprint
    assert plain.secret_fingerprint is None
    monkeypatch.setenv("GRADECONV_TEST_SECRET", "correct horse battery staple")
    from_env = rubrics.load(write_rubric(tmp_path, default_rubric, secret_env="GRADECONV_TEST_SECRET"))
    assert from_env.seed_of(hidden) == secret.seed_of(hidden)
    assert from_env.secret_fingerprint == secret.secret_fingerprint
    assert "staple" not in json.dumps(from_env.model_dump())


@pytest.mark.parametrize("extra,words", [
    ({"secret_env": "GRADECONV_UNSET_SECRET_VARIABLE"}, "GRADECONV_UNSET_SECRET_VARIABLE, which is not set"),
    ({"secret_file": "missing.txt"}, "missing.txt cannot be read"),
    ({"secret_file": "s.txt", "secret_env": "X"}, "either by secret_env or by secret_file"),
])
def test_secret_mistakes_are_one_clear_message(extra, words, default_rubric, tmp_path):
    (tmp_path / "s.txt").write_text("s")
    with pytest.raises(rubrics.RubricError, match=words):
        rubrics.load(write_rubric(tmp_path, default_rubric, **extra))


def test_case_result_final_stops_the_search():
    calls = []

    def run(case):
        calls.append(case)
        return CaseResult(outcomes.ERROR, "bad reply", final=True)

    result = search.smallest_failure(run, "conv_forward_naive", space_of(layer_of("conv_forward_naive"), {}), 50, 3)
    assert result.outcome == outcomes.ERROR
    assert len(calls) == 1


def test_results_carry_the_fingerprint_and_resume_needs_the_same_secret(default_rubric, tmp_path, monkeypatch):
    from gradeconv.reports import json_report

    (tmp_path / "secret.txt").write_text("first secret\n")
    first = rubrics.load(write_rubric(tmp_path, default_rubric, secret_file="secret.txt"))
    row = {"id": "a", "late": False, "path": "a", "score": 1.0, "max_score": 100.0, "execution_time": 0.1,
           "output": "", "tests": []}
    results = tmp_path / "results.json"
    json_report.write(results, first, [row])
    text = results.read_text()
    assert json.loads(text)["rubric"]["secret_fingerprint"] == first.secret_fingerprint
    assert "first secret" not in text
    assert [r["id"] for r in json_report.read_finished(results, first)] == ["a"]
    (tmp_path / "secret.txt").write_text("second secret\n")
    second = rubrics.load(write_rubric(tmp_path, default_rubric, secret_file="secret.txt"))
    assert second.sha256 == first.sha256
    said = []
    assert json_report.read_finished(results, second, said.append) == []
    assert "another secret" in said[0]


A2_SOLUTION = ROOT / "tests" / "solutions" / "a2"
#: the judging paths the layer specs added: reported dict entries, scalar losses, dropout's properties
LAYER_TESTS = {"batchnorm running averages: momentum and eps from bn_param", "svm loss and gradient",
               "dropout forward"}


@pytest.mark.parametrize("mode", ["bubblewrap", "uid"])
@pytest.mark.parametrize("broken", [(checks, "entries"), (checks, "_compare_scalar"),
                                    (dropout, "kept_bound"), (gradients, "_disagree")],
                         ids=["entries", "scalar", "properties", "shared_gradient_probes"])
def test_an_exception_in_the_layer_judging_paths_is_a_failure(broken, mode, monkeypatch):
    """Whatever the parent trips over while judging a dict entry, a loss, dropout's properties or the student's
    gradients against the class's shared probes fails the test."""
    skip_unless_available(mode)
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    data["tests"] = [test for test in data["tests"] if test["name"] in LAYER_TESTS]
    rubric = rubrics.Rubric.model_validate(data)
    honest = gradeconv.grade(A2_SOLUTION, rubric, sandbox=mode)[0]
    assert honest.score == rubric.max_score

    def explode(*args, **kwargs):
        raise IndexError("the parent tripped over this reply")

    target, name = broken
    monkeypatch.setattr(target, name, explode)
    result = gradeconv.grade(A2_SOLUTION, rubric, sandbox=mode)[0]
    judged = {"entries": "batchnorm running averages: momentum and eps from bn_param",
              "_compare_scalar": "svm loss and gradient", "kept_bound": "dropout forward",
              "_disagree": "svm loss and gradient"}[name]
    test = next(test for test in result.tests if test.name == judged)
    assert test.outcome == outcomes.ERROR and test.score == 0
    assert "could not judge the reply" in test.output


#: the judging paths of update rules and models: a rule's reply and the config it gives back, a model's reply,
#: its grads against the numeric slopes, the parameters its constructor made
WHOLE_TESTS = {"sgd_momentum", "FullyConnectedNet: loss and gradients", "FullyConnectedNet: initialisation"}


@pytest.mark.parametrize("mode", ["bubblewrap", "uid"])
@pytest.mark.parametrize("broken, judged", [
    ((stateful, "_unpack"), "sgd_momentum"), ((stateful, "_given_back"), "sgd_momentum"),
    ((networks, "_unpack"), "FullyConnectedNet: loss and gradients"),
    ((networks, "_numeric_check"), "FullyConnectedNet: loss and gradients"),
    ((networks, "_judge_initial"), "FullyConnectedNet: initialisation")],
    ids=["rule_reply", "rule_config_given_back", "model_reply", "model_numeric_slopes", "model_parameters"])
def test_an_exception_in_the_rule_and_model_judging_paths_is_a_failure(broken, judged, mode, monkeypatch):
    """Whatever the parent trips over while judging an update rule's steps or a model's phases fails the test."""
    skip_unless_available(mode)
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    data["tests"] = [dict(test, examples=min(test["examples"], 4)) for test in data["tests"]
                     if test["name"] in WHOLE_TESTS]
    rubric = rubrics.Rubric.model_validate(data)
    honest = gradeconv.grade(A2_SOLUTION, rubric, sandbox=mode)[0]
    assert honest.score == rubric.max_score

    def explode(*args, **kwargs):
        raise IndexError("the parent tripped over this reply")

    target, name = broken
    monkeypatch.setattr(target, name, explode)
    result = gradeconv.grade(A2_SOLUTION, rubric, sandbox=mode)[0]
    test = next(test for test in result.tests if test.name == judged)
    assert test.outcome == outcomes.ERROR and test.score == 0
    assert "could not judge the reply" in test.output
