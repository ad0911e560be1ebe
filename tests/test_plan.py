"""The case plan: drawn once per rubric, and grading with it gives exactly a plain search's results."""
import pytest
from hypothesis import given, settings

from gradeconv import plan as plans
from gradeconv import rubric as rubrics
from gradeconv.cases import build, cases, space_of
from gradeconv.grading import grade_submission
from gradeconv.runner import CaseRunner
from gradeconv.search import smallest_failure
from gradeconv.specs import layer_of
from gradeconv.submissions import Submission
from tests.conftest import ROOT

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


def test_a_plan_is_drawn_once_per_rubric_and_shared_by_the_class(small_rubric, monkeypatch):
    plans._PLANS.clear()
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
