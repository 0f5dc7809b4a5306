"""The two builds of the hot path: compiled by mypyc, and the pure-Python fallback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import wschannels
from wschannels import _native, channels, codecs, engine, views

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(wschannels.__file__).parent
HOT_PATH = (channels, codecs, engine, views)
REPORT = (
    "import wschannels, wschannels.engine as e, wschannels.channels as c; "
    "print(wschannels.compiled, e.__file__.endswith('.py'), c.__file__.endswith('.py'))"
)


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "WSCHANNELS_PURE"} | env
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_compiled_reports_which_build_the_hot_path_runs() -> None:
    assert wschannels.compiled == all(_native.is_compiled(m) for m in HOT_PATH)
    if os.environ.get("WSCHANNELS_PURE") == "1":
        assert not wschannels.compiled
    elif os.environ.get("CI") == "true":
        # `make test` installs the compiled build: a silent fallback would hide a broken one.
        assert wschannels.compiled, "CI runs on the compiled build; see the install's output"


def test_wschannels_pure_runs_the_sources() -> None:
    if not (PACKAGE / "_native.json").exists():
        pytest.skip("this install is pure Python: nothing to opt out of")
    assert run_python(REPORT) == "True False False"
    assert run_python(REPORT, WSCHANNELS_PURE="1") == "False True True"


def test_an_edited_source_wins_over_the_stale_build(tmp_path: Path) -> None:
    if not (PACKAGE / "_native.json").exists():
        pytest.skip("this install is pure Python: no build to go stale")
    copy = tmp_path / "wschannels"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for shared in PACKAGE.parent.glob("*__mypyc.*"):  # the modules' shared library
        shutil.copy(shared, tmp_path)
    path = {"PYTHONPATH": str(tmp_path)}
    assert run_python(REPORT, **path) == "True False False"

    source = copy / "views.py"
    source.write_text(source.read_text() + "\nEDITED = True\n")
    assert run_python(REPORT + "; import wschannels.views as v; print(v.EDITED)", **path) == (
        "False True True\nTrue"
    )


@pytest.mark.timeout(300)
def test_without_a_compiler_the_build_is_pure_python(tmp_path: Path) -> None:
    """The wheel a machine without a C compiler builds: pure, complete, and it says why."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "hatch_build.py", "README.md", "LICENSE"):
        shutil.copy(REPO / name, project)
    shutil.copytree(
        REPO / "src",
        project / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "_native.json"),
    )
    env = {k: v for k, v in os.environ.items() if k != "WSCHANNELS_PURE"}
    env["CC"] = str(tmp_path / "no-compiler")  # what setuptools runs: missing
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "-w", str(tmp_path / "dist"), str(project)],
        capture_output=True, text=True, env=env, timeout=280,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "compiling with mypyc failed, building pure Python" in built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "wschannels/engine.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd")) or n.endswith("_native.json")]
