"""Terminal output: the gradebook table, the class summary and a student's check report.

Uses rich: colours and boxes on a terminal, plain text when piped.
"""
from __future__ import annotations

import statistics
from collections import Counter

from rich.console import Console
from rich.table import Table


def gradebook(console: Console, submissions: list[dict]) -> None:
    table = Table(title="Gradebook")
    table.add_column("id")
    table.add_column("late")
    table.add_column("score", justify="right")
    table.add_column("failed tests")
    for submission in submissions:
        failed = [test["name"] for test in submission["tests"] if test["status"] != "passed"]
        table.add_row(submission["id"], "late" if submission["late"] else "",
                      f"{submission['score']:g}/{submission['max_score']:g}",
                      "\n".join(failed) if failed else "-")
    console.print(table)


def class_summary(console: Console, submissions: list[dict]) -> None:
    if not submissions:
        console.print("No submissions found.")
        return
    scores = [s["score"] for s in submissions]
    top = submissions[0]["max_score"] or 1
    console.print(f"\n{len(scores)} submissions: mean {statistics.mean(scores):.1f}, median "
                  f"{statistics.median(scores):g}, min {min(scores):g}, max {max(scores):g} (of {top:g})")
    buckets = Counter(min(int(10 * score / top), 9) for score in scores)
    for bucket in range(10):
        low = bucket * top / 10
        count = buckets.get(bucket, 0)
        console.print(f"  {low:5.0f}-{low + top / 10:<5.0f} {'#' * count} {count if count else ''}")
    rates = Table(title="Pass rate per test")
    rates.add_column("test")
    rates.add_column("passed", justify="right")
    names = [test["name"] for test in submissions[0]["tests"]]
    for name in names:
        passed = sum(1 for s in submissions for t in s["tests"] if t["name"] == name and t["status"] == "passed")
        rates.add_row(name, f"{passed}/{len(submissions)}")
    console.print(rates)
    diagnoses = Counter()
    for submission in submissions:
        seen = {_headline(test) for test in submission["tests"] if test["status"] != "passed"}
        diagnoses.update(seen)
    if diagnoses:
        common = Table(title="Most common failures")
        common.add_column("students", justify="right")
        common.add_column("failure")
        for text, count in diagnoses.most_common(8):
            common.add_row(str(count), text)
        console.print(common)


def _headline(test: dict) -> str:
    extra = test.get("extra_data") or {}
    return f"{extra.get('outcome')}: {extra.get('diagnosis') or test['output'].splitlines()[0]}"[:160]


def check_report(console: Console, submission: dict) -> None:
    """What a student reads after `gradeconv check`."""
    for test in submission["tests"]:
        if test["status"] == "passed":
            console.print(f"[green]PASS[/green] {test['name']}")
        else:
            console.print(f"[red]FAIL[/red] {test['name']} [dim]({test['extra_data']['outcome']})[/dim]")
            for line in test["output"].splitlines():
                console.print(f"     {line}", markup=False, highlight=False)
    visible = sum(t["max_score"] for t in submission["tests"])
    score = sum(t["score"] for t in submission["tests"])
    console.print(f"\nvisible tests: {score:g}/{visible:g} points")
    if submission.get("output"):
        console.print(submission["output"], markup=False, highlight=False)
