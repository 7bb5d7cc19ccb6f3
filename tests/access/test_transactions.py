"""Transactions on the pgstac backend are for admins only; the API is read-only unless they are switched on.

The whole service (``create_app``) over the sample publication ingested into a throwaway pgstac database
(skipped where PostgreSQL + PostGIS are missing, failed under CI=true), with
``NCDC_STAC_PGSTAC_ENABLE_TRANSACTIONS_EXTENSIONS=true``.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from ncdc_stac.settings import ApiKey, Settings
from services.access import hash_api_key
from services.app import create_app
from tests.publication import Publication

ADMIN_KEY = "transactions-admin-key-0123456789"
USER_KEY = "transactions-user-key-01234567890"
DATASET = "gangrigab-velocity"
CALLERS = {
    "anonymous": {},
    "invalid": {"X-API-Key": "not-a-key-0123456789"},
    "user": {"X-API-Key": USER_KEY},
    "admin": {"X-API-Key": ADMIN_KEY},
}
TRANSACTION_CONFORMANCE = "https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction"


def service_settings(publication: Publication, **values: Any) -> Settings:
    keys = {
        hash_api_key(ADMIN_KEY): ApiKey(subject="ingest-bot", roles=["admin"]),
        hash_api_key(USER_KEY): ApiKey(subject="user", grants=list(publication.collection_ids.values())),
    }
    return Settings(root=publication.root, api_keys=keys, **values)


@pytest.fixture(scope="module")
def client(publication: Publication, pgstac_template: str) -> Iterator[TestClient]:
    from publish.ingest import ingest
    from tests.pgstac_cluster import clone_database

    dsn = clone_database(pgstac_template, f"tx_{os.getpid()}_{time.time_ns() % 10**9}")
    ingest(publication.root, dsn)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NCDC_STAC_PGSTAC_ENABLE_TRANSACTIONS_EXTENSIONS", "true")
        app = create_app(service_settings(publication, backend="pgstac", dsn=dsn))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def collection_id(publication: Publication) -> str:
    return publication.collection_ids[DATASET]


def new_item(client: TestClient, collection_id: str, item_id: str) -> dict[str, Any]:
    """A copy of a published item under a new id."""
    page = client.get(f"/stac/collections/{collection_id}/items", params={"limit": 1})
    assert page.status_code == 200, page.text
    item = copy.deepcopy(page.json()["features"][0])
    item["id"] = item_id
    item["links"] = []
    return dict(item)


@pytest.mark.parametrize(("caller", "status"), [("anonymous", 401), ("invalid", 401), ("user", 403)])
def test_writes_need_an_admin(client: TestClient, collection_id: str, caller: str, status: int) -> None:
    headers = CALLERS[caller]
    item = new_item(client, collection_id, f"refused-{caller}")
    collection = client.get(f"/stac/collections/{collection_id}").json()
    existing = client.get(f"/stac/collections/{collection_id}/items", params={"limit": 1}).json()["features"][0]
    item_path = f"/stac/collections/{collection_id}/items/{existing['id']}"
    attempts = [
        client.post(f"/stac/collections/{collection_id}/items", json=item, headers=headers),
        client.post(f"/stac/collections/{collection_id}/bulk_items", json={"items": {}}, headers=headers),
        client.put(item_path, json=existing, headers=headers),
        client.delete(item_path, headers=headers),
        client.post("/stac/collections", json={**collection, "id": f"copy-{caller}"}, headers=headers),
        client.delete(f"/stac/collections/{collection_id}", headers=headers),
    ]
    for response in attempts:
        assert response.status_code == status, (response.request.method, response.request.url, response.text)
        assert ("www-authenticate" in response.headers) == (status == 401)
    assert client.get(f"/stac/collections/{collection_id}/items/refused-{caller}").status_code == 404
    assert client.get(item_path).status_code == 200


def test_an_admin_adds_updates_and_deletes_an_item(client: TestClient, collection_id: str) -> None:
    admin = CALLERS["admin"]
    item = new_item(client, collection_id, "added-by-admin")
    created = client.post(f"/stac/collections/{collection_id}/items", json=item, headers=admin)
    assert created.status_code == 201, created.text
    found = client.post("/stac/search", json={"ids": ["added-by-admin"], "collections": [collection_id]})
    assert [f["id"] for f in found.json()["features"]] == ["added-by-admin"]

    item["properties"]["title"] = "updated by an admin"
    path = f"/stac/collections/{collection_id}/items/added-by-admin"
    updated = client.put(path, json=item, headers=admin)
    assert updated.status_code == 200, updated.text
    assert client.get(path).json()["properties"]["title"] == "updated by an admin"

    assert client.delete(path, headers=admin).status_code == 200
    assert client.get(path).status_code == 404


def test_conformance_declares_transactions(client: TestClient) -> None:
    assert TRANSACTION_CONFORMANCE in client.get("/stac/conformance").json()["conformsTo"]


@pytest.mark.parametrize("caller", ["anonymous", "admin"])
def test_the_api_is_read_only_by_default(publication: Publication, caller: str) -> None:
    with TestClient(create_app(service_settings(publication))) as client:
        collection_id = publication.collection_ids[DATASET]
        item = new_item(client, collection_id, "not-added")
        response = client.post(f"/stac/collections/{collection_id}/items", json=item, headers=CALLERS[caller])
        assert response.status_code == 405
        assert TRANSACTION_CONFORMANCE not in client.get("/stac/conformance").json()["conformsTo"]
