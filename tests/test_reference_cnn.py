"""The reference ThreeLayerConvNet (reference/classifiers/cnn.py): its parameters, its loss
against plain loops written here, every gradient against central differences, and the
course-style solution tests/solutions/a2/cs231n/classifiers/cnn.py (on the staged course
helpers) against it."""
import math

import numpy as np
import pytest

from reference.classifiers.cnn import ThreeLayerConvNet
from tests import course_package
from tests.formulas import numeric_gradient

A2 = course_package.SOLUTIONS / "a2" / "cs231n"

#: N=2 images of C=2 channels, H=5 by W=6 (odd, and H != W); 3 filters 3x3, hidden 4, 3 classes
N, INPUT, FILTERS, SIZE, HIDDEN, CLASSES = 2, (2, 5, 6), 3, 3, 4, 3
WEIGHTS = ("W1", "W2", "W3")


def small_model(input_dim=INPUT, filter_size=SIZE, reg=0.0, seed=0, model_class=ThreeLayerConvNet):
    """A float64 model whose parameters (biases too) are drawn at unit-ish scale, so no layer is trivial."""
    np.random.seed(seed)
    model = model_class(
        input_dim=input_dim,
        num_filters=FILTERS,
        filter_size=filter_size,
        hidden_dim=HIDDEN,
        num_classes=CLASSES,
        reg=reg,
        dtype=np.float64,
    )
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        model.params[name] = rng.normal(scale=0.5, size=value.shape)
    return model


def data(seed=0, input_dim=INPUT):
    rng = np.random.default_rng(seed + 100)
    return rng.normal(size=(N, *input_dim)), rng.integers(0, CLASSES, size=N)


# ---------------------------------------------------------------------------- plain loops


def loop_scores(params, X):
    """conv (stride 1, pad (fs-1)//2) - relu - 2x2 pool (floor) - affine - relu - affine, one number at a time."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    n, c, h, w = X.shape
    f, _, fs, _ = W1.shape
    pad = (fs - 1) // 2
    conv_h, conv_w = h + 2 * pad - fs + 1, w + 2 * pad - fs + 1
    pool_h, pool_w = 1 + (conv_h - 2) // 2, 1 + (conv_w - 2) // 2

    def pixel(i, ch, r, q):
        return X[i, ch, r, q] if 0 <= r < h and 0 <= q < w else 0.0

    scores = np.zeros((n, W3.shape[1]))
    for i in range(n):
        conv = [[[b1[k] for _ in range(conv_w)] for _ in range(conv_h)] for k in range(f)]
        for k in range(f):
            for r in range(conv_h):
                for q in range(conv_w):
                    for ch in range(c):
                        for dr in range(fs):
                            for dq in range(fs):
                                conv[k][r][q] += W1[k, ch, dr, dq] * pixel(i, ch, r + dr - pad, q + dq - pad)
                    conv[k][r][q] = max(conv[k][r][q], 0.0)
        flat = []
        for k in range(f):
            for r in range(pool_h):
                for q in range(pool_w):
                    flat.append(max(conv[k][2 * r + a][2 * q + b] for a in range(2) for b in range(2)))
        hidden = []
        for j in range(W2.shape[1]):
            hidden.append(max(b2[j] + sum(flat[d] * W2[d, j] for d in range(len(flat))), 0.0))
        for m in range(W3.shape[1]):
            scores[i, m] = b3[m] + sum(hidden[j] * W3[j, m] for j in range(len(hidden)))
    return scores


def loop_loss(params, X, y, reg):
    """Mean softmax cross-entropy of loop_scores plus 0.5 * reg * sum(W**2) over W1, W2, W3."""
    scores = loop_scores(params, X)
    total = 0.0
    for i in range(len(y)):
        top = max(scores[i])
        log_sum = top + math.log(sum(math.exp(s - top) for s in scores[i]))
        total += log_sum - scores[i, y[i]]
    penalty = sum(float(v) ** 2 for name in WEIGHTS for v in params[name].ravel())
    return total / len(y) + 0.5 * reg * penalty


def assert_gradient(analytic, numeric, name):
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    error = np.max(np.abs(analytic - numeric))
    scale = max(1.0, np.max(np.abs(numeric)))
    assert error <= 1e-6 * scale, f"{name}: analytic and numeric gradients differ by {error}"


# ---------------------------------------------------------------------------- parameters


def test_default_parameters():
    np.random.seed(0)
    model = ThreeLayerConvNet()
    shapes = {name: value.shape for name, value in model.params.items()}
    assert shapes == {
        "W1": (32, 3, 7, 7),
        "b1": (32,),
        "W2": (32 * 16 * 16, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    assert all(value.dtype == np.float32 for value in model.params.values())
    assert model.reg == 0.0 and model.dtype == np.float32
    for name in ("b1", "b2", "b3"):
        assert not model.params[name].any()
    assert 0.9e-3 < model.params["W2"].std() < 1.1e-3


@pytest.mark.parametrize(
    "input_dim, filter_size, flat",
    [
        ((2, 5, 6), 3, 3 * 2 * 3),  # odd H: the pool covers rows 0-3
        ((1, 7, 4), 5, 3 * 3 * 2),
        ((2, 6, 6), 4, 3 * 2 * 2),  # an even filter shrinks the conv output to 5x5
    ],
)
def test_parameter_shapes_follow_the_layers(input_dim, filter_size, flat):
    model = ThreeLayerConvNet(input_dim, FILTERS, filter_size, HIDDEN, CLASSES, weight_scale=0.1, dtype=np.float64)
    assert model.params["W1"].shape == (FILTERS, input_dim[0], filter_size, filter_size)
    assert model.params["W2"].shape == (flat, HIDDEN)
    assert model.params["W3"].shape == (HIDDEN, CLASSES)
    scores = model.loss(np.ones((N, *input_dim)))
    assert scores.shape == (N, CLASSES)


# ---------------------------------------------------------------------------- loss and gradients


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_loss_and_scores_match_plain_loops(reg):
    model = small_model(reg=reg)
    X, y = data()
    np.testing.assert_allclose(model.loss(X), loop_scores(model.params, X), rtol=1e-10, atol=1e-12)
    loss, _ = model.loss(X, y)
    assert loss == pytest.approx(loop_loss(model.params, X, y, reg), rel=1e-10)


def test_loss_matches_plain_loops_with_an_even_filter():
    model = small_model(input_dim=(2, 6, 7), filter_size=2, reg=0.1, seed=3)
    X, y = data(3, (2, 6, 7))
    assert model.loss(X, y)[0] == pytest.approx(loop_loss(model.params, X, y, 0.1), rel=1e-10)


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_every_gradient_matches_central_differences(reg):
    model = small_model(reg=reg, seed=1)
    X, y = data(1)
    _, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for name, value in model.params.items():
        numeric = numeric_gradient(lambda: model.loss(X, y)[0], value)
        assert_gradient(grads[name], numeric, name)


def test_regularisation_adds_its_term_and_gradient():
    X, y = data(2)
    plain, grads = small_model(seed=2).loss(X, y)
    model = small_model(reg=0.7, seed=2)
    regularised, reg_grads = model.loss(X, y)
    penalty = sum(np.sum(model.params[w] ** 2) for w in WEIGHTS)
    assert regularised == pytest.approx(plain + 0.35 * penalty, rel=1e-12)
    for name in grads:
        extra = 0.7 * model.params[name] if name in WEIGHTS else 0.0
        np.testing.assert_allclose(reg_grads[name], grads[name] + extra, rtol=1e-12, atol=1e-14)


def test_single_precision_model_runs():
    np.random.seed(4)
    model = ThreeLayerConvNet(INPUT, FILTERS, SIZE, HIDDEN, CLASSES, weight_scale=1e-2)
    X, y = data(4)
    loss, grads = model.loss(X.astype(np.float32), y)
    assert loss == pytest.approx(math.log(CLASSES), abs=1e-2)
    assert {name: g.shape for name, g in grads.items()} == {name: p.shape for name, p in model.params.items()}


# ---------------------------------------------------------------------------- the course-style solution


@pytest.fixture(scope="module")
def solution(tmp_path_factory):
    """tests/solutions/a2's ThreeLayerConvNet on its own layers and the staged course helpers."""
    root = tmp_path_factory.mktemp("a2")
    files = {"layers.py": A2 / "layers.py", "classifiers/cnn.py": A2 / "classifiers" / "cnn.py", **course_package.helpers()}
    course_package.build(root, files)
    with course_package.imported(root, "cs231n.classifiers.cnn") as (module,):
        yield module


def test_solution_imports_only_its_package_and_numpy():
    source = (A2 / "classifiers" / "cnn.py").read_text()
    assert "reference" not in source
    assert "from ..layer_utils import *" in source and "from ..fast_layers import *" in source


@pytest.mark.parametrize("input_dim", [(2, 5, 6), (3, 6, 4)])
@pytest.mark.parametrize("reg", [0.0, 0.25])
def test_solution_agrees_with_the_reference(solution, input_dim, reg):
    reference = small_model(input_dim=input_dim, reg=reg, seed=5)
    student = small_model(input_dim=input_dim, reg=reg, seed=5, model_class=solution.ThreeLayerConvNet)
    assert {k: v.shape for k, v in student.params.items()} == {k: v.shape for k, v in reference.params.items()}
    for name, value in reference.params.items():
        np.testing.assert_array_equal(student.params[name], value)
    X, y = data(5, input_dim)
    np.testing.assert_allclose(student.loss(X), reference.loss(X), rtol=1e-10, atol=1e-12)
    student_loss, student_grads = student.loss(X, y)
    reference_loss, reference_grads = reference.loss(X, y)
    assert student_loss == pytest.approx(reference_loss, rel=1e-10)
    for name, grad in reference_grads.items():
        np.testing.assert_allclose(student_grads[name], grad, rtol=1e-9, atol=1e-12, err_msg=name)
