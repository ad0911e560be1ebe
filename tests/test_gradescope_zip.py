"""gradeconv gradescope-zip end to end: build the zip, unpack it into a simulated
/autograder, run setup.sh offline from the bundled wheel, grade submissions with
run_autograder and check results.json against Gradescope's "Autograder
Specifications" (field names and types)."""
import json
import os
import shutil
import site
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gradeconv.reports import gradescope, student_view
from gradeconv import __version__
from gradeconv.platforms import gradescope_zip
from tests.conftest import ROOT
from tests.test_prairielearn import gradeconv

HIDDEN = "conv backward dx: no padding (pad = 0)"
SAMPLE = ROOT / "submissions"
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
TEST_FIELDS = {"name": str, "number": str, "score": float, "max_score": float, "status": str, "output": str,
               "visibility": str, "tags": list, "extra_data": dict}


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    """The zip of the default rubric with its bob-catching test hidden and a secret file."""
    folder = tmp_path_factory.mktemp("course")
    text = (ROOT / "rubric.yaml").read_text()
    anchor = f'  - name: "{HIDDEN}"\n'
    assert text.count(anchor) == 1
    text = text.replace(anchor, anchor + "    visibility: hidden\n") + "\nsecret_file: keys/secret.txt\n"
    (folder / "course.yaml").write_text(text)
    (folder / "keys").mkdir()
    (folder / "keys" / "secret.txt").write_text("0123456789abcdef-hidden\n")
    out = folder / "dist" / "autograder.zip"
    done = gradeconv("gradescope-zip", "--rubric", folder / "course.yaml", "-o", out, cwd=folder, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "pip wheel from" in done.stdout
    return out


def install(autograder_zip, root, python=sys.executable):
    """What Gradescope does with the zip, offline: unpack into source/, copy run_autograder, run setup.sh."""
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(autograder_zip) as bundle:
        for info in bundle.infolist():
            bundle.extract(info, root / "source")
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), GRADECONV_OFFLINE="1", GRADECONV_PYTHON=str(python))
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True, text=True, env=env,
                          cwd=root / "source", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def run_autograder(root):
    env = dict(os.environ, AUTOGRADER_ROOT=str(root))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(root / "run_autograder")], capture_output=True, text=True, env=env, cwd=root,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text()), done


def check_results(data):
    """Gradescope's documented fields, each of its type."""
    assert isinstance(data["score"], (int, float)) and not isinstance(data["score"], bool)
    assert set(data) <= set(gradescope.TOP_LEVEL)  # only the keys the specification defines
    assert data["output_format"] == data["test_output_format"] and data["output_format"] in ("md", "text")
    assert isinstance(data["output"], str) and isinstance(data["tests"], list)
    for test in data["tests"]:
        assert set(TEST_FIELDS) <= set(test)
        for key, kind in TEST_FIELDS.items():
            assert isinstance(test[key], kind), (key, test)
        assert test["status"] in {"passed", "failed"} and test["visibility"] in VISIBILITIES
        assert all(isinstance(tag, str) for tag in test["tags"])
        assert 0 <= test["score"] <= test["max_score"]
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]))


def test_zip_layout(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as bundle:
        infos = {info.filename: info for info in bundle.infolist()}
        wheel = f"gradeconv-{__version__}-py3-none-any.whl"
        assert set(infos) == {"setup.sh", "run_autograder", wheel, "rubric/course.yaml", "rubric/keys/secret.txt"}
        for script in ("setup.sh", "run_autograder"):
            mode = infos[script].external_attr >> 16
            assert infos[script].create_system == 3 and stat.S_ISREG(mode) and mode & 0o777 == 0o755
            text = bundle.read(script)
            assert text.startswith(b"#!/usr/bin/env bash\n") and b"\r" not in text
        assert (infos["rubric/keys/secret.txt"].external_attr >> 16) & 0o077 == 0
        assert bundle.read("rubric/keys/secret.txt") == b"0123456789abcdef-hidden\n"


def test_setup_then_grade_correct_and_buggy(autograder_zip, tmp_path):
    root = tmp_path / "autograder"
    setup = install(autograder_zip, root)
    assert "gradeconv: autograder ready" in setup.stdout
    venv = root / gradeconv_zip_venv()
    assert stat.S_IMODE(venv.stat().st_mode) == 0o700
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import gradeconv; print(gradeconv.__file__)"],
                           capture_output=True, text=True, cwd=root, env={"PATH": os.environ["PATH"]})
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the bundled wheel, not the checkout
    assert stat.S_IMODE((root / "source" / "rubric" / "keys" / "secret.txt").stat().st_mode) & 0o077 == 0

    (root / "submission" / "cs231n").mkdir()
    shutil.copy2(SAMPLE / "alice" / "cs231n" / "layers.py", root / "submission" / "cs231n" / "layers.py")
    data, _ = run_autograder(root)
    check_results(data)
    assert data["score"] == data["extra_data"]["max_score"] == 100 and len(data["tests"]) == 15
    assert data["output"].startswith("```text\nsandbox:")

    shutil.rmtree(root / "submission")
    shutil.copytree(SAMPLE / "bob_pad0_crop", root / "submission")
    data, _ = run_autograder(root)
    check_results(data)
    assert data["score"] == 90
    hidden = next(t for t in data["tests"] if t["name"] == HIDDEN)
    assert hidden["visibility"] == "hidden" and hidden["status"] == "failed"
    # hidden tests keep their inputs, messages and outcome: name, points and pass/fail only
    assert "reproduce" not in hidden["extra_data"] and "outcome" not in hidden["extra_data"]
    assert hidden["output"] == "```text\n" + student_view.HIDDEN_NOTE + "\n```"

    shutil.rmtree(root / "submission")  # nothing submitted: gradeconv's own failure result
    data, _ = run_autograder(root)
    check_results(data)
    assert data["score"] == 0 and "could not grade" in data["output"]


def gradeconv_zip_venv():
    return gradescope_zip.VENV_NAME


PROBE = "gradeconv_outer_venv_probe"


def test_offline_setup_run_by_a_virtual_environments_python_sees_its_packages(autograder_zip, tmp_path):
    """GRADECONV_PYTHON a venv's Python (as when the tests run in one): the autograder's venv, made from
    it, sees that venv's packages (here a probe module; in a venv test run, gradeconv's dependencies)."""
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(outer)],
                   check=True, timeout=120)
    python = outer / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the outer venv sees what this interpreter sees, like one made from inside a venv by setup.sh
    (Path(purelib) / "parent.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({folder!r})" for folder in site.getsitepackages()) + "\n")
    (Path(purelib) / f"{PROBE}.py").write_text("WHERE = 'outer'\n")
    root = tmp_path / "autograder"
    install(autograder_zip, root, python)
    venv = root / gradeconv_zip_venv()
    seen = subprocess.run([str(venv / "bin" / "python"), "-c",
                           f"import gradeconv, {PROBE}; print(gradeconv.__file__); print({PROBE}.__file__)"],
                          capture_output=True, text=True, cwd=root, env={"PATH": os.environ["PATH"]})
    assert seen.returncode == 0, seen.stderr
    where, probe = seen.stdout.splitlines()
    assert where.startswith(str(venv)) and probe.startswith(purelib), seen.stdout


def test_run_autograder_without_gradeconv_still_writes_results(autograder_zip, tmp_path):
    """setup.sh never ran (or its venv is broken): the inline writer leaves a valid results.json."""
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(autograder_zip) as bundle:
        bundle.extract("run_autograder", root)
    os.chmod(root / "run_autograder", 0o755)
    data, done = run_autograder(root)
    check_results(data)
    assert data["score"] == 0 and data["tests"] == [] and "could not grade" in data["output"]
    assert "without a valid results.json" in done.stderr


def test_assembled_wheel_matches_the_pip_built_one(autograder_zip, tmp_path):
    with zipfile.ZipFile(autograder_zip) as bundle:
        built = zipfile.ZipFile(__import__("io").BytesIO(bundle.read(f"gradeconv-{__version__}-py3-none-any.whl")))
    assembled = zipfile.ZipFile(gradescope_zip.assemble_wheel(tmp_path))
    package_files = lambda wheel: {n for n in wheel.namelist() if ".dist-info/" not in n}
    assert package_files(assembled) == package_files(built)
    for name in ("gradeconv/__init__.py", "gradeconv/rubrics/default.yaml", "reference/layers.py"):
        assert assembled.read(name) == built.read(name), name
    dist_info = f"gradeconv-{__version__}.dist-info"
    assert f"Version: {__version__}" in assembled.read(f"{dist_info}/METADATA").decode()
    assert "gradeconv = gradeconv.cli:main" in assembled.read(f"{dist_info}/entry_points.txt").decode()
    record = assembled.read(f"{dist_info}/RECORD").decode().splitlines()
    assert len(record) == len(assembled.namelist())


def test_secret_env_goes_into_the_zip_only_when_set(tmp_path):
    rubric = tmp_path / "r.yaml"
    rubric.write_text((ROOT / "rubric.yaml").read_text() + "\nsecret_env: COURSE_SECRET_X\n")
    env_less = gradeconv("gradescope-zip", "--rubric", rubric, "-o", tmp_path / "a.zip", cwd=tmp_path)
    assert env_less.returncode == 2 and "COURSE_SECRET_X" in env_less.stderr
