"""Fixtures of the STAC API tests: a small publication and the service over it, per backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.app import create_app
from tests.api.publication import GLACIER_HMA, GLACIER_MONTHLY, NO_ITEMS, SUBSIDENCE, write_publication
from tests.live import serve
from tests.pgstac_cluster import pgstac_dsn  # noqa: F401  (fixture, used when pgstac is tested)
from tests.publication import Publication, publish_samples

BACKENDS = os.environ.get("NCDC_STAC_TEST_BACKENDS", "duckdb,pgstac").split(",")
"""Every backend runs the same suite (``NCDC_STAC_TEST_BACKENDS=duckdb`` for one). pgstac needs PostgreSQL 15 +
PostGIS: without them its tests are skipped with the reason, and fail under CI=true (``tests.conftest.require``)."""
SHORT_NAMES = {"gangrigab": GLACIER_MONTHLY, "hma": GLACIER_HMA, "muli": SUBSIDENCE, "cpec": NO_ITEMS}


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("public")
    return root, write_publication(root)


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Publication:
    """The published samples (real COGs and GeoParquet), shared with the other test folders
    (``tests.conftest.publication``)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "published-samples"
    shared.mkdir(exist_ok=True)
    return publish_samples(shared)


@pytest.fixture(scope="session")
def publication(published: tuple[Path, dict[str, str]]) -> Path:
    """Root folder of the test publication."""
    return published[0]


@pytest.fixture(scope="session")
def ids(published: tuple[Path, dict[str, str]]) -> dict[str, str]:
    """Short names (gangrigab, hma, muli, cpec) -> collection ids of the test publication."""
    by_record = published[1]
    return {short: by_record[name] for short, name in SHORT_NAMES.items()}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def settings(publication: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    if backend == "pgstac":
        from publish.ingest import ingest

        dsn = str(request.getfixturevalue("pgstac_dsn"))
        ingest(publication, dsn)
        return Settings(root=publication, backend="pgstac", dsn=dsn)  # type: ignore[arg-type]
    return Settings(root=publication, backend=backend)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live_url(settings: Settings) -> Iterator[str]:
    """The service on uvicorn at 127.0.0.1:<free port>, in a thread."""
    with serve(create_app(settings)) as url:
        yield url
