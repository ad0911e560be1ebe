"""The assignment-2 and -3 reference layers against independent loops (tests/formulas.py) and
numeric gradients, and the student-style solutions in tests/solutions against the reference."""
import ast
import importlib.util
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference import layers as L
from reference import rnn_layers as R
from tests import formulas as F

HERE = Path(__file__).resolve().parent
A2 = HERE / "solutions" / "a2" / "cs231n" / "layers.py"
A3 = HERE / "solutions" / "a3" / "cs231n" / "rnn_layers.py"
ALICE = HERE.parent / "submissions" / "alice" / "cs231n" / "layers.py"

EXAMPLES = settings(max_examples=15, deadline=None)
sizes = st.integers(1, 4)
seeds = st.integers(0, 2**32 - 1)


def assert_gradient(analytic, numeric, name=""):
    """Analytic and central-difference gradients agree to 1e-6 of the gradient's scale (at least 1)."""
    analytic = np.asarray(analytic)
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    error = np.max(np.abs(analytic - numeric), initial=0.0)
    scale = max(1.0, np.max(np.abs(numeric), initial=0.0))
    assert error <= 1e-6 * scale, f"{name}: analytic and numeric gradients differ by {error} (scale {scale})"


def check_backward(forward, arrays, grads, dout):
    """Every grads[name] is the numeric gradient of sum(forward() * dout) with respect to arrays[name]."""
    objective = F.contracted(forward, dout)
    for name, array in arrays.items():
        assert_gradient(grads[name], F.numeric_gradient(objective, array), name)


def away_from(values, kink=0.0, gap=1e-3):
    """values with every element within gap of the kink moved to kink +- 2*gap (no numeric step crosses it)."""
    values = values.copy()
    near = np.abs(values - kink) < gap
    values[near] = kink + np.where(values[near] >= kink, 2 * gap, -2 * gap)
    return values


# --------------------------------------------------------------------- affine, relu, losses


@EXAMPLES
@given(n=sizes, dims=st.lists(sizes, min_size=1, max_size=3), m=sizes, seed=seeds)
def test_affine(n, dims, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *dims))
    w = rng.normal(size=(math.prod(dims), m))
    b = rng.normal(size=m)
    out, cache = L.affine_forward(x, w, b)
    np.testing.assert_allclose(out, F.affine(x, w, b), rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx, dw, db = L.affine_backward(dout, cache)
    check_backward(lambda: L.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


@EXAMPLES
@given(shape=st.lists(sizes, min_size=1, max_size=4), seed=seeds)
def test_relu(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from(rng.normal(size=shape))
    out, cache = L.relu_forward(x)
    np.testing.assert_array_equal(out, F.relu(x))
    dout = rng.normal(size=out.shape)
    check_backward(lambda: L.relu_forward(x)[0], {"x": x}, {"x": L.relu_backward(dout, cache)}, dout)


@EXAMPLES
@given(n=sizes, classes=st.integers(2, 5), seed=seeds)
def test_svm_loss(n, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, classes))
    y = rng.integers(0, classes, size=n)
    # keep every margin x_j - x_y + 1 away from its kink at 0
    x = x[np.arange(n), y][:, None] + away_from(x - x[np.arange(n), y][:, None], kink=-1.0)
    loss, dx = L.svm_loss(x, y)
    assert isinstance(loss, (float, np.float64)) and np.ndim(loss) == 0
    assert loss == pytest.approx(F.svm(x, y), rel=1e-12, abs=1e-12)
    assert_gradient(dx, F.numeric_gradient(lambda: L.svm_loss(x, y)[0], x), "dx")


@EXAMPLES
@given(n=sizes, classes=st.integers(2, 5), seed=seeds)
def test_softmax_loss(n, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, classes)) * 3
    y = rng.integers(0, classes, size=n)
    loss, dx = L.softmax_loss(x, y)
    assert isinstance(loss, (float, np.float64)) and np.ndim(loss) == 0
    assert loss == pytest.approx(F.softmax(x, y), rel=1e-12)
    np.testing.assert_allclose(dx, F.softmax_gradient(x, y), rtol=1e-10, atol=1e-14)
    assert_gradient(dx, F.numeric_gradient(lambda: L.softmax_loss(x, y)[0], x), "dx")


@EXAMPLES
@given(n=sizes, classes=st.integers(2, 5), seed=seeds)
def test_softmax_loss_huge_scores(n, classes, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, classes)) * 1000
    y = rng.integers(0, classes, size=n)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, dx = L.softmax_loss(x, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    assert loss == pytest.approx(F.softmax(x, y), rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(dx, F.softmax_gradient(x, y), rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------- batch and layer norm


def bn_case(rng, n, d, with_running):
    x = rng.normal(size=(n, d)) * 2 + rng.normal(size=d)
    gamma, beta = rng.normal(size=d), rng.normal(size=d)
    param = {"mode": "train", "eps": 10.0 ** rng.integers(-6, -2), "momentum": float(rng.uniform(0.1, 0.95))}
    if with_running:
        param["running_mean"] = rng.normal(size=d)
        param["running_var"] = rng.uniform(0.5, 2.0, size=d)
    return x, gamma, beta, param


@EXAMPLES
@given(n=sizes, d=sizes, with_running=st.booleans(), seed=seeds)
def test_batchnorm_train(n, d, with_running, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, param = bn_case(rng, n, d, with_running)
    old_mean = param.get("running_mean", np.zeros(d))
    old_var = param.get("running_var", np.zeros(d))
    saved = (old_mean.copy(), old_var.copy())
    expected, new_mean, new_var = F.batchnorm_train(x, gamma, beta, param["eps"], param["momentum"], old_mean, old_var)
    given_param = dict(param)
    out, cache = L.batchnorm_forward(x, gamma, beta, given_param)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(given_param["running_mean"], new_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(given_param["running_var"], new_var, rtol=1e-12, atol=1e-15)
    # new arrays in the dict; the old running statistics were not written into
    np.testing.assert_array_equal(old_mean, saved[0])
    np.testing.assert_array_equal(old_var, saved[1])
    if with_running:
        assert given_param["running_mean"] is not old_mean and given_param["running_var"] is not old_var

    dout = rng.normal(size=out.shape)
    forward = lambda: L.batchnorm_forward(x, gamma, beta, dict(param))[0]  # noqa: E731
    for backward in (L.batchnorm_backward, L.batchnorm_backward_alt):
        dx, dgamma, dbeta = backward(dout, cache)
        check_backward(forward, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


def test_batchnorm_defaults():
    """eps 1e-5, momentum 0.9, running statistics from zeros when bn_param has only the mode."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 3)) + 4
    param = {"mode": "train"}
    out, _ = L.batchnorm_forward(x, np.ones(3), np.zeros(3), param)
    expected, mean, var = F.batchnorm_train(x, np.ones(3), np.zeros(3), 1e-5, 0.9, np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    np.testing.assert_allclose(param["running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(param["running_var"], var, rtol=1e-12)
    assert param["running_mean"] == pytest.approx(0.1 * x.mean(axis=0))


@EXAMPLES
@given(n=sizes, d=sizes, seed=seeds)
def test_batchnorm_test_mode(n, d, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta, param = bn_case(rng, n, d, with_running=True)
    param["mode"] = "test"
    mean, var = param["running_mean"].copy(), param["running_var"].copy()
    given_param = dict(param)
    out, cache = L.batchnorm_forward(x, gamma, beta, given_param)
    np.testing.assert_allclose(out, F.batchnorm_test(x, gamma, beta, param["eps"], mean, var), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(given_param["running_mean"], mean)
    np.testing.assert_array_equal(given_param["running_var"], var)
    dout = rng.normal(size=out.shape)
    forward = lambda: L.batchnorm_forward(x, gamma, beta, dict(param))[0]  # noqa: E731
    for backward in (L.batchnorm_backward, L.batchnorm_backward_alt):
        dx, dgamma, dbeta = backward(dout, cache)
        np.testing.assert_allclose(dx, dout * gamma / np.sqrt(var + param["eps"]), rtol=1e-12)
        check_backward(forward, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


@EXAMPLES
@given(n=sizes, d=sizes, seed=seeds)
def test_layernorm(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 2 + rng.normal(size=(n, 1))
    gamma, beta = rng.normal(size=d), rng.normal(size=d)
    eps = 10.0 ** rng.integers(-6, -2)
    out, cache = L.layernorm_forward(x, gamma, beta, {"eps": eps})
    np.testing.assert_allclose(out, F.layernorm(x, gamma, beta, eps), rtol=1e-10, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx, dgamma, dbeta = L.layernorm_backward(dout, cache)
    forward = lambda: L.layernorm_forward(x, gamma, beta, {"eps": eps})[0]  # noqa: E731
    check_backward(forward, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


@EXAMPLES
@given(n=sizes, c=sizes, h=sizes, w=sizes, mode=st.sampled_from(["train", "test"]), seed=seeds)
def test_spatial_batchnorm(n, c, h, w, mode, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w)) * 2 + rng.normal(size=(1, c, 1, 1))
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    running = rng.normal(size=c), rng.uniform(0.5, 2.0, size=c)
    param = {"mode": mode, "eps": 1e-5, "momentum": 0.8, "running_mean": running[0], "running_var": running[1]}
    given_param = dict(param)
    out, cache = L.spatial_batchnorm_forward(x, gamma, beta, given_param)
    if mode == "train":
        expected, new_mean, new_var = F.spatial_batchnorm_train(x, gamma, beta, 1e-5, 0.8, *running)
        np.testing.assert_allclose(given_param["running_mean"], new_mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(given_param["running_var"], new_var, rtol=1e-12, atol=1e-15)
    else:
        expected = np.stack([F.batchnorm_test(x[:, :, y, z], gamma, beta, 1e-5, *running) for y in range(h) for z in range(w)], axis=-1)
        expected = expected.reshape(n, c, h, w)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx, dgamma, dbeta = L.spatial_batchnorm_backward(dout, cache)
    assert dgamma.shape == dbeta.shape == (c,)
    forward = lambda: L.spatial_batchnorm_forward(x, gamma, beta, dict(param))[0]  # noqa: E731
    check_backward(forward, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


@EXAMPLES
@given(n=sizes, groups=sizes, per_group=sizes, h=sizes, w=sizes, course_shape=st.booleans(), seed=seeds)
def test_spatial_groupnorm(n, groups, per_group, h, w, course_shape, seed):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    x = rng.normal(size=(n, c, h, w)) * 2 + rng.normal(size=(n, c, 1, 1))
    shape = (1, c, 1, 1) if course_shape else (c,)
    gamma, beta = rng.normal(size=shape), rng.normal(size=shape)
    eps = 10.0 ** rng.integers(-6, -2)
    out, cache = L.spatial_groupnorm_forward(x, gamma, beta, groups, {"eps": eps})
    np.testing.assert_allclose(out, F.spatial_groupnorm(x, gamma, beta, groups, eps), rtol=1e-10, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx, dgamma, dbeta = L.spatial_groupnorm_backward(dout, cache)
    assert dgamma.shape == dbeta.shape == shape
    forward = lambda: L.spatial_groupnorm_forward(x, gamma, beta, groups, {"eps": eps})[0]  # noqa: E731
    check_backward(forward, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


def test_spatial_groupnorm_default_eps_and_groups_are_consecutive_channels():
    x = np.arange(2 * 4 * 1 * 2, dtype=float).reshape(2, 4, 1, 2) ** 2
    out, _ = L.spatial_groupnorm_forward(x, np.ones((1, 4, 1, 1)), np.zeros((1, 4, 1, 1)), 2, {})
    np.testing.assert_allclose(out, F.spatial_groupnorm(x, np.ones(4), np.zeros(4), 2, 1e-5), rtol=1e-12)
    # channels 0-1 form one group, 2-3 the other: each group is normalised on its own
    np.testing.assert_allclose(out[:, :2].mean(axis=(1, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out[:, 2:].mean(axis=(1, 2, 3)), 0, atol=1e-12)


# --------------------------------------------------------------------- dropout


@EXAMPLES
@given(shape=st.lists(sizes, min_size=1, max_size=4), p=st.floats(0.05, 1.0), with_seed=st.booleans(), seed=seeds)
def test_dropout_test_mode_is_identity(shape, p, with_seed, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    param = {"mode": "test", "p": p, **({"seed": seed} if with_seed else {})}
    out, cache = L.dropout_forward(x, param)
    np.testing.assert_array_equal(out, x)
    dout = np.random.default_rng(seed + 1).normal(size=shape)
    np.testing.assert_array_equal(L.dropout_backward(dout, cache), dout)


@EXAMPLES
@given(shape=st.lists(sizes, min_size=1, max_size=4), p=st.floats(0.05, 1.0), seed=seeds)
def test_dropout_train(shape, p, seed):
    rng = np.random.default_rng(seed)
    x = away_from(rng.normal(size=shape), gap=1e-6)  # no zeros: a kept element is visibly kept
    param = {"mode": "train", "p": p, "seed": seed}
    out, cache = L.dropout_forward(x, param)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / p, rtol=1e-15)
    # the course's draw: the same seed, then one np.random.rand of x's shape
    np.random.seed(seed)
    np.testing.assert_array_equal(kept, np.random.rand(*shape) < p)
    again, cache_again = L.dropout_forward(x, dict(param))
    np.testing.assert_array_equal(again, out)
    dout = rng.normal(size=shape)
    dx = L.dropout_backward(dout, cache)
    np.testing.assert_array_equal(dx, dout * cache[1])
    np.testing.assert_array_equal(dx == 0, ~kept)
    check_backward(lambda: L.dropout_forward(x, dict(param))[0], {"x": x}, {"x": dx}, dout)


@EXAMPLES
@given(p=st.floats(0.05, 0.95), seed=seeds)
def test_dropout_keeps_a_fraction_p(p, seed):
    n = 20_000
    out, cache = L.dropout_forward(np.ones((100, n // 100)), {"mode": "train", "p": p, "seed": seed})
    fraction = np.mean(out != 0)
    bound = 6 * math.sqrt(p * (1 - p) / n)  # six standard deviations: a false alarm is < 1e-8
    assert abs(fraction - p) <= bound, f"kept {fraction}, expected {p} +- {bound}"
    assert out.mean() == pytest.approx(1.0, abs=6 * math.sqrt((1 - p) / (p * n)))
    other, _ = L.dropout_forward(np.ones((100, n // 100)), {"mode": "train", "p": p, "seed": (seed + 1) % 2**32})
    assert not np.array_equal(other, out)


# --------------------------------------------------------------------- recurrent layers


def rnn_case(rng, n, t, d, h, gates=1):
    return (
        rng.normal(size=(n, t, d)),
        rng.normal(size=(n, h)),
        rng.normal(size=(d, gates * h)) * 0.5,
        rng.normal(size=(h, gates * h)) * 0.5,
        rng.normal(size=gates * h) * 0.5,
    )


@EXAMPLES
@given(n=sizes, d=sizes, h=sizes, seed=seeds)
def test_rnn_step(n, d, h, seed):
    rng = np.random.default_rng(seed)
    x, prev_h, wx, wh, b = rnn_case(rng, n, 1, d, h)
    x = x[:, 0]
    next_h, cache = R.rnn_step_forward(x, prev_h, wx, wh, b)
    np.testing.assert_allclose(next_h, F.rnn(x[:, None], prev_h, wx, wh, b)[:, 0], rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=next_h.shape)
    grads = dict(zip(["x", "prev_h", "wx", "wh", "b"], R.rnn_step_backward(dout, cache)))
    arrays = {"x": x, "prev_h": prev_h, "wx": wx, "wh": wh, "b": b}
    check_backward(lambda: R.rnn_step_forward(x, prev_h, wx, wh, b)[0], arrays, grads, dout)


@EXAMPLES
@given(n=sizes, t=sizes, d=sizes, h=sizes, seed=seeds)
def test_rnn(n, t, d, h, seed):
    rng = np.random.default_rng(seed)
    x, h0, wx, wh, b = rnn_case(rng, n, t, d, h)
    hs, cache = R.rnn_forward(x, h0, wx, wh, b)
    np.testing.assert_allclose(hs, F.rnn(x, h0, wx, wh, b), rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=hs.shape)
    grads = dict(zip(["x", "h0", "wx", "wh", "b"], R.rnn_backward(dout, cache)))
    arrays = {"x": x, "h0": h0, "wx": wx, "wh": wh, "b": b}
    check_backward(lambda: R.rnn_forward(x, h0, wx, wh, b)[0], arrays, grads, dout)


@EXAMPLES
@given(n=sizes, d=sizes, h=sizes, seed=seeds)
def test_lstm_step(n, d, h, seed):
    rng = np.random.default_rng(seed)
    x, prev_h, wx, wh, b = rnn_case(rng, n, 1, d, h, gates=4)
    x = x[:, 0]
    prev_c = rng.normal(size=(n, h))
    next_h, next_c, cache = R.lstm_step_forward(x, prev_h, prev_c, wx, wh, b)
    expected_h, expected_c = F.lstm(x[:, None], prev_h, wx, wh, b, c0=prev_c)
    np.testing.assert_allclose(next_h, expected_h[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(next_c, expected_c[:, 0], rtol=1e-12, atol=1e-14)
    dh, dc = rng.normal(size=(n, h)), rng.normal(size=(n, h))
    names = ["x", "prev_h", "prev_c", "wx", "wh", "b"]
    grads = dict(zip(names, R.lstm_step_backward(dh, dc, cache)))
    arrays = dict(zip(names, [x, prev_h, prev_c, wx, wh, b]))

    def objective():
        out_h, out_c, _ = R.lstm_step_forward(x, prev_h, prev_c, wx, wh, b)
        return float(np.sum(out_h * dh) + np.sum(out_c * dc))

    for name, array in arrays.items():
        assert_gradient(grads[name], F.numeric_gradient(objective, array), name)


@EXAMPLES
@given(n=sizes, t=sizes, d=sizes, h=sizes, seed=seeds)
def test_lstm(n, t, d, h, seed):
    rng = np.random.default_rng(seed)
    x, h0, wx, wh, b = rnn_case(rng, n, t, d, h, gates=4)
    hs, cache = R.lstm_forward(x, h0, wx, wh, b)
    np.testing.assert_allclose(hs, F.lstm(x, h0, wx, wh, b)[0], rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=hs.shape)
    grads = dict(zip(["x", "h0", "wx", "wh", "b"], R.lstm_backward(dout, cache)))
    arrays = {"x": x, "h0": h0, "wx": wx, "wh": wh, "b": b}
    check_backward(lambda: R.lstm_forward(x, h0, wx, wh, b)[0], arrays, grads, dout)


def test_sigmoid_is_stable():
    a = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s = R.sigmoid(a)
    np.testing.assert_allclose(s, [F._sigmoid(v) for v in a], rtol=1e-15, atol=0)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5


@EXAMPLES
@given(n=sizes, t=sizes, vocabulary=sizes, d=sizes, data=st.data())
def test_word_embedding(n, t, vocabulary, d, data):
    x = np.array(data.draw(st.lists(st.integers(0, vocabulary - 1), min_size=n * t, max_size=n * t))).reshape(n, t)
    if x.size > 1:
        x.flat[-1] = x.flat[0]  # at least one repeated index
    rng = np.random.default_rng(data.draw(seeds))
    w = rng.normal(size=(vocabulary, d))
    out, cache = R.word_embedding_forward(x, w)
    np.testing.assert_array_equal(out, F.word_embedding(x, w))
    dout = rng.normal(size=out.shape)
    dw = R.word_embedding_backward(dout, cache)
    np.testing.assert_allclose(dw, F.word_embedding_gradient(x, dout, vocabulary), rtol=1e-12, atol=1e-15)
    check_backward(lambda: R.word_embedding_forward(x, w)[0], {"w": w}, {"w": dw}, dout)


@EXAMPLES
@given(n=sizes, t=sizes, d=sizes, m=sizes, seed=seeds)
def test_temporal_affine(n, t, d, m, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(n, t, d)), rng.normal(size=(d, m)), rng.normal(size=m)
    out, cache = R.temporal_affine_forward(x, w, b)
    np.testing.assert_allclose(out, F.temporal_affine(x, w, b), rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx, dw, db = R.temporal_affine_backward(dout, cache)
    check_backward(lambda: R.temporal_affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


@EXAMPLES
@given(n=sizes, t=sizes, vocabulary=st.integers(2, 5), scale=st.sampled_from([1.0, 1000.0]), seed=seeds)
def test_temporal_softmax_loss(n, t, vocabulary, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, vocabulary)) * scale
    y = rng.integers(0, vocabulary, size=(n, t))
    mask = rng.random(size=(n, t)) < 0.6
    mask.flat[0] = False  # the mask always holds a zero
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, dx = R.temporal_softmax_loss(x, y, mask)
    assert isinstance(loss, (float, np.float64)) and np.ndim(loss) == 0
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    assert loss == pytest.approx(F.temporal_softmax(x, y, mask), rel=1e-12, abs=1e-12)
    assert np.all(dx[~mask] == 0)
    for i, step in zip(*np.nonzero(mask)):
        np.testing.assert_allclose(dx[i, step], F.softmax_gradient(x[i, step][None], [y[i, step]])[0] / n, rtol=1e-10, atol=1e-14)
    if scale == 1.0:
        assert_gradient(dx, F.numeric_gradient(lambda: R.temporal_softmax_loss(x, y, mask)[0], x), "dx")


# --------------------------------------------------------------------- purity: inputs are never written


def frozen(*arrays):
    for array in arrays:
        array.flags.writeable = False
    return arrays


def test_reference_never_writes_into_its_inputs():
    rng = np.random.default_rng(3)
    x2, g, b, dout2 = frozen(rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=3), rng.normal(size=(4, 3)))
    x4, dout4, g4 = frozen(rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(1, 4, 1, 1)))
    w, bias = frozen(rng.normal(size=(36, 3)), rng.normal(size=3))
    y = frozen(np.array([0, 2, 1, 1]))[0]
    L.affine_backward(dout2[:2], L.affine_forward(x4, w, bias)[1])
    L.relu_backward(dout2, L.relu_forward(x2)[1])
    L.svm_loss(x2, y), L.softmax_loss(x2, y)
    for mode in ("train", "test"):
        running = frozen(rng.normal(size=3), rng.uniform(1, 2, size=3))
        param = {"mode": mode, "running_mean": running[0], "running_var": running[1]}
        cache = L.batchnorm_forward(x2, g, b, param)[1]
        L.batchnorm_backward(dout2, cache), L.batchnorm_backward_alt(dout2, cache)
        L.dropout_backward(dout2, L.dropout_forward(x2, {"mode": mode, "p": 0.5, "seed": 1})[1])
        param = {"mode": mode, "running_mean": np.zeros(4), "running_var": np.ones(4)}
        L.spatial_batchnorm_backward(dout4, L.spatial_batchnorm_forward(x4, g4.ravel(), g4.ravel(), param)[1])
    L.layernorm_backward(dout2, L.layernorm_forward(x2, g, b, {})[1])
    L.spatial_groupnorm_backward(dout4, L.spatial_groupnorm_forward(x4, g4, g4, 2, {})[1])

    xs, h0, wx, wh, wb = frozen(*rnn_case(rng, 2, 3, 4, 3, gates=4))
    dh = frozen(rng.normal(size=(2, 3, 3)))[0]
    R.lstm_backward(dh, R.lstm_forward(xs, h0, wx, wh, wb)[1])
    R.lstm_step_backward(dh[:, 0], dh[:, 1], R.lstm_step_forward(xs[:, 0], h0, h0, wx, wh, wb)[2])
    R.rnn_backward(dh, R.rnn_forward(xs, h0, wx[:, :3], wh[:, :3], wb[:3])[1])
    R.temporal_affine_backward(dh, R.temporal_affine_forward(xs, wx[:, :3], wb[:3])[1])
    words = frozen(np.array([[0, 1, 0], [2, 2, 0]]))[0]
    R.word_embedding_backward(dh, R.word_embedding_forward(words, wx[:3, :3])[1])
    R.temporal_softmax_loss(dh, words, frozen(np.ones((2, 3), dtype=bool))[0])


# --------------------------------------------------------------------- the student-style solutions


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def a2():
    return load(A2, "solution_a2_layers")


@pytest.fixture(scope="module")
def a3():
    return load(A3, "solution_a3_rnn_layers")


def imports(path):
    return [ast.unparse(node) for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, (ast.Import, ast.ImportFrom))]


def test_solutions_import_only_what_the_course_files_import():
    assert A2.read_text().startswith("from builtins import range\nimport numpy as np\n")
    assert imports(A2) == ["from builtins import range", "import numpy as np"]
    assert imports(A3) == ["import numpy as np"]


def test_a2_solution_copies_alices_conv_and_pool_verbatim(a2):
    alice = load(ALICE, "alice_layers")
    for name in L.__all__[:4]:
        assert inspect.getsource(getattr(a2, name)) == inspect.getsource(getattr(alice, name)), name


def test_solutions_define_every_reference_function(a2, a3):
    assert not [name for name in L.__all__ if not callable(getattr(a2, name, None))]
    assert not [name for name in R.__all__ if name != "sigmoid" and not callable(getattr(a3, name, None))]


def _affine(m, rng, n, a, b, c):
    x, w, bias, dout = rng.normal(size=(n, a, b)), rng.normal(size=(a * b, c)), rng.normal(size=c), rng.normal(size=(n, c))
    out, cache = m.affine_forward(x, w, bias)
    return [out, *m.affine_backward(dout, cache)]


def _relu(m, rng, n, a, b, c):
    x, dout = rng.normal(size=(n, a, b)), rng.normal(size=(n, a, b))
    out, cache = m.relu_forward(x)
    return [out, m.relu_backward(dout, cache)]


def _losses(m, rng, n, a, b, c):
    x, y = rng.normal(size=(n, a + 1)) * 3, rng.integers(0, a + 1, size=n)
    return [*m.svm_loss(x, y), *m.softmax_loss(x, y), *m.softmax_loss(x * 1000, y)]


def _batchnorm(m, rng, n, a, b, c):
    x, gamma, beta, dout = rng.normal(size=(n, a)) + 1, rng.normal(size=a), rng.normal(size=a), rng.normal(size=(n, a))
    results = []
    for mode in ("train", "test"):
        param = {"mode": mode, "momentum": 0.7, "running_mean": rng.normal(size=a), "running_var": rng.uniform(0.5, 2, size=a)}
        out, cache = m.batchnorm_forward(x, gamma, beta, param)
        results += [out, param["running_mean"], param["running_var"], *m.batchnorm_backward(dout, cache), *m.batchnorm_backward_alt(dout, cache)]
    param = {"mode": "train"}
    results.append(m.batchnorm_forward(x, gamma, beta, param)[0])
    return results + [param["running_mean"], param["running_var"]]


def _layernorm(m, rng, n, a, b, c):
    x, gamma, beta, dout = rng.normal(size=(n, a)), rng.normal(size=a), rng.normal(size=a), rng.normal(size=(n, a))
    out, cache = m.layernorm_forward(x, gamma, beta, {"eps": 1e-4})
    return [out, *m.layernorm_backward(dout, cache)]


def _dropout(m, rng, n, a, b, c):
    x, dout, seed = rng.normal(size=(n, a, b)), rng.normal(size=(n, a, b)), int(rng.integers(0, 2**31))
    results = []
    for mode in ("train", "test"):
        out, cache = m.dropout_forward(x, {"mode": mode, "p": float(rng.uniform(0.1, 0.9)), "seed": seed})
        results += [out, m.dropout_backward(dout, cache)]
    return results


def _spatial_batchnorm(m, rng, n, a, b, c):
    x, gamma, beta, dout = rng.normal(size=(n, a, b, c)), rng.normal(size=a), rng.normal(size=a), rng.normal(size=(n, a, b, c))
    results = []
    for mode in ("train", "test"):
        param = {"mode": mode, "running_mean": rng.normal(size=a), "running_var": rng.uniform(0.5, 2, size=a)}
        out, cache = m.spatial_batchnorm_forward(x, gamma, beta, param)
        results += [out, param["running_mean"], param["running_var"], *m.spatial_batchnorm_backward(dout, cache)]
    return results


def _spatial_groupnorm(m, rng, n, a, b, c):
    groups = int(rng.integers(1, 4))
    shape = (n, groups * a, b, c)
    x, dout = rng.normal(size=shape), rng.normal(size=shape)
    results = []
    for gamma_shape in ((1, shape[1], 1, 1), (shape[1],)):
        gamma, beta = rng.normal(size=gamma_shape), rng.normal(size=gamma_shape)
        out, cache = m.spatial_groupnorm_forward(x, gamma, beta, groups, {"eps": 1e-5})
        results += [out, *m.spatial_groupnorm_backward(dout, cache)]
    return results


def _conv(m, rng, n, a, b, c):
    stride, pad, kernel = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 4))
    h, w = (b - 1) * stride + kernel - 2 * pad, (c - 1) * stride + kernel - 2 * pad
    h, w = h + stride * max(0, -((h - 1) // stride)), w + stride * max(0, -((w - 1) // stride))
    x, wts, bias = rng.normal(size=(n, a, h, w)), rng.normal(size=(2, a, kernel, kernel)), rng.normal(size=2)
    param = {"stride": stride, "pad": pad}
    out, cache = m.conv_forward_naive(x, wts, bias, param)
    return [out, *m.conv_backward_naive(rng.normal(size=out.shape), cache)]


def _pool(m, rng, n, a, b, c):
    size, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    x = rng.normal(size=(n, a, (b - 1) * stride + size, (c - 1) * stride + size))
    out, cache = m.max_pool_forward_naive(x, {"pool_height": size, "pool_width": size, "stride": stride})
    return [out, m.max_pool_backward_naive(rng.normal(size=out.shape), cache)]


def _rnn(m, rng, n, a, b, c):
    x, h0, wx, wh, bias = rnn_case(rng, n, a, b, c)
    next_h, cache = m.rnn_step_forward(x[:, 0], h0, wx, wh, bias)
    results = [next_h, *m.rnn_step_backward(rng.normal(size=next_h.shape), cache)]
    h, cache = m.rnn_forward(x, h0, wx, wh, bias)
    return results + [h, *m.rnn_backward(rng.normal(size=h.shape), cache)]


def _lstm(m, rng, n, a, b, c):
    x, h0, wx, wh, bias = rnn_case(rng, n, a, b, c, gates=4)
    next_h, next_c, cache = m.lstm_step_forward(x[:, 0], h0, h0 * 2, wx, wh, bias)
    results = [next_h, next_c, *m.lstm_step_backward(rng.normal(size=next_h.shape), rng.normal(size=next_h.shape), cache)]
    h, cache = m.lstm_forward(x, h0, wx, wh, bias)
    return results + [h, *m.lstm_backward(rng.normal(size=h.shape), cache)]


def _embedding_and_temporal(m, rng, n, a, b, c):
    words = rng.integers(0, b, size=(n, a))
    out, cache = m.word_embedding_forward(words, rng.normal(size=(b, c)))
    results = [out, m.word_embedding_backward(rng.normal(size=out.shape), cache)]
    x, w, bias = rng.normal(size=(n, a, b)), rng.normal(size=(b, c)), rng.normal(size=c)
    out, cache = m.temporal_affine_forward(x, w, bias)
    results += [out, *m.temporal_affine_backward(rng.normal(size=out.shape), cache)]
    scores, labels = rng.normal(size=(n, a, c + 1)), rng.integers(0, c + 1, size=(n, a))
    mask = rng.random(size=(n, a)) < 0.6
    mask.flat[0] = False
    return results + [*m.temporal_softmax_loss(scores, labels, mask), *m.temporal_softmax_loss(scores * 1000, labels, mask)]


A2_CASES = [_affine, _relu, _losses, _batchnorm, _layernorm, _dropout, _spatial_batchnorm, _spatial_groupnorm, _conv, _pool]
A3_CASES = [_rnn, _lstm, _embedding_and_temporal]


@pytest.mark.parametrize("case", A2_CASES + A3_CASES, ids=lambda case: case.__name__.strip("_"))
@EXAMPLES
@given(n=sizes, a=sizes, b=sizes, c=sizes, seed=seeds)
def test_solution_agrees_with_reference(a2, a3, case, n, a, b, c, seed):
    solution = a2 if case in A2_CASES else a3
    reference = L if case in A2_CASES else R
    expected = case(reference, np.random.default_rng(seed), n, a, b, c)
    got = case(solution, np.random.default_rng(seed), n, a, b, c)
    assert len(got) == len(expected)
    for index, (value, want) in enumerate(zip(got, expected)):
        assert np.shape(value) == np.shape(want), f"{case.__name__} result {index}: shape {np.shape(value)} != {np.shape(want)}"
        np.testing.assert_allclose(value, want, rtol=1e-7, atol=1e-12, err_msg=f"{case.__name__} result {index}")
