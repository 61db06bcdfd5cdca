"""Helpers of the browser tests (``tests/test_browser.py``): a real JupyterLab server in a scratch
copy of the course, and Debian's chromium driven by Playwright.

Nothing here downloads a browser: Playwright launches ``/usr/bin/chromium`` (Debian's
``chromium`` package, which ``.ci/run`` installs) through ``executable_path``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
#: Flags for a headless chromium that talks to nothing but the test server.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
    "--metrics-recording-only", "--mute-audio",
]
#: JupyterLab user settings for the tests: every notebook cell is in the page (JupyterLab 4's
#: default windowing keeps off-screen cells out of it), the terminal keeps its text in the DOM
#: (screen-reader mode), and nothing is fetched from the internet.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/terminal-extension/plugin": {"screenReaderMode": True, "fontSize": 12},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}
BINDIR = Path(sys.executable).parent
#: The server's address as its log prints it once it listens ("... is running at:" + URL).
_URL = re.compile(r"(http://127\.0\.0\.1:\d+/)")


def env_with_venv(**extra: str) -> dict[str, str]:
    """os.environ with this interpreter's bin/ first on PATH (nbgrader runs ``alembic``)."""
    return {**os.environ, "PATH": os.pathsep.join([str(BINDIR), os.environ.get("PATH", "")]),
            **extra}


def run_nbgrader(root: Path, steps: list[list[str]]) -> None:
    """nbgrader's commands in ``root``, in one child process (nbgrader imported once)."""
    code = ("import json, sys; from autograder.tools.selfcheck import run_nbgrader; "
            "run_nbgrader(json.loads(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, json.dumps(steps)], cwd=root,
                            env=env_with_venv(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {steps} failed:\n{result.stderr[-3000:]}"


def write_lab_settings(folder: Path) -> Path:
    """JupyterLab user settings (``*.jupyterlab-settings``) in ``folder``: :data:`LAB_SETTINGS`."""
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return folder


@dataclass
class Lab:
    """A running JupyterLab server: its base URL (ending in ``/``), token and root folder."""

    url: str
    token: str
    root: Path
    log: Path

    def lab_url(self, path: str = "lab") -> str:
        """The URL that logs in with the token; JupyterLab starts from an empty workspace."""
        return f"{self.url}{path}?reset&token={self.token}"


@contextmanager
def jupyter_lab(root: Path, scratch: Path, timeout: float = 120.0, *, bindir: Path = BINDIR,
                wrapper: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """Run ``jupyter lab`` on loopback in ``root``, on a port the OS picks (``--port=0``, no race
    between choosing a port and binding it), with a random token; yield a :class:`Lab`.

    The server's actual URL (its port) is read from its log, which prints it once the server
    listens. JupyterLab's config, data, runtime, settings and workspace folders are in ``scratch``,
    so nothing of the user's own JupyterLab setup is read or changed. The server is stopped
    (SIGTERM, then SIGKILL) on exit.

    ``bindir`` is the environment whose ``jupyter`` runs (default: this one); ``wrapper``, a
    command that runs the server (e.g. as another user), and ``env``, its whole environment
    (default: this one with ``bindir`` on PATH).
    """
    token = secrets.token_hex(16)
    runtime = scratch / "runtime"
    log_path = scratch / "jupyter-lab.log"
    env = {**(env_with_venv() if env is None else env), "JUPYTER_RUNTIME_DIR": str(runtime),
           "JUPYTER_CONFIG_DIR": str(scratch / "config"), "JUPYTER_DATA_DIR": str(scratch / "data")}
    cmd = [*wrapper, str(bindir / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port=0", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={write_lab_settings(scratch / 'settings')}",
           f"--LabApp.workspaces_dir={scratch / 'workspaces'}",
           # the terminal's shell keeps the server's PATH (this venv first): no rc files
           "--ServerApp.terminado_settings={'shell_command': ['/bin/bash', '--norc', '--noprofile']}"]
    if os.geteuid() == 0 and not wrapper:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    started = threading.Event()
    found: list[str] = []

    def drain() -> None:  # the log goes to a file; the line with the URL wakes the test up
        with open(log_path, "w") as log:
            for line in proc.stderr:
                log.write(line)
                log.flush()
                match = _URL.search(line)
                if match and not found:
                    found.append(match.group(1))
                    started.set()
        started.set()  # the server ended: let the waiter see it

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not started.wait(timeout) or not found:
            raise AssertionError(f"jupyter lab did not start in {timeout:g} s:\n{log_path.read_text()}")
        yield Lab(url=found[0], token=token, root=root, log=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium_page(timeout_ms: float = 60_000):
    """A page of Debian's headless chromium (never a downloaded browser), 1400 x 1000, whose
    actions wait up to ``timeout_ms``; the browser is closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(timeout_ms)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
