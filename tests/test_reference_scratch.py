"""The large-input paths of the reference: kept scratch memory and stride-phase splitting.

Small inputs, which every other reference test draws, take neither path, so
here both are forced on at any size and the results checked against loops.
"""
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings

from reference import im2col, scratch
from reference.layers import conv_backward_naive, conv_forward_naive
from tests import loops
from tests.test_reference import conv_geometries


@contextmanager
def large_input_paths():
    """Keep scratch memory and split by stride phase whatever the size; poison what is kept."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scratch, "KEEP_FROM_BYTES", 0)
        patch.setattr(im2col, "SPLIT_FROM_BYTES", 0)
        yield
    scratch.release()


def poison_kept_buffers():
    """Fill every kept buffer with NaNs, so a value not overwritten shows up."""
    for buffer in scratch.kept().values():
        buffer.fill(0xFF)


def random_conv(case):
    x_shape, w_shape, stride, pad, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    return x, w, b, stride, pad, rng


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(conv_geometries())
def test_conv_on_the_large_input_paths_matches_loops(case):
    x, w, b, stride, pad, rng = random_conv(case)
    with large_input_paths():
        poison_kept_buffers()
        out, cache = conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
        np.testing.assert_allclose(out, loops.conv_forward(x, w, b, stride, pad), rtol=1e-10, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        poison_kept_buffers()
        got = conv_backward_naive(dout, cache)
    for value, expected in zip(got, loops.conv_backward(dout, x, w, stride, pad)):
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(conv_geometries())
def test_im2col_split_by_stride_phase_matches_loops(case):
    x_shape, (_, _, fh, fw), stride, pad, seed = case
    x = np.random.default_rng(seed).standard_normal(x_shape)
    with large_input_paths():
        cols = im2col.im2col_indices(x, fh, fw, padding=pad, stride=stride)
    np.testing.assert_array_equal(cols, loops.im2col(x, fh, fw, pad, stride))


def test_results_never_share_memory_with_kept_scratch():
    case = ((2, 3, 7, 5), (4, 3, 3, 3), 2, 1, 7)
    x, w, b, stride, pad, rng = random_conv(case)
    param = {"stride": stride, "pad": pad}
    with large_input_paths():
        out, cache = conv_forward_naive(x, w, b, param)
        grads = conv_backward_naive(np.ones(out.shape), cache)
        kept = [value.copy() for value in (out, *grads)]
        other, other_cache = conv_forward_naive(-x, -w, b + 1, param)
        conv_backward_naive(rng.standard_normal(other.shape), other_cache)
    for value, copy in zip((out, *grads), kept):
        np.testing.assert_array_equal(value, copy)


def test_threads_keep_separate_scratch():
    cases = [random_conv(((3, 2, 9, 9), (4, 2, 3, 3), 2, 1, seed)) for seed in range(4)]
    expected = [loops.conv_forward(x, w, b, stride, pad) for x, w, b, stride, pad, _ in cases]
    failures = []

    def run(index):
        x, w, b, stride, pad, _ = cases[index]
        for _ in range(200):
            out, _ = conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
            if not np.allclose(out, expected[index]):
                failures.append(index)
                return

    with large_input_paths():
        threads = [threading.Thread(target=run, args=(index,)) for index in range(len(cases))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_scratch_keeps_only_buffers_in_its_size_range(monkeypatch):
    monkeypatch.setattr(scratch, "KEEP_FROM_BYTES", 64)
    monkeypatch.setattr(scratch, "KEEP_AT_MOST_BYTES", 1024)
    scratch.release()
    try:
        kept = scratch.scratch("slot", (10, 10), np.float64)  # 800 bytes: kept
        assert np.shares_memory(kept, scratch.scratch("slot", (5, 4), np.float64))
        assert not np.shares_memory(kept, scratch.scratch("other", (10, 10), np.float64))
        for shape in ((4,), (200,)):  # 32 bytes and 1600 bytes: allocated per call
            first, second = scratch.scratch("slot", shape, np.float64), scratch.scratch("slot", shape, np.float64)
            assert not np.shares_memory(first, second) and first.shape == shape
    finally:
        scratch.release()


def test_a_large_strided_conv_takes_both_paths_unforced_and_matches_loops():
    scratch.release()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 9, 63, 63))  # over 1 MiB: split by stride phase
    w, b = rng.standard_normal((2, 9, 3, 3)), rng.standard_normal(2)
    assert x.nbytes >= im2col.SPLIT_FROM_BYTES
    try:
        out, cache = conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
        assert {"cols", "padded"} <= set(scratch.kept())  # columns of 2.6 MB are kept
        np.testing.assert_allclose(out, loops.conv_forward(x, w, b, 2, 1), rtol=1e-10, atol=1e-12)
        dout = rng.standard_normal(out.shape)
        got = conv_backward_naive(dout, cache)
        for value, expected in zip(got, loops.conv_backward(dout, x, w, 2, 1)):
            np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)
    finally:
        scratch.release()
