"""Test cases: variables drawn by Hypothesis from a space, values built from a seed.

A case is a layer's variables (sizes, modes) and a value seed. Its arrays are
drawn from the seed in the layer's declared order and domains, then the
reference runs once on them; the upstream gradients a backward consumes are
drawn last, in the shapes of the reference's outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from gradeconv.specs import layer_of
from gradeconv.specs.model import REQUIRED, Array, Layer, Option, Param, Var


@dataclass(frozen=True)
class Space:
    """Where a test's cases are drawn from: integer ranges and option values (a tuple is drawn among)."""

    ranges: dict[str, tuple[int, int]]
    options: dict[str, Any]

    def range(self, name: str) -> tuple[int, int]:
        return self.ranges[name]

    def option(self, name: str) -> Any:
        """The option's value; the first when the space allows several."""
        value = self.options[name]
        return value[0] if isinstance(value, tuple) else value

    def replaced(self, **values: Any) -> "Space":
        ranges, options = dict(self.ranges), dict(self.options)
        for name, value in values.items():
            (ranges if name in ranges else options)[name] = value
        return Space(ranges, options)


def space_of(layer: Layer, given: dict[str, Any]) -> Space:
    """The layer's default space with a rubric's `space:` mapping applied (see validate_space)."""
    ranges = dict(layer.ranges)
    options = {name: option.default for name, option in layer.options.items()}
    for name, value in given.items():
        if name in ranges:
            ranges[name] = tuple(value)
        else:
            options[name] = tuple(value) if isinstance(value, list) else value
    return Space(ranges, options)


def validate_space(layer: Layer, given: dict[str, Any]) -> None:
    """Raise ValueError naming the key when a rubric's space does not fit the layer."""
    for name, value in given.items():
        if name in layer.ranges:
            low = layer.minimum.get(name, 1)
            if (not isinstance(value, (list, tuple)) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                raise ValueError(f"{name}: a range is two integers [low, high], got {value!r}")
            if value[0] < low:
                raise ValueError(f"{name}: must be >= {low}")
            if value[0] > value[1]:
                raise ValueError(f"{name}: range [{value[0]}, {value[1]}] is empty: "
                                 "the first number must be <= the second")
        elif name in layer.options:
            _check_option(name, layer.options[name], value)
        else:
            allowed = ", ".join([*layer.ranges, *layer.options])
            raise ValueError(f"{name}: unknown key; allowed here: {allowed}")


def _check_option(name: str, option: Option, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{name}: give at least one value")
    for item in values:
        if option.choices is not None and item not in option.choices:
            raise ValueError(f"{name}: must be one of {list(option.choices)}, got {item!r}")
        kind = type(option.default[0] if isinstance(option.default, tuple) else option.default)
        if option.choices is None and not (isinstance(item, kind) or kind is float and isinstance(item, int)):
            raise ValueError(f"{name}: must be a {kind.__name__}, got {item!r}")
        if option.between is not None and not option.between[0] <= item <= option.between[1]:
            raise ValueError(f"{name}: must be between {option.between[0]:g} and {option.between[1]:g}, got {item!r}")


@dataclass(frozen=True)
class Case:
    """One case of one function: its layer's variables and a value seed."""

    function: str
    variables: tuple[tuple[str, Any], ...]
    seed: int
    values: str = "random"

    @property
    def layer(self) -> Layer:
        return layer_of(self.function)

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.variables).get(name, default)

    @property
    def all_variables(self) -> dict[str, Any]:
        """The case's variables and those the layer derives from them."""
        variables = dict(self.variables)
        derive = self.layer.derive
        return {**variables, **derive(variables)} if derive else variables

    def shape(self, array: Array) -> tuple[int, ...]:
        """The array's shape in this case; a variable holding a tuple stands for several sizes."""
        variables = self.all_variables
        shape: list[int] = []
        for size in array.shape:
            value = size if isinstance(size, int) else variables[size]
            shape.extend(value if isinstance(value, tuple) else (int(value),))
        return tuple(shape)

    @property
    def size(self) -> tuple:
        """Smaller cases sort first: the minimal failing case is the smallest by this key."""
        layer, variables = self.layer, self.all_variables
        if layer.volume is not None:
            volume = prod(variables[name] for name in layer.volume)
        else:
            volume = sum(prod(self.shape(array)) for array in layer.arrays)
        order = layer.order if layer.order is not None else tuple(name for name, _ in self.variables)
        return (volume, *(variables[name] for name in order), self.seed)

    def describe(self) -> str:
        layer = self.layer
        shapes = {array.name: _shape_text(self.shape(array)) for array in layer.arrays}
        if layer.describe is not None:
            return layer.describe.format_map({**self.all_variables, **shapes})
        parts = [f"{array.name} shape {shapes[array.name]}" for array in layer.arrays]
        variables = self.all_variables  # an option a layer derives (the course's defaults) as used
        parts += [f"{name} {variables[name]}" for name, _ in self.variables if name in layer.options]
        return ", ".join(parts)

    def as_dict(self) -> dict:
        variables = {**dict(self.variables), "seed": self.seed}
        keys = self.layer.shown or (*(name for name, _ in self.variables), "seed")
        result = {key: variables[key] for key in keys if key in variables}
        if self.values != "random":
            result["values"] = self.values
        return result


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


@st.composite
def cases(draw, function: str, space: Space) -> Case:
    """A valid case of the function's layer from the space; nothing is filtered."""
    layer = layer_of(function)
    if layer.draw is not None:
        variables = layer.draw(draw, space)
    else:
        variables = {name: draw(st.integers(*space.range(name))) for name in layer.ranges}
        for name in layer.options:
            value = space.options[name]
            variables[name] = draw(st.sampled_from(value)) if isinstance(value, tuple) else value
    return Case(function, tuple(variables.items()), draw(st.integers(0, 2**31 - 1)))


def from_explicit(function: str, given: dict[str, Any]) -> Case:
    """The case a rubric spells out (validated by validate_explicit)."""
    layer = layer_of(function)
    variables = {name: given.get(name, default) for name, default in layer.case_variables.items()}
    return Case(function, tuple(variables.items()), given.get("seed", 0), given.get("values", "random"))


def validate_explicit(layer: Layer, given: dict[str, Any]) -> None:
    """Raise ValueError naming the key when an explicit case does not fit the layer."""
    allowed = layer.case_variables
    for name, value in given.items():
        if name == "seed":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError("seed: must be an integer >= 0")
        elif name == "values":
            if value not in ("random", *(("notebook",) if layer.notebook else ())):
                raise ValueError(f"values: must be random{' or notebook' if layer.notebook else ''}")
        elif name not in allowed:
            raise ValueError(f"{name}: unknown key; allowed here: {', '.join([*allowed, 'seed', 'values'])}")
        elif name in layer.options:
            _check_option(name, layer.options[name], value)
        elif not isinstance(value, int) or isinstance(value, bool) or value < layer.minimum.get(name, 1):
            raise ValueError(f"{name}: must be an integer >= {layer.minimum.get(name, 1)}")
    missing = [name for name, default in allowed.items() if default is REQUIRED and name not in given]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}: an explicit case gives every size")
    if layer.check is not None:
        problem = layer.check({name: given.get(name, default) for name, default in allowed.items()})
        if problem:
            raise ValueError(problem)


def restricted(space: Space, layer: Layer, restriction) -> Space | None:
    """The space narrowed by one restriction, or None when it is already that narrow or would be empty."""
    narrowed = dict(restriction.replace)
    for name, value in narrowed.items():  # a value option is narrowed among the test's values, never changed
        if name in layer.options and not layer.options[name].flag:
            current = space.options[name]
            if value not in (current if isinstance(current, tuple) else (current,)):
                return None
    for name, low in restriction.at_least.items():
        old_low, high = space.range(name)
        if high < low:
            return None
        narrowed[name] = (max(old_low, low), high)
    result = space.replaced(**narrowed)
    return None if result == space else result


@dataclass
class CaseValues:
    """The arrays of one case, the reference's answers on them, and the upstream gradients."""

    case: Case
    inputs: dict[str, np.ndarray]  # every array of the case by name, parameter arrays included
    variables: dict[str, Any]
    reference_outputs: dict[str, np.ndarray] = field(default_factory=dict)  # the forward's, by output name
    reference_updates: dict[str, np.ndarray] = field(default_factory=dict)  # entries it updated, by Param.entry
    cache: Any = None  # the reference forward's cache: the canonical one
    upstream: dict[str, np.ndarray] = field(default_factory=dict)  # "d" + output name, for backwards
    own_outputs: dict[str, np.ndarray] | None = None  # the student's forward outputs when a backward got their cache
    #: answers that depend on the case alone, worked out once for every submission of a batch:
    #: reference backward outputs, directional gradient probes (gradeconv/judging/runner.py)
    shared: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def layer(self) -> Layer:
        return self.case.layer

    def arguments(self, overrides: dict[str, np.ndarray] | None = None, wrap=None, entries: dict | None = None) -> list:
        """The forward's arguments; `overrides` replace inputs by name, `entries` parameter entries by key;
        wrap(array) marks parameter arrays."""
        overrides = overrides or {}
        result = []
        for argument in self.layer.arguments:
            if isinstance(argument, Array):
                result.append(overrides.get(argument.name, self.inputs[argument.name]))
            elif isinstance(argument, Var):
                result.append(self.variables[argument.name])
            else:
                param = self._param(argument, wrap)
                result.append({**param, **{key: value for key, value in (entries or {}).items() if key in param}})
        return result

    def _param(self, param: Param, wrap) -> dict:
        """A fresh dict every call: functions may update it (batchnorm's running averages)."""
        entries = {}
        for key, entry in param.given(self.variables).items():
            if isinstance(entry, Array):
                array = self.inputs[entry.name].copy()
                entries[key] = wrap(array) if wrap else array
            elif isinstance(entry, Var):
                entries[key] = self.variables[entry.name]
            else:
                entries[key] = entry
        return entries

    def reference_backward(self, function) -> dict[str, np.ndarray]:
        """What a correct `function` (a backward of this layer) returns on the canonical cache, by output name."""
        def work_out() -> dict[str, np.ndarray]:
            answer = outputs_of(function, function.reference(*self.upstream.values(), self.cache))
            for array in answer.values():
                if isinstance(array, np.ndarray):
                    array.setflags(write=False)
            return answer

        return dict(self.shared_answer(("backward", function.name), work_out))

    def shared_answer(self, key: tuple, work_out: Callable[[], Any]) -> Any:
        """The answer stored under key, worked out (and kept for every submission) on first use."""
        if key not in self.shared:
            self.shared[key] = work_out()
        return self.shared[key]

    def reference_forward(self, overrides: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The reference forward's outputs by name, on the case's inputs with `overrides`."""
        returned = self.layer.forward.reference(*self.arguments(overrides))
        return outputs_of(self.layer.forward, returned)


def outputs_of(function, returned) -> dict[str, np.ndarray]:
    """A function's returned value as {output name: array} (scalars become 0-d float arrays)."""
    items = returned if len(function.outputs) > 1 or function.returns_cache else (returned,)
    return {name: np.asarray(item, dtype=float) if np.isscalar(item) else item
            for name, item in zip(function.outputs, items)}


def build(case: Case) -> CaseValues:
    """Deterministic arrays for a case, and the reference's forward on them."""
    layer = case.layer
    rng = np.random.default_rng(case.seed)
    variables = case.all_variables
    inputs = {}
    for array in layer.arrays:
        shape = case.shape(array)
        if case.values == "notebook" and array.name in layer.notebook:
            low, high = layer.notebook[array.name]
            inputs[array.name] = np.linspace(low, high, num=int(np.prod(shape))).reshape(shape)
        else:
            inputs[array.name] = array.values.sample(rng, shape, variables)
    if layer.network is not None:  # the parameters the model is graded with
        inputs.update(layer.network.draw_parameters(variables, rng))
    values = CaseValues(case, inputs, variables)
    if layer.steps is not None or layer.network is not None:  # their answers take several calls: worked
        return _frozen(values)  # out by gradeconv/judging/stateful.py and gradeconv/judging/networks.py when first needed
    arguments = values.arguments()
    returned = layer.forward.reference(*arguments)
    values.reference_outputs = outputs_of(layer.forward, returned)
    values.cache = returned[-1] if layer.forward.returns_cache else None
    for param, given in zip(layer.arguments, arguments):
        if isinstance(param, Param):
            values.reference_updates.update({param.entry(key): given[key] for key in param.updated})
    if layer.backward:
        values.upstream = {f"d{name}": rng.standard_normal(output.shape)
                           for name, output in values.reference_outputs.items()}
    return _frozen(values)


def _frozen(values: CaseValues) -> CaseValues:
    """The values, their arrays made read-only: they are shared by every submission of a batch (gradeconv/judging/plan.py)."""
    for array in (*values.inputs.values(), *values.reference_outputs.values(), *values.upstream.values(),
                  *values.reference_updates.values()):
        array.setflags(write=False)
    return values
