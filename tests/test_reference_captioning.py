"""The reference CaptioningRNN (reference/classifiers/rnn.py), vanilla RNN and LSTM: its
parameters, its loss against plain loops written here, every gradient against central
differences, greedy sampling, and the course-style solution
tests/solutions/a3/cs231n/classifiers/rnn.py against it."""
import math

import numpy as np
import pytest

from reference.classifiers.rnn import CaptioningRNN
from tests import course_package
from tests.formulas import numeric_gradient

A3 = course_package.SOLUTIONS / "a3" / "cs231n"

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "cat": 3, "sat": 4, "down": 5}  # vocabulary of 6
INPUT_DIM, WORDVEC_DIM, HIDDEN_DIM = 3, 4, 3
#: N=2 captions of T+1 = 5 words (T = 4 steps); both end in <NULL>, so the mask drops targets
CAPTIONS = np.array([[1, 3, 4, 2, 0], [1, 5, 2, 0, 0]])
CELLS = ["rnn", "lstm"]


def small_model(cell_type, seed=0, model_class=CaptioningRNN):
    """A float64 model whose parameters (biases too) are drawn at unit-ish scale."""
    np.random.seed(seed)
    model = model_class(WORDS, INPUT_DIM, WORDVEC_DIM, HIDDEN_DIM, cell_type=cell_type, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        model.params[name] = rng.normal(scale=0.7, size=value.shape)
    return model


def features(seed=0, n=2):
    return np.random.default_rng(seed + 100).normal(size=(n, INPUT_DIM))


# ---------------------------------------------------------------------------- plain loops


def sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


def matvec(v, m, bias):
    """[bias[j] + sum_i v[i] * m[i, j] for every column j]."""
    return [bias[j] + sum(v[i] * m[i, j] for i in range(len(v))) for j in range(m.shape[1])]


def loop_step(p, cell_type, word, h, c):
    """One step from the embedded word; returns (h, c)."""
    x = list(p["W_embed"][word])
    a = [u + w for u, w in zip(matvec(x, p["Wx"], p["b"]), matvec(h, p["Wh"], [0.0] * p["Wh"].shape[1]))]
    if cell_type == "rnn":
        return [math.tanh(v) for v in a], c
    size = len(h)
    i, f, o = ([sigmoid(v) for v in a[k * size : (k + 1) * size]] for k in range(3))
    g = [math.tanh(v) for v in a[3 * size :]]
    c = [f[j] * c[j] + i[j] * g[j] for j in range(size)]
    return [o[j] * math.tanh(c[j]) for j in range(size)], c


def loop_loss(p, cell_type, feats, captions, null=WORDS["<NULL>"], use_mask=True):
    """Sum over samples and steps t of -log softmax(scores_t)[captions[:, t + 1]], skipping <NULL> targets; / N."""
    n, length = captions.shape
    total = 0.0
    for s in range(n):
        h = matvec(list(feats[s]), p["W_proj"], p["b_proj"])
        c = [0.0] * len(h)
        for t in range(length - 1):
            h, c = loop_step(p, cell_type, captions[s, t], h, c)
            target = captions[s, t + 1]
            if use_mask and target == null:
                continue
            scores = matvec(h, p["W_vocab"], p["b_vocab"])
            top = max(scores)
            total += top + math.log(sum(math.exp(v - top) for v in scores)) - scores[target]
    return total / n


def loop_sample(p, cell_type, feats, max_length):
    """Greedy decoding from <START>: each step feeds back its highest-scoring word."""
    captions = []
    for s in range(len(feats)):
        h = matvec(list(feats[s]), p["W_proj"], p["b_proj"])
        c, word, words = [0.0] * len(h), WORDS["<START>"], []
        for _ in range(max_length):
            h, c = loop_step(p, cell_type, word, h, c)
            scores = matvec(h, p["W_vocab"], p["b_vocab"])
            word = scores.index(max(scores))
            words.append(word)
        captions.append(words)
    return np.array(captions)


def assert_gradient(analytic, numeric, name):
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    error = np.max(np.abs(analytic - numeric))
    scale = max(1.0, np.max(np.abs(numeric)))
    assert error <= 1e-6 * scale, f"{name}: analytic and numeric gradients differ by {error}"


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("cell_type, gates", [("rnn", 1), ("lstm", 4)])
def test_parameter_shapes(cell_type, gates):
    np.random.seed(0)
    model = CaptioningRNN(WORDS, input_dim=7, wordvec_dim=5, hidden_dim=4, cell_type=cell_type)
    assert {name: value.shape for name, value in model.params.items()} == {
        "W_embed": (6, 5),
        "W_proj": (7, 4),
        "b_proj": (4,),
        "Wx": (5, gates * 4),
        "Wh": (4, gates * 4),
        "b": (gates * 4,),
        "W_vocab": (4, 6),
        "b_vocab": (6,),
    }
    assert all(value.dtype == np.float32 for value in model.params.values())
    for name in ("b_proj", "b", "b_vocab"):
        assert not model.params[name].any()
    assert model.cell_type == cell_type and model.word_to_idx is WORDS
    assert model.idx_to_word[3] == "cat"
    assert (model._null, model._start, model._end) == (0, 1, 2)


def test_default_sizes():
    np.random.seed(0)
    model = CaptioningRNN(WORDS)
    assert model.params["W_proj"].shape == (512, 128)
    assert model.params["Wx"].shape == (128, 128)


def test_unknown_cell_type_is_refused():
    with pytest.raises(ValueError, match="gru"):
        CaptioningRNN(WORDS, cell_type="gru")


# ---------------------------------------------------------------------------- loss and gradients


@pytest.mark.parametrize("cell_type", CELLS)
def test_loss_matches_plain_loops(cell_type):
    model = small_model(cell_type)
    feats = features()
    loss, _ = model.loss(feats, CAPTIONS)
    masked = loop_loss(model.params, cell_type, feats, CAPTIONS)
    assert loss == pytest.approx(masked, rel=1e-10)
    # the <NULL> targets matter here: counting them would change the loss
    assert abs(loop_loss(model.params, cell_type, feats, CAPTIONS, use_mask=False) - masked) > 0.1


@pytest.mark.parametrize("cell_type", CELLS)
def test_every_gradient_matches_central_differences(cell_type):
    model = small_model(cell_type, seed=1)
    feats = features(1)
    _, grads = model.loss(feats, CAPTIONS)
    assert set(grads) == set(model.params)
    for name, value in model.params.items():
        numeric = numeric_gradient(lambda: model.loss(feats, CAPTIONS)[0], value)
        assert_gradient(grads[name], numeric, name)


@pytest.mark.parametrize("cell_type", CELLS)
def test_steps_whose_targets_are_null_get_no_gradient(cell_type):
    """<NULL> and <END> are read only at steps whose targets (and later ones) are <NULL>: their rows of
    W_embed get no gradient; the words read before a real target do."""
    model = small_model(cell_type, seed=2)
    _, grads = model.loss(features(2), CAPTIONS)
    for word in ("<NULL>", "<END>"):
        assert not grads["W_embed"][WORDS[word]].any(), word
    for word in ("<START>", "cat", "sat", "down"):
        assert grads["W_embed"][WORDS[word]].any(), word


@pytest.mark.parametrize("cell_type", CELLS)
def test_single_precision_model_runs(cell_type):
    np.random.seed(3)
    model = CaptioningRNN(WORDS, INPUT_DIM, WORDVEC_DIM, HIDDEN_DIM, cell_type=cell_type)
    loss, grads = model.loss(features(3).astype(np.float32), CAPTIONS)
    assert np.isfinite(loss)
    assert {name: g.shape for name, g in grads.items()} == {name: p.shape for name, p in model.params.items()}


@pytest.mark.parametrize("cell_type", CELLS)
def test_sample_is_greedy_decoding(cell_type):
    model = small_model(cell_type, seed=4)
    feats = features(4, n=3)
    captions = model.sample(feats, max_length=6)
    assert captions.shape == (3, 6)
    np.testing.assert_array_equal(captions, loop_sample(model.params, cell_type, feats, 6))


# ---------------------------------------------------------------------------- the course-style solution


@pytest.fixture(scope="module")
def solution(tmp_path_factory):
    """tests/solutions/a3's CaptioningRNN on its own rnn_layers.py."""
    root = tmp_path_factory.mktemp("a3")
    files = {
        "rnn_layers.py": A3 / "rnn_layers.py",
        "classifiers/__init__.py": A3 / "classifiers" / "__init__.py",
        "classifiers/rnn.py": A3 / "classifiers" / "rnn.py",
    }
    course_package.build(root, files)
    with course_package.imported(root, "cs231n.classifiers.rnn") as (module,):
        yield module


def test_solution_imports_only_its_package_and_numpy():
    source = (A3 / "classifiers" / "rnn.py").read_text()
    assert "reference" not in source and "from ..rnn_layers import *" in source


@pytest.mark.parametrize("cell_type", CELLS)
def test_solution_agrees_with_the_reference(solution, cell_type):
    reference = small_model(cell_type, seed=5)
    student = small_model(cell_type, seed=5, model_class=solution.CaptioningRNN)
    for name, value in reference.params.items():
        np.testing.assert_array_equal(student.params[name], value)
    feats = features(5)
    student_loss, student_grads = student.loss(feats, CAPTIONS)
    reference_loss, reference_grads = reference.loss(feats, CAPTIONS)
    assert student_loss == pytest.approx(reference_loss, rel=1e-10)
    assert set(student_grads) == set(reference_grads)
    for name, grad in reference_grads.items():
        np.testing.assert_allclose(student_grads[name], grad, rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(student.sample(feats, 5), reference.sample(feats, 5))


@pytest.mark.parametrize("cell_type", CELLS)
def test_solution_initialises_like_the_course(solution, cell_type):
    """Same seed, same draws: the reference and the course-style model start from equal parameters."""
    np.random.seed(6)
    student = solution.CaptioningRNN(WORDS, INPUT_DIM, WORDVEC_DIM, HIDDEN_DIM, cell_type=cell_type)
    np.random.seed(6)
    reference = CaptioningRNN(WORDS, INPUT_DIM, WORDVEC_DIM, HIDDEN_DIM, cell_type=cell_type)
    for name, value in reference.params.items():
        np.testing.assert_array_equal(student.params[name], value, err_msg=name)
