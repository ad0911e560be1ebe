"""A submission's sandbox session: the API grading uses to call student code.

One session per submission. It keeps one worker alive across calls, starts a
new one after a crash or timeout, enforces the per-submission time budget and,
when closed, kills every process the submission started and removes its stage.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradeconv.sandbox import bubblewrap
from gradeconv.sandbox.process import Limits, Reply, WorkerProcess
from gradeconv.sandbox.staging import Stage, remove

KEPT_OUTPUT_BYTES = 2000


@dataclass(frozen=True)
class Handle:
    """A value the student returned that stays inside the worker (e.g. their cache)."""

    key: int
    generation: int
    index: int | None = None

    def item(self, index: int) -> "Handle":
        return Handle(self.key, self.generation, index)


@dataclass(frozen=True)
class SandboxReport:
    sandbox: str  # "bubblewrap" or "rlimits"
    stdout: str
    stderr: str
    restarts: int
    helper_note: str | None


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


class Session:
    """Calls into one submission's module, each under the per-call limit."""

    def __init__(self, stage: Stage, limits: Limits, functions: list[str],
                 use_bwrap: bool | None = None):
        self.stage, self.limits, self.functions = stage, limits, list(functions)
        self.use_bwrap = bubblewrap.available() if use_bwrap is None else use_bwrap
        self.worker: WorkerProcess | None = None
        self.generation = 0  # workers started so far
        self.load_reply: Reply | None = None
        self.report: SandboxReport | None = None
        self.keys = itertools.count()
        self.spent = 0.0

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def remaining(self) -> float:
        return self.limits.submission_seconds - self.spent

    def load(self) -> Reply:
        """The answer to importing the student's module in the first worker."""
        if self.load_reply is None:
            self.load_reply = self._start()
        return self.load_reply

    def _start(self) -> Reply:
        """A fresh worker with the student's module imported; the reply to that import."""
        self.worker = WorkerProcess(self.stage, self.limits, self.functions, self.use_bwrap)
        self.generation += 1
        return self._request({"op": "load"}, [])

    def call(self, function: str, args: list, keep: bool = False) -> tuple[Reply, Handle | None]:
        """Call `function(*args)` in the worker; with keep, its return value stays there as a Handle."""
        if self.load().status != "ok":
            return self.load_reply, None
        if self.worker is None:
            reloaded = self._start()
            if reloaded.status != "ok":  # the restarted worker failed its import this time
                return reloaded, None
        arrays: list[np.ndarray] = []
        try:
            specs = [self._encode(arg, arrays) for arg in args]
        except LookupError as error:
            return Reply("protocol", message=str(error)), None
        handle = Handle(next(self.keys), self.generation) if keep else None
        header = {"op": "call", "function": function, "args": specs,
                  "store": handle.key if handle else None}
        reply = self._request(header, arrays)
        return reply, (handle if reply.status == "ok" else None)

    def _request(self, header: dict, arrays: list[np.ndarray]) -> Reply:
        if self.remaining <= 0:
            return Reply("not_run", message=f"the submission's time budget of "
                                            f"{self.limits.submission_seconds:g} s is used up")
        timeout = min(self.limits.call_seconds, self.remaining)
        reply = self.worker.request(header, arrays, timeout)
        self.spent += reply.seconds
        if reply.status in ("timeout", "crashed", "protocol"):
            self.worker.kill()
            self.worker = None
        return reply

    def _encode(self, value, arrays: list[np.ndarray]) -> dict:
        if isinstance(value, np.ndarray):
            arrays.append(value)
            return {"array": len(arrays) - 1}
        if isinstance(value, Handle):
            if value.generation != self.generation:
                raise LookupError("the cache was lost when the worker was restarted")
            return {"handle": value.key, "index": value.index}
        if isinstance(value, tuple):
            return {"tuple": [self._encode(item, arrays) for item in value]}
        return {"json": value}

    def forget(self, *handles: Handle) -> None:
        live = [h.key for h in handles if h is not None and h.generation == self.generation]
        if live and self.worker is not None:
            self._request({"op": "drop", "handles": live}, [])

    def close(self) -> SandboxReport:
        """Kill everything the submission started, remove its stage, report what it printed."""
        if self.report is not None:
            return self.report
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        logs = self.stage.root / "logs"
        self.report = SandboxReport(
            sandbox="bubblewrap" if self.use_bwrap else "rlimits",
            stdout=truncated_text(logs / "stdout"),
            stderr=truncated_text(logs / "stderr"),
            restarts=max(self.generation - 1, 0),
            helper_note=self.stage.helper_note,
        )
        remove(self.stage)
        return self.report
