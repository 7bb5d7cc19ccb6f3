"""Shared fixtures: the records, the offline STAC validator, and a rule for tests needing system tools."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.stac_schemas import OfflineValidator

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted((REPO / "records").glob("*.json"))
SCHEMA_KIT = REPO.parent / "shared" / "stac-schemas"


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
    return OfflineValidator(SCHEMA_KIT)


@pytest.fixture(params=RECORDS, ids=[p.stem for p in RECORDS])
def record_path(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)
