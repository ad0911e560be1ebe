"""Terminal output: the gradebook table, the class summary and a student's check report.

Uses rich: colours and boxes on a terminal, plain text when piped. Every text printed
here (ids from file names, test names, output, diagnoses, what a submission printed,
rubric paths, titles, even the grader's own numbers) goes through plain(): a
rich.text.Text, never parsed as markup or emoji codes, with control characters shown
as escapes. So square brackets stay as they are ("slicing `[pad:-pad]`"), and a
submission cannot restyle or overwrite the grader's own lines. Never pass an f-string
to console.print or a Table title/cell as a str: rich would read `[...]` as markup.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gradeconv.reports.clusters import cluster_key
from gradeconv.judging.reproduce import HEADING
from gradeconv.results import is_graded

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: object) -> Text:
    """Text shown literally: no markup, no highlighting, control characters (ESC...) as \\x1b."""
    return Text(CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text)))


def gradebook(console: Console, submissions: list[dict]) -> None:
    table = Table(title=plain("Gradebook"))
    table.add_column("id")
    table.add_column("late")
    table.add_column("score", justify="right")
    table.add_column("failed tests")
    for submission in submissions:
        if not is_graded(submission):
            table.add_row(plain(submission["id"]), plain("late" if submission["late"] else ""),
                          plain("not graded"), plain(f"the machine failed: {submission.get('machine_failure')}"))
            continue
        failed = [test["name"] for test in submission["tests"] if test["status"] != "passed"]
        if submission.get("problem"):  # one problem of the file: once, not one failed test per row
            failed = [str(submission["problem"]).splitlines()[0]]
        table.add_row(plain(submission["id"]), plain("late" if submission["late"] else ""),
                      plain(f"{submission['score']:g}/{submission['max_score']:g}"),
                      plain("\n".join(failed) if failed else "-"))
    console.print(table)


def not_graded_line(submissions: list[dict]) -> str | None:
    """The line saying how many submissions the machine kept from being graded, if any."""
    count = sum(not is_graded(s) for s in submissions)
    if not count:
        return None
    return (f"{count} submission(s) not graded: the machine failed, not the students (reasons in the table "
            "and the --json file). Fix the machine and run again with --resume to grade them.")


def class_summary(console: Console, submissions: list[dict]) -> None:
    if not submissions:
        console.print(plain("No submissions found."))
        return
    submissions = [s for s in submissions if is_graded(s)]  # no score: in no statistic
    if not submissions:
        console.print(plain("No graded submissions."))
        return
    scores = [s["score"] for s in submissions]
    top = submissions[0]["max_score"] or 1
    console.print(plain(f"\n{len(scores)} submissions: mean {statistics.mean(scores):.1f}, median "
                        f"{statistics.median(scores):g}, min {min(scores):g}, max {max(scores):g} (of {top:g})"))
    buckets = Counter(min(int(10 * score / top), 9) for score in scores)
    for bucket in range(10):
        low = bucket * top / 10
        count = buckets.get(bucket, 0)
        console.print(plain(f"  {low:5.0f}-{low + top / 10:<5.0f} {'#' * count} {count if count else ''}"))
    rates = Table(title=plain("Pass rate per test"))
    rates.add_column("test")
    rates.add_column("passed", justify="right")
    names = list(dict.fromkeys(test["name"] for s in submissions for test in s["tests"]))  # a crash row has none
    for name in names:
        passed = sum(1 for s in submissions for t in s["tests"] if t["name"] == name and t["status"] == "passed")
        rates.add_row(plain(name), plain(f"{passed}/{len(submissions)}"))
    console.print(rates)
    diagnoses = Counter()
    for submission in submissions:  # by diagnosis, else by test and outcome: never by a message's numbers
        diagnoses.update({cluster_key(test) for test in submission["tests"] if test["status"] != "passed"})
    if diagnoses:
        common = Table(title=plain("Most common failures"))
        common.add_column("students", justify="right")
        common.add_column("failure")
        ranked = sorted(diagnoses.items(), key=lambda item: (-item[1], not item[0][1], item[0][0]))
        for (text, diagnosed), count in ranked[:8]:
            common.add_row(plain(count), plain(text if diagnosed else f"no diagnosis: {text}"))
        console.print(common)


def check_report(console: Console, submission: dict, hidden_points: float = 0.0, brief: bool = False) -> None:
    """What a student reads after `gradeconv check`: sized for a person, never hard-wrapped.

    A submission-level problem (a syntax error, the wrong file) is said once. Each failing
    function gets one reproduction, its smallest (the shortest snippet); its other failing
    tests get their first line. brief: one line per failing test, then the points.
    """
    say = _unwrapped(console)
    if not is_graded(submission):
        say(plain(f"{submission['output']}\n(the machine's problem: {submission.get('machine_failure')})"))
        return
    if submission.get("problem"):
        say(plain(f"{submission['path']}: {submission['problem']}"))
        return
    failing = [test for test in submission["tests"] if test["status"] != "passed"]
    shown = _smallest_reproductions(failing)
    for test in submission["tests"]:
        if test["status"] == "passed":
            if not brief:
                say(Text("PASS ", style="green") + plain(test["name"]))
            continue
        outcome = plain(f" ({test['extra_data']['outcome']})")
        outcome.stylize("dim")
        lines = _failure_lines(test)
        if brief:
            say(Text("FAIL ", style="red") + plain(test["name"]) + outcome
                + plain(f": {lines[0]}" if lines else ""))
            continue
        say(Text("FAIL ", style="red") + plain(test["name"]) + outcome)
        function = test["extra_data"].get("function")
        if function in shown and shown[function] is not test:
            for line in lines[:1]:
                say(plain(f"     {line}"))
            say(plain(f"     (same function: see the reproduction under {shown[function]['name']!r})"))
            continue
        for line in lines:
            say(plain(f"     {line}"))
        reproduction = test["extra_data"].get("reproduce")
        if reproduction:  # flush left, so it pastes as it is
            say(plain(f"     {HEADING}"))
            say(plain(reproduction.rstrip("\n")))
    say(plain(""))
    say(plain(points_line(submission, hidden_points)))
    if submission.get("output") and not brief:
        say(plain(submission["output"]))


def _unwrapped(console: Console):
    """console.print that never hard-wraps a line, whatever the width (a pipe, COLUMNS=40)."""
    def say(text: Text) -> None:
        console.print(text, soft_wrap=True)
    return say


def _failure_lines(test: dict) -> list[str]:
    """A failing test's explanation without its reproduction."""
    text = str(test.get("output", ""))
    return text.split(f"\n{HEADING}\n")[0].splitlines()


def _smallest_reproductions(failing: list[dict]) -> dict[str, dict]:
    """{function: its failing test with the shortest reproduction}: the one a student reads in full."""
    chosen: dict[str, dict] = {}
    for test in failing:
        extra = test.get("extra_data") or {}
        snippet = extra.get("reproduce")
        function = extra.get("function")
        if not snippet or not function:
            continue
        best = chosen.get(function)
        if best is None or len(snippet) < len(best["extra_data"]["reproduce"]):
            chosen[function] = test
    return chosen


def points_line(submission: dict, hidden_points: float = 0.0) -> str:
    """`visible tests: 80/80 points`, naming the hidden tests' points `check` cannot show."""
    visible = sum(t["max_score"] for t in submission["tests"])
    score = sum(t["score"] for t in submission["tests"])
    line = f"visible tests: {score:g}/{visible:g} points"
    if hidden_points > 0:
        line += f"; {hidden_points:g} more points in hidden tests are graded by your instructor"
    return line


def rubric_list(console: Console, listed: list) -> None:
    """The bundled rubrics: name, graded file, tests, points and what each covers."""
    table = Table(title=plain("Bundled rubrics (use with --rubric NAME)"))
    for column in ("name", "file", "tests", "points", "functions"):
        table.add_column(column, justify="right" if column in ("tests", "points") else "left")
    for name, rubric in listed:
        table.add_row(plain(name), plain(", ".join(rubric.modules)), plain(len(rubric.tests)),
                      plain(f"{rubric.max_score:g}"), plain(", ".join(rubric.functions)))
    console.print(table)


def rubric_tests(console: Console, rubric) -> None:
    """One rubric's tests: name, function, points, visibility, examples."""
    table = Table(title=plain(f"{rubric.path}: {len(rubric.tests)} tests, {rubric.max_score:g} points"))
    for column in ("#", "test", "function", "points", "visibility", "examples"):
        table.add_column(column, justify="right" if column in ("#", "points", "examples") else "left")
    for number, test in enumerate(rubric.tests, 1):
        table.add_row(plain(number), plain(test.name), plain(test.function), plain(f"{test.points:g}"),
                      plain(test.visibility), plain(test.examples + len(test.cases)))
    console.print(table)
