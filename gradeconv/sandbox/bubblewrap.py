"""The bubblewrap (``bwrap``) jail around a worker, where the machine has it.

Inside: a read-only view of the system and the Python standard library, numpy
alone from site-packages, the staged submission read-only, and one writable
working directory. No network, a private /tmp and PID namespace, no
capabilities, and the jail dies with its parent. Nothing else of the host
(the reference, the rubric, other students' files) is mounted.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import select
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy

SANDBOX_ROOT = "/sandbox"
SANDBOX_SITE = f"{SANDBOX_ROOT}/site"
#: the jail's writable places: memory file systems of their own
SCRATCH_MOUNTS = ("/tmp", "/dev/shm", f"{SANDBOX_ROOT}/work")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/alternatives")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group")


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether bwrap exists here and can actually create its namespaces."""
    if shutil.which("bwrap") is None or os.environ.get("GRADECONV_NO_BWRAP"):
        return False
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid",
             "--die-with-parent", "--cap-drop", "ALL", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def available_to(uid: int, gid: int) -> bool:
    """Whether bwrap started by this (unprivileged) account can build a jail: it needs user namespaces."""
    probe = ["bwrap", "--unshare-user", "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid",
             "--die-with-parent", "--cap-drop", "ALL", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, cwd="/", user=uid, group=gid,
                              extra_groups=[])
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def numpy_dirs() -> list[Path]:
    """numpy's package folder and the folder of its bundled libraries, if any."""
    package = Path(numpy.__file__).resolve().parent
    return [path for path in (package, package.parent / "numpy.libs") if path.is_dir()]


def _bind_system(args: list[str], path: str) -> None:
    if os.path.islink(path):
        args += ["--symlink", os.readlink(path), path]
    elif os.path.exists(path):
        args += ["--ro-bind", path, path]


#: where packages of the system's own Pythons live (torch from apt or pip, say)
SYSTEM_PACKAGE_GLOBS = ("/usr/lib/python3*/dist-packages", "/usr/lib/python3*/site-packages",
                        "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages")


def _site_dirs() -> set[str]:
    """Every folder of installed packages the jail could otherwise see: ours and the system's."""
    dirs = set(site.getsitepackages()) | {site.getusersitepackages()}
    dirs |= {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return {d for d in dirs | _system_site_dirs() if os.path.isdir(d) and not os.path.islink(d)}


def _system_site_dirs() -> set[str]:
    found = {path for pattern in SYSTEM_PACKAGE_GLOBS for path in glob.glob(pattern)}
    return {d for d in found if os.path.isdir(d) and not os.path.islink(d)}


def command(stage_root: Path, inner_argv: list[str], info_fd: int, scratch_bytes: int,
            filter_fd: int = -1, runtime_root: Path | None = None) -> list[str]:
    """The bwrap command line that runs inner_argv with the stage mounted at /sandbox.

    bwrap writes the host pid of the jail's first process to info_fd; /tmp,
    /dev/shm and the work dir are private memory file systems of scratch_bytes
    each; filter_fd, if given, holds a seccomp program bwrap installs last. With
    runtime_root (bwrap started by a worker account, in a user namespace of its
    own) the world-readable runtime copy stands in for this interpreter and numpy.
    """
    size = ["--size", str(scratch_bytes)]
    args = ["bwrap", *(["--unshare-user"] if runtime_root else []),
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--info-fd", str(info_fd),
            *(["--seccomp", str(filter_fd)] if filter_fd >= 0 else []),
            "--proc", "/proc", "--remount-ro", "/proc",  # uid 0 without capabilities may still write /proc/sys
            "--dev", "/dev", *size, "--tmpfs", "/dev/shm", *size, "--tmpfs", "/tmp"]
    for path in SYSTEM_DIRS:
        _bind_system(args, path)
    for path in SYSTEM_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    if runtime_root is not None:
        args += ["--ro-bind", str(runtime_root), str(runtime_root)]
        args += [arg for site_dir in sorted(_system_site_dirs()) for arg in ("--tmpfs", site_dir)]
        args += ["--ro-bind", str(runtime_root / "site"), SANDBOX_SITE]
    else:
        for prefix in sorted({sys.base_prefix, sys.prefix}):
            if not prefix.startswith("/usr"):
                args += ["--ro-bind", prefix, prefix]
        for site_dir in sorted(_site_dirs()):  # hide every installed package ...
            args += ["--tmpfs", site_dir]
        for path in numpy_dirs():  # ... but numpy
            args += ["--ro-bind", str(path), f"{SANDBOX_SITE}/{path.name}"]
    args += ["--ro-bind", str(stage_root / "runtime"), f"{SANDBOX_ROOT}/runtime",
             "--ro-bind", str(stage_root / "pkg"), f"{SANDBOX_ROOT}/pkg",
             *size, "--tmpfs", f"{SANDBOX_ROOT}/work",
             "--remount-ro", "/",  # the jail's own root file system holds no writable place either
             "--chdir", f"{SANDBOX_ROOT}/work", "--"]
    return args + inner_argv


def jail_of(info_read: int, deadline: float) -> tuple[int, int] | None:
    """(host pid of the jail's first process, its PID namespace inode) as bwrap reports on info_read."""
    data = b""
    while time.monotonic() < deadline and b"}" not in data:
        readable, _, _ = select.select([info_read], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(info_read, 4096) if readable else b""
        if not chunk:
            return None
        data += chunk
    try:
        child = int(json.loads(data[: data.index(b"}") + 1])["child-pid"])
        return child, os.stat(f"/proc/{child}/ns/pid").st_ino
    except (ValueError, KeyError, TypeError, OSError):
        return None
