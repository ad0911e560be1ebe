"""How the class reports group failures: by diagnosis, else by test and outcome.

A failure's message carries its numbers (largest error 0.0166 at index (0, 0, 1, 1)),
which differ from student to student for one and the same bug; grouping by them
would give every student a cluster of their own. So a failure with a diagnosis is
grouped by the diagnosis alone (whatever test or outcome showed it), and one without
by the test that failed and how: never by anything the message says.
"""
from __future__ import annotations


def cluster_key(test: dict) -> tuple[str, bool]:
    """(text, is a diagnosis): the diagnosis, else "<test name> (<outcome>)"."""
    extra = test.get("extra_data")
    extra = extra if isinstance(extra, dict) else {}
    if extra.get("diagnosis"):
        return str(extra["diagnosis"]), True
    return f"{test.get('name', '?')} ({extra.get('outcome') or 'failed'})", False
