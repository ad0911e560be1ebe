"""Searching a case space for the smallest failing case, with Hypothesis.

Settings are fixed for reproducibility: a seed derived from the rubric's seed
and the test's name, no example database, no deadline, no health checks, one
bug per test. After a timeout or crash the search stops trying cases (each
would cost a restart and the full timeout again).
"""
from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
from hypothesis.configuration import set_hypothesis_home_dir

from gradeconv import outcomes
from gradeconv.cases import Case, cases
from gradeconv.results import CaseResult
from gradeconv.rubric import Space

MAX_SHRINK_CALLS = 150

# Hypothesis keeps caches in ./.hypothesis by default: never litter the user's folder.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "gradeconv-hypothesis"))


class _Failed(Exception):
    pass


def smallest_failure(run: Callable[[Case], CaseResult], space: Space, pool: bool, examples: int,
                     key: str, rubric_seed: int, shrink: bool = True) -> CaseResult | None:
    """The smallest failing case found among `examples` drawn cases (after shrinking), or None."""
    failures: list[CaseResult] = []
    calls_after_failure = 0

    @seed(rubric_seed * 1_000_003 + zlib.crc32(key.encode()))
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
              print_blob=False, verbosity=Verbosity.quiet)
    @given(cases(space, pool))
    def probe(case: Case) -> None:
        nonlocal calls_after_failure
        if failures:
            if failures[-1].outcome in outcomes.FATAL or calls_after_failure >= MAX_SHRINK_CALLS:
                reject()
            calls_after_failure += 1
        result = run(case)
        if result.outcome != outcomes.PASSED:
            failures.append(result)
            raise _Failed

    try:
        probe()
    except Exception:  # the failure is what we recorded, not what Hypothesis re-raises
        pass
    if not failures:
        return None
    fatal = [f for f in failures if f.outcome in outcomes.FATAL]
    if fatal:
        return fatal[0]
    return min(failures, key=lambda f: f.case.size)
