"""What a layer spec declares: arguments, sizes, values, outputs, and the mistakes it recognises.

A layer family (conv, batchnorm, lstm...) is one ``Layer``: its forward
``Function``, the backward functions that consume the forward's cache, the
arguments both are built from, where the sizes of a case come from, and what a
failing case can be explained by. The engine reads these declarations and has
no code of its own for any layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np

from gradeconv.specs.domains import Domain, Normal

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
    compute: Callable[[Any], np.ndarray]  # compute(values: gradeconv.cases.CaseValues)
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
class Properties:
    """Checks that replace comparison with the reference, for layers that draw random numbers.

    forward(values, got, call_again) -> failure or None, where call_again(**entries)
    returns (failure or None, the student's outputs) for the same case once more,
    with parameter entries replaced by key (call_again(seed=...));
    backward(values, own) -> the expected backward outputs, given the student's own
    forward outputs for this case (the forward passed its checks);
    reproduce(values, role) -> the lines of a reproduction that check the same
    properties (after the call, with the forward's outputs and the backward's
    outputs bound to their names).
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
