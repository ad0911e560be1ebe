"""Fingerprints of a module's functions that survive the usual disguises of a copy.

Each top-level function (and each method of a top-level class) becomes a stream of
tokens read off its syntax tree, normalised so that what a copier changes cheaply does
not change the stream:

- identifiers by role: a parameter is `P`, any other local `V`, a function of the same
  module `F`; an imported module or name is its full dotted name (`np` and `numpy` alike);
  attributes, keywords and builtins keep their names (the numpy API is the code);
- literals by kind (`NUM`, `STR`); docstrings, comments, `pass`, prints, imports and type
  annotations leave nothing; the signature leaves nothing (the course fixes it);
- `a += b` is `a = a + b`; `for` and `while` are both a `LOOP`;
- within a block, statements that do not depend on each other (neither writes what the
  other reads or writes) are put in one canonical order, so swapping them changes nothing.

The stream is cut into k-grams whose hashes are winnowed (Schleimer, Wilkerson and Aiken,
"Winnowing: local algorithms for document fingerprinting", SIGMOD 2003): the minimum of
each window of `window` consecutive hashes is kept, so any shared run of at least
`k + window - 1` tokens leaves a shared fingerprint, at about 2/(window+1) of the k-grams.
Each fingerprint keeps the source lines its k-gram came from, to show matching regions.
Student code is only parsed (`ast.parse`), never run.
"""
from __future__ import annotations

import ast
import builtins
import heapq
import zlib
from dataclasses import dataclass, field

#: tokens per k-gram and k-grams per winnowing window (tuned in benchmarks/similarity_quality.py)
K = 10
WINDOW = 5
BUILTIN_NAMES = frozenset(dir(builtins))
#: a longer block keeps its order (finding independent statements takes time quadratic in its length)
MAX_REORDERED = 200
#: statements that end a block's flow: nothing moves across them
BARRIERS = (ast.Return, ast.Break, ast.Continue, ast.Raise)


@dataclass(frozen=True)
class Token:
    text: str
    line: int


@dataclass
class FunctionPrint:
    """One function's fingerprints: hash -> the (first, last) source lines of each k-gram that gave it."""
    name: str
    first_line: int
    source: str
    tokens: int
    fingerprints: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


class Unparsable(Exception):
    """A module that is not valid Python; the message says where."""


def module_prints(source: str, k: int = K, window: int = WINDOW) -> dict[str, FunctionPrint]:
    """The fingerprints of every top-level function (and `Class.method`) of a module's source."""
    try:
        tree = ast.parse(source)
        names = _ModuleNames(tree)
        lines = source.splitlines()
        prints: dict[str, FunctionPrint] = {}
        for name, node in _functions(tree):
            tokens = function_tokens(node, names)
            text = "\n".join(lines[node.lineno - 1:node.end_lineno])
            prints[name] = FunctionPrint(name, node.lineno, text, len(tokens), winnow(tokens, k, window))
        return prints
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        raise Unparsable(f"not valid Python{f' (line {line})' if line else ''}: {getattr(error, 'msg', error)}") from None
    except (RecursionError, MemoryError):
        raise Unparsable("nested too deeply to compare") from None


def _functions(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{member.name}", member


class _ModuleNames:
    """What a module-level name stands for: an import's full name, or one of the module's functions."""

    def __init__(self, tree: ast.Module):
        self.imports: dict[str, str] = {}
        self.functions: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = alias.name  # `from a import b as c`: c is b
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.functions.add(node.name)


def function_tokens(node: ast.FunctionDef | ast.AsyncFunctionDef, names: _ModuleNames) -> list[Token]:
    """The normalised token stream of a function's body."""
    return _Emitter(node, names).block(node.body)


class _Emitter:
    def __init__(self, function: ast.FunctionDef | ast.AsyncFunctionDef, names: _ModuleNames):
        self.names = names
        arguments = function.args
        self.parameters = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                                           *filter(None, [arguments.vararg, arguments.kwarg])]}
        self.locals = set(self.parameters)
        for child in ast.walk(function):
            if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                self.locals.add(child.id)
            elif isinstance(child, ast.arg):
                self.locals.add(child.arg)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child is not function:
                self.locals.add(child.name)
            elif isinstance(child, ast.ExceptHandler) and child.name:
                self.locals.add(child.name)

    # ------------------------------------------------------------ statements

    def block(self, statements: list[ast.stmt]) -> list[Token]:
        """A block's statements in canonical order: independent neighbours sorted by their tokens."""
        items = []
        for group in _counting_loops(statements):
            reads, writes = set(), set()
            for statement in group:
                effects = self._effects(statement)
                reads |= effects[0]
                writes |= effects[1]
            tokens = self.counting_loop(*group) if len(group) == 2 else self.statement(group[0])
            if tokens:
                items.append((tokens, reads, writes, isinstance(group[0], BARRIERS)))
        if len(items) > MAX_REORDERED:
            return [token for item in items for token in item[0]]
        after: list[set[int]] = [set() for _ in items]  # after[j]: the statements j must follow
        for j, (_, reads_j, writes_j, barrier_j) in enumerate(items):
            for i in range(j):
                _, reads_i, writes_i, barrier_i = items[i]
                if (barrier_i or barrier_j or writes_i & (reads_j | writes_j) or writes_j & reads_i):
                    after[j].add(i)
        waiting = [len(a) for a in after]
        followers: list[list[int]] = [[] for _ in items]
        for j, before in enumerate(after):
            for i in before:
                followers[i].append(j)
        ready = [(self._key(items[j][0]), j) for j in range(len(items)) if not waiting[j]]
        heapq.heapify(ready)
        tokens: list[Token] = []
        while ready:
            _, i = heapq.heappop(ready)
            tokens += items[i][0]
            for j in followers[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    heapq.heappush(ready, (self._key(items[j][0]), j))
        return tokens

    @staticmethod
    def _key(tokens: list[Token]) -> tuple[str, ...]:
        return tuple(token.text for token in tokens)

    def _effects(self, statement: ast.stmt) -> tuple[set[str], set[str]]:
        """(names read, names written) by a statement; a bare call may change every local it touches."""
        reads, writes = set(), set()
        for node in ast.walk(statement):
            if isinstance(node, ast.Name):
                (reads if isinstance(node.ctx, ast.Load) else writes).add(node.id)
            elif isinstance(node, (ast.Subscript, ast.Attribute)) and not isinstance(node.ctx, ast.Load):
                base = node
                while isinstance(base, (ast.Subscript, ast.Attribute)):
                    base = base.value
                if isinstance(base, ast.Name):
                    writes.add(base.id)
                    reads.add(base.id)
        if isinstance(statement, ast.AugAssign):
            reads |= writes
        if isinstance(statement, ast.Expr):
            writes |= reads & self.locals
        return reads, writes

    def statement(self, node: ast.stmt) -> list[Token]:
        line = node.lineno
        if isinstance(node, ast.Pass) or isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal)):
            return []
        if isinstance(node, ast.Expr) and (isinstance(node.value, ast.Constant) or _is_print(node.value)):
            return []  # docstrings, strings used as comments, debugging prints
        if isinstance(node, ast.AugAssign):
            target = self.expression(node.target)
            return [Token("Assign", line), *target, Token("BinOp", line), *target,
                    Token(type(node.op).__name__, line), *self.expression(node.value)]
        if isinstance(node, ast.AnnAssign):
            if node.value is None:
                return []
            return [Token("Assign", line), *self.expression(node.target), *self.expression(node.value)]
        if isinstance(node, (ast.For, ast.AsyncFor)):
            stop = _range_stop(node.iter)
            header = self.expression(node.iter) if stop is None else self.expression(stop)
            return [Token("LOOP", line), *self.expression(node.target), *header,
                    *self.block(node.body), *self.block(node.orelse), Token("END", node.end_lineno or line)]
        if isinstance(node, ast.While):
            return [Token("LOOP", line), *self.expression(node.test), *self.block(node.body),
                    *self.block(node.orelse), Token("END", node.end_lineno or line)]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return [Token("def", line), *self.block(node.body), Token("END", node.end_lineno or line)]
        return self.generic(node, line)

    def counting_loop(self, start: ast.Assign, loop: ast.While) -> list[Token]:
        """`i = a` / `while i < b: ...; i += s` as the same tokens as `for i in range(a, b, s): ...`."""
        return [Token("LOOP", loop.lineno), *self.expression(start.targets[0]),
                *self.expression(loop.test.comparators[0]), *self.block(loop.body[:-1]),
                Token("END", loop.end_lineno or loop.lineno)]

    # ------------------------------------------------------------ expressions

    def expression(self, node: ast.AST, line: int = 0) -> list[Token]:
        line = getattr(node, "lineno", line)
        if isinstance(node, ast.Name):
            return [Token(self._name(node.id), line)]
        if isinstance(node, ast.Constant):
            return [Token(_literal_kind(node.value), line)]
        if isinstance(node, ast.Attribute):
            return [*self.expression(node.value, line), Token("." + node.attr, line)]
        if isinstance(node, ast.keyword):
            return [Token(f"{node.arg}=" if node.arg else "**", line), *self.expression(node.value, line)]
        if isinstance(node, (ast.Lambda,)):
            return [Token("lambda", line), *self.expression(node.body, line)]
        return self.generic(node, line)

    def _name(self, name: str) -> str:
        if name in self.locals:
            return "P" if name in self.parameters else "V"
        if name in self.names.imports:
            return self.names.imports[name]
        if name in self.names.functions:
            return "F"
        return name

    def generic(self, node: ast.AST, line: int) -> list[Token]:
        """The node's kind, then its children in field order; statements' blocks are canonically ordered."""
        tokens = [Token(type(node).__name__, line)]
        for name, value in ast.iter_fields(node):
            if name in ("ctx", "type_comment", "annotation", "returns", "decorator_list", "type_params"):
                continue
            if isinstance(value, list):
                if value and all(isinstance(item, ast.stmt) for item in value):
                    tokens += self.block(value)
                else:
                    for item in value:
                        if isinstance(item, ast.AST):
                            tokens += self.expression(item, line)
            elif isinstance(value, ast.AST):
                if isinstance(value, (ast.operator, ast.boolop, ast.cmpop, ast.unaryop)):
                    tokens.append(Token(type(value).__name__, line))
                else:
                    tokens += self.expression(value, line)
        return tokens


def _range_stop(node: ast.expr) -> ast.expr | None:
    """The stop of `range(stop)`, `range(start, stop)` or `range(start, stop, step)`, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and 1 <= len(node.args) <= 3 and not node.keywords):
        return node.args[0] if len(node.args) == 1 else node.args[1]
    return None


def _counting_loops(statements: list[ast.stmt]) -> list[list[ast.stmt]]:
    """The statements, each alone, except `i = a` followed by `while i < b: ...; i += s`, grouped."""
    groups: list[list[ast.stmt]] = []
    for statement in statements:
        if groups and len(groups[-1]) == 1 and _counts_with(groups[-1][0], statement):
            groups[-1].append(statement)
        else:
            groups.append([statement])
    return groups


def _counts_with(start: ast.stmt, loop: ast.stmt) -> bool:
    if not (isinstance(start, ast.Assign) and len(start.targets) == 1 and isinstance(start.targets[0], ast.Name)
            and isinstance(loop, ast.While) and not loop.orelse and loop.body):
        return False
    name = start.targets[0].id
    test, last = loop.test, loop.body[-1]
    counted = (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == name
               and len(test.ops) == 1 and isinstance(test.ops[0], ast.Lt))
    if isinstance(last, ast.AugAssign):
        steps = isinstance(last.op, ast.Add) and isinstance(last.target, ast.Name) and last.target.id == name
    else:
        steps = (isinstance(last, ast.Assign) and len(last.targets) == 1 and isinstance(last.targets[0], ast.Name)
                 and last.targets[0].id == name and isinstance(last.value, ast.BinOp)
                 and isinstance(last.value.op, ast.Add) and isinstance(last.value.left, ast.Name)
                 and last.value.left.id == name)
    return counted and steps


def _is_print(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"


def _literal_kind(value: object) -> str:
    if value is None or isinstance(value, bool) or value is Ellipsis:
        return repr(value)
    if isinstance(value, (int, float, complex)):
        return "NUM"
    return "STR"


def token_id(text: str) -> int:
    """A token's number: the same in every process (Python's str hash is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def winnow(tokens: list[Token], k: int = K, window: int = WINDOW) -> dict[int, list[tuple[int, int]]]:
    """The winnowed k-gram hashes of a token stream, each with the line spans it was taken from.

    In every window of `window` consecutive k-gram hashes the minimum is kept (the rightmost
    one on ties), each selected position once.
    """
    if len(tokens) < k:
        return {}
    ids = [token_id(token.text) for token in tokens]
    hashes = [hash(tuple(ids[i:i + k])) & 0xFFFFFFFFFFFF for i in range(len(ids) - k + 1)]
    chosen: set[int] = set()
    for start in range(max(1, len(hashes) - window + 1)):
        span = hashes[start:start + window]
        low = min(span)
        chosen.add(start + max(i for i, value in enumerate(span) if value == low))
    prints: dict[int, list[tuple[int, int]]] = {}
    for position in sorted(chosen):
        lines = [token.line for token in tokens[position:position + k]]
        prints.setdefault(hashes[position], []).append((min(lines), max(lines)))
    return prints
