"""JupyterLab's Formgrader works on the course directory: a real Jupyter server on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ASSIGNMENTS

TOKEN = "formgrader-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def formgrader(demo_run):
    root, _ = demo_run
    port = _free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": os.pathsep.join([str(bindir), os.environ.get("PATH", "")])}
    proc = subprocess.Popen(
        [str(bindir / "jupyter"), "server", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={TOKEN}", "--ServerApp.port_retries=0"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(port, "/formgrader/api/status")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the Jupyter server with the formgrader did not start in 60 s")
                time.sleep(0.5)
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
