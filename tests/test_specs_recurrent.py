"""Assignment 3: each real bug in cs231n/rnn_layers.py fails exactly the tests it should, with a diagnosis.

Every bug is planted in the student-style correct solution (anchor text ->
replacement) and graded with the bundled assignment-3 rubric. The backwards get
the student's own cache (its layout is theirs): a forward bug whose cache holds
wrong values fails the backwards that read them too, saying the forward is wrong.
"""

import pytest

import gradeconv
from gradeconv import rubric as rubrics
from tests.conftest import ROOT
from tests.reproductions import assert_reproductions, correct_copy

SOLUTION = ROOT / "tests" / "solutions" / "a3" / "cs231n" / "rnn_layers.py"
SOURCE = SOLUTION.read_text()

RNN_STEP_FORWARD, RNN_STEP_BACKWARD = "rnn step forward", "rnn step backward"
RNN_FORWARD, RNN_BACKWARD = "rnn forward", "rnn backward"
EMBEDDING_BACKWARD = {"word embedding backward", "word embedding backward: repeated word indices"}
AFFINE_FORWARD, AFFINE_BACKWARD = "temporal affine forward", "temporal affine backward"
LOSS = "temporal softmax loss (masked) and gradient"
LARGE_SCORES = "temporal softmax loss: large scores (numeric stability)"
SPREAD = "temporal softmax loss: rows at very different offsets"
LSTM_STEP_FORWARD, LSTM_STEP_BACKWARD = "lstm step forward", "lstm step backward"
LSTM_FORWARD, LSTM_BACKWARD = "lstm forward", "lstm backward"

RNN_LOOP = "rnn_step_backward(dh[:, t, :] + dprev_h, cache[t])"
LSTM_LOOP = "lstm_step_backward(\n            dh[:, t, :] + dprev_h, dprev_c, cache[t])"
#: a backward reading wrong values from its own forward's cache fails with this note (the layout is the student's)
FORWARD_WRONG = "judged with your forward's cache; your forward is wrong on this case: fix it first"
DIVIDED_BY_N = "y_flat]) / N\n    dx_flat = probs.copy()\n    dx_flat[np.arange(N * T), y_flat] -= 1\n    dx_flat /= N"

# (bug, anchor in the correct solution, replacement, tests that must fail, words the report must contain)
BUGS = [
    # vanilla RNN, one step
    ("rnn_tanh_derivative_linear", "dtanh = dnext_h * (1 - next_h ** 2)", "dtanh = dnext_h * (1 - next_h)",
     {RNN_STEP_BACKWARD, RNN_BACKWARD}, ["1 - tanh(a)**2"]),
    ("rnn_tanh_derivative_missing", "dtanh = dnext_h * (1 - next_h ** 2)", "dtanh = dnext_h",
     {RNN_STEP_BACKWARD, RNN_BACKWARD}, ["multiply dnext_h by the tanh derivative"]),
    ("rnn_step_without_bias", "np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)", "np.tanh(x.dot(Wx) + prev_h.dot(Wh))",
     {RNN_STEP_FORWARD, RNN_FORWARD, RNN_STEP_BACKWARD, RNN_BACKWARD}, ["exactly the bias b is missing",
                                                                       FORWARD_WRONG]),
    ("rnn_dWh_from_next_h", "dWh = prev_h.T.dot(dtanh)", "dWh = next_h.T.dot(dtanh)",
     {RNN_STEP_BACKWARD, RNN_BACKWARD}, ["prev_h.T @ da"]),
    # vanilla RNN over time
    ("rnn_forward_always_from_h0", "rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)",
     "rnn_step_forward(x[:, t, :], h0, Wx, Wh, b)", {RNN_FORWARD, RNN_BACKWARD},
     ["fails only when T > 1", "not h0", FORWARD_WRONG]),
    ("rnn_backward_only_local_dh", RNN_LOOP, "rnn_step_backward(dh[:, t, :], cache[t])",
     {RNN_BACKWARD}, ["fails only when T > 1", "not dh[:, t] alone"]),
    ("rnn_backward_only_carried_dh",
     "dprev_h = np.zeros((N, H))\n    for t in reversed(range(T)):\n        dx_t, dprev_h, dWx_t, dWh_t, db_t = "
     + RNN_LOOP,
     "dprev_h = dh[:, T - 1, :]\n    for t in reversed(range(T)):\n        dx_t, dprev_h, dWx_t, dWh_t, db_t = "
     "rnn_step_backward(dprev_h, cache[t])", {RNN_BACKWARD}, ["not the carried gradient alone"]),
    ("rnn_backward_weights_overwritten", RNN_LOOP + "\n        dx[:, t, :] = dx_t\n        dWx += dWx_t\n"
     "        dWh += dWh_t\n        db += db_t",
     RNN_LOOP + "\n        dx[:, t, :] = dx_t\n        dWx = dWx_t\n        dWh = dWh_t\n        db = db_t",
     {RNN_BACKWARD}, ["accumulate dWx, dWh and db", "fails only when T > 1"]),
    # word embedding
    ("embedding_assigns_instead_of_add_at", "np.add.at(dW, x, dout)", "dW[x] = dout",
     EMBEDDING_BACKWARD, ["np.add.at", "fails only when a word index appears more than once"]),
    ("embedding_plus_equals_fancy_index", "np.add.at(dW, x, dout)", "dW[x] += dout",
     EMBEDDING_BACKWARD, ["a repeated index kept only its last gradient"]),
    ("embedding_float32", "out = W[x]\n", "out = W[x].astype(np.float32)\n",
     {"word embedding forward"}, ["float64"]),
    # temporal affine
    ("affine_without_bias", ".reshape(N, T, M) + b", ".reshape(N, T, M)", {AFFINE_FORWARD},
     ["exactly the bias b is missing"]),
    ("affine_dx_left_flat", "dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)",
     "dx = dout.reshape(N * T, M).dot(w.T)", {AFFINE_BACKWARD}, ["reshape dx back", "wrong_shape"]),
    ("affine_db_over_n_only", "db = dout.sum(axis=(0, 1))", "db = dout.sum(axis=0)", {AFFINE_BACKWARD},
     ["sum db over both N and T"]),
    # temporal softmax loss
    ("loss_ignores_mask", "loss = -np.sum(mask_flat * log_probs[np.arange(N * T), y_flat]) / N",
     "loss = -np.sum(log_probs[np.arange(N * T), y_flat]) / N", {LOSS},
     ["fails only when some positions are masked out", "the loss with the mask ignored"]),
    ("dx_ignores_mask", "    dx_flat *= mask_flat[:, None]\n", "", {LOSS},
     ["fails only when some positions are masked out", "dx with the mask ignored"]),
    ("loss_divided_by_mask_count", DIVIDED_BY_N, "y_flat]) / mask_flat.sum()\n    dx_flat = probs.copy()\n"
     "    dx_flat[np.arange(N * T), y_flat] -= 1\n    dx_flat /= mask_flat.sum()", {LOSS, LARGE_SCORES, SPREAD},
     ["divided by the number of unmasked positions"]),
    ("loss_averaged_over_n_times_t", DIVIDED_BY_N, "y_flat]) / (N * T)\n    dx_flat = probs.copy()\n"
     "    dx_flat[np.arange(N * T), y_flat] -= 1\n    dx_flat /= N * T", {LOSS, LARGE_SCORES, SPREAD},
     ["divided by N * T", "fails only when T > 1"]),
    ("loss_without_max_shift", "shifted = x_flat - np.max(x_flat, axis=1, keepdims=True)", "shifted = x_flat",
     {LARGE_SCORES, SPREAD}, ["subtract each row's max score"]),
    ("loss_global_max", "shifted = x_flat - np.max(x_flat, axis=1, keepdims=True)", "shifted = x_flat - np.max(x_flat)",
     {SPREAD}, ["subtract each row's own max", "fails only when rows sit at very different offsets"]),
    # LSTM, one step
    ("lstm_gates_o_g_swapped", "o = sigmoid(a[:, 2 * H:3 * H])\n    g = np.tanh(a[:, 3 * H:])",
     "o = sigmoid(a[:, 3 * H:])\n    g = np.tanh(a[:, 2 * H:3 * H])",
     {LSTM_STEP_FORWARD, LSTM_FORWARD, LSTM_STEP_BACKWARD, LSTM_BACKWARD},
     ["the gates are i, f, o, g", "o and g are swapped", FORWARD_WRONG]),
    ("lstm_next_h_without_tanh", "next_h = o * np.tanh(next_c)", "next_h = o * next_c",
     {LSTM_STEP_FORWARD, LSTM_FORWARD, LSTM_BACKWARD}, ["the cell state goes through tanh", FORWARD_WRONG]),
    ("lstm_dprev_c_without_forget_gate", "dprev_c = dc * f", "dprev_c = dc",
     {LSTM_STEP_BACKWARD, LSTM_BACKWARD}, ["the forget-gate factor f is missing"]),
    ("lstm_dc_without_dnext_c", "dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)",
     "dc = dnext_h * o * (1 - tanh_c ** 2)",
     {LSTM_STEP_BACKWARD, LSTM_BACKWARD}, ["dnext_c is missing from the cell gradient", "add it into dc"]),
    ("lstm_cell_tanh_derivative_of_c", "dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)",
     "dc = dnext_c + dnext_h * o * (1 - next_c ** 2)", {LSTM_STEP_BACKWARD, LSTM_BACKWARD},
     ["not 1 - next_c**2"]),
    # LSTM over time
    ("lstm_forward_cell_not_carried", "prev_h, prev_c, step_cache = lstm_step_forward(",
     "prev_h, _, step_cache = lstm_step_forward(", {LSTM_FORWARD, LSTM_BACKWARD},
     ["carry the cell state", "fails only when T > 1", FORWARD_WRONG]),
    ("lstm_backward_dprev_c_not_carried", LSTM_LOOP,
     "lstm_step_backward(\n            dh[:, t, :] + dprev_h, np.zeros((N, H)), cache[t])", {LSTM_BACKWARD},
     ["pass dprev_c back", "fails only when T > 1"]),
    ("lstm_backward_only_local_dh", LSTM_LOOP, "lstm_step_backward(\n            dh[:, t, :], dprev_c, cache[t])",
     {LSTM_BACKWARD}, ["not dh[:, t] alone"]),
]


def plant(old: str, new: str) -> str:
    """The correct solution with one bug planted; the anchor must occur exactly once."""
    assert SOURCE.count(old) == 1, f"anchor not found exactly once: {old!r}"
    return SOURCE.replace(old, new)


@pytest.fixture(scope="module")
def rubric():
    return rubrics.load(rubrics.BUNDLED / "assignment3-layers.yaml")


def test_correct_solution_passes_every_test(rubric):
    result = gradeconv.grade(SOLUTION.parent.parent, rubric)[0]
    assert [t.name for t in result.tests if not t.passed] == []
    assert result.score == result.max_score == rubric.max_score


@pytest.mark.parametrize("bug,old,new,should_fail,words", BUGS, ids=[b[0] for b in BUGS])
def test_bug_fails_exactly_its_tests(bug, old, new, should_fail, words, write_submission, rubric, tmp_path):
    folder = write_submission(bug, plant(old, new), module="rnn_layers.py")
    result = gradeconv.grade(folder, rubric)[0]
    failed = {test.name for test in result.tests if not test.passed}
    assert failed == should_fail
    assert result.score == rubric.max_score - sum(t.points for t in result.tests if t.name in should_fail)
    for test in result.tests:
        if not test.passed:
            assert test.counterexample, f"{test.name} failed without a counterexample"
    report = "\n".join(f"{t.outcome} {t.output}" for t in result.tests if not t.passed)
    for word in words:
        assert word in report
    assert assert_reproductions(result, folder, correct_copy(SOLUTION.parent.parent, tmp_path)) == len(should_fail)
