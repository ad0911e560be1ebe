"""The trust boundary: everything that runs or talks to student code.

``worker`` and ``wire`` are the only modules that run inside the student's
process; the rest is the parent's side.
"""
from gradeconv.sandbox.process import Limits, Reply
from gradeconv.sandbox.session import Handle, SandboxReport, Session, Writable
from gradeconv.sandbox.staging import Stage, stage_module, stage_package

__all__ = ["Handle", "Limits", "Reply", "SandboxReport", "Session", "Stage", "Writable", "stage_module", "stage_package"]
