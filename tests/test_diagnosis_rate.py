"""The diagnosis names the bug class for at least 90% of the wrong-value and wrong-shape failures
of single-bug mutants of correct solutions (tests/diagnosis_catalog.py).

Run as a script to see every mutant's failures and diagnoses:
    PYTHONPATH=. python3 -m tests.test_diagnosis_rate
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import gradeconv
from gradeconv import rubric as rubrics
from tests.diagnosis_catalog import BASES, CLASSES, MUTANTS, mutant_source, names_class

RATE = 0.9
#: examples per test: enough for every mutant here to fail, few enough to grade the catalog in seconds
EXAMPLES = 5
VALUE_OR_SHAPE = ("wrong_value", "wrong_shape")
CONV_AND_POOL = ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive")


def small(rubric: rubrics.Rubric) -> rubrics.Rubric:
    """The rubric's conv and pool tests, each with at most EXAMPLES drawn examples."""
    data = rubric.model_dump()
    data["tests"] = [dict(test, examples=min(test["examples"], EXAMPLES)) for test in data["tests"]
                     if test["function"] in CONV_AND_POOL]
    return rubrics.Rubric.model_validate(data)


def rubric_for(base: str) -> rubrics.Rubric:
    """The a2 solution is graded by the assignment-2 rubric, the sample class's by the default one."""
    return small(rubrics.load(rubrics.locate("assignment2" if base == "a2" else "default")))


def grade_catalog(tmp_path) -> list[tuple[str, str, list]]:
    """(mutant id, its class, its failed tests) for every mutant of the catalog."""
    rubrics_by_base = {base: rubric_for(base) for base in BASES}

    def grade(mutant):
        name, base, edits, bug_class = mutant
        folder = tmp_path / name / "cs231n"
        folder.mkdir(parents=True)
        (folder / "layers.py").write_text(mutant_source(base, edits))
        result = gradeconv.grade(folder.parent, rubrics_by_base[base])[0]
        return name, bug_class, [test for test in result.tests if not test.passed]

    with ThreadPoolExecutor(2) as pool:  # each grading waits on its own sandboxed worker
        return list(pool.map(grade, MUTANTS))


def rate(graded) -> tuple[int, int, list[str]]:
    """(named, value/shape failures, the failures whose diagnosis misses the class)."""
    named, total, missed = 0, 0, []
    for name, bug_class, failed in graded:
        for test in failed:
            if test.outcome not in VALUE_OR_SHAPE:
                continue
            total += 1
            if names_class(test.diagnosis, bug_class):
                named += 1
            else:
                missed.append(f"{name} [{bug_class}] {test.name}: {test.outcome}: {test.diagnosis}")
    return named, total, missed


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_catalog(tmp_path_factory.mktemp("mutants"))


def test_every_mutant_fails(graded):
    """A mutant that passes everything measures nothing: the catalog only holds bugs the rubrics catch."""
    assert [name for name, _, failed in graded if not failed] == []


def test_diagnosis_names_the_bug_class(graded):
    named, total, missed = rate(graded)
    print(f"\ndiagnosis names the bug class for {named} of {total} wrong-value/shape failures "
          f"({named / total:.0%})")
    assert total >= 40
    assert named / total >= RATE, "\n".join(missed)


@pytest.mark.parametrize("bug_class", sorted(CLASSES))
def test_every_class_is_in_the_catalog_and_named_at_least_once(graded, bug_class):
    failures = [test for _, cls, failed in graded if cls == bug_class for test in failed
                if test.outcome in VALUE_OR_SHAPE]
    assert failures and any(names_class(test.diagnosis, bug_class) for test in failures)


if __name__ == "__main__":
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        results = grade_catalog(Path(folder))
    for name, bug_class, failed in results:
        print(f"{name} [{bug_class}]")
        for test in failed:
            mark = "+" if names_class(test.diagnosis, bug_class) else ("-" if test.outcome in VALUE_OR_SHAPE else " ")
            print(f"  {mark} {test.name}: {test.outcome}: {test.diagnosis}")
    named, total, missed = rate(results)
    print(f"named {named} of {total} ({named / max(total, 1):.1%})")
    sys.exit(0)
