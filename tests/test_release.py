"""release/ is exactly what nbgrader makes from source/, and it hides what it must."""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT, nbgrader_meta

PAIRS = [(a, nb) for a, nb in ASSIGNMENTS.items()]
# Markers of solutions, rubrics and hidden tests, and any reference to the hidden package's
# modules (prose may say "the autograder"; code must not import it).
FORBIDDEN = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "MARK SCHEME",
             "from autograder", "import autograder", "autograder.checks", "autograder.reference"]


def _normalized(path):
    nb = nbformat.read(path, as_version=4)
    return nbformat.writes(nb)


@pytest.mark.parametrize(("assignment", "notebook"), PAIRS, ids=[a for a, _ in PAIRS])
def test_committed_release_matches_a_fresh_generate_assignment(demo_run, assignment, notebook):
    # demo_run regenerated release/ with `nbgrader generate_assignment --force` in a scratch copy
    fresh_root, _ = demo_run
    fresh = fresh_root / "release" / assignment / notebook
    committed = ROOT / "release" / assignment / notebook
    assert committed.exists(), f"{committed} is missing; run `make release` and commit it"
    assert _normalized(fresh) == _normalized(committed), (
        f"release/{assignment} is out of date with source/; run `make release` and commit it"
    )
    extra = {p.name for p in committed.parent.iterdir()} - {p.name for p in fresh.parent.iterdir()}
    assert not extra, f"release/{assignment} has files nbgrader does not make: {extra}"


def _solution_lines(source_nb):
    """Distinctive lines inside solution regions, minus lines also found outside them."""
    inside, outside = set(), set()
    for cell in source_nb.cells:
        in_solution = False
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                in_solution = True
            elif "END SOLUTION" in line:
                in_solution = False
            elif line.strip():
                (inside if in_solution else outside).add(line.strip())
    return {line for line in inside - outside if len(line) >= 20 and not line.startswith("#")}


@pytest.mark.parametrize(("assignment", "notebook"), PAIRS, ids=[a for a, _ in PAIRS])
def test_release_has_no_solutions_rubrics_or_hidden_tests(assignment, notebook):
    source = nbformat.read(ROOT / "source" / assignment / notebook, as_version=4)
    release_path = ROOT / "release" / assignment / notebook
    release = nbformat.read(release_path, as_version=4)
    text = "\n".join(c.source for c in release.cells)
    for marker in FORBIDDEN:
        assert marker not in text, f"{release_path.name} contains {marker!r}"
    leaked = sorted(line for line in _solution_lines(source) if line in text)
    assert not leaked, f"solution lines leaked into the release: {leaked[:5]}"
    for cell in release.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and cell.cell_type == "code":
            # the stub says what to write: "write the body of <function> here ..."
            name = re.search(r"^def (\w+)\(", cell.source, re.M)
            what = f"write the body of {name.group(1)} here" if name else "write your code here"
            assert f'raise NotImplementedError("{what}' in cell.source, cell.source
        if meta.get("grade") and cell.cell_type == "code":
            assert not re.search(r"check_\w+\(", cell.source), "a hidden check call is visible"
