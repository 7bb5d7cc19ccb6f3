"""Fixtures of the raster service tests: the four published samples and the raster app over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.api.urls import MountedApp
from services.raster import create_raster_app
from tests.api.conftest import BACKENDS
from tests.pgstac_cluster import pgstac_dsn  # noqa: F401  (fixture)
from tests.publication import Publication

SHORT_NAMES = {
    "gangrigab": "gangrigab-velocity",
    "hma": "hma-glacier-velocity",
    "muli": "muli-subsidence",
    "cpec": "cpec-deformation",
}


@pytest.fixture(scope="session")
def root(publication: Publication) -> Path:
    """The publication root of the samples."""
    return publication.root.resolve()


@pytest.fixture(scope="session")
def ids(publication: Publication) -> dict[str, str]:
    """Short names (gangrigab, hma, muli, cpec) -> collection ids."""
    return {short: publication.collection_ids[name] for short, name in SHORT_NAMES.items()}


@pytest.fixture(scope="session")
def raster_app(root: Path) -> FastAPI:
    return create_raster_app(Settings(root=root))


@pytest.fixture(scope="session")
def client(raster_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(raster_app) as test_client:
        yield test_client


@pytest.fixture(scope="session", params=BACKENDS)
def indexed_client(root: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The raster app with its item index (mosaics, time series, time steps) on each search backend."""
    settings = Settings(root=root)
    if request.param == "pgstac":
        from publish.ingest import ingest

        dsn = str(request.getfixturevalue("pgstac_dsn"))
        ingest(root, dsn)
        settings = Settings(root=root, backend="pgstac", dsn=dsn)  # type: ignore[arg-type]
    with TestClient(create_raster_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def mounted(root: Path) -> Iterator[TestClient]:
    """The raster app mounted at /raster the way services/app.py mounts the STAC API."""
    app = FastAPI()
    app.mount("/raster", MountedApp(create_raster_app(Settings(root=root))))
    with TestClient(app) as test_client:
        yield test_client
