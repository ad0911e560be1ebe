"""Grading on a Dask distributed cluster: ``grade_all_on_dask(submissions, rubric, address)``.

The same contract as ``batch.grade_all``: one row per submission, in completion
order, each exactly the row local grading gives (its path is the client's path).

- Submissions travel as bytes. The client reads what grading can use of each one
  (a .py file; a .zip; of a folder, every .py entry: regular files up to 5 MB as
  bytes, larger ones as their size, links and FIFOs as what they are, since
  grading never follows or reads them); the worker writes them into a private
  temporary folder (mode 0700, removed afterwards) and grades them with
  ``batch.safe_grade`` -> ``grading.grade_submission`` exactly as locally, in its
  own sandbox. Workers need no shared file system. A path that is neither a
  folder, a .zip nor a regular .py file fails before any student code could run,
  so the client judges it itself, with the very message local grading gives.
- The rubric travels as its YAML text, with its sha256 and the secret of the
  hidden tests (see ``RubricPayload``); the worker rebuilds it in memory and
  checks the text's hash and the secret's fingerprint.
- Every task carries the client's identity (gradeconv version, a digest of its
  code, hypothesis and numpy versions: everything grades depend on); a worker
  whose own differs refuses to grade (``WorkerMismatch``), and the client checks
  every connected worker with ``Client.run`` before submitting anything.
- A worker lost mid-grade: Dask reschedules its task on another worker (the
  nanny of a local cluster also restarts the process). Results are kept per
  submission id, so a submission never yields two rows. A task whose workers
  die more often than the scheduler's ``allowed-failures`` (1 on a local
  cluster, as the local pool's single retry) gets a score-0 row.
- At most a few tasks per worker thread are in flight, so a class of 10,000 is
  read, sent and held a window at a time, not all at once.
"""
from __future__ import annotations

import builtins
import contextlib
import hashlib
import logging
import os
import re
import stat
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

import yaml

from gradeconv import batch
from gradeconv.rubric import Rubric
from gradeconv.sandbox.staging import MAX_COPIED_FILE_BYTES
from gradeconv.submissions import (MAX_ZIP_BYTES, NotRegularFile, Submission, file_kind, read_regular_file,
                                   walk)
from gradeconv.temporary import remove_tree, temporary_folder

LOCAL = re.compile(r"^local:(\d+)$")
#: a folder's .py entries sent at most (bytes and count); more is refused with a row saying so
MAX_TREE_BYTES = MAX_ZIP_BYTES
MAX_TREE_ENTRIES = 5000
#: a .zip is sent whole up to this size (local grading refuses one unpacking to more than 50 MB anyway)
MAX_SENT_ZIP_BYTES = MAX_ZIP_BYTES + (16 << 20)
#: tasks in flight per worker thread (the rest of the class waits in the client, unread)
IN_FLIGHT_PER_THREAD = 2
CONNECT_SECONDS = 30
WORKER_WAIT_SECONDS = 120
#: a local cluster's settings: a submission whose grading kills its worker twice gets a score-0 row, as with
#: the local pool; no statistical profiler sampling the graders every 10 ms (it cost about 8% of grading time
#: with two workers on two cores)
LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": batch.ATTEMPTS - 1,
                "distributed.worker.profile.enabled": False}
#: the local scheduler's HTTP server (health checks; no dashboard) on a free port of the loopback: on its
#: default, 8787, a second local cluster of the machine (another grader, a notebook) made Dask warn on stderr
LOCAL_SCHEDULER = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
LINK_TARGET = "gradeconv: link not copied"  # what a sent link points to on the worker: nothing


class DaskError(Exception):
    """Grading on the cluster cannot go on; the message is one line for the user."""


class DaskUnavailable(DaskError):
    """No cluster to grade on: distributed missing, scheduler unreachable, no worker."""


class WorkerMismatch(DaskError):
    """A worker whose gradeconv (or rubric) differs from the client's: it must not grade."""


# --------------------------------------------------------------------------- identity


def identity() -> dict:
    """What grades depend on in this process: gradeconv's version and code, hypothesis and numpy.

    Self-contained (imports inside, no module globals), so the client can send a
    copy by value to a worker whose gradeconv has no such function (``_probe``).
    """
    import hashlib
    import importlib
    from pathlib import Path

    found = {}
    for name in ("gradeconv", "reference", "hypothesis", "numpy"):
        try:
            found[name] = importlib.import_module(name)
        except Exception as error:  # a worker without gradeconv must say so, not crash the probe
            return {"error": f"cannot import {name} ({type(error).__name__}: {error})"}
    # the code that decides grades; what only writes reports or serves other platforms is left out
    output_only = {"gradeconv/reports", "gradeconv/platforms", "gradeconv/cli.py", "gradeconv/notebook.py",
                   "gradeconv/__main__.py"}
    digest = hashlib.sha256()
    for package in ("gradeconv", "reference"):
        root = Path(found[package].__file__).parent
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts
                           and "/".join(p.relative_to(root.parent).parts[:2]) not in output_only):
            digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"gradeconv": found["gradeconv"].__version__, "code": digest.hexdigest()[:16],
            "hypothesis": found["hypothesis"].__version__, "numpy": found["numpy"].__version__}


_IDENTITY: dict | None = None


def own_identity() -> dict:
    """This process's identity, computed once."""
    global _IDENTITY
    if _IDENTITY is None:
        _IDENTITY = identity()
    return _IDENTITY


def client_identity() -> dict:
    """The identity the client sends with every task (tests replace it to play a mismatch)."""
    return own_identity()


def _probe() -> types.FunctionType:
    """``identity`` as a fresh function, which cloudpickle sends by value, not by reference."""
    probe = types.FunctionType(identity.__code__, {"__builtins__": builtins}, "gradeconv_identity_probe")
    probe.__module__ = __name__
    probe.__qualname__ = "gradeconv_identity_probe"
    return probe


def describe(found: dict) -> str:
    if "error" in found:
        return found["error"]
    return f"gradeconv {found['gradeconv']} (code {found['code']}), hypothesis {found['hypothesis']}, numpy {found['numpy']}"


def mismatch(worker: str, theirs: dict, ours: dict) -> WorkerMismatch:
    return WorkerMismatch(f"Dask worker {worker} is refused: it has {describe(theirs)}, this client "
                          f"{describe(ours)}; install the same gradeconv, hypothesis and numpy on every worker")


# --------------------------------------------------------------------------- the rubric


class Secret:
    """The hidden tests' secret on its way to a worker: pickled as it is, never shown by repr or str."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "Secret(<hidden>)" if self.value else "Secret(<none>)"

    __str__ = __repr__

    def __reduce__(self):
        return (Secret, (self.value,))


@dataclass(frozen=True)
class RubricPayload:
    """A rubric as it travels: its YAML text, the client's sha256, secret fingerprint and secret."""

    text: str
    text_sha256: str
    sha256: str  # what the client reports (the rubric file's sha256)
    path: str  # the client's rubric file: a worker protects it as local grading does, where it exists there
    fingerprint: str | None
    secret: Secret = field(repr=False)

    @classmethod
    def of(cls, rubric: Rubric) -> "RubricPayload":
        text = None
        if rubric.path:
            try:
                text = Path(rubric.path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise DaskError(f"{rubric.path}: cannot read the rubric again to send it ({error})") from None
            if hashlib.sha256(text.encode()).hexdigest() != rubric.sha256:
                raise DaskError(f"{rubric.path}: the rubric changed since it was loaded; run again")
        else:  # a rubric built in memory: its content as YAML
            text = yaml.safe_dump(rubric.model_dump(mode="json"), sort_keys=False)
        return cls(text, hashlib.sha256(text.encode()).hexdigest(), rubric.sha256, rubric.path,
                   rubric.secret_fingerprint, Secret(rubric._secret))


_RUBRICS: dict[tuple, Rubric] = {}


def rebuild(payload: RubricPayload) -> Rubric:
    """The client's rubric in this worker (cached per process); the secret stays in memory."""
    key = (payload.text_sha256, payload.sha256, payload.fingerprint)
    if key in _RUBRICS:
        return _RUBRICS[key]
    if hashlib.sha256(payload.text.encode()).hexdigest() != payload.text_sha256:
        raise WorkerMismatch("the rubric reached a Dask worker damaged (its sha256 differs from the client's)")
    rubric = Rubric.model_validate(yaml.safe_load(payload.text))
    rubric._sha256 = payload.sha256
    rubric._secret = payload.secret.value
    if rubric.secret_fingerprint != payload.fingerprint:
        raise WorkerMismatch("the rubric's secret reached a Dask worker with another fingerprint than the client's")
    rubric._path = payload.path  # nothing is written: the text and the secret stay in memory
    _RUBRICS.clear()
    _RUBRICS[key] = rubric
    return rubric


# --------------------------------------------------------------------------- submissions as bytes


class PackError(Exception):
    """A submission that cannot be sent to the cluster; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One entry of a sent submission: `kind` file (data), big (a file over 5 MB: its size), link or fifo."""

    path: str  # relative, POSIX; "" for the submission itself when it is a file
    kind: str
    data: bytes = field(default=b"", repr=False)
    size: int = 0


@dataclass(frozen=True)
class Package:
    """A submission as it travels to a worker."""

    id: str
    late: bool
    alone: bool
    path: str  # the client's path, put back into the row
    name: str  # the file or folder name it is written under on the worker
    folder: bool
    entries: tuple[Entry, ...]

    @property
    def size(self) -> int:
        return sum(len(entry.data) for entry in self.entries)


def judged_in_client(submission: Submission) -> bool:
    """A path local grading refuses before staging anything: neither a folder, a .zip nor a regular .py file."""
    path = submission.path
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        return False
    try:
        regular = stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return True
    return not (regular and path.suffix == ".py")


def pack(submission: Submission) -> Package:
    """The parts of a submission grading can use, read in the client (never through a link)."""
    path = submission.path
    if path.is_dir():
        entries = _pack_tree(path)
        folder = True
    elif path.suffix.lower() == ".zip":  # local grading reads a zip through a link too
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_SENT_ZIP_BYTES + 1)
        except OSError as error:
            raise PackError(f"{path}: cannot be read ({error.strerror})") from None
        if len(data) > MAX_SENT_ZIP_BYTES:
            raise PackError(f"{path}: the zip is larger than {MAX_SENT_ZIP_BYTES >> 20} MB")
        entries, folder = (Entry("", "file", data),), False
    else:
        entries, folder = (_pack_file(path, ""),), False
    return Package(submission.id, submission.late, submission.alone, str(path), path.name, folder, entries)


def _pack_file(path: Path, relative: str) -> Entry | None:
    try:
        return Entry(relative, "file", read_regular_file(path, MAX_COPIED_FILE_BYTES))
    except NotRegularFile:
        pass
    try:
        info = os.lstat(path)
    except OSError as error:
        raise PackError(f"{path}: cannot be read ({error.strerror})") from None
    if stat.S_ISREG(info.st_mode) and info.st_size > MAX_COPIED_FILE_BYTES:
        return Entry(relative, "big", size=info.st_size)
    if stat.S_ISLNK(info.st_mode):
        return Entry(relative, "link")
    if stat.S_ISFIFO(info.st_mode):
        return Entry(relative, "fifo")
    if not relative:
        raise PackError(f"{path}: {path.name} is {file_kind(info.st_mode) or 'unreadable'}")
    return None  # a socket or device named *.py inside a folder: not sent, so not reported as skipped


def _pack_tree(root: Path) -> tuple[Entry, ...]:
    entries, total = [], 0
    for path, info in walk(root):
        if not path.name.endswith(".py") or stat.S_ISDIR(info.st_mode):
            continue  # grading reads only .py files (the graded module and its siblings)
        entry = _pack_file(path, path.relative_to(root).as_posix())
        if entry is None:
            continue
        entries.append(entry)
        total += len(entry.data)
        if total > MAX_TREE_BYTES or len(entries) > MAX_TREE_ENTRIES:
            raise PackError(f"{root}: more than {MAX_TREE_BYTES >> 20} MB or {MAX_TREE_ENTRIES} .py files "
                            "to send to the cluster")
    return tuple(entries)


def unpack(package: Package, folder: Path) -> Path:
    """Write a package under `folder` (private to this process); the path to grade."""
    root = folder / package.name
    if package.name in ("", ".", "..") or "/" in package.name:
        raise PackError(f"{package.path}: cannot be written on the worker (odd name)")
    if package.folder:
        root.mkdir()
    for entry in package.entries:
        relative = PurePosixPath(entry.path)
        if relative.is_absolute() or ".." in relative.parts or (package.folder and not entry.path):
            continue
        target = root / relative if package.folder else root
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "file":
            target.write_bytes(entry.data)
        elif entry.kind == "big":
            with open(target, "wb") as handle:
                handle.truncate(entry.size)  # sparse: only its size is ever looked at
        elif entry.kind == "link":
            os.symlink(LINK_TARGET, target)
        elif entry.kind == "fifo":
            os.mkfifo(target, 0o600)
    return root


def grade_task(package: Package, payload: RubricPayload, expected: dict) -> dict:
    """On a worker: refuse a client with another gradeconv, else grade the package as local grading would."""
    mine = own_identity()
    if mine != expected:
        from distributed import get_worker
        try:
            worker = get_worker().address
        except ValueError:
            worker = "(not a worker)"
        raise mismatch(worker, mine, expected)
    rubric = rebuild(payload)
    folder = temporary_folder("dask")  # removed by a later task should this worker be killed
    try:
        path = unpack(package, folder)
        row = batch.safe_grade(Submission(package.id, path, package.late, package.alone), rubric)
    finally:
        remove_tree(folder)
    return _replace_text(row, str(path), package.path)


def _replace_text(value, old: str, new: str):
    """The row with the worker's path of the submission written as the client's, wherever it appears."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {key: _replace_text(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_text(item, old, new) for item in value]
    return value


# --------------------------------------------------------------------------- the client


@contextlib.contextmanager
def connect(address: str) -> Iterator:
    """A Client for `address`: ``local:N`` starts a LocalCluster of N single-threaded worker processes."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise DaskUnavailable("--dask needs the distributed package: pip install 'gradeconv[dask]'") from None
    local = LOCAL.match(address)
    if address.startswith("local") and not local:
        raise DaskUnavailable(f"--dask {address}: give local:N (N worker processes on this machine) "
                              "or a scheduler's address, like tcp://host:8786")
    if local:
        workers = int(local.group(1))
        if workers < 1:
            raise DaskUnavailable("--dask local:N needs N >= 1 worker processes")
        with dask.config.set(LOCAL_CONFIG):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, scheduler_kwargs=LOCAL_SCHEDULER, memory_limit=0,
                                   silence_logs=logging.ERROR)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, ValueError) as error:
        raise DaskUnavailable(f"cannot reach the Dask scheduler at {address} ({error})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
        except (TimeoutError, OSError):
            raise DaskUnavailable(f"no Dask worker joined the scheduler at {address} "
                                  f"within {WORKER_WAIT_SECONDS} s") from None
        yield client


def check_workers(client, expected: dict) -> None:
    """Refuse (WorkerMismatch) if any connected worker's identity differs from the client's."""
    found = client.run(_probe())
    for worker, theirs in sorted(found.items()):
        if theirs != expected:
            raise mismatch(worker, theirs, expected)


def grade_all_on_dask(submissions: list[Submission], rubric: Rubric, address: str,
                      check: bool = True) -> Iterator[dict]:
    """One row per submission, in completion order, graded on the Dask cluster at `address` (or local:N).

    Raises DaskUnavailable without a cluster, WorkerMismatch for a worker with
    another gradeconv (before any grading when `check`, else as soon as one of
    its tasks runs), DaskError if the scheduler is lost mid-run.
    """
    if not submissions:
        return
    payload = RubricPayload.of(rubric)
    expected = client_identity()
    with connect(address) as client:
        if check:
            check_workers(client, expected)
        yield from _stream(client, submissions, rubric, payload, expected)


def _stream(client, submissions: list[Submission], rubric: Rubric, payload: RubricPayload,
            expected: dict) -> Iterator[dict]:
    from distributed import as_completed

    token = uuid.uuid4().hex[:12]
    queue = iter(enumerate(submissions))
    inflight: dict = {}
    done: set[str] = set()
    completed = as_completed()
    window, window_checked = 0, 0.0
    while True:
        if time.monotonic() - window_checked > 2.0:
            threads = sum(client.nthreads().values())
            window, window_checked = max(4, IN_FLIGHT_PER_THREAD * threads), time.monotonic()
        while len(inflight) < window:
            index, submission = next(queue, (None, None))
            if submission is None:
                break
            row = None
            if judged_in_client(submission):
                row = batch.safe_grade(submission, rubric)  # fails before staging: no student code runs
            else:
                try:
                    package = pack(submission)
                except PackError as error:
                    row = batch.failure_row(submission, rubric, f"{error}; no test was scored")
            if row is not None:
                if row["id"] not in done:
                    done.add(row["id"])
                    yield row
                continue
            future = client.submit(grade_task, package, payload, expected, key=f"gradeconv-{token}-{index}",
                                   pure=False)
            inflight[future] = submission
            completed.add(future)
        if not inflight:
            return
        future = next(completed)
        submission = inflight.pop(future)
        row = _row_of(future, submission, rubric)
        future.release()
        if row["id"] in done:  # never a second row for a submission, whatever the cluster did
            continue
        done.add(row["id"])
        yield row


def _row_of(future, submission: Submission, rubric: Rubric) -> dict:
    """A finished task's row; a score-0 row for a task whose workers kept dying; raises what must stop grading."""
    from distributed import KilledWorker

    if future.status == "finished":
        try:
            return future.result()
        except Exception as error:  # the result itself could not be fetched
            return _lost(future, submission, rubric, error)
    if future.status == "cancelled":
        raise DaskError("the Dask scheduler dropped the grading tasks (was it restarted?); "
                        "finished grades are kept: run again with --resume")
    error = future.exception()
    if isinstance(error, WorkerMismatch):
        raise error
    if isinstance(error, (ImportError, AttributeError)):  # the task itself could not be loaded there
        raise WorkerMismatch(f"a Dask worker could not load gradeconv's grading task ({type(error).__name__}: "
                             f"{error}); install the same gradeconv, hypothesis and numpy on every worker")
    if isinstance(error, KilledWorker):
        return batch.failure_row(submission, rubric,
                                 "grading this submission killed the Dask worker grading it more often than the "
                                 "scheduler allows (allowed-failures); no test was scored. Code that kills or "
                                 "corrupts the process grading it gets no points")
    return _lost(future, submission, rubric, error)


def _lost(future, submission: Submission, rubric: Rubric, error: BaseException) -> dict:
    detail = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    return batch.not_graded_row(submission, rubric,
                                f"gradeconv failed while grading this submission on the cluster ({detail}); "
                                "please report it")
