"""Grading many submissions on a few local processes, keeping every finished grade.

With jobs == 1 every submission is graded in this process. Otherwise each pool
process grades one submission at a time and sends its row back over its own pipe,
so the grader always knows which submission a process was grading:
- if the process dies (the submission's code killed it), that submission is graded
  once more in a fresh process, and gets a score-0 row if that one dies too;
- if it has not finished within a wall-clock bound, its process is stopped and the
  submission gets a score-0 row.
No other submission is affected, and every submission yields exactly one row.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Callable, Iterator

from gradeconv.judging.grading import grade_submission, not_graded
from gradeconv.rubric import Rubric
from gradeconv.submissions import Submission

ATTEMPTS = 2  # times a submission's grading process may die before it gets a crash row
STOP_GRACE_SECONDS = 5.0  # a stopped process may clean up its sandbox this long before SIGKILL

GradeFunction = Callable[[Submission, Rubric], dict]


def failure_row(submission: Submission, rubric: Rubric, output: str) -> dict:
    """The score-0 row of a submission whose code broke the process grading it, saying why in `output`."""
    return {"id": submission.id, "late": submission.late, "path": str(submission.path), "graded": True,
            "score": 0.0, "max_score": rubric.max_score, "execution_time": 0.0, "output": output,
            "machine_failure": None, "tests": []}


def not_graded_row(submission: Submission, rubric: Rubric, reason: str) -> dict:
    """The row of a submission the grader or its machine failed: no score, and why (regraded by --resume)."""
    return not_graded(submission, rubric, [reason], time.monotonic()).to_json()


def safe_grade(submission: Submission, rubric: Rubric) -> dict:
    """A submission's JSON result; a failure of the grader itself is not graded, not a lost batch or a 0."""
    try:
        return grade_submission(submission, rubric).to_json()
    except Exception as error:  # an internal error must not cost the rest of the class
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        return not_graded_row(submission, rubric, f"gradeconv failed while grading this submission ({detail}); "
                                                  "please report it")


def hang_bound(rubric: Rubric) -> float:
    """Wall-clock seconds one submission may take in a pool process: twice its student-code budget plus a minute."""
    return rubric.limits.submission_seconds * 2 + 60


def grade_all(submissions: list[Submission], rubric: Rubric, jobs: int, grade: GradeFunction = safe_grade,
              hang_seconds: float | None = None) -> Iterator[dict]:
    """One row per submission, in completion order; jobs == 1 grades in this process.

    `grade` must be a picklable top-level function (it runs in the pool processes);
    `hang_seconds` (default: hang_bound(rubric)) bounds one submission's wall clock
    in a pool process, counted from when it is handed to that process. Pool
    processes are spawned, so a script calling this with jobs > 1 needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    if jobs <= 1:
        for submission in submissions:
            yield grade(submission, rubric)
        return
    pool = Pool(min(jobs, len(submissions)), rubric, grade,
                hang_bound(rubric) if hang_seconds is None else hang_seconds)
    try:
        yield from pool.run(submissions)
    finally:
        pool.close()


@dataclass
class Slot:
    """One pool process, its end of the pipe, and the submission it is grading (None: idle)."""

    process: BaseProcess
    connection: Connection
    submission: Submission | None = None
    deadline: float = 0.0


class Pool:
    """Up to `size` processes, each grading one submission at a time."""

    def __init__(self, size: int, rubric: Rubric, grade: GradeFunction, hang_seconds: float):
        self.size, self.rubric, self.grade, self.hang_seconds = size, rubric, grade, hang_seconds
        self.context = multiprocessing.get_context("spawn")  # no fork of a parent with threads (rich)
        self.slots: list[Slot] = []
        self.deaths: dict[Submission, int] = {}  # times each submission's grading process died

    def run(self, submissions: list[Submission]) -> Iterator[dict]:
        """Rows as they finish, until every submission has exactly one."""
        queue = deque(submissions)
        while queue or self.busy():
            self.hand_out(queue)
            self.wait_for_news()
            for slot in self.busy():
                row = self.collect(slot, queue)
                if row is not None:
                    yield row

    def busy(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.submission is not None]

    def hand_out(self, queue: deque[Submission]) -> None:
        """Give queued submissions to idle processes, starting processes up to the pool's size."""
        for slot in [s for s in self.slots if s.submission is None and not s.process.is_alive()]:
            self.discard(slot)  # died while idle: nobody's fault, just replace it
        idle = [slot for slot in self.slots if slot.submission is None]
        while queue and (idle or len(self.slots) < self.size):
            slot = idle.pop() if idle else self.start()
            slot.submission = queue.popleft()
            slot.deadline = time.monotonic() + self.hang_seconds
            try:
                slot.connection.send(slot.submission)
            except OSError:
                pass  # the process is dead: collect() sees that and counts it

    def start(self) -> Slot:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=serve, args=(theirs, self.rubric, self.grade), daemon=True,
                                       name="gradeconv-grader")
        process.start()
        theirs.close()
        slot = Slot(process, ours)
        self.slots.append(slot)
        return slot

    def wait_for_news(self) -> None:
        """Until a busy process answers or exits, or the nearest deadline passes."""
        busy = self.busy()
        timeout = max(0.0, min(slot.deadline for slot in busy) - time.monotonic())
        wait([slot.connection for slot in busy] + [slot.process.sentinel for slot in busy], timeout)

    def collect(self, slot: Slot, queue: deque[Submission]) -> dict | None:
        """The slot's row if it has one; a crash or hang row, or a retry, if its process died or hung."""
        submission = slot.submission
        if slot.connection.poll():
            try:
                row = slot.connection.recv()
                slot.submission = None
                return row
            except Exception:  # EOF or a broken reply: the process died while answering
                pass
        elif slot.process.is_alive():
            if time.monotonic() < slot.deadline:
                return None
            self.discard(slot)  # the watchdog bounds student code well below this: the grader is stuck
            return not_graded_row(submission, self.rubric,
                                  f"grading this submission did not finish within {self.hang_seconds:g} s; "
                                  "its grading process was stopped")
        return self.died(slot, queue)

    def died(self, slot: Slot, queue: deque[Submission]) -> dict | None:
        """Retry the submission of a dead process once; its second death gives a crash row."""
        submission = slot.submission
        self.discard(slot)
        how = exit_description(slot.process)
        self.deaths[submission] = self.deaths.get(submission, 0) + 1
        if self.deaths[submission] < ATTEMPTS:
            queue.appendleft(submission)
            return None
        return failure_row(submission, self.rubric,
                           f"grading this submission crashed the grader's process twice (last: {how}); "
                           "no test was scored. Code that kills or corrupts the process grading it gets no points")

    def discard(self, slot: Slot) -> None:
        """Stop a slot's process (if still running) and forget the slot."""
        self.slots.remove(slot)
        slot.connection.close()
        stop([slot.process])

    def close(self) -> None:
        """Stop every process at once, busy or idle."""
        for slot in self.slots:
            slot.connection.close()
        stop([slot.process for slot in self.slots])
        self.slots = []


def serve(connection: Connection, rubric: Rubric, grade: GradeFunction) -> None:
    """A pool process: grade each submission received and send back its row, until the pipe closes."""
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        while True:
            submission = connection.recv()
            connection.send(grade(submission, rubric))
    except (EOFError, OSError, KeyboardInterrupt, SystemExit):
        return


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM unwinds grading, so the submission's sandbox is closed before the process ends."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt that cleanup
    raise SystemExit(1)


def stop(processes: list[BaseProcess]) -> None:
    """End pool processes: SIGTERM, then SIGKILL (with all they started) for any left after a grace period."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            below = descendants(process.pid)
            process.kill()
            for pid in below:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        process.join()


def descendants(pid: int) -> list[int]:
    """The processes below pid (children, grandchildren, ...), from /proc; [] where there is none."""
    parents: dict[int, int] = {}
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parents[int(entry)] = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def exit_description(process: BaseProcess) -> str:
    """How a pool process ended, in words."""
    code = process.exitcode
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"
