"""Binder, tested as Binder runs it: the environment is built the way repo2docker builds it (a fresh
environment with ``environment.yml``'s pip list, then ``postBuild``), and JupyterLab runs as a
non-root user on a machine with no bubblewrap and no ``make``. The learner opens the badge's
start page, follows its link to their copy of 02, writes one function with a mistake, runs the
notebook's *Check my work* cell and reads the diagnosis, then Validate names the failing cell.

The badge is the README's, made from ``pyproject.toml``'s ``[project.urls]``. Screenshots go to
the artifact folder; ``make screenshots`` (``BN_SCREENSHOTS=docs``) refreshes the README's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from browser import chromium_page, jupyter_lab
from conftest import ROOT, copy_course

from autograder.course_dir import assignments
from autograder.tools import binder

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
from playwright.sync_api import expect  # noqa: E402

pytestmark = [pytest.mark.requires_system("chromium"), pytest.mark.nbgrader]

A02, NB02 = "02_batchnorm_forward", "batchnorm_forward.ipynb"
LEARNER = "nobody"  # Binder's user is not root; the sandbox's own user here
MISTAKE = '''def batch_stats(x):
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)
    return mean, var'''
CHECK_TIMEOUT = 600_000  # ms: the self-check of 02 on one busy core, nbgrader started cold
DOCS_PICTURES = {"binder-start": "binder-start.png", "binder-check-my-work": "binder-check-my-work.png"}


def test_the_badge_is_made_from_the_repository_in_pyproject():
    assert binder.readme_badges() == [binder.badge()], (
        "the README's Binder badge differs from pyproject.toml's [project.urls] Repository: "
        "run `python -m autograder.tools.binder`")
    url = urlsplit(binder.binder_url())
    owner, name = urlsplit(binder.repository_url()).path.strip("/").split("/")
    assert url.path == f"/v2/gh/{owner}/{name}/HEAD"
    assert parse_qs(url.query)["urlpath"] == [f"lab/tree/{binder.START_PAGE}"]
    assert (ROOT / binder.START_PAGE).is_file()


def test_the_start_page_links_every_assignments_learner_copy():
    import nbformat

    text = nbformat.read(ROOT / binder.START_PAGE, as_version=4).cells[0].source
    for assignment, notebook in assignments(ROOT).items():
        assert f"](mywork/{assignment}/{notebook})" in text, assignment


def _pip_list() -> list[str]:
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def _as_learner() -> tuple[str, ...]:
    """The command prefix that runs a program as the learner, on a machine without bubblewrap
    and make: a mount namespace where both are /dev/null, then (as root) the learner's uid."""
    hide = "".join(f"mount --bind /dev/null {p} && " for p in
                   (shutil.which("bwrap"), shutil.which("make")) if p)
    if os.geteuid() != 0:
        return ("unshare", "--user", "--map-root-user", "--mount", "--", "sh", "-c",
                f'{hide}exec "$@"', "sh")
    uid = pwd.getpwnam(LEARNER).pw_uid
    return ("unshare", "--mount", "--", "sh", "-c", f'{hide}exec "$@"', "sh", "setpriv",
            f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--")


def _binder_python() -> str:
    """A Python 3.11 that the learner may run: Binder's comes from conda-forge; here, as root,
    Debian's (pyenv's lives in /root, which no other user may enter)."""
    if os.geteuid() != 0:
        return sys.executable
    found = shutil.which("python3.11", path="/usr/local/bin:/usr/bin")
    if found is None:
        pytest.fail("the Binder test runs the learner as a non-root user and needs a Python 3.11 "
                    "outside /root: apt-get install python3.11-venv")
    return found


@pytest.fixture(scope="module")
def binder_home():
    """A repository copy with its environment built as repo2docker builds it; yields the
    repository, the environment's bin/ and the learner's environment variables. Everything is
    in a folder of its own below /tmp, which the learner may enter (pytest's are root's only)."""
    top = Path(tempfile.mkdtemp(prefix="bn-binder-", dir="/tmp"))
    try:
        yield _build(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _build(top: Path) -> tuple[Path, Path, dict[str, str]]:
    repo = copy_course(top / "repo")
    env_dir = top / "env"
    subprocess.run([_binder_python(), "-m", "venv", str(env_dir)], check=True)
    bindir = env_dir / "bin"
    # conda's pip step, as repo2docker runs it: the pip list as a requirements file, from the
    # folder of environment.yml (so "-e ." is the repository)
    requirements = top / "requirements.txt"
    requirements.write_text("\n".join(_pip_list()) + "\n")
    install = subprocess.run([str(bindir / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", "-r", str(requirements)], cwd=repo,
                             capture_output=True, text=True, timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    home = top / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": os.pathsep.join([str(bindir), "/usr/bin", "/bin"]),
           "LANG": "C.UTF-8", "USER": LEARNER}
    if os.geteuid() == 0:
        uid = pwd.getpwnam(LEARNER).pw_uid
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(top)], check=True)
    post = subprocess.run([*_as_learner(), "bash", "postBuild"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert post.returncode == 0, post.stdout + post.stderr
    assert (repo / "mywork" / A02 / NB02).is_file(), post.stdout
    return repo, bindir, env


@pytest.fixture(scope="module")
def lab(binder_home):
    repo, bindir, env = binder_home
    scratch = repo.parent / "lab"
    scratch.mkdir()
    if os.geteuid() == 0:
        uid = pwd.getpwnam(LEARNER).pw_uid
        os.chown(scratch, uid, uid)
    with jupyter_lab(repo, scratch, 180, bindir=bindir, wrapper=_as_learner(), env=env) as server:
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{uid}:{uid}", str(scratch)], check=True)
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with chromium_page(120_000) as page:
        yield page


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("BN_ARTIFACTS") or tmp_path_factory.mktemp("binder-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbinder screenshots: {folder}")
    return folder


def shot(target, artifacts: Path, name: str) -> None:
    path = artifacts / f"{name}.png"
    target.screenshot(path=str(path))
    docs = os.environ.get("BN_SCREENSHOTS")
    if docs and name in DOCS_PICTURES:
        Path(docs).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(docs) / DOCS_PICTURES[name])


def test_a_learner_on_binder_checks_their_work_and_validates(page, lab, artifacts):
    from test_browser import cell, run, save, type_into, validate

    urlpath = parse_qs(urlsplit(binder.readme_badges()[0].split("](")[-1].rstrip(")")).query)[
        "urlpath"][0]
    page.goto(lab.lab_url(urlpath))
    start = page.locator(".jp-NotebookPanel:visible")
    expect(start.locator(".jp-RenderedMarkdown").first).to_contain_text("start here")
    assert page.locator(".jp-FileEditor:visible").count() == 0  # rendered, not the text editor
    for assignment, name in assignments(lab.root).items():
        expect(start.locator(f".jp-RenderedMarkdown a[href*='mywork/{assignment}/{name}']")
               ).to_have_count(1)
    shot(page, artifacts, "binder-start")

    start.locator(f"a[href*='mywork/{A02}/{NB02}']").click()
    expect(page.locator(".lm-TabBar-tab.jp-mod-current")).to_contain_text(NB02)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=CHECK_TIMEOUT)
    mine = lab.root / "mywork" / A02 / NB02
    run(page, "setup")
    type_into(page, "batch_stats", MISTAKE)
    run(page, "batch_stats")
    save(page, mine, "x.var(axis=0, ddof=1)")

    # the check cell by its place in the notebook, not as "the last cell": Shift+Enter on the
    # last cell adds an empty cell below it, which would then be the last
    check = cell(page, "check_my_work")
    check.scroll_into_view_if_needed()
    check.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")
    report = check.locator(".jp-OutputArea")
    expect(report).to_contain_text("Total:", timeout=CHECK_TIMEOUT)
    text = report.inner_text()
    assert "without it: this is your own code on your own machine" in text, text  # no bwrap
    batch_stats = text[text.index("test_batch_stats:"):text.index("test_normalize:")]
    assert "Diagnosis M1" in batch_stats and "yours:" in batch_stats, text
    # nothing of the machinery (bytecode, caches) is charged to the learner: M1 costs its part
    assert "Flag [" not in text and "scores 0" not in batch_stats, text
    # the picture: the cell and the top of its report (the diagnosis), not the report's end
    check.evaluate("cell => cell.scrollIntoView({block: 'start'})")
    expect(report.get_by_text("Diagnosis M1:", exact=False)).to_be_in_viewport()
    shot(page, artifacts, "binder-check-my-work")

    kind, dialog = validate(page, artifacts, "binder-validate")
    assert kind == "error" and "The following cell failed" in dialog, dialog
    assert "Traceback" not in dialog.split("The following cell failed")[0]
    assert "BN_UNSANDBOXED" not in dialog and "batch_stats" in dialog, dialog
    assert cell(page, "batch_stats").is_visible()
