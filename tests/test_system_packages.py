"""``make test`` on a fresh machine: a test that needs a missing system package (bubblewrap,
postgresql, chromium) is skipped with one line, and the run ends with the one ``apt-get install``
line that would run them; under ``CI=true`` the same tests fail.

A fresh machine is this one with the three packages hidden in a private mount namespace:
``/usr/bin/bwrap`` and ``/usr/bin/chromium`` become ``/dev/null`` (not executable, not a file)
and ``/usr/lib/postgresql`` an empty folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SYSTEM_PACKAGES

#: One test per package, each of which needs only that package.
NEEDS = {
    "bubblewrap": "tests/test_sandbox.py::test_check_sandbox_works_here",
    "postgresql": "tests/test_postgres.py::test_server_is_throwaway_on_a_socket_and_unprivileged",
    "chromium": "tests/test_browser.py::test_1_student_reads_the_visible_test_message",
}


def _fresh_machine_pytest(*args: str, ci: bool) -> subprocess.CompletedProcess:
    hide = "".join(f"mount --bind /dev/null {path} && " for path in
                   (shutil.which("bwrap"), "/usr/bin/chromium") if path and os.path.exists(path))
    if os.path.isdir("/usr/lib/postgresql"):
        hide += "mount -t tmpfs none /usr/lib/postgresql && "
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else [
        "unshare", "--user", "--map-root-user", "--mount"]
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not (p and os.path.isfile(os.path.join(p, "initdb"))))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-ra", *args]
    return subprocess.run([*unshare, "--", "sh", "-c", f'{hide}exec "$@"', "sh", *cmd],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_every_package_the_tests_need_is_named_with_a_probe():
    assert set(SYSTEM_PACKAGES) == set(NEEDS)
    for package, (what, missing) in SYSTEM_PACKAGES.items():
        assert what and callable(missing), package


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
def test_missing_system_packages_skip_in_one_line_each_and_the_run_names_the_install_line():
    result = _fresh_machine_pytest(*NEEDS.values(), ci=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "3 skipped" in out, out
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    for package in NEEDS:
        mine = [line for line in skips if f"needs the system package {package} " in line]
        assert len(mine) == 1, (package, skips)
        assert f"apt-get install {package}" in mine[0]
    assert out.rstrip().splitlines()[-1] == (
        "Tests were skipped for missing system packages; to run them: "
        "apt-get install bubblewrap postgresql chromium"), out[-600:]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
def test_under_ci_a_missing_system_package_fails_instead():
    result = _fresh_machine_pytest(*NEEDS.values(), ci=True)
    out = result.stdout
    assert result.returncode != 0, out
    for package in NEEDS:
        assert f"needs {package} (" in out and "CI=true forbids skipping" in out, out
    assert "3 failed" in out or "3 error" in out, out[-600:]
    assert "apt-get install bubblewrap" not in out.rstrip().splitlines()[-1]
