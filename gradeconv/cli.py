"""Command-line interface: grade a class, check one file, or run inside Gradescope."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gradeconv import __version__, batch, output_paths, similarity
from gradeconv import rubric as rubrics
from gradeconv.judging.grading import grade_submission, protect_class
from gradeconv.notebook import submission_problem
from gradeconv.platforms import canvas, gradescope_zip, prairielearn
from gradeconv.reports import csv_report, feedback, gradescope, html_report, json_report, similarity_report, terminal
from gradeconv.results import is_graded
from gradeconv.sandbox.session import SandboxUnavailable
from gradeconv.submissions import Submission, SubmissionError, canvas_user_id, find_submissions, parse_name

COMMANDS = ("grade", "check", "gradescope", "gradescope-zip", "prairielearn", "rubrics", "similarity")
USAGE_ERROR = 2
NOT_GRADED = 3  # some submission was not graded: the machine failed (regrade with --resume)


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradeconv",
        description="Grade student CS231n numpy layers. `gradeconv PATH...` is `gradeconv grade PATH...`.")
    parser.add_argument("--version", action="version", version=f"gradeconv {__version__}")
    commands = parser.add_subparsers(dest="command")

    grade = commands.add_parser("grade", help="grade every submission found (instructors)")
    grade.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                       help="a submission (.py, folder, .zip) or a folder of them")
    _rubric_option(grade)
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: cores)")
    grade.add_argument("--dask", metavar="ADDRESS",
                       help="grade on a Dask cluster: its scheduler (tcp://host:8786), or local:N to start "
                            "N local worker processes (--jobs is then ignored)")
    grade.add_argument("--json", type=Path, help="write machine-readable results here (kept current as grading goes)")
    grade.add_argument("--csv", type=Path, help="write a CSV gradebook here")
    grade.add_argument("--html", type=Path, metavar="FILE",
                       help="write a self-contained HTML class report here")
    grade.add_argument("--title", metavar="TEXT",
                       help="the course and assignment, heading the --html report (default: the rubric's title:)")
    grade.add_argument("--feedback-dir", type=Path, help="write one markdown feedback file per student here")
    grade.add_argument("--canvas-csv", type=Path, metavar="FILE",
                       help="write a CSV for Canvas's gradebook import here (needs --assignment)")
    grade.add_argument("--assignment", metavar="TITLE",
                       help='the Canvas assignment column, e.g. "Conv layers (12345)"')
    grade.add_argument("--points-possible", type=float, metavar="POINTS",
                       help="the Canvas assignment's points: scores are scaled to it (default: the export's "
                            "Points Possible, else the rubric's points)")
    grade.add_argument("--canvas-gradebook", type=Path, metavar="EXPORT_CSV",
                       help="Canvas's gradebook export: --canvas-csv is this file with the assignment filled in")
    grade.add_argument("--resume", action="store_true", help="skip submissions already in the --json file")
    grade.add_argument("--similarity", action="store_true",
                       help="also compare the submissions for copying (a section of --html; see `similarity`)")
    grade.add_argument("--quiet", action="store_true", help="print nothing but errors")

    check = commands.add_parser("check", help="check your own file (students): visible tests only")
    check.add_argument("path", type=Path, metavar="FILE_OR_DIR")
    _rubric_option(check)
    check.add_argument("--function", metavar="NAME", help="check only this function's tests, e.g. "
                                                          "conv_forward_naive; a model's name: all its tests")
    check.add_argument("--brief", action="store_true", help="one line per failing test")
    check.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    scope = commands.add_parser("gradescope", help="grade /autograder/submission into results.json")
    scope.add_argument("--submission", type=Path, default=Path("/autograder/submission"))
    scope.add_argument("--results", type=Path, default=Path("/autograder/results/results.json"))
    _rubric_option(scope)

    bundle = commands.add_parser("gradescope-zip", help="build the autograder zip to upload to Gradescope")
    bundle.add_argument("-o", "--output", type=Path, default=Path("autograder.zip"), metavar="ZIP",
                        help="where to write the zip (default: autograder.zip)")
    bundle.add_argument("--bubblewrap", action="store_true",
                        help="let setup.sh apt-get bubblewrap (Gradescope's containers usually cannot use it)")
    _rubric_option(bundle)

    prairie = commands.add_parser("prairielearn", help="grade /grade/student into PrairieLearn's results.json")
    prairie.add_argument("--student", type=Path, default=Path("/grade/student"))
    prairie.add_argument("--results", type=Path, default=Path("/grade/results/results.json"))
    _rubric_option(prairie)

    alike = commands.add_parser("similarity", help="flag copied code: pairs of submissions, the reference, "
                                                   "known solutions, function by function")
    alike.add_argument("paths", nargs="+", type=Path, metavar="CLASS", help="a folder of submissions (or several)")
    alike.add_argument("--known", type=Path, action="append", default=[], metavar="DIR",
                       help="a folder of known solutions (one per .py file, .zip or subfolder); repeatable")
    alike.add_argument("--starter", type=Path, action="append", default=[], metavar="FILE",
                       help="the course's starter file: its code is ignored; repeatable")
    alike.add_argument("--threshold", type=float, default=similarity.DEFAULT_THRESHOLD, metavar="T",
                       help=f"flag pairs at or above this similarity, 0 to 1 (default {similarity.DEFAULT_THRESHOLD})")
    alike.add_argument("--json", type=Path, metavar="FILE", help="write the flagged pairs here as JSON")
    alike.add_argument("--csv", type=Path, metavar="FILE", help="write the flagged pairs here as CSV")
    alike.add_argument("--html", type=Path, metavar="FILE", help="write the pairs side by side here (self-contained HTML)")
    alike.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: cores)")
    _rubric_option(alike)

    listing = commands.add_parser("rubrics", help="list the bundled rubrics, or one rubric's tests and points")
    listing.add_argument("name", nargs="?", metavar="NAME_OR_FILE", help="a bundled rubric's name or a YAML file")
    return parser


def _rubric_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rubric", metavar="NAME_OR_FILE",
                        help="a bundled rubric's name (see `gradeconv rubrics`) or a rubric YAML file "
                             "(default: ./rubric.yaml if present, else the bundled default)")


def load_rubric(name: str | None) -> rubrics.Rubric:
    if name is None and Path("rubric.yaml").is_file():
        name = "rubric.yaml"
    try:
        return rubrics.load(rubrics.locate(name) if name is not None else None)
    except rubrics.RubricError as error:
        raise UserError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    positional = [arg for arg in argv if not arg.startswith("-")]
    if positional and positional[0] not in COMMANDS:
        argv.insert(0, "grade")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return USAGE_ERROR
    try:
        return {"grade": grade, "check": check, "gradescope": run_gradescope,
                "rubrics": list_rubrics, "similarity": run_similarity,
                "gradescope-zip": build_gradescope_zip, "prairielearn": run_prairielearn}[args.command](args)
    except UserError as error:
        print(f"gradeconv: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("gradeconv: interrupted; finished grades are kept in the --json file", file=sys.stderr)
        return 130


#: the file options of `grade`, each with a file name to suggest when a folder is given
GRADE_FILES = {"--json": ("json", "results.json"), "--csv": ("csv", "gradebook.csv"),
               "--html": ("html", "report.html"), "--canvas-csv": ("canvas_csv", "import.csv")}
#: skipped entries named one per line before the rest are counted
SKIPPED_SHOWN = 10
WHAT_IS_GRADED = "a .py file, a .zip or a folder per student"


def _class(paths: list[Path], rubric: rubrics.Rubric):
    """The submissions to grade; a one-line UserError when there are none."""
    try:
        found = find_submissions(paths, rubric.module, rubric.package)
    except SubmissionError as error:
        raise UserError(str(error)) from None
    if found.submissions:
        return found
    if len(paths) == 1 and [s.path for s in found.skipped] == paths:
        raise UserError(f"{paths[0]}: not a submission ({found.skipped[0].reason}); "
                        f"give a .py file, a .zip, or a folder of them")
    names = _first([s.path.name for s in found.skipped])
    skipped = f" ({len(found.skipped)} skipped: {names})" if found.skipped else ""
    raise UserError(f"{_first(list(map(str, paths)))}: no submissions found{skipped}; "
                    f"a class folder holds {WHAT_IS_GRADED}")


def _first(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _skipped_lines(found) -> list[str]:
    """Lines for stderr: the given folders without submissions, then what was skipped and why."""
    lines = [f"skipped {folder}: no submissions in this folder" for folder in found.empty]
    lines += [f"skipped {s.path}: {s.reason}" for s in found.skipped[:SKIPPED_SHOWN]]
    if len(found.skipped) > SKIPPED_SHOWN:
        lines.append(f"skipped {len(found.skipped) - SKIPPED_SHOWN} more files or folders that are not "
                     f"submissions ({WHAT_IS_GRADED})")
    return lines


def _check_grade_outputs(args: argparse.Namespace, rubric: rubrics.Rubric, submissions: list[Submission]) -> None:
    """Every output of `grade` can be written, and none overwrites an input or another output."""
    outputs = {option: getattr(args, attribute) for option, (attribute, _) in GRADE_FILES.items()}
    outputs["--feedback-dir"] = args.feedback_dir
    inputs = {s.path: "a submission" for s in submissions if not s.path.is_dir()}
    if rubric.path:
        inputs[Path(rubric.path)] = "the rubric"
        if rubric.secret_file:
            inputs[Path(rubric.path).parent / rubric.secret_file] = "the rubric's secret file"
    if args.canvas_gradebook:  # --canvas-csv may fill the export in place
        inputs[args.canvas_gradebook] = "the Canvas gradebook export"
        if args.canvas_csv and _same(args.canvas_csv, args.canvas_gradebook):
            del outputs["--canvas-csv"]
    try:
        output_paths.check_distinct(outputs, inputs)
        for option, (attribute, example) in GRADE_FILES.items():
            if getattr(args, attribute) is not None:
                output_paths.check_file(getattr(args, attribute), option, example)
        if args.feedback_dir is not None:
            output_paths.check_folder(args.feedback_dir, "--feedback-dir")
        if args.json is not None:
            output_paths.check_results_file(args.json)
    except output_paths.OutputPathError as error:
        raise UserError(str(error)) from None


def _same(first: Path, second: Path) -> bool:
    return os.path.realpath(first) == os.path.realpath(second)


def _check_output_file(path: Path, option: str, example: str) -> None:
    try:
        output_paths.check_file(path, option, example)
    except output_paths.OutputPathError as error:
        raise UserError(str(error)) from None


def grade(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    if args.resume and not args.json:
        raise UserError("--resume needs --json FILE (the results to resume from)")
    canvas_export = _canvas_options(args)
    rubric = load_rubric(args.rubric)
    found = _class(args.paths, rubric)
    submissions = found.submissions
    _check_grade_outputs(args, rubric, submissions)
    if not args.quiet:
        for line in _skipped_lines(found):
            _warn(line)
    try:
        protect_class(submissions, rubric)
    except SandboxUnavailable as error:
        raise UserError(str(error)) from None
    finished = json_report.read_finished(args.json, rubric, warn=_warn) if args.resume else []
    finished = _same_files(finished, submissions)
    done = {s["id"] for s in finished}
    todo = [s for s in submissions if s.id not in done]
    order = {s.id: i for i, s in enumerate(submissions)}
    results = list(finished)
    console = Console(quiet=args.quiet)

    def keep(result: dict) -> None:
        results.append(result)
        results.sort(key=lambda r: order.get(r["id"], len(order)))
        if args.json:
            json_report.write(args.json, rubric, results)

    if args.json:
        json_report.write(args.json, rubric, results)
    if console.is_terminal and not args.quiet:
        with Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as progress:
            task = progress.add_task("grading", total=len(todo))
            for result in _graded(todo, rubric, args):
                keep(result)
                progress.advance(task)
    else:
        for result in _graded(todo, rubric, args):
            keep(result)
    if args.csv:
        csv_report.write(args.csv, rubric, results)
    if args.html:
        extra = similarity_report.html_section(_similarity_of(submissions, rubric, args.jobs)) if args.similarity else ""
        html_report.write(args.html, rubric, results, args.title, extra)
    elif args.similarity and not args.quiet:
        similarity_report.terminal(console, _similarity_of(submissions, rubric, args.jobs))
    if args.feedback_dir:
        feedback.write_all(args.feedback_dir, results)
    if args.canvas_csv:
        _write_canvas(args, rubric, submissions, results, canvas_export)
    if not args.quiet:
        terminal.gradebook(console, results)
        terminal.class_summary(console, results)
        for line in rubric.predictable():
            _warn(f"warning: {line}")
    not_graded = terminal.not_graded_line(results)
    if not_graded:
        _warn(not_graded)  # even with --quiet: the batch is not finished
        return NOT_GRADED
    return 0


def _same_files(finished: list[dict], submissions: list[Submission]) -> list[dict]:
    """The finished rows whose id still names the same file: another file that cleans to the same id is graded."""
    current = {s.id: os.path.realpath(s.path) for s in submissions}
    kept = [row for row in finished
            if row["id"] not in current or os.path.realpath(str(row.get("path", ""))) == current[row["id"]]]
    if len(kept) < len(finished):
        _warn(f"resuming: grading {len(finished) - len(kept)} submission(s) whose id now names another file")
    return kept


def _similarity_of(submissions: list[Submission], rubric: rubrics.Rubric, jobs: int,
                   known: list[Path] = (), starter: list[Path] = (),
                   threshold: float = similarity.DEFAULT_THRESHOLD) -> similarity.Report:
    try:
        return similarity.find_copies(submissions, rubric.module, known, starter,
                                      similarity.Settings(threshold=threshold), jobs)
    except similarity.SimilarityError as error:
        raise UserError(str(error)) from None


def run_similarity(args: argparse.Namespace) -> int:
    if not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, not {args.threshold:g}")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    try:  # a missing --known folder or --starter file is told before any work
        for folder in args.known:
            similarity.known_solutions(folder)
        similarity.starter_prints(args.starter)
    except similarity.SimilarityError as error:
        raise UserError(str(error)) from None
    rubric = load_rubric(args.rubric)
    found = _class(args.paths, rubric)
    outputs = {"--json": args.json, "--csv": args.csv, "--html": args.html}
    try:
        output_paths.check_distinct(outputs, {s.path: "a submission" for s in found.submissions})
        for option, path in outputs.items():
            if path is not None:
                output_paths.check_file(path, option, f"similarity.{option[2:]}")
    except output_paths.OutputPathError as error:
        raise UserError(str(error)) from None
    for line in _skipped_lines(found):
        _warn(line)
    report = _similarity_of(found.submissions, rubric, args.jobs, args.known, args.starter, args.threshold)
    if args.json:
        similarity_report.write_json_file(args.json, report)
    if args.csv:
        similarity_report.write_csv(args.csv, report)
    if args.html:
        similarity_report.write_html(args.html, report)
    similarity_report.terminal(Console(), report)
    return 0


def _graded(todo: list[Submission], rubric: rubrics.Rubric, args: argparse.Namespace) -> Iterator[dict]:
    """Rows as submissions finish: on the local pool, or on the Dask cluster of --dask."""
    if not args.dask:
        yield from batch.grade_all(todo, rubric, args.jobs)
        return
    from gradeconv import dask_pool
    try:
        yield from dask_pool.grade_all_on_dask(todo, rubric, args.dask)
    except dask_pool.DaskError as error:
        raise UserError(str(error)) from None


def _warn(line: str) -> None:
    print(f"gradeconv: {line}", file=sys.stderr)


def check(args: argparse.Namespace) -> int:
    full = load_rubric(args.rubric)
    rubric = _visible_tests(full, args.function)
    hidden_points = sum(test.points for test in full.tests if test.visibility != "visible"
                        and args.function in (None, test.function, test.function.split(".")[0]))
    problem = submission_problem(args.path, rubric)  # README.md, a notebook...: one line, not 15 failures
    if problem:
        raise UserError(problem)
    name = args.path.resolve().name
    result = grade_submission(Submission(name, args.path), rubric).to_json()
    result["hidden_max_score"] = hidden_points
    if args.json:
        print(json.dumps(json_report.document(full, [result]), indent=2))
    elif result.get("problem") and is_graded(result):  # one problem of the file: said once, on stderr
        print(f"gradeconv: {args.path}: {result['problem']}", file=sys.stderr)
    else:
        terminal.check_report(Console(soft_wrap=True), result, hidden_points, brief=args.brief)
    if not is_graded(result):
        return NOT_GRADED
    if result.get("problem"):
        return USAGE_ERROR
    return 0 if all(test["status"] == "passed" for test in result["tests"]) else 1


def _visible_tests(rubric: rubrics.Rubric, function: str | None) -> rubrics.Rubric:
    """The rubric's visible tests (of one function, if given); a UserError when there are none."""
    visible = tuple(test for test in rubric.tests if test.visibility == "visible")
    if not visible:
        raise UserError(f"{rubric.path}: the rubric has no visible tests to check")
    if function is not None:
        names = list(dict.fromkeys(test.function for test in visible))
        visible = tuple(test for test in visible if function in (test.function, test.function.split(".")[0]))
        if not visible:
            raise UserError(f"--function {function}: no visible test of this rubric grades it; "
                            f"its functions: {', '.join(names)}")
    return rubric.model_copy(update={"tests": visible})


def list_rubrics(args: argparse.Namespace) -> int:
    console = Console()
    if args.name is None:
        listed = []
        for name, path in rubrics.bundled().items():
            try:
                listed.append((name, rubrics.load(path)))
            except rubrics.RubricError as error:
                raise UserError(str(error)) from None
        terminal.rubric_list(console, listed)
    else:
        terminal.rubric_tests(console, load_rubric(args.name))
    return 0


def run_gradescope(args: argparse.Namespace) -> int:
    started = time.monotonic()
    _check_output_file(args.results, "--results", "results.json")  # else no results.json can tell the student
    try:
        rubric = load_rubric(args.rubric)
    except UserError as error:
        gradescope.write(args.results, gradescope.failure(str(error), 0.0))
        raise
    try:
        if not args.submission.is_dir():
            raise SubmissionError(f"{args.submission}: submission folder not found")
        result = grade_submission(Submission("submission", args.submission), rubric).to_json()
    except Exception as error:  # the platform must always get a valid results.json
        result = gradescope.failure(str(error), rubric.max_score)
        result["execution_time"] = round(time.monotonic() - started, 3)
    if not is_graded(result):
        result = gradescope.not_graded(result)
        gradescope.write(args.results, result)
        print(f"gradeconv: wrote {args.results} (not graded: {result['machine_failure']})")
        return NOT_GRADED
    gradescope.write(args.results, result)
    print(f"gradeconv: wrote {args.results} (score {result['score']:g}/{result['max_score']:g})")
    return 0


def _canvas_options(args: argparse.Namespace) -> str | None:
    """Check the Canvas options before grading; the gradebook export's text when one is given."""
    if args.canvas_csv and not (args.assignment or "").strip():
        raise UserError('--canvas-csv needs --assignment "TITLE (ASSIGNMENT_ID)", the Canvas column to fill')
    if (args.assignment or args.canvas_gradebook or args.points_possible is not None) and not args.canvas_csv:
        raise UserError("--assignment, --canvas-gradebook and --points-possible go with --canvas-csv FILE "
                        "(where to write)")
    if args.points_possible is not None and not (0 < args.points_possible < float("inf")):
        raise UserError("--points-possible must be a positive number of points")
    if not args.canvas_gradebook:
        return None
    try:
        export = canvas.read_export(args.canvas_gradebook)
        canvas.fill(export, args.assignment, 0.0, [], source=str(args.canvas_gradebook))  # fail before grading
    except canvas.CanvasError as error:
        raise UserError(str(error)) from None
    return export


def _write_canvas(args, rubric, submissions, results, export: str | None) -> None:
    user_ids = {s.id: canvas_user_id(s.path.name) for s in submissions}
    students = {s.id: parse_name(s.path.name)[0] for s in submissions}  # `smith`, not the second file's `smith-2`
    rows = canvas.grades(results, user_ids, students)
    if export is None:
        report = canvas.Report()
        text = canvas.render(args.assignment, rubric.max_score, rows, report, args.points_possible)
    else:
        text, report = canvas.fill(export, args.assignment, rubric.max_score, rows, source=str(args.canvas_gradebook),
                                   points_possible=args.points_possible)
    canvas.write(args.canvas_csv, text)
    for line in canvas.summary(report):
        _warn(line)


def build_gradescope_zip(args: argparse.Namespace) -> int:
    _check_output_file(args.output, "--output", "autograder.zip")
    rubric = load_rubric(args.rubric)
    try:
        built = gradescope_zip.build(args.output, rubric, install_bubblewrap=args.bubblewrap)
    except gradescope_zip.ZipError as error:
        raise UserError(str(error)) from None
    for line in rubric.predictable():
        _warn(f"warning: {line}")
    print(f"gradeconv: wrote {built.path}: {', '.join(built.members)}")
    print(f"gradeconv: {built.wheel} {built.wheel_source}")
    print("gradeconv: upload it as the autograder of a Gradescope programming assignment")
    return 0


def run_prairielearn(args: argparse.Namespace) -> int:
    _check_output_file(args.results, "--results", "results.json")  # else no results.json can tell the student
    try:
        rubric = load_rubric(args.rubric)
    except UserError as error:
        prairielearn.write(args.results, prairielearn.not_gradable(
            f"The autograder could not load its rubric: {error}"))
        raise
    problem = submission_problem(args.student, rubric)
    if problem:
        results = prairielearn.not_gradable(f"Nothing to grade: {problem}")
    else:
        try:
            graded = grade_submission(Submission("student", args.student), rubric).to_json()
            results = (prairielearn.from_submission(graded) if is_graded(graded)
                       else prairielearn.not_gradable(graded["output"]))
        except Exception as error:  # the platform must always get a valid results.json
            results = prairielearn.not_gradable(f"The autograder could not grade this submission: {error}")
    prairielearn.write(args.results, results)
    state = f"score {results['score']:g}" if results["gradable"] else "not gradable"
    print(f"gradeconv: wrote {args.results} ({state})")
    return 0
