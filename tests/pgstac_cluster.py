"""A throwaway PostgreSQL 15 cluster with pgstac installed, for tests that need a real pgstac database.

``pgstac_cluster()`` runs ``initdb`` into a temporary directory, starts the server with ``pg_ctl`` on a free
port of 127.0.0.1 (unix socket inside the same directory), creates a database, installs pgstac with
``pypgstac``'s migrations and yields a DSN; on exit it stops the server and deletes the directory.

PostgreSQL refuses to run as root, so under root every server command runs as the ``postgres`` system user
(created by the Debian package) and the directory is handed to that user. Durability is switched off
(``fsync``, ``synchronous_commit``, ``full_page_writes``): the data are thrown away anyway.
Missing binaries or PostGIS skip the test (and fail it under ``CI=true``) through ``tests.conftest.require``.

A test session starts one cluster (per xdist worker): ``tests.conftest.pgstac_template``, a migrated database
that tests copy with :func:`clone_database` (a template copy takes milliseconds, a migration seconds).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import psycopg
import psycopg.conninfo
import psycopg.sql
import pytest

from tests.conftest import require

PG_MAJOR = 15
DEBIAN_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
DATABASE = "pgstac"
SUPERUSER = "postgres"
OS_USER = "postgres"
"""System user that runs the server when the tests run as root."""
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "64MB",
    "max_connections": "40",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}
START_ATTEMPTS = 3


@dataclass(frozen=True)
class _Runner:
    """Runs the PostgreSQL binaries, as ``OS_USER`` when the current process is root."""

    bindir: Path
    user: pwd.struct_passwd | None

    def run(self, tool: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *map(str, args)]
        if self.user is None:
            return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        return subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            extra_groups=[],
        )


def find_bindir() -> Path | None:
    """The PostgreSQL 15 server binaries: Debian's versioned directory, else ``initdb`` on PATH."""
    if (DEBIAN_BIN / "initdb").is_file() and (DEBIAN_BIN / "pg_ctl").is_file():
        return DEBIAN_BIN
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(Path(initdb).parent)):
        return Path(initdb).parent
    return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _os_user() -> pwd.struct_passwd | None:
    """``None`` when not root; the unprivileged user to run the server as otherwise."""
    if os.geteuid() != 0:
        return None
    users = {entry.pw_name: entry for entry in pwd.getpwall()}
    require(
        OS_USER in users, f"running as root needs a {OS_USER!r} system user to run PostgreSQL (install postgresql-15)"
    )
    return users[OS_USER]


def _traversable_tmp() -> Path:
    """A temporary base directory every user can traverse (``$TMPDIR`` may be private to root)."""
    base = Path(tempfile.gettempdir()).resolve()
    for part in (base, *base.parents):
        if not part.stat().st_mode & stat.S_IXOTH:
            return Path("/tmp")
    return base


def _check(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    detail = (result.stderr or result.stdout).strip()
    if log is not None and log.is_file():
        detail += "\n--- server log ---\n" + log.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"{what} failed (exit {result.returncode}): {detail}")


def _start(runner: _Runner, data: Path, workdir: Path, log: Path) -> int:
    """Start the server on a free port; retried because another process may grab the port first."""
    conf = data / "postgresql.conf"
    base_conf = conf.read_text()
    result: subprocess.CompletedProcess[str] | None = None
    for _ in range(START_ATTEMPTS):
        port = free_port()
        settings = {**SERVER_SETTINGS, "port": str(port), "unix_socket_directories": f"'{workdir}'"}
        conf.write_text(
            base_conf + "\n# tests/pgstac_cluster.py\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        )
        result = runner.run("pg_ctl", "start", "-D", data, "-l", log, "-w", "-t", "60", "-s", cwd=workdir)
        if result.returncode == 0:
            return port
    assert result is not None
    _check(result, "pg_ctl start", log)
    raise AssertionError("unreachable")


def _has_extensions(dsn: str, names: Sequence[str]) -> list[str]:
    """The extensions among ``names`` that this server cannot install."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT name FROM pg_available_extensions WHERE name = ANY(%s)", [list(names)]).fetchall()
    available = {row[0] for row in rows}
    return [name for name in names if name not in available]


def _migrate(dsn: str) -> str:
    """Install pgstac with pypgstac's own migrations; returns the installed version."""
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    db = PgstacDB(dsn=dsn)
    pool = db.get_pool()
    try:
        version = Migrate(db).run_migration()
    finally:
        db.disconnect()
        pool.close()
    return version


@contextmanager
def pgstac_cluster(database: str = DATABASE) -> Iterator[str]:
    """Start a throwaway PostgreSQL 15 + pgstac; yields a DSN (``postgresql://postgres@127.0.0.1:PORT/DB``)."""
    bindir = find_bindir()
    require(bindir is not None, f"PostgreSQL {PG_MAJOR} server binaries not found (.ci/run installs them)")
    assert bindir is not None
    user = _os_user()
    runner = _Runner(bindir, user)

    workdir = Path(tempfile.mkdtemp(prefix="pgstac-", dir=_traversable_tmp()))
    data, log = workdir / "data", workdir / "postgres.log"
    started = False
    try:
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
        workdir.chmod(0o700)
        _check(
            runner.run(
                "initdb",
                "-D",
                data,
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
                cwd=workdir,
            ),
            "initdb",
        )
        port = _start(runner, data, workdir, log)
        started = True
        admin_dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        missing = _has_extensions(admin_dsn, ["postgis", "btree_gist", "unaccent"])
        require(not missing, f"PostgreSQL extensions missing: {', '.join(missing)} (install postgresql-15-postgis-3)")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"
        _migrate(dsn)
        yield dsn
    finally:
        if started:
            runner.run("pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", "-s", cwd=workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def clone_database(dsn: str, name: str) -> str:
    """A copy named ``name`` of the (migrated, idle) database at ``dsn``; returns its DSN. Faster than migrating."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    template = str(info["dbname"])
    with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Identifier(template)
            )
        )
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


@pytest.fixture(scope="session")
def pgstac_dsn(pgstac_template: str) -> str:
    """Session fixture (import it): a fresh pgstac database in the session's cluster (``tests.conftest``)."""
    return clone_database(pgstac_template, f"db_{uuid4().hex[:12]}")
