"""The sandboxed kernel and the dead-kernel-proof Execute step, under real ``nbgrader autograde``.

A throw-away assignment (one answer cell, two one-point test cells) is added to a scratch copy
of the course, whose own ``nbgrader_config.py`` is the one in use. Every hostile submission of
``tests/hostile/sandbox_cases.py`` is one student; all of them are graded by a single
``nbgrader autograde`` call, after one well-behaved student was graded by an earlier call, and
before another well-behaved student (``zz_after``, graded last) — so the tests also see that
grading goes on and that earlier grades survive.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import (
    add_fixture_checks,
    cell_metadata,
    copy_course,
    load_hostile_cases,
    require_bwrap,
    requires_bwrap,
)
from nbgrader.api import Gradebook

from autograder.checks.framework import flags_in
from autograder.course_dir import with_tools_on_path
from autograder.kernel.sandbox import (
    Limits,
    bwrap_command,
    check_sandbox,
    describe_exit,
    holds_hidden_half,
    matplotlib_font_caches,
    python_paths,
    sandbox_env,
    unsandboxed_requested,
)

cases = load_hostile_cases("sandbox_cases")

ASSIGNMENT = "99_sandbox"
NOTEBOOK = "sandbox"
GOOD_ANSWER = "def f(x):\n    return x + 1\n"
#: Seconds per cell for the cases that hang on purpose (flag ``cell-timeout``): they are graded
#: in an autograde call of their own (student ids ``hang_<case>``), so that no honest cell of the
#: other submissions depends on finishing in so short a time (those get the course's 60 s).
TIMEOUT = 3
HANGS = {name for name, case in cases.CASES.items() if "cell-timeout" in case.flags}


def student_of(case_name: str) -> str:
    """The student id a hostile case is submitted under."""
    return f"hang_{case_name}" if case_name in HANGS else case_name
# The sandbox alone, without the trusted preamble (autograder.kernel.launcher, tested in test_guard.py)
# that also flags many of these attempts: each must be stopped by the sandbox itself.
BARE_KERNEL = "--SandboxedKernelManager.kernel_module=ipykernel_launcher"


def source_notebook() -> nbformat.NotebookNode:
    """One answer cell and two one-point test cells; the solution holds a secret marker."""
    cells = [
        nbformat.v4.new_markdown_cell("Write `f(x) = x + 1`."),
        nbformat.v4.new_code_cell(
            f"### BEGIN SOLUTION\n# {cases.SECRET}\n{GOOD_ANSWER}### END SOLUTION",
            metadata=cell_metadata("answer", grade=False, solution=True),
        ),
        nbformat.v4.new_code_cell("from autograder.checks import check_f_at_1; check_f_at_1(f)",
                                  metadata=cell_metadata("test_f", grade=True, solution=False, points=1)),
        nbformat.v4.new_code_cell("from autograder.checks import check_f_at_2; check_f_at_2(f)",
                                  metadata=cell_metadata("test_g", grade=True, solution=False, points=1)),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def nbgrader(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in ``root`` (the scratch course)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), *args], cwd=root,
        env=with_tools_on_path({**os.environ, **(env or {})}),
        capture_output=True, text=True, timeout=600,
    )


def submit(root: Path, student: str, answer: str) -> None:
    """Place ``student``'s notebook: the release notebook with ``answer`` in the answer cell."""
    nb = nbformat.read(root / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "answer":
            cell.source = answer
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{NOTEBOOK}.ipynb")


def score(root: Path, student: str) -> float:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return gb.find_submission(ASSIGNMENT, student).score


def autograded(root: Path, student: str) -> Path:
    return root / "autograded" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"


def output_text(path: Path) -> str:
    """Everything a student's autograded notebook shows in its outputs, as one string."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts += [out.get("text", ""), out.get("ename", ""), out.get("evalue", "")]
            parts += out.get("traceback", [])
            parts += [str(v) for v in out.get("data", {}).values()]
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))  # without ANSI colours


class Listener:
    """A TCP server on the grading host's loopback that counts connections."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        """Stop serving and end the thread (later tests must see no extra thread: the runner
        spawns instead of forking when the process runs threads)."""
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.server.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the listener thread did not stop"

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def released_course(dst: Path) -> Path:
    """A scratch copy of the course at ``dst`` with the 99_sandbox assignment released."""
    root = copy_course(dst)
    add_fixture_checks(root)
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(source_notebook(), root / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    result = nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A scratch course with the 99_sandbox assignment released."""
    return released_course(tmp_path_factory.mktemp("sandbox") / "course")


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    """``good`` graded alone (with the course's own kernel); then every hostile case and
    ``zz_after`` in one autograde call, in the bare sandboxed kernel."""
    require_bwrap()
    submit(course, "good", GOOD_ANSWER)
    first = nbgrader(course, "autograde", ASSIGNMENT)
    assert first.returncode == 0, first.stderr
    good_before = score(course, "good")

    secret = tmp_path_factory.mktemp("instructor_home") / "secret.txt"
    secret.write_text(cases.SECRET)
    listener = Listener()
    for name, case in cases.CASES.items():
        answer = (case.answer.replace("PORT", str(listener.port))
                  .replace("HOST_SECRET", str(secret)).replace("COURSE_ROOT", str(course))
                  .replace("OTHER", "good"))
        submit(course, student_of(name), answer)
    submit(course, "zz_after", GOOD_ANSWER)
    # the other student's submission holds a secret too
    other = course / "submitted" / "good" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    other.write_text(other.read_text().replace("return x + 1", f"return x + 1  # {cases.SECRET}"))
    hung = nbgrader(course, "autograde", ASSIGNMENT, "--student=hang_*",
                    f"--Execute.timeout={TIMEOUT}", BARE_KERNEL)
    assert hung.returncode == 0, hung.stderr[-3000:]
    # every other case, and zz_after last; good and hang_* are graded already and skipped
    run = nbgrader(course, "autograde", ASSIGNMENT, BARE_KERNEL)
    listener.close()
    return {"root": course, "run": run, "good_before": good_before, "listener": listener}


@pytest.mark.parametrize("name", list(cases.CASES))
def test_hostile_submission(graded, name):
    """Each case gets its expected score and a readable reason (and flags) in its notebook."""
    case = cases.CASES[name]
    root = graded["root"]
    path = autograded(root, student_of(name))
    assert path.exists(), f"{name} was not graded:\n{graded['run'].stderr[-3000:]}"
    text = output_text(path)
    assert score(root, student_of(name)) == pytest.approx(case.score), text[-2000:]
    for reason in case.reasons:
        assert reason in text, text[-2000:]
    kinds = {kind for kind, _ in flags_in(text)}
    assert set(case.flags) <= kinds, (kinds, text[-2000:])
    for secret in case.absent:
        assert secret not in text


def test_grading_goes_on_and_earlier_grades_survive(graded):
    root = graded["root"]
    assert graded["good_before"] == 2
    assert score(root, "good") == 2  # graded by the first call, untouched by the second
    assert score(root, "zz_after") == 2  # graded after every hostile case
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        students = {s.student.id for s in gb.find_assignment(ASSIGNMENT).submissions}
    assert students == {"good", "zz_after", *map(student_of, cases.CASES)}
    assert graded["run"].returncode == 0, graded["run"].stderr[-3000:]


def test_dead_kernel_marks_remaining_cells_not_run(graded):
    nb = nbformat.read(autograded(graded["root"], "segfault"), as_version=4)
    test_f, test_g = nb.cells[2], nb.cells[3]
    assert any(o.get("ename") == "DeadKernelError" for o in test_f.outputs)
    assert [o.get("ename") for o in test_g.outputs] == ["CellNotRun"]
    assert "the kernel died in cell 2 (test_f)" in test_g.outputs[0]["evalue"]


def test_big_output_is_truncated(graded):
    path = autograded(graded["root"], "big_output")
    assert path.stat().st_size < 3 * 1024**2  # the student printed 11 MB


def test_no_network_and_nothing_written_outside(graded):
    root = graded["root"]
    assert graded["listener"].connections == 0
    assert not (root / "evil.txt").exists()
    assert not (root / "course" / "evil.py").exists()
    assert not (root / "autograded" / "evil.txt").exists()
    assert not Path("/tmp/private.txt").exists()
    # the kernel wrote own.txt in its private scratch copy, which is thrown away afterwards
    own = root / "autograded" / "write_outside" / ASSIGNMENT
    assert not (own / "own.txt").exists()
    assert "own.txt" not in output_text(autograded(root, "write_outside"))
    text = output_text(autograded(root, "write_outside"))
    assert "WROTE" not in text.replace("'WROTE'", "")


def test_only_its_own_folder_and_the_python_install_are_visible(graded):
    text = output_text(autograded(graded["root"], "read_outside"))
    assert "autograded/ holds ['read_outside']" in text  # no other student's folder
    # the instructor's home shows only the folders of the Python installation inside it
    python_in_root = sorted({p.relative_to("/root").parts[0] for p in python_paths()
                             if Path("/root") in p.parents})
    assert f"/root holds {python_in_root}" in text


@requires_bwrap
def test_kernel_runs_unprivileged_and_sees_only_what_it_needs(course):
    """A probe notebook reports the kernel's uid, limits and view of the course."""
    probe = (
        "import os, resource, json\n"
        f"print('PROBE', json.dumps({{'uid': os.getuid(), 'course': sorted(os.listdir({str(course)!r})),"
        " 'nproc': resource.getrlimit(resource.RLIMIT_NPROC)[0],"
        " 'as': resource.getrlimit(resource.RLIMIT_AS)[0],"
        " 'fsize': resource.getrlimit(resource.RLIMIT_FSIZE)[0],"
        " 'cwd': os.getcwd(), 'tmp': sorted(os.listdir('/tmp/matplotlib'))}))\n\n"
        + GOOD_ANSWER
    )
    submit(course, "probe", probe)
    run = nbgrader(course, "autograde", ASSIGNMENT, "--student=probe", BARE_KERNEL,
                   "--SandboxedKernelManager.memory_limit=1500000000")
    assert run.returncode == 0, run.stderr
    text = output_text(autograded(course, "probe"))
    seen = json.loads(re.search(r"PROBE (\{.*\})", text).group(1))
    assert seen["uid"] != 0
    assert seen["course"] == ["autograded", "autograder", "course", "data"]
    assert seen["as"] == 1_500_000_000  # from the command line, through nbgrader's config
    assert seen["nproc"] == Limits().processes
    assert seen["fsize"] == Limits().file_bytes
    assert seen["cwd"] == str(course / "autograded" / "probe" / ASSIGNMENT)
    assert seen["tmp"] == [p.name for p in matplotlib_font_caches()]  # seeded: no rebuild
    assert score(course, "probe") == 2


@requires_bwrap
def test_another_course_checkout_on_pythonpath_is_not_mounted(course):
    """The repository this suite runs from is on the grader's PYTHONPATH (as the grader's own
    package often is): the kernel must not see its reference, checks or source notebooks, and a
    checkout in a folder only its owner may enter (``mktemp -d``, as CI clones) must not stop
    the kernel from starting."""
    repo = Path(__file__).resolve().parents[1]
    assert (repo / "autograder" / "reference" / "__init__.py").is_file()
    probe = (
        "import os, sys\n"
        f"repo = {str(repo)!r}\n"
        "seen = [p for p in ('autograder/reference', 'autograder/checks', 'source')"
        " if os.path.exists(os.path.join(repo, p))]\n"
        "print('REPO-SEEN', seen, repo in sys.path)\n\n" + GOOD_ANSWER
    )
    submit(course, "other_checkout", probe)
    run = nbgrader(course, "autograde", ASSIGNMENT, "--student=other_checkout", BARE_KERNEL,
                   env={"PYTHONPATH": os.pathsep.join([str(repo), str(course)])})
    assert run.returncode == 0, run.stderr
    assert "REPO-SEEN [] True" in output_text(autograded(course, "other_checkout"))
    assert score(course, "other_checkout") == 2


def test_holds_hidden_half_recognises_a_course_folder(tmp_path):
    assert not holds_hidden_half(tmp_path)
    (tmp_path / "source").mkdir()
    assert holds_hidden_half(tmp_path)
    lib = tmp_path / "lib"
    (lib / "autograder").mkdir(parents=True)
    assert not holds_hidden_half(lib)  # a folder named autograder is not yet a package
    (lib / "autograder" / "__init__.py").write_text("")
    assert holds_hidden_half(lib)


def test_refuses_without_bubblewrap_and_runs_unsandboxed_on_request(course):
    submit(course, "refused", GOOD_ANSWER)
    missing = "--SandboxedKernelManager.bwrap_path=/nonexistent/bwrap"
    refused = nbgrader(course, "autograde", ASSIGNMENT, "--student=refused", missing)
    assert refused.returncode != 0
    assert "/nonexistent/bwrap not found" in refused.stderr
    assert "apt-get install bubblewrap" in refused.stderr
    assert "BN_UNSANDBOXED=1" in refused.stderr
    assert not (course / "autograded" / "refused").exists()  # refused before touching anything

    run = nbgrader(course, "autograde", ASSIGNMENT, "--student=refused", missing,
                   env={"BN_UNSANDBOXED": "1"})
    assert run.returncode == 0, run.stderr
    assert "WARNING: BN_UNSANDBOXED is set" in run.stderr
    text = output_text(autograded(course, "refused"))
    assert [kind for kind, _ in flags_in(text)] == ["sandbox-off"]
    assert score(course, "refused") == 2


# -- the pieces, without nbgrader --------------------------------------------------------------


def test_limits_reject_bad_values():
    with pytest.raises(ValueError, match="Limits.cpu_seconds must be a positive int, got 0"):
        Limits(cpu_seconds=0)
    with pytest.raises(ValueError, match="memory_bytes"):
        Limits(memory_bytes=2.5e9)


def test_describe_exit_names_signals_and_codes():
    assert describe_exit(128 + signal.SIGSEGV) == "killed by SIGSEGV (segmentation fault)"
    assert describe_exit(-signal.SIGKILL).startswith("killed by SIGKILL")
    assert "CPU-time limit" in describe_exit(128 + signal.SIGXCPU)
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(None) == "stopped for an unknown reason"


def test_unsandboxed_requested_reads_the_environment():
    assert unsandboxed_requested({"BN_UNSANDBOXED": "1"})
    assert unsandboxed_requested({"BN_UNSANDBOXED": "yes"})
    assert not unsandboxed_requested({"BN_UNSANDBOXED": "0"})
    assert not unsandboxed_requested({})


def test_sandbox_env_keeps_secrets_out():
    env = sandbox_env({"AWS_SECRET_ACCESS_KEY": "x", "PYTHONPATH": "/elsewhere", "BN_SEED": "3",
                       "HOME": "/root"}, Path("/course"))
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["PYTHONPATH"] == os.pathsep.join(["/course", "/elsewhere"])
    assert env["BN_SEED"] == "3" and env["HOME"] == "/tmp"


def test_bwrap_command_masks_the_course_before_binding_back():
    root = Path("/srv/course")
    cmd = bwrap_command(["python", "-m", "ipykernel_launcher"], cwd=root / "autograded/s/a",
                        run_dir=Path("/tmp/bn-kernel-x"), course_root=root, limits=Limits())
    mask = cmd.index(str(root), cmd.index("--tmpfs"))
    binds = [i for i, a in enumerate(cmd) if a in ("--bind", "--ro-bind")
             and cmd[i + 2].startswith(str(root) + "/")]
    assert binds and all(i > mask for i in binds)
    assert "--unshare-net" in cmd
    assert cmd[-3:] == ["python", "-m", "ipykernel_launcher"]
    with pytest.raises(ValueError, match="seed_files destinations must be under /tmp"):
        bwrap_command(["python"], cwd=root, run_dir=Path("/tmp/x"), course_root=root,
                      limits=Limits(), seed_files={3: Path("/etc/passwd")})
    with pytest.raises(ValueError, match="cwd must be an absolute path"):
        bwrap_command(["python"], cwd=Path("rel"), run_dir=Path("/tmp/x"), course_root=root,
                      limits=Limits())


@requires_bwrap
def test_check_sandbox_works_here():
    check_sandbox()  # bubblewrap is installed here (and by .ci/run): the probe must start


@requires_bwrap
def test_course_config_grades_in_the_sandbox(course):
    """`nbgrader autograde` with the course's configuration and nothing overridden: the kernel
    (the course's own, with its launcher and guard) runs in bubblewrap, as an unprivileged uid
    that cannot see ``source/``, which the instructor's process sees."""
    assert (course / "source").is_dir()
    probe = (f"import os\nprint('SEES', os.path.isdir({str(course / 'source')!r}), os.getuid())\n\n"
             + GOOD_ANSWER)
    submit(course, "default_config", probe)
    run = nbgrader(course, "autograde", ASSIGNMENT, "--student=default_config")
    assert run.returncode == 0, run.stderr
    text = output_text(autograded(course, "default_config"))
    seen = re.search(r"SEES (True|False) (\d+)", text)
    assert seen, text
    assert seen.group(1) == "False", "the kernel sees source/: it is not in the sandbox"
    assert int(seen.group(2)) != 0 or os.geteuid() != 0, "the kernel runs as root"
    assert "sandbox-off" not in {kind for kind, _ in flags_in(text)}
    assert score(course, "default_config") == 2
