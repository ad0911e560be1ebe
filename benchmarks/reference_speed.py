"""Reference layer speed, as ratios measured side by side in one run.

Prints, for a CIFAR-like batch and a strided case:
  conv forward / its matrix product, conv backward / its two matrix products,
  np.add.at col2im / our col2im (how many times faster ours is).
Targets: forward <= 2x, backward <= 3x, col2im >= 3x faster than np.add.at.
The layers keep their temporaries between calls (reference/scratch.py), so the
targets are judged on repeated calls with one shape, as in a training loop; the
first call on a new shape, which pays the page faults of fresh memory, is
printed beside them.
"""
from __future__ import annotations

import timeit

import numpy as np

from reference.im2col import col2im_indices, get_im2col_indices, im2col_indices
from reference.layers import conv_backward_naive, conv_forward_naive
from reference.scratch import release

CASES = {
    "cifar N=50 C=3 32x32 F=32 3x3 s1 p1": ((50, 3, 32, 32), (32, 3, 3, 3), 1, 1),
    "strided N=50 C=16 31x31 F=32 5x5 s2 p1": ((50, 16, 31, 31), (32, 16, 5, 5), 2, 1),
}


def best(function, repeat: int = 15, setup=lambda: None) -> float:
    """Best wall time of one call, over `repeat` runs (the least disturbed one); setup is not timed."""
    return min(timeit.repeat(function, setup=setup, number=1, repeat=repeat))


def col2im_add_at(cols, x_shape, fh, fw, padding, stride):
    """The historic col2im, scattering with np.add.at."""
    n, c, h, w = x_shape
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    k, i, j = get_im2col_indices(x_shape, fh, fw, padding, stride)
    reshaped = cols.reshape(c * fh * fw, -1, n).transpose(2, 0, 1)
    np.add.at(padded, (slice(None), k, i, j), reshaped)
    return padded[:, :, padding : padding + h, padding : padding + w]


def measure(x_shape, w_shape, stride, pad) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    param = {"stride": stride, "pad": pad}
    f, _, fh, fw = w_shape
    out, cache = conv_forward_naive(x, w, b, param)
    dout = rng.standard_normal(out.shape)
    cols = im2col_indices(x, fh, fw, pad, stride)
    w_rows = w.reshape(f, -1)
    dout_rows = dout.transpose(1, 2, 3, 0).reshape(f, -1)
    dx_cols = w_rows.T @ dout_rows
    assert np.allclose(col2im_add_at(dx_cols, x_shape, fh, fw, pad, stride),
                       col2im_indices(dx_cols, x_shape, fh, fw, pad, stride))
    forward = best(lambda: conv_forward_naive(x, w, b, param))
    forward_matmul = best(lambda: w_rows @ cols)
    first_forward = best(lambda: conv_forward_naive(x, w, b, param), setup=release)
    first_backward = best(lambda: conv_backward_naive(dout, cache), setup=release)
    backward = best(lambda: conv_backward_naive(dout, cache))
    backward_matmuls = best(lambda: (dout_rows @ cols.T, w_rows.T @ dout_rows))
    ours = best(lambda: col2im_indices(dx_cols, x_shape, fh, fw, pad, stride))
    add_at = best(lambda: col2im_add_at(dx_cols, x_shape, fh, fw, pad, stride), repeat=3)
    return {
        "forward / matmul": forward / forward_matmul,
        "backward / matmuls": backward / backward_matmuls,
        "col2im speed-up vs np.add.at": add_at / ours,
        "first call: forward / matmul": first_forward / forward_matmul,
        "first call: backward / matmuls": first_backward / backward_matmuls,
        "forward ms": forward * 1e3,
        "backward ms": backward * 1e3,
    }


def main() -> None:
    targets = {"forward / matmul": ("<=", 2.0), "backward / matmuls": ("<=", 3.0),
               "col2im speed-up vs np.add.at": (">=", 3.0)}
    for name, case in CASES.items():
        print(name)
        for metric, value in measure(*case).items():
            target = targets.get(metric)
            verdict = ""
            if target:
                op, limit = target
                met = value <= limit if op == "<=" else value >= limit
                verdict = f"  (target {op} {limit}: {'met' if met else 'MISSED'})"
            print(f"  {metric:32s} {value:8.2f}{verdict}")


if __name__ == "__main__":
    main()
