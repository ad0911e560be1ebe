"""Inverted dropout: dropout_forward(x, dropout_param) and dropout_backward(dout, cache).

The mask is random, so the forward is not compared with the reference value by
value: its properties are checked instead (see Properties in model.py: the engine
has made sure out is a finite float64 array of x's shape before they are). Test mode
returns x exactly; train mode keeps a fraction p of the units (the keep
probability) within a statistical bound, the kept ones equal x / p, and the same
seed gives the same output. x is drawn away from zero, so a zero output means a
dropped unit, and large enough (a few hundred units) for the bound to separate p
from 1 - p; option dims gives x 1 to 4 axes (the starter code: "x: input data, of
any shape"). The backward gets the student's own cache (its layout is theirs) and
must return what the course's backward returns for the units their forward kept
(out != 0): dout / p there and 0 elsewhere in train mode, dout in test mode.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from gradeconv.specs import randomness
from gradeconv.specs.domains import AwayFromZero
from gradeconv.specs.model import (Array, Equal, Function, Layer, Mistake, Option, Param, Properties, Restriction,
                                   Var, Violation)
from reference import layers

#: how many standard deviations the kept fraction may stray from p
SIGMAS = 5.0
KEEP = "p is the probability of keeping a unit (mask = np.random.rand(*x.shape) < p), not of dropping it"
INVERT = "inverted dropout divides the kept units by p in train mode (out = x * mask / p), so test mode needs no scaling"
SEED = ("call np.random.seed(dropout_param['seed']) before drawing the mask when the seed is given, so the "
        "same seed gives the same mask")
TEST_IDENTITY = "in test mode dropout returns x unchanged: no mask and no scaling"
RANDOM = ("draw the mask from numpy's generator after seeding it: np.random.seed(dropout_param['seed']), then "
          "mask = (np.random.rand(*x.shape) < p) / p (no pattern, block or shift of your own)")


ANY_SHAPE = ("x may have any shape (the starter code says so): draw the mask with np.random.rand(*x.shape), "
             "not np.random.rand(N, D)")


def x_shape(n: int, d: int, dims: int) -> tuple[int, ...]:
    """x's shape with `dims` axes and about n * d units, the last axis d long (a row of units)."""
    return {1: (n * d,), 2: (n, d), 3: (n, 2, d), 4: (n, 2, 2, d)}[dims]


def _failure(message, hints=()) -> Violation:
    return Violation(message, tuple(hints), output="out")


def kept_bound(p: float, size: int) -> float:
    """How far the kept fraction of `size` independent units may stray from p."""
    return SIGMAS * math.sqrt(p * (1 - p) / size) + 1.0 / size


def forward_properties(values, got, call_again):
    """None when the student's out (a finite float64 array of x's shape) has dropout's properties, else
    what is wrong: a Violation, an Equal (test mode), or the failure of a call made again."""
    x, p, mode = values.inputs["x"], float(values.variables["p"]), values.variables["mode"]
    out = got["out"]
    if mode == "test":
        hints = [TEST_IDENTITY]
        if np.allclose(out, x * p):
            hints.append("test mode must not multiply by p: with inverted dropout the scaling is done in train mode")
        elif np.any(out == 0):
            hints.append("test mode must not drop units")
        return Equal("out", x, "in test mode out must equal x", tuple(hints))
    failure = _train_mask(out, x, p)
    if failure:
        return failure
    failure, again = call_again()
    if failure:
        return failure
    if not np.array_equal(again["out"], out):
        return _failure("two calls with the same dropout_param['seed'] gave different outputs: the mask is not "
                        "reproducible", [SEED])
    failure, other = call_again(seed=int(values.variables["mask_seed"]) + 1)
    if failure:
        return failure
    failure = _train_mask(other["out"], x, p)
    if failure:  # another seed must give another mask of the same kind, not just anything else
        return replace(failure, message="with another dropout_param['seed']: " + failure.message)
    if np.array_equal(other["out"] != 0, out != 0):
        return _failure("another dropout_param['seed'] gave the same mask: the mask must be drawn at random from "
                        "the seed", [SEED])
    why = randomness.seed_pattern(out != 0, other["out"] != 0, p)
    if why:
        return _failure(f"{why} (seeds {int(values.variables['mask_seed'])} and "
                        f"{int(values.variables['mask_seed']) + 1})", [RANDOM])
    return None


def _train_mask(out: np.ndarray, x: np.ndarray, p: float):
    """The violation when train mode's out is not x / p on a random-looking fraction p of units, else None."""
    kept = out != 0
    fraction = float(kept.mean())
    bound = kept_bound(p, out.size)
    if abs(fraction - p) > bound:
        hints = [KEEP] if abs(fraction - (1 - p)) <= bound else []
        return _failure(f"train mode kept {fraction:.1%} of the {out.size} units, expected about p = {p:.0%} "
                        f"(at most {bound:.1%} away)", hints)
    ratio = out[kept] / x[kept]
    if not np.allclose(ratio, 1 / p, rtol=1e-6, atol=0):
        if np.allclose(ratio, 1.0, rtol=1e-6, atol=0):
            return _failure("train mode kept units equal x, expected x / p (not inverted)", [INVERT])
        hints = [KEEP] if np.allclose(ratio, 1 / (1 - p), rtol=1e-6, atol=0) else []
        index = int(np.argmax(np.abs(ratio - 1 / p)))
        return _failure(f"train mode kept units must equal x / p = x * {1 / p:.6g}; one is "
                        f"x * {ratio[index]:.6g}", hints)
    return _random_looking(kept, p)


def _random_looking(kept: np.ndarray, p: float):
    """A violation when the kept units follow a pattern no random mask would: one mask for every sample,
    too many or too few runs (a Wald-Wolfowitz test), a period or a correlation between units, or
    samples whose masks are shifts of one another (gradeconv/specs/randomness.py)."""
    if kept.ndim >= 2 and kept.shape[0] > 1 and np.all(kept == kept[0]):
        return _failure("every sample got the same mask: draw one with x's full shape",
                        ["draw the mask with x's full shape: np.random.rand(*x.shape) < p"])
    flat = kept.ravel()
    size, count = flat.size, int(flat.sum())
    if count in (0, size):
        return None  # the kept-fraction check judged this already
    runs = 1 + int(np.count_nonzero(flat[1:] != flat[:-1]))
    mean = 1 + 2 * count * (size - count) / size
    variance = 2 * count * (size - count) * (2 * count * (size - count) - size) / (size ** 2 * (size - 1))
    if abs(runs - mean) > SIGMAS * math.sqrt(variance) + 1:
        return _failure(f"the kept units follow a pattern ({runs} runs of kept and dropped units where a random "
                        f"mask gives about {mean:.0f}): the mask must be random",
                        ["draw the mask with np.random.rand(*x.shape) < p"])
    why = randomness.serial_pattern(kept, p) or randomness.shifted_rows(kept, p)
    if why:
        return _failure(why, [RANDOM])
    return None


def backward_properties(values, own):
    """What the course's backward returns given the units the student's forward kept (out != 0; x is never 0):
    dout / p on them and 0 elsewhere in train mode, dout in test mode. Which units were kept is the
    student's own draw; how they were scaled is the forward's job, so a wrong scale is no standard for dx."""
    dout = values.upstream["dout"]
    if values.variables["mode"] == "test":
        return {"dx": dout}
    return {"dx": dout * (own["out"] != 0) / float(values.variables["p"])}


def _mask_without_scaling(values):
    """dx = dout * (mask as 0/1), the 1 / p left out: from the student's own forward when it passed."""
    own = values.own_outputs
    mask = own["out"] / values.inputs["x"] if own is not None else values.cache[1]
    return values.upstream["dout"] * (mask != 0)


def reproduce_properties(values, role: str) -> list[str]:
    """Lines that check the dropout properties on the reproduced call (out, or dx from the student's out)."""
    if role == "backward":
        if values.variables["mode"] == "test":
            return ["np.testing.assert_allclose(dx, dout, rtol=1e-06, atol=1e-08)  # test mode: dx = dout"]
        return [f"expected_dx = dout * (out != 0) / {float(values.variables['p'])!r}  # dout / p where your "
                "forward kept a unit",
                "np.testing.assert_allclose(dx, expected_dx, rtol=1e-06, atol=1e-08)"]
    if values.variables["mode"] == "test":
        return ["np.testing.assert_array_equal(out, x)  # test mode returns x unchanged"]
    p = float(values.variables["p"])
    bound = kept_bound(p, values.inputs["x"].size)
    return [
        "kept = out != 0",
        f"assert abs(kept.mean() - {p!r}) <= {bound!r}, f'kept {{kept.mean():.1%}} of the units, "
        f"expected about p = {p!r}'",
        f"np.testing.assert_allclose(out[kept], x[kept] / {p!r}, rtol=1e-06, atol=0)  # kept units are x / p",
        "again, _ = dropout_forward(x, dict(dropout_param))",
        "np.testing.assert_array_equal(again, out)  # the same seed gives the same mask",
        "other, _ = dropout_forward(x, dict(dropout_param, seed=dropout_param['seed'] + 1))",
        "try:  # the checks that see through fixed patterns (gradeconv/specs/randomness.py)",
        "    from gradeconv.specs import randomness",
        "except ImportError:",
        "    randomness = None",
        "if randomness is not None:",
        f"    for why in (randomness.serial_pattern(kept, {p!r}), randomness.shifted_rows(kept, {p!r}),",
        f"                randomness.serial_pattern(other != 0, {p!r}), "
        f"randomness.seed_pattern(kept, other != 0, {p!r})):",
        "        assert why is None, why",
    ]


DROPOUT = Layer(
    name="dropout",
    forward=Function("dropout_forward", ("out",), layers.dropout_forward, returns_cache=True),
    backward=(Function("dropout_backward", ("dx",), layers.dropout_backward, gradients={"dx": "x"}, mistakes=(
        Mistake("dx", "dx = dout * mask with the same mask as the forward, its 1 / p scaling included",
                _mask_without_scaling),)),),
    arguments=(Array("x", ("x_shape",), AwayFromZero(0.5, 2.0)),
               Param("dropout_param", {"p": Var("p"), "mode": Var("mode"), "seed": Var("mask_seed")})),
    ranges={"n": (8, 16), "d": (25, 40), "mask_seed": (0, 10_000)},
    minimum={"mask_seed": 0},
    options={"p": Option((0.3, 0.8, 0.5), between=(0.01, 1.0)), "mode": Option(("train", "test"), ("train", "test")),
             "dims": Option(2, (1, 2, 3, 4), flag=True)},
    derive=lambda v: {"x_shape": x_shape(v["n"], v["d"], v.get("dims", 2))},
    volume=("n", "d"),
    describe="x shape {x}, p {p}, mode {mode}, seed {mask_seed}",
    restrictions=(
        Restriction("mode = train", replace={"mode": "test"}),
        Restriction("mode = test", replace={"mode": "train"}, hint=TEST_IDENTITY, hint_unless="test mode"),
        Restriction("p != 0.5", replace={"p": 0.5}, hint=KEEP, hint_unless="keeping"),
        Restriction("x is not 2-D", replace={"dims": 2}, hint=ANY_SHAPE),
    ),
    properties=Properties(forward_properties, backward_properties, reproduce_properties),
)

LAYERS = (DROPOUT,)
