"""The outcomes of a graded call, and the one-line message a student reads for each."""
from __future__ import annotations

from gradeconv.sandbox import Reply

PASSED = "passed"
WRONG_VALUE = "wrong_value"
WRONG_SHAPE = "wrong_shape"
WRONG_TYPE = "wrong_type"
NOT_IMPLEMENTED = "not_implemented"
ERROR = "error"
TIMEOUT = "timeout"
CRASHED = "crashed"
MEMORY = "memory"
MUTATED_INPUT = "mutated_input"
FORBIDDEN = "forbidden"
NOT_RUN = "not_run"

ALL = (PASSED, WRONG_VALUE, WRONG_SHAPE, WRONG_TYPE, NOT_IMPLEMENTED, ERROR, TIMEOUT,
       CRASHED, MEMORY, MUTATED_INPUT, FORBIDDEN, NOT_RUN)
#: Outcomes after which a test stops trying further cases: each one costs a restart.
FATAL = frozenset({TIMEOUT, CRASHED, MEMORY, FORBIDDEN, NOT_RUN})


def failed_reply(reply: Reply, during: str, forbidden: tuple[str, ...]) -> tuple[str, str]:
    """(outcome, message) for a reply that is not a normal return; `during` says what ran."""
    if reply.status == "timeout":
        return TIMEOUT, f"{during} did not finish in time ({reply.message}): an infinite loop?"
    if reply.status == "crashed":
        return CRASHED, f"the process died during {during} ({reply.message})"
    if reply.status == "memory":
        return MEMORY, f"{during} ran out of memory (MemoryError under the rubric's memory limit)"
    if reply.status == "not_run":
        return NOT_RUN, reply.message
    if reply.status == "protocol":
        return ERROR, f"{during} broke the grader's connection ({one_line(reply.message)})"
    return raised(reply.header, during, forbidden)


MAX_QUOTED_CHARS = 500
#: characters str.splitlines() breaks at beyond the control characters: a line break is a line break
LINE_BREAKS = frozenset("\u2028\u2029")


def one_line(text: str) -> str:
    """Student text on one line, control characters escaped, so it cannot pose as the grader's lines."""
    escaped = "".join(
        {"\n": "\\n", "\r": "\\r", "\t": " "}.get(char, char) if char in "\n\r\t"
        else (f"\\x{ord(char):02x}" if ord(char) < 32 or 127 <= ord(char) < 160
              else (f"\\u{ord(char):04x}" if char in LINE_BREAKS else char))
        for char in text)
    return escaped if len(escaped) <= MAX_QUOTED_CHARS else escaped[:MAX_QUOTED_CHARS] + "..."


#: what the worker's stand-in modules raise when student code really uses a module it imported
#: that the rubric forbids or the sandbox does not provide (gradeconv/sandbox/worker.py StandIn)
STAND_IN_USED = ("ForbiddenModuleUsed", "UnavailableModuleUsed")


def raised(header: dict, during: str, forbidden: tuple[str, ...]) -> tuple[str, str]:
    """(outcome, message) of an exception the worker reports: never better than a failure."""
    kind, message = header.get("type", "Exception"), one_line(str(header.get("message", "")))
    where = header.get("where")
    at = f" at {where}" if where else ""
    if kind in ("SyntaxError", "IndentationError", "TabError"):
        return ERROR, f"{kind} in {where or 'your file'}: {message}"
    if kind in STAND_IN_USED:  # a claim like any other: at best it names a failure
        module = header.get("module") or "?"
        used_at = f" ({where})" if where else ""
        if module.partition(".")[0] in forbidden:
            return FORBIDDEN, f"uses {module}, which this assignment forbids: use numpy only{used_at}"
        return ERROR, f"uses {module}, which the grader does not provide{used_at}"
    if kind in ("ImportError", "ModuleNotFoundError"):
        module = header.get("module") or "?"
        if module.partition(".")[0] in forbidden:
            return FORBIDDEN, f"imports {module}, which this assignment forbids: use numpy only"
        return ERROR, f"cannot import {module!r}{at}: {message}"
    if kind == "NotImplementedError":
        return NOT_IMPLEMENTED, f"raises NotImplementedError{at}"
    if kind == "SystemExit":
        return ERROR, f"called sys.exit({message}){at} during {during}"
    if kind == "KeyboardInterrupt":
        return ERROR, f"raised KeyboardInterrupt{at} during {during}"
    if kind == "RecursionError":
        return ERROR, f"infinite recursion{at} during {during}"
    return ERROR, f"{kind}{at}: {message}"
