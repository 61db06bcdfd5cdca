"""The Binder environment (environment.yml) and the pip path (pyproject.toml) agree."""

import ast
import functools
import importlib.metadata
import json
import re
import sys
import tomllib

import yaml
from conftest import ROOT


def _pins(requirements):
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([0-9][^\s;#]*)\s*", req)
        assert m, f"requirement {req!r} is not pinned with =="
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_environment_yml_pins_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip_pins = _pins([p for p in pip if not p.startswith("-e")])
    # every dependency, plus the dev tools Binder also gets (playwright), at the same versions
    dev = {k: v for k, v in _pins(project["optional-dependencies"]["dev"]).items() if k in pip_pins}
    assert pip_pins == {**_pins(project["dependencies"]), **dev}, (
        "environment.yml and pyproject.toml must name the same packages at the same versions"
    )
    assert "-e ." in pip, "environment.yml must install the course package (pip: -e .)"
    assert "python=3.11" in conda, "Binder builds the oldest supported Python (3.11)"
    assert project["requires-python"] == ">=3.11", "3.11, 3.12 and 3.13 are all supported"


def test_pinned_stack_matches_the_issue():
    pins = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert pins["nbgrader"] == "0.9.6"
    assert pins["numpy"].startswith("2.")
    assert pins["jupyterlab"].startswith("4.")
    for name in ("matplotlib", "scikit-learn", "nbformat", "nbclient"):
        assert name in pins


# ----------------------------------------------------------------------------- direct imports
#: Where the course's own code lives, and which pins it may rely on: what students and graders
#: run needs the runtime dependencies; tests and benchmarks may use the dev extras as well.
RUNTIME_CODE = ("course", "autograder", "source", "nbgrader_config.py")
DEV_CODE = ("tests", "benchmarks")


def _sources(where: str):
    """(path, Python source) of every module and notebook code cell under ``where``."""
    path = ROOT / where
    for file in [path] if path.is_file() else sorted([*path.rglob("*.py"), *path.rglob("*.ipynb")]):
        if ".ipynb_checkpoints" in file.parts:
            continue
        if file.suffix == ".ipynb":
            cells = json.loads(file.read_text())["cells"]
            lines = [line for c in cells if c["cell_type"] == "code"
                     for line in "".join(c["source"]).splitlines()
                     if not line.lstrip().startswith(("%", "!"))]  # IPython magics
            yield file, "\n".join(lines)
        else:
            yield file, file.read_text()


def _top_level_imports(source: str) -> set[str]:
    """Every absolute import in ``source``, function-level ones included: its top-level name."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@functools.cache
def _local_modules() -> frozenset[str]:
    """Top-level names that are the repository's own (packages, test helpers, generated files)."""
    local = {"__future__"}
    for where in RUNTIME_CODE + DEV_CODE:
        for file, _ in _sources(where):
            local.add(file.stem)
            local |= {p.name for p in file.relative_to(ROOT).parents if p.name}
    return frozenset(local)


@functools.cache
def _third_party(where: tuple[str, ...]) -> dict[str, set[str]]:
    """``{distribution name: {files importing it}}`` for the code in ``where``."""
    dists = importlib.metadata.packages_distributions()
    local, found = _local_modules(), {}
    for folder in where:
        for file, source in _sources(folder):
            for name in _top_level_imports(source) - local - set(sys.stdlib_module_names):
                for dist in dists.get(name, [f"<no installed distribution provides {name!r}>"]):
                    key = re.sub(r"[-_.]+", "-", dist).lower()
                    found.setdefault(key, set()).add(str(file.relative_to(ROOT)))
    return found


def _declared(group: str | None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + (project["optional-dependencies"][group] if group else [])
    return {re.sub(r"[-_.]+", "-", name) for name in _pins(reqs)}


def test_every_direct_import_of_the_course_is_a_pinned_runtime_dependency():
    missing = {d: sorted(f)[:3] for d, f in _third_party(RUNTIME_CODE).items()
               if d not in _declared(None)}
    assert not missing, f"imported but not pinned in pyproject.toml dependencies: {missing}"


def test_every_direct_import_of_tests_and_benchmarks_is_pinned():
    missing = {d: sorted(f)[:3] for d, f in _third_party(DEV_CODE).items()
               if d not in _declared("dev")}
    assert not missing, f"imported but not pinned in pyproject.toml (dev included): {missing}"


def test_the_import_scan_sees_what_it_must():
    """The scan itself: function-level imports count, and the known direct users are found."""
    assert _top_level_imports("def f():\n    import psutil.tests\n    from jinja2 import X\n") == {
        "psutil", "jinja2"}
    runtime = _third_party(RUNTIME_CODE)
    for dist in ("numpy", "nbgrader", "psutil", "sqlalchemy", "traitlets", "jupyter-client"):
        assert dist in runtime, dist
    assert "torch" in _third_party(DEV_CODE) and "torch" not in runtime
