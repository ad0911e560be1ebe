"""The --html class report: one self-contained file an instructor opens in a browser.

Plots (score distribution, pass rate per test, per-failure heat maps of |got - expected|)
are drawn with matplotlib's Agg canvas and inlined as PNG data: URIs; the style and the
few lines of script that sort the students' table are inline too, so the file needs no
network when opened. A Content-Security-Policy allows only that: data: images, the inline
style, and the one script by its hash (no other script runs, even one that got in).

Everything a submission can influence (ids, paths, test output, diagnoses, cases,
reproductions, what it printed) goes through esc() before it becomes HTML.
"""
from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import html
import io
import json
import re
import statistics
from pathlib import Path

import numpy as np

from gradeconv.results import is_graded
from gradeconv import __version__
from gradeconv.reports import names
from gradeconv.reports.clusters import cluster_key
from gradeconv.reports.files import write_atomically
from gradeconv.judging.reproduce import HEADING
from gradeconv.rubric import Rubric

#: channels drawn side by side for one 4-D difference (the rest are counted, not drawn)
MAX_CHANNELS = 8
#: characters of a test name in a plot's labels
LABEL_CHARS = 60

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, column) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      var numeric = th.dataset.type === "number";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number, th.number { text-align: right; }
th button { font: inherit; font-weight: bold; background: none; border: none; cursor: pointer; padding: 0; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
pre.message { white-space: pre-wrap; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto; white-space: pre; }
.passed { color: #17692d; }
.failed { color: #b3261e; }
.failure { border-left: 4px solid #b3261e; padding-left: 1em; margin: 1em 0; }
section.student { border-top: 2px solid #888; margin-top: 2em; }
img { max-width: 100%; height: auto; }
dt { font-weight: bold; }
.side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 0.5em; }
.side-by-side pre { margin: 0; font-size: 0.85em; }
.side-by-side mark { background: #ffe08a; display: inline-block; width: 100%; }
"""


def esc(value: object) -> str:
    """Text shown literally in HTML (element content or a quoted attribute)."""
    return html.escape(str(value), quote=True)


def render(submissions: list[dict], test_names: list[str] | None = None, title: str = "gradeconv class report",
           date: str | None = None, extra: str = "") -> str:
    """The whole report as one HTML document. test_names: the rubric's order (default: as found);
    title: the course and assignment; date: when graded (default: today); extra: HTML of a further
    section (already escaped), e.g. the similarity report's."""
    names = list(dict.fromkeys([*(test_names or []),
                                *(test["name"] for s in submissions for test in s.get("tests", []))]))
    anchors = section_ids([s["id"] for s in submissions])
    date = date or datetime.date.today().isoformat()
    body = [f"<h1>{esc(title)}</h1>", f'<p class="date">graded {esc(date)}</p>',
            f"<p>gradeconv {esc(__version__)}. {esc(_summary(submissions))}</p>"]
    if submissions:
        body += ['<h2 id="distribution">Score distribution</h2>', _image(score_plot(submissions), "score distribution"),
                 '<h2 id="pass-rates">Pass rate per test</h2>',
                 _image(pass_rate_plot(submissions, names), "pass rate per test"),
                 '<h2 id="clusters">Failure clusters</h2>', _clusters(submissions, anchors),
                 '<h2 id="students">Students</h2>', _student_table(submissions, anchors)]
    if extra:
        body.append(extra)
    body += [_student_section(s, anchors[i]) for i, s in enumerate(submissions)]
    return document(title, body)


def document(title: str, body: list[str]) -> str:
    """A self-contained page: inline style, the one sorting script allowed by hash, nothing else."""
    script = SORT_SCRIPT
    policy = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
              f"script-src '{script_hash(script)}'; base-uri 'none'; form-action 'none'")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        *body, f"<script>{script}</script>", "</body>", "</html>", ""])


def write(path: Path, rubric: Rubric, submissions: list[dict], title: str | None = None, extra: str = "") -> None:
    """The report of `submissions`, headed by title (else the rubric's title:, else a generic one)."""
    write_atomically(path, render(submissions, [test.name for test in rubric.tests],
                                  title or getattr(rubric, "title", None) or "gradeconv class report", extra=extra))


def script_hash(script: str) -> str:
    """A CSP source allowing exactly this inline script."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def section_ids(ids: list[str]) -> list[str]:
    """One HTML id per submission, made from its id alone (reports/names.py); the same id twice (never
    from discover) is numbered."""
    result, used = [], set()
    for original in ids:
        anchor = base = names.anchor(str(original))
        number = 1
        while anchor in used:
            number += 1
            anchor = f"{base}-{number}"
        used.add(anchor)
        result.append(anchor)
    return result


# ---------------------------------------------------------------- plots

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _label(text: str) -> str:
    """Plot text shown literally: no mathtext ($...$), cut to LABEL_CHARS."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", str(text))
    if len(text) > LABEL_CHARS:
        text = text[:LABEL_CHARS - 1] + "\u2026"
    return text.replace("$", r"\$")


def _image(png: bytes, alt: str, css_class: str = "plot") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img class="{esc(css_class)}" alt="{esc(alt)}" src="data:image/png;base64,{data}"></p>'


def score_plot(submissions: list[dict]) -> bytes:
    """Histogram of scores in ten buckets of the maximum."""
    scores = [float(s["score"]) for s in submissions if is_graded(s)]
    top = max((float(s["max_score"]) for s in submissions), default=0.0) or max(scores, default=0.0) or 1.0
    figure = _figure(7, 3)
    axes = figure.add_subplot()
    axes.hist(scores, bins=np.linspace(0, top, 11), color="#4c72b0", edgecolor="white")
    axes.set_xlim(0, top)
    axes.set_xlabel(f"score (of {top:g})")
    axes.set_ylabel("students")
    axes.yaxis.get_major_locator().set_params(integer=True)
    return _png(figure)


def pass_rate_plot(submissions: list[dict], names: list[str]) -> bytes:
    """One horizontal bar per test: the share of all submissions that passed it."""
    passed = [_passed(submissions, name) for name in names]
    rates = [100 * count / len(submissions) for count in passed]
    figure = _figure(8, 0.8 + 0.3 * max(len(names), 1))
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    bars = axes.barh(positions, rates, color=[rate_colour(rate) for rate in rates])
    axes.bar_label(bars, labels=[f"{count}/{len(submissions)}" for count in passed], padding=3, fontsize=8)
    axes.set_yticks(positions, labels=[_label(name) for name in names])
    axes.invert_yaxis()
    axes.set_xlim(0, 112)
    axes.set_xticks(range(0, 101, 20))
    axes.set_xlabel("passed (% of students)")
    return _png(figure)


def rate_colour(rate: float) -> str:
    """A pass rate's bar colour: red below half, amber below 80%, green below all, dark green at 100%."""
    if rate >= 100:
        return "#17692d"
    if rate >= 80:
        return "#5aa469"
    if rate >= 50:
        return "#e0a030"
    return "#c0504d"


def difference_plot(difference: dict) -> tuple[bytes, str] | None:
    """Heat map(s) of |got - expected| on the smallest failing case, with a caption; None if unusable.

    4-D (NCHW): the first sample's channels side by side; 1-D to 3-D: one map (leading axes
    stacked as rows). NaN and infinity are drawn in the "bad" colour.
    """
    try:
        values = np.asarray(difference["values"], dtype=float)
        shape = tuple(int(n) for n in difference.get("shape") or values.shape)
    except (TypeError, ValueError, KeyError):
        return None
    if values.ndim == 0 or values.size == 0 or values.ndim > 4:
        return None
    output = _label(difference.get("output") or "output")
    if values.ndim == 4:
        maps = [values[0, channel] for channel in range(min(values.shape[1], MAX_CHANNELS))]
        titles = [f"channel {channel}" for channel in range(len(maps))]
        caption = f"|got - expected| of {output} (shape {shape}): sample 0"
        if values.shape[1] > MAX_CHANNELS:
            caption += f", first {MAX_CHANNELS} of {values.shape[1]} channels"
    else:
        maps = [values.reshape(1, -1) if values.ndim == 1 else values.reshape(-1, values.shape[-1])]
        titles = [""]
        caption = f"|got - expected| of {output} (shape {shape})"
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 1.0
    from matplotlib import colormaps
    colours = colormaps["magma_r"].with_extremes(bad="#00b4d8")
    height, width = maps[0].shape
    panel = min(3.0, max(1.2, 0.35 * max(height, width)))
    figure = _figure(panel * len(maps) * max(width, 1) / max(height, width) + 1.2, panel + 0.6)
    grid = figure.subplots(1, len(maps), squeeze=False)[0]
    image = None
    for axes, data, name in zip(grid, maps, titles):
        image = axes.imshow(np.ma.masked_invalid(data), cmap=colours, vmin=0, vmax=top or 1.0,
                            interpolation="nearest", aspect="equal")
        axes.set_title(name, fontsize=9)
        axes.set_xticks([] if data.shape[1] > 16 else range(data.shape[1]))
        axes.set_yticks([] if data.shape[0] > 16 else range(data.shape[0]))
        axes.tick_params(labelsize=7)
    figure.colorbar(image, ax=list(grid), shrink=0.9)
    if finite.size < values.size:
        caption += "; blue: NaN or infinite"
    return _png(figure), caption


@functools.lru_cache(maxsize=256)
def _cached_difference_plot(difference: str) -> tuple[bytes, str] | None:
    """Students with the same mistake often share the same smallest case: draw each picture once."""
    return difference_plot(json.loads(difference))


# ---------------------------------------------------------------- sections

def _passed(submissions: list[dict], name: str) -> int:
    return sum(1 for s in submissions for t in s.get("tests", []) if t["name"] == name and t["status"] == "passed")


def _summary(submissions: list[dict]) -> str:
    if not submissions:
        return "No submissions found."
    missing = sum(not is_graded(s) for s in submissions)
    note = f" {missing} not graded: the machine failed, not the students." if missing else ""
    submissions = [s for s in submissions if is_graded(s)]
    if not submissions:
        return "No graded submissions." + note
    scores = [float(s["score"]) for s in submissions]
    top = max(float(s["max_score"]) for s in submissions)
    return (f"{len(scores)} submissions: mean {statistics.mean(scores):.1f}, median {statistics.median(scores):g}, "
            f"min {min(scores):g}, max {max(scores):g} (of {top:g}).{note}")


def _extra(test: dict) -> dict:
    extra = test.get("extra_data")
    return extra if isinstance(extra, dict) else {}


def _failures(submission: dict) -> list[dict]:
    return [test for test in submission.get("tests", []) if test["status"] != "passed"]


def _clusters(submissions: list[dict], anchors: list[str]) -> str:
    """Each diagnosis with the students (and tests) that share it, most students first."""
    students: dict[tuple[str, bool], list[int]] = {}
    tests: dict[tuple[str, bool], list[str]] = {}
    for index, submission in enumerate(submissions):
        for test in _failures(submission):
            key = cluster_key(test)
            if index not in students.setdefault(key, []):
                students[key].append(index)
            if test["name"] not in tests.setdefault(key, []):
                tests[key].append(test["name"])
    if not students:
        return "<p>No failures.</p>"
    order = sorted(students, key=lambda key: (-len(students[key]), not key[1], key[0]))
    rows = []
    for text, diagnosed in order:
        who = students[(text, diagnosed)]
        links = ", ".join(f'<a href="#{anchors[i]}">{esc(submissions[i]["id"])}</a>' for i in who)
        label = esc(text) if diagnosed else f"<em>no diagnosis</em>: {esc(text)}"
        rows.append(f'<tr><td class="number">{len(who)}</td><td>{label}</td><td>{links}</td>'
                    f"<td>{_names(tests[(text, diagnosed)])}</td></tr>")
    return ('<table id="cluster-table"><thead><tr><th class="number">students</th><th>diagnosis</th>'
            "<th>who</th><th>tests</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>")


def _names(names: list[str], shown: int = 5) -> str:
    listed = "<br>".join(esc(name) for name in names[:shown])
    return listed + (f"<br>and {len(names) - shown} more" if len(names) > shown else "")


def _student_table(submissions: list[dict], anchors: list[str]) -> str:
    header = ('<table id="student-table" class="sortable"><thead><tr>'
              '<th><button type="button">id</button></th>'
              '<th><button type="button">late</button></th>'
              '<th class="number" data-type="number"><button type="button">score</button></th>'
              '<th class="number" data-type="number"><button type="button">failed</button></th>'
              '<th><button type="button">reason</button></th>'
              '<th><button type="button">failed tests</button></th></tr></thead><tbody>')
    rows = []
    for submission, anchor in zip(submissions, anchors):
        failed = [test["name"] for test in _failures(submission)]
        score = float(submission["score"]) if is_graded(submission) else -1.0
        late = "late" if submission.get("late") else ""
        rows.append(
            f'<tr><td data-sort="{esc(submission["id"])}"><a href="#{anchor}">{esc(submission["id"])}</a></td>'
            f'<td data-sort="{late}">{late}</td>'
            f'<td class="number" data-sort="{score!r}">{esc(_score(submission))}</td>'
            f'<td class="number" data-sort="{len(failed)}">{len(failed)}</td>'
            f'<td data-sort="{esc(reason(submission))}">{esc(reason(submission)) or "-"}</td>'
            f'<td data-sort="{esc("; ".join(failed))}">{"<br>".join(esc(name) for name in failed) or "-"}</td></tr>')
    return header + "\n" + "\n".join(rows) + "\n</tbody></table>"


def reason(submission: dict) -> str:
    """Why the student lost points, in a line: the submission's problem, else its failures' diagnoses."""
    if not is_graded(submission):
        return "not graded: the machine failed"
    if submission.get("problem"):
        return str(submission["problem"]).splitlines()[0]
    reasons = list(dict.fromkeys(cluster_key(test)[0] for test in _failures(submission)))
    return "; ".join(reasons[:2]) + (f"; and {len(reasons) - 2} more" if len(reasons) > 2 else "")


def _score(submission: dict) -> str:
    if not is_graded(submission):
        return f"not graded (the machine failed: {submission.get('machine_failure')})"
    return f'{float(submission["score"]):g}/{float(submission["max_score"]):g}'


def _case(counterexample: object) -> str:
    if isinstance(counterexample, dict):
        return ", ".join(f"{key} = {json.dumps(value) if not isinstance(value, str) else value}"
                         for key, value in counterexample.items())
    return str(counterexample)


def _student_section(submission: dict, anchor: str) -> str:
    parts = [f'<section class="student" id="{anchor}">',
             f'<h2>{esc(submission["id"])}{" (late)" if submission.get("late") else ""}: '
             f'{esc(_score(submission))}</h2>']
    details = [f"path: {submission['path']}" if submission.get("path") else "",
               f"sandbox: {submission['sandbox']}" if submission.get("sandbox") else "",
               f"graded in {float(submission['execution_time']):.1f} s"
               if isinstance(submission.get("execution_time"), (int, float)) else ""]
    parts.append(f"<p>{esc('; '.join(d for d in details if d))}</p>")
    tests = submission.get("tests", [])
    if tests:
        parts.append('<table class="tests"><thead><tr><th class="number">#</th><th>test</th>'
                     '<th class="number">points</th><th>status</th><th>visibility</th></tr></thead><tbody>')
        for test in tests:
            status = "passed" if test["status"] == "passed" else "failed"
            outcome = _extra(test).get("outcome") or test["status"]
            parts.append(f'<tr><td class="number">{esc(test.get("number", ""))}</td><td>{esc(test["name"])}</td>'
                         f'<td class="number">{float(test["score"]):g}/{float(test["max_score"]):g}</td>'
                         f'<td class="{status}">{esc(outcome)}</td><td>{esc(test.get("visibility", ""))}</td></tr>')
        parts.append("</tbody></table>")
    if submission.get("problem"):  # one problem of the file, said once rather than under every test
        parts += ['<div class="failure"><h3>Problem with the submission (no test could run)</h3>',
                  f'<pre class="message">{esc(submission["problem"])}</pre></div>']
    for test in [] if submission.get("problem") else _failures(submission):
        parts.append(_failure(test))
    if submission.get("output"):
        parts += ["<h3>Notes and printed output</h3>", f"<pre>{esc(submission['output'])}</pre>"]
    if submission.get("hidden_output"):
        parts += ["<h3>What the hidden tests' calls printed (not shown to the student)</h3>",
                  f"<pre>{esc(submission['hidden_output'])}</pre>"]
    parts.append('<p><a href="#students">back to the students</a></p></section>')
    return "\n".join(parts)


def _failure(test: dict) -> str:
    extra = _extra(test)
    reproduction = extra.get("reproduce")
    message = str(test.get("output", ""))
    if reproduction:
        message = message.split(f"\n{HEADING}\n")[0]
    parts = ['<div class="failure">', f"<h3>{esc(test['name'])} ({esc(extra.get('outcome') or 'failed')}, "
                                       f"{esc(test.get('visibility', ''))})</h3>",
             f'<pre class="message">{esc(message)}</pre>', "<dl>"]
    if extra.get("counterexample"):
        parts.append(f"<dt>smallest failing case</dt><dd><code>{esc(_case(extra['counterexample']))}</code></dd>")
    if extra.get("diagnosis"):
        parts.append(f"<dt>diagnosis</dt><dd>{esc(extra['diagnosis'])}</dd>")
    parts.append("</dl>")
    if reproduction:
        parts += ["<p>Reproduction:</p>", f"<pre>{esc(reproduction)}</pre>"]
    difference = extra.get("difference")
    if isinstance(difference, dict):
        drawn = _cached_difference_plot(json.dumps(difference, sort_keys=True))
        if drawn:
            png, caption = drawn
            parts += [_image(png, caption, "difference"), f"<p>{esc(caption)}</p>"]
    parts.append("</div>")
    return "\n".join(parts)
