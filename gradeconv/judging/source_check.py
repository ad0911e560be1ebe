"""Which functions of a submission use a module the rubric forbids, found without running it.

Judged on the staged copy, the very bytes the worker imports. A use fails the
tests of the functions using it (and of nothing else); code run at import that
uses one fails the whole file. A bare import uses nothing: the worker hands
student code a stand-in for it. The worker's import hook is the other half:
this check is what holds where the hook can be removed (the uid and none modes).

Fails closed: a source too deep or too long to analyse counts as using the
first forbidden module at import.
"""
from __future__ import annotations

import ast
from pathlib import Path

#: the key of forbidden_imports' answer for code that runs when the module is imported
MODULE_LEVEL = ""


def forbidden_imports(module_file: Path, forbidden: tuple[str, ...]) -> dict[str, str]:
    """{function or class name: the forbidden module it uses}, MODULE_LEVEL for code run at import.

    A top-level function or class uses a module when it imports it, names one imported at module
    level (or a module-level alias `T = torch` of it), or names such a function or class.
    """
    if not forbidden:
        return {}
    try:
        return _uses(module_file, forbidden)
    except (SyntaxError, ValueError):
        return {}  # the worker reports the syntax error with its line
    except (RecursionError, MemoryError):  # fails closed: what cannot be read may use anything
        return {MODULE_LEVEL: forbidden[0]}


def _uses(module_file: Path, forbidden: tuple[str, ...]) -> dict[str, str]:
    """Where the source uses a module the rubric forbids, found without running it.

    {name: module} for each top-level function or class that imports a forbidden module, names
    one imported at module level (or a module-level alias `T = torch` of it), or names such a function or
    class; MODULE_LEVEL if code run at import does (a star import of one included). A bare
    module-level import uses nothing: the worker gives student code a stand-in for it. Code under
    `if __name__ == "__main__":` never runs in the grader and is not read.
    """
    tree = ast.parse(module_file.read_bytes())

    def forbidden_root(name: str | None) -> str | None:
        root = (name or "").partition(".")[0]
        return root if root in forbidden else None

    bound: dict[str, str] = {}  # name -> the forbidden module it is bound to
    imports: dict[ast.AST, str] = {}  # import statements of a forbidden module -> that module
    star: str | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = forbidden_root(alias.name)
                if root:
                    imports[node] = root
                    bound[alias.asname or alias.name.partition(".")[0]] = root
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and forbidden_root(node.module):
            root = imports[node] = forbidden_root(node.module)
            for alias in node.names:
                if alias.name == "*":
                    star = star or root
                else:
                    bound[alias.asname or alias.name] = root
    units = {node.name: node for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    at_import = [node for node in _run_at_import(tree.body) if node not in units.values()]
    uses: dict[str, str] = {}
    if star and any(node in imports for node in at_import):
        uses[MODULE_LEVEL] = star

    def used(node: ast.AST, names: dict[str, str]) -> str | None:
        """The forbidden module `node` imports or names (a function's own variable F is not torch's F).

        Iterative, so no source is too deep to read."""
        pending: list[tuple[ast.AST, frozenset]] = [(node, frozenset())]
        while pending:
            node, local = pending.pop()
            if node in imports:
                return imports[node]
            if isinstance(node, ast.Name):
                if isinstance(node.ctx, ast.Load) and node.id not in local and node.id in names:
                    return names[node.id]
            elif isinstance(node, COMPREHENSIONS):  # its own scope: the first iterable is read outside it
                own = local | {target.id for generator in node.generators for target in ast.walk(generator.target)
                               if isinstance(target, ast.Name)}
                pending.append((node.generators[0].iter, local))
                pending += [(child, own) for child in ast.iter_child_nodes(node) if child is not node.generators[0]]
                pending += [(child, own) for child in ast.iter_child_nodes(node.generators[0])
                            if child is not node.generators[0].iter]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                arguments = node.args
                outside = [*getattr(node, "decorator_list", []), *arguments.defaults,
                           *(default for default in arguments.kw_defaults if default is not None)]
                own = local | _local_names(node)
                pending += [(child, local) for child in outside]
                pending += [(child, own) for child in (node.body if isinstance(node.body, list) else [node.body])]
            else:
                pending += [(child, local) for child in ast.iter_child_nodes(node)]
        return None

    changed = True
    while changed:  # module-level aliases (T = torch) and functions calling functions that use one
        changed = False
        for node in at_import:
            if node in imports or MODULE_LEVEL in uses:
                continue
            root = used(node, bound)
            if root is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            if (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Name)
                    and all(isinstance(t, ast.Name) for t in targets)):  # T = torch: any other use runs it
                new = {target.id: root for target in targets if target.id not in bound}
                bound.update(new)
                changed = changed or bool(new)
            else:
                uses[MODULE_LEVEL] = root
        for name, node in units.items():
            if name not in uses:
                root = used(node, {**bound, **{unit: uses[unit] for unit in uses if unit in units}})
                if root:
                    uses[name] = root
                    changed = True
    return uses


NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _local_names(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset:
    """Names the function's own scope binds (arguments, assignments, loop targets, nested definitions),
    minus those it declares global: a name bound only inside a nested function, class or comprehension
    is not the function's own, and the function still reads the module's."""
    arguments = function.args
    names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                             *filter(None, [arguments.vararg, arguments.kwarg])]}
    declared: set[str] = set()
    pending = list(function.body if isinstance(function.body, list) else [function.body])
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)  # the definition binds its name here; its body is its own scope
            pending.extend([*node.decorator_list, *getattr(node, "bases", []), *getattr(node, "keywords", [])])
            if not isinstance(node, ast.ClassDef):
                pending.extend([*node.args.defaults, *filter(None, node.args.kw_defaults)])
            continue
        if isinstance(node, ast.Lambda):
            pending.extend([*node.args.defaults, *filter(None, node.args.kw_defaults)])
            continue
        if isinstance(node, COMPREHENSIONS):  # its targets are its own; a walrus in it binds here
            pending.append(node.generators[0].iter)
            names.update(child.target.id for child in ast.walk(node)
                         if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name))
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        pending.extend(ast.iter_child_nodes(node))
    return frozenset(names - declared)


def _run_at_import(body: list[ast.stmt]):
    """The module's statements that run when it is imported, compound ones opened up: an import
    inside `try:` or `if:` is an import like any other, the tests and handlers are read as code.
    `if __name__ == "__main__":` never runs in the grader, but its else branch does."""
    for node in body:
        if _main_guard(node):
            yield from _run_at_import(node.orelse)
        elif isinstance(node, ast.If):
            yield ast.Expr(node.test)
            yield from _run_at_import(node.body + node.orelse)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            yield from _run_at_import(node.body)
            for handler in node.handlers:
                if handler.type is not None:
                    yield ast.Expr(handler.type)
                yield from _run_at_import(handler.body)
            yield from _run_at_import(node.orelse + node.finalbody)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            yield from (ast.Expr(item.context_expr) for item in node.items)
            yield from _run_at_import(node.body)
        else:
            yield node


def _main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`, whose body never runs in the grader."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


