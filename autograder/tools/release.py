"""``make release`` (``python -m autograder release [--assignment NAME ...]``): regenerate
``release/`` from ``source/``, never over a file the course did not generate.

``nbgrader generate_assignment --force`` deletes ``release/<assignment>/`` and writes it anew. A
learner who edited a notebook there (the README once sent learners to ``release/``), or left a
file of their own in it (JupyterLab's *Duplicate*), would lose it. So every file the course
generates is recorded with its SHA-256 in :data:`MANIFEST` (committed with ``release/``, in
``sha256sum`` format), and this command first checks every file of the folders it is about to
replace: one that is not recorded as it is stops the whole command before anything is written,
with one line naming it. Learners work in their own copies (``mywork/``, :mod:`course.mywork`).

Steps, once the check passes: the files generated from the reference
(:func:`autograder.tools.provided.write_all`), ``nbgrader generate_assignment --force`` per
assignment, and the new hashes of those folders into :data:`MANIFEST`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from autograder.course_dir import ROOT, with_tools_on_path
from autograder.course_dir import assignments as course_assignments
from autograder.tools.provided import write_all as write_provided

#: The record of what the course generated, relative to the course root: ``HASH  PATH`` lines.
MANIFEST = Path("autograder") / "release.sha256"
#: Folders inside ``release/<assignment>/`` that are never a learner's work: JupyterLab's
#: checkpoints (copies of saved states) and Python's caches. nbgrader ignores them too.
SKIPPED = frozenset({".ipynb_checkpoints", "__pycache__"})


class ReleaseRefused(Exception):
    """``release/`` holds a file the course did not generate; the message is one line."""


def file_hash(path: Path) -> str:
    """The SHA-256 of a file's bytes, as ``sha256sum`` prints it (64 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path = ROOT) -> dict[str, str]:
    """``{"release/<assignment>/<file>": sha256}`` from :data:`MANIFEST`; empty if it is missing.

    Raises
    ------
    ValueError
        If a line is not ``<64 hex digits>  <path>`` (the file is not a manifest).
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {}
    entries = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"{path}:{number} is not `<sha256>  <path>`: {line[:80]!r}")
        entries[rel] = digest
    return entries


def released_files(root: Path, assignment: str) -> list[str]:
    """The files below ``release/<assignment>/`` (as ``release/...`` paths, sorted), outside
    :data:`SKIPPED` folders."""
    folder = Path(root) / "release" / assignment
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        found += [(Path(here) / f).relative_to(root).as_posix() for f in files]
    return sorted(found)


def committed_blobs(root: Path, folder: str = "release") -> dict[str, str]:
    """``{"release/...": git blob id}`` of the files committed at ``HEAD`` below ``folder``, or an
    empty dict where ``root`` is not a git checkout (or git is missing)."""
    try:
        listing = subprocess.run(["git", "ls-tree", "-r", "-z", "HEAD", "--", f"{folder}/"],
                                 cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    blobs = {}
    for entry in listing.split(b"\0"):
        meta, _, rel = entry.partition(b"\t")
        fields = meta.split()
        if len(fields) == 3 and fields[1] == b"blob":
            blobs[rel.decode("utf-8", "surrogateescape")] = fields[2].decode()
    return blobs


def blob_id(path: Path) -> str:
    """The git blob id of a file's bytes (what ``git hash-object`` prints)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


def not_generated(assignments: Iterable[str], root: Path = ROOT) -> list[str]:
    """The files of ``release/<assignment>/`` that are not what the course generated: recorded
    neither in :data:`MANIFEST` nor, in a git checkout, committed at ``HEAD`` with these contents
    (``release/...`` paths, sorted). A merge that brings a newer committed release is the
    course's own work; a learner's edit is neither."""
    recorded = read_manifest(root)
    committed = None
    foreign = []
    for rel in (rel for a in assignments for rel in released_files(root, a)):
        if recorded.get(rel) == file_hash(Path(root) / rel):
            continue
        if committed is None:
            committed = committed_blobs(root)
        if committed.get(rel) != blob_id(Path(root) / rel):
            foreign.append(rel)
    return sorted(foreign)


def refusal(paths: list[str]) -> str:
    """The one line that stops ``make release``, naming every file it would have lost."""
    named = ", ".join(paths)
    return (f"not regenerating release/: {named} {'is' if len(paths) == 1 else 'are'} not "
            "what the course generated (a learner's work?) and would be lost. Move your work "
            "to mywork/ (python -m course.mywork makes your copies there) or restore the "
            "course's file (git checkout -- FILE), then try again.")


def write_manifest(assignments: Iterable[str], root: Path = ROOT) -> Path:
    """Record the current files of ``release/<assignment>/`` in :data:`MANIFEST` (the entries of
    other assignments are kept); return its path."""
    assignments = list(assignments)
    entries = {rel: digest for rel, digest in read_manifest(root).items()
               if not any(rel.startswith(f"release/{a}/") for a in assignments)}
    for assignment in assignments:
        for rel in released_files(root, assignment):
            entries[rel] = file_hash(Path(root) / rel)
    path = Path(root) / MANIFEST
    path.write_text("".join(f"{entries[rel]}  {rel}\n" for rel in sorted(entries)),
                    encoding="utf-8")
    return path


def generate_assignment(assignment: str, root: Path = ROOT) -> None:
    """``nbgrader generate_assignment ASSIGNMENT --force`` in ``root``, with this Python's tools.

    Raises
    ------
    SystemExit
        If nbgrader fails (its output is shown first).
    """
    exe = Path(sys.executable).parent / "nbgrader"
    args = ["generate_assignment", assignment, "--force"]
    print(f"$ nbgrader {' '.join(args)}", flush=True)
    result = subprocess.run([str(exe) if exe.exists() else "nbgrader", *args], cwd=root,
                            capture_output=True, text=True, env=with_tools_on_path())
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"nbgrader generate_assignment failed with exit code {result.returncode}")


def regenerate(assignments: Iterable[str], root: Path = ROOT,
               generate: Callable[[str], None] | None = None) -> None:
    """Regenerate ``release/<assignment>/`` for each assignment, or change nothing at all.

    Parameters
    ----------
    assignments : iterable of str
        Assignment names, e.g. ``["02_batchnorm_forward"]``.
    root : Path
        The course directory.
    generate : callable, optional
        Runs ``nbgrader generate_assignment --force`` for one assignment
        (default: :func:`generate_assignment` in ``root``).

    Raises
    ------
    ReleaseRefused
        Before anything is written, if a file of those folders is not what the course
        generated (:func:`not_generated`); the message names each one.
    """
    assignments = list(assignments)
    foreign = not_generated(assignments, root)
    if foreign:
        raise ReleaseRefused(refusal(foreign))
    for path in write_provided(root):  # files generated from the reference (assignment 04)
        print(f"wrote {path.relative_to(root)}", flush=True)
    for assignment in assignments:
        (generate or (lambda a: generate_assignment(a, root)))(assignment)
    write_manifest(assignments, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder release",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", action="append", metavar="NAME",
                        help="only this assignment (repeatable; default: all of them)")
    args = parser.parse_args(argv)
    assignments = course_assignments()
    unknown = sorted(set(args.assignment or ()) - set(assignments))
    if unknown:
        parser.error(f"--assignment must be one of {sorted(assignments)}, got {unknown}")
    try:
        regenerate([a for a in assignments if a in (args.assignment or assignments)])
    except ReleaseRefused as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
