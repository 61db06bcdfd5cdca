"""nbgrader configuration for the course. The repository root is the course directory.

Run nbgrader's own commands from here, e.g.::

    nbgrader generate_assignment 02_batchnorm_forward --force
    nbgrader autograde 02_batchnorm_forward
    nbgrader generate_feedback 02_batchnorm_forward
    nbgrader export
"""

import os
import sys
from pathlib import Path

import nbgrader
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.preprocessors import (
    ClearSolutions,
    Execute,
    GetGrades,
    OverwriteCells,
    SaveAutoGrades,
)

ROOT = Path(__file__).resolve().parent
# nbgrader itself imports the course's grading machinery (autograder.kernel.execute, autograder.kernel.sandbox)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.kernel import submission  # noqa: E402
from autograder.kernel.execute import (  # noqa: E402
    SandboxCheckedExporter,
    SandboxedExecute,
    TrustedSaveAutoGrades,
)
from autograder.kernel.sanitize_html import SanitizeStudentHTML  # noqa: E402
from autograder.tools.quiet import QuietClearMarkScheme, QuietOverwriteCells  # noqa: E402
from autograder.tools.stubs import NamedStubs  # noqa: E402

# The assignments, in teaching order. Each is source/<name>/<notebook>.ipynb.
# `nbgrader generate_assignment` adds each one to the gradebook the first time it runs.
ASSIGNMENTS = {
    "01_standardization": "standardization.ipynb",
    "02_batchnorm_forward": "batchnorm_forward.ipynb",
    "03_batchnorm_backward": "batchnorm_backward.ipynb",
    "04_experiments": "experiments.ipynb",
    "05_beyond_batchnorm": "beyond_batchnorm.ipynb",
}

# The hidden checks live in autograder/, which is never given to students. Kernels started by
# nbgrader (autograde, validate, the Formgrader) inherit this environment, so the one-line hidden
# test cells can `from autograder.checks import ...`.
_path = os.environ.get("PYTHONPATH", "")
if str(ROOT) not in _path.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), _path) if p)

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "batchnorm-from-scratch"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".venv"]
c.GenerateAssignment.create_assignment = True

# Hidden tests: `### BEGIN HIDDEN TESTS` ... `### END HIDDEN TESTS` regions are stripped from
# release/ and restored from the gradebook when autograding; generate_feedback shows them again,
# which reveals nothing because each one is a single call into autograder.checks.
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
c.ClearHiddenTests.enforce_metadata = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# ... but each stub's message names the function to write (autograder/tools/stubs.py).
c.GenerateAssignment.preprocessors = [
    NamedStubs if pp is ClearSolutions else pp
    for pp in GenerateAssignment.class_traits()["preprocessors"].default()
]
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Every hidden check finishes in well under a second; a student's infinite loop is cut off here
# (the cell then scores 0 and grading moves on to the next cell).
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True

# Student code runs in a bubblewrap sandbox (autograder/sandbox.py): no network, only its own
# submission folder writable, source/, gradebook.db and other students' work invisible, and
# memory, CPU-time, process and file-size limits (c.SandboxedKernelManager.memory_limit,
# cpu_limit, process_limit, file_size_limit). BN_UNSANDBOXED=1 turns it off, with a warning.
# SandboxedExecute replaces nbgrader's Execute so that a dead kernel, a hung cell or a flood of
# output is flagged in the notebook (Flag [kernel-died] ...) instead of losing the student;
# SandboxCheckedExporter refuses to start grading when the sandbox cannot start.
# Submissions are read through the front door before nbgrader sees them (autograder/kernel/
# submission/): only regular files, bounded size and depth, grade cells restored from release/;
# a submission that breaks a rule is graded 0 with the reason, and grading goes on.
submission.install()
c.Execute.kernel_manager_class = "autograder.kernel.sandbox.SandboxedKernelManager"
c.Autograde.exporter_class = SandboxCheckedExporter
# The hidden checks run in this (nbgrader's) process, not in the student's kernel
# (autograder/kernel/remote.py); TrustedSaveAutoGrades scores each hidden test cell with what they
# recorded, and 0 where they recorded nothing. SanitizeStudentHTML (autograder/kernel/
# sanitize_html.py) cleans what the student controls (outputs, written answers) right after
# execution, so neither the Formgrader, which renders the autograded notebook, nor the feedback
# HTML ever shows a student's script to anyone.
# QuietOverwriteCells (autograder/tools/quiet.py) restores the hidden part of a locked cell
# without warning about its checksum when the student left the released cell as it was
# (jupyter/nbgrader#1961); any other change is still reported.
_TRUSTED = {Execute: [SandboxedExecute, SanitizeStudentHTML],
            SaveAutoGrades: [TrustedSaveAutoGrades],
            OverwriteCells: [QuietOverwriteCells]}
c.Autograde.autograde_preprocessors = [
    step
    for pp in Autograde.class_traits()["autograde_preprocessors"].default()
    for step in _TRUSTED.get(pp, [pp])
]
c.Autograde.sanitize_preprocessors = [
    step
    for pp in Autograde.class_traits()["sanitize_preprocessors"].default()
    for step in _TRUSTED.get(pp, [pp])
]

# Validate (the button in JupyterLab, `nbgrader validate`): by default nbgrader checks only grade
# cells, and in the release the hidden-test cells are comments, so a notebook whose visible test
# fails was reported "Success! Your notebook passes all the tests." validate_all makes any code
# cell that raises (a failing visible test, an unfinished exercise) or writes to stderr fail it.
c.Validator.validate_all = True

# Written questions: the question sits in a locked markdown cell whose rubric lies between
# `=== BEGIN MARK SCHEME ===` and `=== END MARK SCHEME ===`; the answer is the manually graded
# cell below it. ClearMarkScheme strips the rubric from release/; autograde restores the locked
# cell from the gradebook, so the Formgrader shows the rubric next to the answer; and the
# feedback strips it again, so students never see it. (A task cell would add an item that
# always waits for manual grading, hence enforce_metadata = False.)
c.ClearMarkScheme.begin_mark_scheme_delimeter = "BEGIN MARK SCHEME"
c.ClearMarkScheme.end_mark_scheme_delimeter = "END MARK SCHEME"
c.ClearMarkScheme.enforce_metadata = False
# QuietClearMarkScheme is nbgrader's ClearMarkScheme without traitlets' warning about
# nbconvert's display_data_priority (autograder/tools/quiet.py).
c.GenerateFeedback.preprocessors = [GetGrades, QuietClearMarkScheme, SanitizeStudentHTML,
                                    CSSHTMLHeaderPreprocessor]

# The Formgrader (template "formgrade") and generate_feedback ("feedback") render student work with
# nbgrader's templates, which extend nbconvert's classic one: it wrote an output's `width` without
# quotes (a live `onerror` attribute from the metadata {'image/png': {'width': '1 onerror=...'}}).
# The course's copies (autograder/tools/templates/nbconvert) quote and escape every value and open
# each page with a Content-Security-Policy that forbids inline script; nbgrader's own folder stays
# second, for what the copies do not replace.
c.HTMLExporter.extra_template_basedirs = [
    str(ROOT / "autograder" / "tools" / "templates" / "nbconvert"),
    str(Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"),
]
