"""Grading one submission: ``grade_submission(submission, rubric) -> SubmissionResult``.

A plain function with picklable inputs and outputs and no global state, so any
executor can run it (a local process pool today, a distributed one later).
Data flows one way: rubric -> cases -> calls into the sandbox -> checks -> results.
"""
from __future__ import annotations

import ast
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import gradeconv
import reference
from gradeconv import checks, diagnosis, gradients, outcomes
from gradeconv.cases import Case, build, from_explicit
from gradeconv.results import CaseResult, SubmissionResult, TestResult
from gradeconv.rubric import ReferenceCheck, Rubric, Space, Test
from gradeconv.sandbox import Handle, Limits, Session, accounts, stage_module
from gradeconv.sandbox.session import NONE_WARNING, best_mode
from gradeconv.sandbox.staging import remove
from gradeconv.search import smallest_failure
from gradeconv.specs import SPECS, Spec, canonical_cache, forward_args, reference_forward, reference_outputs
from gradeconv.submissions import Submission, SubmissionError, Unpacked

DIAGNOSIS_EXAMPLES = 8
DEFAULT_TOLERANCE = ReferenceCheck()


def sandbox_limits(rubric: Rubric) -> Limits:
    return Limits(call_seconds=rubric.limits.call_seconds,
                  submission_seconds=rubric.limits.submission_seconds,
                  memory_mb=rubric.limits.memory_mb,
                  processes=rubric.limits.processes,
                  scratch_mb=rubric.limits.scratch_mb,
                  forbidden=tuple(rubric.forbidden_imports))


def grade_submission(submission: Submission, rubric: Rubric, sandbox: str | None = None) -> SubmissionResult:
    """Grade every test of the rubric on one submission.

    sandbox forces an isolation mode (bubblewrap, uid, none); by default the strongest available.
    """
    started = time.monotonic()
    try:
        with Unpacked(submission, rubric.module) as module_file:
            stage = stage_module(module_file, rubric.package, rubric.module[:-3],
                                 own_helper=rubric.helper == "submission")
    except SubmissionError as error:
        return _all_failed(submission, rubric, outcomes.ERROR, str(error), started)
    forbidden = forbidden_imports(stage.package_dir / rubric.module, rubric.forbidden_imports)
    if forbidden:  # judged on the staged copy: the very bytes the worker will import
        remove(stage)
        message = f"imports {forbidden}, which this assignment forbids: use numpy only"
        return _all_failed(submission, rubric, outcomes.FORBIDDEN, message, started)
    try:
        session = Session(stage, sandbox_limits(rubric), called_functions(rubric), sandbox)
    except BaseException:
        remove(stage)
        raise
    with session:
        if session.mode == "uid":
            protect_from_workers(rubric, submission)
        runner = CaseRunner(session, rubric)
        tests = tuple(runner.run_test(number, test) for number, test in enumerate(rubric.tests, 1))
        report = session.close()
    if not report.clean:  # a process of the submission outlived the kill: trust nothing it touched
        message = "gradeconv could not stop every process of this submission; it is not graded"
        return _all_failed(submission, rubric, outcomes.ERROR, message, started)
    lines = [NONE_WARNING if report.sandbox == "none" else f"sandbox: {report.sandbox}"]
    if report.helper_note:
        lines.append(f"im2col helper: {report.helper_note}")
    for skipped in stage.skipped:
        lines.append(f"not copied from your submission: {skipped}")
    if report.stdout.strip():
        lines.append("your code printed (quoted):\n" + quoted(report.stdout))
    if report.stderr.strip():
        lines.append("your code wrote to stderr (quoted):\n" + quoted(report.stderr))
    return SubmissionResult(
        id=submission.id, late=submission.late, path=str(submission.path), tests=tests,
        max_score=rubric.max_score, execution_time=time.monotonic() - started,
        output="\n".join(lines), sandbox=report.sandbox, student_seconds=session.spent,
        gradient_forward_calls=runner.gradient_calls, full_gradient_forward_calls=runner.full_calls,
    )


def quoted(text: str) -> str:
    """Student output, each line marked as theirs so it cannot pass for the grader's own text."""
    return "\n".join(f"  | {line}" for line in text.rstrip().splitlines())


def protect_class(submissions: list[Submission], rubric: Rubric) -> None:
    """Before a batch in the uid sandbox: close every submission, and every folder holding one, to workers.

    Protecting each submission only when its own grading starts would leave a
    classmate in another class folder readable until then.
    """
    if best_mode() != "uid":
        return
    for submission in submissions:
        protect_from_workers(rubric, submission)


def protect_from_workers(rubric: Rubric, submission: Submission) -> None:
    """Take other users' access to what a worker account must not read (see accounts.protect)."""
    packages = [Path(gradeconv.__file__).parent, Path(reference.__file__).parent]
    checkouts = [package.parent for package in packages  # a source checkout holds them again in .git
                 if (package.parent / ".git").exists() or (package.parent / "pyproject.toml").exists()]
    guarded = [*packages, *checkouts, submission.path, submission.path.parent]
    if rubric.path:
        guarded.append(Path(rubric.path))
    if rubric.secret_file:
        guarded.append(Path(rubric.path).parent / rubric.secret_file)
    accounts.protect(guarded)


def called_functions(rubric: Rubric) -> list[str]:
    """The rubric's functions plus the forwards whose caches their backward tests try first."""
    specs = [SPECS[name] for name in rubric.functions]
    return sorted({spec.name for spec in specs} | {spec.forward for spec in specs if spec.forward})


def forbidden_imports(module_file: Path, forbidden: tuple[str, ...]) -> str | None:
    """The first forbidden module the source imports, found without running it."""
    try:
        tree = ast.parse(module_file.read_bytes())
    except (SyntaxError, ValueError):
        return None  # the worker reports the syntax error with its line
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.partition(".")[0] in forbidden:
                return name
    return None


def _all_failed(submission: Submission, rubric: Rubric, outcome: str, message: str,
                started: float) -> SubmissionResult:
    tests = tuple(
        TestResult(name=test.name, number=number, function=test.function, points=test.points,
                   score=0.0, outcome=outcome, visibility=test.visibility, tags=test.tags,
                   output=message)
        for number, test in enumerate(rubric.tests, 1)
    )
    return SubmissionResult(id=submission.id, late=submission.late, path=str(submission.path),
                            tests=tests, max_score=rubric.max_score,
                            execution_time=time.monotonic() - started, output=message)


class CaseRunner:
    """Runs cases of the rubric's tests against one submission's session."""

    def __init__(self, session: Session, rubric: Rubric):
        self.session, self.rubric = session, rubric
        self.gradient_calls = 0
        self.full_calls = 0
        self.broken: dict[str, CaseResult] = {}  # function -> the timeout, crash or bad reply it had
        self.writable = False  # whether the current test lets the function change its inputs

    def run_test(self, number: int, test: Test) -> TestResult:
        spec = SPECS[test.function]
        failure = self.load_failure(spec) or self.broken.get(spec.name)
        if failure is None:
            failure = self.first_explicit_failure(test, spec)
        if failure is None and test.examples:
            failure = smallest_failure(lambda case: self.run_case(test, spec, case), test.space,
                                       spec.pool, test.examples, self.rubric.seed_of(test))
        if failure is None:
            return TestResult(name=test.name, number=number, function=test.function, points=test.points,
                              score=test.points, outcome=outcomes.PASSED, visibility=test.visibility,
                              tags=test.tags, output="passed")
        explanation = self.diagnose(test, spec, failure)
        return TestResult(
            name=test.name, number=number, function=test.function, points=test.points, score=0.0,
            outcome=failure.outcome, visibility=test.visibility, tags=test.tags,
            output=_failure_text(failure, explanation),
            counterexample=failure.case.as_dict() if failure.case else None,
            diagnosis=explanation or None, cache=failure.cache,
        )

    def load_failure(self, spec: Spec) -> CaseResult | None:
        reply = self.session.load()
        if reply.status != "ok":
            return CaseResult(*outcomes.failed_reply(reply, "importing your module", self.rubric.forbidden_imports))
        state = reply.header.get("functions", {}).get(spec.name)
        if state == "ok":
            return None
        if state == "not callable":
            return CaseResult(outcomes.WRONG_TYPE, f"{spec.name} in {self.rubric.module} is not a function")
        return CaseResult(outcomes.NOT_IMPLEMENTED, f"{self.rubric.module} has no function {spec.name}")

    def first_explicit_failure(self, test: Test, spec: Spec) -> CaseResult | None:
        for explicit in test.cases:
            result = self.run_case(test, spec, from_explicit(explicit, spec.pool))
            if result.outcome != outcomes.PASSED:
                return result
        return None

    def run_case(self, test: Test, spec: Spec, case: Case) -> CaseResult:
        """The verdict on one case; fails closed: any exception while judging is a failure."""
        if spec.name in self.broken:
            return replace(self.broken[spec.name], case=case)
        try:
            # tests students cannot see draw their values with the rubric's secret (if any), so
            # answers recorded for public seeds, even the first, simplest case, are worth nothing
            arrays = build(replace(case, seed=self.rubric.value_seed(test, case.seed)))
            self.writable = not test.checks.inputs_unchanged
            result = (self._backward(test, spec, arrays, case) if spec.is_backward
                      else self._forward(test, spec, arrays))
        except Exception as error:  # never a pass: the reply could not be judged
            detail = f"{type(error).__name__}: {error}"[:300]
            result = CaseResult(outcomes.ERROR, f"the grader could not judge the reply ({detail}); "
                                                "this counts as a failure")
        return replace(result, case=case)

    def _call(self, function: str, args: list, expected: list[np.ndarray], given: list[str],
              keep: bool = False) -> tuple:
        """(failure or None, reply, handle) of one call; `given` names the arrays in args, in order."""
        reply, handle = self.session.call(function, args, keep=keep, writable=self.writable,
                                          expected_bytes=sum(array.nbytes for array in expected))
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

    def _forward(self, test: Test, spec: Spec, arrays) -> CaseResult:
        expected = reference_outputs(spec, arrays)["out"]
        failure, reply, _ = self._call(spec.name, forward_args(spec.name, arrays), [expected],
                                       list(spec.inputs(arrays)))
        if failure:
            return failure
        got = checks.unpack(reply, spec)
        if isinstance(got, CaseResult):
            return got
        if test.checks.reference is not None:
            failure = checks.compare("out", got["out"], expected, test.checks.reference)
            if failure:
                return _note_missing_bias(failure, got["out"], expected, arrays)
        return CaseResult(outcomes.PASSED)

    def _backward(self, test: Test, spec: Spec, arrays, case: Case) -> CaseResult:
        expected = reference_outputs(spec, arrays)
        cache, cache_kind, handle = self._own_cache(spec, arrays)
        given = ["dout"] + (list(spec.inputs(arrays)) if cache_kind == "canonical" else [])
        failure, reply, _ = self._call(spec.name, [arrays.dout, cache], list(expected.values()), given)
        self.session.forget(handle)
        if failure:
            return replace(failure, cache=cache_kind)
        return replace(self._judge_backward(test, spec, arrays, case, reply, expected), cache=cache_kind)

    def _own_cache(self, spec: Spec, arrays) -> tuple[object, str, Handle | None]:
        """The student's own cache when their forward was right for this case, else the canonical one."""
        canonical = canonical_cache(spec, arrays)
        forward = SPECS[spec.forward]
        if self.load_failure(forward) is not None or forward.name in self.broken:
            return canonical, "canonical", None
        expected = reference_forward(forward, arrays)
        failure, reply, handle = self._call(spec.forward, forward_args(spec.name, arrays), [expected],
                                            list(forward.inputs(arrays)), keep=True)
        if failure is None and self._forward_was_right(forward, reply, expected):
            return handle.item(1), "submission", handle
        self.session.forget(handle)
        return canonical, "canonical", None

    def _forward_was_right(self, forward: Spec, reply, expected: np.ndarray) -> bool:
        """The forward call returned the reference output (writing into its inputs raises instead)."""
        got = checks.unpack(reply, forward)
        return not isinstance(got, CaseResult) and checks.compare(
            "out", got["out"], expected, DEFAULT_TOLERANCE) is None

    def _judge_backward(self, test: Test, spec: Spec, arrays, case: Case, reply,
                        expected: dict[str, np.ndarray]) -> CaseResult:
        got = checks.unpack(reply, spec)
        if isinstance(got, CaseResult):
            return got
        scored = test.outputs or spec.outputs
        tolerance = test.checks.reference or DEFAULT_TOLERANCE
        for name in scored:
            failure = checks.compare(name, got[name], expected[name], tolerance)
            if failure and (test.checks.reference is not None or failure.outcome != outcomes.WRONG_VALUE):
                return failure
        if test.checks.gradient is not None:
            inputs = spec.inputs(arrays)
            grads = {name: got[name] for name in scored}
            failure, calls = gradients.check(self._forward_for_gradient(test, spec, arrays), inputs, grads,
                                             arrays.dout, test.checks.gradient, case.seed)
            self.gradient_calls += calls
            self.full_calls += gradients.full_calls(inputs, grads)
            if failure:
                return failure
        return CaseResult(outcomes.PASSED)

    def _forward_for_gradient(self, test: Test, spec: Spec, arrays):
        if test.checks.gradient.forward == "reference":
            return lambda inputs: reference_forward(spec, arrays, inputs)
        forward = SPECS[spec.forward]

        expected = reference_forward(spec, arrays)

        def submission_forward(inputs):
            failure, reply, _ = self._call(spec.forward, forward_args(spec.name, arrays, inputs), [expected],
                                           list(forward.inputs(arrays)))
            got = None if failure else checks.unpack(reply, forward)
            if got is None or isinstance(got, CaseResult) or got["out"].shape != expected.shape:
                return np.full(expected.shape, np.nan)
            return got["out"]

        return submission_forward

    def diagnose(self, test: Test, spec: Spec, failure: CaseResult) -> str:
        if failure.case is None or failure.outcome in outcomes.FATAL:
            return diagnosis.summarize(failure, spec.name, [])

        def passes_within(space: Space) -> bool:
            return smallest_failure(lambda case: self.run_case(test, spec, case), space, spec.pool,
                                    DIAGNOSIS_EXAMPLES, self.rubric.seed_of(test, "/diagnosis"),
                                    shrink=False) is None

        found = diagnosis.triggers(passes_within, test.space, spec.pool) if test.examples else []
        return diagnosis.summarize(failure, spec.name, found)


def _note_missing_bias(failure: CaseResult, got: np.ndarray, expected: np.ndarray, arrays) -> CaseResult:
    """Say so when the output is exactly the reference minus the bias."""
    if failure.outcome != outcomes.WRONG_VALUE or got.shape != expected.shape:
        return failure
    if arrays.b is not None and np.allclose(got + arrays.b.reshape(1, -1, 1, 1), expected, atol=1e-8):
        return replace(failure, message=failure.message + " (exactly the bias b is missing)")
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
