"""One markdown feedback file per student, in words they can act on."""
from __future__ import annotations

import re
from pathlib import Path

from gradeconv.reports.files import write_atomically


def render(submission: dict) -> str:
    lines = [f"# Feedback for {submission['id']}", "",
             f"Score: {submission['score']:g} / {submission['max_score']:g}", ""]
    for test in submission["tests"]:
        mark = "PASS" if test["status"] == "passed" else "FAIL"
        lines.append(f"## [{mark}] {test['name']} ({test['score']:g}/{test['max_score']:g})")
        if test["status"] != "passed":
            lines += ["", "```", test["output"], "```"]
        lines.append("")
    if submission.get("output"):
        lines += ["## Notes", "", "```", submission["output"], "```", ""]
    return "\n".join(lines)


def write_all(folder: Path, submissions: list[dict]) -> None:
    for submission in submissions:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", submission["id"])
        write_atomically(Path(folder) / f"{safe}.md", render(submission))
