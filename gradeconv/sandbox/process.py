"""Parent side of one worker process: start, call with a deadline, kill.

A worker is started lazily, reused across calls, and replaced after it
crashes or times out. At the end the whole process group is killed with
SIGKILL, and so is every process still carrying this worker's marker in its
environment (children that left the group), so nothing a submission starts
outlives its grading.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from gradeconv.sandbox import bubblewrap, wire
from gradeconv.sandbox.staging import Stage

MARKER_VARIABLE = "GRADECONV_WORKER"
MAX_REPLY_BYTES = 1 << 30
KILL_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's worker."""

    call_seconds: float = 5.0
    submission_seconds: float = 120.0
    memory_mb: int = 2048
    file_mb: int = 64
    forbidden: tuple[str, ...] = ("torch", "tensorflow", "jax")


@dataclass(frozen=True)
class Reply:
    """What came back from one request to the worker.

    status is one of: ok, raised, memory, timeout, crashed, protocol.
    """

    status: str
    header: dict = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _marked(needle: bytes) -> list[int]:
    """Processes whose environment carries the needle (a dead one has no environment left)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment carries this worker's marker, until none is left.

    Rescanning catches a child forked after a scan, and waits for the killed ones
    to be gone (for at most KILL_WAIT_SECONDS) rather than merely signalled.
    """
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while (marked := _marked(needle)) and time.monotonic() < deadline:
        for pid in marked:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone already
                pass
        time.sleep(0.005)


class WorkerProcess:
    """One running worker for a staged submission."""

    def __init__(self, stage: Stage, limits: Limits, functions: list[str], use_bwrap: bool):
        self.stage, self.limits, self.use_bwrap = stage, limits, use_bwrap
        self.marker = uuid.uuid4().hex
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        in_jail = use_bwrap
        root = bubblewrap.SANDBOX_ROOT if in_jail else str(stage.root)
        site_dir = bubblewrap.SANDBOX_SITE if in_jail else str(bubblewrap.numpy_dirs()[0].parent)
        config = {
            "read_fd": request_read,
            "write_fd": reply_write,
            "paths": [f"{root}/runtime", site_dir, f"{root}/pkg"],
            "package": stage.package,
            "package_dir": f"{root}/pkg/{stage.package}/",
            "module": stage.module,
            "functions": functions,
            "forbidden": list(limits.forbidden),
            "memory_bytes": limits.memory_mb << 20,
            "file_bytes": limits.file_mb << 20,
        }
        python = os.path.realpath(sys.executable)
        argv = [python, "-I", "-S", "-u", "-B", f"{root}/runtime/worker.py", json.dumps(config)]
        if in_jail:
            argv = bubblewrap.command(stage.root, argv)
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            MARKER_VARIABLE: self.marker,
        }
        env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_CORETYPE")})
        logs = stage.root / "logs"
        with open(logs / "stdout", "ab") as stdout, open(logs / "stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=stage.root / "work",
                env=env,
                pass_fds=(request_read, reply_write),
                start_new_session=True,
            )
        os.close(request_read)
        os.close(reply_write)

    def request(self, header: dict, arrays: list[np.ndarray], timeout: float) -> Reply:
        """Send one request and wait at most `timeout` seconds for its reply."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            self._send(wire.encode(header, arrays), deadline)
            reply_header, reply_arrays = wire.receive(lambda size: self._read_exactly(size, deadline),
                                                      MAX_REPLY_BYTES)
        except TimeoutError:
            self.kill()
            return Reply("timeout", seconds=time.monotonic() - started,
                         message=f"no answer within {timeout:g} s")
        except (EOFError, BrokenPipeError):
            return Reply("crashed", seconds=time.monotonic() - started, message=self._death())
        except wire.WireError as error:
            self.kill()
            return Reply("protocol", seconds=time.monotonic() - started, message=str(error))
        status = reply_header.get("status")
        if status not in ("ok", "raised", "memory", "protocol"):
            self.kill()
            return Reply("protocol", message=f"unknown reply status {status!r}")
        return Reply(status, reply_header, reply_arrays, time.monotonic() - started,
                     str(reply_header.get("message", "")))

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [self._request_write], [], remaining)
            if writable:
                view = view[os.write(self._request_write, view[: 1 << 16]):]

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        chunks = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self._reply_read], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._reply_read, min(size, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _death(self) -> str:
        """Why the worker is gone, once it has exited."""
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the worker stopped answering"
        self.kill()
        if code < 0:
            return f"killed by {_signal_name(-code)}"
        if self.use_bwrap and code > 128:
            return f"killed by {_signal_name(code - 128)}"
        return f"exited with status {code}"

    def kill(self) -> None:
        """SIGKILL the worker, its process group and every process carrying its marker (once)."""
        if self._request_write == -1:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _kill_marked(self.marker)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._request_write, self._reply_read):
            try:
                os.close(fd)
            except OSError:
                pass
        self._request_write = self._reply_read = -1
