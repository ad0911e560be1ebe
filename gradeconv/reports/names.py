"""Names of per-student files and anchors, made from the student's own id alone.

A name must not depend on who else is in the class: the same id always gives the
same name. Where cleaning an id for a file system or an HTML anchor loses
something (a space, a slash, upper case), a short hash of the full id is added,
so two ids that clean alike still get names of their own.
"""
from __future__ import annotations

import hashlib
import re


def _with_hash(clean: str, original: str) -> str:
    if clean == original:
        return clean
    return f"{clean}-{hashlib.sha256(original.encode('utf-8')).hexdigest()[:8]}"


def file_stem(student_id: str) -> str:
    """A file name (without extension) for this student: letters, digits, `.`, `_` and `-` only."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", student_id).lstrip(".") or "submission"
    return _with_hash(clean, student_id)


def anchor(student_id: str) -> str:
    """An HTML id for this student's section: student-<lower-case slug>."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", student_id.lower()).strip("-") or "submission"
    return "student-" + _with_hash(slug, student_id)
