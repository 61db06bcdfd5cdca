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

Each ``Gradebook()`` also lists the database's tables and runs ``create_all``, a catalog query
per table (14 per ``Gradebook``, over 120 per notebook, the most frequent queries of a grading
run). On a shared engine that is done once: later ``Gradebook``s are told the tables that the
first one found or created.
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

    known: dict[int, list[str]] = {}  # id(shared engine) -> its tables, once created
    inspect, create_all = nbgrader.api.inspect, nbgrader.api.Base.metadata.create_all

    def inspect_once(subject: Any, *args: Any, **kwargs: Any):
        if id(subject) in known:
            return _Tables(known[id(subject)])
        return inspect(subject, *args, **kwargs)

    def create_all_once(bind: Any = None, **kwargs: Any) -> None:
        if id(bind) in known:
            return
        create_all(bind=bind, **kwargs)
        if any(bind is engine for engine in _ENGINES.values()):
            known[id(bind)] = inspect(bind).get_table_names()

    shared_engine.shared = True
    nbgrader.api.create_engine = shared_engine
    nbgrader.api.inspect = inspect_once
    nbgrader.api.Base.metadata.create_all = create_all_once


class _Tables:
    """What ``Gradebook()`` asks ``sqlalchemy.inspect(engine)`` for, already known."""

    def __init__(self, names: list[str]):
        self.names = names

    def get_table_names(self) -> list[str]:
        return list(self.names)
