"""A learner's files are theirs: their copies live in ``mywork/`` (made on first use, never
overwritten), ``release/`` stays what the course generated (``autograder/release.sha256``), and no
make target deletes or overwrites a notebook that differs from what the course generated:
``make release`` refuses with one line naming it; ``make demo``, ``make check`` and ``make lab``
leave it, and the course's grading state, as they were.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT, copy_course, nbgrader_meta

from autograder.tools import release
from course.mywork import MYWORK, copy_path, make_copies

A02, NB02 = "02_batchnorm_forward", "batchnorm_forward.ipynb"
MY_ANSWER = "def batch_stats(x):\n    return x.mean(axis=0), x.var(axis=0)  # my own work\n"
#: The course's own state besides release/: make demo must leave it as it was.
STATE = ("release", "submitted", "autograded", "feedback", "gradebook.db", MYWORK)


def _edit(path: Path) -> bytes:
    """Write MY_ANSWER into the batch_stats cell of the notebook at ``path``; return its bytes."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") == "batch_stats":
            cell.source = MY_ANSWER
    nbformat.write(nb, path)
    return path.read_bytes()


def _state(root: Path) -> dict[str, str]:
    files = {}
    for name in STATE:
        paths = [root / name] if (root / name).is_file() else sorted((root / name).rglob("*"))
        files |= {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in paths if p.is_file()}
    return files


def test_copies_are_made_once_and_never_overwritten(tmp_path):
    for rel in (f"release/{A02}/{NB02}", "release/04_x/provided.py", "release/04_x/x.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"released {rel}")
    (tmp_path / "release" / A02 / ".ipynb_checkpoints").mkdir()
    (tmp_path / "release" / A02 / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("")
    first = make_copies(tmp_path)
    assert sorted(p.relative_to(tmp_path / MYWORK).as_posix() for p in first) == [
        f"{A02}/{NB02}", "04_x/provided.py", "04_x/x.ipynb"]
    mine = copy_path(A02, NB02, tmp_path)
    mine.write_text("my work")
    (tmp_path / "release" / A02 / NB02).write_text("a newer release")
    (tmp_path / "release" / A02 / "new.py").write_text("a file added later")
    assert make_copies(tmp_path) == [tmp_path / MYWORK / A02 / "new.py"]
    assert mine.read_text() == "my work"
    assert make_copies(tmp_path) == []
    with pytest.raises(ValueError, match="assignment must be a plain"):
        copy_path("../etc", NB02, tmp_path)
    with pytest.raises(FileNotFoundError, match="release"):
        make_copies(tmp_path / "nowhere")


def test_the_committed_release_is_what_the_manifest_records():
    assert release.not_generated(ASSIGNMENTS, ROOT) == [], (
        "release/ differs from autograder/release.sha256: run `make release` and commit both")
    recorded = {rel.split("/")[1] for rel in release.read_manifest(ROOT)}
    assert recorded == set(ASSIGNMENTS)


def test_release_refuses_before_writing_and_names_every_foreign_file(tmp_path):
    course = copy_course(tmp_path / "course")
    edited = course / "release" / A02 / NB02
    mine = _edit(edited)
    duplicate = edited.with_name("batchnorm_forward-Copy1.ipynb")
    duplicate.write_bytes(mine)
    checkpoints = edited.parent / ".ipynb_checkpoints"
    checkpoints.mkdir()
    (checkpoints / "batchnorm_forward-checkpoint.ipynb").write_bytes(mine)
    before = _state(course)
    generated = []
    with pytest.raises(release.ReleaseRefused) as refused:
        release.regenerate(ASSIGNMENTS, course, generate=generated.append)
    assert generated == [], "nbgrader ran although release/ holds a learner's files"
    message = str(refused.value)
    assert "\n" not in message
    for path in (edited, duplicate):
        assert str(path.relative_to(course)) in message, message
    assert _state(course) == before
    # a checkpoint (a copy of a saved state) is not a learner's file of its own
    assert release.not_generated([A02], course) == sorted(
        str(p.relative_to(course)) for p in (duplicate, edited))


def test_release_regenerates_what_it_generated_and_records_it(tmp_path):
    course = copy_course(tmp_path / "course")
    target = course / "release" / A02 / NB02

    def fake_generate(assignment):  # nbgrader's --force: the folder is made anew
        for path in (course / "release" / assignment).iterdir():
            path.unlink()
        target.write_text("generated again")

    release.regenerate([A02], course, generate=fake_generate)
    assert release.read_manifest(course)[f"release/{A02}/{NB02}"] == release.file_hash(target)
    release.regenerate([A02], course, generate=fake_generate)  # its own output: not refused


def test_a_release_committed_at_head_counts_as_the_courses_own(tmp_path):
    """A merge that brings a newer committed release (the manifest not yet rewritten) is the
    course's work, not a learner's: git's blob of HEAD is the second witness. An edit on top of
    it is still refused."""
    course = copy_course(tmp_path / "course")
    target = course / "release" / A02 / NB02
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=course, check=True)
    target.write_bytes(target.read_bytes() + b"\n")  # committed, not in the manifest
    subprocess.run([*git, "add", "release"], cwd=course, check=True)
    subprocess.run([*git, "commit", "-qm", "release"], cwd=course, check=True)
    assert release.read_manifest(course)[f"release/{A02}/{NB02}"] != release.file_hash(target)
    assert release.blob_id(target) == subprocess.run(
        ["git", "hash-object", str(target)], capture_output=True, text=True,
        check=True).stdout.strip()
    assert release.not_generated([A02], course) == []
    _edit(target)
    assert release.not_generated([A02], course) == [f"release/{A02}/{NB02}"]


def _with_venv(course: Path) -> Path:
    """The course copy uses this checkout's .venv (its stamps are newer than the copy's
    pyproject.toml, so make installs nothing)."""
    (course / ".venv").symlink_to(ROOT / ".venv")
    return course


def _make(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=course, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "MAKEFLAGS": ""})


@pytest.mark.nbgrader
def test_a_learners_edited_notebooks_survive_release_demo_check_and_lab(tmp_path):
    course = _with_venv(copy_course(tmp_path / "course"))
    make_copies(course)
    in_mywork = _edit(copy_path(A02, NB02, course))
    in_release = _edit(course / "release" / A02 / NB02)  # as the README once told learners
    before = _state(course)

    refused = _make(course, "release")
    assert refused.returncode != 0
    lines = [ln for ln in refused.stderr.strip().splitlines() if not ln.startswith("make: ***")]
    assert len(lines) == 1 and f"release/{A02}/{NB02}" in lines[0], refused.stderr
    assert _state(course) == before

    demo = _make(course, "demo")
    # the demo grades in a scratch course (issue 22); here its release step refuses, in one line
    assert demo.returncode == 0 or f"release/{A02}/{NB02}" in demo.stderr, demo.stderr
    assert _state(course) == before

    check = _make(course, "check", f"NB={MYWORK}/{A02}/{NB02}")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Total:" in check.stdout
    assert _state(course) == before

    lab = _run_lab(course)
    assert "your work is in" in lab, lab
    assert _state(course) == before
    assert copy_path(A02, NB02, course).read_bytes() == in_mywork
    assert (course / "release" / A02 / NB02).read_bytes() == in_release


def _run_lab(course: Path) -> str:
    """``make lab`` until JupyterLab listens, then stop it; return what it printed."""
    args = ("--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=0 "
            "--ServerApp.port_retries=0 --IdentityProvider.token=test-token")
    env = {**os.environ, "MAKEFLAGS": "", "JUPYTER_RUNTIME_DIR": str(course.parent / "runtime"),
           "JUPYTER_CONFIG_DIR": str(course.parent / "config")}
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=course, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen: list[str] = []
    listening = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            seen.append(line)
            if re.search(r"http://127\.0\.0\.1:\d+/", line):
                listening.set()
        listening.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert listening.wait(180), "".join(seen)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    return "".join(seen)


def test_make_check_and_release_are_on_the_runtime_dependencies_only():
    makefile = (ROOT / "Makefile").read_text()
    check = makefile[makefile.index("\ncheck:"):].split("\n\n")[0]
    assert "$(STAMP)" in check and "$(DEV_STAMP)" not in check and " venv" not in check
