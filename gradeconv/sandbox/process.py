"""Parent side of one worker process: start, call with a deadline, kill.

A worker is started lazily, reused across calls, and replaced after it
crashes, times out or sends a reply the parent cannot accept. Every write to it
is non-blocking under the call's deadline and every reply is bounded and
checked against its schema before anything in it is used.

Three ways to run it (``Isolation.mode``):
  bubblewrap  inside a bwrap jail; its processes are its PID namespace
  uid         as a dedicated unprivileged account (the grader is root, no
              namespaces); its processes are that uid's
  none        a plain child with the grader's rights; its processes are those
              still carrying its marker
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from gradeconv.sandbox import bubblewrap, landlock, reaper, replies, seccomp, wire
from gradeconv.sandbox.accounts import Account
from gradeconv.sandbox.failures import MachineFailure
from gradeconv.sandbox.runtime import Runtime
from gradeconv.sandbox.staging import Stage

MARKER_VARIABLE = "GRADECONV_WORKER"
#: bytes a reply may carry beyond its arrays' data: .npy headers and slack
REPLY_SLACK_BYTES = 64 << 10
START_SECONDS = 10.0
#: how long bwrap may take to reap its jail's first process and exit once that process is killed
JAIL_EXIT_SECONDS = 1.0
#: printed bytes a worker keeps per stream: this head and this tail, the rest cut behind a marker
#: (the worker's CappedLog); 2 x 1900 + marker fits the 2 x 2000 bytes the parent shows in full
OUTPUT_KEPT_BYTES = 1900


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's worker (all its processes together where stated)."""

    call_seconds: float = 5.0
    submission_seconds: float = 120.0
    memory_mb: int = 2048  # per process (address space) and all processes together (resident)
    file_mb: int = 64  # per written file, captured output included
    processes: int = 32  # processes and threads of the submission together
    scratch_mb: int = 256  # files in /tmp, /dev/shm and the work dir together
    forbidden: tuple[str, ...] = ("torch", "tensorflow", "jax")


@dataclass(frozen=True)
class Isolation:
    """How workers of one session are isolated: the mode and what it needs."""

    mode: str  # "bubblewrap", "uid" or "none"
    account: Account | None = None
    runtime: Runtime | None = None
    confined: bool = False  # uid mode: Landlock rules confine its workers' files (gradeconv/sandbox/landlock.py)


@dataclass(frozen=True)
class Reply:
    """What came back from one request to the worker, after validation.

    status is one of: ok, raised, memory, timeout, crashed, protocol, not_run.
    """

    status: str
    header: dict = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""
    #: crashed by SIGKILL that gradeconv did not send: the student's code, or the machine (the kernel's
    #: out-of-memory killer, another program); grading tells them apart by trying again
    unexplained: bool = False


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class WorkerProcess:
    """One running worker for a staged submission."""

    def __init__(self, stage: Stage, limits: Limits, isolation: Isolation):
        self.stage, self.limits, self.isolation = stage, limits, isolation
        self.marker = uuid.uuid4().hex
        self.kill_reason: str | None = None
        self.killed_unexplained = False  # died of a SIGKILL that gradeconv did not send
        self.jail_pid: int | None = None  # under bubblewrap: the jail's first process, seen from here
        self._closed = False
        self.group: reaper.Group | None = None  # known once the worker has started
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        os.set_blocking(self._request_write, False)
        jailed = isolation.mode == "bubblewrap"
        info_read, info_write = os.pipe() if jailed else (-1, -1)
        filter_read = _filter_pipe() if jailed and seccomp.supported() else -1
        passed = tuple(fd for fd in (request_read, reply_write, info_write, filter_read) if fd >= 0)
        rules = None
        self._stderr = stage.root / "logs" / "stderr"
        self._stderr_start = _size(self._stderr)
        try:
            rules = self._rules()
            argv, env, options = self._launch(request_read, reply_write, info_write, filter_read, rules)
            with open(stage.root / "logs" / "stdout", "ab") as stdout, open(self._stderr, "ab") as stderr:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=stage.root / "work",
                    env=env, pass_fds=passed, start_new_session=True, **options)
        except (OSError, subprocess.SubprocessError) as error:  # no student code has run: the machine's doing
            for fd in (info_read, self._request_write, self._reply_read):
                if fd >= 0:
                    os.close(fd)
            raise MachineFailure(f"the sandbox could not be started ({error})") from None
        finally:
            for fd in (*passed, *([rules] if rules is not None else [])):
                os.close(fd)
        self.group = self._group(info_read)
        self._await_ready()

    def _await_ready(self) -> None:
        """Wait for the worker's first message, sent before any student code runs; MachineFailure without it."""
        deadline = time.monotonic() + START_SECONDS
        try:
            header, arrays = wire.receive(lambda size: self._read_exactly(size, deadline), REPLY_SLACK_BYTES)
            replies.validate("start", header, len(arrays))
            return
        except TimeoutError:
            problem = f"no sign of life within {START_SECONDS:g} s"
        except (EOFError, OSError):
            problem = self._death()
        except (wire.WireError, replies.MalformedReply) as error:
            problem = f"its first message was not understood: {error}"
        said = _last_line(self._stderr, self._stderr_start)
        self.kill()
        raise MachineFailure(f"the sandbox did not start ({problem}{': ' + said if said else ''})")

    def _rules(self) -> int | None:
        """The Landlock ruleset of a confined uid-mode worker (else None); raises rather than start it unconfined."""
        if self.isolation.mode != "uid" or not self.isolation.confined:
            return None
        return landlock.worker_ruleset(self.isolation.runtime, self.stage.root)

    def _launch(self, request_read: int, reply_write: int, info_write: int, filter_read: int,
                rules: int | None) -> tuple[list[str], dict, dict]:
        """argv, environment and Popen options for this isolation mode."""
        mode, runtime = self.isolation.mode, self.isolation.runtime
        jailed = mode == "bubblewrap"
        root = bubblewrap.SANDBOX_ROOT if jailed else str(self.stage.root)
        if jailed:
            site_dir = bubblewrap.SANDBOX_SITE
        elif runtime is not None:
            site_dir = str(runtime.site)
        else:
            site_dir = str(bubblewrap.numpy_dirs()[0].parent)
        config = {
            "read_fd": request_read,
            "write_fd": reply_write,
            "paths": [f"{root}/runtime", site_dir, f"{root}/pkg"],
            "package": self.stage.package,
            "package_dir": f"{root}/pkg/{self.stage.package}/",
            "forbidden": list(self.limits.forbidden),
            "memory_bytes": self.limits.memory_mb << 20,
            "file_bytes": self.limits.file_mb << 20,
            "output_head": OUTPUT_KEPT_BYTES,
            "output_tail": OUTPUT_KEPT_BYTES,
        }
        python = str(runtime.python) if runtime is not None else os.path.realpath(sys.executable)
        argv = [python, "-I", "-S", "-u", "-B", f"{root}/runtime/worker.py", json.dumps(config)]
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "HOME": f"{root}/work",
            "TMPDIR": f"{root}/work",
            MARKER_VARIABLE: self.marker,
        }
        env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_CORETYPE")})
        if runtime is not None:
            env.update(runtime.env)
        account = self.isolation.account
        as_account = {} if account is None else {"user": account.uid, "group": account.gid, "extra_groups": []}
        if jailed:  # bwrap itself installs the seccomp filter, after building the jail
            jail = bubblewrap.command(self.stage.root, argv, info_write, self.limits.scratch_mb << 20, filter_read,
                                      runtime.root if runtime is not None else None)
            if account is not None:
                as_account["preexec_fn"] = _confine(self.limits.processes)
            return jail, env, as_account
        if mode == "uid":
            install = (seccomp.no_network_installer() if seccomp.supported()
                       else seccomp.no_new_privileges_installer())
            restrict = landlock.Restrictor(rules) if rules is not None else None
            return argv, env, {**as_account, "preexec_fn": _confine(self.limits.processes, install, restrict)}
        return argv, env, {}

    def _group(self, info_read: int) -> reaper.Group:
        """The processes of this worker, recognised by what the mode makes unforgeable."""
        if self.isolation.mode == "uid":
            return reaper.by_uid(self.isolation.account.uid)
        if self.isolation.mode == "bubblewrap":
            try:
                jail = bubblewrap.jail_of(info_read, time.monotonic() + START_SECONDS)
            finally:
                os.close(info_read)
            if jail is not None:
                self.jail_pid, inode = jail
                return reaper.by_namespace(inode, self.jail_pid)
            self.terminate("bubblewrap did not report its sandbox")
        return reaper.by_marker(MARKER_VARIABLE, self.marker)

    def request(self, header: dict, arrays: list[np.ndarray], timeout: float, max_reply_bytes: int) -> Reply:
        """Send one request and wait at most `timeout` seconds for a reply that fits its schema."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            self._send(wire.encode(header, arrays), deadline)
            reply_header, reply_arrays = wire.receive(lambda size: self._read_exactly(size, deadline),
                                                      max_reply_bytes)
            replies.validate(header["op"], reply_header, len(reply_arrays))
        except TimeoutError:
            self.terminate(None)
            return Reply("timeout", seconds=time.monotonic() - started,
                         message=f"no answer within {timeout:g} s")
        except (EOFError, BrokenPipeError, ConnectionResetError):
            death = self._death()
            return Reply("crashed", seconds=time.monotonic() - started, message=death,
                         unexplained=self.killed_unexplained)
        except (wire.WireError, replies.MalformedReply) as error:
            self.terminate(None)
            return Reply("protocol", seconds=time.monotonic() - started, message=str(error))
        seconds = time.monotonic() - started
        if reply_header["status"] == "protocol":
            self.terminate(None)
            return Reply("protocol", seconds=seconds, message=str(reply_header.get("message", "")))
        return Reply(reply_header["status"], reply_header, reply_arrays, seconds,
                     str(reply_header.get("message", "")))

    def _send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [self._request_write], [], remaining)
            if not writable:
                continue
            try:
                view = view[os.write(self._request_write, view[: 1 << 16]):]
            except BlockingIOError:  # less room than we offered: wait for more
                continue

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
            code = None
        self.terminate(None)
        if self.kill_reason:
            return self.kill_reason
        if code is None:
            return "the worker stopped answering"
        number = -code if code < 0 else (code - 128 if self.isolation.mode == "bubblewrap" and code > 128 else 0)
        if not number:
            return f"exited with status {code}"
        self.killed_unexplained = number == signal.SIGKILL
        return f"killed by {_signal_name(number)}"

    def terminate(self, reason: str | None) -> bool:
        """SIGKILL every process of the worker until none is left; safe from any thread.

        Returns False if some survived the kill's wait (the caller must not trust the stage).
        """
        if reason and not self.kill_reason:
            self.kill_reason = reason
        if self.jail_pid is not None and self.group is not None:
            # the jail's first process dies first, so that bwrap outside the jail reaps it and exits by itself:
            # killed together, that process is left to PID 1 as a zombie of the account, and where PID 1 never
            # reaps (gradeconv as a container's PID 1) 32 of them stop every later bwrap of the account (NPROC)
            self.group.kill_all()
            try:
                self.process.wait(timeout=JAIL_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass
        gone = self.group.kill_all() if self.group is not None else True
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            gone = False
        return gone

    def kill(self) -> bool:
        """Kill every process of the worker and close its pipes (once, from the owning thread)."""
        gone = self.terminate(None)
        if self.isolation.account is not None:  # what outlived its parent (the jail's first process...);
            reaper.reap_orphans(self.isolation.account.uid)  # here, in the thread that starts and waits its workers
        if not self._closed:
            self._closed = True
            for fd in (self._request_write, self._reply_read):
                os.close(fd)
        return gone


def _size(path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _last_line(path, start: int) -> str:
    """The last line written to a log past offset start (what bwrap said when it gave up), shortened."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _filter_pipe() -> int:
    """The read end of a pipe holding the seccomp program, for bwrap's --seccomp."""
    read, write = os.pipe()
    try:
        os.write(write, seccomp.program_bytes())  # far below a pipe's capacity
    finally:
        os.close(write)
    return read


def _confine(processes: int, install=None, restrict=None):
    """preexec_fn for a worker account: the kernel bounds its processes; then `restrict` (Landlock) and
    `install` (seccomp) run.

    bwrap started by an account gets no `install`: it installs the filter itself, after building the jail.
    """

    def confine() -> None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        if restrict is not None:
            restrict()
        if install is not None:
            install()

    return confine


def reply_budget(expected_bytes: int) -> int:
    """The most bytes a reply may carry when the correct answer holds expected_bytes."""
    return 16 * expected_bytes + REPLY_SLACK_BYTES

