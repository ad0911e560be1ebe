"""The case plan: drawn once per rubric, and grading with it gives exactly a plain search's results."""
import sys
import threading

import pytest
from hypothesis import given, settings

import numpy as np

from gradeconv.judging import gradients
from gradeconv.judging import plan as plans
from gradeconv import rubric as rubrics
from gradeconv.judging.cases import build, cases, space_of
from gradeconv.judging.grading import grade_submission
from gradeconv.judging.runner import CaseRunner
from gradeconv.judging.search import smallest_failure
from gradeconv.specs import function, layer_of
from gradeconv.submissions import Submission
from tests.conftest import CORRECT, ROOT, mutate

SAMPLE = ["alice", "bob_pad0_crop", "carol_pool_overwrites", "dave_h_w_swapped", "erin_true_division",
          "frank_missing_bias"]


def plain_search(self, test):
    """What grading did before the plan: the search itself, for every test."""
    return smallest_failure(lambda case: self.run_case(test, case), test.function, test.draw_space,
                            test.examples, self.rubric.seed_of(test))


def comparable(result) -> dict:
    row = result.to_json()
    row.pop("execution_time")
    return row


@pytest.mark.parametrize("name", SAMPLE)
def test_planned_grading_gives_the_plain_searchs_results(name, default_rubric, monkeypatch):
    submission = Submission(name, ROOT / "submissions" / name)
    planned = comparable(grade_submission(submission, default_rubric))
    monkeypatch.setattr(CaseRunner, "first_planned_failure", plain_search)
    assert comparable(grade_submission(submission, default_rubric)) == planned


def test_a_plan_is_drawn_once_per_rubric_and_shared_by_the_class(small_rubric, private_tmp, monkeypatch):
    searches = []
    original = plans.smallest_failure
    monkeypatch.setattr(plans, "smallest_failure", lambda *args, **kwargs: searches.append(1) or original(*args, **kwargs))
    alice = Submission("alice", ROOT / "submissions" / "alice")
    grade_submission(alice, small_rubric)
    drawn = len(searches)
    assert drawn == sum(1 for test in small_rubric.tests if test.examples)
    grade_submission(alice, small_rubric)
    assert len(searches) == drawn  # the second submission reuses every planned case


def test_a_different_rubric_or_secret_never_reuses_a_plan(default_rubric, tmp_path, monkeypatch):
    changed = default_rubric.model_copy(update={"seed": default_rubric.seed + 1})
    assert plans.plan_for(default_rubric) is plans.plan_for(default_rubric)
    assert plans.plan_for(changed) is not plans.plan_for(default_rubric)
    text = (ROOT / "rubric.yaml").read_text() + "secret_env: GRADECONV_TEST_SECRET\n"
    (tmp_path / "rubric.yaml").write_text(text)
    monkeypatch.setenv("GRADECONV_TEST_SECRET", "one")
    first = plans.plan_for(rubrics.load(tmp_path / "rubric.yaml"))
    monkeypatch.setenv("GRADECONV_TEST_SECRET", "two")
    assert plans.plan_for(rubrics.load(tmp_path / "rubric.yaml")) is not first


@settings(max_examples=5, deadline=None)
@given(case=cases("batchnorm_forward", space_of(layer_of("batchnorm_forward"), {})))
def test_shared_case_values_are_read_only(case):
    values = build(case)
    for array in (*values.inputs.values(), *values.reference_outputs.values(), *values.upstream.values()):
        with pytest.raises(ValueError):
            array[...] = 0


@settings(max_examples=5, deadline=None)
@given(case=cases("conv_backward_naive", space_of(layer_of("conv_backward_naive"), {})))
def test_a_reference_backward_is_worked_out_once_and_read_only(case):
    values = build(case)
    backward = function("conv_backward_naive")
    first, again = values.reference_backward(backward), values.reference_backward(backward)
    assert set(first) == {"dx", "dw", "db"}
    for name, array in first.items():
        assert again[name] is array
        with pytest.raises(ValueError):
            array[...] = 0
    first.pop("dx")  # the caller's dict is its own
    assert "dx" in values.reference_backward(backward)


@settings(max_examples=5, deadline=None)
@given(case=cases("conv_backward_naive", space_of(layer_of("conv_backward_naive"), {})))
def test_shared_gradient_probes_give_the_verdict_of_a_live_check(case):
    values = build(case)
    backward = function("conv_backward_naive")
    right = values.reference_backward(backward)
    wrong = dict(right, dw=right["dw"] * 1.01 + 1e-3)
    upstream = {"out": values.upstream["dout"]}
    settings_ = rubrics.GradientCheck(directions=2)
    probed = tuple(gradients.probes(values.reference_forward, values.inputs, ["dx", "dw", "db"], backward.gradients,
                                    upstream, settings_, case.seed))
    assert len(probed) == 6 and {probe.gradient for probe in probed} == {"dx", "dw", "db"}
    for grads in (right, wrong):
        live = gradients.check(values.reference_forward, values.inputs, grads, backward.gradients, upstream,
                               settings_, case.seed)
        shared = gradients.check(values.reference_forward, values.inputs, grads, backward.gradients, upstream,
                                 settings_, case.seed, probed)
        assert shared == live
    assert live[0] is not None and live[0].output == "dw"  # the wrong dw is caught, and only dw
    assert all(np.isfinite(probe.slope) for probe in probed)


def test_answers_shared_by_a_class_never_change_a_verdict(default_rubric, write_submission):
    """Graded in one batch (reference answers and gradient probes shared) or each alone: the same results."""
    data = default_rubric.model_dump()
    for test in data["tests"]:  # every backward test judged by the gradient check alone
        if "backward" in test["function"]:
            test["checks"] = {"reference": None, "gradient": {"mode": "directional", "directions": 2}}
    rubric = rubrics.Rubric.model_validate(data)
    source = CORRECT.read_text()
    class_ = [
        Submission("correct", write_submission("correct", source)),
        Submission("dw_wrong", write_submission("dw_wrong", mutate(
            source, "dw[f] += x_pad[n, :, rows, cols]", "dw[f] += x_pad[n, :, i:i + HH, j:j + WW]"))),
        Submission("carol", ROOT / "submissions" / "carol_pool_overwrites"),
    ]
    alone = []
    for submission in class_:
        plans._PLANS.clear()
        alone.append(comparable(grade_submission(submission, rubric)))
    plans._PLANS.clear()
    batch = [comparable(grade_submission(submission, rubric)) for submission in [*class_, class_[0]]]
    assert batch == [*alone, alone[0]]
    assert alone[0]["score"] == alone[0]["max_score"] and alone[1]["score"] < alone[1]["max_score"]
    assert any("numeric gradient" in test["output"] for test in alone[1]["tests"])


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Plans written in a private folder of this test's own, none in memory."""
    folder = tmp_path / "gradeconv-plans-test"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(plans, "private_folder", lambda purpose: folder)
    plans._PLANS.clear()
    yield tmp_path
    plans._PLANS.clear()


def test_a_check_run_reuses_the_plan_on_disk(small_rubric, private_tmp, monkeypatch):
    alice = Submission("alice", ROOT / "submissions" / "alice")
    first = comparable(grade_submission(alice, small_rubric))
    recorded = dict(plans.plan_for(small_rubric)._cases)
    files = list(private_tmp.glob("gradeconv-plans-*/*.json"))
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    plans._PLANS.clear()  # a new `gradeconv check` process

    def no_search(*args, **kwargs):
        raise AssertionError("the plan on disk was not used")

    monkeypatch.setattr(plans, "smallest_failure", no_search)
    assert comparable(grade_submission(alice, small_rubric)) == first
    assert plans.plan_for(small_rubric)._cases == recorded  # the very cases, read back


def test_a_changed_rubric_or_a_damaged_file_never_gives_a_stale_plan(small_rubric, private_tmp):
    grade_submission(Submission("alice", ROOT / "submissions" / "alice"), small_rubric)
    [file] = private_tmp.glob("gradeconv-plans-*/*.json")
    changed = small_rubric.model_copy(update={"seed": small_rubric.seed + 7})
    plans._PLANS.clear()
    assert plans.plan_for(changed).file != file and plans.plan_for(changed)._cases == {}
    file.write_text('{"format": 1, "tests": {"x": [["conv_forward_naive", 5, "no", []]]}}')
    plans._PLANS.clear()
    assert plans.plan_for(small_rubric)._cases == {}  # unreadable: drawn again, never trusted


def test_a_plan_folder_others_can_write_or_a_link_is_not_used(tmp_path, monkeypatch):
    import os
    import tempfile

    from gradeconv.private import private_folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"gradeconv-plans-{os.geteuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    assert private_folder("plans") is None
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(tmp_path / "elsewhere")
    assert private_folder("plans") is None
    folder.unlink()
    assert private_folder("plans") == folder and oct(folder.stat().st_mode & 0o777) == "0o700"


def test_a_plan_shared_by_threads_gives_each_the_same_values(small_rubric, private_tmp, monkeypatch):
    """A Dask worker may grade on several threads: the plan's cache of values stays consistent."""
    monkeypatch.setattr(plans, "MAX_VALUES", 2)  # every lookup races an eviction
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between almost any two bytecodes
    plan = plans.plan_for(small_rubric)
    test = next(test for test in small_rubric.tests if test.examples)
    drawn = plan.cases(test)[:4]
    errors = []

    def look_up() -> None:
        try:
            for _ in range(200):
                for case in drawn:
                    assert plan.values(test, case).case.variables == case.variables
        except Exception as error:  # noqa: BLE001 - reported below, with the thread's error
            errors.append(error)

    threads = [threading.Thread(target=look_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert len(plan._values) <= 2
