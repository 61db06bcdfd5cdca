"""nbgrader's ``AutogradeApp`` as the runner uses it, and the gradebook URL it is given.

SQLite and "database is locked"
-------------------------------
nbgrader opens the gradebook with ``sqlalchemy.create_engine(db_url)`` many times per notebook
(``Gradebook(db_url)`` in the converter and in OverwriteCells, SaveAutoGrades,
AssignLatePenalties), and commits after each cell. With SQLite every write takes the database's
single write lock; another process that wants to write meanwhile waits for pysqlite's *busy
timeout*, which defaults to 5 s, and then fails with ``sqlite3.OperationalError: database is
locked``. (pysqlite opens a transaction only at the first write, so an nbgrader connection never
holds a read lock while it asks for the write lock, the one case where SQLite gives up at once
to avoid a deadlock: waiting is all that happens.) nbgrader's own transactions last
milliseconds, so the 5 s are exceeded when a writer is stalled: a machine loaded by N kernels, a
gradebook on a slow or network disk, or another program holding the lock (the Formgrader saving
a manual grade, a backup, ``sqlite3`` open on the file, the runner restoring an earlier grade).
The runner therefore gives SQLite a busy timeout of :data:`SQLITE_BUSY_TIMEOUT` seconds by adding
``?timeout=...`` to the ``db_url`` it hands nbgrader (SQLAlchemy's pysqlite dialect passes URL
query parameters to ``sqlite3.connect``; nbgrader 0.9.6 passes ``db_url`` through untouched).
``tests/test_runner.py`` grades 100 students with 8 workers while another connection holds the
write lock for longer than pysqlite's default.

PostgreSQL
----------
With ``c.CourseDirectory.db_url = "postgresql+psycopg://..."`` (psycopg 3) every nbgrader
command, the Formgrader and the runner share a database server, whose writers wait on row locks
instead of SQLite's one file lock; the busy timeout is added to ``sqlite`` URLs only. The README
shows the set-up; ``tests/postgres.py`` runs the tests against a real server.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

#: Seconds a SQLite connection waits for the gradebook's write lock (pysqlite's default is 5).
SQLITE_BUSY_TIMEOUT = 120.0
#: Default wall-clock limit for grading one student, in seconds.
DEFAULT_TIMEOUT = 300.0
#: Statuses a student can end with in runs.json.
STATUSES = ("graded", "timeout", "crashed", "failed")


def with_busy_timeout(db_url: str, seconds: float = SQLITE_BUSY_TIMEOUT) -> str:
    """``db_url`` with a SQLite busy timeout; other databases' URLs are returned unchanged.

    Parameters
    ----------
    db_url : str
        An SQLAlchemy URL, e.g. ``sqlite:////course/gradebook.db``.
    seconds : float
        How long a connection waits for the write lock before ``database is locked``.

    Returns
    -------
    str
        The URL with ``timeout=<seconds>`` in its query (kept if the URL already sets one).

    Raises
    ------
    ValueError
        If ``seconds`` is not positive.
    """
    from sqlalchemy.engine import make_url

    if not seconds > 0:
        raise ValueError(f"seconds must be a positive busy timeout, got {seconds!r}")
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or "timeout" in url.query:
        return db_url
    return url.update_query_dict({"timeout": f"{seconds:g}"}).render_as_string(hide_password=False)


def nbgrader_app(root: Path, assignment: str, db_url: str | None = None):
    """An initialized ``AutogradeApp`` for ``root``, configured as ``nbgrader autograde`` is.

    It loads the same config files (``nbgrader_config.py`` in the course root, and Jupyter's
    config paths), with ``--force``, and the gradebook URL (``db_url`` when given, else the
    config's) with a SQLite busy timeout (:func:`with_busy_timeout`). The current directory
    becomes ``root``.

    Raises
    ------
    autograder.kernel.trusted_config.UntrustedConfigError
        If ``nbgrader_config.py`` cannot be loaded or no longer names the sandbox.
    """
    from nbgrader.apps.autogradeapp import AutogradeApp

    from autograder.kernel.trusted_config import check_config, load_trusted_config

    load_trusted_config(Path(root))  # refuses (UntrustedConfigError) rather than fall back
    os.chdir(root)
    app = AutogradeApp()
    app.initialize([assignment, "--force"], root=str(root))
    check_config(app.config)
    app.coursedir.assignment_id = assignment
    app.coursedir.db_url = with_busy_timeout(db_url or app.coursedir.db_url)
    # INFO, as `nbgrader autograde` prints: DEBUG would copy every kernel message into the logs
    app.log.setLevel(logging.INFO)
    return app
