"""The reference models (reference/classifiers/fc_net.py) against a plain forward written here
from the definitions (not the reference layers), centred numeric gradients, the course
notebook's published TwoLayerNet values, and the student-style solution in tests/solutions/a2."""
import math

import numpy as np
import pytest

from reference.classifiers.fc_net import FullyConnectedNet, TwoLayerNet
from tests import a2_solution
from tests.formulas import numeric_gradient

N, D, C = 3, 5, 4
HIDDEN = [4, 3]
EPS = 1e-5  # the normalisation layers' default eps
MOMENTUM = 0.9  # batchnorm's default running-average momentum

#: (name, constructor keywords) of the FullyConnectedNet configurations checked in float64
CONFIGS = [
    ("plain", {}),
    ("plain, reg", {"reg": 0.7}),
    ("batchnorm", {"normalization": "batchnorm"}),
    ("batchnorm, reg", {"normalization": "batchnorm", "reg": 0.3}),
    ("layernorm, reg", {"normalization": "layernorm", "reg": 0.3}),
    ("dropout keep 1", {"dropout_keep_ratio": 1, "seed": 5}),
    ("dropout, seed", {"dropout_keep_ratio": 0.6, "seed": 123}),
    ("dropout, batchnorm, reg", {"dropout_keep_ratio": 0.75, "normalization": "batchnorm", "reg": 0.2, "seed": 7}),
    ("no hidden layer, reg", {"hidden_dims": [], "reg": 0.4}),
    ("one hidden layer, layernorm", {"hidden_dims": [6], "normalization": "layernorm"}),
]
CONFIG_IDS = [name for name, _ in CONFIGS]


def build(kwargs, seed=0, dtype=np.float64):
    """A float64 FullyConnectedNet on (N, D) inputs with random (non-initial) parameters, X and y."""
    kwargs = {"hidden_dims": HIDDEN, **kwargs}
    model = FullyConnectedNet(input_dim=D, num_classes=C, dtype=dtype, **kwargs)
    randomise(model.params, seed)
    rng = np.random.default_rng(seed + 1000)
    return model, rng.standard_normal((N, D)), rng.integers(0, C, size=N)


def randomise(params, seed):
    """Replace every parameter by random values of its shape and dtype (gamma around 1)."""
    rng = np.random.default_rng(seed)
    for name, value in params.items():
        draw = rng.standard_normal(value.shape)
        if name.startswith("W"):
            draw *= 0.6
        elif name.startswith("gamma"):
            draw = 1 + 0.3 * draw
        else:
            draw *= 0.3
        params[name] = draw.astype(value.dtype)


# --- the independent forward ------------------------------------------------------------------


def plain_softmax_loss(scores, y):
    """Mean cross-entropy, one row at a time with a log-sum-exp around the row's maximum."""
    total = 0.0
    for row, label in zip(scores, y):
        top = max(row)
        total += top + math.log(sum(math.exp(s - top) for s in row)) - row[label]
    return total / len(y)


def plain_normalise(a, gamma, beta, axis, mean=None, var=None):
    if mean is None:
        mean = a.mean(axis=axis, keepdims=True)
        var = ((a - mean) ** 2).mean(axis=axis, keepdims=True)
    return gamma * (a - mean) / np.sqrt(var + EPS) + beta


def plain_forward(params, X, hidden_layers, normalization=None, keep=1, seed=None, running=None):
    """Scores of {affine - [norm] - relu - [dropout]} x hidden_layers - affine.

    Train mode when running is None: returns (scores, batch statistics per batchnorm layer);
    test mode otherwise, normalising batchnorm layers with the given running (mean, var)
    and skipping dropout.
    """
    h = X.reshape(X.shape[0], -1)
    batch_stats = []
    for layer in range(1, hidden_layers + 1):
        a = h @ params[f"W{layer}"] + params[f"b{layer}"]
        gamma, beta = params.get(f"gamma{layer}"), params.get(f"beta{layer}")
        if normalization == "batchnorm" and running is None:
            batch_stats.append((a.mean(axis=0), a.var(axis=0)))
            a = plain_normalise(a, gamma, beta, axis=0)
        elif normalization == "batchnorm":
            a = plain_normalise(a, gamma, beta, 0, *running[layer - 1])
        elif normalization == "layernorm":
            a = plain_normalise(a, gamma, beta, axis=1)
        h = np.where(a > 0, a, 0.0)
        if keep != 1 and running is None:
            np.random.seed(seed)  # every dropout layer reseeds, as the course's layer does
            h = h * (np.random.rand(*h.shape) < keep) / keep
    last = hidden_layers + 1
    scores = h @ params[f"W{last}"] + params[f"b{last}"]
    return scores, batch_stats


def l2_term(params, reg):
    """0.5 * reg * the sum of the squares of every element of every weight matrix, by loops."""
    total = 0.0
    for name, value in params.items():
        if name.startswith("W"):
            total += sum(float(v) * float(v) for v in value.ravel())
    return 0.5 * reg * total


def assert_gradient(analytic, numeric, name):
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    error = np.max(np.abs(analytic - numeric))
    scale = max(1.0, np.max(np.abs(numeric)))
    assert error <= 1e-7 * scale, f"{name}: analytic and numeric gradients differ by {error}"


def check_gradients(model, X, y):
    """Every gradient of model.loss against centred differences of the loss."""
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for name, value in model.params.items():
        numeric = numeric_gradient(lambda: model.loss(X, y)[0], value)
        assert_gradient(grads[name], numeric, name)
    return loss


# --- FullyConnectedNet: construction -----------------------------------------------------------


def expected_shapes(hidden_dims, normalization, input_dim=D, classes=C):
    dims = [input_dim, *hidden_dims, classes]
    shapes = {}
    for layer in range(1, len(dims)):
        shapes[f"W{layer}"] = (dims[layer - 1], dims[layer])
        shapes[f"b{layer}"] = (dims[layer],)
        if normalization and layer < len(dims) - 1:
            shapes[f"gamma{layer}"] = shapes[f"beta{layer}"] = (dims[layer],)
    return shapes


@pytest.mark.parametrize("hidden_dims", [[], [4], [4, 3], [6, 2, 5]])
@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_parameter_names_shapes_and_initial_values(hidden_dims, normalization):
    model = FullyConnectedNet(hidden_dims, input_dim=7, num_classes=3, normalization=normalization)
    shapes = expected_shapes(hidden_dims, normalization, input_dim=7, classes=3)
    assert {name: value.shape for name, value in model.params.items()} == shapes
    for name, value in model.params.items():
        assert value.dtype == np.float32, name  # the course's default dtype
        if name.startswith(("b", "beta")):
            assert not value.any(), name
        elif name.startswith("gamma"):
            assert (value == 1).all(), name
    assert model.num_layers == len(hidden_dims) + 1
    if normalization == "batchnorm":
        assert model.bn_params == [{"mode": "train"} for _ in hidden_dims]
    elif normalization == "layernorm":
        assert model.bn_params == [{} for _ in hidden_dims]
    else:
        assert model.bn_params == []


def test_fc_net_weights_are_weight_scale_times_standard_normal():
    np.random.seed(0)
    model = FullyConnectedNet([40, 30], input_dim=50, num_classes=20, weight_scale=0.05, dtype=np.float64)
    for name in ("W1", "W2", "W3"):
        w = model.params[name]
        assert w.dtype == np.float64
        assert abs(w.mean()) < 0.01 and 0.045 < w.std() < 0.055, name


def test_fc_net_dropout_param():
    assert FullyConnectedNet([4], dropout_keep_ratio=1, seed=3).dropout_param == {}
    assert FullyConnectedNet([4], dropout_keep_ratio=0.5).dropout_param == {"mode": "train", "p": 0.5}
    seeded = FullyConnectedNet([4], dropout_keep_ratio=0.5, seed=3)
    assert seeded.dropout_param == {"mode": "train", "p": 0.5, "seed": 3}


def test_fc_net_rejects_an_unknown_normalization():
    with pytest.raises(ValueError, match="batch_norm"):
        FullyConnectedNet([4], normalization="batch_norm")


# --- FullyConnectedNet: loss, gradients, modes ----------------------------------------------------


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_fc_net_gradients_against_numeric(name, kwargs):
    model, X, y = build(kwargs)
    check_gradients(model, X, y)


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_fc_net_loss_and_test_scores_against_plain_forward(name, kwargs):
    model, X, y = build(kwargs, seed=11)
    hidden = model.num_layers - 1
    normalization, reg = kwargs.get("normalization"), kwargs.get("reg", 0.0)
    keep, seed = kwargs.get("dropout_keep_ratio", 1), kwargs.get("seed")
    X_before = X.copy()

    loss, _ = model.loss(X, y)
    scores, stats = plain_forward(model.params, X, hidden, normalization, keep, seed)
    assert math.isclose(loss, plain_softmax_loss(scores, y) + l2_term(model.params, reg), rel_tol=1e-12)
    if normalization == "batchnorm":
        assert all(bn["mode"] == "train" for bn in model.bn_params)
    if keep != 1:
        assert model.dropout_param["mode"] == "train"

    # test mode: running statistics after that one train step, no dropout
    running = [((1 - MOMENTUM) * mean, (1 - MOMENTUM) * var) for mean, var in stats]
    test_scores = model.loss(X)
    expected, _ = plain_forward(model.params, X, hidden, normalization, running=running)
    assert test_scores.shape == (N, C) and test_scores.dtype == np.float64
    np.testing.assert_allclose(test_scores, expected, rtol=1e-12, atol=1e-12)
    if normalization == "batchnorm":
        assert all(bn["mode"] == "test" for bn in model.bn_params)
        for bn, (mean, var) in zip(model.bn_params, running):
            np.testing.assert_allclose(bn["running_mean"], mean, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(bn["running_var"], var, rtol=1e-12, atol=1e-15)
    if keep != 1:
        assert model.dropout_param["mode"] == "test"
    np.testing.assert_array_equal(X, X_before)


def test_fc_net_dropout_changes_the_training_loss_only():
    """With keep < 1 the seeded masks change the training loss; test mode ignores dropout."""
    dropped, X, y = build({"dropout_keep_ratio": 0.5, "seed": 1})
    full = FullyConnectedNet(HIDDEN, input_dim=D, num_classes=C, dtype=np.float64)
    full.params = {name: value.copy() for name, value in dropped.params.items()}
    assert dropped.loss(X, y)[0] != full.loss(X, y)[0]
    assert dropped.loss(X, y)[0] == dropped.loss(X, y)[0]  # the seed fixes the masks
    np.testing.assert_array_equal(dropped.loss(X), full.loss(X))


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_fc_net_regularisation_term(normalization):
    """reg adds exactly 0.5 * reg * sum(W_i ** 2) over all W_i to the loss and reg * W_i to dW_i;
    biases, gamma and beta are not regularised."""
    reg = 2.5
    plain, X, y = build({"normalization": normalization, "hidden_dims": [4, 3, 2]})
    regularised = FullyConnectedNet([4, 3, 2], input_dim=D, num_classes=C, normalization=normalization,
                                    reg=reg, dtype=np.float64)
    regularised.params = {name: value.copy() for name, value in plain.params.items()}
    loss0, grads0 = plain.loss(X, y)
    loss1, grads1 = regularised.loss(X, y)
    assert math.isclose(loss1 - loss0, l2_term(plain.params, reg), rel_tol=1e-12)
    for name, value in plain.params.items():
        expected = reg * value if name.startswith("W") else np.zeros_like(value)
        np.testing.assert_allclose(grads1[name] - grads0[name], expected, rtol=1e-12, atol=1e-14, err_msg=name)


def test_fc_net_image_shaped_input():
    """The notebook feeds (N, 3, 32, 32) images: X is flattened per sample."""
    model, X, y = build({"normalization": "layernorm"}, seed=3)
    images = X.reshape(N, 1, 5)
    np.testing.assert_array_equal(model.loss(images), model.loss(X))
    loss, _ = model.loss(images, y)
    assert loss == model.loss(X, y)[0]


def test_fc_net_float32():
    """dtype float32: X is cast, scores and gradients come back as float32, close to float64's."""
    model32, X, y = build({"normalization": "batchnorm", "reg": 0.1}, dtype=np.float32)
    model64 = FullyConnectedNet(HIDDEN, input_dim=D, num_classes=C, normalization="batchnorm", reg=0.1,
                                dtype=np.float64)
    model64.params = {name: value.astype(np.float64) for name, value in model32.params.items()}
    loss32, grads32 = model32.loss(X, y)
    loss64, grads64 = model64.loss(X, y)
    assert math.isclose(loss32, loss64, rel_tol=1e-5)
    for name, grad in grads32.items():
        assert grad.dtype == np.float32, name
        np.testing.assert_allclose(grad, grads64[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert model32.loss(X).dtype == np.float32


# --- TwoLayerNet ---------------------------------------------------------------------------------


def test_two_layer_net_parameters():
    np.random.seed(1)
    model = TwoLayerNet(input_dim=60, hidden_dim=50, num_classes=7)
    assert {name: value.shape for name, value in model.params.items()} == {
        "W1": (60, 50), "b1": (50,), "W2": (50, 7), "b2": (7,)}
    assert not model.params["b1"].any() and not model.params["b2"].any()
    for name in ("W1", "W2"):
        w = model.params[name]
        assert w.dtype == np.float64 and abs(w.mean()) < 2e-4 and 0.9e-3 < w.std() < 1.1e-3, name
    assert model.reg == 0.0
    assert set(TwoLayerNet().params["W1"].shape) == {3 * 32 * 32, 100}


def notebook_two_layer_net(reg=0.0):
    """The course notebook's fixed TwoLayerNet: N, D, H, C = 3, 5, 50, 7 with linspace parameters."""
    n, d, h, c = 3, 5, 50, 7
    model = TwoLayerNet(input_dim=d, hidden_dim=h, num_classes=c, reg=reg)
    model.params["W1"] = np.linspace(-0.7, 0.3, num=d * h).reshape(d, h)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=h)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=h * c).reshape(h, c)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=c)
    X = np.linspace(-5.5, 4.5, num=n * d).reshape(d, n).T
    return model, X, np.asarray([0, 5, 1])


def test_two_layer_net_notebook_values():
    model, X, y = notebook_two_layer_net()
    np.testing.assert_allclose(model.loss(X), [
        [11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765, 16.09215096],
        [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135, 16.18839143],
        [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506, 16.2846319]],
        rtol=0, atol=1e-8)
    assert abs(model.loss(X, y)[0] - 3.4702243556) < 1e-10
    model.reg = 1.0
    assert abs(model.loss(X, y)[0] - 26.5948426952) < 1e-10


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_two_layer_net_loss_and_gradients(reg):
    rng = np.random.default_rng(int(reg * 10))
    model = TwoLayerNet(input_dim=D, hidden_dim=6, num_classes=C, reg=reg)
    randomise(model.params, 21)
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, size=N)
    loss = check_gradients(model, X, y)
    scores, _ = plain_forward(model.params, X, hidden_layers=1)
    np.testing.assert_allclose(model.loss(X), scores, rtol=1e-12, atol=1e-12)
    assert math.isclose(loss, plain_softmax_loss(scores, y) + l2_term(model.params, reg), rel_tol=1e-12)


def test_two_layer_net_regularisation_term():
    model, X, y = notebook_two_layer_net()
    loss0, grads0 = model.loss(X, y)
    model.reg = 0.37
    loss1, grads1 = model.loss(X, y)
    assert math.isclose(loss1 - loss0, l2_term(model.params, 0.37), rel_tol=1e-12)
    for name, value in model.params.items():
        expected = 0.37 * value if name.startswith("W") else np.zeros_like(value)
        np.testing.assert_allclose(grads1[name] - grads0[name], expected, rtol=1e-12, atol=1e-14, err_msg=name)


# --- the student-style solution (tests/solutions/a2) against the reference ----------------------


@pytest.fixture(scope="module")
def solution_fc_net():
    with a2_solution.imported("cs231n.classifiers.fc_net") as (module,):
        yield module


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_solution_fc_net_matches_the_reference(solution_fc_net, name, kwargs):
    reference, X, y = build(kwargs, seed=31)
    student = solution_fc_net.FullyConnectedNet(
        **{"hidden_dims": HIDDEN, **kwargs}, input_dim=D, num_classes=C, dtype=np.float64)
    assert {k: v.shape for k, v in student.params.items()} == {k: v.shape for k, v in reference.params.items()}
    student.params = {k: v.copy() for k, v in reference.params.items()}
    loss, grads = reference.loss(X, y)
    student_loss, student_grads = student.loss(X, y)
    assert math.isclose(student_loss, loss, rel_tol=1e-10)
    assert set(student_grads) == set(grads)
    for key, grad in grads.items():
        np.testing.assert_allclose(student_grads[key], grad, rtol=1e-8, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(student.loss(X), reference.loss(X), rtol=1e-10, atol=1e-12)


def test_solution_two_layer_net_matches_the_reference(solution_fc_net):
    reference, X, y = notebook_two_layer_net(reg=0.5)
    student = solution_fc_net.TwoLayerNet(input_dim=5, hidden_dim=50, num_classes=7, reg=0.5)
    student.params = {k: v.copy() for k, v in reference.params.items()}
    loss, grads = reference.loss(X, y)
    student_loss, student_grads = student.loss(X, y)
    assert math.isclose(student_loss, loss, rel_tol=1e-12)
    for key, grad in grads.items():
        np.testing.assert_allclose(student_grads[key], grad, rtol=1e-10, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(student.loss(X), reference.loss(X), rtol=1e-12)
