"""Output costs nothing but time (issue 11, item 4).

The worker keeps the head and the tail of what student code prints (print, sys.stdout/stderr and
their buffers, os.write to fds 1 and 2) and cuts the middle behind a marker, so a 50 MB print
never fails the call and the log files stay small.
"""
import os
import resource
import subprocess
import sys

import pytest

from gradeconv import outcomes
from gradeconv.judging.grading import grade_submission
from gradeconv.sandbox import process, session, worker
from gradeconv.submissions import Submission
from tests.conftest import CORRECT

SOURCE = CORRECT.read_text()
POOL_FORWARD = "def max_pool_forward_naive(x, pool_param):\n"
FIFTY_MB = 50 << 20
#: every call prints 50 MB to stdout in one print, and more through every other way to fd 1 and 2
LOUD = ("    import os, sys\n"
        "    print('HEAD-START')\n"
        "    print('x' * (50 << 20))\n"
        "    sys.stdout.write('y' * (20 << 20))\n"
        "    sys.stdout.buffer.write(b'b' * (20 << 20))\n"
        "    os.write(1, b'z' * (20 << 20))\n"
        "    sys.stderr.write('STDERR-START' + 'e' * (70 << 20))\n"
        "    print('STDERR-END', file=sys.stderr)\n"
        "    print('THE-END', flush=True)\n")


def test_printing_50_mb_in_every_call_passes_with_head_and_tail_kept(small_rubric, tmp_path, monkeypatch):
    folder = tmp_path / "loud" / "cs231n"
    folder.mkdir(parents=True)
    (folder / "layers.py").write_text(SOURCE.replace(POOL_FORWARD, POOL_FORWARD + LOUD, 1))
    log_sizes = []
    read = session.truncated_text

    def measured(path, *args, **kwargs):
        log_sizes.append(path.stat().st_size if path.exists() else 0)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(session, "truncated_text", measured)
    result = grade_submission(Submission(id="loud", path=tmp_path / "loud"), small_rubric)
    for test in result.tests:
        assert test.outcome == outcomes.PASSED and test.score == test.points, f"{test.name}: {test.output}"
    printed, _, written = result.output.partition("your code wrote to stderr (quoted):")
    assert "  | HEAD-START" in printed and "bytes cut ...]" in printed
    assert printed.rstrip().endswith("zTHE-END")  # os.write's bytes end without a newline
    assert "  | STDERR-START" in written and "bytes cut ...]" in written
    assert written.rstrip().endswith("eSTDERR-END")
    assert len(result.output) < 10_000
    # bounded: this worker's share of each log is head + marker + tail, whatever was printed
    assert len(log_sizes) == 2 and all(size <= 2 * session.KEPT_OUTPUT_BYTES for size in log_sizes), log_sizes


def test_the_kept_bytes_fit_what_the_parent_shows_in_full():
    """head + marker + tail of one worker fit the parent's 2 x KEPT_OUTPUT_BYTES, so the marker counts
    the real bytes cut instead of being cut itself."""
    marker = f"\n[... {1 << 40} bytes cut ...]\n"
    assert 2 * process.OUTPUT_KEPT_BYTES + len(marker) <= 2 * session.KEPT_OUTPUT_BYTES


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "stdout"
    path.write_bytes(b"an earlier worker's output\n")  # a restarted worker appends to the same log
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    yield path, fd
    os.close(fd)


def test_a_capped_log_keeps_head_marker_and_tail(log):
    path, fd = log
    capped = worker.CappedLog(fd, 100, 50)
    chunks = [b"h" * 60, b"H" * 60, b"m" * (3 << 20), b"x" * 30, b"T" * 40]
    for chunk in chunks:
        assert capped.write(chunk) == len(chunk)
    capped.flush()
    data = path.read_bytes()
    earlier = b"an earlier worker's output\n"
    cut = sum(map(len, chunks)) - 100 - 50
    assert data == earlier + b"h" * 60 + b"H" * 40 + f"\n[... {cut} bytes cut ...]\n".encode() + b"m" * 0 + (
        b"x" * 10 + b"T" * 40)


def test_a_capped_log_never_raises_on_a_file_error(tmp_path):
    """A log that cannot be written (here: read-only, as if RLIMIT_FSIZE or a full disk refused it)."""
    path = tmp_path / "stdout"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        capped = worker.CappedLog(fd, 10, 10)
        assert capped.write(b"x" * 100) == 100
        capped.flush()
        with pytest.raises(TypeError):  # not a buffer: the student's own mistake, raised as a file would
            capped.write("text")
    finally:
        os.close(fd)


def test_output_past_the_file_size_limit_does_not_fail(tmp_path):
    """The old failure, reproduced in a child under a 1 MB RLIMIT_FSIZE: a 50 MB print passes."""
    path = tmp_path / "stdout"
    script = (f"import sys\nsys.path.insert(0, {os.path.dirname(worker.__file__)!r})\nimport worker\n"
              f"logs = worker.cap_output(1900, 1900)\n"
              f"print('first line')\nprint('x' * {FIFTY_MB})\nimport os\nos.write(1, b'y' * {FIFTY_MB})\n"
              f"print('last line')\nfor log in logs:\n    log.flush()\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    with open(path, "ab") as out:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", script], stdout=out, stderr=subprocess.PIPE,
                              preexec_fn=limit, timeout=30)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    data = path.read_bytes()
    assert data.startswith(b"first line\n") and data.endswith(b"last line\n")
    assert f"[... {2 * FIFTY_MB + 11 + 1 + 10 - 2 * 1900} bytes cut ...]".encode() in data
    assert len(data) < 4000
