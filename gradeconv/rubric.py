"""The YAML rubric: its schema, loading and validation.

Every validation error names the file, the line and the key, and says what is
allowed. Unknown keys are errors.
"""
from __future__ import annotations

import hashlib
import os
import re
import typing
import zlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from gradeconv import specs
from gradeconv.judging.cases import Space, space_of, validate_explicit, validate_space

BUNDLED = Path(__file__).with_name("rubrics")
DEFAULT_RUBRIC = BUNDLED / "default.yaml"
#: every function a rubric can grade (gradeconv/specs/ declares them)
FUNCTIONS = tuple(specs.FUNCTIONS)


def _python_file(value: str) -> str:
    """A graded file inside the package: layers.py, or a path such as classifiers/fc_net.py."""
    parts = value.split("/")
    if not value.endswith(".py") or not all(part.isidentifier() for part in [*parts[:-1], parts[-1][:-3]]):
        raise ValueError("module must be a .py file inside the package, like layers.py or classifiers/fc_net.py")
    return value


def dotted(module: str) -> str:
    """classifiers/fc_net.py -> classifiers.fc_net: how the package imports it."""
    return module[:-3].replace("/", ".")


#: the course helpers a rubric can provide besides im2col.py (reference/provided/)
PROVIDED = ("fast_layers.py", "layer_utils.py", "solver.py")


def bundled() -> dict[str, Path]:
    """The rubrics shipped with gradeconv, by name (default first)."""
    paths = sorted(BUNDLED.glob("*.yaml"), key=lambda path: (path.stem != "default", path.stem))
    return {path.stem: path for path in paths}


def locate(name: str) -> Path:
    """A bundled rubric's file for its name; anything else is taken as a path."""
    path = Path(name)
    if not path.exists() and name in bundled():
        return bundled()[name]
    if not path.exists() and path.suffix == "" and "/" not in name:
        raise RubricError(f"{name}: no such rubric file, and no bundled rubric of that name "
                          f"(bundled: {', '.join(bundled())})")
    return path


class RubricError(Exception):
    """A rubric that cannot be used; the message names the file, line and key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceCheck(Strict):
    rtol: float = Field(1e-6, gt=0)
    atol: float = Field(1e-8, ge=0)


class GradientCheck(Strict):
    mode: Literal["directional", "full"] = "directional"
    directions: int = Field(2, ge=1, le=50)
    step: float = Field(1e-6, gt=0)
    tolerance: float = Field(1e-5, gt=0)
    forward: Literal["reference", "submission"] = "reference"


class Checks(Strict):
    reference: ReferenceCheck | None = ReferenceCheck()
    gradient: GradientCheck | None = None
    inputs_unchanged: bool = True


class Test(Strict):
    name: str = Field(min_length=1)
    function: str
    description: str | None = Field(None, max_length=500)  # what the test checks, in words (default: made up)
    module: str | None = None  # the file that defines the function; default: the rubric's module
    points: float = Field(ge=0)
    visibility: Literal["visible", "hidden", "after_due_date", "after_published"] = "visible"
    outputs: tuple[str, ...] | None = None
    examples: int = Field(20, ge=0, le=1000)
    space: dict[str, Any] = {}
    cases: tuple[dict[str, Any], ...] = ()
    checks: Checks = Checks()
    tags: tuple[str, ...] = ()

    @field_validator("function")
    @classmethod
    def known_function(cls, value: str) -> str:
        if value not in specs.FUNCTIONS:
            raise ValueError(f"unknown function {value!r}; `gradeconv rubrics` lists the gradable ones")
        return value

    @field_validator("module")
    @classmethod
    def module_file(cls, value: str | None) -> str | None:
        return value if value is None else _python_file(value)

    @field_validator("space")
    @classmethod
    def space_fits(cls, value: dict, info: ValidationInfo) -> dict:
        if "function" in info.data:
            validate_space(specs.layer_of(info.data["function"]), value)
        return value

    @field_validator("cases")
    @classmethod
    def cases_fit(cls, value: tuple, info: ValidationInfo) -> tuple:
        if "function" in info.data:
            layer = specs.layer_of(info.data["function"])
            for number, case in enumerate(value):
                try:
                    validate_explicit(layer, case)
                except ValueError as error:
                    keyed = re.match(r"^\w+: ", str(error))
                    raise ValueError(f"{number}{'.' if keyed else ': '}{error}") from None
        return value

    @model_validator(mode="after")
    def outputs_match_function(self) -> "Test":
        layer, function = specs.FUNCTIONS[self.function]
        allowed = function.outputs
        if function is layer.forward:  # the entries a forward must update can be scored on their own
            allowed += tuple(key for param in layer.params for key in param.updated)
        if self.outputs and not set(self.outputs) <= set(allowed):
            raise ValueError(f"outputs of {self.function} are {list(allowed)}, not {list(self.outputs)}")
        if self.examples == 0 and not self.cases:
            raise ValueError("a test needs examples > 0 or at least one explicit case")
        return self

    @property
    def layer(self) -> specs.Layer:
        return specs.layer_of(self.function)

    @property
    def described(self) -> str:
        """What the test checks, in a sentence: the rubric's description, else one made from its fields."""
        if self.description:
            return self.description
        outputs = self.outputs or specs.function(self.function).outputs
        cases = [f"{len(self.cases)} fixed case{'s' if len(self.cases) != 1 else ''}"] if self.cases else []
        cases += [f"{self.examples} generated cases"] if self.examples else []
        space = ", ".join(f"{key} in {value}" for key, value in self.space.items())
        return (f"{self.function}: {', '.join(outputs)} checked on {' and '.join(cases)}"
                + (f" ({space})" if space else ""))

    @property
    def draw_space(self) -> Space:
        """Where this test's cases are drawn from: the layer's defaults with the rubric's changes."""
        return space_of(self.layer, self.space)


class Limits(Strict):
    call_seconds: float = Field(5.0, gt=0)
    submission_seconds: float = Field(120.0, gt=0)
    memory_mb: int = Field(2048, ge=64)
    processes: int = Field(32, ge=4, le=4096)
    scratch_mb: int = Field(256, ge=1)


class Rubric(Strict):
    module: str = "layers.py"
    package: str = "cs231n"
    helper: Literal["provided", "submission"] = "provided"
    limits: Limits = Limits()
    forbidden_imports: tuple[str, ...] = ("torch", "tensorflow", "jax")
    seed: int = Field(0, ge=0)
    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_file: str | None = None
    tests: tuple[Test, ...] = Field(min_length=1)
    title: str | None = Field(None, max_length=200)  # the course and assignment, e.g. for the HTML report
    #: course helpers staged into the package (fast_layers.py always replaces the student's copy, whose
    #: compiled part cannot run; layer_utils.py and solver.py only where the submission has none)
    provided: tuple[Literal[PROVIDED], ...] = ()
    _path: str = PrivateAttr("")  # set by load(), never by the file
    _sha256: str = PrivateAttr("")
    _secret: str = PrivateAttr("")  # read by load() from secret_file or secret_env, never stored

    @field_validator("module")
    @classmethod
    def python_file(cls, value: str) -> str:
        return _python_file(value)

    @model_validator(mode="after")
    def one_secret(self) -> "Rubric":
        if self.secret_env and self.secret_file:
            raise ValueError("give the secret either by secret_env or by secret_file, not both")
        return self

    @model_validator(mode="after")
    def unique_names(self) -> "Rubric":
        names = [test.name for test in self.tests]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"test names must be unique; repeated: {duplicates}")
        return self

    @property
    def path(self) -> str:
        return self._path

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def secret_fingerprint(self) -> str | None:
        """Names the secret in results without revealing it (None when there is no secret)."""
        if not self._secret:
            return None
        return hashlib.sha256(b"gradeconv secret fingerprint\0" + self._secret.encode()).hexdigest()[:16]

    def seed_of(self, test: Test, purpose: str = "") -> int:
        """The search seed of a test: public for visible tests, mixed with the secret for the others."""
        key = test.name + purpose
        if test.visibility == "visible" or not self._secret:
            return self.seed * 1_000_003 + zlib.crc32(key.encode())
        digest = hashlib.sha256(f"{self._secret}\0{self.seed}\0{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def value_seed(self, test: Test, seed: int, salt: str = "") -> int:
        """The value seed of a case: for tests students cannot see, mixed with the secret and the salt
        (a hash of the submission's graded file), so no two different submissions see the same inputs."""
        if not self.salted(test):
            return seed
        digest = hashlib.sha256(f"{self._secret}\0{test.name}\0{seed}\0{salt}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    def salted(self, test: Test) -> bool:
        """Whether the test's values depend on the secret and the submission (hidden behind a secret)."""
        return test.visibility != "visible" and bool(self._secret)

    @property
    def max_score(self) -> float:
        return sum(test.points for test in self.tests)

    def predictable(self) -> list[str]:
        """Why a submission could carry answers recorded in advance instead of layer code (empty: it cannot)."""
        hidden = [test for test in self.tests if test.visibility != "visible"]
        if not self._secret or not hidden:
            return ["every case of this rubric can be worked out in advance from the rubric itself (no test is "
                    "hidden behind a secret), so a submission could return recorded answers instead of computing "
                    "them; for grades that count, set secret_env or secret_file and make tests hidden (README: "
                    "\"Hidden tests and a secret\")"]
        return [f"test {test.name!r} is hidden, but its cases with values: notebook use the course notebook's "
                "public values, which no secret changes: a submission could return recorded answers for them"
                for test in hidden if any(case.get("values") == "notebook" for case in test.cases)]

    @property
    def functions(self) -> list[str]:
        return sorted({test.function for test in self.tests})

    def module_of(self, test: Test) -> str:
        return test.module or self.module

    @property
    def modules(self) -> list[str]:
        """The files the tests grade, in the order they first appear."""
        return list(dict.fromkeys(self.module_of(test) for test in self.tests))


def _line_of(node: yaml.Node, location: tuple) -> int:
    """The 1-based line of the YAML node at a pydantic error location."""
    line = node.start_mark.line
    for key in location:
        if isinstance(node, yaml.MappingNode):
            matches = [(k, v) for k, v in node.value if k.value == key]
            if not matches:
                break
            key_node, node = matches[0]
            line = key_node.start_mark.line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _model_in(annotation) -> type[BaseModel] | None:
    """The model class an annotation holds (Test in tuple[Test, ...], Space in Space | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, typing.get_args(annotation))), None)


def _allowed_keys(location: tuple) -> list[str]:
    """The keys the rubric allows in the mapping that holds `location`."""
    model: type[BaseModel] | None = Rubric
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = field and _model_in(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _located(error: dict) -> tuple[tuple, str]:
    """(location, message) of a pydantic error; a value error saying "key.key: ..." points into its value."""
    location = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    message = error["msg"]
    if error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        keyed = re.match(r"^([\w.]+): (.*)$", message, re.S)
        if keyed:
            inner = tuple(int(part) if part.isdigit() else part for part in keyed.group(1).split("."))
            location, message = location + inner, keyed.group(2)
    return location, message


def _describe(error: dict) -> str:
    location_parts, message = _located(error)
    location = ".".join(map(str, location_parts))
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(error["loc"]))
        message = f"unknown key; allowed here: {allowed}" if allowed else "unknown key"
    elif error["type"] == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    return f"{location or '(top level)'}: {message}"


def load(path: Path | None = None) -> Rubric:
    """Read and validate a rubric file (the bundled default when path is None)."""
    path = Path(path) if path is not None else DEFAULT_RUBRIC
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricError(f"{path}: rubric file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RubricError(f"{path}: cannot read the rubric ({error})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise RubricError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(data, dict):
        raise RubricError(f"{path}: the rubric must be a mapping with at least a 'tests' list")
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as error:
        errors = error.errors()
        # A list whose items failed also reports itself as too short: only the items' errors help.
        failed_items = {e["loc"][:1] for e in errors if len(e["loc"]) > 1}
        errors = [e for e in errors if not (e["type"] == "too_short" and e["loc"][:1] in failed_items)]
        problems = [f"{path}:{_line_of(node, _located(e)[0])}: {_describe(e)}" for e in errors]
        raise RubricError("\n".join(problems)) from None
    rubric._path = str(path)
    rubric._sha256 = hashlib.sha256(text.encode()).hexdigest()
    rubric._secret = _read_secret(rubric, path)
    return rubric


def _read_secret(rubric: Rubric, path: Path) -> str:
    """The hidden tests' secret, from the file (relative to the rubric) or the variable the rubric names."""
    if rubric.secret_file:
        secret_path = (path.parent / rubric.secret_file).resolve()
        try:
            secret = secret_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise RubricError(f"{path}: secret_file {secret_path} cannot be read ({error})") from None
        if not secret:
            raise RubricError(f"{path}: secret_file {secret_path} is empty")
        return secret
    if rubric.secret_env:
        secret = os.environ.get(rubric.secret_env, "").strip()
        if not secret:
            raise RubricError(f"{path}: the rubric takes its secret from the environment variable "
                              f"{rubric.secret_env}, which is not set")
        return secret
    return ""
