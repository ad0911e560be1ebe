"""What the machine, not the student, can do wrong.

A `MachineFailure` is raised wherever grading cannot go on for a reason the
submission did not cause: no free worker account, a sandbox that does not start
(namespace limits, a runtime copy gone missing, Landlock refusing its rules), a
full disk. Grading retries the submission; if the machine keeps failing, the
submission is *not graded* (no score) rather than charged for it.
"""
from __future__ import annotations


class MachineFailure(Exception):
    """The machine kept a submission from being graded; the message says why, for the staff."""
