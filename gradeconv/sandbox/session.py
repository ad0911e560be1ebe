"""A submission's sandbox session: the API grading uses to call student code.

One session per submission. It picks the strongest isolation the machine
offers, keeps one worker alive across calls, starts a new one after a crash or
timeout, enforces the per-submission time budget and, when closed, kills every
process the submission started, checks that none is left, and removes its
stage and whatever it left in scratch folders. A watchdog thread enforces the
limits that hold for all the submission's processes together (memory, number
of processes, scratch space) and the budget plus a margin, whatever the
grading thread is doing.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradeconv.sandbox import accounts, bubblewrap, landlock, runtime
from gradeconv.sandbox.failures import MachineFailure
from gradeconv.sandbox.process import Isolation, Limits, Reply, WorkerProcess, reply_budget
from gradeconv.sandbox.reaper import BusyCores
from gradeconv.sandbox.staging import Stage, remove

KEPT_OUTPUT_BYTES = 2000
MODES = ("bubblewrap", "uid", "none")
WATCH_SECONDS = 0.05
SCRATCH_WATCH_SECONDS = 0.25
#: the watchdog kills a submission this long after its time budget, whatever grading is doing
BUDGET_MARGIN_SECONDS = 30.0
#: processor cores a submission's processes may keep busy together, measured over CPU_WINDOW_SECONDS:
#: its worker needs one; more steals time from classmates graded beside it
MAX_BUSY_CORES = 1.5
CPU_WINDOW_SECONDS = 1.0
#: replies to load and drop carry no arrays
NO_ARRAYS = 0
UNCONFINED_NOTE = ("file system: not confined by Landlock on this machine (the kernel or the container does not "
                   "offer it): student code could read what any user may read here")
NONE_WARNING = ("sandbox: none. Student code ran with the grader's own rights: it could read, change or "
                "forge anything this user can. Install bubblewrap, or run the grader as root so that "
                "gradeconv can use a dedicated account.")


class SandboxUnavailable(Exception):
    """The requested isolation cannot be set up on this machine."""


@dataclass(frozen=True)
class Handle:
    """A value the student returned that stays inside the worker (e.g. their cache)."""

    key: int
    generation: int
    index: int | None = None

    def item(self, index: int) -> "Handle":
        return Handle(self.key, self.generation, index)


@dataclass(frozen=True)
class Writable:
    """An array argument the called function may change (it gets its own copy)."""

    array: np.ndarray


@dataclass(frozen=True)
class SandboxReport:
    sandbox: str  # "bubblewrap", "uid" or "none"
    stdout: str
    stderr: str
    restarts: int
    helper_note: str | None
    clean: bool  # every process of the submission was gone when grading ended
    confined: bool = False  # uid mode: its files were confined by Landlock
    unexplained_kills: int = 0  # workers that died of a SIGKILL gradeconv did not send
    machine_failure: str | None = None  # a worker could not be started: nothing of this session counts


def truncated_text(path: Path, keep: int = KEPT_OUTPUT_BYTES) -> str:
    """The head and tail of a captured stream, saying how much was cut between them."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if size <= 2 * keep:
                return handle.read().decode("utf-8", "replace")
            head = handle.read(keep)
            handle.seek(size - keep)
            tail = handle.read()
    except OSError:
        return ""
    cut = size - 2 * keep
    return (head.decode("utf-8", "replace") + f"\n[... {cut} bytes cut ...]\n"
            + tail.decode("utf-8", "replace"))


def best_mode() -> str:
    """The strongest isolation this machine offers: GRADECONV_SANDBOX, else bwrap, else a uid if root."""
    forced = os.environ.get("GRADECONV_SANDBOX")
    if forced:
        if forced not in MODES:
            raise SandboxUnavailable(f"GRADECONV_SANDBOX={forced!r}: use one of {', '.join(MODES)}")
        return forced
    if bubblewrap.available():
        return "bubblewrap"
    return "uid" if os.geteuid() == 0 else "none"


class Session:
    """Calls into one submission's graded modules, each call under the per-call limit.

    functions: the functions to look up in the stage's module, or by module (dotted name) for a
    stage holding several graded files of one package (layers.py, optim.py, classifiers/fc_net.py):
    one worker imports each module when it is first needed.
    """

    def __init__(self, stage: Stage, limits: Limits, functions: list[str] | dict[str, list[str]],
                 mode: str | None = None):
        self.stage, self.limits = stage, limits
        self.functions = dict(functions) if isinstance(functions, dict) else {stage.module: list(functions)}
        self.isolation = _isolation(mode or best_mode(), stage)
        self.worker: WorkerProcess | None = None
        self.generation = 0  # workers started so far
        self.load_replies: dict[str, Reply] = {}  # each module's import in the first worker that tried it
        self.imported: set[str] = set()  # the modules the current worker has imported
        self.report: SandboxReport | None = None
        self.keys = itertools.count()
        self.spent = 0.0
        self.unexplained_kills = 0
        self.machine_failure: str | None = None  # why a worker could not be started, if one could not
        self.expired: str | None = None  # why the watchdog ended the submission
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._deadline = time.monotonic() + limits.submission_seconds + BUDGET_MARGIN_SECONDS
        self._busy = BusyCores(CPU_WINDOW_SECONDS)
        self._watchdog = threading.Thread(target=self._watch, name="gradeconv-watchdog", daemon=True)
        self._watchdog.start()

    @property
    def mode(self) -> str:
        return self.isolation.mode

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def remaining(self) -> float:
        return self.limits.submission_seconds - self.spent

    def load(self, module: str | None = None) -> Reply:
        """The answer to importing a graded module (default: the stage's) in the first worker that tried."""
        module = module or self.stage.module
        if module not in self.load_replies:
            self.load_replies[module] = self._import(module)
        return self.load_replies[module]

    def _import(self, module: str) -> Reply:
        """The module imported in the current worker (started first if there is none); the reply to that."""
        if self.worker is None:
            started = self._start()
            if started is not None:
                return started
        reply = self._request({"op": "load", "module": module, "functions": self.functions.get(module, [])}, [],
                              NO_ARRAYS)
        if reply.status == "ok":
            self.imported.add(module)
        return reply

    def _start(self) -> Reply | None:
        """A fresh worker, ready (no module imported yet); else the reply every request gets."""
        stopped = self._stopped()
        if stopped is not None:
            return stopped
        if self.generation:
            self._clear_leftovers()
        try:
            started = WorkerProcess(self.stage, self.limits, self.isolation)
        except MachineFailure as failure:  # every later call is not run; grading sees why (close's report)
            self.machine_failure = str(failure)
            return Reply("not_run", message=self.machine_failure)
        with self._lock:
            self.worker = started
            self.imported = set()
        self.generation += 1
        return None

    def _clear_leftovers(self) -> None:
        """Before a restarted worker: what the stopped one left in its work folder and scratch folders goes,
        so one call's excess (files past scratch_mb) is not held against the calls after it."""
        leftovers = [Path(entry.path) for entry in os.scandir(self.stage.root / "work")]
        if self.mode == "uid":
            leftovers += accounts.scratch_entries(self.isolation.account.uid)
        for entry in leftovers:
            accounts.remove_entry(entry)

    def call(self, function: str, args: list, keep: bool = False, expected_bytes: int = 0,
             writable: bool = False, report: list[tuple[int, list[str]]] = (), kwargs: dict | None = None,
             target: Handle | None = None, get: bool = False, module: str | None = None) -> tuple[Reply, Handle | None]:
        """Call `function(*args, **kwargs)` in the worker; with keep, its return value stays there as a Handle.

        expected_bytes is the size of the correct answer's arrays; a reply far larger is refused
        unread. Inputs reach the student read-only unless writable (or wrapped in Writable).
        report names (argument index, keys) of dict arguments whose entries the reply carries back.
        With target, `function` is a method of that stored value (a model's loss); with get, the
        attribute itself is returned, not called (a model's params). module: the graded module whose
        function it is (dotted; default: the stage's).
        """
        module = module or self.stage.module
        if self.load(module).status != "ok":
            return self.load_replies[module], None
        if self.worker is None or module not in self.imported:
            reloaded = self._import(module)
            if reloaded.status != "ok":  # the restarted worker failed its import this time
                return reloaded, None
        arrays: list[np.ndarray] = []
        try:
            specs = [self._encode(arg, arrays) for arg in args]
            keywords = {key: self._encode(value, arrays) for key, value in (kwargs or {}).items()}
            owner = self._encode(target, arrays)["handle"] if target is not None else None
        except LookupError as error:
            return Reply("protocol", message=str(error)), None
        handle = Handle(next(self.keys), self.generation) if keep else None
        header = {"op": "call", "module": module, "function": function, "args": specs, "kwargs": keywords,
                  "target": owner,
                  "get": get, "store": handle.key if handle else None, "writable": writable,
                  "report": [[index, list(keys)] for index, keys in report]}
        reply = self._request(header, arrays, reply_budget(expected_bytes))
        return reply, (handle if reply.status == "ok" else None)

    def set_items(self, target: Handle, attribute: str, items: dict, expected_bytes: int = 0) -> Reply:
        """`getattr(value, attribute)[key] = item` in the worker for each item, on a stored value:
        the parameters a model is graded with (each array its own writable copy)."""
        if self.worker is None or target.generation != self.generation:
            return Reply("protocol", message="the model was lost when the worker was restarted")
        arrays: list[np.ndarray] = []
        specs = {key: self._encode(Writable(value) if isinstance(value, np.ndarray) else value, arrays)
                 for key, value in items.items()}
        return self._request({"op": "set", "target": target.key, "attribute": attribute, "items": specs}, arrays,
                             reply_budget(expected_bytes))

    def _stopped(self) -> Reply | None:
        """The reply to every request once the watchdog ended the submission or the machine failed it."""
        reason = self.expired or self.machine_failure
        return Reply("not_run", message=reason) if reason else None

    def _request(self, header: dict, arrays: list[np.ndarray], max_reply_bytes: int) -> Reply:
        stopped = self._stopped()
        if stopped is not None:
            return stopped
        if self.remaining <= 0:
            return Reply("not_run", message=f"the submission's time budget of "
                                            f"{self.limits.submission_seconds:g} s is used up")
        timeout = min(self.limits.call_seconds, self.remaining)
        reply = self.worker.request(header, arrays, timeout, max_reply_bytes)
        self.spent += reply.seconds
        self.unexplained_kills += reply.unexplained
        if reply.status in ("timeout", "crashed", "protocol"):
            self._drop_worker()
        return reply

    def _drop_worker(self) -> None:
        with self._lock:
            worker, self.worker = self.worker, None
            self.imported = set()
        if worker is not None:
            worker.kill()

    def _encode(self, value, arrays: list[np.ndarray]) -> dict:
        if isinstance(value, np.ndarray):
            arrays.append(value)
            return {"array": len(arrays) - 1}
        if isinstance(value, Writable):
            arrays.append(value.array)
            return {"array": len(arrays) - 1, "writable": True}
        if isinstance(value, Handle):
            if value.generation != self.generation:
                raise LookupError("the cache was lost when the worker was restarted")
            return {"handle": value.key, "index": value.index}
        if isinstance(value, tuple):
            return {"tuple": [self._encode(item, arrays) for item in value]}
        if isinstance(value, list):
            return {"list": [self._encode(item, arrays) for item in value]}
        if isinstance(value, dict):
            return {"dict": {key: self._encode(item, arrays) for key, item in value.items()}}
        if isinstance(value, np.generic):
            return {"json": value.item()}
        if value is np.float64 or value is np.float32:  # a dtype argument: the worker's own numpy type
            return {"numpy": value.__name__}
        return {"json": value}

    def forget(self, *handles: Handle) -> None:
        live = [h.key for h in handles if h is not None and h.generation == self.generation]
        if live and self.worker is not None:
            self._request({"op": "drop", "handles": live}, [], NO_ARRAYS)

    def _watch(self) -> None:
        """Kill the submission when it breaks a limit of all its processes together, or runs out of time."""
        next_scratch = 0.0
        while not self._closing.wait(WATCH_SECONDS):
            with self._lock:
                worker = self.worker
            try:
                reason = self._over_budget()
                if reason is None and worker is not None:
                    reason = self._over_limits(worker)
                    if reason is None and self.mode == "bubblewrap":
                        reason = self._over_jail_files(worker)
                    if reason is None and self.mode == "uid" and time.monotonic() >= next_scratch:
                        next_scratch = time.monotonic() + SCRATCH_WATCH_SECONDS
                        reason = self._over_scratch()
            except Exception as error:  # fail closed: an unwatched worker is never graded; the machine's fault
                self.machine_failure = self.machine_failure or f"gradeconv's watchdog failed ({error!r})"
                reason = self.machine_failure
            if reason is not None and worker is not None:
                worker.terminate(reason)

    def _over_budget(self) -> str | None:
        if time.monotonic() < self._deadline:
            return None
        self.expired = (f"the watchdog stopped this submission {BUDGET_MARGIN_SECONDS:g} s after its time "
                        f"budget of {self.limits.submission_seconds:g} s")
        return self.expired

    def _over_limits(self, worker: WorkerProcess) -> str | None:
        usage = worker.group.usage()
        if usage.processes > self.limits.processes:
            return f"it ran {usage.processes} processes at once (the limit is {self.limits.processes})"
        cores = self._busy.add(time.monotonic(), usage.cpu_seconds)
        if cores > MAX_BUSY_CORES:
            return f"its processes kept {cores:.1f} processor cores busy (the limit is {MAX_BUSY_CORES:g})"
        memory = usage.resident_bytes
        if self.mode == "uid":  # shared memory segments of the account live outside every process
            memory += accounts.shared_memory_bytes(self.isolation.account.uid)
        if memory > self.limits.memory_mb << 20:
            return (f"its processes together used {memory >> 20} MB of memory "
                    f"(the limit is {self.limits.memory_mb} MB)")
        return None

    def _over_scratch(self) -> str | None:
        used = accounts.scratch_use(self.isolation.account.uid, [self.stage.root / "work"])
        if used.too_deep:
            return (f"it nested folders more than {accounts.MAX_SCRATCH_DEPTH} deep in scratch folders "
                    "(or put files where they cannot be counted)")
        if used.files > accounts.MAX_SCRATCH_FILES:
            return f"it made more than {accounts.MAX_SCRATCH_FILES} files in scratch folders"
        if used.bytes > self.limits.scratch_mb << 20:
            return (f"it wrote {used.bytes >> 20} MB of files to scratch folders "
                    f"(the limit is {self.limits.scratch_mb} MB)")
        return None

    def _over_jail_files(self, worker: WorkerProcess) -> str | None:
        """Files in the jail's memory file systems: bounded in bytes by bwrap, in number only here."""
        if worker.jail_pid is None or not _inside_its_root(worker.jail_pid):
            return None
        files = 0
        for mount in bubblewrap.SCRATCH_MOUNTS:
            try:
                info = os.statvfs(f"/proc/{worker.jail_pid}/root{mount}")
            except OSError:
                continue
            files += info.f_files - info.f_ffree
        if files > accounts.MAX_SCRATCH_FILES:
            return f"it made more than {accounts.MAX_SCRATCH_FILES} files in scratch folders"
        return None

    def close(self) -> SandboxReport:
        """Kill everything the submission started, remove its stage, report what it printed."""
        if self.report is not None:
            return self.report
        self._closing.set()
        self._watchdog.join()
        clean = True
        if self.worker is not None:
            clean = self.worker.kill()
            self.worker = None
        logs = self.stage.root / "logs"  # read before the account's sweep, which removes stages of its group
        stdout, stderr = truncated_text(logs / "stdout"), truncated_text(logs / "stderr")
        remove(self.stage)
        if self.isolation.account is not None:  # its processes outside the jail too
            clean = accounts.release(self.isolation.account) and clean
        self.report = SandboxReport(sandbox=self.mode, stdout=stdout, stderr=stderr,
                                    restarts=max(self.generation - 1, 0), helper_note=self.stage.helper_note,
                                    clean=clean, confined=self.isolation.confined,
                                    unexplained_kills=self.unexplained_kills,
                                    machine_failure=self.machine_failure)
        return self.report


def _inside_its_root(pid: int) -> bool:
    """The jail has switched to its own root (bwrap reports its pid before it does)."""
    try:
        jail, host = os.stat(f"/proc/{pid}/root"), os.stat("/")
    except OSError:
        return False
    return (jail.st_dev, jail.st_ino) != (host.st_dev, host.st_ino)


def _isolation(mode: str, stage: Stage) -> Isolation:
    """What a mode needs, set up for this stage; SandboxUnavailable if the machine cannot."""
    if mode not in MODES:
        raise SandboxUnavailable(f"unknown sandbox mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "bubblewrap" and not bubblewrap.available():
        raise SandboxUnavailable("bubblewrap is not usable on this machine")
    if mode == "none" or (mode == "bubblewrap" and os.geteuid() != 0):
        return Isolation(mode)
    if os.geteuid() != 0:
        raise SandboxUnavailable("the uid sandbox needs the grader to run as root")
    account = accounts.acquire()
    try:
        if mode == "bubblewrap" and not bubblewrap.available_to(account.uid, account.gid):
            accounts.release(account)  # no user namespaces for accounts: the jail runs as root
            return Isolation(mode)
        try:
            shared = runtime.shared_runtime()
            accounts.grant(account, stage.root)
        except (OSError, RuntimeError) as error:  # the runtime copy missing or unreadable, a full disk
            raise MachineFailure(f"the worker's runtime could not be prepared ({error})") from None
        confined = mode == "uid" and landlock.usable(shared)
    except BaseException:
        accounts.release(account)
        raise
    return Isolation(mode, account, shared, confined)
