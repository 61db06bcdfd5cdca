"""JupyterLab's Formgrader works on the course directory: a real Jupyter server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ASSIGNMENTS

from autograder.course_dir import with_tools_on_path

TOKEN = "formgrader-test-token"


def _get(port: int, path: str):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _server_info(runtime: Path, proc: subprocess.Popen, seconds: float = 120) -> dict:
    """The ``jpserver-<pid>.json`` the server writes into its runtime folder once it listens
    (with the port the OS gave it): no port is picked before the server binds it."""
    info = runtime / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + seconds
    while not info.is_file():  # waits for the event (the file), not for a guessed time
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the Jupyter server did not start (exit code {proc.poll()})")
        time.sleep(0.1)
    for _ in range(100):  # the file is written in one go, but it may be caught half-written
        try:
            return json.loads(info.read_text())
        except json.JSONDecodeError:
            time.sleep(0.05)
    pytest.fail(f"unreadable {info}")


@pytest.fixture(scope="module")
def formgrader(demo_run, tmp_path_factory):
    root, _ = demo_run
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    bindir = Path(sys.executable).parent
    env = {**with_tools_on_path(), "JUPYTER_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen(
        [str(bindir / "jupyter"), "server", "--no-browser", "--allow-root", "--port=0",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={TOKEN}"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port = _server_info(runtime, proc)["port"]
        _get(port, "/formgrader/api/status")  # listening, with the formgrader extension loaded
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_formgrader_lists_every_assignment_with_its_points(formgrader):
    assignments = {a["name"]: a for a in _get(formgrader, "/formgrader/api/assignments")}
    assert set(ASSIGNMENTS) <= set(assignments)
    for name in ASSIGNMENTS:
        assert assignments[name]["max_code_score"] > 0, name
        assert assignments[name]["max_written_score"] > 0, f"{name} has no written question"


def test_formgrader_shows_the_autograded_demo_submissions(formgrader):
    for name in ASSIGNMENTS:
        subs = {s["student"]: s for s in _get(formgrader, f"/formgrader/api/submissions/{name}")}
        ada = subs["demo_ada"]
        assert ada["code_score"] == ada["max_code_score"], (name, ada)
        assert subs["demo_dee"]["code_score"] == 0, name
