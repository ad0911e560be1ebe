"""The contract between layer specs and the engine (design.md: the engine holds no layer names, a spec
imports nothing from the engine; gradeconv/specs/model.py is the one file a spec author needs).

Read from the source with `ast`, so an import hidden inside a function counts as much as one at the top,
and checked on the engine's side: what it does with what a spec's property functions return.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gradeconv import outcomes, specs
from gradeconv.judging import checks
from gradeconv.judging.cases import Case, CaseValues, Space
from gradeconv.results import CaseResult
from gradeconv.specs import model
from gradeconv.specs.model import Array, Equal, Function, Layer, Param, Properties, Var, Violation

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "gradeconv" / "specs").glob("*.py"))
#: the engine: modules that must work for any layer the registry holds, naming none
ENGINE = ("cases", "checks", "gradients", "diagnosis", "search", "plan", "runner", "grading", "stateful", "networks")


# --- a spec imports nothing from the engine ------------------------------------------------------------------------

def engine_imports(source: str, module: str) -> list[str]:
    """gradeconv modules outside gradeconv.specs that `module`'s source imports, anywhere in it."""
    package = module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] if base in ("gradeconv", "") else [base]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None)
                   in ("__import__", "import_module"))):
            names = [node.args[0].value]
        else:
            continue
        found += [name for name in names
                  if (name == "gradeconv" or name.startswith("gradeconv."))
                  and not (name == "gradeconv.specs" or name.startswith("gradeconv.specs."))]
    return found


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.name)
def test_a_spec_module_imports_nothing_from_the_engine(path):
    module = f"gradeconv.specs.{path.stem}"
    assert engine_imports(path.read_text(), module) == [], f"{module} imports the engine"


def test_every_spec_module_is_read():
    assert {"model", "dropout", "randomness", "windows", "domains", "__init__"} <= {path.stem for path in SPECS}


@pytest.mark.parametrize("source, found", [
    ("def f():\n    from gradeconv.judging import checks\n    from gradeconv import outcomes\n",
     ["gradeconv.judging", "gradeconv.outcomes"]),
    ("def f():\n    from gradeconv.results import CaseResult\n", ["gradeconv.results"]),
    ("import gradeconv.rubric as rubric\n", ["gradeconv.rubric"]),
    ("from ..judging import runner\n", ["gradeconv.judging"]),
    ("from ..judging.cases import Case\n", ["gradeconv.judging.cases"]),
    ("import importlib\nimportlib.import_module('gradeconv.judging.checks')\n", ["gradeconv.judging.checks"]),
    ("from gradeconv.specs import randomness\nfrom . import model\nfrom .domains import Normal\n", []),
    ("lines = ['from gradeconv.judging.checks import compare']  # a reproduction's text, not an import\n", []),
])
def test_the_import_check_sees_imports_anywhere(source, found):
    assert engine_imports(source, "gradeconv.specs.some_layer") == found


# --- the engine names no layer ---------------------------------------------------------------------------------------

def layer_names_in(source: str, names) -> list[tuple[int, str]]:
    """(line, name) of every string literal (docstrings and f-string parts included) naming a graded function."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b")
    return [(node.lineno, match) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            for match in pattern.findall(node.value)]


@pytest.mark.parametrize("module", ENGINE)
def test_the_engine_holds_no_layer_function_name(module):
    source = (ROOT / "gradeconv" / "judging" / f"{module}.py").read_text()
    assert layer_names_in(source, specs.FUNCTIONS) == []


def test_the_name_check_sees_literals_anywhere():
    source = ('"""Judges conv_forward_naive."""\n'
              'def f(name):\n    if name == "dropout_forward":\n        return f"{name}: max_pool_backward_naive"\n'
              '# a comment naming relu_forward is no literal\n')
    assert layer_names_in(source, specs.FUNCTIONS) == [(1, "conv_forward_naive"), (3, "dropout_forward"),
                                                       (4, "max_pool_backward_naive")]


# --- model.py holds the contract -------------------------------------------------------------------------------------

def test_the_outcomes_a_spec_names_are_the_results_outcomes():
    assert (model.WRONG_VALUE, model.WRONG_SHAPE, model.WRONG_TYPE) == (
        outcomes.WRONG_VALUE, outcomes.WRONG_SHAPE, outcomes.WRONG_TYPE)
    assert set(model.VIOLATIONS) <= set(outcomes.ALL) - {outcomes.PASSED}


def test_the_engine_objects_a_spec_reads_have_what_the_protocols_say():
    case_values = {field.name for field in dataclasses.fields(CaseValues)}
    assert set(model.Values.__annotations__) <= case_values
    space = Space({"n": (1, 2)}, {"mode": ("train", "test")})
    assert space.range("n") == (1, 2) and space.option("mode") == "train" and space.options["mode"]
    assert set(model.Space.__annotations__) <= {field.name for field in dataclasses.fields(Space)}
    assert Case("dropout_forward", (("p", 0.5),), 0).get("p") == 0.5
    assert set(model.Failure.__annotations__) <= {field.name for field in dataclasses.fields(CaseResult)}


def test_the_model_docstring_names_every_declaration():
    doc = model.__doc__
    assert "the one file a spec author needs" in doc and "domains.py" in doc
    for name in ("Layer", "Function", "Array", "Param", "Var", "Option", "Restriction", "Mistake", "Properties",
                 "Violation", "Equal", "Values", "Space", "Failure", "CaseView"):
        assert f"``{name}``" in doc, name


# --- the engine judges what a spec declares (gradeconv/judging/checks.py properties) ---------------------------------------

X = np.arange(1.0, 13.0).reshape(3, 4)


def judged(forward, got, again=None):
    """checks.properties on a made-up layer whose property check is `forward`, with x = X and out's shape X's."""
    layer = Layer(name="made_up", forward=Function("made_up_forward", ("out",), reference=None, returns_cache=True),
                  arguments=(Array("x", (3, 4)), Param("param", {"seed": Var("seed")})), ranges={},
                  properties=Properties(forward, backward=None))
    values = SimpleNamespace(layer=layer, reference_outputs={"out": X}, inputs={"x": X}, variables={"seed": 1})
    return checks.properties(values, got, again or (lambda **entries: (None, got)))


def test_a_violation_becomes_the_cases_failure():
    failure = judged(lambda values, got, again: Violation("kept too few", ("keep p",)), {"out": X})
    assert (failure.outcome, failure.message, failure.output, failure.hints) == (
        outcomes.WRONG_VALUE, "kept too few", "out", ("keep p",))
    assert judged(lambda values, got, again: None, {"out": X}) is None
    one = judged(lambda values, got, again: Violation("wrong", "one hint", outcome=model.WRONG_SHAPE), {"out": X})
    assert one.hints == ("one hint",) and one.outcome == outcomes.WRONG_SHAPE


def test_an_equal_is_compared_by_the_engine():
    def test_mode(values, got, again):
        return Equal("out", values.inputs["x"], "out must equal x", ("return x",))

    assert judged(test_mode, {"out": X + 1e-12}) is None
    failure = judged(test_mode, {"out": X * 2})
    assert failure.outcome == outcomes.WRONG_VALUE and failure.hints == ("return x",)
    assert failure.message.startswith("out must equal x: out is wrong: largest error 12 at index (2, 3)")


@pytest.mark.parametrize("out, outcome, message", [
    (X.ravel(), outcomes.WRONG_SHAPE, "out has shape (12,), expected (3, 4)"),
    (X.astype(np.float32), outcomes.WRONG_TYPE, "out has dtype float32, expected float64"),
    (np.where(X == 6, np.nan, X), outcomes.WRONG_VALUE, "out contains NaN or infinity, first at index (1, 1)"),
    (np.where(X == 7, -np.inf, X), outcomes.WRONG_VALUE, "out contains NaN or infinity, first at index (1, 2)"),
])
def test_the_structure_is_checked_before_the_spec_sees_an_output(out, outcome, message):
    seen = []
    failure = judged(lambda values, got, again: seen.append(got), {"out": out})
    assert seen == [] and failure.outcome == outcome and failure.message.startswith(message)
    # ... and the outputs of a call made again, named by the entries replaced
    first = judged(lambda values, got, again: again(seed=2)[0], {"out": X}, lambda **entries: (None, {"out": out}))
    assert first.outcome == outcome
    assert first.message.startswith("with another param['seed']: " + message)


def test_a_failure_of_a_call_made_again_is_passed_on_unchanged():
    crashed = CaseResult(outcomes.CRASHED, "the process died")
    assert judged(lambda values, got, again: again(seed=2)[0], {"out": X},
                  lambda **entries: (crashed, None)) is crashed


@pytest.mark.parametrize("returned", [True, False, "", "passed", {}, Violation("fine", outcome=outcomes.PASSED),
                                      Violation("odd", outcome="great"), CaseResult(outcomes.PASSED)],
                         ids=repr)
def test_any_other_answer_is_no_pass(returned):
    with pytest.raises(TypeError):  # run_case makes it an error: the grader could not judge the reply
        judged(lambda values, got, again: returned, {"out": X})


def test_dropout_test_mode_keeps_its_message_and_hints():
    from gradeconv.specs import dropout
    values = SimpleNamespace(layer=specs.layer_of("dropout_forward"), inputs={"x": X}, reference_outputs={"out": X},
                             variables={"p": 0.5, "mode": "test", "mask_seed": 3})
    failure = checks.properties(values, {"out": X * 0.5}, lambda **entries: (None, None))
    assert failure.message.startswith("in test mode out must equal x: out is wrong: largest error 6 at index (2, 3)")
    assert failure.hints == (dropout.TEST_IDENTITY, "test mode must not multiply by p: with inverted dropout the "
                                                    "scaling is done in train mode")
    assert failure.output == "out" and failure.outcome == outcomes.WRONG_VALUE
    assert checks.properties(values, {"out": X.copy()}, lambda **entries: (None, None)) is None
