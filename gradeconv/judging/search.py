"""Searching a case space for the smallest failing case, with Hypothesis.

Settings are fixed for reproducibility: a seed derived from the rubric's seed
and the test's name (and the rubric's secret for tests students cannot see), no
example database, no deadline, no health checks, one bug per test. After a
timeout or crash the search stops trying cases (each would cost a restart and
the full timeout again).

Fails closed: if the search itself ends in an exception that is not a recorded
failure, the result is an error, never "no failure found".
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
from hypothesis.errors import HypothesisDeprecationWarning
from hypothesis.configuration import set_hypothesis_home_dir

from gradeconv import outcomes
from gradeconv.judging.cases import Case, Space, cases
from gradeconv.private import private_folder
from gradeconv.results import CaseResult

MAX_SHRINK_CALLS = 150


def private_home() -> Path:
    """Hypothesis's cache folder: private to this user (./.hypothesis would litter the user's folder)."""
    return private_folder("hypothesis") or Path(tempfile.mkdtemp(prefix="gradeconv-hypothesis-"))


set_hypothesis_home_dir(str(private_home()))


class _Failed(Exception):
    pass


def smallest_failure(run: Callable[[Case], CaseResult], function: str, space: Space, examples: int,
                     search_seed: int, shrink: bool = True) -> CaseResult | None:
    """The smallest failing case found among `examples` drawn cases (after shrinking), or None."""
    failures: list[CaseResult] = []
    calls_after_failure = 0

    @seed(search_seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
              print_blob=False, verbosity=Verbosity.quiet)
    @given(cases(function, space))
    def probe(case: Case) -> None:
        nonlocal calls_after_failure
        if failures:
            if failures[-1].stops_search or calls_after_failure >= MAX_SHRINK_CALLS:
                reject()
            calls_after_failure += 1
        result = run(case)
        if result.outcome != outcomes.PASSED:
            failures.append(result)
            raise _Failed

    try:
        with warnings.catch_warnings():  # Hypothesis's notes on its own use are not the user's business
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            probe()
    except Exception as error:  # a recorded failure is what counts, not what Hypothesis re-raises
        if not failures:
            return CaseResult(outcomes.ERROR, f"the grader could not finish this test "
                                              f"({type(error).__name__}); it counts as failed")
    if not failures:
        return None
    fatal = [f for f in failures if f.stops_search]
    if fatal:
        return fatal[0]
    return min(failures, key=lambda f: f.case.size)
