"""Each classic update-rule bug fails exactly the update-rule tests it should, with its spec's diagnosis.

The mutants are single textual edits of the student-style optim.py of tests/solutions/a2, graded
with the update-rule tests of the bundled assignment2 rubric (gradeconv/specs/optim.py). The hint
expected is the spec's own Mistake hint, and no other mistake of the same rule may be named.
"""
from __future__ import annotations

import pytest

from gradeconv import rubric as rubrics
from gradeconv import specs
from gradeconv.judging.grading import grade_submission
from gradeconv.specs import optim as optim_spec
from gradeconv.submissions import Submission
from tests.conftest import ROOT

SOLUTION = (ROOT / "tests" / "solutions" / "a2" / "cs231n" / "optim.py").read_text()

MOMENTUM = {"sgd_momentum"}
RMSPROP = {"rmsprop", "rmsprop: tiny gradients (epsilon's place)"}
ADAM = {"adam", "adam: tiny gradients (epsilon's place)"}

ADAM_T = '    config["t"] += 1\n    t = config["t"]\n'
MOMENTUM_STEP = ('    v = config["momentum"] * v - config["learning_rate"] * dw\n'
                 '    next_w = w + v\n')
RMSPROP_STEP = 'dw / (np.sqrt(config["cache"]) + config["epsilon"])'


def _hint(function: str, fragment: str) -> str:
    """The spec's hint of the mistake of `function` containing `fragment` (fails if there is none)."""
    found = {mistake.hint for mistake in specs.function(function).mistakes if fragment in mistake.hint}
    assert len(found) == 1, (function, fragment, found)
    return found.pop()


NO_CORRECTION = _hint("adam", "divides by the bias corrections")
NO_POWER = _hint("adam", "beta to the power t")
T_NOT_STORED = _hint("adam", "config['t'] = ...")
T_LATE = _hint("adam", "increment t before")
ADAM_EPS = _hint("adam", "outside the square root")
RMSPROP_EPS = _hint("rmsprop", "outside the square root")
NOT_SQUARED = _hint("rmsprop", "squared gradients")
LATE_VELOCITY = _hint("sgd_momentum", "update the velocity first")
VELOCITY_NOT_STORED = _hint("sgd_momentum", "config['velocity'] = ...")

# (id, [(old, new), ...] each old occurring once, tests that must fail, {function: the hint its failures carry})
MUTANTS = [
    ("adam_without_bias_correction",
     [('mt = config["m"] / (1 - beta1 ** t)', 'mt = config["m"]'),
      ('vt = config["v"] / (1 - beta2 ** t)', 'vt = config["v"]')],
     ADAM, {"adam": NO_CORRECTION}),
    ("adam_t_not_written_back", [(ADAM_T, '    t = config["t"] + 1\n')], ADAM, {"adam": T_NOT_STORED}),
    ("adam_divides_by_1_minus_beta",
     [("(1 - beta1 ** t)", "(1 - beta1)"), ("(1 - beta2 ** t)", "(1 - beta2)")], ADAM, {"adam": NO_POWER}),
    ("adam_t_incremented_after_the_correction",
     [(ADAM_T, '    t = config["t"]\n'), ("    next_w = w - lr", '    config["t"] += 1\n    next_w = w - lr')],
     ADAM, {"adam": T_LATE}),
    # epsilon's place shows only where the second moment is tiny: v starting at 0 (the config leaves it out)
    # under tiny gradients; both adam tests draw such cases (the first draws dw_scale among 1 and 1e-4)
    ("adam_epsilon_inside_the_square_root", [("(np.sqrt(vt) + eps)", "np.sqrt(vt + eps)")],
     ADAM, {"adam": ADAM_EPS}),
    ("rmsprop_epsilon_inside_the_square_root",
     [(RMSPROP_STEP, 'dw / np.sqrt(config["cache"] + config["epsilon"])')], RMSPROP, {"rmsprop": RMSPROP_EPS}),
    ("rmsprop_dw_not_squared", [("(1 - decay) * dw * dw", "(1 - decay) * dw")], RMSPROP, {"rmsprop": NOT_SQUARED}),
    ("momentum_steps_with_the_old_velocity",
     [(MOMENTUM_STEP, '    next_w = w + v\n    v = config["momentum"] * v - config["learning_rate"] * dw\n')],
     MOMENTUM, {"sgd_momentum": LATE_VELOCITY}),
    ("momentum_velocity_not_stored", [('    config["velocity"] = v\n', "")],
     MOMENTUM, {"sgd_momentum": VELOCITY_NOT_STORED}),
    ("momentum_hard_coded_learning_rate",
     [('v = config["momentum"] * v - config["learning_rate"] * dw', 'v = config["momentum"] * v - 1e-2 * dw')],
     MOMENTUM, {"sgd_momentum": optim_spec.HARD_CODED.format(rate=1e-2)}),
    ("rmsprop_hard_coded_learning_rate",
     [('next_w = w - config["learning_rate"] * dw / (', "next_w = w - 1e-2 * dw / (")],
     RMSPROP, {"rmsprop": optim_spec.HARD_CODED.format(rate=1e-2)}),
    ("adam_hard_coded_learning_rate",
     [('lr, beta1, beta2, eps = config["learning_rate"],', "lr, beta1, beta2, eps = 1e-3,")],
     ADAM, {"adam": optim_spec.HARD_CODED.format(rate=1e-3)}),
    # the course's 2016-17 starter code began t at 1: a convention the spec accepts
    ("adam_t_starting_at_1", [('config.setdefault("t", 0)', 'config.setdefault("t", 1)')], set(), {}),
]


@pytest.fixture(scope="module")
def rubric():
    """The bundled assignment2 rubric's update-rule tests (those of optim.py), with their own examples."""
    data = rubrics.load(rubrics.bundled()["assignment2"]).model_dump()
    data["tests"] = [test for test in data["tests"] if test["module"] == "optim.py"]
    return rubrics.Rubric.model_validate(data)


def mutant(edits: list[tuple[str, str]]) -> str:
    source = SOLUTION
    for old, new in edits:
        assert source.count(old) == 1, f"anchor not found once: {old!r}"
        source = source.replace(old, new)
    return source


def grade(tmp_path, name: str, source: str, rubric):
    package = tmp_path / name / "cs231n"
    package.mkdir(parents=True)
    (package / "optim.py").write_text(source)
    return grade_submission(Submission(name, package.parent), rubric, "none")


def test_the_rubric_grades_the_three_rules(rubric):
    assert {test.function for test in rubric.tests} == {"sgd_momentum", "rmsprop", "adam"}
    assert {test.name for test in rubric.tests} == MOMENTUM | RMSPROP | ADAM


def test_the_correct_rules_pass(tmp_path, rubric):
    result = grade(tmp_path, "correct", SOLUTION, rubric)
    assert [test.name for test in result.tests if not test.passed] == []


@pytest.mark.parametrize("name,edits,should_fail,hints", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_bug_fails_exactly_its_tests_with_its_diagnosis(tmp_path, rubric, name, edits, should_fail, hints):
    result = grade(tmp_path, name, mutant(edits), rubric)
    failed = {test.name: test for test in result.tests if not test.passed}
    assert set(failed) == should_fail, {name: test.output for name, test in failed.items()}
    assert result.score == rubric.max_score - sum(test.points for test in rubric.tests if test.name in should_fail)
    for test in failed.values():
        assert test.outcome == "wrong_value", test.output
        assert test.counterexample, f"{test.name} failed without a counterexample"
        expected = hints[test.function]
        assert expected in (test.diagnosis or ""), f"{test.name}: {test.diagnosis}"
        others = [mistake.hint for mistake in specs.function(test.function).mistakes if mistake.hint != expected]
        assert not [hint for hint in others if hint in test.diagnosis], f"{test.name}: {test.diagnosis}"


def test_a_dropped_power_is_not_taken_for_t_incremented_late(tmp_path, rubric):
    """On one step from t = 1 the two agree (1 - beta == 1 - beta**1); the trigger tells them apart."""
    edits = next(edits for name, edits, *_ in MUTANTS if name == "adam_divides_by_1_minus_beta")
    failed = [test for test in grade(tmp_path, "power", mutant(edits), rubric).tests if not test.passed]
    assert failed and all(optim_spec.T_ABOVE_ONE in test.diagnosis for test in failed)
    assert not any(T_LATE in test.diagnosis for test in failed)


@pytest.mark.parametrize("name,needs", [
    # Adam's v starts at 0 only when the config leaves it out, and then only tiny gradients make
    # sqrt(vt) comparable to epsilon; rmsprop's first cache, 0.01 * dw**2, is small enough at any scale
    ("adam_epsilon_inside_the_square_root", ("config leaves out entries (defaults)", "tiny gradients")),
    ("rmsprop_epsilon_inside_the_square_root", ("config leaves out entries (defaults)",)),
])
def test_epsilons_place_shows_only_where_the_state_starts_at_zero(tmp_path, rubric, name, needs):
    edits = next(edits for mutant_name, edits, *_ in MUTANTS if mutant_name == name)
    failed = [test for test in grade(tmp_path, name, mutant(edits), rubric).tests if not test.passed]
    assert failed and all(needs[0] in test.diagnosis for test in failed)
    generated = next(test for test in failed if "tiny gradients" not in test.name)  # draws dw_scale 1 and 1e-4
    assert all(trigger in generated.diagnosis for trigger in needs), generated.diagnosis
    if len(needs) == 1:
        assert "tiny gradients" not in generated.diagnosis
