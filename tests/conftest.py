"""Shared fixtures: the records, the offline STAC validator, and a rule for tests needing system tools."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.stac_schemas import OfflineValidator

if TYPE_CHECKING:
    from tests.publication import Publication

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted((REPO / "records").glob("*.json"))
SCHEMA_KIT = REPO.parent / "shared" / "stac-schemas"
MORE_SCHEMAS = REPO / "tests" / "schemas"
"""Schemas the kit lacks (web-map-links), same layout."""


def require(condition: bool, reason: str) -> None:
    """Skip when a system resource is missing, but fail under CI (CI=true), where it must be present."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stac_validator() -> OfflineValidator:
    require(SCHEMA_KIT.is_dir(), f"STAC schema kit not found at {SCHEMA_KIT}")
    return OfflineValidator(SCHEMA_KIT, MORE_SCHEMAS)


@pytest.fixture(scope="session")
def pgstac_template() -> Iterator[str]:
    """One throwaway PostgreSQL + pgstac per session (per xdist worker): the DSN of a migrated, idle database to
    copy with ``tests.pgstac_cluster.clone_database``. Skips (fails under CI) where PostgreSQL is missing."""
    from tests.pgstac_cluster import pgstac_cluster

    with pgstac_cluster() as dsn:
        yield dsn


@pytest.fixture(params=RECORDS, ids=[p.stem for p in RECORDS])
def record_path(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


@pytest.fixture(scope="session")
def publication(tmp_path_factory: pytest.TempPathFactory) -> Publication:
    """The four small sample datasets, published once and shared (read-only) by the tests."""
    from tests.publication import publish_samples

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "published-samples"
    shared.mkdir(exist_ok=True)
    return publish_samples(shared)
