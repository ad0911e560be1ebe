"""Each real bug class fails exactly the tests it should, with a counterexample and a diagnosis."""
import json

import pytest

import gradeconv
from tests.conftest import CORRECT, ROOT, VECTORISED, mutate
from tests.reproductions import assert_reproductions, correct_copy

CORRECT_SOURCE = CORRECT.read_text()
CONV_FORWARD = {
    "conv forward: no padding (pad = 0)",
    "conv forward: padding with stride > 1",
    "conv forward: non-square inputs and kernels (H != W)",
    "conv forward: 1x1 kernels",
}
ALL_CONV_FORWARD = CONV_FORWARD | {"conv forward: the notebook's example"}
CONV_BACKWARD = {
    "conv backward dx: no padding (pad = 0)",
    "conv backward dx: padding, stride > 1, non-square",
    "conv backward dw: no padding (pad = 0)",
    "conv backward dw: padding, stride > 1, non-square",
    "conv backward db",
}

# (bug, anchor in the correct solution, replacement, tests that must fail, words the report must contain)
BUGS = [
    ("pad0_crop", "dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad[:, :, pad:-pad, pad:-pad]",
     {"conv backward dx: no padding (pad = 0)"}, "[pad:-pad]"),
    ("pool_assign_not_accumulate", "dx[n, c, i * stride + di, j * stride + dj] += dout",
     "dx[n, c, i * stride + di, j * stride + dj] = dout",
     {"max-pool backward: overlapping windows (stride < pool size)",
      "max-pool backward: non-square inputs and windows"}, "`+=`"),
    ("h_w_swapped", "N, C, H, W = x.shape\n    F, _, HH, WW = w.shape\n    H_out",
     "N, C, W, H = x.shape\n    F, _, HH, WW = w.shape\n    H_out", CONV_FORWARD, "H != W"),
    ("true_division", "H_out = 1 + (H + 2 * pad - HH) // stride\n    W_out = 1 + (W + 2 * pad - WW) // stride\n    x_pad",
     "H_out = 1 + (H + 2 * pad - HH) / stride\n    W_out = 1 + (W + 2 * pad - WW) / stride\n    x_pad",
     ALL_CONV_FORWARD, "`//`"),
    ("missing_bias", "np.sum(window * w[f]) + b[f]", "np.sum(window * w[f])", ALL_CONV_FORWARD, "bias"),
    ("dw_ignores_stride", "dw[f] += x_pad[n, :, rows, cols]", "dw[f] += x_pad[n, :, i:i + HH, j:j + WW]",
     {"conv backward dw: no padding (pad = 0)", "conv backward dw: padding, stride > 1, non-square"},
     "stride > 1"),
    ("pool_size_from_wrong_param", "W_out = 1 + (W - pw) // stride", "W_out = 1 + (W - ph) // stride",
     {"max-pool forward: non-square inputs and windows"}, "wrong_shape"),
    ("float32_output", "out = np.zeros((N, F, H_out, W_out))", "out = np.zeros((N, F, H_out, W_out), dtype=np.float32)",
     ALL_CONV_FORWARD, "float64"),
    ("returns_padded_dx", "dx = dx_pad[:, :, pad:pad + H, pad:pad + W]", "dx = dx_pad",
     {"conv backward dx: padding, stride > 1, non-square"}, "padding"),
    ("changes_dout_in_place", "    db = np.sum(dout, axis=(0, 2, 3))",
     "    dout[dout < 0] = 0\n    db = np.sum(dout, axis=(0, 2, 3))", CONV_BACKWARD, "in place"),
    # With distinct pool values there is never a tie, so routing to every maximum is correct here.
    ("routes_to_every_tied_max", "k = np.argmax(window)\n                    di, dj = k // pw, k % pw\n"
     "                    dx[n, c, i * stride + di, j * stride + dj] += dout[n, c, i, j]",
     "mask = window == window.max()\n                    dx[n, c, i * stride:i * stride + ph, "
     "j * stride:j * stride + pw] += mask * dout[n, c, i, j]", set(), ""),
]


@pytest.mark.parametrize("bug,old,new,should_fail,words", BUGS, ids=[b[0] for b in BUGS])
def test_bug_fails_exactly_its_tests(bug, old, new, should_fail, words, write_submission, default_rubric, tmp_path):
    folder = write_submission(bug, mutate(CORRECT_SOURCE, old, new))
    result = gradeconv.grade(folder, default_rubric)[0]
    failed = {test.name for test in result.tests if not test.passed}
    assert failed == should_fail
    assert result.score == 100 - sum(t.points for t in result.tests if t.name in should_fail)
    for test in result.tests:
        if not test.passed:
            assert test.counterexample, f"{test.name} failed without a counterexample"
    report = "\n".join(f"{t.outcome} {t.output}" for t in result.tests if not t.passed)
    assert words in report
    ran = assert_reproductions(result, folder, correct_copy(CORRECT.parent.parent, tmp_path))
    assert ran == len({t.name for t in result.tests if not t.passed and t.outcome != "timeout"})


def test_pad0_crop_is_reported_with_a_minimal_case(write_submission, default_rubric):
    folder = write_submission("crop", mutate(CORRECT_SOURCE, BUGS[0][1], BUGS[0][2]))
    test = next(t for t in gradeconv.grade(folder, default_rubric)[0].tests if not t.passed)
    assert test.outcome == "wrong_shape"
    assert test.counterexample["pad"] == 0
    assert test.counterexample["n"] == 1 and test.counterexample["c"] == 1 and test.counterexample["f"] == 1
    assert test.diagnosis and "[pad:-pad]" in test.diagnosis


def test_stride_bug_diagnosis_names_the_stride(write_submission, default_rubric):
    folder = write_submission("dw", mutate(CORRECT_SOURCE, BUGS[5][1], BUGS[5][2]))
    failed = [t for t in gradeconv.grade(folder, default_rubric)[0].tests if not t.passed]
    assert all("fails only when stride > 1" in t.diagnosis for t in failed)
    assert all(t.counterexample["stride"] > 1 for t in failed)
    assert all(t.cache == "submission" for t in failed)  # its forward is right, so its own cache was used


def test_backward_falls_back_to_canonical_cache_when_forward_is_wrong(write_submission, default_rubric):
    source = mutate(CORRECT_SOURCE, "np.sum(window * w[f]) + b[f]", "np.sum(window * w[f])")
    source = mutate(source, "dw[f] += x_pad[n, :, rows, cols]", "dw[f] += x_pad[n, :, i:i + HH, j:j + WW]")
    failed = [t for t in gradeconv.grade(write_submission("both", source), default_rubric)[0].tests
              if not t.passed and t.function == "conv_backward_naive"]
    assert failed and all(t.cache == "canonical" for t in failed)


@pytest.mark.parametrize("folder", [ROOT / "submissions" / "alice", VECTORISED], ids=["loops", "vectorised"])
def test_correct_loop_and_vectorised_submissions_get_full_marks(folder, default_rubric):
    result = gradeconv.grade(folder, default_rubric)[0]
    assert [t.name for t in result.tests if not t.passed] == []
    assert result.score == 100 == result.max_score


def test_grading_is_deterministic(write_submission, default_rubric):
    folder = write_submission("twice", mutate(CORRECT_SOURCE, BUGS[6][1], BUGS[6][2]))
    first, second = (gradeconv.grade(folder, default_rubric)[0].to_json() for _ in range(2))
    for result in (first, second):
        result.pop("execution_time")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_unimplemented_skeleton_scores_zero_with_not_implemented(write_submission, default_rubric):
    skeleton = "\n".join(
        f"def {name}(*args):\n    out = None\n    return out, None\n" if "forward" in name else
        f"def {name}(*args):\n    return None\n"
        for name in ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive"))
    result = gradeconv.grade(write_submission("skeleton", skeleton), default_rubric)[0]
    assert result.score == 0
    assert {t.outcome for t in result.tests} == {"not_implemented"}


def test_gradient_check_alone_catches_and_localises_a_wrong_backward(write_submission, default_rubric):
    source = mutate(CORRECT_SOURCE, "dw[f] += x_pad[n, :, rows, cols]", "dw[f] += x_pad[n, :, i:i + HH, j:j + WW]")
    data = default_rubric.model_dump()
    data["tests"] = [dict(test, checks={"reference": None, "gradient": {"mode": "directional", "directions": 2}})
                     for test in data["tests"] if test["name"] == "conv backward dw: padding, stride > 1, non-square"]
    rubric = type(default_rubric).model_validate(data)
    test = gradeconv.grade(write_submission("dw_numeric", source), rubric)[0].tests[0]
    assert test.outcome == "wrong_value"
    assert "disagrees with the numeric gradient" in test.output
    assert "elementwise, the largest error is" in test.output and "at index (" in test.output
    assert test.counterexample["stride"] > 1
    assert test.cache == "submission"  # its forward is right, though no test of the rubric grades it
