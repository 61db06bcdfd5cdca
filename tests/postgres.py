"""A throwaway PostgreSQL server for the tests, from Debian's ``postgresql`` package.

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` (found in ``/usr/lib/postgresql/*/bin``,
the newest version installed, or on ``PATH``) in a fresh temporary directory. The server listens
on a unix socket in that directory only (``listen_addresses=''``, no TCP port), trusts local
connections, and is stopped and deleted afterwards. When the tests run as root it runs as the
unprivileged user ``nobody`` (PostgreSQL refuses to run as root), which owns the directory.

nbgrader reaches it through psycopg 3: :meth:`PostgresServer.url` gives
``postgresql+psycopg://postgres@/NAME?host=SOCKET_DIR``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

#: The unprivileged user the server runs as when the tests run as root.
SERVER_USER = "nobody"


def bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest ``/usr/lib/postgresql/N/bin``.

    Raises
    ------
    FileNotFoundError
        If PostgreSQL is not installed (Debian package ``postgresql``).
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise FileNotFoundError("PostgreSQL's initdb was not found: install Debian's postgresql package")


class PostgresServer:
    """A PostgreSQL server in a temporary directory, on a unix socket. Use as a context manager."""

    def __init__(self) -> None:
        self.bin = bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))  # a short path: socket names are limited
        self.data, self.socket = self.dir / "data", self.dir
        self.log = self.dir / "server.log"
        self.as_root = os.geteuid() == 0

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self.as_root else []
        env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
        result = subprocess.run([*prefix, *cmd], capture_output=True, text=True, env=env,
                                cwd=self.dir, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd[:2])} failed: {result.stdout}{result.stderr}{log}")
        return result

    def start(self) -> PostgresServer:
        if self.as_root:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o755)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-k {self.socket} -c listen_addresses='' -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; return its SQLAlchemy URL (:meth:`url`)."""
        import psycopg

        with psycopg.connect(host=str(self.socket), user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        """``postgresql+psycopg://postgres@/NAME?host=SOCKET_DIR``."""
        return f"postgresql+psycopg://postgres@/{name}?host={self.socket}"
