"""Import modules of the student-style assignment-2 solution (tests/solutions/a2) as the
package ``cs231n``, the way a student's notebook imports them, without leaving that package
behind in sys.modules or sys.path for other tests (tests/solutions/a3 is a ``cs231n`` too),
and without writing bytecode into the solution folder (it is also graded as a submission)."""
import contextlib
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "solutions" / "a2"


def _cs231n_modules():
    return {name: module for name, module in sys.modules.items() if name == "cs231n" or name.startswith("cs231n.")}


@contextlib.contextmanager
def imported(*names):
    """Yields the modules named (e.g. "cs231n.optim") imported from tests/solutions/a2."""
    saved_path, saved_modules, saved_bytecode = list(sys.path), _cs231n_modules(), sys.dont_write_bytecode
    for name in saved_modules:
        del sys.modules[name]
    sys.path.insert(0, str(ROOT))
    sys.dont_write_bytecode = True
    try:
        modules = [importlib.import_module(name) for name in names]
        sys.dont_write_bytecode = saved_bytecode
        yield modules
    finally:
        for name in _cs231n_modules():
            del sys.modules[name]
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode
