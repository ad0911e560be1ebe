"""Every layer spec, checked as data: its cases are valid, its wiring matches its reference's gradients.

These run on the specs alone (no sandbox): a spec whose drawn cases break the
reference, whose gradients are declared against the wrong inputs, or whose
upstream gradients come in the wrong order fails here, for every layer the
registry holds, including those added later.
"""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gradeconv import rubric as rubrics
from gradeconv import specs
from gradeconv.judging.cases import build, cases, from_explicit, space_of

FUNCTIONS = sorted(specs.FUNCTIONS)
#: layers whose functions are called more than once per case (update rules, models): checked in their own tests
PLAIN = [name for name in FUNCTIONS if specs.layer_of(name).steps is None and specs.layer_of(name).network is None]
BACKWARDS = [name for name in PLAIN
             if specs.layer_of(name).role(specs.function(name)) == "backward" and not specs.layer_of(name).properties]
LOSSES = [name for name in FUNCTIONS if specs.function(name).loss]


def numeric_gradient(objective, value: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        step = np.zeros_like(value)
        step[index] = h
        grad[index] = (objective(value + step) - objective(value - step)) / (2 * h)
    return grad


@pytest.mark.parametrize("function", PLAIN)
@settings(max_examples=25, deadline=None)  # health checks on: a strategy that filters would fail them
@given(data=st.data())
def test_every_drawn_case_is_valid(function, data):
    layer = specs.layer_of(function)
    case = data.draw(cases(function, space_of(layer, {})))
    values = build(case)
    assert set(values.reference_outputs) == set(layer.forward.outputs)
    for output in values.reference_outputs.values():
        assert output.dtype == np.float64 and np.all(np.isfinite(output))
    for name, array in values.inputs.items():
        shape = case.shape(next(a for a in layer.arrays if a.name == name))
        assert array.shape == shape
    assert case.describe() and case.as_dict()["seed"] == case.seed
    explicit = from_explicit(function, case.as_dict())  # a counterexample can be pasted into a rubric
    assert build(explicit).inputs.keys() == values.inputs.keys()
    for backward in layer.backward:
        returned = values.reference_backward(backward)
        assert set(returned) == set(backward.outputs)
        for name, gradient in returned.items():
            assert gradient.shape == values.inputs[backward.gradients[name]].shape


@pytest.mark.parametrize("function", BACKWARDS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_declared_gradients_are_the_reference_forwards_gradients(function, data):
    """Each backward output is d<forward outputs, upstream>/d(the input the spec says), numerically."""
    layer, backward = specs.FUNCTIONS[function]
    values = build(data.draw(cases(function, space_of(layer, {}))))
    returned = values.reference_backward(backward)
    for name, input_name in backward.gradients.items():
        def objective(value):
            outputs = values.reference_forward({input_name: value})
            return sum(np.sum(outputs[out] * values.upstream[f"d{out}"]) for out in layer.forward.outputs)
        numeric = numeric_gradient(objective, values.inputs[input_name])
        np.testing.assert_allclose(returned[name], numeric, rtol=1e-5, atol=1e-6, err_msg=f"{function} {name}")


@pytest.mark.parametrize("function", LOSSES)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_a_loss_returns_its_own_gradient(function, data):
    layer, loss = specs.FUNCTIONS[function]
    values = build(data.draw(cases(function, space_of(layer, {}))))
    for name, input_name in loss.gradients.items():
        numeric = numeric_gradient(lambda value: float(values.reference_forward({input_name: value})["loss"]),
                                   values.inputs[input_name])
        np.testing.assert_allclose(values.reference_outputs[name], numeric, rtol=1e-5, atol=1e-6)


MISTAKES = [(name, number) for name in PLAIN for number, _ in enumerate(specs.function(name).mistakes)]


#: conventions the bundled rubrics leave out (they grade the course's current ones) but a rubric may choose
OTHER_CONVENTIONS = {"spatial_groupnorm_forward": {"affine_shape": "vector"},
                     "spatial_groupnorm_backward": {"affine_shape": "vector"}}


def spaces_of(function: str) -> list:
    """The layer's default space, every space a bundled rubric draws this function's cases from and
    the other conventions a rubric may choose, each split into one space per combination of the
    option values it draws among."""
    found = [space_of(specs.layer_of(function), {})]
    if function in OTHER_CONVENTIONS:
        found.append(space_of(specs.layer_of(function), OTHER_CONVENTIONS[function]))
    for path in rubrics.bundled().values():
        found += [test.draw_space for test in rubrics.load(path).tests if test.function == function]
    split = []
    for space in found:
        drawn = {name: value for name, value in space.options.items() if isinstance(value, tuple)}
        split += [space.replaced(**dict(zip(drawn, combination))) for combination in itertools.product(*drawn.values())]
    return split


@pytest.mark.parametrize("function,number", MISTAKES)
def test_every_known_mistake_shows_in_a_bundled_space(function, number):
    """A mistake's formula differs from the right answer on some case the rubrics draw: else it explains nothing."""
    layer, graded = specs.FUNCTIONS[function]
    mistake = graded.mistakes[number]
    differs = []

    def probe(case):
        values = build(case)
        if layer.role(graded) == "forward":
            right = {**values.reference_outputs, **values.reference_updates}
        else:
            right = values.reference_backward(graded)
        with np.errstate(all="ignore"):
            try:
                wrong = np.asarray(mistake.compute(values), dtype=float)
            except Exception:  # a formula that does not apply to this case
                return
        expected = right[mistake.output]
        if wrong.size == 0 < expected.size:  # the spec's way of saying "does not apply to this case"
            return
        differs.append(wrong.shape != expected.shape or not np.allclose(wrong, expected, atol=1e-8))

    for space in spaces_of(function):
        settings(max_examples=8, deadline=None, database=None, derandomize=True)(
            given(case=cases(function, space))(probe))()
    assert any(differs), f"{function}: mistake {mistake.hint!r} equals the reference on every drawn case"


@pytest.mark.parametrize("function", [name for name in FUNCTIONS if specs.layer_of(name).forward.name == name])
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_a_domains_source_draws_the_very_values_it_samples(function, data):
    """Reproductions draw large inputs again from the seed with each domain's source: it must match sample."""
    layer = specs.layer_of(function)
    case = data.draw(cases(function, space_of(layer, {})))
    values = build(case)
    sources = [array.values.source(case.shape(array), values.variables) for array in layer.arrays]
    if not all(sources):
        return  # such a layer's reproductions write its inputs out
    namespace = {"np": np, "rng": np.random.default_rng(case.seed)}
    for array, source in zip(layer.arrays, sources):
        np.testing.assert_array_equal(eval(source, namespace), values.inputs[array.name], err_msg=source)
