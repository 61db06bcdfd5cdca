"""One SQLAlchemy engine per gradebook URL in a grading process, instead of one per ``Gradebook``.

nbgrader opens the gradebook with ``Gradebook(db_url)`` about ten times per graded notebook (the
converter, OverwriteCells, SaveAutoGrades, AssignLatePenalties, ...), and each ``Gradebook``
calls ``sqlalchemy.create_engine`` and, on ``close()``, ``engine.dispose()``: every one costs a
new database connection and the dialect's first-connect queries. For PostgreSQL a connection is
a server process forked and authenticated: opening a ``Gradebook`` took 15 ms through a unix
socket, a pooled connection 0.4 ms (``benchmarks/bench_grading.py`` shows what it does to a
whole run). SQLAlchemy's own advice is one engine per process and URL, whose pool keeps the
connections; :func:`share_engines` does that for nbgrader's ``Gradebook`` in a grading process
(:func:`autograder.tools.runner.worker.serve`), which lives for one run: a gradebook file is not
replaced under it.
"""

from __future__ import annotations

import threading
from typing import Any

_ENGINES: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _kept(close: bool = True) -> None:
    """``Engine.dispose`` of a shared engine: its connections go back to the pool, not away."""


def share_engines() -> None:
    """Make every ``nbgrader.api.Gradebook`` of this process share one engine per URL.

    ``nbgrader.api.create_engine`` becomes a function that returns the engine it made the first
    time for the same URL and arguments, with ``dispose()`` (which ``Gradebook.close`` calls)
    made harmless. Calling it again changes nothing.

    Call it only in a process that does not fork afterwards and whose gradebook file is not
    deleted or replaced while it runs (SQLAlchemy: pooled connections must not cross a fork).
    """
    import nbgrader.api
    from sqlalchemy import create_engine

    if getattr(nbgrader.api.create_engine, "shared", False):
        return

    def shared_engine(url: Any, **kwargs: Any):
        key = (str(url), tuple(sorted(kwargs.items())))
        with _LOCK:
            engine = _ENGINES.get(key)
            if engine is None:
                engine = _ENGINES[key] = create_engine(url, **kwargs)
                engine.dispose = _kept
            return engine

    shared_engine.shared = True
    nbgrader.api.create_engine = shared_engine
