"""A world-readable copy of this interpreter, its standard library and numpy.

When the grader runs as root without namespaces, the worker runs as a dedicated
unprivileged uid, which cannot reach the project's interpreter when that lives
somewhere private (e.g. a pyenv build under /root, mode 0700). shared_runtime()
builds, once per (Python, numpy) pair, a tree every user can read and execute
and only its owner can write:

    bin/python3.X             the interpreter
    lib/libpython3.X.so.1.0   libraries it (or lib-dynload, or numpy) loads from its own prefix
    lib/python3.X/            the standard library with lib-dynload, without tests, IDLE,
                              tkinter and site-packages
    site/numpy, site/numpy.libs
    runtime.json              what shared_runtime() needs to describe the tree without walking it

Files are hard-linked from the originals where the original already has the
owner and mode the copy needs, else copied. A tree is built in a temporary
sibling folder and renamed into place, so a process pool can race to build it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy

FORMAT = 2  # bump when the layout changes, so old trees are not reused
CACHE_VARIABLE = "GRADECONV_RUNTIME_DIR"
DEFAULT_CACHE_ROOT = Path("/var/cache/gradeconv")
MANIFEST = "runtime.json"
BUILD_MARK = ".build-"
STALE_BUILD_SECONDS = 3600.0
PROBE_SECONDS = 60.0
EXCLUDED_STDLIB = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
                             "pydoc_data", "site-packages", "dist-packages"})
_LDD_LINE = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-fA-F]+\)\s*$")
#: a library ldd found, or the dynamic loader (a line of its own, without "=>")
_LOADED = re.compile(r"^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-fA-F]+\)\s*$")


@dataclass(frozen=True)
class Runtime:
    """A built runtime: run `python -I -S` with `env` and put `site` on sys.path."""

    root: Path
    python: Path  # <root>/bin/python3.X
    site: Path  # <root>/site, holding numpy only
    env: dict[str, str] = field(default_factory=dict)  # e.g. LD_LIBRARY_PATH=<root>/lib
    #: folders of the system libraries it loads (None: unknown, so no Landlock rules can be written)
    library_folders: tuple[str, ...] | None = None


def shared_runtime(cache_root: Path | None = None) -> Runtime:
    """The runtime of this interpreter and numpy under cache_root, built on first use.

    cache_root defaults to $GRADECONV_RUNTIME_DIR, else /var/cache/gradeconv.
    When the runtime exists this costs one lstat and one small read (its manifest).
    """
    if cache_root is None:
        cache_root = Path(os.environ.get(CACHE_VARIABLE) or DEFAULT_CACHE_ROOT)
    cache_root = Path(os.path.abspath(cache_root))
    root = cache_root / runtime_name()
    existing = _load(root)
    if existing is not None:
        return existing
    _prepare_cache_root(cache_root)
    return _build(cache_root, root)


def runtime_usable_by(runtime: Runtime, uid: int, gid: int) -> bool:
    """Whether uid:gid (and no supplementary group) can run the runtime's python and import numpy.

    It must be this Python and this numpy: without runtime.env the loader may pick up
    another libpython of the same name (e.g. the system's) and still start.
    Switching to another uid needs root; a caller that is not root can only check itself.
    """
    switch: dict = {}
    if os.geteuid() == 0 or (uid, gid) != (os.geteuid(), os.getegid()):
        switch = {"user": uid, "group": gid, "extra_groups": []}
    return runs(runtime, **switch)


def runs(runtime: Runtime, cwd: str = "/", silent: bool = False, **options) -> bool:
    """Whether the runtime's python starts and imports its numpy (with silent, writing nothing to stderr),
    run with these Popen options."""
    try:
        done = subprocess.run(_probe_argv(runtime), env=_probe_env(runtime), cwd=cwd,
                              capture_output=True, text=True, timeout=PROBE_SECONDS, **options)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout == _probe_expected() and not (silent and done.stderr)


def _library_folders(runtime: Runtime) -> list[str] | None:
    """Folders of the shared libraries the runtime's python, lib-dynload and numpy load, the dynamic
    loader's included (what the uid sandbox's Landlock rules let a worker read); None when ldd cannot tell."""
    objects = [str(runtime.python), *map(str, sorted(runtime.root.glob("lib/python*/lib-dynload/*.so"))),
               *map(str, sorted(runtime.site.rglob("*.so")))]
    done = _run_ldd(objects, _probe_env(runtime))
    if done is None or done.returncode != 0:
        return None
    paths = {match[1] for match in map(_LOADED.search, done.stdout.splitlines()) if match}
    if not paths:
        return None
    folders = {os.path.dirname(os.path.realpath(path)) for path in paths}
    return sorted(folder for folder in folders if not _inside(folder, [str(runtime.root)]))


@functools.lru_cache(maxsize=1)
def runtime_name() -> str:
    """The runtime's folder name: a key of this Python and this numpy (fixed for a process)."""
    key = json.dumps([FORMAT, sys.version, os.path.realpath(sys.executable),
                      numpy.__version__, str(_numpy_dirs()[0])])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"python{_version()}-numpy{numpy.__version__}-{digest}"


def _version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _numpy_dirs() -> list[Path]:
    """numpy's package folder and the folder of its bundled libraries, if any."""
    package = Path(numpy.__file__).resolve().parent
    return [path for path in (package, package.parent / "numpy.libs") if path.is_dir()]


def _load(root: Path) -> Runtime | None:
    """The runtime at root if it has been built (None if not), refusing one we cannot trust."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
        raise RuntimeError(f"{root} is not a runtime folder owned by root or by us and closed to "
                           f"writes by others; remove it and try again")
    try:
        return _describe(root)
    except (OSError, ValueError, KeyError) as error:
        raise RuntimeError(f"{root} has no readable {MANIFEST} ({error!r}); remove it and try again")


def _describe(root: Path) -> Runtime:
    """The runtime at root, as its manifest describes it."""
    manifest = json.loads((root / MANIFEST).read_text())
    env = {"LD_LIBRARY_PATH": str(root / "lib")} if manifest["library_path"] else {}
    folders = manifest.get("library_folders")
    return Runtime(root=root, python=root / manifest["python"], site=root / "site", env=env,
                   library_folders=tuple(map(str, folders)) if isinstance(folders, list) else None)


def _prepare_cache_root(cache_root: Path) -> None:
    """Create the cache root if needed; check others can reach it and cannot write into it."""
    _make_dirs(cache_root)
    real = cache_root.resolve()
    for directory in [*reversed(real.parents), real]:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            raise RuntimeError(f"{directory} is not traversable by other users, so the worker's uid "
                               f"could not reach a runtime under {cache_root}; chmod o+x it or set "
                               f"{CACHE_VARIABLE} to a folder outside it")
    info = os.stat(real)
    if info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
        raise RuntimeError(f"{cache_root} must be owned by root or by us and not writable by group "
                           f"or others, or anyone could plant a runtime in it")


def _make_dirs(path: Path) -> None:
    """Create path and its missing parents as mode 0755 whatever the umask."""
    missing = [directory for directory in [*reversed(path.parents), path] if not directory.exists()]
    for directory in missing:
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:  # another process made it
            continue
        os.chmod(directory, 0o755)


def _build(cache_root: Path, root: Path) -> Runtime:
    """Build the runtime beside root and rename it into place; the first rename wins."""
    _remove_stale_builds(cache_root)
    building = Path(tempfile.mkdtemp(prefix=f".{root.name}{BUILD_MARK}", dir=cache_root))
    try:
        _populate(building)
        _check_runs(_describe(building))
        os.chmod(building, 0o755)
        os.rename(building, root)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not root.is_dir():  # nobody else won the race: a real failure
            raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return _load(root)


def _remove_stale_builds(cache_root: Path) -> None:
    """Remove temporary folders of builds that died more than STALE_BUILD_SECONDS ago."""
    for entry in cache_root.iterdir():
        if entry.name.startswith(".") and BUILD_MARK in entry.name:
            try:
                if time.time() - entry.lstat().st_mtime > STALE_BUILD_SECONDS:
                    shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                continue


def _populate(target: Path) -> None:
    """Lay out interpreter, libraries, standard library, numpy and the manifest in target."""
    python = Path("bin") / f"python{_version()}"
    _make_dir(target / "bin")
    _place_file(os.path.realpath(sys.executable), target / python)
    stdlib = Path(sysconfig.get_path("stdlib")).resolve()
    stdlib_copy = target / sys.platlibdir / f"python{_version()}"  # where python looks for it
    _make_dir(stdlib_copy.parent)
    _copy_tree(stdlib, stdlib_copy, EXCLUDED_STDLIB)
    dynload = Path(sysconfig.get_path("platstdlib")).resolve() / "lib-dynload"
    if not (stdlib_copy / "lib-dynload").exists() and dynload.is_dir():
        _copy_tree(dynload, stdlib_copy / "lib-dynload")
    _make_dir(target / "site")
    for directory in _numpy_dirs():
        _copy_tree(directory, target / "site" / directory.name)
    libraries = _prefix_libraries(stdlib, dynload)
    if libraries and not (target / "lib").is_dir():
        _make_dir(target / "lib")
    for name, path in sorted(libraries.items()):
        _place_file(path, target / "lib" / name)
    manifest = {"format": FORMAT, "python": str(python), "library_path": bool(libraries),
                "python_version": sys.version, "numpy_version": numpy.__version__}
    described = Runtime(root=target, python=target / python, site=target / "site",
                        env={"LD_LIBRARY_PATH": str(target / "lib")} if libraries else {})
    manifest["library_folders"] = _library_folders(described)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    os.chmod(target / MANIFEST, 0o644)


def _make_dir(path: Path) -> None:
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)


def _prefix_libraries(stdlib: Path, dynload: Path) -> dict[str, str]:
    """Shared libraries from the interpreter's own prefix that it, lib-dynload or numpy load.

    Maps the name they are loaded by (e.g. libpython3.11.so.1.0) to the file. Libraries
    inside the copied trees (numpy.libs) are left out: they are found there via $ORIGIN.
    A prefix of / or /usr holds the system's own libraries, which everyone can read already.
    """
    prefixes = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    prefixes -= {"/", "/usr"}
    copied = [str(stdlib), str(dynload), *map(str, _numpy_dirs())]
    objects = [os.path.realpath(sys.executable)]
    objects += sorted(str(path) for path in dynload.glob("*.so"))
    for directory in _numpy_dirs():
        objects += sorted(str(path) for path in directory.rglob("*.so"))
    found = {}
    for name, path in _ldd(objects).items():
        real = os.path.realpath(path)
        if _inside(real, prefixes) and not _inside(real, copied):
            found[name] = real
    return found


def _ldd(objects: list[str]) -> dict[str, str]:
    """Every dependency ldd resolves for these ELF files, by the name they are loaded by.

    Without ldd only a shared libpython is found (from sysconfig).
    """
    done = _run_ldd(objects)
    if done is None:
        name, directory = sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LIBDIR")
        shared = sysconfig.get_config_var("Py_ENABLE_SHARED") and name and directory
        return {name: os.path.join(directory, name)} if shared else {}
    matches = (_LDD_LINE.match(line) for line in done.stdout.splitlines())
    return {match[1]: match[2] for match in matches if match}


def _run_ldd(objects: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess | None:
    """ldd's report on these ELF files (in env, else ours); None when ldd cannot be run."""
    try:
        return subprocess.run(["ldd", *objects], env=env, capture_output=True, text=True, timeout=PROBE_SECONDS)
    except (OSError, subprocess.SubprocessError):
        return None


def _inside(path: str, folders) -> bool:
    return any(os.path.commonpath([path, folder]) == folder for folder in folders)


def _copy_tree(source: Path, target: Path, skip: frozenset[str] = frozenset()) -> None:
    """Copy a folder tree (without the top-level names in skip), never leaving it via a symlink."""
    top = os.path.realpath(source)
    _make_dir(target)
    _copy_entries(top, top, target, skip)


def _copy_entries(top: str, directory: str, target: Path, skip: frozenset[str]) -> None:
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda item: item.name):
            if entry.name in skip:
                continue
            destination = target / entry.name
            if entry.is_symlink():
                _copy_symlink(top, entry.path, destination)
            elif entry.is_dir(follow_symlinks=False):
                _make_dir(destination)
                _copy_entries(top, entry.path, destination, frozenset())
            elif entry.is_file(follow_symlinks=False):
                _place_file(entry.path, destination)


def _copy_symlink(top: str, link: str, destination: Path) -> None:
    """A symlink into the tree stays a (relative) symlink; one out of it becomes a copy of its file.

    Symlinks out of the tree to folders, and dangling ones, are left out.
    """
    real = os.path.realpath(link)
    if _inside(real, [top]):
        os.symlink(os.path.relpath(real, os.path.dirname(link)), destination)
    elif os.path.isfile(real):
        _place_file(real, destination)


def _place_file(source: str, destination: Path) -> None:
    """Hard-link source if it is ours with mode 0644/0755 already, else copy it and set that mode.

    A hard link shares the original's inode, so it is only used when the original
    needs no chmod (which would change the original too).
    """
    info = os.stat(source)
    mode = 0o755 if info.st_mode & 0o111 else 0o644
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == mode:
        try:
            os.link(source, destination, follow_symlinks=False)
            return
        except OSError:  # another file system, or links not allowed here
            pass
    shutil.copy2(source, destination)
    os.chmod(destination, mode)


def _check_runs(runtime: Runtime) -> None:
    """Fail the build unless the new tree's python imports its numpy (as the current user)."""
    done = subprocess.run(_probe_argv(runtime), env=_probe_env(runtime), cwd="/",
                          capture_output=True, text=True, timeout=PROBE_SECONDS)
    if done.returncode != 0 or done.stdout != _probe_expected():
        raise RuntimeError(f"the runtime built in {runtime.root} does not run Python {sys.version} "
                           f"with numpy {numpy.__version__}: {done.stdout!r} {done.stderr[-2000:]}")


def _probe_argv(runtime: Runtime) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(runtime.site)!r}); "
            f"import numpy; print(numpy.__version__); print(sys.version)")
    return [str(runtime.python), "-I", "-S", "-c", code]


def _probe_expected() -> str:
    """What the probe prints when it runs this Python and this numpy."""
    return f"{numpy.__version__}\n{sys.version}\n"


def _probe_env(runtime: Runtime) -> dict[str, str]:
    return {**runtime.env, "PATH": "/usr/bin:/bin"}
