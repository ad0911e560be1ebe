"""Canvas's gradebook import: a CSV Canvas takes back through Grades > Import.

Canvas reads the columns `Student, ID, SIS User ID, SIS Login ID, Section`, then one
column per assignment headed `<title> (<assignment id>)` (a title without an id makes
a new assignment), a `Points Possible` row, and one row per student, whom it matches
by `ID` (the Canvas user id) first. The user id comes from the bulk-download file
names (`<name>[_LATE]_<userid>_<attachmentid>_<file>`).

Given Canvas's own gradebook export, only the assignment's column changes (added
after `Section` when absent); every other column, row and cell is written back as
Canvas wrote it (the same encoding, byte-order mark and line ends), so the file goes
straight back. A student of the export without a submission keeps the cell as it
was: gradeconv invents no zero for work it never saw.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from gradeconv.reports.csv_report import cell
from gradeconv.reports.files import write_atomically
from gradeconv.results import is_graded

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "Points Possible"
BOM = "\ufeff"


class CanvasError(Exception):
    """A gradebook export that cannot be filled in; the message says why."""


@dataclass(frozen=True)
class Grade:
    """One student's grade for the assignment."""

    name: str
    user_id: str | None
    score: float | None  # None: not graded (the machine failed): an empty cell, never 0
    late: bool = False


@dataclass
class Report:
    """What filling in a gradebook did, for one line on stderr each."""

    filled: int = 0
    kept: list[str] = field(default_factory=list)  # students of the export without a submission
    unknown: list[str] = field(default_factory=list)  # submissions whose user id the export does not list
    without_id: list[str] = field(default_factory=list)  # submissions with no Canvas user id in their name
    duplicates: list[str] = field(default_factory=list)  # user ids with several submissions (best kept)


def number(value: float | None) -> str:
    """A score as Canvas shows points: up to two decimals, no exponent; empty for no score."""
    if value is None:
        return ""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def grades(results: list[dict], user_ids: dict[str, str | None],
           names: dict[str, str] | None = None) -> list[Grade]:
    """A Grade per graded submission; user_ids maps a submission's id to its Canvas user id, names to the
    student's name (the id without the `-2` that tells two files of one name apart)."""
    names = names or {}
    return [Grade(str(names.get(r["id"], r["id"])), user_ids.get(r["id"]),
                  float(r["score"]) if is_graded(r) else None, bool(r.get("late"))) for r in results]


def scaled(grade: Grade, max_score: float, points_possible: float | None) -> Grade:
    """The grade in the assignment's points: score / max_score * points_possible (as it is without those)."""
    if grade.score is None or not points_possible or max_score <= 0:
        return grade
    return Grade(grade.name, grade.user_id, grade.score * points_possible / max_score, grade.late)


def best_by_user(rows: list[Grade], report: Report) -> dict[str, Grade]:
    """One grade per Canvas user id: a student who uploaded several files keeps the best score."""
    best: dict[str, Grade] = {}
    for grade in rows:
        if grade.user_id is None:
            report.without_id.append(grade.name)
            continue
        if grade.user_id in best:
            if grade.user_id not in report.duplicates:
                report.duplicates.append(grade.user_id)
            if _rank(grade) <= _rank(best[grade.user_id]):
                continue
        best[grade.user_id] = grade
    return best


def _rank(grade: Grade) -> float:
    """Graded beats not graded; then the higher score."""
    return float("-inf") if grade.score is None else grade.score


def render(assignment: str, max_score: float, rows: list[Grade], report: Report | None = None,
           points_possible: float | None = None) -> str:
    """A new import file: the identity columns, the assignment, Points Possible, one row per student.

    points_possible: the assignment's points in Canvas; scores are scaled to it (default: the rubric's)."""
    report = report if report is not None else Report()
    rows = [scaled(grade, max_score, points_possible) for grade in rows]
    max_score = points_possible or max_score
    best = best_by_user(rows, report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*IDENTITY, cell(assignment)])
    writer.writerow([POINTS_POSSIBLE, "", "", "", "", number(max_score)])
    for grade in sorted(best.values(), key=lambda g: (g.name, g.user_id)):
        writer.writerow([cell(grade.name), grade.user_id, "", "", "", number(grade.score)])
    for grade in rows:  # no user id: Canvas can still match the name by hand on its import page
        if grade.user_id is None:
            writer.writerow([cell(grade.name), "", "", "", "", number(grade.score)])
    report.filled = len(best) + len(report.without_id)
    return buffer.getvalue()


def read_export(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as error:
        raise CanvasError(f"{path}: cannot read the gradebook export ({error.strerror})") from None
    except UnicodeDecodeError:
        raise CanvasError(f"{path}: not a UTF-8 CSV file (Canvas exports UTF-8)") from None


def fill(export: str, assignment: str, max_score: float, rows: list[Grade],
         source: str = "gradebook export", points_possible: float | None = None) -> tuple[str, Report]:
    """Canvas's export with the assignment's column filled in from rows, everything else unchanged.

    The assignment must be a column of the export (else a CanvasError listing them). Scores are scaled
    to points_possible, else to the export's Points Possible for the column, else left in rubric points."""
    bom = export.startswith(BOM)
    text = export[1:] if bom else export
    newline = "\r\n" if "\r\n" in text else "\n"
    table = list(csv.reader(io.StringIO(text, newline="")))
    if not table:
        raise CanvasError(f"{source}: empty file")
    header = table[0]
    names = [name.strip() for name in header]
    if "ID" not in names or "Student" not in names:
        raise CanvasError(f"{source}: not a Canvas gradebook export (no 'Student' and 'ID' columns in the "
                          f"first row); export it from Canvas: Grades > Export")
    id_column = names.index("ID")
    column = _assignment_column(names, assignment)
    if column is None:
        listed = assignment_columns(names)
        raise CanvasError(f"{source}: no column {assignment.strip()!r} in the gradebook export; its assignments: "
                          f"{', '.join(repr(name) for name in listed) if listed else '(none)'}. Give one of them as "
                          f"--assignment, or create the assignment in Canvas and export the gradebook again")
    points_possible = points_possible or _points_possible(table, column)
    rows = [scaled(grade, max_score, points_possible) for grade in rows]
    max_score = points_possible or max_score
    report = Report()
    best = best_by_user(rows, report)
    seen = set()
    for row in table[1:]:
        if not row:
            continue
        first = row[0].strip()
        if len(row) <= column:
            row.extend([""] * (column + 1 - len(row)))
        if first == POINTS_POSSIBLE:
            if not row[column].strip():
                row[column] = number(max_score)
            continue
        user_id = row[id_column].strip() if id_column < len(row) else ""
        if not user_id:  # Canvas's other header rows (e.g. posting policy): not a student
            continue
        grade = best.get(user_id)
        if grade is None:
            report.kept.append(row[0])
            continue
        row[column] = number(grade.score)
        seen.add(user_id)
        report.filled += 1
    report.unknown = sorted(grade.name for user_id, grade in best.items() if user_id not in seen)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerows(table)
    return (BOM if bom else "") + buffer.getvalue(), report


def _assignment_column(names: list[str], assignment: str) -> int | None:
    """The assignment's column: the same header, else the same Canvas id `(12345)` (a renamed title)."""
    wanted = assignment.strip()
    if wanted in names:
        return names.index(wanted)
    suffix = _id_suffix(wanted)
    if suffix:
        for index, name in enumerate(names):
            if _id_suffix(name) == suffix:
                return index
    return None


def assignment_columns(names: list[str]) -> list[str]:
    """The export's assignment columns: `<title> (<id>)` headers, else every non-identity column."""
    others = [name for name in names if name and name not in IDENTITY]
    return [name for name in others if _id_suffix(name)] or others


def _points_possible(table: list[list[str]], column: int) -> float | None:
    """The export's Points Possible for the column, if it gives a positive number."""
    for row in table[1:]:
        if row and row[0].strip() == POINTS_POSSIBLE and column < len(row):
            try:
                value = float(row[column].strip())
            except ValueError:
                return None
            return value if value > 0 and value == value and value != float("inf") else None
    return None


def _id_suffix(header: str) -> str | None:
    header = header.strip()
    if header.endswith(")") and "(" in header:
        inside = header[header.rindex("(") + 1:-1]
        if inside.isdigit():
            return inside
    return None


def write(path: Path, text: str) -> None:
    write_atomically(Path(path), text)


def summary(report: Report) -> list[str]:
    """Lines for stderr about what the file does not carry."""
    lines = []
    if report.without_id:
        lines.append(f"canvas: {len(report.without_id)} submission(s) without a Canvas user id in their file name "
                     f"(not a Canvas bulk download): {', '.join(report.without_id[:5])}")
    if report.duplicates:
        lines.append(f"canvas: several submissions for user id(s) {', '.join(report.duplicates[:5])}: "
                     "the best score is kept")
    if report.unknown:
        lines.append(f"canvas: {len(report.unknown)} submission(s) whose user id is not in the gradebook "
                     f"export, left out: {', '.join(report.unknown[:5])}")
    if report.kept:
        lines.append(f"canvas: {len(report.kept)} student(s) of the gradebook without a submission keep "
                     "their cell as it was")
    return lines
