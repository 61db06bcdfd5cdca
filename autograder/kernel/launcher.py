"""``python -m autograder.kernel.launcher -f CONNECTION_FILE``: the grading kernel.

A drop-in replacement for ``python -m ipykernel_launcher -f CONNECTION_FILE`` (same arguments,
same protocol) that first runs :func:`autograder.kernel.guard.install`, so that its audit hook
sees everything the student's code does, and imports :mod:`autograder.kernel.shim`, which serves
the hidden checks' calls (the checks themselves run in the grader's process).

Start it with ``python -P`` (Python 3.11+, or ``PYTHONSAFEPATH=1``): then the kernel's working
directory, the submission's folder, is not put on ``sys.path`` before ``autograder`` itself is
imported, so a submission cannot ship its own ``autograder/`` package. Like
``ipykernel_launcher``, this module also drops that entry before importing anything else, and
:func:`autograder.kernel.guard.install` refuses to run if the grader was imported from the submission.
A kernelspec for it::

    {"argv": ["python", "-P", "-m", "autograder.kernel.launcher", "-f", "{connection_file}"],
     "display_name": "Python 3 (graded)", "language": "python"}
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Install the guard, then run an ipykernel ``IPKernelApp`` with ``argv`` (default:
    ``sys.argv[1:]``) exactly as ``ipykernel_launcher`` does."""
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher: IPython puts '' back for the student later

    from autograder.kernel import guard

    guard.install()
    from ipykernel.kernelapp import IPKernelApp

    from autograder.kernel import shim  # noqa: F401 - imported before any student code

    app = IPKernelApp.instance()
    app.initialize(argv)
    # IPython puts the working directory on sys.path unless python runs with -P; the guard has
    # imported what grading needs, so now the submission's own modules may be imported too,
    # from where IPython would put them: after the standard library and PYTHONPATH.
    if "" not in sys.path:
        site = [i for i, p in enumerate(sys.path)
                if os.path.basename(p) in ("site-packages", "dist-packages")]
        sys.path.insert(site[0] if site else 0, "")
    app.start()


if __name__ == "__main__":
    main()
