"""Fixtures of the operations tests: a small publication, and a PostgreSQL server that a test may stop and start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.api.publication import write_publication
from tests.pgstac_cluster import (
    _os_user,
    _Runner,
    find_bindir,
    pgstac_dsn,  # noqa: F401  (fixture, for the backup test)
)


@pytest.fixture(scope="session")
def ops_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small publication (real Collections, synthetic items)."""
    root = tmp_path_factory.mktemp("ops-public")
    write_publication(root)
    return root


@dataclass(frozen=True)
class PostgresServer:
    """The server of a throwaway cluster (``tests.pgstac_cluster``), stopped and started with ``pg_ctl``."""

    dsn: str
    data: Path
    runner: _Runner

    @classmethod
    def of(cls, dsn: str) -> PostgresServer:
        bindir = find_bindir()
        assert bindir is not None
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        return cls(dsn, Path(row[0]), _Runner(bindir, _os_user()))

    def pg_ctl(self, *args: str) -> None:
        result = self.runner.run("pg_ctl", *args, "-D", str(self.data), "-w", "-t", "60", "-s", cwd=self.data.parent)
        assert result.returncode == 0, result.stderr

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: open connections are terminated, new ones refused."""
        self.pg_ctl("stop", "-m", "fast")

    def start(self) -> None:
        self.pg_ctl("start", "-l", str(self.data.parent / "postgres.log"))

    def tool(self, name: str) -> Path:
        """A client program of the server's version (``pg_dump``, ``pg_restore``)."""
        return self.runner.bindir / name
