"""The attack catalog of issue 9: hostile submissions, written by someone who has read gradeconv.

Each attack class is one bounded case, run with bubblewrap and in the no-namespace mode as
root ("uid"). Every run grades the attacker(s) and an honest submission (a copy of the
sample class's correct solution) in one batch through the real CLI, and checks:

1. the attacker gets no undeserved point (each test states exactly what it may pass),
2. the honest submission gets its full score,
3. the batch ends (a generous guard catches a hang) and each limit that stopped the attacker is
   the one the result names: the tests assert what the watchdog decided and why, never how fast,
   so a busy machine (a 2-core CI box running other suites) changes no verdict,
4. the results on disk are the grader's (rows for everyone, values as graded, unchanged
   after a pause in case something detached rewrites them),
5. nothing the attacker started is still running,
6. nothing it wrote is left outside its work dir.

An attack that breaks a limit the watchdog polls holds what it took until it is stopped, under a
call limit far longer than any honest call or the attack's own work needs even on a slow machine:
the watchdog decides, not a race between its next look and the end of the call.

Attack sources are built from the correct solution plus an attack: the worker patches find
the worker's objects with gc at import and rewrite its replies, like a student who read
gradeconv/sandbox/worker.py would.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gradeconv.reports import gradescope
from gradeconv.sandbox import landlock
from tests.conftest import CORRECT, ROOT, checkout_env, skip_unless_available

SOURCE = CORRECT.read_text()
REFERENCE_LAYERS = ROOT / "reference" / "layers.py"
REFERENCE_DIR = ROOT / "reference"
GRADER_SITE = site.getsitepackages()[0]
ATTACK_MODES = ["bubblewrap", "uid"]
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
#: after a batch, the results must stay byte for byte the same this long
STABLE_SECONDS = 1.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --- the rubric ----------------------------------------------------------------------------------------------------

CONV_FWD = "conv forward: no padding (pad = 0)"
CONV_BWD = "conv backward dx: padding, stride > 1, non-square"
POOL_FWD = "max-pool forward: the notebook's example"
POOL_BWD = "max-pool backward: overlapping windows (stride < pool size)"
#: call_seconds is long so that, on a busy machine too, only an attack that holds on until it is stopped (or
#: never answers) meets it; tests of the call limit itself set their own
LIMITS = {"call_seconds": 10, "submission_seconds": 30, "memory_mb": 1024, "processes": 32, "scratch_mb": 32}
#: a batch that has not ended after this long hangs (they take seconds; several times that on a loaded machine)
GUARD_SECONDS = 300
#: attack code: keep what was taken until the watchdog stops the call (the call limit bounds it otherwise)
HOLD = "_time.sleep(60)  # hold it until stopped: the watchdog decides, not a race with the call's end"


def base_tests(examples: int = 4) -> list[dict]:
    return [
        {"name": CONV_FWD, "function": "conv_forward_naive", "points": 8, "examples": examples,
         "space": {"pad": [0, 0], "stride": [1, 2]}},
        {"name": CONV_BWD, "function": "conv_backward_naive", "outputs": ["dx"], "points": 10,
         "examples": examples, "space": {"pad": [1, 2], "stride": [1, 3]},
         "checks": {"gradient": {"mode": "directional", "directions": 2}}},
        {"name": POOL_FWD, "function": "max_pool_forward_naive", "points": 5, "examples": 0,
         "cases": [{"n": 2, "c": 3, "h": 4, "w": 4, "field_h": 2, "field_w": 2, "stride": 2, "values": "notebook"}]},
        {"name": POOL_BWD, "function": "max_pool_backward_naive", "points": 7, "examples": examples,
         "space": {"overlap": "required"},
         "cases": [{"n": 1, "c": 1, "h": 3, "w": 3, "field_h": 2, "field_w": 2, "stride": 1, "seed": 3}],
         "checks": {"gradient": {"mode": "directional", "directions": 2}}},
    ]


POINTS = {t["name"]: t["points"] for t in base_tests()}
TOTAL = sum(POINTS.values())


def write_rubric(path: Path, tests: list[dict] | None = None, limits: dict | None = None, **extra) -> Path:
    data = {"seed": 231, "limits": {**LIMITS, **(limits or {})}, "tests": tests or base_tests(), **extra}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- attack sources ------------------------------------------------------------------------------------------------

def fill(template: str, **values) -> str:
    """The template with each __NAME__ replaced by repr(value)."""
    text = textwrap.dedent(template)
    for name, value in values.items():
        text = text.replace(f"__{name}__", repr(value))
    leftover = re.findall(r"__[A-Z][A-Z_]+__", text)
    assert not leftover, f"unfilled placeholders: {leftover}"
    return text


#: every attack prints the uid it runs as, so the test can look for what that uid left behind
SAY_UID = ('import os as _uos\nprint("ATTACK-UID=%d ATTACK-WORKER=%s" % (_uos.getuid(), '
           '_uos.environ.get("GRADECONV_WORKER")), flush=True)\n')

#: a stub that returns zeros of the right shapes (and the canonical cache) from every function
ZERO_STUB = textwrap.dedent('''
    import numpy as np

    def conv_forward_naive(x, w, b, conv_param):
        s, p = conv_param["stride"], conv_param["pad"]
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        return np.zeros((N, F, 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s)), (x, w, b, conv_param)

    def conv_backward_naive(dout, cache):
        x, w, b, conv_param = cache
        return np.zeros(x.shape), np.zeros(w.shape), np.zeros(b.shape)

    def max_pool_forward_naive(x, pool_param):
        ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        N, C, H, W = x.shape
        return np.zeros((N, C, 1 + (H - ph) // s, 1 + (W - pw) // s)), (x, pool_param)

    def max_pool_backward_naive(dout, cache):
        x, pool_param = cache
        return np.zeros(x.shape)
''')

#: at import: find the worker's objects in this process (its channel _C and its own send)
FIND_WORKER = textwrap.dedent('''
    import gc as _gc

    def _find_worker():
        for _o in _gc.get_objects():
            try:
                if type(_o).__name__ == "Worker" and hasattr(_o, "channel"):
                    return _o
            except Exception:
                pass
        raise RuntimeError("no Worker object in this process")

    _W = _find_worker()
    _C = _W.channel
    _orig_send = _C.send
''')

#: at import: say which uid runs us, find the worker's objects, helpers to forge raw replies
PRELUDE = textwrap.dedent('''
    import io as _io, json as _json, os as _os, struct as _struct, sys as _sys
    import numpy as _np
    print("ATTACK-UID=%d ATTACK-WORKER=%s" % (_os.getuid(), _os.environ.get("GRADECONV_WORKER")), flush=True)
''') + FIND_WORKER + textwrap.dedent('''

    def _npy(a):
        buffer = _io.BytesIO()
        _np.lib.format.write_array(buffer, _np.asarray(a), allow_pickle=False)
        return buffer.getvalue()

    def _npy_raw(descr, shape, payload, fortran=False):
        text = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (descr, fortran, tuple(shape))
        head = text.encode("latin1")
        head += b" " * (63 - (10 + len(head)) % 64) + b"\\n"
        return b"\\x93NUMPY\\x01\\x00" + len(head).to_bytes(2, "little") + head + payload

    def _send_raw(header, blobs, announced=None):
        header = dict(header, blobs=announced if announced is not None else [len(b) for b in blobs])
        text = _json.dumps(header).encode()
        view = memoryview(_struct.pack(">I", len(text)) + text + b"".join(blobs))
        while view:
            view = view[_os.write(_C.write_fd, view):]
''')


def honest_with(attack: str, renamed: tuple[str, ...] = ()) -> str:
    """The correct solution plus attack code; each name in renamed stays available as _honest_<name>."""
    aliases = "".join(f"_honest_{name} = {name}\n" for name in renamed)
    return SAY_UID + SOURCE + "\n" + aliases + textwrap.dedent(attack)


# --- the workspace, the batch and what it left ----------------------------------------------------------------------

@pytest.fixture
def ws():
    """A workspace anyone may traverse (like a typical course folder), so the sandbox, not luck, protects it."""
    root = Path(tempfile.mkdtemp(prefix="gradeconv-attacks-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def marker():
    """A unique string every attack puts into the command lines and file names of what it starts."""
    value = "gcatk" + uuid.uuid4().hex[:12]
    yield value
    for pid, _, _, _ in processes():  # never leave anything behind, even when a test fails
        if value.encode() in cmdline(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for path in marked_files(value, []):
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def make_class(ws: Path, attackers: dict[str, str | dict], honest: str = "honest") -> Path:
    """ws/class/<name>/cs231n/layers.py for each attacker (or several files) and the honest copy."""
    folder = ws / "class"
    for name, files in {**attackers, honest: SOURCE}.items():
        package = folder / name / "cs231n"
        package.mkdir(parents=True)
        for file, content in ({"layers.py": files} if isinstance(files, str) else files).items():
            target = package / file
            if isinstance(content, Path):  # a symbolic link
                target.symlink_to(content)
            else:
                target.write_text(content)
    return folder


@dataclass
class Batch:
    data: dict
    rows: dict[str, dict]
    elapsed: float
    stdout: str
    stderr: str
    out: Path
    ended: float  # seconds since boot when the batch ended
    ended_wall: float = 0.0  # time.time() when it ended

    def outcomes(self, sid: str) -> dict[str, str]:
        return {t["name"]: t["extra_data"]["outcome"] for t in self.rows[sid]["tests"]}

    def passed(self, sid: str) -> set[str]:
        return {t["name"] for t in self.rows[sid]["tests"] if t["status"] == "passed"}

    def summary(self, sid: str) -> str:
        row = self.rows[sid]
        tests = "\n".join(f"  {t['name']}: {t['extra_data']['outcome']} {t['score']}/{t['max_score']} "
                          f"{t['output'][:300]!r}" for t in row["tests"])
        return f"{sid}: {row['score']}/{row['max_score']}\n{row['output'][:3000]}\n{tests}"

    def workers(self) -> set[str]:
        """The markers of the attackers' own workers (whatever they started inherits it unless it drops it)."""
        return {m for row in self.rows.values() for m in re.findall(r"ATTACK-WORKER=(\w+)", row["output"])}

    def uids(self) -> set[int]:
        """The worker uids the attackers printed (uid mode only)."""
        found = set()
        for row in self.rows.values():
            found |= {int(u) for u in re.findall(r"ATTACK-UID=(\d+)", row["output"])}
        return {uid for uid in found if uid != 0}


def uptime() -> float:
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


def run_cli(args: list[str], mode: str, cwd: Path, timeout: float, env: dict | None = None):
    """(returncode, stdout, stderr, elapsed) of `python -m gradeconv ARGS`; fails the test on timeout."""
    full_env = checkout_env(GRADECONV_SANDBOX=mode, **(env or {}))
    full_env.pop("GRADECONV_NO_BWRAP", None)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "gradeconv", *args], cwd=cwd, env=full_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"gradeconv did not finish within {timeout} s\nstdout: {stdout[-2000:]}\nstderr: {stderr[-3000:]}")
    return process.returncode, stdout, stderr, time.monotonic() - started


def grade_batch(ws: Path, mode: str, class_dir: Path | list[Path], rubric: Path, timeout: float = GUARD_SECONDS,
                env: dict | None = None, extra: list[str] = (), unsandboxed: tuple[str, ...] = ()) -> Batch:
    """Grade the class (or several class folders) with the CLI (--jobs 2); check the results are the grader's."""
    folders = class_dir if isinstance(class_dir, list) else [class_dir]
    results = ws / "results"
    results.mkdir(exist_ok=True)
    cwd = ws / "cwd"
    cwd.mkdir(exist_ok=True)
    out = results / "out.json"
    code, stdout, stderr, elapsed = run_cli(
        ["grade", *map(str, folders), "--rubric", str(rubric), "--json", str(out), "--jobs", "2", "--quiet", *extra],
        mode, cwd, timeout, env)
    ended, ended_wall = uptime(), time.time()
    assert code == 0, f"exit status {code}\nstderr: {stderr[-3000:]}"
    written = out.read_bytes()
    info = out.lstat()
    assert info.st_uid == os.geteuid() and not info.st_mode & 0o022, "the results file is not the grader's alone"
    time.sleep(STABLE_SECONDS)
    assert out.read_bytes() == written, "the results file changed after grading ended"
    data = json.loads(written)
    assert {"gradeconv_version", "hypothesis_version", "numpy_version", "rubric", "submissions"} <= set(data)
    assert data["rubric"]["sha256"] == hashlib.sha256(rubric.read_bytes()).hexdigest()
    rows = {row["id"]: row for row in data["submissions"]}
    expected = sorted(p.name for folder in folders for p in folder.iterdir() if not p.name.startswith("."))
    assert sorted(rows) == expected, f"rows {sorted(rows)} for submissions {expected}"
    names = [t["name"] for t in yaml.safe_load(rubric.read_text())["tests"]]
    for sid, row in rows.items():
        assert [t["name"] for t in row["tests"]] == names, row
        for test in row["tests"]:
            assert 0 <= test["score"] <= test["max_score"]
            assert (test["status"] == "passed") == (test["extra_data"]["outcome"] == "passed")
            assert test["score"] == (test["max_score"] if test["status"] == "passed" else 0)
        assert row["score"] == pytest.approx(sum(t["score"] for t in row["tests"]))
        if sid not in unsandboxed:  # refused before it ran, else it says where it ran
            assert row["output"].startswith("sandbox: " + mode), row["output"][:200]
    batch = Batch(data, rows, elapsed, stdout, stderr, out, ended, ended_wall)
    if os.environ.get("GRADECONV_ATTACKS_DUMP"):  # for whoever debugs an attack: pytest -s
        print(f"\n[{mode}] batch took {batch.elapsed:.1f} s")
        for sid in rows:
            print(batch.summary(sid))
    return batch


def assert_honest(batch: Batch, sid: str = "honest") -> None:
    row = batch.rows[sid]
    assert row["score"] == row["max_score"] and all(t["status"] == "passed" for t in row["tests"]), \
        batch.summary(sid)


def assert_earns_exactly(batch: Batch, sid: str, allowed: set[str]) -> None:
    """The attacker passes exactly the tests its honest parts earn, and scores exactly their points."""
    assert batch.passed(sid) == allowed, batch.summary(sid)
    assert batch.rows[sid]["score"] == sum(POINTS[name] for name in allowed), batch.summary(sid)


def processes():
    """(pid, real uid, start in seconds since boot, state) of every live process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            with open(f"/proc/{entry}/status", "rb") as handle:
                uid_line = next(line for line in handle if line.startswith(b"Uid:"))
        except (OSError, StopIteration):
            continue
        if fields[0] == b"Z":
            continue
        found.append((int(entry), int(uid_line.split()[1]), int(fields[19]) / CLOCK_TICKS, fields[0]))
    return found


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def foreign_worker(pid: int, ours: set[str]) -> bool:
    """A process of another grading session that got the same worker account after ours (its worker marker)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            found = re.findall(rb"(?:^|\0)GRADECONV_WORKER=(\w+)", handle.read())
    except OSError:
        return False
    return bool(found) and found[0].decode() not in ours


def leftover_processes(marker: str, batch: Batch | None = None, mode: str = "") -> list[str]:
    """Processes carrying the marker, and (uid mode) processes of the attackers' uids started before the batch
    ended, unless they belong to another session's worker (other grading runs may share this machine)."""
    uids = batch.uids() if batch is not None and mode == "uid" else set()
    ours = batch.workers() if batch is not None else set()
    found = []
    for pid, uid, started, state in processes():
        line = cmdline(pid)
        if marker.encode() in line or (uid in uids and started <= batch.ended + 0.05
                                       and not foreign_worker(pid, ours)):
            shown = line.replace(b"\0", b" ")[:200]
            found.append(f"{pid} uid={uid} state={state.decode()} {shown!r}")
    return found


def marked_files(marker: str, roots: list[Path]) -> list[str]:
    """Files and folders whose name carries the marker in the scratch folders and under roots."""
    found = []
    for folder in SCRATCH:
        found += glob.glob(os.path.join(folder, f"*{marker}*"))
    for root in roots:
        for folder, dirs, files in os.walk(root):
            found += [os.path.join(folder, name) for name in dirs + files if marker in name]
    return found


def files_of(uids: set[int], before: float = float("inf")) -> list[str]:
    """Entries of the scratch folders owned by these uids (changed before `before`, a time.time())."""
    found = []
    for folder in SCRATCH:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                        if info.st_uid in uids and info.st_ctime <= before + 0.05:
                            found.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return found


def assert_nothing_left(marker: str, batch: Batch, mode: str, roots: list[Path]) -> None:
    assert leftover_processes(marker, batch, mode) == []
    assert marked_files(marker, roots) == []
    if mode == "uid":
        assert files_of(batch.uids(), batch.ended_wall) == []


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under folder and its content (to show nobody changed a classmate's work)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


# --- a. forged replies ---------------------------------------------------------------------------------------------

#: each rewrites the worker's successful replies (whose arrays hold the CORRECT answers) into a forgery
FORGERIES = {
    "status_passed": 'header["status"] = "passed"',
    "index_out_of_range": 'header["value"] = _shift(header["value"], 5)',
    "extra_array": "blobs.append(_npy(_np.zeros(3)))",
    "object_dtype": "blobs[0] = _npy_raw('|O', (len(arrays[0].ravel()),), arrays[0].tobytes())",
    "structured_dtype": "blobs[0] = _npy_raw([('a', '<f8')], arrays[0].shape, arrays[0].tobytes())",
    "string_dtype": "blobs[0] = _npy_raw('<U2', arrays[0].shape, arrays[0].tobytes())",
    "shape_mismatch": "blobs[0] = _npy_raw('<f8', (2 * arrays[0].size,), arrays[0].tobytes())",
    "announces_1gib": "announced = [1 << 30] + [len(b) for b in blobs[1:]]\nblobs = [blobs[0][:64]]",
    "negative_blob": "announced = [-len(blobs[0])] + [len(b) for b in blobs[1:]]",
    "value_not_schema": 'header["value"] = {"array": 0, "sneaky": True}',
    "status_raised_but_arrays": 'header = {"status": "raised", "type": "ValueError", "message": "x"}',
}

FORGER = PRELUDE + '''
def _shift(value, by):
    if isinstance(value, dict):
        return {k: (v + by if k == "array" else _shift(v, by)) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, by) for v in value]
    return value

def _forged(header, arrays=()):
    if header.get("status") != "ok" or "value" not in header:  # load and drop replies stay true
        return _orig_send(header, arrays)
    header, arrays = dict(header), list(arrays)
    blobs = [_npy(a) for a in arrays]
    announced = None
    if arrays:
__FORGERY__
    _send_raw(header, blobs, announced)

_C.send = _forged
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_a_forged_replies_cost_the_call(mode, ws, marker):
    """Correct answers in a forged reply (unknown status, bad indices, extra or non-numeric arrays,
    a .npy header that lies about its size, 1 GiB announced): every call fails, never passes, no restart storm."""
    skip_unless_available(mode)
    attackers = {}
    for name, forgery in FORGERIES.items():
        body = textwrap.indent(forgery, " " * 8)
        attackers[f"forged_{name}"] = SOURCE + "\n" + FORGER.replace("__FORGERY__", body)
    class_dir = make_class(ws, attackers)
    batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml"))
    for sid in attackers:
        assert batch.rows[sid]["score"] == 0, batch.summary(sid)
        for test in batch.rows[sid]["tests"]:
            outcome = test["extra_data"]["outcome"]
            # "broke the grader's connection"; a worker killed at its start for files it never made is the
            # bug test_a_worker_is_never_killed_for_files_it_did_not_make shows: it costs the call too
            known_bug = outcome == "crashed" and "files in scratch folders" in test["output"]
            assert outcome == "error" or known_bug, f"{test['name']}: {batch.summary(sid)}"
        # one refused reply per function, then it is not called again: one worker start per function at most
        assert batch.rows[sid]["output"].count("ATTACK-UID=") <= 4, batch.summary(sid)
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


# --- b. replies that might make the parent raise while judging -----------------------------------------------------

#: each replaces every array of a successful reply of the zero-returning stub (a is the stub's array)
ODD_ARRAYS = {
    "zero_d": "_np.array(0.0)",
    "empty": "_np.zeros(0)",
    "zero_in_shape": "_np.zeros((0,) + a.shape[1:])",
    "huge_empty": "_np.zeros((0, 1 << 39, 1, 1))",
    "ndim_32": "_np.zeros((1,) * 32)",
    "complex": "a.astype(_np.complex128) + 1j",
    "int8": "a.astype(_np.int8)",
    "bool": "a.astype(bool)",
    "uint64_max": "_np.full(a.shape, 2**64 - 1, _np.uint64)",
    "float16": "a.astype(_np.float16)",
    "big_endian": "a.astype('>f8')",
    "fortran_order": "_np.asfortranarray(_np.zeros(a.shape[::-1]).T) if a.ndim > 1 else a",
    "nan": "_np.full(a.shape, _np.nan)",
    "inf": "_np.full(a.shape, -_np.inf)",
    "subnormal": "_np.full(a.shape, 5e-324)",
}
#: each replaces the value description of a successful reply
ODD_VALUES = {
    "list_not_tuple": 'dict(value, sequence="list") if "sequence" in value else value',
    "all_arrays_flat": '{"sequence": "list", "items": [{"array": i} for i in range(len(arrays))]}',
    "other": '{"other": "numpy.ndarray"}',
    "none_items": '{"sequence": "tuple", "items": [{"none": True}] * 64}',
}

ODD = PRELUDE + '''
def _odd(header, arrays=()):
    if header.get("status") == "ok" and "value" in header:
        arrays = [(__ARRAY__) for a in arrays]
        value = header["value"]
        header = dict(header, value=(__VALUE__))
    return _orig_send(header, arrays)

_C.send = _odd
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_b_odd_replies_of_a_zero_stub_score_nothing(mode, ws, marker):
    """A stub returning zeros whose worker rewrites its arrays (0-d, empty, complex, int8, 32 dimensions,
    Fortran order, NaN, ...) or their description: whatever the parent makes of it, the stub scores 0."""
    skip_unless_available(mode)
    attackers = {}
    for name, expression in ODD_ARRAYS.items():
        attackers[f"odd_array_{name}"] = ZERO_STUB + ODD.replace("__ARRAY__", expression).replace("__VALUE__", "value")
    for name, expression in ODD_VALUES.items():
        attackers[f"odd_value_{name}"] = ZERO_STUB + ODD.replace("__ARRAY__", "a").replace("__VALUE__", expression)
    class_dir = make_class(ws, attackers)
    batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    for sid in attackers:
        assert batch.rows[sid]["score"] == 0, batch.summary(sid)
        assert batch.passed(sid) == set(), batch.summary(sid)
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


# --- c. sibling symlinks -------------------------------------------------------------------------------------------

LINK_STUB = SAY_UID + ZERO_STUB.replace("def ", "def _zero_") + '''
import os, sys

def _stolen():
    """The reference or a classmate's solution, if staging let either in; None otherwise."""
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("environ.py", "rubric_copy.py", "secret.py"):
        path = os.path.join(here, name)
        if os.path.exists(path):
            print("LEAK copied", name, open(path, "rb").read()[:3000], flush=True)
    try:  # the reference through helper.py, its own imports patched up from the staged helper and scratch.py
        from cs231n import im2col, refscratch
        sys.modules.setdefault("reference", type(sys)("reference"))
        sys.modules["reference.im2col"], sys.modules["reference.scratch"] = im2col, refscratch
        from cs231n import helper
        return helper
    except Exception:
        pass
    for name in ("cs231n.neighbour", "cs231n.ref.layers"):
        try:
            return __import__(name, fromlist=["x"])
        except Exception:
            pass
    try:
        sys.path.insert(0, __ROOT__)
        import reference.layers
        return reference.layers
    except Exception:
        return None
''' + "".join(f'''
def {name}(*args):
    module = _stolen()
    return getattr(module, "{name}")(*args) if module is not None else _zero_{name}(*args)
''' for name in ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive"))


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_c_sibling_symlinks_bring_nothing_in(mode, ws, marker):
    """Links beside a stub to the reference, the rubric, /proc/self/environ and a classmate's solution
    (and a graded layers.py that is itself a link to the classmate's): 0 points. The same files as real
    copies (a control an instructor could set up, not a student) score full, so the stub would profit."""
    skip_unless_available(mode)
    rubric = write_rubric(ws / "rubric.yaml")
    class_dir = ws / "class"
    neighbour = class_dir / "honest" / "cs231n" / "layers.py"
    stub = fill(LINK_STUB, ROOT=str(ROOT))
    links = {"layers.py": stub, "helper.py": REFERENCE_LAYERS, "refscratch.py": REFERENCE_DIR / "scratch.py",
             "neighbour.py": neighbour, "rubric_copy.py": rubric, "environ.py": Path("/proc/self/environ"),
             "ref": REFERENCE_DIR}
    copies = {"layers.py": stub, "helper.py": REFERENCE_LAYERS.read_text(),
              "refscratch.py": (REFERENCE_DIR / "scratch.py").read_text()}
    make_class(ws, {"links": links, "linked_module": {"layers.py": neighbour}, "zz_control_copies": copies})
    batch = grade_batch(ws, mode, class_dir, rubric, env={"GRADECONV_CANARY": marker + "-canary"},
                        unsandboxed=("linked_module",))
    for sid in ("links", "linked_module"):
        assert batch.rows[sid]["score"] == 0, batch.summary(sid)
        assert "LEAK" not in batch.rows[sid]["output"], batch.summary(sid)
    assert "helper.py (a symbolic link)" in batch.rows["links"]["output"], batch.summary("links")
    assert batch.rows["zz_control_copies"]["score"] == TOTAL, batch.summary("zz_control_copies")
    assert marker + "-canary" not in batch.out.read_text()
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


# --- d. a worker that shrinks its request pipe and stops reading ----------------------------------------------------

PIPE_STALL = PRELUDE + '''
import fcntl, time
_config = _json.loads(_sys.argv[1])
fcntl.fcntl(_config["read_fd"], 1031, 4096)  # F_SETPIPE_SZ: room for one page only

def _never(fd, size):
    time.sleep(3600)  # stop reading: the parent's next large request cannot be written

_C._read = _never
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_d_a_worker_that_stops_reading_costs_only_call_seconds(mode, ws, marker):
    """The request pipe shrunk to 4 KB, nobody reading it, a 49 KB request: each call ends at its deadline
    (call_seconds), not at the submission's budget or the watchdog's margin after it."""
    skip_unless_available(mode)
    tests = base_tests(3)
    tests[0]["cases"] = [{"n": 2, "c": 3, "h": 32, "w": 32, "f": 2, "field_h": 3, "field_w": 3,
                          "stride": 1, "pad": 1, "seed": 1}]
    tests[0]["space"] = {"pad": [0, 1], "stride": [1, 2]}
    tests = [tests[0], tests[2]]  # a large request, then a small one
    class_dir = make_class(ws, {"stalls": SOURCE + PIPE_STALL})
    rubric = write_rubric(ws / "rubric.yaml", tests=tests, limits={"call_seconds": 2})
    batch = grade_batch(ws, mode, class_dir, rubric)
    assert batch.rows["stalls"]["score"] == 0, batch.summary("stalls")
    assert set(batch.outcomes("stalls").values()) == {"timeout"}, batch.summary("stalls")
    for test in batch.rows["stalls"]["tests"]:  # each stopped at its own call's deadline
        assert "(no answer within 2 s)" in test["output"], batch.summary("stalls")
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


# --- e. writing into its inputs, hidden by a patched worker ---------------------------------------------------------

WRITES_INPUTS = '''
def conv_forward_naive(x, w, b, conv_param):
    result = _honest_conv_forward_naive(x, w, b, conv_param)
    b[...] = 0.0
    w[...] = 0.0
    x[...] = 0.0
    return result

def conv_backward_naive(dout, cache):
    result = _honest_conv_backward_naive(dout, cache)
    dout[...] = 0.0
    cache[0][...] = 0.0
    return result

def max_pool_forward_naive(x, pool_param):
    result = _honest_max_pool_forward_naive(x, pool_param)
    x[...] = 0.0
    return result

def max_pool_backward_naive(dout, cache):
    result = _honest_max_pool_backward_naive(dout, cache)
    dout[...] = 0.0
    cache[0][...] = 0.0
    return result
'''
ALL_FUNCTIONS = ("conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive")

#: rewrites of the worker's reply when the student's write into an input raised
HIDE_WRITES = {
    "strips_hints": 'header = {k: v for k, v in header.items() if k not in ("mutated", "where")}',
    "disguised": 'header = dict(header, type="ZeroDivisionError", message="division by zero", mutated=[])',
}
HIDER = PRELUDE + '''
def _hide(header, arrays=()):
    if header.get("status") == "raised":
        __HIDE__
    return _orig_send(header, arrays)

_C.send = _hide
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_e_writing_into_inputs_is_caught_whatever_the_worker_claims(mode, ws, marker):
    """Correct values, then writes into x, w, b and dout: mutated_input on every test, also when the
    worker strips its hints from the reply; disguised as another error it still scores 0."""
    skip_unless_available(mode)
    writer = honest_with(WRITES_INPUTS, ALL_FUNCTIONS)
    attackers = {"writes_plain": writer}
    for name, hide in HIDE_WRITES.items():
        attackers[f"writes_{name}"] = writer + HIDER.replace("__HIDE__", hide)
    class_dir = make_class(ws, attackers)
    batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    for sid in ("writes_plain", "writes_strips_hints"):
        assert set(batch.outcomes(sid).values()) == {"mutated_input"}, batch.summary(sid)
    for sid in attackers:
        assert batch.rows[sid]["score"] == 0, batch.summary(sid)
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


# --- f. recorded answers replayed by input hash ---------------------------------------------------------------------

#: the key both the recorder and the replayer use: sha256 of the function name and every input's bytes
KEY_CODE = '''
import base64 as _b64, hashlib as _hashlib, io as _kio, json as _kjson
import numpy as _knp

def _key(function, args):
    digest = _hashlib.sha256(function.encode())
    def feed(value):
        if isinstance(value, _knp.ndarray):
            digest.update(repr((str(value.dtype), value.shape)).encode())
            digest.update(_knp.ascontiguousarray(value).tobytes())
        elif isinstance(value, (tuple, list)):
            digest.update(b"(")
            for item in value:
                feed(item)
            digest.update(b")")
        elif isinstance(value, dict):
            digest.update(_kjson.dumps(value, sort_keys=True).encode())
        else:
            digest.update(repr(value).encode())
    for arg in args:
        feed(arg)
    return digest.hexdigest()
'''
RECORDER = KEY_CODE + '''
def _recording(function):
    def wrapped(*args):
        result = function(*args)
        outputs = result if function.__name__ in ("conv_backward_naive",) else (result[0],) if isinstance(result, tuple) else (result,)
        blobs = []
        for array in outputs:
            buffer = _kio.BytesIO()
            _knp.save(buffer, array, allow_pickle=False)
            blobs.append(_b64.b64encode(buffer.getvalue()).decode())
        with open(__TABLE__, "a") as handle:
            handle.write(_kjson.dumps([_key(function.__name__, args), blobs]) + "\\n")
        return result
    wrapped.__name__ = function.__name__
    return wrapped

conv_forward_naive = _recording(conv_forward_naive)
conv_backward_naive = _recording(conv_backward_naive)
max_pool_forward_naive = _recording(max_pool_forward_naive)
max_pool_backward_naive = _recording(max_pool_backward_naive)
'''
REPLAYER = SAY_UID + KEY_CODE + '''
import os, sys
TABLE = __ENTRIES__

def _try_to_read_the_secret():
    places = [__SECRET_FILE__, "/proc/self/environ", "/proc/%d/environ" % os.getppid(), "/proc/1/environ"]
    for place in places:
        try:
            print("LEAK", place, open(place, "rb").read()[:4000], flush=True)
        except OSError:
            pass
    print("LEAK environment", dict(os.environ), flush=True) if __SECRET_NAME__ in os.environ else None

_try_to_read_the_secret()

def _answer(function, args, shape):
    blobs = TABLE.get(_key(function, args))
    if blobs is None:
        return [_knp.zeros(1)] * shape
    return [_knp.load(_kio.BytesIO(_b64.b64decode(blob)), allow_pickle=False) for blob in blobs]

def conv_forward_naive(x, w, b, conv_param):
    return _answer("conv_forward_naive", (x, w, b, conv_param), 1)[0], (x, w, b, conv_param)

def conv_backward_naive(dout, cache):
    return tuple(_answer("conv_backward_naive", (dout, cache), 3))

def max_pool_forward_naive(x, pool_param):
    return _answer("max_pool_forward_naive", (x, pool_param), 1)[0], (x, pool_param)

def max_pool_backward_naive(dout, cache):
    return _answer("max_pool_backward_naive", (dout, cache), 1)[0]
'''


def hidden_tests(examples: int = 3) -> list[dict]:
    """The base tests with every test but the notebook's max-pool example hidden."""
    tests = base_tests(examples)
    tests[1]["cases"] = [{"n": 1, "c": 2, "h": 5, "w": 7, "f": 2, "field_h": 3, "field_w": 1, "stride": 2,
                          "pad": 1, "seed": 1}]
    for test in tests:
        if test["name"] != POOL_FWD:
            test["visibility"] = "hidden"
    return tests


def record_answers(ws: Path, public_rubric: Path) -> dict[str, list[str]]:
    """Grade a recording solution with the public rubric in sandbox none: every input it saw and its answer."""
    import gradeconv

    table = ws / "table.jsonl"
    folder = ws / "recorder" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(SOURCE + fill(RECORDER, TABLE=str(table)))
    result = gradeconv.grade(ws / "recorder", public_rubric, sandbox="none")[0]
    assert result.score == result.max_score, [t.output for t in result.tests]
    shutil.rmtree(ws / "recorder")
    entries = dict(json.loads(line) for line in table.read_text().splitlines())
    table.unlink()
    return entries


def replayer(entries: dict, secret_file: Path, secret_name: str) -> str:
    return fill(REPLAYER, ENTRIES=entries, SECRET_FILE=str(secret_file), SECRET_NAME=secret_name)


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_f_recorded_answers_are_worth_nothing_on_hidden_tests_with_a_secret(mode, ws, marker):
    """A stub replaying answers recorded with the public rubric: full marks without a secret (the control),
    only the visible test with the secret from a file or from the environment; no results file, gradebook
    or feedback ever holds the secret, though the stub tries to read it."""
    skip_unless_available(mode)
    tests = hidden_tests()
    public = write_rubric(ws / "public.yaml", tests=tests)
    entries = record_answers(ws, public)
    secret = f"s3cret-{marker}"
    (ws / "secret.txt").write_text(secret + "\n")
    secret_file = write_rubric(ws / "rubric.yaml", tests=tests, secret_file="secret.txt")
    secret_env = write_rubric(ws / "rubric-env.yaml", tests=tests, secret_env="GRADECONV_TEST_SECRET")
    class_dir = make_class(ws, {"replays": replayer(entries, ws / "secret.txt", "GRADECONV_TEST_SECRET")})

    control = grade_batch(ws, mode, class_dir, public)
    assert control.rows["replays"]["score"] == TOTAL, control.summary("replays")
    assert_honest(control)
    hidden = {t["name"] for t in tests if t.get("visibility") == "hidden"}
    for rubric, env in ((secret_file, {}), (secret_env, {"GRADECONV_TEST_SECRET": secret})):
        reports = ws / "reports"
        batch = grade_batch(ws, mode, class_dir, rubric, env=env,
                            extra=["--csv", str(reports / "grades.csv"), "--feedback-dir", str(reports / "feedback")])
        assert batch.passed("replays") == {POOL_FWD}, batch.summary("replays")
        assert not hidden & batch.passed("replays")
        assert_honest(batch)
        for path in [batch.out, *reports.rglob("*")]:
            if path.is_file():
                assert secret not in path.read_text(errors="replace"), f"{path} holds the secret"
        assert "LEAK /proc/self/environ" in batch.rows["replays"]["output"]  # it printed what it could read
        shutil.rmtree(reports)
        assert_nothing_left(marker, batch, mode, [ws])


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_f_the_first_generated_case_of_a_hidden_test_is_not_public(mode, ws, marker):
    """Hypothesis's first case is its minimal example (smallest geometry, value seed 0) whatever its seed, so
    a hidden test with examples: 1 would be passed by recorded answers unless that case's values are mixed
    with the secret too (found by this test, since fixed)."""
    skip_unless_available(mode)
    tests = [dict(hidden_tests()[0], examples=1), hidden_tests()[2]]
    public = write_rubric(ws / "public.yaml", tests=tests)
    entries = record_answers(ws, public)
    (ws / "secret.txt").write_text(f"s3cret-{marker}\n")
    rubric = write_rubric(ws / "rubric.yaml", tests=tests, secret_file="secret.txt")
    class_dir = make_class(ws, {"replays": replayer(entries, ws / "secret.txt", "GRADECONV_TEST_SECRET")})
    batch = grade_batch(ws, mode, class_dir, rubric)
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    assert batch.passed("replays") == {POOL_FWD}, batch.summary("replays")


# --- g. one reply carrying a huge array ------------------------------------------------------------------------------

HUGE_REPLY = PRELUDE + '''
def conv_forward_naive(x, w, b, conv_param):
    out, cache = _honest_conv_forward_naive(x, w, b, conv_param)
    return _np.ones(300 << 17), cache  # 300 MB of float64

def _stream(header, arrays=()):
    """Send big arrays straight from their memory, so the reply starts within the call's deadline."""
    if not any(a.nbytes > 1 << 20 for a in arrays):
        return _orig_send(header, arrays)
    heads = []
    for a in arrays:
        buffer = _io.BytesIO()
        _np.lib.format.write_array_header_1_0(buffer, _np.lib.format.header_data_from_array_1_0(a))
        heads.append(buffer.getvalue())
    text = _json.dumps(dict(header, blobs=[len(h) + a.nbytes for h, a in zip(heads, arrays)])).encode()
    _os.write(_C.write_fd, _struct.pack(">I", len(text)) + text)
    for head, a in zip(heads, arrays):
        for part in (memoryview(head), memoryview(a).cast("B")):
            while part:
                part = part[_os.write(_C.write_fd, part[: 1 << 20]):]

_C.send = _stream
'''
PEAK_RSS = '''
import json, resource, sys
import gradeconv
result = gradeconv.grade(sys.argv[1], sys.argv[2], sandbox=sys.argv[3])[0]
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "outcomes": {t.name: t.outcome for t in result.tests}, "score": result.score,
                  "said": result.tests[0].output}))
'''
#: what a reply announcing more array bytes than its call may return is told (gradeconv/sandbox/wire.py)
REFUSED_UNREAD = "this call can legitimately return"


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_g_a_huge_reply_is_refused_unread(mode, ws, marker):
    """conv_forward_naive returns 300 MB (memory_mb 2048): that test fails because the reply announced more
    than the call may return (refused before its arrays are read), the rest is graded, and the grading
    process never holds the array (its peak RSS stays far below 300 MB above a normal grading's)."""
    skip_unless_available(mode)
    rubric = write_rubric(ws / "rubric.yaml", tests=base_tests(3), limits={"memory_mb": 2048})
    class_dir = make_class(ws, {"huge": honest_with(HUGE_REPLY, ("conv_forward_naive",))})
    batch = grade_batch(ws, mode, class_dir, rubric)
    assert_earns_exactly(batch, "huge", {CONV_BWD, POOL_FWD, POOL_BWD})
    assert batch.outcomes("huge")[CONV_FWD] == "error", batch.summary("huge")
    assert REFUSED_UNREAD in batch.rows["huge"]["tests"][0]["output"], batch.summary("huge")
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])

    peaks = {}
    for sid in ("honest", "huge"):
        done = subprocess.run([sys.executable, "-c", PEAK_RSS, str(class_dir / sid), str(rubric), mode],
                              capture_output=True, text=True, timeout=GUARD_SECONDS, cwd=ws / "cwd",
                              env=checkout_env())
        assert done.returncode == 0, done.stderr[-3000:]
        peaks[sid] = json.loads(done.stdout.splitlines()[-1])
    assert peaks["huge"]["outcomes"][CONV_FWD] == "error" and REFUSED_UNREAD in peaks["huge"]["said"], peaks
    print(f"[{mode}] peak RSS of the grading process: honest {peaks['honest']['maxrss_kb'] >> 10} MB, "
          f"huge reply {peaks['huge']['maxrss_kb'] >> 10} MB")
    assert peaks["huge"]["maxrss_kb"] < peaks["honest"]["maxrss_kb"] + 100 * 1024, peaks


# --- h. fork bomb -----------------------------------------------------------------------------------------------------

FORK_BOMB = '''
import os as _os, sys as _sys, time as _time

def conv_forward_naive(x, w, b, conv_param):
    hog = "b = bytearray(40 << 20)\\nimport time\\ntime.sleep(60)\\n"
    for _ in range(200):
        try:
            pid = _os.fork()
        except OSError:
            _time.sleep(0.005)
            continue
        if pid == 0:
            try:
                _os.setsid()
                _os.execv(_sys.executable, [_sys.executable, "-S", "-c", hog, __MARKER__])
            finally:
                _os._exit(0)
    __HOLD__
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''.replace("__HOLD__", HOLD)


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_h_a_fork_bomb_is_stopped_and_leaves_nothing(mode, ws, marker):
    """200 detached processes of 40 MB each from conv_forward_naive (processes 32, memory_mb 1024): the watchdog
    stops the call for a limit of all its processes together (their number, their memory or, while 200
    interpreters start, the cores they keep busy: whichever it sees broken first), nothing it started runs
    afterwards, the other functions and the honest neighbour are graded."""
    skip_unless_available(mode)
    bomb = honest_with(fill(FORK_BOMB, MARKER=marker), ("conv_forward_naive",))
    class_dir = make_class(ws, {"bomb": bomb})
    batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_earns_exactly(batch, "bomb", {CONV_BWD, POOL_FWD, POOL_BWD})
    assert batch.outcomes("bomb")[CONV_FWD] == "crashed", batch.summary("bomb")
    limits = (r"it ran \d+ processes at once", r"its processes together used \d+ MB of memory",
              r"its processes kept [0-9.]+ processor cores busy")
    assert re.search("|".join(limits), batch.rows["bomb"]["tests"][0]["output"]), batch.summary("bomb")
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


THREAD_BOMB = '''
import os as _os, threading as _th, time as _time
_done = []

def _threads(limit, until):
    _th.stack_size(32768)
    gate, made = _th.Event(), 0
    try:
        while made < limit and _time.monotonic() < until:
            _th.Thread(target=gate.wait, daemon=True).start()
            made += 1
    except BaseException:
        pass
    return made

def conv_forward_naive(x, w, b, conv_param):
    if not _done:  # 25 processes (under the limit of 32), 400 threads each
        _done.append(True)
        started = _time.monotonic()
        for i in range(24):
            if _os.fork() == 0:
                try:
                    _threads(400, started + 1.0)
                    _time.sleep(max(0.0, started + 1.8 - _time.monotonic()))
                finally:
                    _os._exit(0)
        print("THREADS %d in the worker" % _threads(400, started + 1.0), flush=True)
        _time.sleep(max(0.0, 1.7 - (_time.monotonic() - started)))
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''


class Watch(threading.Thread):
    """The highest and lowest value of a host-wide measure while a batch runs."""

    def __init__(self, sample, interval: float):
        super().__init__(daemon=True)
        self.sample, self.interval = sample, interval
        self.base = self.peak = self.low = sample()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            value = self.sample()
            self.peak, self.low = max(self.peak, value), min(self.low, value)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self.join()


def meminfo(field: str) -> int:
    """One /proc/meminfo field in bytes: Shmem holds memfd pages, Slab inodes and dentries."""
    with open("/proc/meminfo") as handle:
        return next(int(line.split()[1]) << 10 for line in handle if line.startswith(field + ":"))


def host_tasks() -> int:
    """Tasks (threads) on the host."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    total += int(handle.read().rpartition(")")[2].split()[17])
            except (OSError, ValueError, IndexError):
                continue
    return total


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_threads_count_against_the_process_limit(mode, ws, marker):
    """Threads are tasks like processes: a submission staying under 32 processes but running thousands of
    threads must be stopped (uid: RLIMIT_NPROC counts threads, so it never gets that far). Found by this
    test: under bubblewrap 25 processes of 400 threads (10000 tasks, pid_max 32768) once passed unnoticed."""
    skip_unless_available(mode)
    bomb = honest_with(THREAD_BOMB, ("conv_forward_naive",))
    class_dir = make_class(ws, {"threads": bomb})
    with Watch(host_tasks, 0.1) as tasks:
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    grew = tasks.peak - tasks.base
    if grew > 4 * LIMITS["processes"]:
        assert batch.outcomes("threads")[CONV_FWD] != "passed", f"{grew} more tasks on the host\n" + \
            batch.summary("threads")


# --- i. scratch space -------------------------------------------------------------------------------------------------

SCRATCH_FILLER = '''
import os as _os, time as _time

_filled = []

def conv_forward_naive(x, w, b, conv_param):
    if _filled:  # once is enough
        return _honest_conv_forward_naive(x, w, b, conv_param)
    _filled.append(True)
    chunk = b"x" * (1 << 20)
    unbounded = False
    for label, folder in (("/tmp", "/tmp"), ("/dev/shm", "/dev/shm"), ("work", ".")):
        written = 0
        for i in range(100):
            try:
                with open("%s/%s-%03d" % (folder, __MARKER__, i), "wb") as handle:
                    handle.write(chunk)
                written += 1
            except OSError:
                break
        print("WROTE %s %d MB" % (label, written), flush=True)
        unbounded = unbounded or written == 100
    if unbounded:  # nothing stopped a write (the uid sandbox's work folder): keep it all until stopped
        __HOLD__
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''.replace("__HOLD__", HOLD)


def marked_bytes(marker: str) -> int:
    """Bytes the marker's files hold in the host's scratch folders."""
    total = 0
    for path in marked_files(marker, []):
        try:
            total += os.lstat(path).st_blocks * 512
        except OSError:
            pass
    return total


def scratch_watch(marker: str) -> Watch:
    """Samples, while a batch runs, how many bytes the marker's files hold in the host's scratch folders."""
    return Watch(lambda: marked_bytes(marker), 0.02)


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_i_scratch_space_is_bounded_and_removed(mode, ws, marker):
    """100 MB each into /tmp, /dev/shm and the work folder in 1 MB files (scratch_mb 32). bubblewrap: the
    writes stop at the private tmpfs's 32 MB and never reach the host, so its values still earn their points;
    uid: the watchdog stops the call for its scratch files (which it keeps until then), and with Landlock
    /tmp and /dev/shm refuse every write. Either way no file is left afterwards."""
    skip_unless_available(mode)
    filler = honest_with(fill(SCRATCH_FILLER, MARKER=marker), ("conv_forward_naive",))
    class_dir = make_class(ws, {"filler": filler})
    with scratch_watch(marker) as watch:
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    printed = batch.rows["filler"]["output"]
    if mode == "bubblewrap":
        assert_earns_exactly(batch, "filler", set(POINTS))
        for folder in ("/tmp", "/dev/shm", "work"):
            written = [int(n) for n in re.findall(rf"WROTE {folder} (\d+) MB", printed)]
            assert written and max(written) <= LIMITS["scratch_mb"], batch.summary("filler")
        assert watch.peak == 0, f"{watch.peak} bytes reached the host's scratch folders"
    else:
        assert_earns_exactly(batch, "filler", {CONV_BWD, POOL_FWD, POOL_BWD})
        outcome, said = batch.outcomes("filler")[CONV_FWD], batch.rows["filler"]["tests"][0]["output"]
        assert outcome == "crashed" and "MB of files to scratch folders (the limit is 32 MB)" in said, \
            batch.summary("filler")
        if landlock.abi():
            assert "WROTE /tmp 0 MB" in printed and "WROTE /dev/shm 0 MB" in printed, batch.summary("filler")
            assert watch.peak == 0, f"{watch.peak} bytes reached the host's scratch folders"
    print(f"[{mode}] peak of the attacker's files in the host's /tmp and /dev/shm: {watch.peak >> 20} MB")
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])


FAST_FILLER = '''
import os as _os, time as _time
_done = []

def conv_forward_naive(x, w, b, conv_param):
    if not _done:
        _done.append(True)
        started, made = _time.monotonic(), 0
        for i in range(32):  # 32 files of 64 MB (the file size limit): 2 GB, allocated, not written
            try:
                fd = _os.open("/tmp/%s-%03d" % (__MARKER__, i), _os.O_CREAT | _os.O_WRONLY, 0o600)
                try:
                    _os.posix_fallocate(fd, 0, 64 << 20)
                except OSError:  # refused: write it instead
                    for _ in range(64):
                        _os.write(fd, bytes(1 << 20))
                _os.close(fd)
                made += 1
            except OSError as error:
                print("stopped:", error, flush=True)
                break
        print("ALLOCATED %d MB in %.3f s" % (made * 64, _time.monotonic() - started), flush=True)
        _time.sleep(max(0.0, 1.7 - (_time.monotonic() - started)))
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''


# The uid sandbox cannot bound this burst (no mount namespace, no disk quotas): the README says so, and
# test_scratch_accounting_cannot_be_blinded_by_many_entries checks that the call is still stopped there.
@pytest.mark.parametrize("mode", ["bubblewrap"])
def test_scratch_space_is_bounded_while_it_is_being_filled(mode, ws, marker):
    """scratch_mb must bound what reaches the host's scratch folders at any moment, not only after the fact."""
    skip_unless_available(mode)
    filler = honest_with(fill(FAST_FILLER, MARKER=marker), ("conv_forward_naive",))
    class_dir = make_class(ws, {"filler": filler})
    with scratch_watch(marker) as watch:
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    assert "ALLOCATED" in batch.rows["filler"]["output"], batch.summary("filler")
    assert watch.peak <= 2 * (LIMITS["scratch_mb"] << 20), f"{watch.peak >> 20} MB reached the host's /tmp"


BLINDER = '''
import os as _os, time as _time
_done = []

def conv_forward_naive(x, w, b, conv_param):
    if not _done:
        _done.append(True)
        started = _time.monotonic()
        for k in range(2):  # in the work dir: 110000 links to two empty files, then 1 GB in /tmp
            open("base%d" % k, "w").close()
            for i in range(55000):
                _os.link("base%d" % k, "l%d-%d" % (k, i))
        made = 0
        for i in range(16):
            try:
                fd = _os.open("/tmp/%s-data-%02d" % (__MARKER__, i), _os.O_CREAT | _os.O_WRONLY, 0o600)
                _os.posix_fallocate(fd, 0, 64 << 20)
                _os.close(fd)
                made += 1
            except OSError as error:
                print("stopped:", error, flush=True)
                break
        print("LINKED 110000, ALLOCATED %d MB after %.2f s" % (made * 64, _time.monotonic() - started), flush=True)
        _time.sleep(max(0.0, 1.8 - (_time.monotonic() - started)))
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_scratch_accounting_cannot_be_blinded_by_many_entries(mode, ws, marker):
    """Many cheap entries first, data after them: the scratch limit must still hold (bubblewrap: tmpfs sizes).
    Found by this test: the uid sandbox's scratch walk once stopped after 100000 entries, so 110000 links in
    the work dir hid 1 GB in /tmp for the rest of the submission."""
    skip_unless_available(mode)
    blinder = honest_with(fill(BLINDER, MARKER=marker), ("conv_forward_naive",))
    class_dir = make_class(ws, {"blinder": blinder})
    with scratch_watch(marker) as watch:
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    assert "LINKED 110000" in batch.rows["blinder"]["output"] or batch.outcomes("blinder")[CONV_FWD] != "passed", \
        batch.summary("blinder")
    if watch.peak > LIMITS["scratch_mb"] << 20:  # data got out: then the call must not have survived it
        assert batch.outcomes("blinder")[CONV_FWD] in {"crashed", "timeout"}, \
            f"{watch.peak >> 20} MB in the host's /tmp, unseen:\n" + batch.summary("blinder")


INODE_HOG = '''
import os as _os, time as _time
_calls = []

def conv_forward_naive(x, w, b, conv_param):
    if len(_calls) < 2:  # two calls of 1.6 s creating empty files: about 500000 inodes of kernel memory
        _calls.append(True)
        started = _time.monotonic()
        folder = "/tmp/%d" % len(_calls)
        _os.mkdir(folder)
        made = 0
        while _time.monotonic() - started < 1.6:
            for _ in range(1000):
                _os.close(_os.open("%s/%d" % (folder, made), _os.O_CREAT | _os.O_WRONLY, 0o600))
                made += 1
        print("MADE %d files" % made, flush=True)
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''


def test_the_jails_file_count_is_bounded(ws, marker):
    """bubblewrap only (the uid sandbox's files are on the host's disk: see the scratch tests): two calls
    creating empty files under memory_mb 256 must be stopped. Found by this test: the jail's tmpfs mounts
    were bounded in bytes only, and 520000 empty files (about 540 MB of kernel memory) passed."""
    skip_unless_available("bubblewrap")
    hog = honest_with(INODE_HOG, ("conv_forward_naive",))
    class_dir = make_class(ws, {"inodes": hog})
    with Watch(lambda: meminfo("Slab"), 0.05) as slab:
        batch = grade_batch(ws, "bubblewrap", class_dir,
                            write_rubric(ws / "rubric.yaml", tests=base_tests(3), limits={"memory_mb": 256}))
    assert_honest(batch)
    assert_nothing_left(marker, batch, "bubblewrap", [ws])
    grew = (slab.peak - slab.base) >> 20
    assert batch.outcomes("inodes")[CONV_FWD] != "passed", f"kernel slab grew by {grew} MB\n" + batch.summary("inodes")


CRASHES_EVERY_CALL = '''
import os as _os

def _crash(function):
    def wrapped(*args):
        _os._exit(3)  # the worker dies: the next call starts a fresh jail
    return wrapped

conv_forward_naive = _crash(conv_forward_naive)
conv_backward_naive = _crash(conv_backward_naive)
max_pool_forward_naive = _crash(max_pool_forward_naive)
max_pool_backward_naive = _crash(max_pool_backward_naive)
'''


def test_a_worker_is_never_killed_for_files_it_did_not_make(ws, marker):
    """bubblewrap: 40 submissions whose every call ends the worker (160 jail starts, no file written): each
    test is `crashed` because the worker exited, never because of scratch files."""
    skip_unless_available("bubblewrap")
    class_dir = make_class(ws, {f"crash{i:02d}": SAY_UID + SOURCE + CRASHES_EVERY_CALL for i in range(40)})
    batch = grade_batch(ws, "bubblewrap", class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, "bubblewrap", [ws])
    blamed = [(sid, t["name"]) for sid, row in batch.rows.items() for t in row["tests"]
              if "files in scratch folders" in t["output"]]
    assert blamed == []
    for sid, row in batch.rows.items():
        if sid != "honest":
            assert row["score"] == 0 and set(batch.outcomes(sid).values()) == {"crashed"}, batch.summary(sid)
            assert all("(exited with status 3)" in t["output"] for t in row["tests"]), batch.summary(sid)


# --- j. containment without namespaces (and with them) ---------------------------------------------------------------

TRY = SAY_UID + '''
import glob as _glob, json as _jjson, os as _jos, socket as _socket, sys as _jsys, time as _jtime

def _try(label, action):
    """Print LEAK when an attack works, blocked when it does not."""
    try:
        result = action()
    except BaseException as error:
        print("blocked", label, type(error).__name__, flush=True)
        return None
    print("LEAK", label, repr(result)[:300], flush=True)
    return result

def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    return path
'''
FORGER_J = TRY + '''
FORGED = _jjson.dumps({"submissions": [{"id": "a_forger", "score": 30.0, "max_score": 30.0, "tests": []}]})

def _open_memory(pid):
    with open("/proc/%d/mem" % pid, "r+b"):
        return pid

def _exe(pid):
    """The program a pid runs: [bwrap] marks the jail's own init, which is inside the jail."""
    try:
        return "[%s]" % _jos.path.basename(_jos.readlink("/proc/%d/exe" % pid))
    except OSError:
        return "[?]"

def _graders():
    """Processes that look like the grader, whatever their uid."""
    found = []
    for entry in _jos.listdir("/proc"):
        if entry.isdigit() and int(entry) != _jos.getpid():
            try:
                line = open("/proc/%s/cmdline" % entry, "rb").read()
            except OSError:
                continue
            if b"gradeconv" in line or b"multiprocessing" in line:
                found.append(int(entry))
    return found

def _import(name):
    """A module with code in it (an unreadable folder on sys.path only gives an empty namespace package)."""
    import importlib
    module = importlib.import_module(name)
    if getattr(module, "__file__", None) is None:
        raise ImportError("%s is an empty namespace package" % name)
    return module.__file__

def _udp():
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as s:
        s.sendto(b"leak", ("127.0.0.1", __UDP_PORT__))
        s.sendto(b"leak", ("1.1.1.1", 53))
    return "sent"

def _attack():
    _try("write results", lambda: _write(__RESULTS__, FORGED))
    _try("create beside results", lambda: _write(__RESULTS__ + "-" + __MARKER__, FORGED))
    _try("write a classmate's layers.py", lambda: _write(__NEIGHBOUR__, "raise SystemExit('sabotaged')\\n"))
    _try("plant a submission", lambda: _write(__CLASS__ + "/" + __MARKER__ + ".py", "x = 1\\n"))
    for path in (__RUBRIC__, __REFERENCE__, __NEIGHBOUR__, __RESULTS__):
        _try("read " + path, lambda: open(path).read()[:80])
    _try("list the class", lambda: _jos.listdir(__CLASS__))
    for pid in [_jos.getppid()] + _graders():
        _try("open the memory of pid %d %s" % (pid, _exe(pid)), lambda: _open_memory(pid))
    _try("tcp to the test's listener", lambda: _socket.create_connection(("127.0.0.1", __TCP_PORT__), 1).close())
    _try("tcp to 1.1.1.1:53", lambda: _socket.create_connection(("1.1.1.1", 53), 1).close())
    _try("udp", _udp)
    _jsys.meta_path[:] = [f for f in _jsys.meta_path if type(f).__name__ != "ForbiddenImports"]
    _jsys.path += [__SITE__, __ROOT__]
    for name in ("pydantic", "hypothesis", "gradeconv.judging.grading", "reference.layers"):
        _try("import " + name, lambda: _import(name))
    deadline = _jtime.monotonic() + 1.2  # meanwhile the honest classmate is being graded: hit its live stage
    while _jtime.monotonic() < deadline:
        for path in _glob.glob("/tmp/gradeconv-stage-*/pkg/*/layers.py") + [__NEIGHBOUR__]:
            try:
                _write(path, "raise SystemExit('sabotaged')\\n")
                print("LEAK wrote", path, flush=True)
            except OSError:
                pass
        _jtime.sleep(0.05)

_attacked = []

def conv_forward_naive(x, w, b, conv_param):
    if not _attacked:
        _attacked.append(True)
        _attack()
    return _zero_conv_forward_naive(x, w, b, conv_param)
'''
KILLER_J = TRY + '''
import signal as _signal

def _kill_everything():
    for target in (_jos.getppid(), -1):
        try:
            _jos.kill(target, _signal.SIGKILL)
            print("sent SIGKILL to", target, flush=True)
        except OSError as error:
            print("could not kill", target, error, flush=True)
    for entry in _jos.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (_jos.getpid(), 1):
            try:
                _jos.kill(int(entry), _signal.SIGKILL)
                print("killed", entry, flush=True)
            except OSError:
                pass

def _killing(function):
    def wrapped(*args):
        _kill_everything()
        return function(*args)
    return wrapped

conv_forward_naive = _killing(conv_forward_naive)
conv_backward_naive = _killing(conv_backward_naive)
max_pool_forward_naive = _killing(max_pool_forward_naive)
max_pool_backward_naive = _killing(max_pool_backward_naive)
'''
#: a Python loop (a system shell is outside what a uid worker may run under Landlock)
GHOST_SCRIPT = ('import time\nprint("ghost-started", flush=True)\nfor _ in range(60):\n    time.sleep(0.2)\n'
                '    for path, text in (({results!r}, "forged"), ("/tmp/{marker}-ghost", "alive"),\n'
                '                       ("/dev/shm/{marker}-ghost", "alive")):\n'
                '        try:\n            with open(path, "w") as handle:\n                handle.write(text)\n'
                '        except OSError:\n            pass\n')
#: attack code: wait (at most 8 s, inside the call limit) until the ghost runs, so that on a busy machine too
#: it has printed "ghost-started" before grading ends and the test sees it was there to be stopped
GHOST_RUNS = """\
for _ in range(80):
    if any(_gos.path.exists(f % __MARKER__) for f in ("/tmp/%s-ghost", "/dev/shm/%s-ghost")):
        break
    _gtime.sleep(0.1)
"""
#: the interpreter, with no environment but what it needs to start (no marker variable)
GHOST_EXEC = ('_gos.execve(_gsys.executable, [_gsys.executable, "-I", "-S", "-c", __SCRIPT__, __MARKER__],\n'
              '            {k: v for k, v in _gos.environ.items() if k == "LD_LIBRARY_PATH"})')
GHOST = '''
import os as _gos, sys as _gsys, time as _gtime

def _ghost():
    """A process in a session of its own, reparented, with no marker variable in its environment."""
    pid = _gos.fork()
    if pid == 0:
        try:
            _gos.setsid()
            if _gos.fork() == 0:
                __EXEC__
        finally:
            _gos._exit(0)
    _gos.waitpid(pid, 0)
    __RUNS__

_haunted = []

def conv_forward_naive(x, w, b, conv_param):
    if not _haunted:
        _haunted.append(True)
        _ghost()
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''.replace("__EXEC__", GHOST_EXEC).replace("__RUNS__", textwrap.indent(GHOST_RUNS, "    ").strip())


class Listeners:
    """A TCP and a UDP socket on 127.0.0.1 that must never hear from an attacker."""

    def __enter__(self):
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        return self

    def heard(self) -> list[str]:
        heard = []
        for sock in (self.tcp, self.udp):
            sock.setblocking(False)
            try:
                heard.append(repr(sock.accept() if sock is self.tcp else sock.recvfrom(100)))
            except BlockingIOError:
                pass
        return heard

    def __exit__(self, *exc):
        self.tcp.close()
        self.udp.close()


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_j_no_way_out_forge_kill_haunt_sabotage_read_or_connect(mode, ws, marker):
    """Three attackers beside an honest classmate. a_forger: writes the --json file, a classmate's layers.py,
    the live stages it can find; reads the rubric, the reference, the classmate and the results; opens the
    grader's memory; connects out; imports the grader's packages past the forbidden-import finder.
    c_killer: SIGKILL to its parent, to -1 and to every pid it sees, on every call (its values are right).
    d_ghost: a detached, reparented /bin/sh with an empty environment that keeps rewriting the results.
    None of it works: the honest classmate gets 100%, each attacker exactly what its values earn."""
    skip_unless_available(mode)
    rubric = write_rubric(ws / "rubric.yaml", tests=base_tests(3))
    class_dir = ws / "class"
    results = ws / "results" / "out.json"
    neighbour = class_dir / "b_honest" / "cs231n" / "layers.py"
    with Listeners() as ears:
        forger = ZERO_STUB.replace("def conv_forward_naive", "def _zero_conv_forward_naive") + fill(
            FORGER_J, RESULTS=str(results), MARKER=marker, NEIGHBOUR=str(neighbour), CLASS=str(class_dir),
            RUBRIC=str(rubric), REFERENCE=str(REFERENCE_LAYERS), UDP_PORT=ears.udp.getsockname()[1],
            TCP_PORT=ears.tcp.getsockname()[1], SITE=GRADER_SITE, ROOT=str(ROOT))
        killer = SOURCE + fill(KILLER_J)
        ghost = honest_with(fill(GHOST, SCRIPT=GHOST_SCRIPT.format(results=results, marker=marker), MARKER=marker),
                            ("conv_forward_naive",))
        make_class(ws, {"a_forger": forger, "c_killer": killer, "d_ghost": ghost}, honest="b_honest")
        before = snapshot(class_dir / "b_honest")
        batch = grade_batch(ws, mode, class_dir, rubric)
        assert ears.heard() == []
    assert_honest(batch, "b_honest")
    assert snapshot(class_dir / "b_honest") == before
    assert batch.rows["a_forger"]["score"] == 0, batch.summary("a_forger")
    leaks = [line for line in batch.rows["a_forger"]["output"].splitlines() if "LEAK" in line]
    if mode == "bubblewrap":  # the jail's own init (bwrap, pid 1 inside) has no capabilities and is killed with it
        leaks = [line for line in leaks if not re.search(r"LEAK open the memory of pid 1 \[bwrap\]", line)]
    assert leaks == [], batch.summary("a_forger")
    assert "blocked write results" in batch.rows["a_forger"]["output"], batch.summary("a_forger")
    for sid in ("c_killer", "d_ghost"):
        assert batch.rows[sid]["score"] == TOTAL, batch.summary(sid)
    assert "sent SIGKILL to" in batch.rows["c_killer"]["output"], batch.summary("c_killer")
    assert "ghost-started" in batch.rows["d_ghost"]["output"], batch.summary("d_ghost")
    assert sorted(p.name for p in results.parent.iterdir()) == ["out.json"]
    assert_nothing_left(marker, batch, mode, [ws])


# --- k. Gradescope as root without namespaces --------------------------------------------------------------------------

GRADESCOPE_ATTACK = TRY + '''
import signal as _signal
FORGED = _jjson.dumps({"score": 100.0, "max_score": 100.0, "output": "forged", "tests": []})
_done = []

def _attack():
    _try("write results.json", lambda: _write(__RESULTS__, FORGED))
    _try("plant beside results.json", lambda: _write(__RESULTS__ + "." + __MARKER__, FORGED))
    for target in (_jos.getppid(), -1):  # the grader (in bubblewrap: the jail's init), then all we may signal
        try:
            _jos.kill(target, _signal.SIGKILL)
            print("sent SIGKILL to", target, flush=True)
        except OSError as error:
            print("could not kill", target, error, flush=True)
    pid = _jos.fork()  # then a ghost that keeps forging after grading ends
    if pid == 0:
        try:
            _jos.setsid()
            if _jos.fork() == 0:
                _gos, _gsys = _jos, _jsys
                __EXEC__
        finally:
            _jos._exit(0)
    _jos.waitpid(pid, 0)
    _gos, _gtime = _jos, _jtime
    __RUNS__

def conv_forward_naive(x, w, b, conv_param):
    if not _done:
        _done.append(True)
        _attack()
    return _honest_conv_forward_naive(x, w, b, conv_param)

def max_pool_forward_naive(x, pool_param):  # wrong on purpose: the score must be 18 of 30, as graded
    out, cache = _honest_max_pool_forward_naive(x, pool_param)
    return out * 0.0, cache

def max_pool_backward_naive(dout, cache):
    return _honest_max_pool_backward_naive(dout, cache) * 0.0
'''.replace("__EXEC__", GHOST_EXEC).replace("__RUNS__", textwrap.indent(GHOST_RUNS, "    ").strip())


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_k_gradescope_results_are_the_graders(mode, ws, marker):
    """`gradeconv gradescope` as root on a simulated /autograder: the submission forges results.json, kills
    the grader (its parent) and everything it can, and leaves a ghost that keeps rewriting results.json.
    results.json is the grader's: valid, 18/30 as graded, every test listed, and nothing of the uid runs."""
    skip_unless_available(mode)
    autograder = ws / "autograder"
    submission, results_dir, source = autograder / "submission", autograder / "results", autograder / "source"
    for folder in (submission, results_dir, source):
        folder.mkdir(parents=True)
    results = results_dir / "results.json"
    rubric = write_rubric(source / "rubric.yaml", tests=base_tests(3))
    script = GHOST_SCRIPT.format(results=results, marker=marker)
    attack = fill(GRADESCOPE_ATTACK, RESULTS=str(results), MARKER=marker, SCRIPT=script)
    (submission / "layers.py").write_text(
        honest_with(attack, ("conv_forward_naive", "max_pool_forward_naive", "max_pool_backward_naive")))
    code, stdout, stderr, elapsed = run_cli(
        ["gradescope", "--submission", str(submission), "--results", str(results), "--rubric", str(rubric)],
        mode, source, timeout=GUARD_SECONDS)
    ended, ended_wall = uptime(), time.time()
    assert code == 0, stderr[-3000:]
    written = results.read_bytes()
    time.sleep(STABLE_SECONDS)
    assert results.read_bytes() == written, "results.json changed after grading ended"
    result = json.loads(written)
    summary = json.dumps(result, indent=1)[:6000]
    assert result["score"] == POINTS[CONV_FWD] + POINTS[CONV_BWD], summary
    assert result["extra_data"]["max_score"] == TOTAL, summary
    assert set(result) <= set(gradescope.TOP_LEVEL), summary  # only the keys Gradescope's specification defines
    assert [t["name"] for t in result["tests"]] == list(POINTS), summary
    assert {t["name"] for t in result["tests"] if t["status"] == "passed"} == {CONV_FWD, CONV_BWD}, summary
    assert result["output"].startswith(f"```text\nsandbox: {mode}"), summary  # fenced: shown as text
    assert "LEAK" not in result["output"], summary
    assert "blocked write results.json" in result["output"], summary
    assert "ghost-started" in result["output"] and re.search(r"(to|kill) -1", result["output"]), summary
    assert sorted(p.name for p in results_dir.iterdir()) == ["results.json"]
    batch = Batch(result, {"submission": result}, elapsed, stdout, stderr, results, ended, ended_wall)
    assert_nothing_left(marker, batch, mode, [ws])


# --- more ways out: a local socket without a network, system packages, System V IPC ---------------------------------

ONE_TEST = [base_tests()[2]]  # max-pool forward, the notebook's example: one quick call

ABSTRACT_SOCKET = TRY + '''
import socket as _s

def _connect():
    with _s.socket(_s.AF_UNIX, _s.SOCK_STREAM) as s:
        s.connect(b"\\0" + __NAME__.encode())
        s.sendall(b"hello from the sandbox")
    return "connected"

_try("connect to the host's abstract unix socket", _connect)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_no_connection_to_the_hosts_abstract_unix_sockets(mode, ws, marker):
    """Abstract unix sockets carry no permissions: a host daemon listening on one must be out of reach
    (the uid sandbox's seccomp filter once allowed AF_UNIX; found by this test, since fixed)."""
    skip_unless_available(mode)
    name = f"{marker}-listener"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(b"\0" + name.encode())
        listener.listen(4)
        class_dir = make_class(ws, {"connects": SOURCE + fill(ABSTRACT_SOCKET, NAME=name)})
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=ONE_TEST))
        listener.setblocking(False)
        try:
            heard = listener.accept()[0].recv(100)
        except BlockingIOError:
            heard = b""
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    assert heard == b"" and "LEAK" not in batch.rows["connects"]["output"], batch.summary("connects")
    assert "blocked connect to the host's abstract unix socket" in batch.rows["connects"]["output"]


SYSTEM_PACKAGE = TRY + '''
import importlib as _importlib

def _forbidden():
    _jsys.meta_path[:] = [f for f in _jsys.meta_path if type(f).__name__ != "ForbiddenImports"]
    _jsys.path += ["/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages",
                   "/usr/lib/python3.%d/dist-packages" % _jsys.version_info.minor]
    module = _importlib.import_module("ya" + "ml")  # not an import statement: the source check cannot see it
    return module.__file__

_try("import a forbidden system package", _forbidden)
'''


@pytest.mark.parametrize("mode", [
    "bubblewrap",
    pytest.param("uid", marks=pytest.mark.xfail(not landlock.abi(), strict=True, reason=(
        "HOLE (policy) where the kernel has no Landlock: forbidden_imports are enforced by a source check and an "
        "import hook inside the worker; student code removes the hook, extends sys.path and imports a forbidden "
        "package installed for the system (/usr/lib/python3/dist-packages is world-readable, so the worker "
        "account reads it); yaml stands in for a torch installed from apt or pip. bubblewrap hides those "
        "folders, and so do the uid sandbox's Landlock rules"))),
])
def test_a_forbidden_package_installed_on_the_system_cannot_be_imported(mode, ws, marker):
    """A rubric forbidding yaml; the submission drops the import hook and imports yaml from the system's
    package folder with importlib (no import statement for the source check to see)."""
    skip_unless_available(mode)
    if not glob.glob("/usr/lib/python3/dist-packages/yaml/__init__.py"):
        pytest.skip("no system yaml package to stand in for a forbidden one")
    rubric = write_rubric(ws / "rubric.yaml", tests=ONE_TEST, forbidden_imports=["torch", "tensorflow", "jax", "yaml"])
    class_dir = make_class(ws, {"imports": SOURCE + fill(SYSTEM_PACKAGE)})
    batch = grade_batch(ws, mode, class_dir, rubric)
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    assert "LEAK" not in batch.rows["imports"]["output"], batch.summary("imports")
    assert "blocked import a forbidden system package" in batch.rows["imports"]["output"]



OUTSIDE_FILES = TRY + '''
import subprocess as _jsubprocess

def _read(path):
    with open(path) as handle:
        return handle.read()[:60]

def _allowed(label, action):
    """What an honest submission may do must keep working."""
    try:
        action()
        print("allowed", label, flush=True)
    except BaseException as error:
        print("refused", label, type(error).__name__, error, flush=True)

_try("read a world-readable file outside the sandbox", lambda: _read(__NOTES__))
_try("list a world-readable folder outside the sandbox", lambda: _jos.listdir(__FOLDER__))
_try("read /etc/passwd", lambda: _read("/etc/passwd"))
_try("plant a file in /var/tmp", lambda: _write("/var/tmp/" + __MARKER__ + "-planted", "planted"))
_try("run a system program", lambda: _jsubprocess.run(["/usr/bin/id"], capture_output=True).stdout)
_try("plant a file in /tmp", lambda: _write("/tmp/" + __MARKER__ + "-planted", "planted"))
_try("list /tmp", lambda: _jos.listdir("/tmp"))
_allowed("write and read back in the work folder", lambda: _read(_write("scratch.txt", "x")))
_allowed("read its own package", lambda: _read(__file__))
'''


@pytest.mark.skipif(not landlock.abi(), reason="the kernel offers no Landlock")
def test_a_uid_worker_touches_no_file_outside_its_sandbox(ws, marker):
    """Landlock in the uid sandbox: files the world may read or write elsewhere on the machine, the shared
    /tmp included, are out of reach, and so are system programs; the work folder and the submission's own
    files still work."""
    skip_unless_available("uid")
    outside = Path(tempfile.mkdtemp(prefix="gradeconv-outside-", dir="/var/tmp"))  # not marked: the grader's
    try:
        os.chmod(outside, 0o755)
        notes = outside / "notes.txt"
        notes.write_text("another course's notes\n")
        os.chmod(notes, 0o644)
        rubric = write_rubric(ws / "rubric.yaml", tests=ONE_TEST)
        attack = SOURCE + fill(OUTSIDE_FILES, NOTES=str(notes), FOLDER=str(outside), MARKER=marker)
        batch = grade_batch(ws, "uid", make_class(ws, {"reader": attack}), rubric)
    finally:
        shutil.rmtree(outside)
    assert_honest(batch)
    assert_nothing_left(marker, batch, "uid", [ws])
    output = batch.rows["reader"]["output"]
    assert "LEAK" not in output and "refused" not in output, batch.summary("reader")
    for label in ("read a world-readable file outside the sandbox", "list a world-readable folder outside",
                  "read /etc/passwd", "plant a file in /var/tmp", "run a system program", "plant a file in /tmp",
                  "list /tmp"):
        assert f"blocked {label}" in output, batch.summary("reader")
    assert output.count("allowed ") == 2, batch.summary("reader")
    assert batch.rows["reader"]["score"] == batch.rows["reader"]["max_score"], batch.summary("reader")
    assert not list(Path("/var/tmp").glob(f"{marker}-planted*"))


DEEP_TREE = TRY + '''
def _nest(top, depth=1200):
    """Folders nested deeper than Python's recursion limit: a recursive clean-up fails on them."""
    _jos.mkdir(top)
    fd = _jos.open(top, _jos.O_RDONLY)
    try:
        for _ in range(depth):
            _jos.mkdir("a", dir_fd=fd)
            inner = _jos.open("a", _jos.O_RDONLY, dir_fd=fd)
            _jos.close(fd)
            fd = inner
    finally:
        _jos.close(fd)
    return depth

_nested = []

def conv_forward_naive(x, w, b, conv_param):
    if not _nested:
        _nested.append(True)
        for place in (_jos.path.abspath(__MARKER__ + "-deep"), "/tmp/" + __MARKER__ + "-deep"):
            try:
                print("nested", place, _nest(place), flush=True)
            except OSError as error:
                print("could not nest", place, type(error).__name__, flush=True)
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_folders_nested_past_the_recursion_limit_cost_no_later_classmate_a_point(mode, ws, marker):
    """1200 nested folders in the work folder and /tmp: clean-up once failed on them (RecursionError), and
    every later submission graded on that account got 0. Now the attacker costs only itself, nothing is left
    behind, and an honest submission graded in the next run gets full marks."""
    skip_unless_available(mode)
    rubric = write_rubric(ws / "rubric.yaml", tests=base_tests(3))
    attack = honest_with(fill(DEEP_TREE, MARKER=marker), ("conv_forward_naive",))
    batch = grade_batch(ws, mode, make_class(ws, {"nester": attack}), rubric)
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    assert glob.glob(f"/tmp/gradeconv-stage-*/work/{marker}-deep") == [], "the attacker's stage was left behind"
    assert "gradeconv failed" not in batch.rows["nester"]["output"], batch.summary("nester")
    ran = "nested" in batch.rows["nester"]["output"] or "deep in scratch folders" in json.dumps(batch.rows["nester"])
    assert ran, batch.summary("nester")  # the attack ran (in the uid sandbox the watchdog may stop it first)
    later = ws / "later"
    shutil.copytree(ws / "class" / "honest", later / "class" / "honest")
    again = grade_batch(later, mode, later / "class", rubric)
    assert_honest(again)


RENAME_RACE = '''
import os as _o, time as _t

def _renamer(folder, start):
    """Renames a folder over and over, so a walk by path never finds what lies below it."""
    current, number = start, 0
    while True:
        number += 1
        try:
            _o.rename(current, "n%d" % number, src_dir_fd=folder, dst_dir_fd=folder)
            current = "n%d" % number
        except OSError:
            pass

def _inside(folder, name):
    _o.mkdir(name, dir_fd=folder)
    return _o.open(name, _o.O_RDONLY | _o.O_DIRECTORY, dir_fd=folder)

def _build(top):
    """Below the moving folders, through folder descriptors only: 11,000 files, 40 MB and 100 levels."""
    folder = top
    for _ in range(3):
        folder = _inside(folder, "s")
    for number in range(11000):
        _o.close(_o.open("f%d" % number, _o.O_CREAT | _o.O_WRONLY, 0o600, dir_fd=folder))
    big = _o.open("big", _o.O_CREAT | _o.O_WRONLY, 0o600, dir_fd=folder)
    for _ in range(40):
        _o.write(big, b"x" * (1 << 20))
    _o.close(big)
    folder = _inside(top, "deep")
    for _ in range(100):
        inner = _inside(folder, "d")
        _o.close(folder)
        folder = inner
    _o.close(_o.open(__MARKER__ + "-built", _o.O_CREAT | _o.O_WRONLY, 0o600))

def _builder(top):
    try:
        _build(top)
    except OSError:  # bubblewrap: the jail's memory file systems are full
        _o.close(_o.open(__MARKER__ + "-stopped", _o.O_CREAT | _o.O_WRONLY, 0o600))

_started = []

def conv_forward_naive(x, w, b, conv_param):
    if not _started:
        _started.append(True)
        _o.makedirs("m/a/b")
        outer = _o.open("m", _o.O_RDONLY | _o.O_DIRECTORY)
        middle = _o.open("m/a", _o.O_RDONLY | _o.O_DIRECTORY)
        top = _o.open("m/a/b", _o.O_RDONLY | _o.O_DIRECTORY)
        for folder, name in ((outer, "a"), (middle, "b")):
            if _o.fork() == 0:
                _renamer(folder, name)
        if _o.fork() == 0:
            try:
                _builder(top)
            finally:
                _o._exit(0)
    return _honest_conv_forward_naive(x, w, b, conv_param)

def max_pool_backward_naive(dout, cache):
    # in the worker that started the builder (the call limit is 10 s): wait up to 5 s for the tree ...
    for _ in range(50 if _started else 0):
        if _o.path.exists(__MARKER__ + "-stopped"):
            break
        if _o.path.exists(__MARKER__ + "-built"):
            _t.sleep(4)  # ... then give the watchdog (a look every 0.25 s) all the time a busy machine needs
            print("TREE BUILT AND NEVER CAUGHT", flush=True)
            break
        _t.sleep(0.1)
    return _honest_max_pool_backward_naive(dout, cache)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_renaming_folders_hides_nothing_from_the_scratch_count(mode, ws, marker):
    """Two processes rename the folders above a tree while a third fills it (11,000 files, 40 MB, 100 levels;
    the limits are 10,000, 32 MB and 64): a walk by path missed it 2 runs in 3. The uid sandbox stops the
    account's processes while it counts, and walks by folder descriptors; bubblewrap's memory file systems
    are bounded by the kernel."""
    skip_unless_available(mode)
    attack = honest_with(fill(RENAME_RACE, MARKER=marker), ("conv_forward_naive", "max_pool_backward_naive"))
    batch = grade_batch(ws, mode, make_class(ws, {"racer": attack}), write_rubric(ws / "rubric.yaml",
                                                                                   tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    # stopped while the watchdog counts, the attacker may not even finish its tree in time: either way a
    # tree past the limits never stays uncounted (tests/test_escape_routes.py checks the count itself)
    assert "TREE BUILT AND NEVER CAUGHT" not in batch.rows["racer"]["output"], batch.summary("racer")


SPINNERS = '''
import os as _o, time as _t
_spun = []

def conv_forward_naive(x, w, b, conv_param):
    """Processes that spin (bounded: 20 s) while the worker waits to be stopped."""
    if not _spun:
        _spun.append(True)
        for _ in range(__SPINNERS__):
            if _o.fork() == 0:
                end = _t.monotonic() + 20
                while _t.monotonic() < end:
                    pass
                _o._exit(0)
        _t.sleep(60)
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''
#: the cores the spinners' submission may keep busy in this test (the product's limit is 1.5: on a 2-core
#: machine busy with other work no number of spinners gets that much, and the watchdog rightly lets them be;
#: with two other test runs beside them, 8 spinners were measured to get 0.6 cores)
SPIN_LIMIT = 0.25
SPINNER_COUNT = 16


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_processes_that_keep_several_cores_busy_are_stopped(mode, ws, marker, monkeypatch):
    """Busy processes beside the worker steal the processor from classmates graded at the same time (a
    call of theirs could run out of time): the watchdog stops a submission whose processes together keep
    more than its limit of cores busy over a second, and says so. Which verdict a machine reaches must not
    hang on how busy it is: the limit is lowered to SPIN_LIMIT, which 16 spinners pass even when other runs
    take most of two cores, and the worker itself, asleep, is far below it."""
    skip_unless_available(mode)
    from gradeconv import grade
    from gradeconv.sandbox import session

    monkeypatch.setattr(session, "MAX_BUSY_CORES", SPIN_LIMIT)
    tests = [dict(base_tests()[0], examples=0, cases=[{"n": 1, "c": 1, "h": 3, "w": 3, "f": 1, "field_h": 2,
                                                      "field_w": 2, "stride": 1, "pad": 0, "seed": 1}])]
    rubric = write_rubric(ws / "rubric.yaml", tests=tests, limits={"call_seconds": 30, "submission_seconds": 60})
    folder = make_class(ws, {"spinner": honest_with(fill(SPINNERS, SPINNERS=SPINNER_COUNT), ("conv_forward_naive",))})
    result = grade(folder / "spinner", rubric, sandbox=mode)[0]
    [test] = result.tests
    said = f"{test.outcome}: {test.output}\n{result.output}"
    assert result.sandbox == mode and test.outcome == "crashed", said
    busy = re.search(r"its processes kept ([0-9.]+) processor cores busy \(the limit is ([0-9.]+)\)", test.output)
    # (cores are given to one decimal: just past the limit may read as the limit itself)
    assert busy and float(busy.group(2)) == SPIN_LIMIT and float(busy.group(1)) >= SPIN_LIMIT - 0.05, said
    row = {"output": result.output, "tests": []}
    batch = Batch({}, {"spinner": row}, 0.0, "", "", ws / "none", uptime(), time.time())
    assert_nothing_left(marker, batch, mode, [ws])

SYSV_IPC = TRY + '''
import ctypes as _ctypes
_libc = _ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = _ctypes.c_void_p
_libc.shmat.argtypes = [_ctypes.c_int, _ctypes.c_void_p, _ctypes.c_int]
_libc.shmdt.argtypes = [_ctypes.c_void_p]

def _segment():
    """64 MB of shared memory, filled, detached: held by the kernel, counted in no process's memory."""
    ident = _libc.shmget(__KEY__, 64 << 20, 0o1000 | 0o600)  # IPC_CREAT
    if ident < 0:
        raise OSError(_ctypes.get_errno(), "shmget")
    address = _libc.shmat(ident, None, 0)
    if address in (None, _ctypes.c_void_p(-1).value):
        raise OSError(_ctypes.get_errno(), "shmat")
    _ctypes.memset(address, 1, 64 << 20)
    _libc.shmdt(_ctypes.c_void_p(address))
    return ident

def _queue():
    ident = _libc.msgget(__KEY__, 0o1000 | 0o600)
    if ident < 0:
        raise OSError(_ctypes.get_errno(), "msgget")
    return ident

def _posix_queue():
    librt = _ctypes.CDLL("librt.so.1", use_errno=True)
    descriptor = librt.mq_open(("/" + __MQ__).encode(), 0o100 | 0o2, 0o600, None)  # O_CREAT | O_RDWR
    if descriptor < 0:
        raise OSError(_ctypes.get_errno(), "mq_open")
    return descriptor

_try("a System V shared memory segment", _segment)
_try("a System V message queue", _queue)
_try("a POSIX message queue", _posix_queue)
'''


def sysv_objects(key: int) -> list[str]:
    found = []
    for kind in ("shm", "msg", "sem"):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        found += [f"{kind} {line.split()[1]}" for line in lines if line.split() and int(line.split()[0]) == key]
    return found


def posix_queue_exists(name: str, remove: bool = False) -> bool:
    import ctypes

    librt = ctypes.CDLL("librt.so.1", use_errno=True)
    descriptor = librt.mq_open(f"/{name}".encode(), os.O_RDONLY)
    if descriptor >= 0:
        librt.mq_close(descriptor)
    if remove:
        librt.mq_unlink(f"/{name}".encode())
    return descriptor >= 0


def remove_sysv(key: int) -> None:
    for entry in sysv_objects(key):
        kind, ident = entry.split()
        subprocess.run(["ipcrm", {"shm": "-m", "msg": "-q", "sem": "-s"}[kind], ident], capture_output=True)


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_system_v_ipc_objects_do_not_outlive_grading(mode, ws, marker):
    """A 64 MB System V shared memory segment (filled, detached: in no process's memory), a System V message
    queue and a POSIX message queue: none may outlive grading. Found by this test: all three once outlived
    it in the uid sandbox."""
    skip_unless_available(mode)
    key = int(hashlib.sha256(marker.encode()).hexdigest()[:7], 16) | 1
    queue = f"{marker}-queue"
    try:
        class_dir = make_class(ws, {"ipc": SOURCE + fill(SYSV_IPC, KEY=key, MQ=queue)})
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=ONE_TEST))
        assert_honest(batch)
        assert_nothing_left(marker, batch, mode, [ws])
        output = batch.rows["ipc"]["output"]  # refused by seccomp now; if ever made, it must be gone after
        assert ("LEAK a System V shared memory segment" in output
                or "blocked a System V shared memory segment PermissionError" in output), batch.summary("ipc")
        assert sysv_objects(key) == [], batch.summary("ipc")
        assert not posix_queue_exists(queue), batch.summary("ipc")
    finally:
        remove_sysv(key)
        posix_queue_exists(queue, remove=True)


HYPOTHESIS_HOME = PRELUDE + TRY + '''
def _plant(home):
    """Own the grader's Hypothesis folder before the grader makes it; point its cache somewhere root-only."""
    _jos.mkdir(home, 0o755)
    _jos.symlink(__TARGET__, home + "/constants")
    return home

for _home in (__TMP__ + "/gradeconv-hypothesis", __TMP__ + "/gradeconv-hypothesis-0"):
    _try("plant the grader's Hypothesis folder " + _home, lambda: _plant(_home))
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_the_graders_hypothesis_folder_cannot_be_planted(mode, ws, marker):
    """(Found by this test, since fixed: Hypothesis made <tmp>/gradeconv-hypothesis lazily, after the first
    worker ran, so root wrote its cache through the student's link.)
    `gradeconv gradescope` on a fresh machine (its temp folder empty, simulated with TMPDIR and a uid range
    of its own): a submission that creates the grader's Hypothesis folder first must not make root write
    anywhere it chooses; here it points the cache at the results folder."""
    skip_unless_available(mode)
    tmp = ws / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    autograder = ws / "autograder"
    submission, results_dir = autograder / "submission", autograder / "results"
    submission.mkdir(parents=True)
    results_dir.mkdir()
    results = results_dir / "results.json"
    rubric = write_rubric(ws / "rubric.yaml", tests=base_tests(3))
    (submission / "layers.py").write_text(
        SOURCE + fill(HYPOTHESIS_HOME, TMP=str(tmp), TARGET=str(results_dir)))
    code, stdout, stderr, elapsed = run_cli(
        ["gradescope", "--submission", str(submission), "--results", str(results), "--rubric", str(rubric)],
        mode, ws, timeout=GUARD_SECONDS, env={"TMPDIR": str(tmp), "GRADECONV_UID_BASE": "62000"})
    ended, ended_wall = uptime(), time.time()
    assert code == 0, stderr[-3000:]
    result = json.loads(results.read_text())
    assert result["score"] == TOTAL, json.dumps(result, indent=1)[:3000]
    batch = Batch(result, {"submission": result}, elapsed, stdout, stderr, results, ended, ended_wall)
    assert_nothing_left(marker, batch, mode, [ws])
    assert "plant the grader's Hypothesis folder" in result["output"], result["output"]
    planted = sorted(p.name for p in results_dir.iterdir())
    assert planted == ["results.json"], f"root wrote {planted} into the folder the student chose:\n{result['output']}"


MEMFD_HOG = '''
import os as _os, time as _time
_held = []

def conv_forward_naive(x, w, b, conv_param):
    if not _held:
        for i in range(40):  # 40 x 60 MB of memory files: in no process's address space or resident set
            fd = _os.memfd_create("hold%d" % i)
            try:
                _os.posix_fallocate(fd, 0, 60 << 20)
            except OSError:  # refused: write it instead, from one buffer
                _chunk = _chunk if i else bytes(60 << 20)
                _os.write(fd, _chunk)
            _held.append(fd)
        print("HELD %d MB" % (len(_held) * 60), flush=True)
        __HOLD__
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''.replace("__HOLD__", HOLD)


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_memory_held_in_memory_files_counts_against_memory_mb(mode, ws, marker):
    """40 memory files of 60 MB (memfd_create + fallocate) under memory_mb 1024: in no process's address space
    or resident set, yet memory all the same (found by this test: the call once held 2.4 GB and passed)."""
    skip_unless_available(mode)
    hog = honest_with(MEMFD_HOG, ("conv_forward_naive",))
    class_dir = make_class(ws, {"hog": hog})
    with Watch(lambda: meminfo("Shmem"), 0.02) as memory:
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    held = (memory.peak - memory.base) >> 20
    # how far past the limit it got depends on how soon the watchdog looked (a busy machine delays it); what
    # it decided does not: stopped, for memory, counting the memory files no process's size shows
    print(f"[{mode}] shared memory rose by {held} MB during the batch")
    assert batch.outcomes("hog")[CONV_FWD] == "crashed", batch.summary("hog")
    said = batch.rows["hog"]["tests"][0]["output"]
    used = re.search(r"its processes together used (\d+) MB of memory \(the limit is 1024 MB\)", said)
    assert used and int(used.group(1)) >= LIMITS["memory_mb"], batch.summary("hog")  # past it, in whole MB


SOCKET_BUFFERS = '''
import os as _os, socket as _s, time as _time
_done = []

def _fill(count):
    """Unix socket pairs with their send buffers full: kernel memory, in no process's address space."""
    held = []
    for _ in range(count):
        try:
            a, b = _s.socketpair(_s.AF_UNIX, _s.SOCK_STREAM)
        except OSError as error:
            print("socketpair refused:", error, flush=True)
            break
        held.append((a, b))
        a.setsockopt(_s.SOL_SOCKET, _s.SO_SNDBUF, 1 << 24)
        a.setblocking(False)
        try:
            while True:
                a.send(b"x" * 65536)
        except OSError:
            pass
    return held

def conv_forward_naive(x, w, b, conv_param):
    if not _done:  # 24 processes (under the limit of 32) with 120 full socket pairs each
        _done.append(True)
        started = _time.monotonic()
        for i in range(24):
            if _os.fork() == 0:
                try:
                    held = _fill(120)
                    _time.sleep(max(0.0, started + 1.8 - _time.monotonic()))
                finally:
                    _os._exit(0)
        _time.sleep(max(0.0, 1.7 - (_time.monotonic() - started)))
    return _honest_conv_forward_naive(x, w, b, conv_param)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_kernel_socket_buffers_count_against_memory_mb(mode, ws, marker):
    """Full socket buffers are kernel memory no process's size shows. Found by this test: 24 processes with
    120 full Unix socket pairs each held 2 to 5 GB of the host's memory under memory_mb 1024 and passed."""
    skip_unless_available(mode)
    hog = honest_with(SOCKET_BUFFERS, ("conv_forward_naive",))
    class_dir = make_class(ws, {"buffers": hog})
    with Watch(lambda: meminfo("MemAvailable"), 0.05) as memory:
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch)
    assert_nothing_left(marker, batch, mode, [ws])
    dropped = (memory.base - memory.low) >> 20
    assert batch.outcomes("buffers")[CONV_FWD] != "passed" or dropped < LIMITS["memory_mb"] + 512, \
        f"the host's available memory dropped by {dropped} MB\n" + batch.summary("buffers")


NONE_FORGER = '''
import os as _os
try:
    with open(__PLANTED__, "w") as _handle:
        _handle.write("written with the grader's own rights")
    print("LEAK wrote beside the results", flush=True)
except OSError as _error:
    print("blocked", _error, flush=True)
'''


def test_sandbox_none_says_so_in_every_result(ws, marker):
    """Without isolation a submission can do what the grader can (here: write beside the results): every
    row says `sandbox: none` and why, instead of pretending."""
    planted = ws / "results" / f"{marker}-planted"
    class_dir = make_class(ws, {"unconfined": SOURCE + fill(NONE_FORGER, PLANTED=str(planted))})
    batch = grade_batch(ws, "none", class_dir, write_rubric(ws / "rubric.yaml", tests=ONE_TEST))
    try:
        assert planted.exists(), batch.summary("unconfined")
        for row in batch.rows.values():
            assert row["output"].startswith("sandbox: none. Student code ran with the grader's own rights")
        assert_honest(batch)
    finally:
        _unlink(str(planted))
    assert_nothing_left(marker, batch, "none", [ws])


KEYS = '''
import ctypes as _kc
_libc = _kc.CDLL(None, use_errno=True)
ADD_KEY, KEYCTL = 248, 250  # x86_64
KEY_SPEC_USER_KEYRING, KEYCTL_DESCRIBE, KEYCTL_READ = -4, 6, 11
'''
KEYRING_ATTACK = TRY + KEYS + '''
def _leave_a_key():
    payload = b"left behind by a submission"
    ident = _libc.syscall(ADD_KEY, b"user", __NAME__.encode(), payload, len(payload), _kc.c_long(KEY_SPEC_USER_KEYRING))
    if ident < 0:
        raise OSError(_kc.get_errno(), "add_key")
    return ident

def _read_the_keyring():
    """Every key of the user keyring this process gets, described and read."""
    buffer = _kc.create_string_buffer(4096)
    size = _libc.syscall(KEYCTL, KEYCTL_READ, _kc.c_long(KEY_SPEC_USER_KEYRING), buffer, 4096)
    if size < 0:
        raise OSError(_kc.get_errno(), "keyctl read")
    found = []
    for i in range(0, size, 4):
        ident = int.from_bytes(buffer.raw[i:i + 4], "little")
        text = _kc.create_string_buffer(4096)
        _libc.syscall(KEYCTL, KEYCTL_DESCRIBE, _kc.c_long(ident), text, 4096)
        data = _kc.create_string_buffer(4096)
        length = _libc.syscall(KEYCTL, KEYCTL_READ, _kc.c_long(ident), data, 4096)
        found.append((text.value, data.raw[:max(length, 0)]))
    return found

_try("leave a key in the user keyring", _leave_a_key)
_try("read the user keyring", _read_the_keyring)
'''
KEY_TOOL = KEYS + '''
import sys
KEYCTL_SEARCH, KEYCTL_INVALIDATE = 10, 21
ident = _libc.syscall(KEYCTL, KEYCTL_SEARCH, _kc.c_long(KEY_SPEC_USER_KEYRING), b"user", sys.argv[2].encode(), _kc.c_long(0))
if sys.argv[1] == "add":
    ident = _libc.syscall(ADD_KEY, b"user", sys.argv[2].encode(), sys.argv[3].encode(), len(sys.argv[3]),
                          _kc.c_long(KEY_SPEC_USER_KEYRING))
elif ident > 0 and sys.argv[1] == "remove":
    _libc.syscall(KEYCTL, KEYCTL_INVALIDATE, _kc.c_long(ident))
print(ident)
'''


def key_tool(action: str, name: str, uid: int = 0, payload: str = "") -> int:
    """Add, find (>0: its id) or remove a key in the user keyring of uid, from a process running as uid."""
    switch = {} if uid == 0 else {"user": uid, "group": uid, "extra_groups": []}
    done = subprocess.run(["/usr/bin/python3", "-c", KEY_TOOL, action, name, payload], capture_output=True,
                          text=True, timeout=10, cwd="/", **switch)
    return int(done.stdout.strip() or -1)


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_kernel_keyrings_are_neither_read_nor_left_behind(mode, ws, marker):
    """Keyrings belong to a uid and outlive processes: the jail (host uid 0, no user namespace) must not read
    the host root's user keyring (the test puts a secret there) nor leave keys in it, and a worker account
    must not leave keys for the next submission with the same uid (found by this test, since fixed)."""
    skip_unless_available(mode)
    if not os.path.exists("/usr/bin/python3") or not os.path.exists("/proc/keys") or os.uname().machine != "x86_64":
        pytest.skip("needs /usr/bin/python3, keyrings and x86_64 syscall numbers")
    left, canary = f"{marker}-left", f"{marker}-canary"
    host_secret = f"host-secret-{marker}"
    key_tool("add", canary, payload=host_secret)
    uids: set[int] = set()
    try:
        class_dir = make_class(ws, {"keys": SOURCE + fill(KEYRING_ATTACK, NAME=left)})
        batch = grade_batch(ws, mode, class_dir, write_rubric(ws / "rubric.yaml", tests=ONE_TEST))
        uids = batch.uids() or {0}
        assert_honest(batch)
        assert_nothing_left(marker, batch, mode, [ws])
        assert host_secret not in batch.out.read_text(), batch.summary("keys")
        assert "leave a key in the user keyring" in batch.rows["keys"]["output"], batch.summary("keys")
        assert [uid for uid in uids if key_tool("find", left, uid) > 0] == [], batch.summary("keys")
    finally:
        key_tool("remove", canary)
        for uid in uids | {0}:
            key_tool("remove", left, uid)


COPIER = SAY_UID + ZERO_STUB + '''
try:  # a classmate's solution, if this account can read it: use it instead of the zeros above
    exec(compile(open(__VICTIM__).read(), "copied", "exec"))
    print("LEAK copied the classmate's solution", flush=True)
except OSError as error:
    print("blocked", error, flush=True)
'''


@pytest.mark.parametrize("mode", ATTACK_MODES)
def test_a_classmate_in_another_folder_of_the_batch_cannot_be_copied(mode, ws, marker):
    """`gradeconv grade section_a section_b`: a student of section_a reads a section_b classmate's layers.py
    (world-readable, as class folders often are) and runs it (found by this test: 30/30 in the uid sandbox
    while only the folder being graded was closed; since fixed)."""
    skip_unless_available(mode)
    section_a, section_b = ws / "section_a", ws / "section_b"
    victim = section_b / "victim" / "cs231n" / "layers.py"
    make_class(ws, {"a_copier": COPIER.replace("__VICTIM__", repr(str(victim)))}, honest="a_honest")
    (ws / "class").rename(section_a)
    victim.parent.mkdir(parents=True)
    victim.write_text(SOURCE)
    batch = grade_batch(ws, mode, [section_a, section_b], write_rubric(ws / "rubric.yaml", tests=base_tests(3)))
    assert_honest(batch, "a_honest")
    assert_honest(batch, "victim")
    assert_nothing_left(marker, batch, mode, [ws])
    assert batch.rows["a_copier"]["score"] == 0, batch.summary("a_copier")
    assert "LEAK" not in batch.rows["a_copier"]["output"], batch.summary("a_copier")
