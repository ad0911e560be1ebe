"""Grading on a Dask cluster (--dask): real worker processes, one of them killed mid-batch."""
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from gradeconv import cli, dask_pool  # noqa: E402
from gradeconv.judging.grading import grade_submission  # noqa: E402
from gradeconv import rubric as rubrics  # noqa: E402
from gradeconv.submissions import discover  # noqa: E402
from tests.conftest import CORRECT, ROOT  # noqa: E402

SAMPLE = ROOT / "submissions"
#: waits that only catch a hang (a busy machine starts a cluster and grades several times slower)
GUARD_SECONDS = 300
RUBRIC = ROOT / "rubric.yaml"
#: the first call of conv_forward_naive sleeps 3 s (the rubric allows 5 s per call)
SLOW_PREFIX = "import time as _time\n_SLEPT = []\n\n"
SLOW_SLEEP = "    if not _SLEPT:\n        _SLEPT.append(1)\n        _time.sleep(3)\n"


def gradeconv(*args, timeout=GUARD_SECONDS):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gradeconv", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def without_timings(document: dict) -> dict:
    for row in document["submissions"]:
        row.pop("execution_time")
    return document


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes under nannies (a killed one is restarted), as --dask local:2 starts."""
    import dask
    with dask.config.set(dask_pool.LOCAL_CONFIG):
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                         dashboard_address=None, scheduler_kwargs=dask_pool.LOCAL_SCHEDULER,
                                         memory_limit=0, silence_logs=logging.ERROR)
    client = distributed.Client(local)
    yield local, client
    client.close()
    local.close()


@pytest.fixture
def small_class(tmp_path):
    """Correct, pad-0 crop bug, syntax error, a zip, an unreadable zip, and a folder with odd siblings."""
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copytree(SAMPLE / "alice", folder / "alice")
    shutil.copytree(SAMPLE / "bob_pad0_crop", folder / "bob_pad0_crop")
    shutil.copy(SAMPLE / "grace_syntax_error.py", folder / "grace_syntax_error.py")
    shutil.copy(SAMPLE / "ivan.zip", folder / "ivan.zip")
    (folder / "carl.zip").write_bytes(b"this is not a zip")
    odd = folder / "mallory" / "cs231n"
    odd.mkdir(parents=True)
    shutil.copy(CORRECT, odd / "layers.py")
    (odd / "notes.py").symlink_to("/etc/passwd")  # links are never followed: "not copied", locally and on workers
    os.mkfifo(odd / "pipe.py")
    with open(odd / "huge.py", "wb") as handle:
        handle.truncate(6 << 20)  # over the 5 MB a sibling may have
    (folder / "mallory" / "data.bin").write_bytes(b"\0" * 1000)  # not a .py file: never sent
    return folder


def test_a_local_cluster_grades_exactly_as_local_grading(small_class, tmp_path):
    local, dask = tmp_path / "local", tmp_path / "dask"
    graded = gradeconv(small_class, "--rubric", RUBRIC, "--jobs", 1, "--json", local / "r.json",
                       "--csv", local / "g.csv", "--feedback-dir", local / "fb", "--quiet")
    assert graded.returncode == 0, graded.stderr
    with socket.socket() as taken:  # Dask's default HTTP port busy, as with a second cluster on the machine
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen(1)
        except OSError:
            pass  # busy already
        on_dask = gradeconv(small_class, "--rubric", RUBRIC, "--dask", "local:2", "--json", dask / "r.json",
                            "--csv", dask / "g.csv", "--feedback-dir", dask / "fb", "--quiet")
    assert on_dask.returncode == 0, on_dask.stderr
    assert on_dask.stderr == ""  # --quiet: no Dask chatter either
    expected = without_timings(json.loads((local / "r.json").read_text()))
    found = without_timings(json.loads((dask / "r.json").read_text()))
    assert found == expected
    scores = {row["id"]: row["score"] for row in found["submissions"]}
    assert scores == {"alice": 100, "bob_pad0_crop": 90, "grace_syntax_error": 0, "ivan": 100, "carl": 0,
                      "mallory": 100}
    mallory = next(row for row in found["submissions"] if row["id"] == "mallory")
    assert "notes.py (a symbolic link)" in mallory["output"] and "huge.py (larger than 5 MB)" in mallory["output"]
    assert str(small_class / "carl.zip") in next(r for r in found["submissions"] if r["id"] == "carl")["output"]
    assert (dask / "g.csv").read_text() == (local / "g.csv").read_text()
    for feedback in (local / "fb").iterdir():
        assert (dask / "fb" / feedback.name).read_text() == feedback.read_text()


def test_a_worker_killed_mid_grade_gets_its_submission_regraded_once(cluster, tmp_path):
    local, client = cluster
    client.wait_for_workers(2, timeout=GUARD_SECONDS)
    folder = tmp_path / "class"
    slow = folder / "slow" / "cs231n"
    slow.mkdir(parents=True)
    source = CORRECT.read_text()
    anchor = "def conv_forward_naive(x, w, b, conv_param):\n"
    assert source.count(anchor) == 1
    (slow / "layers.py").write_text(SLOW_PREFIX + source.replace(anchor, anchor + SLOW_SLEEP))
    shutil.copytree(SAMPLE / "alice", folder / "alice")
    shutil.copytree(SAMPLE / "bob_pad0_crop", folder / "bob_pad0_crop")
    shutil.copy(SAMPLE / "grace_syntax_error.py", folder / "grace_syntax_error.py")
    rubric = rubrics.load(RUBRIC)
    assert rubric.limits.call_seconds >= 5
    submissions = discover([folder], rubric.module, rubric.package)
    slow_index = [s.id for s in submissions].index("slow")
    rows, failures = [], []

    def grade():
        try:
            rows.extend(dask_pool.grade_all_on_dask(submissions, rubric, local.scheduler_address))
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    grading = threading.Thread(target=grade)
    grading.start()
    worker = None
    deadline = time.monotonic() + GUARD_SECONDS
    while worker is None and time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(str(key).endswith(f"-{slow_index}") for key in keys):
                worker = address
        time.sleep(0.05)
    assert worker is not None, "the slow submission never started"
    time.sleep(1.0)  # inside its 3 s first call
    pid = client.run(os.getpid)[worker]
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    grading.join(GUARD_SECONDS)
    assert time.monotonic() - killed_at >= 2.5  # the slow one was graded again from the start, 3 s sleep included
    assert not grading.is_alive() and not failures, failures
    ids = sorted(row["id"] for row in rows)
    assert ids == sorted(s.id for s in submissions)  # exactly one row each
    scores = {row["id"]: row["score"] for row in rows}
    assert scores == {"slow": 100, "alice": 100, "bob_pad0_crop": 90, "grace_syntax_error": 0}
    assert pid not in client.run(os.getpid).values()  # the nanny started a fresh worker process
    slow_row = next(row for row in rows if row["id"] == "slow")
    assert slow_row["path"] == str(folder / "slow") and slow_row["execution_time"] >= 3


def test_a_worker_with_another_gradeconv_is_refused(cluster, tmp_path, monkeypatch, capsys):
    local, client = cluster
    client.wait_for_workers(2, timeout=GUARD_SECONDS)
    other = dict(dask_pool.own_identity(), gradeconv="0.0.9-other")
    monkeypatch.setattr(dask_pool, "client_identity", lambda: other)
    code = cli.main(["grade", str(SAMPLE / "alice"), "--rubric", str(RUBRIC), "--dask", local.scheduler_address,
                     "--json", str(tmp_path / "r.json"), "--quiet"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and error.startswith("gradeconv: Dask worker tcp://127.0.0.1:")
    assert "is refused" in error and "gradeconv 0.0.9-other" in error and "gradeconv 0.1.0" in error
    assert json.loads((tmp_path / "r.json").read_text())["submissions"] == []
    # a worker joining later is not checked up front: its task refuses to grade
    rubric = rubrics.load(RUBRIC)
    submissions = discover([SAMPLE / "alice"], rubric.module, rubric.package)
    with pytest.raises(dask_pool.WorkerMismatch, match="is refused: it has gradeconv 0.1.0"):
        list(dask_pool.grade_all_on_dask(submissions, rubric, local.scheduler_address, check=False))


def test_resume_on_a_cluster_keeps_finished_rows(cluster, tmp_path):
    local, client = cluster
    client.wait_for_workers(2, timeout=GUARD_SECONDS)
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("alice", "bob_pad0_crop"):
        shutil.copytree(SAMPLE / name, folder / name)
    shutil.copy(SAMPLE / "grace_syntax_error.py", folder / "grace_syntax_error.py")
    results = tmp_path / "r.json"
    first = gradeconv(folder, "--rubric", RUBRIC, "--dask", local.scheduler_address, "--json", results, "--quiet")
    assert first.returncode == 0, first.stderr
    data = json.loads(results.read_text())
    assert [row["id"] for row in data["submissions"]] == ["alice", "bob_pad0_crop", "grace_syntax_error"]
    data["submissions"] = [row for row in data["submissions"] if row["id"] != "bob_pad0_crop"]
    for row in data["submissions"]:
        row["execution_time"] = 12345.0  # kept rows are not regraded
    results.write_text(json.dumps(data))
    resumed = gradeconv(folder, "--rubric", RUBRIC, "--dask", local.scheduler_address, "--json", results,
                        "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = json.loads(results.read_text())["submissions"]
    assert [row["id"] for row in rows] == ["alice", "bob_pad0_crop", "grace_syntax_error"]
    assert [row["execution_time"] == 12345.0 for row in rows] == [True, False, True]
    assert rows[1]["score"] == 90


def test_a_bad_dask_address_is_one_line(tmp_path):
    for address, message in (("local:x", "give local:N"), ("local:0", "N >= 1")):
        result = gradeconv(SAMPLE / "alice", "--rubric", RUBRIC, "--dask", address)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr


def test_the_secret_travels_hidden_and_grades_hidden_tests_as_locally(cluster, tmp_path, monkeypatch):
    local, client = cluster
    client.wait_for_workers(2, timeout=GUARD_SECONDS)
    import yaml
    data = yaml.safe_load(RUBRIC.read_text())
    for test in data["tests"]:
        test["visibility"] = "hidden"
    data["secret_env"] = "GRADECONV_DASK_SECRET"
    (tmp_path / "rubric.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("GRADECONV_DASK_SECRET", "s3cret-value-for-the-test")  # not in the workers' environment
    rubric = rubrics.load(tmp_path / "rubric.yaml")
    payload = dask_pool.RubricPayload.of(rubric)
    assert "s3cret" not in repr(payload) and "s3cret" not in str(payload.secret)
    submissions = discover([SAMPLE / "bob_pad0_crop"], rubric.module, rubric.package)
    expected = [grade_submission(s, rubric).to_json() for s in submissions]
    rows = list(dask_pool.grade_all_on_dask(submissions, rubric, local.scheduler_address))
    for row in expected + rows:
        row.pop("execution_time")
    assert rows == expected and rows[0]["score"] == 90
    # the secret changes the hidden cases: grading with another secret draws others
    monkeypatch.setenv("GRADECONV_DASK_SECRET", "another")
    other = rubrics.load(tmp_path / "rubric.yaml")
    test = other.tests[1]
    assert other.seed_of(test) != rubric.seed_of(test)
    rebuilt = dask_pool.rebuild(payload)
    assert rebuilt.seed_of(test) == rubric.seed_of(test) and rebuilt.secret_fingerprint == rubric.secret_fingerprint
    assert rebuilt.path == rubric.path  # nothing written on the worker
