"""Submission-level problems: what makes a whole graded file ungradable, found without running it.

A syntax error (with its line and a caret) or a file that is not the graded module
(a layers.py checked against a rubric grading rnn_layers.py) is one problem of the
submission, said once, not a failure of each of its tests. Judged in the parent on
the staged bytes: compiling runs nothing the student wrote.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from gradeconv import outcomes
from gradeconv.judging.diagnosis import VERSION_HINTS

#: functions named in a wrong-module message before "..."
NAMED = 3


@dataclass(frozen=True)
class Problem:
    """Why no test of a graded file can run: the tests' outcome and the message (first line, then detail)."""

    outcome: str
    message: str

    @property
    def headline(self) -> str:
        return self.message.splitlines()[0] if self.message else ""

    @property
    def hint(self) -> str | None:
        """What to write instead, for a Python 2 leftover or a name numpy removed (diagnosis.VERSION_HINTS)."""
        return next((hint for needles, hint in VERSION_HINTS if all(needle in self.message for needle in needles)),
                    None)


def module_problem(source: bytes, module: str, functions: list[str], filename: str | None = None) -> Problem | None:
    """The problem of the graded file `module` whose bytes are `source`, or None if its tests can run.

    functions: the graded functions the file should define; filename: the name it was submitted as.
    """
    problem = syntax_problem(source, module)
    if problem is not None:
        return problem
    return wrong_module(source, module, functions, filename or module)


def syntax_problem(source: bytes, module: str) -> Problem | None:
    """A syntax error as Python reports it, with the offending line and a caret under it."""
    try:
        compile(source, module, "exec", dont_inherit=True)
    except SyntaxError as error:
        return Problem(outcomes.ERROR, _syntax_message(error, module))
    except ValueError as error:  # null bytes
        return Problem(outcomes.ERROR, f"SyntaxError in {module}: {error}")
    except (RecursionError, MemoryError):
        return None  # the worker reports what it can; nothing to add here
    return None


def _syntax_message(error: SyntaxError, module: str) -> str:
    where = f"{module}:{error.lineno}" if error.lineno else module
    lines = [f"{type(error).__name__} in {where}: {error.msg}"]
    text = (error.text or "").rstrip("\r\n")
    if text.strip():
        stripped = text.lstrip()
        indent = len(text) - len(stripped)
        lines.append(f"    {stripped[:200]}")
        if error.offset and error.offset - 1 >= indent:
            lines.append("    " + " " * min(error.offset - 1 - indent, 200) + "^")
    return "\n".join(lines)


def wrong_module(source: bytes, module: str, functions: list[str], filename: str) -> Problem | None:
    """A file that defines none of the graded functions: not the module the rubric grades."""
    if not functions:
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    defined, star = _top_level_names(tree.body)
    functions = list(dict.fromkeys(name.split(".")[0] for name in functions))  # a model's phase: its class
    if star or "__getattr__" in defined or defined & set(functions):
        return None
    named = ", ".join(functions[:NAMED]) + (", ..." if len(functions) > NAMED else "")
    if filename == module or filename.endswith(f"_{module}"):
        return Problem(outcomes.NOT_IMPLEMENTED,
                       f"{module} defines none of the functions this rubric grades ({named})")
    return Problem(outcomes.NOT_IMPLEMENTED,
                   f"this is not {module}: {filename} defines none of its functions ({named}); "
                   f"submit your {module}, or check with another rubric")


def _top_level_names(body: list[ast.stmt]) -> tuple[set[str], bool]:
    """Names bound at module level (in if/try/with blocks too), and whether a star import may bind more."""
    names: set[str] = set()
    star = False
    pending = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                star = star or alias.name == "*"
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            star = star or _dynamic(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody"):
                pending.extend(getattr(node, field, []))
            pending.extend(stmt for handler in getattr(node, "handlers", []) for stmt in handler.body)
        else:
            star = star or _dynamic(node)
    return names, star


def _dynamic(node: ast.AST) -> bool:
    """Whether the statement may bind names we cannot see: globals()[...] = ..., exec(...), setattr(module, ...)."""
    return any(isinstance(n, ast.Name) and n.id in ("globals", "exec", "setattr", "vars", "__import__")
               for n in ast.walk(node))
