"""The stub that replaces each solution in release/: it names the function to write.

nbgrader's ``ClearSolutions`` replaces every ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
region with one fixed ``code_stub``. :class:`NamedStubs` uses the same stub, with a message in
the ``NotImplementedError`` that says what to write, e.g.
``NotImplementedError("write the body of fit_standardizer here (its docstring says what it
returns), then delete this line")``. The function is the first ``def`` of the cell; a cell
without one gets a message without a name. ``nbgrader_config.py`` puts this preprocessor in place
of ``ClearSolutions`` for ``nbgrader generate_assignment``.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import ClearSolutions

_DEF = re.compile(r"^\s*def (\w+)\(", re.M)


def stub_for(source: str) -> str:
    """The code stub for a solution cell whose source is ``source``."""
    m = _DEF.search(source)
    what = f"the body of {m.group(1)} here (its docstring says what it returns)" if m else (
        "your code here")
    return f'# YOUR CODE HERE\nraise NotImplementedError("write {what}, then delete this line")'


class NamedStubs(ClearSolutions):
    """``ClearSolutions`` whose stub names the function the student writes."""

    def _replace_solution_region(self, cell, language: str) -> bool:
        if cell.cell_type != "code":
            return super()._replace_solution_region(cell, language)
        default = dict(self.code_stub)
        self.code_stub = {**default, language: stub_for(cell.source)}
        try:
            return super()._replace_solution_region(cell, language)
        finally:
            self.code_stub = default
