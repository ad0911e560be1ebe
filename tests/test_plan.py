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
