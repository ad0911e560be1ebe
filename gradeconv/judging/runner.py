"""Running a rubric's tests against one submission's session: calls, checks, gradients, diagnosis.

For each test: explicit cases first, then the planned cases (gradeconv/judging/plan.py),
and only after a failure the Hypothesis search that shrinks it. A backward gets
the student's own cache when their forward was right for the case, and always
where the cache's layout is the student's choice (see _choose_cache). Every verdict
fails closed: anything that cannot be judged is a failure, never a pass.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gradeconv import outcomes, specs
from gradeconv.judging import checks, diagnosis, gradients, networks, reproduce, stateful
from gradeconv.judging.cases import Case, CaseValues, Space, from_explicit
from gradeconv.judging.plan import plan_for
from gradeconv.judging.search import smallest_failure
from gradeconv.results import CaseResult, TestResult
from gradeconv.rubric import ReferenceCheck, Rubric, Test, dotted
from gradeconv.sandbox import Handle, Session, Writable
from gradeconv.specs.model import Function, Param

DIAGNOSIS_EXAMPLES = 8
#: a wrong output up to this size carries its |got - expected| in the results
MAX_DIFFERENCE = 4096
DEFAULT_TOLERANCE = ReferenceCheck()
#: failures a snippet cannot show: the call never returned, or was never made
#: added to a backward's failure judged with the student's cache from a forward that is wrong on the case
FORWARD_WRONG = " (judged with your forward's cache; your forward is wrong on this case: fix it first)"
UNREPRODUCIBLE = frozenset({outcomes.TIMEOUT, outcomes.CRASHED, outcomes.MEMORY, outcomes.NOT_RUN,
                            outcomes.FORBIDDEN})


class CaseRunner:
    """Runs cases of one graded file's tests against its session."""

    def __init__(self, session: Session, rubric: Rubric, module: str, salt: str = ""):
        self.session, self.rubric, self.module = session, rubric, module
        self.imported_as = f"{rubric.package}.{dotted(module)}"  # the module the session calls into
        self.salt = salt  # mixed into hidden tests' values: the graded file's own hash
        self.plan = plan_for(rubric)
        self.gradient_calls = 0
        self.full_calls = 0
        self.broken: dict[str, CaseResult] = {}  # function -> the timeout, crash or bad reply it had
        self.writable = False  # whether the current test lets the function change its inputs

    def run_test(self, number: int, test: Test) -> TestResult:
        failure = self.load_failure(test.function) or self.broken.get(test.function)
        if failure is None:
            failure = self.first_explicit_failure(test)
        if failure is None and test.examples:
            failure = self.first_planned_failure(test)
        if failure is None:
            return TestResult(name=test.name, number=number, function=test.function, points=test.points,
                              score=test.points, outcome=outcomes.PASSED, visibility=test.visibility,
                              tags=test.tags, output="passed")
        explanation = self.diagnose(test, failure)
        reproduction = self.reproduction(test, failure)
        output = _failure_text(failure, explanation)
        if reproduction:
            output += f"\n{reproduce.HEADING}\n{reproduction}"
        return TestResult(
            name=test.name, number=number, function=test.function, points=test.points, score=0.0,
            outcome=failure.outcome, visibility=test.visibility, tags=test.tags, output=output,
            counterexample=failure.case.as_dict() if failure.case else None,
            diagnosis=explanation or None, cache=failure.cache, reproduce=reproduction,
            difference=_difference(test, failure),
        )

    def reproduction(self, test: Test, failure: CaseResult) -> str | None:
        """Python that shows this failure, for tests students can see (hidden inputs stay hidden)."""
        if test.visibility != "visible" or failure.case is None or failure.outcome in UNREPRODUCIBLE:
            return None
        try:
            forward = specs.layer_of(test.function).forward.name
            return reproduce.snippet(specs.function(test.function), self.plan.values(test, failure.case, self.salt), failure,
                                     self.rubric.package, dotted(self.module),
                                     test.checks.reference or DEFAULT_TOLERANCE, test.name,
                                     forward_available=self.load_failure(forward) is None)
        except Exception:  # a missing reproduction is a lesser evil than a failed grading
            return None

    def load_failure(self, function: str) -> CaseResult | None:
        reply = self.session.load(self.imported_as)
        if reply.status != "ok":
            return CaseResult(*outcomes.failed_reply(reply, "importing your module", self.rubric.forbidden_imports))
        function = specs.layer_of(function).defined_as(function)  # a model's phase: the method it calls
        state = reply.header.get("functions", {}).get(function)
        if state == "ok":
            return None
        if state == "not callable":
            return CaseResult(outcomes.WRONG_TYPE, f"{function} in {self.module} is not a function")
        return CaseResult(outcomes.NOT_IMPLEMENTED, f"{self.module} has no function {function}")

    def first_planned_failure(self, test: Test) -> CaseResult | None:
        """The search's result: the planned cases first; on a failure, the search itself to shrink it."""
        for case in self.plan.cases(test):
            result = self.run_case(test, case)
            if result.outcome == outcomes.PASSED:
                continue
            if result.stops_search:  # the search would stop at this very failure
                return result
            return smallest_failure(lambda case: self.run_case(test, case), test.function, test.draw_space,
                                    test.examples, self.rubric.seed_of(test))
        return None

    def first_explicit_failure(self, test: Test) -> CaseResult | None:
        for explicit in test.cases:
            result = self.run_case(test, from_explicit(test.function, explicit))
            if result.outcome != outcomes.PASSED:
                return result
        return None

    def run_case(self, test: Test, case: Case) -> CaseResult:
        """The verdict on one case; fails closed: any exception while judging is a failure."""
        if test.function in self.broken:
            return replace(self.broken[test.function], case=case)
        try:
            # tests students cannot see draw their values with the rubric's secret (if any), so
            # answers recorded for public seeds, even the first, simplest case, are worth nothing
            values = self.plan.values(test, case, self.salt)
            self.writable = not test.checks.inputs_unchanged
            function = specs.function(test.function)
            tolerance = test.checks.reference or DEFAULT_TOLERANCE
            if values.layer.steps is not None:
                result = stateful.judge(self._call, function, values, tolerance)
            elif values.layer.network is not None:
                result = networks.judge(self.session, self._call, function, values, tolerance,
                                        self._scored(test, function), test.checks.gradient)
            elif values.layer.role(function) == "backward":
                result = self._backward(test, function, values, case)
            else:
                result = self._forward(test, function, values, case)
        except Exception as error:  # never a pass: the reply could not be judged
            detail = f"{type(error).__name__}: {error}"[:300]
            result = CaseResult(outcomes.ERROR, f"the grader could not judge the reply ({detail}); "
                                                "this counts as a failure")
        return replace(result, case=case)

    def _call(self, function: str, args: list, expected: list[np.ndarray], given: list[str],
              keep: bool = False, report: list = (), **how) -> tuple:
        """(failure or None, reply, handle) of one call; `given` names the arrays in args, in order;
        `how` is passed on to Session.call (kwargs, a model as target)."""
        reply, handle = self.session.call(function, args, keep=keep, writable=self.writable, report=report,
                                          expected_bytes=sum(array.nbytes for array in expected),
                                          module=self.imported_as, **how)
        if reply.status == "ok":
            return None, reply, handle
        failure = checks.mutated(reply, given) or CaseResult(
            *outcomes.failed_reply(reply, function, self.rubric.forbidden_imports))
        if reply.status == "protocol":  # a reply we cannot accept: stop calling, never a storm of restarts
            failure = replace(failure, final=True)
        if failure.stops_search and function not in self.broken:
            note = "; gradeconv stopped calling this function after that"
            self.broken[function] = replace(failure, message=failure.message + note)
        return failure, None, None

    def _call_forward(self, values: CaseValues, keep: bool = False, overrides: dict[str, np.ndarray] | None = None,
                      entries: dict | None = None) -> tuple:
        """(failure or None, outputs and updated entries by name, handle) of the student's forward.

        overrides replace inputs by name; entries replace parameter entries by key (another seed).
        """
        layer = values.layer
        args = values.arguments(overrides, wrap=Writable, entries=entries)
        expected = [*values.reference_outputs.values(), *values.reference_updates.values()]
        report = [(index, list(argument.updated)) for index, argument in enumerate(layer.arguments)
                  if isinstance(argument, Param) and argument.updated]
        failure, reply, handle = self._call(layer.forward.name, args, expected, array_names(args, values.inputs),
                                            keep=keep, report=report)
        if failure:
            return failure, None, None
        got = checks.unpack(reply, layer.forward)
        if isinstance(got, CaseResult):
            self.session.forget(handle)
            return got, None, None
        for position, (index, _) in enumerate(report):
            param = layer.arguments[index]
            got.update({param.entry(key): array for key, array in checks.entries(reply, position).items()})
        return None, got, handle

    def _forward(self, test: Test, function: Function, values: CaseValues, case: Case) -> CaseResult:
        failure, got, _ = self._call_forward(values)
        if failure:
            return failure
        failure = self._judge_forward(test, values, got)
        if failure:
            return failure
        if function.loss and test.checks.gradient is not None:
            upstream = {function.outputs[0]: np.ones(())}
            grads = {name: got[name] for name in self._scored(test, function) if name in function.gradients}
            return self._gradient_check(test, function, values, grads, upstream, case) or CaseResult(outcomes.PASSED)
        return CaseResult(outcomes.PASSED)

    def _judge_forward(self, test: Test | None, values: CaseValues, got: dict,
                       updates: bool = True) -> CaseResult | None:
        """The first thing wrong with a forward's outputs (and, with updates, updated entries), or None."""
        layer = values.layer
        if layer.properties is not None:  # judged by what the spec declares (Properties in specs/model.py)
            return checks.properties(values, got, lambda **entries: self._call_forward(values, entries=entries)[:2])
        expected = {**values.reference_outputs, **(values.reference_updates if updates else {})}
        names = list(expected)  # by default every output and every entry it must update
        if test is not None and test.outputs:
            names = [name for name in map(lambda key: _entry_name(layer, key), test.outputs) if name in expected]
        return _first_wrong(names, got, expected, test, layer.forward, values)

    @staticmethod
    def _scored(test: Test, function: Function) -> tuple[str, ...]:
        return test.outputs or function.outputs

    def _backward(self, test: Test, function: Function, values: CaseValues, case: Case) -> CaseResult:
        """The backward's verdict with the cache chosen for this case (see _choose_cache)."""
        choice = self._choose_cache(function, values)
        if isinstance(choice, CaseResult):  # no cache of the student's to call it with
            return choice
        values = replace(values, own_outputs=choice.own)
        expected = self._expected_backward(function, values)
        args = [*values.upstream.values(), choice.cache]
        given = [*values.upstream] + (array_names([choice.cache], values.inputs) if choice.kind == "canonical" else [])
        failure, reply, _ = self._call(function.name, args, list(expected.values()), given)
        self.session.forget(choice.handle)
        result = failure or self._judge_backward(test, function, values, case, reply, expected,
                                                 choice.forward_wrong)
        if result.outcome != outcomes.PASSED and choice.forward_wrong:
            result = replace(result, message=result.message + FORWARD_WRONG)
        return replace(result, cache=choice.kind)

    @staticmethod
    def _expected_backward(function: Function, values: CaseValues) -> dict[str, np.ndarray]:
        """What the course's backward returns at this case's inputs (a random layer: given the student's draw)."""
        if values.layer.properties is not None and values.own_outputs is not None:
            return values.layer.properties.backward(values, values.own_outputs)
        return values.reference_backward(function)

    def _choose_cache(self, function: Function, values: CaseValues) -> "CacheChoice | CaseResult":
        """The cache a backward gets on this case.

        The student's own when their forward was right; when it was wrong, the canonical
        one where the course fixes the layout (Layer.cache_fixed), else still their own
        (marked forward_wrong). Without any cache of theirs (forward missing or failing)
        on a layout of their own, the failure that says so: the backward is not called.
        """
        layer, forward = values.layer, values.layer.forward
        canonical = CacheChoice(values.cache, "canonical")
        missing = self.load_failure(forward.name) or self.broken.get(forward.name)
        if missing is not None:
            return canonical if layer.cache_fixed else _no_cache(function, forward, missing)
        failure, got, handle = self._call_forward(values, keep=True)
        if failure is not None:
            return canonical if layer.cache_fixed else _no_cache(function, forward, failure)
        # the cache does not depend on the parameter entries stored back (batchnorm's running averages)
        right = self._judge_forward(None, values, got, updates=False) is None
        if right or not layer.cache_fixed:
            return CacheChoice(handle.item(len(forward.outputs)), "submission", handle, got, forward_wrong=not right)
        self.session.forget(handle)
        return canonical

    def _judge_backward(self, test: Test, function: Function, values: CaseValues, case: Case, reply,
                        expected: dict[str, np.ndarray], forward_wrong: bool = False) -> CaseResult:
        got = checks.unpack(reply, function)
        if isinstance(got, CaseResult):
            return got
        scored = self._scored(test, function)
        failure = _first_wrong(scored, got, expected, test, function, values)
        if failure:
            return failure
        if test.checks.gradient is not None and values.layer.properties is None:
            upstream = {name: values.upstream[f"d{name}"] for name in values.layer.forward.outputs}
            # a wrong forward's slopes are no standard: the backward must match the true gradient then
            own_forward = (self._submission_forward(values)
                           if test.checks.gradient.forward == "submission" and not forward_wrong else None)
            failure = self._gradient_check(test, function, values, {name: got[name] for name in scored}, upstream,
                                           case, own_forward)
            if failure:
                return failure
        return CaseResult(outcomes.PASSED)

    def _gradient_check(self, test: Test, function: Function, values: CaseValues, grads: dict, upstream: dict,
                        case: Case, submission_forward=None) -> CaseResult | None:
        """The numeric gradient check of grads, on the reference forward unless submission_forward is given."""
        settings = test.checks.gradient
        forward = submission_forward or values.reference_forward
        probed = None
        if submission_forward is None and settings.mode == "directional":
            # the reference's slopes are the same for every submission: worked out once per case
            probed = values.shared_answer(
                ("probes", function.name, tuple(grads), settings.model_dump_json(), case.seed),
                lambda: tuple(gradients.probes(forward, values.inputs, list(grads), function.gradients, upstream,
                                               settings, case.seed)))
        failure, calls = gradients.check(forward, values.inputs, grads, function.gradients, upstream, settings,
                                         case.seed, probed)
        self.gradient_calls += calls
        self.full_calls += gradients.full_calls(values.inputs, grads, function.gradients)
        return failure

    def _submission_forward(self, values: CaseValues):
        """The student's forward as the gradient check calls it (NaN where it fails)."""

        def submission_forward(overrides: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            failure, got, _ = self._call_forward(values, overrides=overrides)
            return {name: got[name] if failure is None and got[name].shape == expected.shape
                    else np.full(expected.shape, np.nan)
                    for name, expected in values.reference_outputs.items()}

        return submission_forward

    def diagnose(self, test: Test, failure: CaseResult) -> str:
        if failure.case is None or failure.outcome in outcomes.FATAL:
            return diagnosis.summarize(failure, test.function, [])

        def passes_within(space: Space) -> bool:
            return smallest_failure(lambda case: self.run_case(test, case), test.function, space,
                                    DIAGNOSIS_EXAMPLES, self.rubric.seed_of(test, "/diagnosis"),
                                    shrink=False) is None

        found = diagnosis.triggers(passes_within, test.draw_space, test.function) if test.examples else []
        return diagnosis.summarize(failure, test.function, found)


@dataclass(frozen=True)
class CacheChoice:
    """The cache a backward is called with, and where it came from."""

    cache: object
    kind: str  # "submission" or "canonical" (the results' extra_data.cache)
    handle: Handle | None = None  # the worker's copy of the student's cache
    own: dict | None = None  # the student's forward outputs on this case
    forward_wrong: bool = False  # the student's own cache, from a forward that is wrong on this case


def _no_cache(function: Function, forward: Function, failure: CaseResult) -> CaseResult:
    """The backward's failure when the student's forward gave no cache on this case (a layout of their own)."""
    outcome = outcomes.NOT_RUN if failure.stops_search or failure.outcome == outcomes.NOT_IMPLEMENTED \
        else failure.outcome
    return CaseResult(outcome, f"{function.name} was not called: it takes the cache your {forward.name} returns, "
                               f"and {forward.name} failed on this case ({failure.message}): fix it first",
                      cache="submission", final=failure.stops_search)


def _difference(test: Test, failure: CaseResult) -> dict | None:
    """Where a visible test's wrong output differs on its smallest case, for the class report's heat maps."""
    error = failure.difference
    if test.visibility != "visible" or error is None or error.ndim == 0 or error.size > MAX_DIFFERENCE:
        return None
    return {"output": failure.output, "shape": list(error.shape),
            "values": np.round(error, 6).tolist()}


def _first_wrong(names, got: dict, expected: dict, test: Test | None, function: Function,
                 values: CaseValues) -> CaseResult | None:
    """The first of `names` that is missing or wrong, with the known mistakes it matches.

    Without a reference check (the rubric's `reference: null`) only a wrong shape or type
    counts; without a test (judging a forward for its cache) the default tolerance applies."""
    strict = test is None or test.checks.reference is not None
    tolerance = (test.checks.reference if test else None) or DEFAULT_TOLERANCE
    for name in names:
        if got.get(name) is None:
            return CaseResult(outcomes.WRONG_VALUE, f"{function.name} did not store {name}: it must update it",
                              output=name)
        failure = checks.compare(name, got[name], expected[name], tolerance)
        if failure and (strict or failure.outcome != outcomes.WRONG_VALUE):
            return _matched_mistakes(failure, function, got, values)
    return None


def _entry_name(layer: specs.Layer, key: str) -> str:
    """An updated parameter entry by the name results show (bn_param['running_mean']); others unchanged."""
    param = next((param for param in layer.params if key in param.updated), None)
    return param.entry(key) if param else key


def array_names(value, inputs: dict[str, np.ndarray]) -> list[str]:
    """Names of the arrays in value, in the order the sandbox sends them: a case input's name, else cache."""
    if isinstance(value, Writable):
        value = value.array
    if isinstance(value, np.ndarray):
        return [next((name for name, array in inputs.items() if array is value), "cache")]
    if isinstance(value, (tuple, list)):
        return [name for item in value for name in array_names(item, inputs)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in array_names(item, inputs)]
    return []


def _matched_mistakes(failure: CaseResult, function: Function, got: dict, values: CaseValues) -> CaseResult:
    """The failure, with the note and hint of each known mistake its output equals on this case."""
    if failure.outcome == outcomes.WRONG_TYPE:  # right values of the wrong kind match no formula's values
        return failure
    for mistake in function.mistakes:
        if mistake.output != failure.output or got.get(mistake.output) is None:
            continue
        try:
            wrong = np.asarray(mistake.compute(values), dtype=float)
            output = got[mistake.output]
            matches = checks.same(output, wrong)
        except Exception:  # a formula that does not apply to this case is no evidence
            matches = False
        if matches:
            failure = replace(failure, message=failure.message + mistake.note, hints=failure.hints + (mistake.hint,))
    return failure


def _failure_text(failure: CaseResult, explanation: str) -> str:
    lines = [failure.message]
    if failure.case is not None:
        lines.append(f"smallest failing case: {failure.case.describe()}")
    if failure.cache == "canonical":
        lines.append("(backward got the canonical cache, not yours: your forward was wrong or "
                     "missing for this case)")
    if explanation:
        lines.append(f"diagnosis: {explanation}")
    return "\n".join(lines)
