"""Disguised copies of a Python module, as a student hiding a copy would make them.

Each disguise keeps the program's behaviour: renamed identifiers, reformatting, added
comments and docstrings, swapped independent statements, `a += b` <-> `a = a + b`,
`for i in range(...)` as a `while` loop, or all of them at once. Used by
tests/test_similarity.py and benchmarks/similarity_quality.py.
"""
from __future__ import annotations

import ast
import builtins
import copy
import random

KINDS = ("rename", "reformat", "comments", "reorder", "augassign", "while", "all")
WORDS = ("alpha", "beta", "tmp", "val", "data", "arr", "res", "acc", "buf", "item", "elem", "q", "z", "k2",
         "first", "second", "value", "total", "grid", "img", "kern", "part", "piece", "step_", "row_", "col_")
COMMENTS = ("compute the output", "loop over everything", "TODO check this", "shapes", "apply the formula",
            "gradient step", "helper values", "see lecture notes", "vectorised part", "careful with indices")


def disguise(source: str, kind: str, seed: int = 0) -> str:
    """`source` disguised by one of KINDS (deterministic for a seed)."""
    rng = random.Random(f"{kind}:{seed}")
    tree = ast.parse(source)
    if kind in ("rename", "all"):
        tree = rename(tree, rng)
    if kind in ("reorder", "all"):
        tree = reorder(tree, rng)
    if kind in ("augassign", "all"):
        tree = AugmentedRewrite().visit(tree)
    if kind in ("while", "all"):
        tree = ForToWhile().visit(tree)
    ast.fix_missing_locations(tree)
    text = ast.unparse(tree)
    if kind in ("reformat", "all"):
        text = reformat(text)
    if kind in ("comments", "all"):
        text = add_comments(text, rng)
    if kind not in KINDS:
        raise ValueError(kind)
    return text + "\n"


def rename(tree: ast.Module, rng: random.Random) -> ast.Module:
    """Every parameter and local variable, and every private module function, gets a new name."""
    tree = copy.deepcopy(tree)
    taken = set(dir(builtins)) | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    fresh = iter(f"{rng.choice(WORDS)}{i}" for i in rng.sample(range(100, 999), 800))

    def new_name() -> str:
        name = next(fresh)
        while name in taken:
            name = next(fresh)
        taken.add(name)
        return name

    module_names = {node.name: new_name() for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name.startswith("_")}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            local = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
            local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            mapping = {**module_names, **{name: new_name() for name in sorted(local)}}
            for child in ast.walk(node):
                if isinstance(child, ast.Name) and child.id in mapping:
                    child.id = mapping[child.id]
                elif isinstance(child, ast.arg) and child.arg in mapping:
                    child.arg = mapping[child.arg]
            if node.name in module_names:
                node.name = module_names[node.name]
    return tree


def _effects(statement: ast.stmt) -> tuple[set[str], set[str]]:
    reads, writes = set(), set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else writes).add(node.id)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            base = node
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                writes.add(base.id)
    if isinstance(statement, ast.Expr) or isinstance(statement, ast.AugAssign):
        writes |= reads
    return reads, writes


def _independent(first: ast.stmt, second: ast.stmt) -> bool:
    flow = (ast.Return, ast.Break, ast.Continue, ast.Raise, ast.If, ast.For, ast.While, ast.Try, ast.With)
    if isinstance(first, flow) or isinstance(second, flow):
        return False
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        return False  # a docstring stays first
    reads_1, writes_1 = _effects(first)
    reads_2, writes_2 = _effects(second)
    return not (writes_1 & (reads_2 | writes_2) or writes_2 & reads_1)


def reorder(tree: ast.Module, rng: random.Random) -> ast.Module:
    """Swap about half of the adjacent independent statement pairs in every block."""
    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        for name in ("body", "orelse"):
            block = getattr(node, name, None)
            if not isinstance(block, list) or isinstance(node, ast.Module):
                continue
            i = 0
            while i < len(block) - 1:
                if _independent(block[i], block[i + 1]) and rng.random() < 0.6:
                    block[i], block[i + 1] = block[i + 1], block[i]
                    i += 2
                else:
                    i += 1
    return tree


class AugmentedRewrite(ast.NodeTransformer):
    """`a += b` -> `a = a + b`, and `a = a + b` (a plain name) -> `a += b`."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        load = copy.deepcopy(node.target)
        for child in ast.walk(load):
            if hasattr(child, "ctx"):
                child.ctx = ast.Load()
        return ast.copy_location(ast.Assign([node.target], ast.BinOp(load, node.op, node.value)), node)

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        value = node.value
        if (len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and isinstance(value, ast.BinOp)
                and isinstance(value.left, ast.Name) and value.left.id == node.targets[0].id):
            return ast.copy_location(ast.AugAssign(node.targets[0], value.op, value.right), node)
        return node


class ForToWhile(ast.NodeTransformer):
    """`for i in range(a, b[, s]): body` -> `i = a` / `while i < b: body; i += s` (bodies without continue)."""

    def visit_For(self, node: ast.For):
        self.generic_visit(node)
        call = node.iter
        if (not isinstance(node.target, ast.Name) or node.orelse or not isinstance(call, ast.Call)
                or not isinstance(call.func, ast.Name) or call.func.id != "range" or call.keywords
                or not 1 <= len(call.args) <= 3
                or any(isinstance(n, ast.Continue) for n in ast.walk(ast.Module(node.body, [])))):
            return node
        args = call.args
        start, stop = (ast.Constant(0), args[0]) if len(args) == 1 else (args[0], args[1])
        step = args[2] if len(args) == 3 else ast.Constant(1)
        name = node.target.id
        init = ast.Assign([ast.Name(name, ast.Store())], start)
        test = ast.Compare(ast.Name(name, ast.Load()), [ast.Lt()], [stop])
        increment = ast.AugAssign(ast.Name(name, ast.Store()), ast.Add(), step)
        return [ast.copy_location(init, node), ast.copy_location(ast.While(test, node.body + [increment], []), node)]


def reformat(text: str) -> str:
    """Another layout: blank lines inside functions, spaces inside brackets, single quotes kept as they are."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("for ", "while ", "if ", "return ")) and lines and lines[-1].strip():
            lines.append("")
        lines.append(line.replace("(", "( ").replace(")", " )") if "'" not in line and '"' not in line else line)
    return "\n".join(lines)


def add_comments(text: str, rng: random.Random) -> str:
    """Comment lines before about a third of the statements, and a new docstring on every function."""
    starts = {node.lineno for node in ast.walk(ast.parse(text)) if isinstance(node, ast.stmt)}
    defs = {node.lineno for node in ast.walk(ast.parse(text)) if isinstance(node, ast.FunctionDef)}
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[:len(line) - len(line.lstrip())]
        if number in starts and number not in defs and rng.random() < 0.35:
            lines.append(f"{indent}# {rng.choice(COMMENTS)}")
        lines.append(line)
        if number in defs and line.rstrip().endswith(":"):
            lines.append(f'{indent}    """{rng.choice(COMMENTS).capitalize()}."""')
    return "\n".join(lines)
