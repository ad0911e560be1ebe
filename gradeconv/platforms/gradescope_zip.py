"""The autograder zip Gradescope builds its image from.

Gradescope's "Autograder Specifications": the zip holds `setup.sh` and `run_autograder`
at its root; it is unpacked into /autograder/source, setup.sh runs once as root when
the image is built, and run_autograder runs for every submission (in /autograder, as
root) and must leave /autograder/results/results.json; the student's files are in
/autograder/submission.

The zip holds, at its root:

    setup.sh, run_autograder           LF line ends, mode 0755 in the zip's external attributes
    gradeconv-<version>-py3-none-any.whl
    rubric/<rubric file>               and rubric/<secret_file> when the rubric names one
    gradeconv.env                      only for a rubric with secret_env: the variable's value

Both scripts take their root from $AUTOGRADER_ROOT (default /autograder), so a test
can run them in a folder of its own. The wheel is built with `pip wheel --no-deps`
from the source checkout gradeconv runs from; when there is none (gradeconv installed
from a wheel) or pip cannot build it (offline without a build backend), it is
assembled from the installed package's files and metadata.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

import gradeconv
from gradeconv import __version__
from gradeconv.rubric import Rubric

#: a fixed time stamp for every member: the same inputs give the same zip
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
EXECUTABLE = 0o100755
REGULAR = 0o100644
PRIVATE = 0o100600
VENV_NAME = "gradeconv-venv"
#: the packages the wheel carries (pyproject.toml: packages.find include)
PACKAGES = ("gradeconv", "reference")


class ZipError(Exception):
    """The zip cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Built:
    path: Path
    wheel: str
    wheel_source: str  # "pip wheel from <checkout>" or "assembled from the installed files"
    members: tuple[str, ...]


def source_checkout() -> Path | None:
    """The project folder gradeconv runs from (editable or plain checkout), if it is one."""
    root = Path(gradeconv.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "gradeconv"' in text else None


def build_wheel(folder: Path) -> tuple[Path, str]:
    """gradeconv's wheel in folder, and how it was made."""
    checkout = source_checkout()
    if checkout is not None:
        wheel, problem = _pip_wheel(checkout, folder)
        if wheel is not None:
            return wheel, f"pip wheel from {checkout}"
        return assemble_wheel(folder), f"assembled from the installed files (pip wheel failed: {problem})"
    return assemble_wheel(folder), "assembled from the installed files"


def _pip_wheel(checkout: Path, folder: Path) -> tuple[Path | None, str]:
    """Build with pip from a copy of the checkout (a build in place would leave build/ in it)."""
    with tempfile.TemporaryDirectory(prefix="gradeconv-wheel-") as temporary:
        source = Path(temporary) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (checkout / name).is_file():
                shutil.copy2(checkout / name, source / name)
        for package in PACKAGES:
            shutil.copytree(checkout / package, source / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        out = Path(temporary) / "out"
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                               str(source)], capture_output=True, text=True, timeout=600)
        wheels = sorted(out.glob("gradeconv-*.whl")) if out.is_dir() else []
        if done.returncode != 0 or len(wheels) != 1:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return None, lines[-1] if lines else f"exit status {done.returncode}"
        if not wheels[0].name.startswith(f"gradeconv-{__version__}-"):
            return None, f"built {wheels[0].name}, but the installed version is {__version__}"
        target = folder / wheels[0].name
        shutil.copy2(wheels[0], target)
        return target, ""


def assemble_wheel(folder: Path) -> Path:
    """A wheel of the installed gradeconv: its packages' files and its distribution metadata."""
    try:
        distribution = metadata.distribution("gradeconv")
        meta = distribution.read_text("METADATA")
        entry_points = distribution.read_text("entry_points.txt")
    except metadata.PackageNotFoundError:
        meta = entry_points = None
    if not meta:  # run from a folder without installing: the essentials by hand
        meta = (f"Metadata-Version: 2.1\nName: gradeconv\nVersion: {__version__}\nRequires-Python: >=3.10\n"
                + "".join(f"Requires-Dist: {r}\n" for r in
                          ("numpy>=1.24", "hypothesis>=6.80", "pyyaml>=6.0", "pydantic>=2.5", "rich>=13.0")))
    entry_points = entry_points or "[console_scripts]\ngradeconv = gradeconv.cli:main\n"
    dist_info = f"gradeconv-{__version__}.dist-info"
    files: list[tuple[str, bytes]] = []
    for package in PACKAGES:
        root = Path(__import__(package).__file__).resolve().parent
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root.parent)
            if path.is_file() and "__pycache__" not in relative.parts and path.suffix in (".py", ".yaml"):
                files.append((relative.as_posix(), path.read_bytes()))
    files.append((f"{dist_info}/METADATA", meta.encode()))
    files.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: gradeconv\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n"))
    files.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    files.append((f"{dist_info}/top_level.txt", "".join(f"{p}\n" for p in PACKAGES).encode()))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    files.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    target = folder / f"gradeconv-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            _add(wheel, name, data, REGULAR)
    return target


def _add(bundle: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.create_system = 3  # Unix: unzip applies the mode bits below
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    bundle.writestr(info, data)


def rubric_members(rubric: Rubric) -> list[tuple[str, bytes, int]]:
    """The rubric file and its secret as zip members under rubric/, or gradeconv.env for secret_env."""
    path = Path(rubric.path)
    members = [(f"rubric/{path.name}", path.read_bytes(), REGULAR)]
    if rubric.secret_file:
        relative = PurePosixPath(rubric.secret_file)
        if relative.is_absolute() or ".." in relative.parts:
            raise ZipError(f"{path}: secret_file {rubric.secret_file} must be a path inside the rubric's folder "
                           "to go into the zip; move it next to the rubric")
        secret = path.parent / rubric.secret_file
        members.append((f"rubric/{relative.as_posix()}", secret.read_bytes(), PRIVATE))
    if rubric.secret_env:
        value = os.environ.get(rubric.secret_env, "").strip()
        if not value:
            raise ZipError(f"{path}: the rubric takes its secret from ${rubric.secret_env}; set it when you build "
                           "the zip, which carries it to the autograder in gradeconv.env")
        members.append(("gradeconv.env", f"{rubric.secret_env}={shlex.quote(value)}\n".encode(), PRIVATE))
    return members


def setup_script(rubric_member: str, install_bubblewrap: bool) -> str:
    return (SETUP_SH.replace("@VERSION@", __version__).replace("@BWRAP@", "1" if install_bubblewrap else "0")
            .replace("@VENV@", VENV_NAME).replace("@RUBRIC@", shlex.quote(rubric_member)))


def run_script(rubric_member: str) -> str:
    return (RUN_AUTOGRADER.replace("@VERSION@", __version__).replace("@VENV@", VENV_NAME)
            .replace("@RUBRIC@", shlex.quote(rubric_member)))


def build(out: Path, rubric: Rubric, install_bubblewrap: bool = False) -> Built:
    """Write the autograder zip to out."""
    members = rubric_members(rubric)
    with tempfile.TemporaryDirectory(prefix="gradeconv-zip-") as temporary:
        wheel, how = build_wheel(Path(temporary))
        entries = [("setup.sh", setup_script(members[0][0], install_bubblewrap).encode(), EXECUTABLE),
                   ("run_autograder", run_script(members[0][0]).encode(), EXECUTABLE),
                   (wheel.name, wheel.read_bytes(), REGULAR), *members]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data, mode in entries:
            _add(bundle, name, data, mode)
    os.replace(partial, out)
    return Built(out, wheel.name, how, tuple(name for name, _, _ in entries))


SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
# Written by gradeconv @VERSION@ (gradeconv gradescope-zip).
#
# It installs gradeconv and its dependencies into a virtual environment of its own
# ($AUTOGRADER_ROOT/@VENV@, mode 0700): the image's python3 and its packages stay as
# they are. Environment: AUTOGRADER_ROOT (default /autograder), GRADECONV_PYTHON
# (default python3), GRADECONV_OFFLINE=1 (no network: the venv sees the packages
# GRADECONV_PYTHON sees and only the bundled wheel is installed, without dependencies).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="$ROOT/@VENV@"
PYTHON="${GRADECONV_PYTHON:-python3}"
INSTALL_BUBBLEWRAP=@BWRAP@

have_python() {
    "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}
if ! have_python && command -v apt-get >/dev/null 2>&1 && [ "${GRADECONV_OFFLINE:-0}" != 1 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip
fi
if ! have_python; then
    echo "setup.sh: gradeconv needs Python >= 3.10 with venv ($PYTHON); set GRADECONV_PYTHON or use a newer base image" >&2
    exit 1
fi
if [ "$INSTALL_BUBBLEWRAP" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    # Optional: Gradescope's containers usually cannot create namespaces, and then
    # gradeconv grades in its uid sandbox instead (it checks whether bwrap works).
    DEBIAN_FRONTEND=noninteractive apt-get install -y bubblewrap || echo "setup.sh: bubblewrap not installed; the uid sandbox will be used" >&2
fi

umask 077
rm -rf "$VENV"
WHEEL=$(ls "$SOURCE"/gradeconv-*.whl | head -n 1)
if [ "${GRADECONV_OFFLINE:-0}" = 1 ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
    # A venv made by a venv's Python sees the base interpreter's packages, not that venv's:
    # add that venv's site folders (with their .pth files) to ours.
    "$PYTHON" - "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" <<'SITE'
import site, sys
if sys.prefix != sys.base_prefix:
    with open(sys.argv[1] + "/gradeconv-offline-site.pth", "w", encoding="utf-8") as pth:
        pth.write("import site; " + "; ".join(f"site.addsitedir({folder!r})" for folder in site.getsitepackages()) + "\n")
SITE
    "$VENV/bin/python" -m pip install --quiet --no-index --no-deps "$WHEEL"
else
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "$WHEEL"
fi
chmod 0700 "$VENV"
# Nobody but root reads the rubric, the secret and the wheel (student code runs as another uid).
chmod -R go-rwx "$SOURCE"

if [ -f "$SOURCE/gradeconv.env" ]; then set -a; . "$SOURCE/gradeconv.env"; set +a; fi
"$VENV/bin/python" -m gradeconv --version
# Fail the image build now, not at the first submission, if the rubric or its secret is wrong.
"$VENV/bin/python" -m gradeconv rubrics "$SOURCE/"@RUBRIC@ >/dev/null

# The uid sandbox (root without namespaces) needs nothing else: no user accounts (it
# uses uids and gids from 61000, or $GRADECONV_UID_BASE, which must be free), and it
# builds its world-readable copy of Python and numpy under /var/cache/gradeconv on
# first use; build it now so the first submission does not pay for it.
if [ "$(id -u)" = 0 ]; then
    "$VENV/bin/python" -c 'from gradeconv.sandbox.runtime import shared_runtime; print("gradeconv: sandbox runtime in", shared_runtime().root)' \
        || echo "setup.sh: could not prepare the sandbox runtime now; gradeconv will try again when grading" >&2
    base="${GRADECONV_UID_BASE:-61000}"
    if getent passwd "$base" >/dev/null 2>&1 || getent group "$base" >/dev/null 2>&1; then
        echo "setup.sh: uid/gid $base is taken; gradeconv skips taken ids, or set GRADECONV_UID_BASE" >&2
    fi
fi
echo "gradeconv: autograder ready"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission, as root. It always leaves a valid
# results.json, even when gradeconv is missing or crashes.
# Written by gradeconv @VERSION@ (gradeconv gradescope-zip).
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
RESULTS="$ROOT/results/results.json"
VENV="$ROOT/@VENV@"
RUBRIC="$SOURCE/"@RUBRIC@

mkdir -p "$ROOT/results"
rm -f "$RESULTS"
if [ -f "$SOURCE/gradeconv.env" ]; then set -a; . "$SOURCE/gradeconv.env"; set +a; fi
cd "$ROOT" 2>/dev/null || cd /
"$VENV/bin/python" -m gradeconv gradescope --submission "$ROOT/submission" --results "$RESULTS" --rubric "$RUBRIC"
status=$?

valid_results() {
    [ -s "$RESULTS" ] || return 1
    "$VENV/bin/python" - "$RESULTS" <<'CHECK' 2>/dev/null
import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
number = lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
assert isinstance(data, dict) and number(data.get("score"))
assert isinstance(data.get("tests", []), list)
assert all(isinstance(t, dict) and number(t.get("score", 0)) for t in data.get("tests", []))
CHECK
}
if ! valid_results; then
    # The inline writer: no Python needed, only the exit status goes into it.
    printf '{"score": 0.0, "output_format": "text", "test_output_format": "text", "output": "The autograder could not grade this submission (gradeconv exit status %s). Please tell your instructor: the autograder output has the details.", "tests": []}\n' "$status" > "$RESULTS"
    echo "run_autograder: gradeconv exited with status $status without a valid results.json; wrote a score of 0" >&2
fi
exit 0
"""
