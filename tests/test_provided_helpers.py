"""The course helpers staged into a submission's package (reference/provided: fast_layers,
layer_utils, solver), imported as cs231n.* from a temporary package, against the reference
layers, brute-force loops and a tiny training run."""
import ast
import pickle

import numpy as np
import pytest

from reference import layers as L
from tests import course_package, loops

A2_LAYERS = course_package.SOLUTIONS / "a2" / "cs231n" / "layers.py"

#: optim.py of the temporary package: the course's sgd, nothing else
SGD = '''
def sgd(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    w -= config["learning_rate"] * dw
    return w, config
'''


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """cs231n with the reference layers (through a thin module), an sgd optim and the three helpers."""
    root = tmp_path_factory.mktemp("reference_layers")
    course_package.build(root, {"layers.py": course_package.REFERENCE_LAYERS, "optim.py": SGD, **course_package.helpers()})
    return root


@pytest.fixture(scope="module")
def fast(package):
    with course_package.imported(package, "cs231n.fast_layers") as (module,):
        yield module


def distinct(rng, shape):
    """Values with no ties, at least 0.01 apart (max pooling has a single winner per window)."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.01 - size * 0.005).reshape(shape)


def read_only(*arrays):
    """The arrays, locked as the grader hands them to a submission."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


def close(a, b, name=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------------- the modules' imports


@pytest.mark.parametrize("name", course_package.HELPERS)
def test_helpers_import_only_numpy_the_standard_library_and_their_package(name):
    tree = ast.parse((course_package.PROVIDED / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(alias.name in {"numpy", "pickle"} for alias in node.names), ast.dump(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 1 or node.module in {"__future__"}, ast.dump(node)


# ---------------------------------------------------------------------------- fast conv

#: (N, C, H, W, F, HH, WW, stride, pad): pad 0 and 1, stride 1 and 2, H != W, HH != WW
CONV_SHAPES = [
    (2, 3, 5, 7, 4, 3, 3, 1, 1),
    (2, 2, 6, 8, 3, 2, 2, 2, 0),
    (1, 3, 7, 5, 2, 3, 3, 2, 1),
    (3, 1, 4, 6, 2, 1, 1, 1, 0),
    (2, 2, 5, 6, 3, 3, 2, 1, 0),
    (2, 3, 9, 5, 2, 3, 3, 2, 0),
    (2, 2, 4, 6, 3, 2, 4, 2, 1),
]


@pytest.mark.parametrize("pair", ["fast", "im2col", "strides"])
@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_fast_conv_matches_the_reference(fast, pair, shape):
    n, c, h, w_, f, hh, ww, stride, pad = shape
    rng = np.random.default_rng(sum(shape))
    x, w, b = read_only(rng.normal(size=(n, c, h, w_)), rng.normal(size=(f, c, hh, ww)), rng.normal(size=f))
    conv_param = {"stride": stride, "pad": pad}
    forward = getattr(fast, f"conv_forward_{pair}")
    backward = getattr(fast, f"conv_backward_{pair}")
    inputs = [a.copy() for a in (x, w, b)]

    out, cache = forward(x, w, b, conv_param)
    expected, reference_cache = L.conv_forward_naive(x, w, b, conv_param)
    close(out, expected, "out")
    (dout,) = read_only(rng.normal(size=out.shape))
    for got, want, name in zip(backward(dout, cache), L.conv_backward_naive(dout, reference_cache), ("dx", "dw", "db")):
        close(got, want, name)
    for before, after in zip(inputs, (x, w, b)):
        np.testing.assert_array_equal(before, after)


def test_fast_conv_is_the_strided_one(fast):
    assert fast.conv_forward_fast is fast.conv_forward_strides
    assert fast.conv_backward_fast is fast.conv_backward_strides


@pytest.mark.parametrize("shape", [(2, 2, 6, 7, 3, 3, 3, 2, 0), (1, 3, 5, 8, 2, 2, 3, 2, 1), (2, 1, 7, 7, 2, 4, 4, 3, 1)])
def test_fast_conv_floors_geometry_that_does_not_tile(fast, shape):
    """The floor formula of the contract: rows and columns no window reaches get a zero gradient."""
    n, c, h, w_, f, hh, ww, stride, pad = shape
    assert (h + 2 * pad - hh) % stride or (w_ + 2 * pad - ww) % stride
    rng = np.random.default_rng(sum(shape))
    x, w, b = rng.normal(size=(n, c, h, w_)), rng.normal(size=(f, c, hh, ww)), rng.normal(size=f)
    out, cache = fast.conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
    close(out, loops.conv_forward(x, w, b, stride, pad), "out")
    dout = rng.normal(size=out.shape)
    for got, want, name in zip(fast.conv_backward_fast(dout, cache), loops.conv_backward(dout, x, w, stride, pad), "dx dw db".split()):
        close(got, want, name)


def test_fast_conv_keeps_single_precision(fast):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    out, cache = fast.conv_forward_fast(x, w, np.zeros(4, np.float32), {"stride": 1, "pad": 1})
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in fast.conv_backward_fast(np.ones_like(out), cache))


def test_fast_conv_rejects_a_filter_larger_than_the_padded_input(fast):
    with pytest.raises(ValueError, match="does not fit"):
        fast.conv_forward_fast(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 5, 5)), np.zeros(1), {"stride": 1, "pad": 0})


# ---------------------------------------------------------------------------- fast max pool

#: (N, C, H, W, pool_height, pool_width, stride, the method max_pool_forward_fast picks)
POOL_SHAPES = [
    (2, 3, 4, 6, 2, 2, 2, "reshape"),
    (1, 2, 6, 9, 3, 3, 3, "reshape"),
    (2, 2, 5, 7, 3, 3, 2, "im2col"),
    (2, 3, 6, 4, 2, 2, 1, "im2col"),  # overlapping windows
    (1, 2, 4, 8, 2, 4, 2, "im2col"),  # pool_height != pool_width
]


@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_fast_max_pool_matches_the_reference(fast, shape):
    *x_shape, ph, pw, stride, method = shape
    rng = np.random.default_rng(sum(x_shape) + ph + pw + stride)
    (x,) = read_only(distinct(rng, x_shape))
    pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    expected, reference_cache = L.max_pool_forward_naive(x, pool_param)
    (dout,) = read_only(rng.normal(size=expected.shape))
    expected_dx = L.max_pool_backward_naive(dout, reference_cache)

    out, cache = fast.max_pool_forward_fast(x, pool_param)
    assert cache[0] == method
    close(out, expected, "out")
    close(fast.max_pool_backward_fast(dout, cache), expected_dx, "dx")

    pairs = [("im2col", fast.max_pool_forward_im2col, fast.max_pool_backward_im2col)]
    if method == "reshape":
        pairs.append(("reshape", fast.max_pool_forward_reshape, fast.max_pool_backward_reshape))
    for name, forward, backward in pairs:
        out, cache = forward(x, pool_param)
        close(out, expected, f"{name} out")
        close(backward(dout, cache), expected_dx, f"{name} dx")


@pytest.mark.parametrize("shape", [(2, 3, 5, 6, 2, 2, 2), (1, 2, 7, 5, 3, 3, 2), (2, 2, 5, 5, 2, 2, 2)])
def test_fast_max_pool_floors_geometry_that_does_not_tile(fast, shape):
    *x_shape, ph, pw, stride = shape
    rng = np.random.default_rng(sum(shape))
    x = distinct(rng, x_shape)
    out, cache = fast.max_pool_forward_fast(x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    close(out, loops.pool_forward(x, ph, pw, stride), "out")
    dout = rng.normal(size=out.shape)
    close(fast.max_pool_backward_fast(dout, cache), loops.pool_backward(dout, x, ph, pw, stride), "dx")


def test_reshape_pooling_shares_the_gradient_of_tied_maxima(fast):
    """The course's reshape backward splits a window's gradient between its tied maxima."""
    x = np.array([[[[1.0, 1.0], [0.0, 1.0]]]])
    out, cache = fast.max_pool_forward_reshape(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    np.testing.assert_allclose(fast.max_pool_backward_reshape(np.array([[[[3.0]]]]), cache), [[[[1.0, 1.0], [0.0, 1.0]]]])


def test_reshape_pooling_refuses_windows_it_cannot_reshape(fast):
    with pytest.raises(ValueError):
        fast.max_pool_forward_reshape(np.zeros((1, 1, 4, 4)), {"pool_height": 2, "pool_width": 2, "stride": 1})
    with pytest.raises(ValueError):
        fast.max_pool_forward_reshape(np.zeros((1, 1, 5, 4)), {"pool_height": 2, "pool_width": 2, "stride": 2})


# ---------------------------------------------------------------------------- layer_utils


@pytest.fixture(scope="module", params=["reference", "a2 solution"])
def layer_utils(request, tmp_path_factory):
    """layer_utils on two sets of student layers: the reference ones and the course-style a2 solution."""
    root = tmp_path_factory.mktemp("layer_utils")
    layers = course_package.REFERENCE_LAYERS if request.param == "reference" else A2_LAYERS
    course_package.build(root, {"layers.py": layers, **course_package.helpers()})
    with course_package.imported(root, "cs231n.layer_utils") as (module,):
        yield module


def compare_sandwich(forward, backward, args, ref_forward, ref_backward, rng):
    out, cache = forward(*args)
    expected, ref_cache = ref_forward(*args)
    close(out, expected, "out")
    dout = rng.normal(size=out.shape)
    got, want = backward(dout, cache), ref_backward(dout, ref_cache)
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want)):
        close(g, w, f"gradient {index}")


def test_affine_relu(layer_utils):
    rng = np.random.default_rng(1)
    args = (rng.normal(size=(3, 2, 2)), rng.normal(size=(4, 5)), rng.normal(size=5))

    def ref_forward(x, w, b):
        a, fc = L.affine_forward(x, w, b)
        out, relu = L.relu_forward(a)
        return out, (fc, relu)

    def ref_backward(dout, cache):
        return L.affine_backward(L.relu_backward(dout, cache[1]), cache[0])

    compare_sandwich(layer_utils.affine_relu_forward, layer_utils.affine_relu_backward, args, ref_forward, ref_backward, rng)


def test_affine_bn_relu(layer_utils):
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    gamma, beta = rng.normal(size=3), rng.normal(size=3)

    def forward(x, w, b, gamma, beta):
        return layer_utils.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})

    def ref_forward(x, w, b, gamma, beta):
        a, fc = L.affine_forward(x, w, b)
        a, bn = L.batchnorm_forward(a, gamma, beta, {"mode": "train"})
        out, relu = L.relu_forward(a)
        return out, (fc, bn, relu)

    def ref_backward(dout, cache):
        fc, bn, relu = cache
        da, dgamma, dbeta = L.batchnorm_backward(L.relu_backward(dout, relu), bn)
        return (*L.affine_backward(da, fc), dgamma, dbeta)

    compare_sandwich(forward, layer_utils.affine_bn_relu_backward, (x, w, b, gamma, beta), ref_forward, ref_backward, rng)


CONV_PARAM = {"stride": 1, "pad": 1}
POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


def test_conv_relu(layer_utils):
    rng = np.random.default_rng(3)
    args = (rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4), CONV_PARAM)

    def ref_forward(x, w, b, conv_param):
        a, conv = L.conv_forward_naive(x, w, b, conv_param)
        out, relu = L.relu_forward(a)
        return out, (conv, relu)

    def ref_backward(dout, cache):
        return L.conv_backward_naive(L.relu_backward(dout, cache[1]), cache[0])

    compare_sandwich(layer_utils.conv_relu_forward, layer_utils.conv_relu_backward, args, ref_forward, ref_backward, rng)


def test_conv_bn_relu(layer_utils):
    rng = np.random.default_rng(4)
    x, w, b = rng.normal(size=(2, 3, 4, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    gamma, beta = rng.normal(size=4), rng.normal(size=4)

    def forward(x, w, b, gamma, beta):
        return layer_utils.conv_bn_relu_forward(x, w, b, gamma, beta, CONV_PARAM, {"mode": "train"})

    def ref_forward(x, w, b, gamma, beta):
        a, conv = L.conv_forward_naive(x, w, b, CONV_PARAM)
        a, bn = L.spatial_batchnorm_forward(a, gamma, beta, {"mode": "train"})
        out, relu = L.relu_forward(a)
        return out, (conv, bn, relu)

    def ref_backward(dout, cache):
        conv, bn, relu = cache
        da, dgamma, dbeta = L.spatial_batchnorm_backward(L.relu_backward(dout, relu), bn)
        return (*L.conv_backward_naive(da, conv), dgamma, dbeta)

    compare_sandwich(forward, layer_utils.conv_bn_relu_backward, (x, w, b, gamma, beta), ref_forward, ref_backward, rng)


@pytest.mark.parametrize("size", [(6, 8), (5, 7)])
def test_conv_relu_pool(layer_utils, size):
    """Even sizes take the reshape pool, odd ones the im2col pool over the covered part."""
    rng = np.random.default_rng(5)
    h, w_ = size
    args = (rng.normal(size=(2, 3, h, w_)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4), CONV_PARAM, POOL_PARAM)
    covered = (slice(None), slice(None), slice(0, h // 2 * 2), slice(0, w_ // 2 * 2))

    def ref_forward(x, w, b, conv_param, pool_param):
        a, conv = L.conv_forward_naive(x, w, b, conv_param)
        s, relu = L.relu_forward(a)
        out, pool = L.max_pool_forward_naive(np.ascontiguousarray(s[covered]), pool_param)
        return out, (conv, relu, pool)

    def ref_backward(dout, cache):
        conv, relu, pool = cache
        ds = np.zeros(relu.shape)
        ds[covered] = L.max_pool_backward_naive(dout, pool)
        return L.conv_backward_naive(L.relu_backward(ds, relu), conv)

    compare_sandwich(layer_utils.conv_relu_pool_forward, layer_utils.conv_relu_pool_backward, args, ref_forward, ref_backward, rng)


def test_layer_utils_runs_on_the_packages_own_layers(tmp_path):
    """A change in the student's affine_forward shows in affine_relu_forward: nothing comes from the reference."""
    shifted = course_package.REFERENCE_LAYERS + (
        "import reference.layers as _reference\n"
        "def affine_forward(x, w, b):\n"
        "    out, cache = _reference.affine_forward(x, w, b)\n"
        "    return out + 100.0, cache\n"
    )
    course_package.build(tmp_path, {"layers.py": shifted, **course_package.helpers()})
    with course_package.imported(tmp_path, "cs231n.layer_utils") as (module,):
        out, _ = module.affine_relu_forward(np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(4))
    np.testing.assert_array_equal(out, np.full((2, 4), 100.0))


# ---------------------------------------------------------------------------- solver


class TwoLayerNet:
    """affine - relu - affine - softmax, written out here so the Solver test depends on no model file."""

    def __init__(self, rng, dims=(4, 8, 3)):
        d, h, c = dims
        self.params = {
            "W1": 0.1 * rng.normal(size=(d, h)),
            "b1": np.zeros(h),
            "W2": 0.1 * rng.normal(size=(h, c)),
            "b2": np.zeros(c),
        }

    def loss(self, X, y=None):
        p = self.params
        a, fc1 = L.affine_forward(X, p["W1"], p["b1"])
        hidden, relu = L.relu_forward(a)
        scores, fc2 = L.affine_forward(hidden, p["W2"], p["b2"])
        if y is None:
            return scores
        loss, dscores = L.softmax_loss(scores, y)
        grads = {}
        dhidden, grads["W2"], grads["b2"] = L.affine_backward(dscores, fc2)
        _, grads["W1"], grads["b1"] = L.affine_backward(L.relu_backward(dhidden, relu), fc1)
        return loss, grads


def tiny_data(rng):
    """20 training samples of 3 separable classes; validation is the first 10 of them."""
    y = np.arange(20) % 3
    X = rng.normal(scale=0.3, size=(20, 4))
    X[np.arange(20), y] += 2.0
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


@pytest.fixture
def solver_module(package):
    with course_package.imported(package, "cs231n.solver") as (module,):
        yield module


def test_solver_trains_a_tiny_model(solver_module, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.random.seed(0)
    rng = np.random.default_rng(0)
    model, data = TwoLayerNet(rng), tiny_data(rng)
    loss_before, _ = model.loss(data["X_train"], data["y_train"])
    solver = solver_module.Solver(
        model,
        data,
        update_rule="sgd",
        optim_config={"learning_rate": 0.5},
        lr_decay=0.9,
        batch_size=10,
        num_epochs=15,
        print_every=3,
        checkpoint_name="tiny",
    )
    solver.train()
    history = solver.loss_history
    assert len(history) == 30  # 2 iterations per epoch
    assert np.mean(history[-5:]) < 0.5 * np.mean(history[:5])
    loss_after, _ = model.loss(data["X_train"], data["y_train"])  # with the best parameters, swapped in
    assert loss_after < 0.8 * loss_before
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 16  # first step + 15 epochs
    assert solver.best_val_acc == max(solver.val_acc_history) > 0.5
    assert set(model.params) == {"W1", "b1", "W2", "b2"}
    assert solver.check_accuracy(solver.X_val, solver.y_val) == solver.best_val_acc
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.5 * 0.9**15)
    assert {p.name for p in tmp_path.glob("tiny_epoch_*.pkl")} == {f"tiny_epoch_{e}.pkl" for e in range(16)}
    with open(tmp_path / "tiny_epoch_15.pkl", "rb") as f:
        checkpoint = pickle.load(f)
    assert checkpoint["epoch"] == 15 and len(checkpoint["loss_history"]) == 30
    printed = capsys.readouterr().out
    assert "(Iteration 1 / 30) loss:" in printed and "(Epoch 15 / 15) train acc:" in printed


def test_solver_keeps_one_optim_config_per_parameter(solver_module):
    rng = np.random.default_rng(1)
    solver = solver_module.Solver(TwoLayerNet(rng), tiny_data(rng), optim_config={"learning_rate": 0.1}, verbose=False)
    configs = solver.optim_configs
    assert set(configs) == {"W1", "b1", "W2", "b2"}
    assert len({id(c) for c in configs.values()}) == 4
    assert solver.update_rule.__module__ == "cs231n.optim"


def test_solver_rejects_unknown_arguments_and_update_rules(solver_module):
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match='Unrecognized arguments "learning_rate"'):
        solver_module.Solver(TwoLayerNet(rng), tiny_data(rng), learning_rate=0.1)
    with pytest.raises(ValueError, match='Invalid update_rule "adam"'):
        solver_module.Solver(TwoLayerNet(rng), tiny_data(rng), update_rule="adam")
