"""``autograder.tools.runner.engines.share_engines``: nbgrader's ``Gradebook``s of one grading
process share one SQLAlchemy engine, so opening one no longer opens a database connection
or checks every table again.

Each case runs in a fresh Python (the patch is for a whole grading process, not for pytest's),
counting the DBAPI connections SQLAlchemy opens (its ``connect`` pool event, on every engine)
and reading the result back with the standard library's ``sqlite3``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from autograder.course_dir import ROOT, with_tools_on_path

SCRIPT = """
import json, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from nbgrader.api import Gradebook

connects, queries = [], []
event.listen(Engine, "connect", lambda *args: connects.append(1))
event.listen(Engine, "before_cursor_execute", lambda *args: queries.append(1))
if sys.argv[2] == "shared":
    from autograder.tools.runner.engines import share_engines
    share_engines()
    share_engines()  # twice: no second layer
engines = set()
for i in range(6):
    with Gradebook(sys.argv[1]) as gb:
        gb.add_student(f"s{i}")
        engines.add(id(gb.engine))
with Gradebook(sys.argv[1]) as gb, Gradebook(sys.argv[1]) as other:  # two open at once
    gb.add_student("both")
    seen = other.find_student("both").id
print(json.dumps({"connects": len(connects), "engines": len(engines), "seen": seen,
                  "queries": len(queries)}))
"""


def run(tmp_path: Path, mode: str) -> dict:
    db = tmp_path / mode / "gradebook.db"
    db.parent.mkdir()
    result = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{db}", mode],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=with_tools_on_path())  # nbgrader runs `alembic` from PATH
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    with sqlite3.connect(db) as con:
        out["students"] = sorted(r[0] for r in con.execute("SELECT id FROM student"))
        out["tables"] = sorted(r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
        out["alembic"] = con.execute("SELECT count(*) FROM alembic_version").fetchone()[0]
    return out


def test_gradebooks_of_a_grading_process_share_one_engine(tmp_path):
    plain, shared = run(tmp_path, "plain"), run(tmp_path, "shared")
    students = ["both", "s0", "s1", "s2", "s3", "s4", "s5"]
    assert plain["students"] == shared["students"] == students  # same writes, all committed
    assert plain["seen"] == shared["seen"] == "both"  # a second open Gradebook sees the first's
    assert plain["engines"] >= 2 and plain["connects"] >= 8  # nbgrader: an engine per Gradebook
    assert shared["engines"] == 1
    assert shared["connects"] <= 2  # the pool's connections, reused (two were open at once)
    # the new gradebook was created as nbgrader creates it (its tables, one alembic version)...
    assert shared["tables"] == plain["tables"] and "grade" in shared["tables"]
    assert plain["alembic"] == shared["alembic"] == 1
    # ...and only the first Gradebook asked for the tables: nbgrader's table checks, once
    assert shared["queries"] < plain["queries"] / 2
