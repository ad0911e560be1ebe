"""The conv and pool specs' known window mistakes: each formula is exactly what its bug computes, a correct
layer matches none of them, and the triggers tell apart formulas that agree on a tiny smallest case.

Fast: the planted bugs run in this process on drawn cases (no sandbox); grading the mutants is
tests/test_diagnosis_rate.py's job.
"""
from __future__ import annotations

import types

import numpy as np
import pytest

from gradeconv import outcomes
from gradeconv.judging import diagnosis
from gradeconv.results import CaseResult
from gradeconv.specs import function, windows
from tests.diagnosis_catalog import MUTANTS, mutant_source

#: mutants of the loop solution whose wrong output is one declared formula: (mutant, function, output, hint)
PLANTED = [
    ("loops_conv_dx_assign", "conv_backward_naive", "dx", windows.ACCUMULATE),
    ("loops_conv_dw_assign", "conv_backward_naive", "dw", windows.ACCUMULATE),
    ("loops_conv_forward_pad_plus_one", "conv_forward_naive", "out", windows.PAD_WIDTH),
    ("loops_conv_forward_pad_one_side", "conv_forward_naive", "out", windows.PAD_WIDTH),
    ("loops_conv_forward_pad_after_only", "conv_forward_naive", "out", windows.PAD_WIDTH),
    ("loops_conv_backward_pad_plus_one", "conv_backward_naive", "dx", windows.PAD_WIDTH),
    ("loops_conv_backward_pad_plus_one", "conv_backward_naive", "dw", windows.PAD_WIDTH),
    ("loops_conv_backward_crop_one_side", "conv_backward_naive", "dx", windows.CROP_WIDTH),
    ("loops_conv_backward_crop_far_side", "conv_backward_naive", "dx", windows.CROP_WIDTH),
    ("loops_conv_forward_no_stride", "conv_forward_naive", "out", windows.STRIDE),
    ("loops_pool_forward_no_stride", "max_pool_forward_naive", "out", windows.STRIDE),
    ("loops_pool_backward_no_stride", "max_pool_backward_naive", "dx", windows.STRIDE),
]
CONV = [(2, 3, 2, 5, 7, 3, 2, 2, 1), (2, 2, 3, 6, 5, 2, 3, 1, 2), (1, 2, 2, 5, 5, 3, 3, 2, 2), (2, 2, 2, 7, 4, 3, 2, 2, 1)]  # n c f h w fh fw s pad
POOL = [(2, 2, 5, 7, 3, 2, 2), (1, 3, 6, 6, 2, 2, 2), (2, 1, 7, 5, 3, 3, 2)]  # n c h w fh fw stride


def _module(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "layers.py", "exec"), namespace)
    return namespace


CORRECT = _module(mutant_source("loops", []))


def _values(name: str, sizes, rng):
    """What a Mistake formula reads, for one drawn case, with the correct layer's answers."""
    if name.startswith("conv"):
        n, c, f, h, w, fh, fw, stride, pad = sizes
        inputs = {"x": rng.standard_normal((n, c, h, w)), "w": rng.standard_normal((f, c, fh, fw)),
                  "b": rng.standard_normal(f)}
        arguments = (inputs["x"], inputs["w"], inputs["b"], {"stride": stride, "pad": pad})
        variables = {"stride": stride, "pad": pad, "field_h": fh, "field_w": fw}
    else:
        n, c, h, w, fh, fw, stride = sizes
        inputs = {"x": rng.permutation(n * c * h * w).reshape(n, c, h, w) * 0.01}
        arguments = (inputs["x"], {"pool_height": fh, "pool_width": fw, "stride": stride})
        variables = {"stride": stride, "field_h": fh, "field_w": fw}
    forward = CORRECT[name.replace("backward", "forward")]
    out, _ = forward(*arguments)
    return types.SimpleNamespace(inputs=inputs, variables=variables, reference_outputs={"out": out},
                                 upstream={"dout": rng.standard_normal(out.shape)}), arguments


def _outputs(module: dict, name: str, values, arguments) -> dict:
    forward = module[name.replace("backward", "forward")]
    out, cache = forward(*arguments)
    if "forward" in name:
        return {"out": out}
    got = module[name](values.upstream["dout"], cache)
    return dict(zip(function(name).outputs, got if isinstance(got, tuple) else (got,)))


def _matching(name: str, output: str, got: np.ndarray, values) -> set[str]:
    found = set()
    for mistake in function(name).mistakes:
        if mistake.output != output:
            continue
        try:
            wrong = mistake.compute(values)
        except Exception:
            continue
        if wrong.shape == got.shape and np.allclose(wrong, got, atol=1e-8):
            found.add(mistake.hint)
    return found


@pytest.mark.parametrize("mutant,name,output,hint", PLANTED, ids=[f"{p[0]}-{p[2]}" for p in PLANTED])
def test_each_planted_bug_is_exactly_one_of_its_functions_formulas(mutant, name, output, hint):
    _, base, edits, _ = next(m for m in MUTANTS if m[0] == mutant)
    module = _module(mutant_source(base, edits))
    rng = np.random.default_rng(3)
    for sizes in CONV if name.startswith("conv") else POOL:
        values, arguments = _values(name, sizes, rng)
        got = _outputs(module, name, values, arguments)[output]
        assert hint in _matching(name, output, got, values), sizes


@pytest.mark.parametrize("name", ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
                                  "max_pool_backward_naive"])
def test_a_correct_layer_matches_no_formula(name):
    """On cases where every formula is a real mistake (stride > 1, pad > 0: with stride 1 ignoring it is right)."""
    rng = np.random.default_rng(4)
    cases = [s for s in CONV if s[-2] > 1 and s[-1] > 0] if name.startswith("conv") else [s for s in POOL if s[-1] > 1]
    assert len(cases) >= 2
    for sizes in cases:
        values, arguments = _values(name, sizes, rng)
        for output, got in _outputs(CORRECT, name, values, arguments).items():
            assert _matching(name, output, got, values) == set(), (sizes, output)


def test_triggers_tell_apart_formulas_that_agree_on_a_tiny_case():
    """x 1x1, pad 1, stride 2: a stride ignored and a pad + 1 give the same output; the trigger decides."""
    failure = CaseResult(outcomes.WRONG_VALUE, "out is wrong", output="out", hints=(windows.PAD_WIDTH, windows.STRIDE))
    stride_bug = diagnosis.Found([windows.NEEDS_STRIDE], ruled_out=[windows.NEEDS_PAD])
    pad_bug = diagnosis.Found([], ruled_out=[windows.NEEDS_STRIDE])
    one_side = diagnosis.Found([windows.NEEDS_PAD], ruled_out=[windows.NEEDS_STRIDE])
    said = lambda found: list(dict.fromkeys(diagnosis.hints(failure, "conv_forward_naive", found)))  # noqa: E731
    assert said(stride_bug) == [windows.STRIDE]
    assert said(pad_bug) == [windows.PAD_WIDTH]
    assert said(one_side) == [windows.PAD_WIDTH]
    # without triggers (a test of explicit cases only) every matching formula is said
    assert said([]) == [windows.PAD_WIDTH, windows.STRIDE]


def test_a_trigger_no_mistake_needs_contradicts_none():
    """N > 1 is needed by no formula: finding it (say, by a search that missed) keeps every hint."""
    failure = CaseResult(outcomes.WRONG_VALUE, "dx is wrong", output="dx", hints=(windows.ACCUMULATE,))
    found = diagnosis.Found(["N > 1"])
    assert windows.ACCUMULATE in diagnosis.hints(failure, "conv_backward_naive", found)


def test_every_mistake_needs_a_trigger_its_layer_can_find():
    from gradeconv.specs import LAYERS

    for layer in LAYERS:
        known = {restriction.trigger for restriction in layer.restrictions}
        for graded in layer.functions:
            for mistake in graded.mistakes:
                assert not mistake.needs or mistake.needs in known, (layer.name, mistake.needs)
                assert mistake.output in graded.outputs or "[" in mistake.output or mistake.output in (
                    entry for param in layer.params for entry in param.updated), (graded.name, mistake.output)
