"""The classification losses: svm_loss and softmax_loss, each returning (loss, dx) from one call.

Scores may be large: option `offset` moves them all (a softmax without the max
subtracted overflows there, and the case shows it, while the probabilities stay
those of moderate scores), option `scale` spreads them, option `spread` moves
each row by its own multiple of it (a softmax that subtracts the max of all
scores instead of each row's gets an infinite loss there).
"""
from __future__ import annotations

import numpy as np

from gradeconv.specs.domains import Integers, Normal
from gradeconv.specs.model import Array, Function, Layer, Mistake, Option, Restriction
from reference import layers


def _svm_counting_correct_class(values) -> np.ndarray:
    """The hinge loss with the correct class's own margin (always 1) counted too."""
    return np.asarray(values.reference_outputs["loss"] + 1.0)


def _softmax_unstable(values) -> np.ndarray:
    """The loss computed without subtracting the row max: overflows to inf or nan on large scores."""
    x, y = values.inputs["x"], values.inputs["y"]
    with np.errstate(all="ignore"):
        exp = np.exp(x)
        probs = exp / exp.sum(axis=1, keepdims=True)
        return np.asarray(-np.mean(np.log(probs[np.arange(x.shape[0]), y])))


def _softmax_dx_unstable(values) -> np.ndarray:
    x, y = values.inputs["x"], values.inputs["y"]
    with np.errstate(all="ignore"):
        exp = np.exp(x)
        probs = exp / exp.sum(axis=1, keepdims=True)
    probs[np.arange(x.shape[0]), y] -= 1
    return probs / x.shape[0]


def _not_averaged(output: str):
    """The loss or dx summed over the samples instead of averaged."""
    def compute(values) -> np.ndarray:
        return np.asarray(values.reference_outputs[output] * values.inputs["x"].shape[0])
    return compute


STABILITY = "subtract each row's max score before np.exp: large scores overflow otherwise"
ROW_MAX = ("subtract each row's own max (np.max(x, axis=1, keepdims=True)), not the largest score of all: "
           "rows far below it underflow to a probability of 0")
AVERAGE = "average the loss (and dx) over the N samples"
CLASSES = (Array("x", ("n", "c"), Normal("scale", "offset", "spread")), Array("y", ("n",), Integers("c")))
SCALES = {"scale": Option(1.0, between=(1e-3, 1e6)), "offset": Option(0.0, between=(-1e6, 1e6)),
          "spread": Option(0.0, between=(0.0, 1e6), flag=True)}

SVM = Layer(
    name="svm_loss",
    forward=Function("svm_loss", ("loss", "dx"), layers.svm_loss, gradients={"dx": "x"}, loss=True, mistakes=(
        Mistake("loss", "skip the correct class j == y[i] in the hinge sum: its margin is always 1",
                _svm_counting_correct_class, note=" (exactly 1 too much: the correct class's margin is counted)"),
        Mistake("loss", AVERAGE, _not_averaged("loss")),
        Mistake("dx", AVERAGE, _not_averaged("dx")),
    )),
    arguments=CLASSES,
    ranges={"n": (1, 4), "c": (2, 5)},
    minimum={"c": 2},
    options=SCALES,
    restrictions=(Restriction("N > 1", replace={"n": (1, 1)}, hint=AVERAGE),),
)

SOFTMAX = Layer(
    name="softmax_loss",
    forward=Function("softmax_loss", ("loss", "dx"), layers.softmax_loss, gradients={"dx": "x"}, loss=True,
                     mistakes=(Mistake("loss", STABILITY, _softmax_unstable),
                               Mistake("dx", STABILITY, _softmax_dx_unstable),
                               Mistake("loss", AVERAGE, _not_averaged("loss")),
                               Mistake("dx", AVERAGE, _not_averaged("dx")))),
    arguments=CLASSES,
    ranges={"n": (1, 4), "c": (2, 5)},
    minimum={"c": 2},
    options=SCALES,
    restrictions=(Restriction("N > 1", replace={"n": (1, 1)}, hint=AVERAGE),
                  Restriction("rows sit at very different offsets", replace={"spread": 0.0}, hint=ROW_MAX)),
)

LAYERS = (SVM, SOFTMAX)
