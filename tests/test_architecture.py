"""The import graph of ``course/`` and ``autograder/``: no cycles, and only the allowed directions.

Every module's imports are read with :mod:`ast` (module-level and function-level ones alike), so
the graph is the one the code could ever follow, not only what happens to run at import time.
An edge goes to the module named: ``from autograder.tools import report`` is an edge to
``autograder.tools.report`` (a submodule), ``from autograder.checks import check_x`` one to
``autograder.checks`` (the facade).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = ("course", "autograder")

#: ``(importer prefix, imported prefix, the modules allowed to anyway)``: what must not happen.
FORBIDDEN = [
    ("autograder.checks", "autograder.tools", ()),
    ("autograder.checks", "autograder.samples", ()),
    ("autograder.checks", "autograder.kernel", ()),
    ("autograder.samples", "autograder", ()),
    ("course", "autograder", ()),
    ("autograder.kernel", "autograder.tools", ()),
    ("autograder.kernel", "autograder.samples", ()),
    # the trusted side runs the checks: the execute preprocessor and its proxy to the kernel
    ("autograder.kernel", "autograder.checks", ("autograder.kernel.remote", "autograder.kernel.execute")),
    ("autograder.reference", "autograder.tools", ()),
    ("autograder.course_dir", "autograder", ()),
    # the notebook reader reads check records (autograder.record) and nothing else of ours
    *[("autograder.notebooks", f"autograder.{sub}", ()) for sub in
      ("checks", "kernel", "tools", "reference", "samples", "course_dir")],
    ("autograder.record", "autograder", ()),
    # the one file mounted into the sandboxed kernel: nothing else of ours is there
    ("autograder.kernel.shim", "autograder", ()),
    ("autograder.kernel.shim", "course", ()),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the two packages, by dotted name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module c
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(edges.items()):
        for dst in sorted(targets):
            for importer, imported, allowed in FORBIDDEN:
                if (_within(src, importer) and _within(dst, imported) and src not in allowed
                        and not _within(dst, importer)):
                    bad.append(f"{src} imports {dst} ({importer} must not import {imported})")
    return bad


def test_the_walker_sees_every_kind_of_import():
    edges = graph()
    assert "autograder.tools.demo" in edges and "course.testing" in edges
    # function-level `from autograder.tools import report` in the demo: an edge to the submodule
    assert "autograder.tools.report" in edges["autograder.tools.demo"]
    assert "autograder.course_dir" in edges["autograder.tools.report"]
    assert "autograder.checks.framework" in edges["autograder.checks.standardization"]


def test_cycle_finder_and_rules_catch_what_they_must():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert violations({"course.x": {"autograder.reference"}})
    assert violations({"autograder.checks.framework": {"autograder.tools.runner"}})
    assert violations({"autograder.kernel.sandbox": {"autograder.checks.framework"}})
    assert not violations({"autograder.kernel.execute": {"autograder.checks.framework"}})


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_dependency_directions():
    bad = violations(graph())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(
    name for name, path in modules().items() if path.name == "__init__.py"))
def test_every_package_says_what_it_holds_and_may_import(package):
    doc = ast.get_docstring(ast.parse(modules()[package].read_text())) or ""
    assert len(doc.split()) >= 12, f"{package}/__init__.py needs a docstring saying what it holds"
    assert "import" in doc.lower(), f"{package}/__init__.py must say what it may import"


@pytest.mark.parametrize("page", ["CONTRIBUTING.md", "ARCHITECTURE.md"])
def test_contributor_pages_refer_only_to_files_in_the_repository(page):
    text = (ROOT / page).read_text()
    assert "../" not in text, f"{page} points outside the repository"
    assert not re.search(r"(?<![\w.])/(?:work|home|tmp|root)/", text), f"{page} names a local path"
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), f"{page} links to {target}, which does not exist"
