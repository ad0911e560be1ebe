"""The --html class report: the renderer on hand-made results, and a graded class opened in headless Chromium."""
import base64
import hashlib
import html
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from rich.console import Console

from gradeconv.reports import html_report, terminal
from tests.test_cli import SAMPLE, gradeconv

HOSTILE_ID = '<script>document.title="pwned"</script>"\'&x'
HOSTILE_OUTPUT = 'dx is wrong</pre><script>window.pwned = 1</script><img src=x onerror="window.pwned=2">'


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each <script>."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self._in_script = [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def a_test(name, number, points, *, outcome="passed", visibility="visible", output="", diagnosis=None,
           counterexample=None, reproduce=None, difference=None):
    return {"name": name, "number": str(number), "score": points if outcome == "passed" else 0.0,
            "max_score": points, "status": "passed" if outcome == "passed" else "failed", "output": output,
            "visibility": visibility, "tags": [],
            "extra_data": {"function": "conv_forward_naive", "outcome": outcome, "counterexample": counterexample,
                           "diagnosis": diagnosis, "cache": None, "reproduce": reproduce, "difference": difference}}


def a_submission(identifier, tests, output="sandbox: none", late=False):
    return {"id": identifier, "late": late, "path": f"/class/{identifier}", "score": sum(t["score"] for t in tests),
            "max_score": sum(t["max_score"] for t in tests), "execution_time": 0.5, "output": output,
            "sandbox": "none", "tests": tests}


def border_difference(channels=2, h=4, w=5):
    """A padding-like error: wrong on the border of each channel only."""
    values = [[[[1.0 if i in (0, h - 1) or j in (0, w - 1) else 0.0 for j in range(w)] for i in range(h)]
                for _ in range(channels)]]
    return {"output": "out", "shape": [1, channels, h, w], "values": values}


@pytest.fixture
def hand_made():
    """A hostile id and output, a student without difference data, a hidden failure, a 2-D difference with NaN."""
    hostile = a_submission(HOSTILE_ID, [
        a_test("conv forward: padding", 1, 10, outcome="wrong_value", output=HOSTILE_OUTPUT,
               diagnosis='fails only when pad > 0 <b onmouseover="x">', counterexample={"n": 1, "pad": 1},
               reproduce='x = "</pre><script>window.pwned = 3</script>"\n', difference=border_difference()),
        a_test("conv backward db (hidden)", 2, 5, visibility="hidden", outcome="wrong_value",
               output="db is wrong: largest error 1", diagnosis="fails only when pad > 0")],
        output="printed: <script>window.pwned = 4</script>")
    plain = a_submission("bob", [
        a_test("conv forward: padding", 1, 10, outcome="wrong_shape", output="out has shape (1, 1, 0, 0)",
               diagnosis="fails only when pad > 0", counterexample={"n": 1, "pad": 0}, reproduce="print(1)\n"),
        a_test("conv backward db (hidden)", 2, 5)])
    matrix = a_submission("carol", [
        a_test("conv forward: padding", 1, 10),
        a_test("affine", 2, 5, outcome="wrong_value", output="out is wrong",
               difference={"output": "out", "shape": [2, 3], "values": [[0.0, float("nan"), 1.0], [0.5, 0.0, 0.0]]})])
    return [hostile, plain, matrix]


def png_size(data_uri):
    png = base64.b64decode(data_uri.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def sections(text):
    """HTML id -> the section's markup."""
    return dict(re.findall(r'<section class="student" id="([^"]+)">(.*?)</section>', text, re.S))


def test_student_text_never_becomes_markup(hand_made):
    text = html_report.render(hand_made, ["conv forward: padding"])
    parsed = Elements(text)
    assert parsed.scripts == [html_report.SORT_SCRIPT]  # ours, and only ours
    assert not [attrs for _, attrs in parsed.tags if any(name.startswith("on") for name in attrs)]
    assert [tag for tag, _ in parsed.tags if tag == "b"] == []
    assert "window.pwned" in text and "<script>window.pwned" not in text
    assert html.escape(HOSTILE_ID) in text and html.escape(HOSTILE_OUTPUT) in text
    assert "<title>gradeconv class report</title>" in text


def test_self_contained_with_a_policy_allowing_only_its_own_script(hand_made):
    text = html_report.render(hand_made)
    parsed = Elements(text)
    for tag, attrs in parsed.tags:
        assert attrs.get("src", "data:image/png;base64,").startswith("data:image/png;base64,"), (tag, attrs)
        assert attrs.get("href", "#").startswith("#"), (tag, attrs)
    assert "link" not in [tag for tag, _ in parsed.tags] and not re.search(r"https?://", text)
    policy = next(attrs["content"] for tag, attrs in parsed.tags if attrs.get("http-equiv") == "Content-Security-Policy")
    digest = base64.b64encode(hashlib.sha256(html_report.SORT_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy and "img-src data:" in policy
    plots = [attrs for tag, attrs in parsed.tags if tag == "img" and attrs["class"] == "plot"]
    assert len(plots) == 2 and all(min(png_size(attrs["src"])) > 50 for attrs in plots)


def test_each_student_has_a_section_with_tests_failures_and_heat_maps(hand_made):
    text = html_report.render(hand_made)
    anchors = html_report.section_ids([s["id"] for s in hand_made])
    found = sections(text)
    assert list(found) == anchors and len(set(anchors)) == 3
    for anchor in anchors:
        assert f'href="#{anchor}"' in text  # reachable from the table and the clusters
    hostile, bob, carol = (found[anchor] for anchor in anchors)
    # the hostile student's visible failure: message, case, diagnosis, reproduction, one heat map of 2 channels
    assert "smallest failing case" in hostile and "n = 1, pad = 1" in hostile
    assert html.escape('x = "</pre><script>window.pwned = 3</script>"') in hostile
    assert hostile.count('class="difference"') == 1 and "sample 0" in hostile
    [uri] = re.findall(r'class="difference" alt="[^"]*" src="([^"]+)"', hostile)
    width, height = png_size(uri)
    assert width > height > 50  # two channels side by side
    # the hidden failure: its message and diagnosis, no reproduction, no picture
    hidden = hostile.split("conv backward db (hidden) (wrong_value, hidden)")[1]
    assert "db is wrong" in hidden and "Reproduction" not in hidden and "<img" not in hidden
    # no difference data: no picture, everything else
    assert "out has shape (1, 1, 0, 0)" in bob and "Reproduction" in bob and "<img" not in bob
    # a 2-D difference (with NaN) is one map
    assert carol.count('class="difference"') == 1 and "NaN" in carol


def test_failure_clusters_most_common_first(hand_made):
    text = html_report.render(hand_made)
    table = text.split('<table id="cluster-table">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    first = rows[0]
    assert first.startswith('<td class="number">2</td>') and "fails only when pad &gt; 0" in first
    assert html.escape(HOSTILE_ID) in first and ">bob</a>" in first
    assert len(rows) == 3 and "no diagnosis" in rows[-1] and "carol" in rows[-1]


def test_section_ids_unique_and_stable():
    ids = ["Alice", "alice", "a lice", "al!ce", "bob", "", "<script>"]
    anchors = html_report.section_ids(ids)
    assert len(set(anchors)) == len(ids) and all(re.fullmatch(r"student-[a-z0-9_-]+", a) for a in anchors)
    assert anchors[4] == "student-bob"
    assert html_report.section_ids(list(reversed(ids))) == list(reversed(anchors))  # not order-dependent
    assert html_report.section_ids(["alice"]) == ["student-alice"]
    for student, anchor in zip(ids, anchors):  # from the id alone: the same whoever else is in the class
        assert html_report.section_ids([student]) == [anchor]


def test_empty_class():
    text = html_report.render([])
    assert "No submissions found." in text and "<img" not in text


def test_plot_labels_are_literal():
    """A test name with `$` or a control character is a label, not mathtext (which would raise)."""
    names = ["a $\\frac{ b$", "$x^$", "tab\there", "x" * 300]
    submissions = [a_submission("ann", [a_test(name, i, 1) for i, name in enumerate(names, 1)])]
    assert html_report.pass_rate_plot(submissions, names)[:4] == b"\x89PNG"


def test_difference_shapes():
    assert html_report.difference_plot({"output": "db", "shape": [3], "values": [0.0, 1.0, 0.0]})
    assert html_report.difference_plot({"output": "h", "shape": [2, 2, 3], "values": [[[1.0] * 3] * 2] * 2})
    many = html_report.difference_plot(border_difference(channels=12, h=2, w=2))
    assert many and "first 8 of 12 channels" in many[1]
    assert html_report.difference_plot({"output": "x", "shape": [], "values": 1.0}) is None
    assert html_report.difference_plot({"output": "x", "values": "nonsense"}) is None


# ---------------------------------------------------------------- in a real browser

CHECKER = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (event) {
    errors.push("error: " + (event.message || (event.target && event.target.outerHTML || "").slice(0, 80)));
  }, true);
  document.addEventListener("securitypolicyviolation", function (event) {
    errors.push("csp: " + event.violatedDirective + " " + event.blockedURI);
  });
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var table = document.getElementById("student-table");
    var order = function () {
      return Array.prototype.map.call(table.tBodies[0].rows, function (row) { return row.cells[0].dataset.sort; });
    };
    var score = table.tHead.rows[0].cells[2].querySelector("button");
    var before = order();
    score.click();
    var ascending = order();
    score.click();
    var result = {
      errors: errors, before: before, ascending: ascending, descending: order(),
      images: Array.prototype.map.call(document.images, function (img) {
        return {cls: img.className, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
      }),
      links: Array.prototype.map.call(document.querySelectorAll("a[href^='#']"), function (link) {
        var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
        return [link.getAttribute("href"), target ? target.tagName + "." + target.className : null];
      }),
      headings: Array.prototype.map.call(document.querySelectorAll("section.student h2"), function (h) {
        return h.textContent;
      }),
      scripts: document.scripts.length, title: document.title, pwned: window.pwned || null,
      resources: performance.getEntriesByType("resource").map(function (entry) { return entry.name; })
    };
    var pre = document.createElement("pre");
    pre.id = "gradeconv-check";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  });
})();
</script>
"""


def open_in_chromium(report, tmp_path):
    """Open a copy of the report (with CHECKER run first) from disk; the checker's findings and console lines."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not found (Debian package `chromium`; .ci/run installs it)")
    text = report.read_text(encoding="utf-8")
    head = '<head>\n<meta charset="utf-8">'
    assert text.count(head) == 1
    copy = tmp_path / "checked.html"
    copy.write_text(text.replace(head, head + "\n" + CHECKER), encoding="utf-8")  # before the CSP: not bound by it
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="gradeconv-check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no findings in the dumped DOM\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


def assert_renders(findings, console):
    assert findings["errors"] == [] and console == []
    assert findings["scripts"] == 2 and findings["pwned"] is None  # the checker and the sorting script
    assert not [name for name in findings["resources"] if not name.startswith("data:")]
    plots = [image for image in findings["images"] if image["cls"] == "plot"]
    assert len(plots) == 2
    assert all(image["complete"] and image["width"] > 0 and image["height"] > 0 for image in findings["images"])
    assert findings["links"] and all(target is not None for _, target in findings["links"]), findings["links"]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """alice, bob_pad0_crop, frank_missing_bias and grace_syntax_error.py graded by the CLI, --json and --html."""
    root = tmp_path_factory.mktemp("html")
    folder = root / "class"
    folder.mkdir()
    for name in ("alice", "bob_pad0_crop", "frank_missing_bias"):
        shutil.copytree(SAMPLE / name, folder / name)
    shutil.copy(SAMPLE / "grace_syntax_error.py", folder / "grace_syntax_error.py")
    result = gradeconv(folder, "--rubric", "default", "--jobs", 2, "--quiet",  # from the checkout, as test_cli
                       "--json", root / "results.json", "--html", root / "report.html")
    assert result.returncode == 0, result.stderr
    return root


def test_graded_class_report_matches_the_json(graded_class):
    data = json.loads((graded_class / "results.json").read_text())
    text = (graded_class / "report.html").read_text(encoding="utf-8")
    ids = [s["id"] for s in data["submissions"]]
    assert ids == ["alice", "bob_pad0_crop", "frank_missing_bias", "grace_syntax_error"]
    found = sections(text)
    assert list(found) == [f"student-{i}" for i in ids]
    frank = found["student-frank_missing_bias"]
    assert "add the bias b[f] to every output of filter f" in frank and "Reproduction" in frank
    assert frank.count('class="difference"') == 5  # every wrong-value failure has its heat map
    assert "slicing `[pad:-pad]`" in found["student-bob_pad0_crop"]
    assert "SyntaxError" in found["student-grace_syntax_error"] and "<img" not in found["student-grace_syntax_error"]
    assert "4 submissions: mean" in text


def test_graded_class_report_renders_in_chromium(graded_class, tmp_path):
    findings, console = open_in_chromium(graded_class / "report.html", tmp_path)
    assert_renders(findings, console)
    assert ["#student-frank_missing_bias", "SECTION.student"] in findings["links"]
    assert len(findings["images"]) == 2 + 5  # the two plots and frank's five heat maps
    assert findings["before"] == ["alice", "bob_pad0_crop", "frank_missing_bias", "grace_syntax_error"]
    assert findings["ascending"] == ["grace_syntax_error", "frank_missing_bias", "bob_pad0_crop", "alice"]
    assert findings["descending"] == findings["before"]
    assert findings["title"] == "CS231n: convolution and max-pool layers"  # the rubric's title:, not a path


def test_hostile_report_renders_in_chromium_without_running_student_text(hand_made, tmp_path):
    report = tmp_path / "report.html"
    html_report.write(report, SimpleNamespace(tests=[], path="rubric.yaml"), hand_made)
    findings, console = open_in_chromium(report, tmp_path)
    assert_renders(findings, console)
    assert findings["title"] == "gradeconv class report"  # a rubric without a title: never its path
    assert findings["headings"][0].startswith(HOSTILE_ID)


def test_failures_cluster_by_diagnosis_and_the_undiagnosed_by_test_and_outcome_never_by_numbers():
    """One bug, two students, different numbers in their messages: one cluster each way, in HTML and terminal."""
    swapped = "fails only when H != W; height and width are swapped somewhere"
    students = [
        a_submission(name, [
            a_test("conv forward: padding", 1, 10, outcome="wrong_value", output=f"out is wrong: largest error {error}"),
            a_test("conv forward: non-square", 2, 10, outcome=outcome, diagnosis=swapped,
                   output=f"out has shape (1, 1, {error}, 2)"),
        ]) for name, error, outcome in (("ann", 0.25, "wrong_shape"), ("ben", 1.5, "wrong_value"))]
    text = html_report.render(students)
    table = text.split('<table id="cluster-table">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert len(rows) == 2 and all(row.startswith('<td class="number">2</td>') for row in rows)
    assert swapped in html.unescape(rows[0]) and ">ann</a>" in rows[0] and ">ben</a>" in rows[0]
    assert "no diagnosis" in rows[1] and "conv forward: padding (wrong_value)" in rows[1]
    assert "largest error" not in table and "0.25" not in table and "1.5" not in table
    console = Console(record=True, width=300)
    terminal.class_summary(console, students)
    common = console.export_text().split("Most common failures")[1]
    assert swapped in common and "no diagnosis: conv forward: padding (wrong_value)" in common
    assert "largest error" not in common and len(re.findall(r"│ +2 │", common)) == 2


def test_clusters_of_one_diagnosis_name_every_test_that_showed_it():
    diagnosis = "fails only when windows overlap (stride < kernel size); accumulate every window's contribution"
    student = a_submission("dee", [
        a_test("conv backward dx", 1, 10, outcome="wrong_value", diagnosis=diagnosis, output="dx is wrong: 3"),
        a_test("conv backward dw", 2, 10, outcome="wrong_value", diagnosis=diagnosis, output="dw is wrong: 4")])
    table = html_report.render([student]).split('<table id="cluster-table">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert len(rows) == 1 and "conv backward dx" in rows[0] and "conv backward dw" in rows[0]
