"""``python -m autograder.tools.binder``: write the README's Binder badge from the repository's
address in ``pyproject.toml`` (``[project.urls] Repository``), the one place a fork changes.

The badge opens JupyterLab on the course's start page (:data:`START_PAGE`), which links every
notebook's copy in ``mywork/`` (made by ``postBuild``, :mod:`course.mywork`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from autograder.course_dir import ROOT

#: The notebook Binder opens first (a notebook renders; a Markdown file opens in the editor).
START_PAGE = "START_HERE.ipynb"
_GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
_BADGE = re.compile(r"\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]\([^)]*\)")


def repository_url(root: Path = ROOT) -> str:
    """``[project.urls] Repository`` of ``pyproject.toml``.

    Raises
    ------
    ValueError
        If it is missing or not ``https://github.com/OWNER/NAME``.
    """
    with open(Path(root) / "pyproject.toml", "rb") as fh:
        url = tomllib.load(fh).get("project", {}).get("urls", {}).get("Repository", "")
    if not _GITHUB.match(url):
        raise ValueError("pyproject.toml's [project.urls] Repository must be "
                         f"https://github.com/OWNER/NAME, got {url!r}")
    return url


def binder_url(root: Path = ROOT) -> str:
    """The Binder address of the repository: JupyterLab on :data:`START_PAGE` of its ``HEAD``."""
    owner, name = _GITHUB.match(repository_url(root)).groups()
    return f"https://mybinder.org/v2/gh/{owner}/{name}/HEAD?urlpath=lab/tree/{START_PAGE}"


def badge(root: Path = ROOT) -> str:
    """The README's badge, in Markdown."""
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(root)})"


def readme_badges(root: Path = ROOT) -> list[str]:
    """Every Binder badge of the README, as written."""
    return _BADGE.findall((Path(root) / "README.md").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    readme.write_text(_BADGE.sub(badge(), text), encoding="utf-8")
    print(f"README.md: Binder badge -> {binder_url()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
