"""The reference layers and helper agree with brute-force loops on every drawn geometry."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reference.im2col import col2im_indices, get_im2col_indices, im2col_indices
from reference.layers import (
    conv_backward_naive,
    conv_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
)
from tests import loops

NOTEBOOK_CONV = np.array(
    [[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
      [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
      [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
     [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
      [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
      [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]]
)
NOTEBOOK_POOL = np.array(
    [[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
      [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
      [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
     [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
      [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
      [[0.32631579, 0.34105263], [0.38526316, 0.4]]]]
)


def input_size(out: int, field: int, stride: int, pad: int) -> int:
    """The input size whose fields tile exactly into `out` positions, grown by strides to be >= 1."""
    size = (out - 1) * stride + field - 2 * pad
    if size < 1:
        size += stride * -((size - 1) // stride)
    return size


@st.composite
def conv_geometries(draw):
    """A valid conv case: output sizes drawn first, input sizes derived so the fields tile."""
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 3))
    hh, ww = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h = input_size(draw(st.integers(1, 4)), hh, stride, pad)
    w = input_size(draw(st.integers(1, 4)), ww, stride, pad)
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return (n, c, h, w), (f, c, hh, ww), stride, pad, seed


@st.composite
def pool_geometries(draw):
    stride = draw(st.integers(1, 3))
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    oh, ow = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (n, c, (oh - 1) * stride + ph, (ow - 1) * stride + pw)
    return shape, ph, pw, stride, draw(st.integers(0, 2**32 - 1))


def distinct_values(shape, seed):
    """Well separated distinct values, so max pooling has no ties."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0


def test_geometry_strategy_covers_the_hard_cases():
    seen = set()

    @settings(max_examples=300, derandomize=True, database=None)
    @given(conv_geometries())
    def record(case):
        (n, c, h, w), (f, _, hh, ww), stride, pad, _ = case
        assert h >= 1 and w >= 1
        seen.update(
            {("pad0" if pad == 0 else "pad>0"), ("h!=w" if h != w else "h=w"),
             ("rect" if hh != ww else "sq"), ("1x1" if hh == ww == 1 else "big"),
             ("stride>1" if stride > 1 else "stride1")}
        )

    record()
    assert seen >= {"pad0", "pad>0", "h!=w", "rect", "1x1", "stride>1"}


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(conv_geometries())
def test_conv_matches_loops(case):
    x_shape, w_shape, stride, pad, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    out, cache = conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    expected = loops.conv_forward(x, w, b, stride, pad)
    assert out.shape == expected.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    assert cache[0] is x and cache[1] is w and cache[2] is b and cache[3] == {"stride": stride, "pad": pad}

    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward_naive(dout, cache)
    ex, ew, eb = loops.conv_backward(dout, x, w, stride, pad)
    for got, want in ((dx, ex), (dw, ew), (db, eb)):
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(pool_geometries())
def test_max_pool_matches_loops(case):
    shape, ph, pw, stride, seed = case
    x = distinct_values(shape, seed)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = max_pool_forward_naive(x, param)
    np.testing.assert_array_equal(out, loops.pool_forward(x, ph, pw, stride))
    assert cache[0] is x and cache[1] == param
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    dx = max_pool_backward_naive(dout, cache)
    np.testing.assert_allclose(dx, loops.pool_backward(dout, x, ph, pw, stride), rtol=1e-12, atol=1e-14)


def test_overlapping_pool_windows_accumulate():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the centre is the maximum of all four overlapping 2x2 windows
    _, cache = max_pool_forward_naive(x + np.arange(9).reshape(1, 1, 3, 3) * 1e-3,
                                      {"pool_height": 2, "pool_width": 2, "stride": 1})
    dx = max_pool_backward_naive(np.ones((1, 1, 2, 2)), cache)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_max_pool_backward_routes_to_first_maximum_on_ties():
    x = np.ones((1, 1, 2, 2))
    _, cache = max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = max_pool_backward_naive(np.full((1, 1, 1, 1), 3.0), cache)
    np.testing.assert_array_equal(dx, [[[[3.0, 0.0], [0.0, 0.0]]]])


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(conv_geometries())
def test_im2col_layout_and_adjoint(case):
    x_shape, (_, _, fh, fw), stride, pad, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    cols = im2col_indices(x, fh, fw, padding=pad, stride=stride)
    np.testing.assert_array_equal(cols, loops.im2col(x, fh, fw, pad, stride))
    k, i, j = get_im2col_indices(x_shape, fh, fw, padding=pad, stride=stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    gathered = xp[:, k, i, j].transpose(1, 2, 0).reshape(cols.shape)
    np.testing.assert_array_equal(gathered, cols)
    probe = rng.standard_normal(cols.shape)
    back = col2im_indices(probe, x_shape, fh, fw, padding=pad, stride=stride)
    assert back.shape == x_shape
    assert np.isclose(np.vdot(cols, probe), np.vdot(x, back), rtol=1e-10, atol=1e-10)


def test_im2col_column_layout_is_n_fastest():
    x = np.arange(2 * 1 * 2 * 2, dtype=float).reshape(2, 1, 2, 2)
    cols = im2col_indices(x, 1, 1, padding=0, stride=1)
    np.testing.assert_array_equal(cols, [[0, 4, 1, 5, 2, 6, 3, 7]])


def test_helper_uses_integer_sizes():
    k, i, j = get_im2col_indices((1, 2, 5, 5), 3, 3, padding=1, stride=2)
    assert i.dtype.kind == j.dtype.kind == k.dtype.kind == "i"
    assert i.shape == (18, 9)


def test_notebook_vectors():
    x = np.linspace(-0.1, 0.5, 96).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, 144).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, 3)
    out, _ = conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    assert np.max(np.abs(out - NOTEBOOK_CONV)) < 1e-8
    x = np.linspace(-0.3, 0.4, 96).reshape(2, 3, 4, 4)
    out, _ = max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert np.max(np.abs(out - NOTEBOOK_POOL)) < 1e-8


def numeric_gradient(f, x, dout, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + h
        plus = f()
        x[index] = old - h
        minus = f()
        x[index] = old
        grad[index] = np.sum((plus - minus) * dout) / (2 * h)
    return grad


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 2), (3, 0)])
def test_conv_backward_matches_numeric_gradient(stride, pad):
    rng = np.random.default_rng(stride * 10 + pad)
    w = rng.standard_normal((2, 3, 3, 1 + stride))
    x = rng.standard_normal((2, 3, input_size(3, 3, stride, pad), input_size(2, 1 + stride, stride, pad)))
    b = rng.standard_normal(2)
    param = {"stride": stride, "pad": pad}
    out, cache = conv_forward_naive(x, w, b, param)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward_naive(dout, cache)
    forward = lambda: conv_forward_naive(x, w, b, param)[0]
    np.testing.assert_allclose(dx, numeric_gradient(forward, x, dout), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, numeric_gradient(forward, w, dout), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numeric_gradient(forward, b, dout), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ph,pw,stride", [(2, 2, 2), (3, 2, 1), (2, 3, 2)])
def test_max_pool_backward_matches_numeric_gradient(ph, pw, stride):
    x = distinct_values((2, 2, input_size(3, ph, stride, 0), input_size(4, pw, stride, 0)), seed=ph * 7 + pw)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = max_pool_forward_naive(x, param)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx = max_pool_backward_naive(dout, cache)
    forward = lambda: max_pool_forward_naive(x, param)[0]
    np.testing.assert_allclose(dx, numeric_gradient(forward, x, dout, h=1e-5), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: conv_forward_naive(np.zeros((3, 4, 4)), np.zeros((1, 3, 3, 3)), np.zeros(1), {"stride": 1, "pad": 1}), "x must be 4-dimensional"),
        (lambda: conv_forward_naive(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 3, 3)), np.zeros(1), {"stride": 1, "pad": 1}), "w has 3 channels but x has 2"),
        (lambda: conv_forward_naive(np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 3, 3)), np.zeros(1), {"stride": 1, "pad": 1}), "b has 1 entries but w has 2"),
        (lambda: conv_forward_naive(np.zeros((1, 3, 6, 6)), np.zeros((1, 3, 3, 3)), np.zeros(1), {"stride": 2, "pad": 0}), "does not tile"),
        (lambda: conv_forward_naive(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 3, 3)), np.zeros(1), {"stride": 0, "pad": 1}), "stride'] must be an integer >= 1"),
        (lambda: conv_forward_naive(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 3, 3)), np.zeros(1), {"stride": -1, "pad": 1}), "stride'] must be an integer >= 1"),
        (lambda: max_pool_forward_naive(np.zeros((1, 1, 5, 4)), {"pool_height": 2, "pool_width": 2, "stride": 2}), "height 5"),
        (lambda: max_pool_forward_naive(np.zeros((1, 1, 4, 4)), {"pool_height": 2, "stride": 2}), "missing 'pool_width'"),
        (lambda: im2col_indices(np.zeros((1, 1, 4, 4)), 6, 2, padding=0), "field height 6 is larger"),
        (lambda: col2im_indices(np.zeros((4, 3)), (1, 1, 2, 2), 2, 2, padding=0), "cols must have shape (4, 1)"),
    ],
)
def test_bad_input_raises_value_error_naming_the_sizes(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)
