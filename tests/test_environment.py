"""The Binder environment (environment.yml) and the pip path (pyproject.toml) agree."""

import re
import tomllib

import yaml
from conftest import ROOT


def _pins(requirements):
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([0-9][^\s;]*)\s*", req)
        assert m, f"requirement {req!r} is not pinned with =="
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
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
    assert "python=3.11" in conda and project["requires-python"].startswith(">=3.11,<3.12")


def test_pinned_stack_matches_the_issue():
    pins = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert pins["nbgrader"] == "0.9.6"
    assert pins["numpy"].startswith("2.")
    assert pins["jupyterlab"].startswith("4.")
    for name in ("matplotlib", "scikit-learn", "nbformat", "nbclient"):
        assert name in pins
