"""Reading a check's rendering back as a person does, for tests of what it shows."""

from __future__ import annotations


def logical_lines(printed: str) -> list[str]:
    """The lines of a check's rendering (``autograder.record.render``), stripped, with each line
    that was wrapped at 100 columns joined back: a wrapped line goes on indented deeper than any
    line of its own kind (the title 0, parts and notes 2, a part's details 6)."""
    logical: list[str] = []
    for line in printed.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if logical and indent not in (0, 2, 6):
            logical[-1] += " " + line.strip()
        else:
            logical.append(line.strip())
    return logical
