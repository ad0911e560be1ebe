"""Grading one submission: ``grade_submission(submission, rubric) -> SubmissionResult``.

A plain function with picklable inputs and outputs and no global state, so any
executor can run it (a local process pool today, a distributed one later).
Data flows one way: rubric -> cases -> calls into the sandbox -> checks -> results.
The visible tests get one session and the hidden tests another, each serving every graded file of
the submission; gradeconv/judging/runner.py runs the tests in it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import gradeconv
import reference
from gradeconv import outcomes
from gradeconv.judging.problems import Problem, module_problem
from gradeconv.judging.runner import CaseRunner
from gradeconv.judging.source_check import MODULE_LEVEL, forbidden_imports
from gradeconv.results import SubmissionResult, TestResult
from gradeconv.rubric import Rubric, dotted
from gradeconv.sandbox import Limits, Session, accounts, landlock, runtime, stage_package
from gradeconv.sandbox.failures import MachineFailure
from gradeconv.sandbox.session import NONE_WARNING, UNCONFINED_NOTE, best_mode
from gradeconv.sandbox.staging import remove
from gradeconv.submissions import Submission, SubmissionError, Unpacked


def sandbox_limits(rubric: Rubric) -> Limits:
    return Limits(call_seconds=rubric.limits.call_seconds,
                  submission_seconds=rubric.limits.submission_seconds,
                  memory_mb=rubric.limits.memory_mb,
                  processes=rubric.limits.processes,
                  scratch_mb=rubric.limits.scratch_mb,
                  forbidden=tuple(rubric.forbidden_imports))


#: times a submission is graded when the machine fails it, and the pauses between those times
MACHINE_ATTEMPTS = 3
BACKOFF_SECONDS = (0.5, 2.0)


def grade_submission(submission: Submission, rubric: Rubric, sandbox: str | None = None) -> SubmissionResult:
    """Grade every test of the rubric on one submission.

    sandbox forces an isolation mode (bubblewrap, uid, none); by default the strongest available.
    One sandboxed session serves every graded file (layers.py, optim.py, classifiers/fc_net.py) of the visible
    tests, another those of the hidden tests.

    What the machine does wrong never costs the student: a sandbox that fails to start (MachineFailure)
    is retried after a pause, and so is a grade in which a worker died of a SIGKILL gradeconv did not
    send, until two grades agree (the student's code killing itself does so every time) or one has no
    such death. If the machine keeps failing, the result is *not graded*: no score, and the reasons;
    but SIGKILLs in every grading while the kernel's out-of-memory killer killed nothing are the
    submission's own, and its lowest grade counts.
    """
    started = time.monotonic()
    reasons: list[str] = []
    earlier: SubmissionResult | None = None
    killed: list[SubmissionResult] = []  # gradings in which a worker died of a SIGKILL gradeconv did not send
    machine_killed = False  # the kernel's out-of-memory killer ran during one of them (or nobody can tell)
    for attempt in range(MACHINE_ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])
        before = oom_kills()
        try:
            result = _grade_once(submission, rubric, sandbox, started)
        except MachineFailure as failure:
            reasons.append(str(failure))
            continue
        if not result.unexplained_kills or (earlier is not None and result.verdicts == earlier.verdicts):
            return result
        after = oom_kills()
        machine_killed = machine_killed or before is None or after is None or after != before
        earlier = result
        killed.append(result)
        reasons.append("a worker was killed by a SIGKILL that gradeconv did not send")
    if len(killed) == MACHINE_ATTEMPTS and not machine_killed:
        # every grading saw a SIGKILL while the kernel killed nothing: the submission's own code sent them
        # (at random, so no two gradings agree); leaving it not graded would let code that deserves 0 escape
        # its grade and send staff to regrade it for ever
        worst = min(killed, key=lambda graded: graded.score or 0.0)
        return dataclasses.replace(worst, output=(worst.output + "\n" if worst.output else "") + SELF_KILLED_NOTE,
                                   execution_time=time.monotonic() - started)
    return not_graded(submission, rubric, reasons, started)


SELF_KILLED_NOTE = ("a worker of this submission was killed by SIGKILL in every grading while the machine's "
                    "out-of-memory killer killed nothing: the kills are the submission's own, and its lowest "
                    "grade counts")


def oom_kills() -> int | None:
    """Processes the kernel's out-of-memory killer has killed since boot, machine-wide (None if unknown)."""
    try:
        with open("/proc/vmstat") as handle:
            for line in handle:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def not_graded(submission: Submission, rubric: Rubric, reasons: list[str], started: float) -> SubmissionResult:
    """The result of a submission the machine kept from being graded: no score, and why."""
    return SubmissionResult(id=submission.id, late=submission.late, path=str(submission.path), tests=(),
                            max_score=rubric.max_score, execution_time=time.monotonic() - started,
                            output=NOT_GRADED_MESSAGE, machine_failure=_summary(reasons))


NOT_GRADED_MESSAGE = ("Not graded: the grading machine failed, not your code. Your submission was not judged "
                      "and has no score yet: resubmit, or ask the course staff to grade it again.")


def _summary(reasons: list[str]) -> str:
    """The distinct reasons, in order, with how many attempts each ended."""
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return "; ".join(reason if count == 1 else f"{reason} ({count} times)" for reason, count in counts.items())


def _grade_once(submission: Submission, rubric: Rubric, sandbox: str | None, started: float) -> SubmissionResult:
    """Visible tests in one session, hidden tests in a worker of their own, so nothing a hidden test's calls
    print or leave behind reaches what the student reads; each session serves every graded file."""
    numbered = list(enumerate(rubric.tests, 1))
    visible = [(number, test) for number, test in numbered if test.visibility == "visible"]
    hidden = [(number, test) for number, test in numbered if test.visibility != "visible"]
    shown = _grade_tests(submission, rubric, sandbox, visible) if visible else None
    kept = _grade_tests(submission, rubric, sandbox, hidden) if hidden else None
    parts = [part for part in (shown, kept) if part is not None]
    if any(not part.clean for part in parts):  # a process outlived the kill: trust nothing it touched
        message = "gradeconv could not stop every process of this submission; it is not graded"
        return _all_failed(submission, rubric, outcomes.ERROR, message, started)
    graded = [module for part in parts for module in part.modules]
    tests = tuple(sorted((dataclasses.replace(test, description=rubric.tests[test.number - 1].described)
                          for module in graded for test in module.tests), key=lambda test: test.number))
    tests = blame_layers(tests, rubric)
    several = len(rubric.modules) > 1
    said = list(dict.fromkeys((module.module, line) for module in graded for line in module.lines))
    lines = [*(parts[0].lines if parts else ()), *(f"{name}: {line}" if several else line for name, line in said),
             *(shown.printed if shown else ())]
    problems = list(dict.fromkeys(f"{module.module}: {module.problem}" if several else module.problem
                                  for module in graded if module.problem))
    return SubmissionResult(
        id=submission.id, late=submission.late, path=str(submission.path), tests=tests,
        max_score=rubric.max_score, execution_time=time.monotonic() - started,
        output="\n".join(lines), sandbox=next((part.sandbox for part in parts if part.sandbox), None),
        student_seconds=sum(part.student_seconds for part in parts),
        gradient_forward_calls=sum(module.gradient_calls for module in graded),
        full_gradient_forward_calls=sum(module.full_calls for module in graded),
        unexplained_kills=sum(part.unexplained_kills for part in parts),
        hidden_output="\n".join(kept.printed) if kept else "",
        files_sha256={module.module: module.files_sha256 for module in graded if module.files_sha256},
        problem="\n".join(problems) or None,
    )


def blame_layers(tests: tuple[TestResult, ...], rubric: Rubric) -> tuple[TestResult, ...]:
    """A failed model test, told whether a layer the model uses failed its own test in this grading
    (fix that first) or every such layer passed (the model is wrong as a whole)."""
    failed = {test.function: test.name for test in tests if test.outcome != outcomes.PASSED}
    graded = {test.function for test in tests}
    blamed = []
    for test in tests:
        network = rubric.tests[test.number - 1].layer.network
        if network is None or test.outcome in (outcomes.PASSED, outcomes.NOT_IMPLEMENTED) or test.outcome in \
                outcomes.FATAL:
            blamed.append(test)
            continue
        used = network.uses(test.counterexample or {})
        culprits = [f"{name} ({failed[name]!r})" for name in used if name in failed]
        checked = [name for name in used if name in graded]
        if culprits:
            note = (f"{network.cls} uses layers that failed their own tests: {', '.join(culprits)}; fix those "
                    "first: the model runs on your layers")
        elif checked:
            note = (f"every layer {network.cls} uses passed its own test ({', '.join(checked)}): the model is "
                    "wrong as a whole: check how the layers are wired (their order, which cache goes to which "
                    "backward, the last layer, the regularisation)")
        else:
            blamed.append(test)
            continue
        diagnosis = f"{test.diagnosis}; {note}" if test.diagnosis else note
        blamed.append(dataclasses.replace(test, diagnosis=diagnosis, output=f"{test.output}\n{note}"))
    return tuple(blamed)


@dataclass(frozen=True)
class ModuleGrade:
    """The tests of one graded file."""

    module: str
    tests: tuple[TestResult, ...]
    lines: tuple[str, ...] = ()  # about this file alone: why its tests could not run
    gradient_calls: int = 0
    full_calls: int = 0
    files_sha256: str | None = None  # of the graded file: the salt of hidden tests' values
    problem: str | None = None  # why none of its tests could run (a syntax error, not this module): said once


@dataclass(frozen=True)
class SessionGrade:
    """The graded files one worker served (the visible or the hidden tests), and what its session reported."""

    modules: tuple[ModuleGrade, ...]
    lines: tuple[str, ...] = ()  # the sandbox, the helper, skipped files
    printed: tuple[str, ...] = ()  # what the worker printed, quoted: the student's to see for visible tests only
    clean: bool = True
    sandbox: str | None = None
    student_seconds: float = 0.0
    unexplained_kills: int = 0


def _grade_tests(submission: Submission, rubric: Rubric, sandbox: str | None, numbered: list) -> SessionGrade:
    """The tests of every graded file, in one session whose worker imports each file when first needed."""
    by_module = {module: [(number, test) for number, test in numbered if rubric.module_of(test) == module]
                 for module in rubric.modules}
    by_module = {module: tests for module, tests in by_module.items() if tests}
    failed, files, submitted_as = [], {}, {}
    unpacked = Unpacked(submission, next(iter(by_module)))
    try:
        for module, tests in by_module.items():
            try:
                files[module] = unpacked.find(module)
                submitted_as[module] = files[module].name
            except SubmissionError as error:
                failed.append(_module_failed(module, tests, outcomes.ERROR, str(error), problem=True))
        stage = stage_package(files, rubric.package, own_helper=rubric.helper == "submission",
                              provided=rubric.provided) if files else None
    except SubmissionError as error:
        return SessionGrade(tuple(failed) + tuple(_module_failed(module, by_module[module], outcomes.ERROR,
                                                                 str(error), problem=True) for module in files))
    except OSError as error:  # a full disk, a temporary folder gone: nothing the student did
        raise MachineFailure(f"the submission could not be staged ({error})") from None
    finally:
        unpacked.close()
    if stage is None:
        return SessionGrade(tuple(failed))
    try:
        runnable, refused = _checked_modules(submission, rubric, stage, by_module, files, submitted_as, failed)
        if not runnable:
            remove(stage)
            return SessionGrade(tuple(failed))
        functions = {f"{rubric.package}.{dotted(module)}": called_functions(test for _, test in by_module[module])
                     for module in runnable}
        session = Session(stage, sandbox_limits(rubric), functions, sandbox)
    except BaseException:
        remove(stage)
        raise
    with session:
        if session.mode == "uid":
            protect_from_workers(rubric, submission)
        graded = []
        for module, files_sha256 in runnable.items():
            runner = CaseRunner(session, rubric, module, salt=files_sha256)
            tests = tuple(refused[number] if number in refused else runner.run_test(number, test)
                          for number, test in by_module[module])
            graded.append(ModuleGrade(module, tests, gradient_calls=runner.gradient_calls,
                                      full_calls=runner.full_calls, files_sha256=files_sha256))
        report = session.close()
    if report.machine_failure:
        raise MachineFailure(report.machine_failure)
    modules = tuple(sorted((*failed, *graded), key=lambda module: rubric.modules.index(module.module)))
    if not report.clean:
        return SessionGrade(modules, clean=False)
    return SessionGrade(modules, _session_lines(report, stage), _printed(report), sandbox=report.sandbox,
                        student_seconds=session.spent, unexplained_kills=report.unexplained_kills)


def _checked_modules(submission: Submission, rubric: Rubric, stage, by_module: dict, files: dict,
                     submitted_as: dict, failed: list) -> tuple[dict[str, str], dict]:
    """The staged modules whose tests can run (-> the sha256 of each), judged on the very bytes the worker
    will import, and the tests refused for a forbidden import; the others' failures go to `failed`.

    A use of a forbidden module fails the tests of the functions using it (and of nothing else),
    whatever the worker says; a file that cannot be one of the graded modules is said once."""
    runnable, refused = {}, {}
    for module in files:
        numbered = by_module[module]
        graded_file = (stage.package_dir / module).read_bytes()
        uses = forbidden_imports(stage.package_dir / module, rubric.forbidden_imports)
        problem = module_problem(graded_file, module, list(dict.fromkeys(test.function for _, test in numbered)),
                                 original_name(submission, submitted_as[module], module))
        if problem is not None:  # said once, not once per test
            failed.append(_module_failed(module, numbered, problem.outcome, problem.message, problem=True,
                                         hint=problem.hint))
        elif MODULE_LEVEL in uses:
            message = f"uses {uses[MODULE_LEVEL]} when imported, which this assignment forbids: use numpy only"
            failed.append(_module_failed(module, numbered, outcomes.FORBIDDEN, message))
        else:
            refused.update({number: _failed_tests(
                [(number, test)], outcomes.FORBIDDEN,
                f"uses {uses[test.function]}, which this assignment forbids: use numpy only "
                f"(found in the source of {test.function} or a function it calls)")[0]
                for number, test in numbered if test.function in uses})
            runnable[module] = hashlib.sha256(graded_file).hexdigest()
    return runnable, refused


def _session_lines(report, stage) -> tuple[str, ...]:
    """What the session says about the sandbox, the helper and the files left out."""
    lines = [NONE_WARNING if report.sandbox == "none" else f"sandbox: {report.sandbox}"]
    if report.sandbox == "uid" and not report.confined:
        lines.append(UNCONFINED_NOTE)
    if report.helper_note:
        lines.append(f"im2col helper: {report.helper_note}")
    for skipped in stage.skipped[:SKIPPED_SHOWN]:
        lines.append(f"not copied from your submission: {file_name(skipped)}")
    if len(stage.skipped) > SKIPPED_SHOWN:
        lines.append(f"not copied from your submission: {len(stage.skipped) - SKIPPED_SHOWN} more files")
    return tuple(lines)


#: files left out of the stage named one per line before the rest are counted
SKIPPED_SHOWN = 10


def file_name(text: str) -> str:
    """A name from the student's file system on one line of valid text: a line break in it cannot pose as a
    line of the grader's, and bytes that are not UTF-8 (kept by Python as lone surrogates) cannot stop
    a report from being written."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return outcomes.one_line(raw.decode("utf-8", "backslashreplace"))


def _printed(report) -> tuple[str, ...]:
    printed = []
    if report.stdout.strip():
        printed.append("your code printed (quoted):\n" + quoted(report.stdout))
    if report.stderr.strip():
        printed.append("your code wrote to stderr (quoted):\n" + quoted(report.stderr))
    return tuple(printed)


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
    try:  # decided once for the batch: if Landlock confines a worker now, every grading process must
        landlock.usable(runtime.shared_runtime())
    except (MachineFailure, OSError, RuntimeError):
        pass  # each submission finds out for itself, and is retried or not graded


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


def called_functions(tests) -> list[str]:
    """The tests' functions plus the forwards whose caches their backward tests try first."""
    return sorted({test.layer.defined_as(name) for test in tests for name in (test.function, test.layer.forward.name)})


def _failed_tests(numbered, outcome: str, message: str) -> tuple[TestResult, ...]:
    return tuple(
        TestResult(name=test.name, number=number, function=test.function, points=test.points,
                   score=0.0, outcome=outcome, visibility=test.visibility, tags=test.tags,
                   output=message)
        for number, test in numbered
    )


def _module_failed(module: str, numbered, outcome: str, message: str, problem: bool = False,
                   hint: str | None = None) -> ModuleGrade:
    """Every test failed for one reason; problem: a submission-level one (each test gets its first line)."""
    if not problem:
        return ModuleGrade(module, _failed_tests(numbered, outcome, message), (message,))
    said = Problem(outcome, message).headline + (f"\ndiagnosis: {hint}" if hint else "")
    if hint:
        message += f"\ndiagnosis: {hint}"
    tests = tuple(dataclasses.replace(test, diagnosis=hint) for test in _failed_tests(numbered, outcome, said))
    return ModuleGrade(module, tests, (message,), problem=message)


def original_name(submission: Submission, staged_name: str, module: str) -> str:
    """The graded file's name as submitted (a lone .py keeps its own name, a Canvas prefix included)."""
    path = submission.path
    if path.suffix == ".py" and not path.is_dir():
        return path.name
    return staged_name or module


def _all_failed(submission: Submission, rubric: Rubric, outcome: str, message: str,
                started: float) -> SubmissionResult:
    tests = _failed_tests(enumerate(rubric.tests, 1), outcome, message)
    return SubmissionResult(id=submission.id, late=submission.late, path=str(submission.path),
                            tests=tests, max_score=rubric.max_score,
                            execution_time=time.monotonic() - started, output=message)
