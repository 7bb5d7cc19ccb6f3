"""Backup and restore of the pgstac database as README.md documents it: the shell commands of its section
"Backup and restore (pgstac)" (``pg_dump -Fc``, ``pg_restore`` into a new database) are run as they are, and the API
over the restored database answers the same searches."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import psycopg.conninfo
import psycopg.sql
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from publish.ingest import ingest
from services.app import create_app
from tests.ops.conftest import PostgresServer

README = Path(__file__).resolve().parents[2] / "README.md"
README_SECTION = "Backup and restore (pgstac)"
SEARCHES: list[dict[str, Any]] = [
    {"limit": 100, "sortby": [{"field": "id", "direction": "asc"}]},
    {"limit": 3, "sortby": [{"field": "datetime", "direction": "desc"}]},
    {"limit": 100, "bbox": [80, 25, 100, 40], "datetime": "2023-01-01T00:00:00Z/2023-12-31T23:59:59Z"},
]


def answers(root: Path, dsn: str) -> list[tuple[list[str], int | None]]:
    """``(ids, numberMatched)`` of each search, and the collection ids, from the API over ``dsn``."""
    app = create_app(Settings(root=root, backend="pgstac", dsn=dsn))  # type: ignore[arg-type]
    results: list[tuple[list[str], int | None]] = []
    with TestClient(app) as client:
        for body in SEARCHES:
            response = client.post("/stac/search", json=body)
            assert response.status_code == 200, response.text
            page = response.json()
            results.append(([f["id"] for f in page["features"]], page.get("numberMatched")))
        collections = client.get("/stac/collections").json()["collections"]
        results.append((sorted(c["id"] for c in collections), len(collections)))
    return results


def readme_commands(title: str = README_SECTION) -> str:
    """The shell blocks of the README section ``title``, joined."""
    blocks: list[str] = []
    inside = False
    code: list[str] | None = None
    for line in README.read_text("utf-8").splitlines():
        if code is not None:
            if line.startswith("```"):
                blocks.append("\n".join(code))
                code = None
            else:
                code.append(line)
        elif line.startswith("#"):
            inside = line.lstrip("#").strip() == title
        elif inside and line.startswith("```sh"):
            code = []
    assert blocks, f"README.md has no shell commands under {title!r}"
    return "\n".join(blocks)


def test_backup_and_restore_as_documented(ops_root: Path, pgstac_dsn: str, tmp_path: Path) -> None:
    ingest(ops_root, pgstac_dsn)
    server = PostgresServer.of(pgstac_dsn)
    restored = f"restored_{uuid4().hex[:8]}"
    with psycopg.connect(pgstac_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(restored)))
    target = psycopg.conninfo.make_conninfo(pgstac_dsn, dbname=restored)

    environment = {**os.environ, "NCDC_STAC_DSN": pgstac_dsn, "TARGET": target}
    environment["PATH"] = f"{server.tool('pg_dump').parent}{os.pathsep}{os.environ.get('PATH', '')}"
    script = "set -euo pipefail\n" + readme_commands()
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pgstac.dump").stat().st_size > 0

    expected = answers(ops_root, pgstac_dsn)
    assert expected[0][1], "the original database has no items"
    assert answers(ops_root, target) == expected
    # the restored database takes further ingests (an upsert of the same publication changes nothing)
    assert ingest(ops_root, target).items == expected[0][1]
    assert answers(ops_root, target) == expected
