"""A reproduction of a failing case: Python a student pastes next to their layers.py or into a notebook.

The snippet holds the imports, the case's inputs (written out at round-trip
precision when small, else drawn again from the case's generator and seed in
the order gradeconv draws them), the call made while grading (with the
student's own forward for a backward's cache, or the canonical cache), the
expected answer and the comparison. Running it next to the buggy file shows
the failure; next to a correct one it passes.
"""
from __future__ import annotations

import numpy as np

from gradeconv.judging.cases import CaseValues
from gradeconv.results import CaseResult
from gradeconv.rubric import ReferenceCheck
from gradeconv.specs.model import Array, Function, Param, Var

#: the line that introduces the snippet in a test's output text
HEADING = "reproduce it (paste next to your cs231n/ folder or into your notebook):"
#: an input array up to this many values is written out; when any is larger, every array is drawn again
#: from the case's seed (or the course notebook's linspace) as grading drew it
LITERAL_INPUTS = 36
#: an expected output up to this size is written out; a larger one is checked at the failing index
LITERAL_OUTPUT = 36


def snippet(function: Function, values: CaseValues, failure: CaseResult, package: str, module: str,
            tolerance: ReferenceCheck, test_name: str, forward_available: bool = True) -> str:
    """The reproduction of `failure`, found on `values` while grading `function`.

    A backward that got the reference's cache because the student's forward was
    wrong is reproduced through their forward, checked first: that is the failure
    to fix, and a correct file passes the whole snippet. Only when their forward
    is missing does the snippet hand the backward the reference's cache itself.
    """
    layer = values.layer
    if layer.steps is not None:
        return _steps_snippet(function, values, failure, package, module, tolerance, test_name)
    if layer.network is not None:
        return None  # a model's parameters are too many to write out: the failure text says what differs
    backward = layer.role(function) == "backward"
    own_forward = backward and (failure.cache != "canonical" or forward_available)
    called = [layer.forward.name, function.name] if own_forward else [function.name]
    lines = [f"# gradeconv: test {test_name!r} fails on its smallest case:",
             f"#   {values.case.describe()}",
             f"# Run this next to your {package}/ folder, or paste it into your notebook.",
             "import numpy as np",
             "try:",
             f"    from {package}.{module} import {', '.join(called)}",
             "except ImportError:  # layers.py itself in this folder",
             f"    from {module} import {', '.join(called)}",
             ""]
    lines += _inputs(values, with_upstream=backward)
    if failure.outcome == "mutated_input":
        names = [array.name for array in layer.arrays] + (list(values.upstream) if backward else [])
        lines.append(f"for array in ({', '.join(names)},):")
        lines.append("    array.setflags(write=False)  # gradeconv passes read-only inputs: work on a copy")
    forward_call = f"{layer.forward.name}({', '.join(_argument_names(layer))})"
    if not backward:
        lines.append(f"{_targets(layer.forward)} = {forward_call}")
        return _finish(lines, _checks(layer, "forward", failure, function, values, tolerance))
    if own_forward:
        lines.append(f"{', '.join(layer.forward.outputs)}, cache = {forward_call}  # your own forward's cache")
        if failure.cache == "canonical":
            lines.append("# grading found your forward wrong for this case (so your backward got the reference's "
                         "cache): fix it first")
            lines += _checks(layer, "forward", CaseResult(failure.outcome), layer.forward, values, tolerance)
    else:
        lines.append(f"cache = {_literal(values.cache, values)}  # the reference forward's cache")
    lines.append(f"{_targets(function)} = {function.name}({', '.join([*values.upstream, 'cache'])})")
    role = "backward" if failure.cache != "canonical" else "reference"
    return _finish(lines, _checks(layer, role, failure, function, values, tolerance))


def _steps_snippet(function: Function, values: CaseValues, failure: CaseResult, package: str, module: str,
                   tolerance: ReferenceCheck, test_name: str) -> str:
    """An update rule's failing case: its steps, carrying the config, each checked against the reference's."""
    from gradeconv.judging.stateful import reference_trajectories  # the trajectory the rule is judged against

    layer, steps = values.layer, values.layer.steps
    expected = reference_trajectories(layer, values)[0]
    first = layer.forward.outputs[0]
    lines = [f"# gradeconv: test {test_name!r} fails on its smallest case:",
             f"#   {values.case.describe()}",
             f"# Run this next to your {package}/ folder, or paste it into your notebook.",
             "import numpy as np",
             "try:",
             f"    from {package}.{module} import {function.name}",
             "except ImportError:  # the file itself in this folder",
             f"    from {module} import {function.name}",
             ""]
    for array in layer.arrays:
        if array.name in steps.varying:
            items = ", ".join(_array(item) for item in values.inputs[array.name])
            lines.append(f"{array.name}s = [{items}]  # one per step")
        else:
            lines.append(f"{array.name} = {_array(values.inputs[array.name])}")
    param = next(argument for argument in layer.arguments if argument.name == steps.carried)
    entries = ", ".join(f"{key!r}: {_entry(entry, values)}" for key, entry in param.given(values.variables).items())
    lines.append(f"{param.name} = {{{entries}}}")
    lines.append(f"expected = [  # after each step: {first} and the state kept in {param.name}")
    for step in expected:
        lines.append("    {" + ", ".join(f"{_key(name)!r}: {_array(value) if value.ndim else repr(float(value))}"
                                         for name, value in step.items()) + "},")
    lines.append("]")
    varying = ", ".join(f"{name}s[step]" if name in steps.varying else name
                        for name in (argument.name for argument in layer.arguments))
    lines += [f"for step in range({len(expected)}):",
              f"    {first}, {param.name} = {function.name}({varying})",
              "    for name, value in expected[step].items():",
              f"        got = {first} if name == {first!r} else {param.name}.get(name)",
              "        assert got is not None, f'after step {step + 1} the config has no {name!r}'",
              f"        np.testing.assert_allclose(got, value, rtol={tolerance.rtol!r}, atol={tolerance.atol!r}, "
              "err_msg=f'{name} at step {step + 1}')",
              f"    {steps.replaces} = {first}"]
    return _finish(lines, [])


def _key(name: str) -> str:
    """config['m'] -> m; next_w stays."""
    return name.split("[", 1)[1][1:-2] if "[" in name else name


def _finish(lines: list[str], checks: list[str]) -> str:
    return "\n".join([*lines, *checks, 'print("no difference found")']) + "\n"


def _checks(layer, role: str, failure: CaseResult, function: Function, values: CaseValues,
            tolerance: ReferenceCheck) -> list[str]:
    """Asserts on the call's results: a random layer's properties, else the reference's answer."""
    properties = layer.properties
    if properties is not None and properties.reproduce is not None and role != "reference":
        return properties.reproduce(values, role)
    if function is layer.forward:
        expected = {**values.reference_outputs, **values.reference_updates}
    else:
        expected = values.reference_backward(function)
    return _comparison(failure, function, expected, tolerance)


def _argument_names(layer) -> list[str]:
    return [argument.name for argument in layer.arguments]


def _targets(function: Function) -> str:
    names = list(function.outputs) + (["cache"] if function.returns_cache else [])
    return ", ".join(names)


def _inputs(values: CaseValues, with_upstream: bool = True) -> list[str]:
    """Assignments of every input, parameter dict and plain value the call needs (no unused upstream gradient).

    Small arrays are written out; when one is larger than LITERAL_INPUTS, every array is drawn
    again in the order gradeconv draws them: the value domain's own source, or the notebook's linspace.
    """
    layer = values.layer
    lines = []
    arrays = layer.arrays
    drawn = [_source(array, values) for array in arrays]
    large = any(values.inputs[array.name].size > LITERAL_INPUTS for array in arrays)
    large = large or any(up.size > LITERAL_INPUTS for up in values.upstream.values()) and with_upstream
    if large and all(drawn):
        if any("rng" in source for source in drawn) or (with_upstream and values.upstream):
            lines.append(f"rng = np.random.default_rng({values.case.seed})  # gradeconv draws the arrays in this order")
        lines += [f"{array.name} = {source}" for array, source in zip(arrays, drawn)]
        if with_upstream:
            lines += [f"{name} = rng.standard_normal({up.shape})" for name, up in values.upstream.items()]
    else:
        lines += [f"{array.name} = {_array(values.inputs[array.name])}" for array in arrays]
        if with_upstream:
            lines += [f"{name} = {_array(up)}" for name, up in values.upstream.items()]
    for argument in layer.arguments:
        if isinstance(argument, Var):
            lines.append(f"{argument.name} = {values.variables[argument.name]!r}")
        elif isinstance(argument, Param):
            entries = ", ".join(f"{key!r}: {_entry(entry, values)}"
                                for key, entry in argument.given(values.variables).items())
            lines.append(f"{argument.name} = {{{entries}}}")
    return lines


def _source(array: Array, values: CaseValues) -> str | None:
    """Python that draws `array` as gradeconv did (from `rng`), or None if its domain cannot say."""
    shape = values.case.shape(array)
    if values.case.values == "notebook" and array.name in values.layer.notebook:
        low, high = values.layer.notebook[array.name]
        return f"np.linspace({low!r}, {high!r}, num={int(np.prod(shape))}).reshape({tuple(shape)})"
    if values.case.values != "random" and values.case.values != "notebook":
        return None
    return array.values.source(shape, values.variables)


def _entry(entry, values: CaseValues) -> str:
    if isinstance(entry, Array):
        return f"{entry.name}.copy()"
    if isinstance(entry, Var):
        return repr(values.variables[entry.name])
    return repr(entry)


def _comparison(failure: CaseResult, function: Function, expected: dict[str, np.ndarray],
                tolerance: ReferenceCheck) -> list[str]:
    """Asserts that fail exactly where grading failed: the failing output if known, else every output."""
    names = [failure.output] if failure.output in expected else list(expected)
    lines = []
    for name in names:
        value = expected[name]
        shown = name  # an output's variable, or an updated entry such as bn_param['running_mean']
        label = "expected_" + name if name.isidentifier() else "expected"
        lines.append(f"assert np.asarray({shown}).dtype == np.float64, np.asarray({shown}).dtype  # float64 only")
        if value.ndim == 0:
            lines.append(f"{label} = {float(value)!r}")
            lines.append(f"assert abs({shown} - {label}) <= {tolerance.atol!r} + {tolerance.rtol!r} * abs({label}), "
                         f"({shown}, {label})")
        elif value.size <= LITERAL_OUTPUT:
            lines.append(f"{label} = {_array(value)}")
            lines.append(f"np.testing.assert_allclose({shown}, {label}, rtol={tolerance.rtol!r}, "
                         f"atol={tolerance.atol!r})")
        else:
            lines.append(f"assert np.shape({shown}) == {value.shape}, np.shape({shown})")
            index = failure.where if failure.output == name and failure.where else (0,) * value.ndim
            lines.append(f"assert abs({shown}[{index}] - {float(value[index])!r}) <= "
                         f"{tolerance.atol!r} + {tolerance.rtol!r} * {abs(float(value[index]))!r}, "
                         f"{shown}[{index}]")
    return lines


def _array(value: np.ndarray) -> str:
    """numpy source for an array, every float at round-trip precision."""
    dtype = "" if value.dtype in (np.float64, np.int64, np.bool_) else f", dtype=np.{value.dtype}"
    return f"np.array({value.tolist()!r}{dtype})"


def _literal(value, values: CaseValues) -> str:
    """Source for a cache: the case's own arrays by name, other arrays, numbers, strings and containers."""
    if isinstance(value, np.ndarray):
        name = next((name for name, array in values.inputs.items() if array is value), None)
        return name or _array(value)
    if isinstance(value, tuple):
        items = [_literal(item, values) for item in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, list):
        return f"[{', '.join(_literal(item, values) for item in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_literal(item, values)}" for key, item in value.items()) + "}"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)
