"""The contract between a layer spec and the engine: the one file a spec author needs.

A layer family (conv, batchnorm, lstm...) is one ``Layer``: its forward
``Function``, the backward functions that consume the forward's cache, the
arguments both are built from, where the sizes of a case come from, and what a
failing case can be explained by. The engine reads these declarations and has
no code of its own for any layer; a spec imports nothing from the engine
(tests/test_spec_contract.py), only this module, gradeconv/specs/domains.py
(where an array's values come from: Normal, Uniform, AwayFromZero, Distinct,
Integers...) and its sibling spec modules.

What each declaration means:

- ``Layer``: a layer family, its case space (``ranges``, ``options``, ``draw``,
  ``derive``...) and the explanations of its failures (``restrictions``, ``hints``).
- ``Function``: one graded function, its outputs in order, its reference, which
  outputs are gradients of which input, and its known ``Mistake``s.
- ``Array``, ``Param``, ``Var``: the arguments, in order: an array of symbolic
  shape and a value domain, a dict argument and its entries, a plain value.
- ``Option``: a case variable that is not a size (a mode, a flag, a scale).
- ``Restriction``: a narrower space; passing within it names the failure's trigger.
- ``Mistake``: a known bug, recognised when an output equals its formula's value.
- ``Properties``: checks that replace the comparison with the reference (dropout's
  random mask); their functions return None, a ``Violation`` or an ``Equal``.
- ``Violation``: a property that does not hold, and what to tell the student.
- ``Equal``: an output the properties do fix on a case, compared by the engine.

The engine hands spec functions objects of its own; what a spec may read of them
is written here as protocols: ``Values`` (a case's arrays, for ``Mistake.compute``
and ``Properties``), ``Space`` (for ``Layer.draw``), ``Failure`` and ``CaseView``
(for ``Layer.hints``). A spec never builds them and never imports their classes.
The outcomes a ``Violation`` may give are WRONG_VALUE, WRONG_SHAPE and WRONG_TYPE,
the names results carry (design.md, extra_data.outcome).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union

import numpy as np

from gradeconv.specs.domains import Domain, Normal

#: the outcomes of a failed property or shape check, as results name them (gradeconv/outcomes.py)
WRONG_VALUE = "wrong_value"
WRONG_SHAPE = "wrong_shape"
WRONG_TYPE = "wrong_type"
#: a call that raised (hints(failure, case) may read it: an error message names what went wrong)
ERROR = "error"
#: the outcomes a Violation may give
VIOLATIONS = (WRONG_VALUE, WRONG_SHAPE, WRONG_TYPE)

Range = tuple[int, int]
#: a variable a case must give (an explicit case without it is an error)
REQUIRED = object()


@dataclass(frozen=True)
class Array:
    """An array argument: its shape in case variables (or ints) and the domain of its values."""

    name: str
    shape: tuple[str | int, ...]
    values: Domain = Normal()


@dataclass(frozen=True)
class Var:
    """A case variable, passed as a plain value (groupnorm's G) or as a parameter entry (stride)."""

    name: str


Entry = Union[Var, Array, int, float, str, bool]


@dataclass(frozen=True)
class Param:
    """A dict argument (conv_param, bn_param). `updated` keys are side effects the function must make."""

    name: str
    entries: dict[str, Entry]
    updated: tuple[str, ...] = ()
    #: entries a caller may leave out, the function then using the course's default (the notebook
    #: calls batchnorm with bn_param = {'mode': 'train'}); they are left out when the case variable
    #: `omit` is true, and the layer derives their variables' default values for that case
    optional: tuple[str, ...] = ()
    omit: str | None = None

    @property
    def arrays(self) -> tuple[Array, ...]:
        return tuple(entry for entry in self.entries.values() if isinstance(entry, Array))

    def given(self, variables: dict) -> dict[str, Entry]:
        """The entries a case passes: all, or all but the optional ones when its `omit` variable is true."""
        if self.omit is None or not variables.get(self.omit):
            return dict(self.entries)
        return {key: entry for key, entry in self.entries.items() if key not in self.optional}

    def entry(self, key: str) -> str:
        return entry_name(self.name, key)


def entry_name(param: str, key: str) -> str:
    """How results name a parameter dict's entry: bn_param['running_mean']."""
    return f"{param}[{key!r}]"


Argument = Union[Array, Param, Var]


@dataclass(frozen=True)
class Option:
    """A case variable that is not a size: a mode, a flag, a scale. A tuple default is drawn among."""

    default: Any
    choices: tuple | None = None  # the allowed values; None allows any value of the default's type
    between: tuple[float, float] | None = None  # inclusive bounds of a numeric option
    flag: bool = False  # narrows the draw (square, overlap): a restriction may set it to any value;
    #                     other options are values, which a restriction only picks among the test's own


@dataclass(frozen=True)
class Restriction:
    """A narrower space; when the failing test passes within it, the failure needs `trigger`."""

    trigger: str
    replace: dict[str, Any] = field(default_factory=dict)  # ranges or options set to these values
    at_least: dict[str, int] = field(default_factory=dict)  # ranges whose low end is raised to these
    hint: str = ""  # what to check when the trigger is found
    hint_unless: str = ""  # ... unless an earlier hint already mentions this word
    only: str | None = None  # "forward" or "backward": the hint applies to that role only


@dataclass(frozen=True)
class Mistake:
    """A known bug, recognised when an output equals what the buggy formula gives on the failing case."""

    output: str  # an output name, or an updated parameter entry such as running_mean
    hint: str
    compute: Callable[[Any], np.ndarray]  # compute(values: gradeconv.judging.cases.CaseValues)
    note: str = ""  # appended to the failure message when it matches
    #: the trigger of a layer restriction this mistake cannot fail without (stride ignored needs
    #: "stride > 1"): a failing test that still fails within that restriction rules the mistake out,
    #: which tells apart formulas that agree on a tiny smallest case
    needs: str = ""


@dataclass(frozen=True)
class Function:
    """One graded function: what it returns, in order, and which outputs are gradients of which input."""

    name: str
    outputs: tuple[str, ...]
    reference: Callable
    gradients: dict[str, str] = field(default_factory=dict)  # output -> the input it is the gradient of
    returns_cache: bool = False  # forward functions return (*outputs, cache)
    loss: bool = False  # outputs[0] is a scalar loss and `gradients` are its gradients
    mistakes: tuple[Mistake, ...] = ()


@dataclass(frozen=True)
class Violation:
    """A property that does not hold: what a property check returns instead of None.

    The engine makes it the case's failure as it stands: its outcome (one of
    VIOLATIONS), its message and hints shown to the student, `output` named as
    the wrong output (default: the forward's first output). A violation is a
    dataclass: dataclasses.replace(violation, message=...) rewords one.
    """

    message: str
    hints: tuple[str, ...] = ()
    outcome: str = WRONG_VALUE
    output: str | None = None


@dataclass(frozen=True)
class Equal:
    """An output whose values the properties do fix on this case (dropout's test mode: out = x).

    The engine compares the student's `output` with `expected` as it compares a
    reference's output, with the default reference tolerance (rtol 1e-6, atol
    1e-8) whatever the test's. When they agree the case passes; otherwise the
    failure is "<context>: <what differs and where>" with the hints (given either
    way: the engine shows them only on a failure).
    """

    output: str
    expected: np.ndarray
    context: str = ""
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Properties:
    """Checks that replace comparison with the reference, for layers that draw random numbers.

    forward(values, got, call_again) -> None, a Violation, an Equal, or the failure
    call_again gave (passed on unchanged):
      - before calling it, the engine checks that every output of the forward in
        `got` (by output name) is a finite float64 numpy.ndarray of the shape of the
        reference's output on the case; a forward failing that fails the case with
        the engine's message (wrong_type, wrong_shape, or wrong_value for NaN or
        infinity) and forward() is not called. Values are not compared.
      - call_again(**entries) calls the student's forward once more on the same case,
        parameter entries replaced by key (call_again(seed=...)), and returns
        (failure, outputs): failure is None or the engine's own failure (the call
        raised, timed out, or returned outputs failing the same check as `got`,
        then worded "with another <param>['<key>']: ..." when entries were
        replaced); a forward() given one returns it as it is. Replacing entries must
        not change the outputs' shapes (they are checked against the reference's
        shapes on the case).
      - after it returns, the engine turns a Violation into the case's failure, and
        compares an Equal's output (see Equal); None passes the case. A test's
        `outputs` and `reference` settings do not apply to forward().
    backward(values, own) -> the expected backward outputs by name, given the
      student's own forward outputs for this case (called when the backward gets
      the student's own cache; otherwise the reference's backward on the canonical
      cache is the standard); the engine compares the backward's outputs
      with them as with a reference's answer (the test's tolerance). No numeric
      gradient check is made for a layer with properties.
    reproduce(values, role) -> the lines of a reproduction that check the same
      properties (after the call, with the forward's outputs and the backward's
      outputs bound to their names).

    The engine fails closed around all three: an exception raised in one, or a
    return value of another kind (True, a string, a Violation whose outcome is not
    one of VIOLATIONS), fails the case as an error of the grader's ("could not
    judge"), never a pass.
    """

    forward: Callable
    backward: Callable
    reproduce: Callable | None = None  # reproduce(values, role) -> Python lines asserting the properties


@dataclass(frozen=True)
class Steps:
    """A stateful function called step after step, as the course's Solver calls an update rule.

    `next_w, config = rule(w, dw, config)`: the first output replaces the argument `replaces` at
    the next step, the returned dict is given back as the argument `carried`, and each array of
    `varying` is declared with a leading axis of `count` steps, one slice per step. Every step's
    outputs and the carried entries the rule keeps (`Param.updated`) are compared with the
    reference's on the same steps.
    """

    count: str  # the case variable giving the number of steps
    replaces: str  # the array argument the first output replaces at the next step (w)
    carried: str  # the dict argument returned and given back (config)
    varying: tuple[str, ...]  # arrays drawn once per step (dw)
    #: defaults of left-out entries the course has also used: the rule may follow any of them ({"t": 1})
    conventions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Call:
    """One call of a model's method, on arrays of the case: outputs named in order (a dict output is
    compared entry by entry)."""

    method: str
    arguments: tuple[str, ...]  # array names of the case
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    """A model class, graded with parameters the grader sets (so initialisation decides nothing else).

    The class is constructed with `constructor(variables) -> (args, kwargs)`; `parameters(variables)`
    gives the {name: shape} it must create. Its graded function (a Function of the layer) is one of
    `phases`: calls made in order on one constructed model, its parameters set first unless the
    phase is `initial`, when the parameters it created are checked instead (`initial_check`).
    """

    cls: str  # the class name in the graded module
    reference: Callable  # the reference class, constructed the same way
    constructor: Callable[[dict], tuple[list, dict]]
    parameters: Callable[[dict], dict[str, tuple[int, ...]]]
    #: draw_parameters(variables, rng) -> {name: array}: the float64 values the grader sets
    draw_parameters: Callable[[dict, np.random.Generator], dict[str, np.ndarray]]
    phases: dict[str, tuple[Call, ...]]  # Function name -> the calls it makes
    initial: str = ""  # the Function name of the initialisation check, if any
    #: initial_check(variables, params) -> why the created parameters are wrong, or None
    initial_check: Callable | None = None
    #: uses(variables) -> the layer functions a case of the model runs (a failure of theirs is named)
    uses: Callable[[dict], tuple[str, ...]] = lambda variables: ()
    attribute: str = "params"  # the dict attribute holding the parameters


@dataclass(frozen=True)
class Layer:
    """A layer family: one forward, the backwards that take its cache, and its case space."""

    name: str
    forward: Function
    arguments: tuple[Argument, ...]
    ranges: dict[str, Range]  # default ranges of the sizes a case is drawn from
    backward: tuple[Function, ...] = ()
    options: dict[str, Option] = field(default_factory=dict)
    minimum: dict[str, int] = field(default_factory=dict)  # lowest allowed value of a range (default 1)
    draw: Callable | None = None  # draw(draw, space) -> variables; default: each range, then each option
    variables: dict[str, Any] | None = None  # a case's variables and defaults (default: ranges and options)
    derive: Callable[[dict], dict] | None = None  # further variables computed from a case's (D = d1 * d2)
    check: Callable[[dict], str | None] | None = None  # why an explicit case is invalid, or None
    shown: tuple[str, ...] | None = None  # counterexample keys in order, "seed" included
    volume: tuple[str, ...] | None = None  # variables whose product sorts cases first (default: elements)
    order: tuple[str, ...] | None = None  # then these variables, in this order (default: all)
    describe: str | None = None  # template naming arrays (their shapes) and variables
    notebook: dict[str, tuple[float, float]] = field(default_factory=dict)  # linspace values by array
    restrictions: tuple[Restriction, ...] = ()
    hints: Callable | None = None  # hints(failure, case) -> list of hints from the failure's evidence
    properties: Properties | None = None
    module: str = "layers.py"  # the course file that defines it
    #: the course fixes the forward's cache layout (conv, pool, affine, relu: the starter code says
    #: what the cache holds), so a backward whose own forward is wrong on a case may be handed the
    #: reference's cache instead; otherwise the layout is the student's and the backward always
    #: gets the student's own cache
    cache_fixed: bool = False
    steps: Steps | None = None  # an update rule: the forward is called step after step
    network: Network | None = None  # a model: the functions are its phases (see Network)
    related: tuple[Function, ...] = ()  # further functions graded on the same cases (a model's other phases)

    @property
    def functions(self) -> tuple[Function, ...]:
        return (self.forward, *self.backward, *self.related)

    @property
    def arrays(self) -> tuple[Array, ...]:
        """Every array of a case, in the order its values are drawn."""
        found: list[Array] = []
        for argument in self.arguments:
            if isinstance(argument, Array):
                found.append(argument)
            elif isinstance(argument, Param):
                found.extend(argument.arrays)
        return tuple(found)

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(argument for argument in self.arguments if isinstance(argument, Param))

    @property
    def case_variables(self) -> dict[str, Any]:
        """The variables an explicit case gives, with their defaults (REQUIRED when none)."""
        if self.variables is not None:
            return self.variables
        return {**{name: REQUIRED for name in self.ranges},
                **{name: _single(option.default) for name, option in self.options.items()}}

    def defined_as(self, name: str) -> str:
        """The attribute of the graded module a function needs (dotted): a model's phase needs its method."""
        if self.network is None or name not in self.network.phases:
            return name
        calls = self.network.phases[name]
        return f"{self.network.cls}.{calls[-1].method}" if calls else self.network.cls

    def role(self, function: Function) -> str:
        return "forward" if function is self.forward else "backward"


def _single(default: Any) -> Any:
    return default[0] if isinstance(default, tuple) else default


# --- what a spec may read of the engine's objects (it never builds them nor imports their classes) -------------------

class Values(Protocol):
    """The arrays of one case: what Mistake.compute and the Properties functions are given."""

    inputs: dict[str, np.ndarray]  # every array of the case by name, parameter arrays included (read-only)
    variables: dict[str, Any]  # the case's variables, the derived ones included
    reference_outputs: dict[str, np.ndarray]  # the reference forward's outputs by name
    upstream: dict[str, np.ndarray]  # "d" + output name: the upstream gradients a backward is given
    cache: Any  # the reference forward's cache (the canonical one)
    own_outputs: dict[str, np.ndarray] | None  # the student's forward outputs when a backward got their cache


class Space(Protocol):
    """Where a test's cases are drawn from: what Layer.draw(draw, space) reads."""

    options: dict[str, Any]  # option values; a tuple is drawn among

    def range(self, name: str) -> tuple[int, int]: ...  # an integer range, both ends included

    def option(self, name: str) -> Any: ...  # an option's value (the first of a tuple)


class CaseView(Protocol):
    """A case as Layer.hints reads it: its variables by name."""

    def get(self, name: str, default: Any = None) -> Any: ...


class Failure(Protocol):
    """A failed case as Layer.hints(failure, case) reads it."""

    outcome: str  # wrong_value, wrong_shape, wrong_type, error...
    message: str
    output: str | None  # which output was wrong
    got_shape: tuple[int, ...] | None  # with a wrong shape: the student's and the expected one
    expected_shape: tuple[int, ...] | None
