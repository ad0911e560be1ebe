"""The similarity report: flagged pairs as JSON, CSV, an HTML section or page, and a terminal table.

JSON: a list of {"a", "b", "function", "similarity"}, most similar first; `function` is
null for a whole-file match. CSV: the same columns, every cell safe from spreadsheet
formulas. HTML: a table of the flagged pairs, then each pair's matching functions side by
side with the lines holding shared fingerprints highlighted; everything taken from a
submission (ids, paths, source) is escaped.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gradeconv.reports.csv_report import cell
from gradeconv.reports.files import write_atomically, write_json
from gradeconv.reports.html_report import document, esc
from gradeconv.similarity import Match, Report, shared_lines

#: pairs shown side by side in HTML (the table and the JSON list them all)
MAX_PAIRS_SHOWN = 100
#: rows of the HTML table of pairs
MAX_TABLE_ROWS = 2000
#: functions shown side by side per pair
MAX_FUNCTIONS_SHOWN = 8


def to_json(report: Report) -> list[dict]:
    return [match.to_json() for match in report.matches]


def write_json_file(path: Path, report: Report) -> None:
    write_json(path, to_json(report))


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["a", "b", "function", "similarity"])
    for match in report.matches:
        writer.writerow([cell(match.a), cell(match.b), cell(match.function or ""), f"{match.similarity:.3f}"])
    return buffer.getvalue()


def write_csv(path: Path, report: Report) -> None:
    write_atomically(path, render_csv(report))


def pairs(report: Report) -> list[tuple[tuple[str, str], list[Match]]]:
    """The flagged pairs, most similar first, each with its matches (the whole file first)."""
    grouped: dict[tuple[str, str], list[Match]] = defaultdict(list)
    for match in report.matches:
        grouped[(match.a, match.b)].append(match)
    for matches in grouped.values():
        matches.sort(key=lambda m: (m.function is not None, -m.similarity, m.function or ""))
    return sorted(grouped.items(), key=lambda item: (-max(m.similarity for m in item[1]), item[0]))


def summary(report: Report) -> str:
    flagged = pairs(report)
    threshold = report.settings.threshold
    text = (f"{report.compared} submissions compared; {len(flagged)} pairs at or above similarity "
            f"{threshold:g} ({len(report.matches)} whole-file and function matches)")
    if report.not_compared:
        text += f"; {len(report.not_compared)} not compared"
    return text


def html_section(report: Report) -> str:
    """The `<section>` of the class report (and of the similarity page)."""
    flagged = pairs(report)
    parts = ['<section id="similarity">', '<h2>Similarity</h2>', f"<p>{esc(summary(report))}. "
             "Similarity is the share of fingerprints two sides have in common (1: the same code up to "
             "renaming, layout, comments and statement order). Functions too short to tell copying from the "
             "obvious solution are not compared alone. A flagged pair is a reason to look, not a verdict.</p>"]
    if report.not_compared:
        parts.append("<p>Not compared:</p><ul>" + "".join(
            f"<li>{esc(side.id)}: {esc(side.problem)}</li>" for side in report.not_compared) + "</ul>")
    if not flagged:
        parts += ["<p>No pairs flagged.</p>", "</section>"]
        return "\n".join(parts)
    parts.append('<table id="similarity-table" class="sortable"><thead><tr>'
                 '<th><button type="button">a</button></th><th><button type="button">b</button></th>'
                 '<th class="number" data-type="number"><button type="button">whole file</button></th>'
                 '<th class="number" data-type="number"><button type="button">highest</button></th>'
                 '<th><button type="button">functions</button></th></tr></thead><tbody>')
    for number, ((a, b), matches) in enumerate(flagged[:MAX_TABLE_ROWS]):
        whole = next((m.similarity for m in matches if m.function is None), None)
        top = max(m.similarity for m in matches)
        functions = [m for m in matches if m.function is not None]
        label = "<br>".join(f"{esc(m.function)} {m.similarity:.2f}" for m in functions) or "-"
        first = f'<a href="#similar-{number}">{esc(a)}</a>' if number < MAX_PAIRS_SHOWN else esc(a)
        parts.append(f'<tr><td data-sort="{esc(a)}">{first}</td><td data-sort="{esc(b)}">{esc(b)}</td>'
                     f'<td class="number" data-sort="{whole if whole is not None else -1}">'
                     f'{"-" if whole is None else f"{whole:.2f}"}</td>'
                     f'<td class="number" data-sort="{top}">{top:.2f}</td>'
                     f'<td data-sort="{esc(", ".join(m.function for m in functions))}">{label}</td></tr>')
    parts.append("</tbody></table>")
    if len(flagged) > MAX_TABLE_ROWS:
        parts.append(f"<p>{len(flagged) - MAX_TABLE_ROWS} more pairs: see the JSON or CSV output.</p>")
    for number, ((a, b), matches) in enumerate(flagged[:MAX_PAIRS_SHOWN]):
        parts.append(_pair(report, number, a, b, matches))
    if len(flagged) > MAX_PAIRS_SHOWN:
        parts.append(f"<p>Side by side: the first {MAX_PAIRS_SHOWN} pairs.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _pair(report: Report, number: int, a: str, b: str, matches: list[Match]) -> str:
    names = [m.function for m in matches if m.function is not None]
    whole = next((m for m in matches if m.function is None), None)
    if whole is not None:  # the whole file: every function both sides share fingerprints in
        names += sorted(name for name in report.sides[a].functions
                        if name not in names and any(shared_lines(report, a, b, name)))
    parts = [f'<details class="pair" id="similar-{number}"{" open" if number < 3 else ""}>',
             f"<summary>{esc(a)} and {esc(b)}: "
             + esc(", ".join(f"{m.function or 'whole file'} {m.similarity:.2f}" for m in matches)) + "</summary>"]
    for name in names[:MAX_FUNCTIONS_SHOWN]:
        lines_a, lines_b = shared_lines(report, a, b, name)
        parts += [f"<h4>{esc(name)}</h4>", '<div class="side-by-side">',
                  _source(report, a, name, lines_a), _source(report, b, name, lines_b), "</div>"]
    if len(names) > MAX_FUNCTIONS_SHOWN:
        parts.append(f"<p>and {len(names) - MAX_FUNCTIONS_SHOWN} more functions</p>")
    parts.append("</details>")
    return "\n".join(parts)


def _source(report: Report, side_id: str, name: str, highlighted: set[int]) -> str:
    """One side's function, numbered, its shared lines marked; every character escaped."""
    function = report.sides[side_id].functions[name]
    rows = []
    for offset, text in enumerate(function.source.splitlines()):
        number = function.first_line + offset
        line = f"{number:4d}  {esc(text)}"
        rows.append(f"<mark>{line}</mark>" if number in highlighted else line)
    return f'<div><p><strong>{esc(side_id)}</strong></p><pre>' + "\n".join(rows) + "</pre></div>"


def render_html(report: Report, title: str = "gradeconv similarity report") -> str:
    return document(title, [f"<h1>{esc(title)}</h1>", html_section(report)])


def write_html(path: Path, report: Report) -> None:
    write_atomically(path, render_html(report))


def terminal(console: Console, report: Report, shown: int = 20) -> None:
    """The most similar pairs as a table, then the summary line."""
    flagged = pairs(report)
    if flagged:
        table = Table("a", "b", "whole file", "functions")
        for (a, b), matches in flagged[:shown]:
            whole = next((f"{m.similarity:.2f}" for m in matches if m.function is None), "-")
            names = [f"{m.function} {m.similarity:.2f}" for m in matches if m.function]
            functions = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
            table.add_row(Text(a), Text(b), whole, Text(functions or "-"))
        console.print(table)
        if len(flagged) > shown:
            console.print(f"... and {len(flagged) - shown} more pairs (see --json or --csv)")
    console.print(summary(report), highlight=False, markup=False)
    for side in report.not_compared:
        console.print(f"not compared: {side.id}: {side.problem}", highlight=False, markup=False)
