"""The memory bounds of the service reach GDAL, DuckDB and glibc's malloc (services.memory, Settings)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from pydantic import ByteSize
from rasterio.env import set_gdal_config

from ncdc_stac.settings import Settings
from services.app import create_app
from services.memory import gdal_cachemax
from tests.conftest import require

MIB = 2**20
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gdal_cache() -> Iterator[None]:
    """Restores GDAL's process-wide cache size after the test."""
    before = gdal_cachemax()
    yield
    set_gdal_config("GDAL_CACHEMAX", before)


def test_settings_reach_gdal_duckdb_and_the_thread_pool(
    ops_root: Path, gdal_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.setenv("NCDC_STAC_GDAL_CACHEMAX", "48MiB")
    monkeypatch.setenv("NCDC_STAC_DUCKDB_MEMORY_LIMIT", "256MiB")
    monkeypatch.setenv("NCDC_STAC_REQUEST_THREADS", "3")
    app = create_app(Settings(root=ops_root))
    assert gdal_cachemax() == 48 * MIB
    with TestClient(app) as client:
        assert client.get("/stac/search", params={"limit": 1}).status_code == 200
        limit = app.state.stac.state.store.cursor().execute("SELECT current_setting('memory_limit')").fetchone()
        assert client.portal is not None
        threads = client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
    assert limit == ("256.0 MiB",) and threads == 3


def test_defaults_are_bounded() -> None:
    settings = Settings()
    assert settings.gdal_cachemax == 64 * MIB and settings.duckdb_memory_limit == 1024 * MIB
    assert settings.malloc_arena_max == 2 and settings.request_threads == 8


def test_explicit_gdal_cachemax_is_respected(ops_root: Path, gdal_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    set_gdal_config("GDAL_CACHEMAX", 40 * MIB)  # as GDAL read it from GDAL_CACHEMAX=40MB
    monkeypatch.setenv("GDAL_CACHEMAX", "40MB")
    create_app(Settings(root=ops_root, gdal_cachemax=ByteSize(48 * MIB)))
    assert gdal_cachemax() == 40 * MIB


ARENAS = """
import ctypes, sys, threading
from ncdc_stac.settings import Settings
from services.memory import bound_memory
bound_memory(Settings(root=sys.argv[1], malloc_arena_max=int(sys.argv[2]) if sys.argv[2] else None))
barrier = threading.Barrier(8)
def allocate():
    blocks = [bytearray(4096) for _ in range(64)]  # malloc'd in this thread's arena
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def malloc_arenas(root: Path, setting: int | None, environment: dict[str, str]) -> int:
    """Arenas of a fresh process after ``bound_memory`` and 8 threads that allocate at the same time."""
    require(platform.libc_ver()[0] == "glibc", "glibc's malloc")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | environment
    command = [sys.executable, "-c", ARENAS, str(root), "" if setting is None else str(setting)]
    result = subprocess.run(command, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return sum(line.startswith("Arena ") for line in result.stderr.splitlines())


def test_malloc_arenas_are_bounded(ops_root: Path) -> None:
    assert malloc_arenas(ops_root, 2, {}) == 2
    assert malloc_arenas(ops_root, 2, {"MALLOC_ARENA_MAX": "3"}) == 3  # an explicit environment variable wins
    assert malloc_arenas(ops_root, None, {}) > 3  # glibc's default: up to 8 per core
