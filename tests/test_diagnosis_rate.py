"""The diagnosis names the bug class for at least 90% of the wrong-value and wrong-shape failures
of single-bug mutants of correct solutions (tests/diagnosis_catalog.py).

Run as a script to see every mutant's failures and diagnoses:
    PYTHONPATH=. python3 -m tests.test_diagnosis_rate
"""
from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pytest

import gradeconv
from gradeconv import rubric as rubrics
from tests.diagnosis_catalog import BASES, CLASSES, MUTANTS, mutant_source, names_class, other_classes

RATE = 0.9
#: at most this share of those failures may also name a class the bug is not of
ASTRAY = 0.1
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


def grade_mutant(folder: Path, mutant) -> tuple[str, str, list]:
    """(mutant id, its class, its failed tests)."""
    name, base, edits, bug_class = mutant
    package = folder / name / "cs231n"
    package.mkdir(parents=True)
    (package / "layers.py").write_text(mutant_source(base, edits))
    result = gradeconv.grade(package.parent, rubric_for(base))[0]
    return name, bug_class, [test for test in result.tests if not test.passed]


def grade_catalog(folder: Path) -> list[tuple[str, str, list]]:
    """Every mutant of the catalog graded, two at a time (processes: Python 3.11's ast.parse is not thread-safe)."""
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(partial(grade_mutant, folder), MUTANTS))


def rate(graded) -> tuple[int, int, list[str], list[str]]:
    """(named, value/shape failures, those whose diagnosis misses the class, those naming another class)."""
    named, total, missed, astray = 0, 0, [], []
    for name, bug_class, failed in graded:
        for test in failed:
            if test.outcome not in VALUE_OR_SHAPE:
                continue
            total += 1
            line = f"{name} [{bug_class}] {test.name}: {test.outcome}: {test.diagnosis}"
            if names_class(test.diagnosis, bug_class):
                named += 1
            else:
                missed.append(line)
            if other_classes(test.diagnosis, bug_class):
                astray.append(line)
    return named, total, missed, astray


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_catalog(tmp_path_factory.mktemp("mutants"))


def test_every_mutant_fails(graded):
    """A mutant that passes everything measures nothing: the catalog only holds bugs the rubrics catch."""
    assert [name for name, _, failed in graded if not failed] == []


def test_diagnosis_names_the_bug_class(graded):
    named, total, missed, _ = rate(graded)
    print(f"\ndiagnosis names the bug class for {named} of {total} wrong-value/shape failures "
          f"({named / total:.1%})")
    assert total >= 40
    assert named / total >= RATE, "\n".join(missed)


def test_diagnosis_rarely_names_a_class_the_bug_is_not_of(graded):
    _, total, _, astray = rate(graded)
    print(f"\n{len(astray)} of {total} diagnoses also name another bug class")
    assert len(astray) / total <= ASTRAY, "\n".join(astray)


@pytest.mark.parametrize("bug_class", sorted(CLASSES))
def test_every_class_is_in_the_catalog_and_named_at_least_once(graded, bug_class):
    failures = [test for _, cls, failed in graded if cls == bug_class for test in failed
                if test.outcome in VALUE_OR_SHAPE]
    assert failures and any(names_class(test.diagnosis, bug_class) for test in failures)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        results = grade_catalog(Path(folder))
    for name, bug_class, failed in results:
        print(f"{name} [{bug_class}]")
        for test in failed:
            mark = "+" if names_class(test.diagnosis, bug_class) else ("-" if test.outcome in VALUE_OR_SHAPE else " ")
            astray = other_classes(test.diagnosis, bug_class)
            print(f"  {mark} {test.name}: {test.outcome}: {test.diagnosis}" + (f"  [also {astray}]" if astray else ""))
    named, total, missed, astray = rate(results)
    print(f"named {named} of {total} ({named / max(total, 1):.1%}); {len(astray)} also name another class")
    sys.exit(0)
