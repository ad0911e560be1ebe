"""PrairieLearn's external grader: /grade/student in, /grade/results/results.json out.

The format (PrairieLearn's "External Grading" docs, "Grading results"): `score` in
[0, 1]; `gradable` false when there was nothing to grade (the student loses no
attempt); `message` and `output` for the whole submission; `tests` with `name`,
`description`, `points`, `max_points`, `message` and `output`. The file must stay
under 1 MB, so long outputs are shortened deterministically (head and tail kept)
and the message says so. PrairieLearn shows every test to the student: tests the
rubric keeps from students (visibility other than `visible`) show their name,
points and pass/fail only.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from gradeconv.reports.files import write_atomically
from gradeconv.reports.student_view import student_view

#: PrairieLearn's limit for results.json is 1 MB; stay under it
MAX_BYTES = 1_000_000
SHORTENED = " Some output was shortened to keep the results under 1 MB."
HIDDEN_NOTE = "hidden test: its details are not shown"
MIN_FIELD_CHARS = 200
IMAGES_LEFT_OUT = " Some pictures were left out to keep the results under 1 MB."
#: a heat map larger than this (PNG bytes) is left out: results.json must stay under MAX_BYTES
MAX_IMAGE_BYTES = 150_000


def not_gradable(message: str) -> dict:
    """Nothing could be graded: PrairieLearn records no score and costs the student no attempt."""
    return {"gradable": False, "score": 0.0, "message": message, "format_errors": [message],
            "output": "", "tests": []}


def from_submission(result: dict) -> dict:
    """PrairieLearn's results for one graded submission (a SubmissionResult's JSON), as its student may see it."""
    result = student_view(result)
    max_score = float(result.get("max_score") or 0.0)
    score = float(result.get("score") or 0.0)
    fraction = min(1.0, max(0.0, score / max_score)) if max_score > 0 else 0.0
    tests = [_test(test) for test in result.get("tests", [])]
    passed = sum(test["status"] == "passed" for test in result.get("tests", []))
    message = (f"{passed} of {len(tests)} tests passed: {score:g} of {max_score:g} points."
               if tests else result.get("output", "").splitlines()[0] if result.get("output") else "No tests ran.")
    return {"gradable": True, "score": round(fraction, 6), "message": message,
            "output": str(result.get("output", "")), "tests": tests}


def _test(test: dict) -> dict:
    extra = test.get("extra_data") or {}
    visible = test.get("visibility", "visible") == "visible"
    passed = test.get("status") == "passed"
    if not visible:
        message, output = ("passed" if passed else f"failed; {HIDDEN_NOTE}"), ""
    elif passed:
        message, output = "passed", str(test.get("output", ""))
    else:
        first = str(test.get("output", "")).splitlines()[:1]
        message = f"failed ({extra.get('outcome', 'failed')})" + (f": {first[0]}" if first else "")
        output = str(test.get("output", ""))
    function = extra.get("function")
    description = str(extra.get("description") or function or "") if visible else f"{function or ''} (hidden test)"
    entry = {"name": str(test.get("name", "")), "description": description.strip(),
             "points": float(test.get("score", 0.0)), "max_points": float(test.get("max_score", 0.0)),
             "message": message, "output": output}
    image = heat_map(extra.get("difference")) if visible and not passed else None
    if image:
        entry["images"] = [image]
    return entry


def heat_map(difference) -> dict | None:
    """The failure's |got - expected| heat map as PrairieLearn's image: {label, url} with a PNG data URL."""
    if not isinstance(difference, dict):
        return None
    from gradeconv.reports.html_report import difference_plot
    try:
        drawn = difference_plot(difference)
    except Exception:  # a missing picture is a lesser evil than no results.json
        return None
    if not drawn or len(drawn[0]) > MAX_IMAGE_BYTES:
        return None
    png, caption = drawn
    return {"label": caption, "url": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}


def encoded(results: dict) -> bytes:
    return (json.dumps(results, indent=2) + "\n").encode("utf-8")


def shorten(text: str, limit: int) -> str:
    """text cut to at most about `limit` characters, keeping its head and tail."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut ...]\n"
    head = limit // 2
    return text[:head] + marker + text[len(text) - (limit - head):]


def fit(results: dict, max_bytes: int = MAX_BYTES) -> dict:
    """results whose JSON is under max_bytes: the outputs and messages halved in length until it fits.

    The same input always gives the same output. Past the smallest length, test outputs are dropped.
    """
    if len(encoded(results)) < max_bytes:
        return results
    results = _fewer_images(results, max_bytes)  # the pictures go before the words
    if len(encoded(results)) < max_bytes:
        return results
    fields = [len(results.get("output", "")), len(results.get("message", ""))]
    fields += [len(t.get(key, "")) for t in results.get("tests", []) for key in ("output", "message")]
    limit = max(fields + [MIN_FIELD_CHARS])
    while True:
        limit = max(MIN_FIELD_CHARS, limit // 2)
        shortened = dict(results, output=shorten(results.get("output", ""), limit),
                         tests=[dict(t, output=shorten(t.get("output", ""), limit),
                                     message=shorten(t.get("message", ""), limit))
                                for t in results.get("tests", [])])
        shortened["message"] = shorten(results.get("message", ""), limit) + SHORTENED
        if len(encoded(shortened)) < max_bytes:
            return shortened
        if limit == MIN_FIELD_CHARS:
            break
    shortened["tests"] = [dict(t, output="") for t in shortened["tests"]]
    shortened["output"] = ""
    return shortened


def _fewer_images(results: dict, max_bytes: int) -> dict:
    """results without the heat maps of the last tests, dropped one test at a time until it fits (or none is left)."""
    tests = [dict(test) for test in results.get("tests", [])]
    with_images = [index for index, test in enumerate(tests) if test.get("images")]
    if not with_images:
        return results
    trimmed = dict(results, tests=tests, message=str(results.get("message", "")) + IMAGES_LEFT_OUT)
    for index in reversed(with_images):
        del tests[index]["images"]
        if len(encoded(trimmed)) < max_bytes:
            break
    return trimmed


def write(path: Path, results: dict) -> None:
    """Write results.json (creating /grade/results: PrairieLearn does not)."""
    write_atomically(Path(path), encoded(fit(results)).decode("utf-8"))
