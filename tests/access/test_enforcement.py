"""Data files and tile routes for every share type and embargo, for every kind of caller; metadata stays public."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.access.conftest import APPLY, EMBARGO, ITEM, LOGIN, OPEN, PAST, Callers, World, data_path, tile_path

EXPECTED = {
    #         anonymous user granted manager admin script admin-key
    OPEN: (200, 200, 200, 200, 200, 200, 200),
    PAST: (200, 200, 200, 200, 200, 200, 200),
    LOGIN: (401, 200, 200, 200, 200, 200, 200),
    APPLY: (401, 403, 200, 403, 200, 200, 200),
    EMBARGO: (401, 403, 403, 200, 200, 403, 200),
}
CALLERS = ("anonymous", "user", "granted", "manager", "admin", "script", "admin-key")
CASES = [
    pytest.param(collection, caller, statuses[i], id=f"{collection}-{caller}")
    for collection, statuses in EXPECTED.items()
    for i, caller in enumerate(CALLERS)
]


@pytest.mark.parametrize(("collection", "caller", "status"), CASES)
def test_asset_range_request(client: TestClient, callers: Callers, collection: str, caller: str, status: int) -> None:
    response = client.get(data_path(collection), headers={**callers[caller], "Range": "bytes=0-99"})
    assert response.status_code == (206 if status == 200 else status), response.text
    if status == 200:
        assert len(response.content) == 100 and response.content[:2] in (b"II", b"MM")
        assert response.headers["content-range"].startswith("bytes 0-99/")
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == {401: "Unauthorized", 403: "Forbidden"}[status]
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("collection", "caller", "status"), CASES)
def test_tile_route(client: TestClient, callers: Callers, collection: str, caller: str, status: int) -> None:
    response = client.get(tile_path(collection), headers=callers[caller])
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize("collection", list(EXPECTED))
@pytest.mark.parametrize(
    "path", ["collection.json", "items.parquet", f"{ITEM}/{ITEM}.json", f"{ITEM}/thumbnail.png"], ids=str
)
def test_metadata_is_public(client: TestClient, collection: str, path: str) -> None:
    response = client.get(f"/files/{collection}/{path}")
    assert response.status_code == 200
    assert "private" not in response.headers.get("cache-control", "")


def test_catalog_and_unguarded_routes_are_public(client: TestClient) -> None:
    assert client.get("/files/catalog.json").status_code == 200
    assert client.get(f"/raster/collections/{EMBARGO}/info").status_code == 200


def test_full_download_and_head(client: TestClient, callers: Callers, world: World) -> None:
    size = (world.root / APPLY / ITEM / "data.tif").stat().st_size
    response = client.get(data_path(APPLY), headers=callers["granted"])
    assert response.status_code == 200 and len(response.content) == size
    head = client.head(data_path(APPLY), headers=callers["granted"])
    assert head.status_code == 200 and int(head.headers["content-length"]) == size
    assert client.head(data_path(APPLY)).status_code == 401


def test_restricted_answers_are_private(client: TestClient, callers: Callers) -> None:
    restricted = client.get(data_path(APPLY), headers={**callers["granted"], "Range": "bytes=0-9"})
    assert restricted.headers["cache-control"] == "private, no-store"
    assert "Authorization" in restricted.headers["vary"]
    with_origin = client.get(data_path(APPLY), headers={**callers["granted"], "Origin": "https://x.example.org"})
    assert set(with_origin.headers["vary"].split(", ")) >= {"Authorization", "X-API-Key", "Origin"}
    tile = client.get(tile_path(LOGIN), headers=callers["user"])
    assert tile.headers["cache-control"] == "private, no-store"
    public = client.get(data_path(OPEN), headers={"Range": "bytes=0-9"})
    assert "private" not in public.headers.get("cache-control", "")


@pytest.mark.parametrize(
    "path",
    [
        f"/files/{OPEN}/.publish-state.json",
        f"/files/{OPEN}/%2e%2e/{APPLY}/{ITEM}/data.tif",
        f"/files/{OPEN}/%2E%2E/{APPLY}/{ITEM}/data.tif",
        f"/files/{OPEN}//{ITEM}/data.tif",
        "/files/README.txt",
        "/files/no-such-collection/2023-01/data.tif",
        "/files/..%2Fsecrets",
    ],
)
def test_hidden_traversal_and_unknown_are_not_found(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


def test_unknown_collection_tiles_are_not_found(client: TestClient, callers: Callers) -> None:
    assert client.get(tile_path("no-such-collection"), headers=callers["admin"]).status_code == 404


def test_invalid_credentials_are_401_not_anonymous(client: TestClient) -> None:
    for headers in (
        {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "not-a-key"},
    ):
        response = client.get(data_path(OPEN), headers=headers)
        assert response.status_code == 200, "open data do not look at credentials"
        response = client.get(data_path(LOGIN), headers=headers)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_collection_rules_follow_a_republished_collection(client: TestClient, callers: Callers, world: World) -> None:
    import json
    import os

    path = world.root / OPEN / "collection.json"
    original = path.read_text()
    document = json.loads(original)
    try:
        path.write_text(json.dumps({**document, "ncdc:share_type": "login-access"}))
        os.utime(path, ns=(1, 1))
        assert client.get(data_path(OPEN)).status_code == 401
    finally:
        path.write_text(original)
    assert client.get(data_path(OPEN)).status_code == 200


def test_admin_dependency(client: TestClient, callers: Callers) -> None:
    assert client.post("/admin/ingest").status_code == 401
    assert client.post("/admin/ingest", headers=callers["user"]).status_code == 403
    assert client.post("/admin/ingest", headers=callers["script"]).status_code == 403
    assert client.post("/admin/ingest", headers=callers["admin"]).json() == {"by": "admin-1"}
    assert client.post("/admin/ingest", headers=callers["admin-key"]).json() == {"by": "ingest-bot"}
    assert client.post("/stac/collections", headers=callers["admin-key"]).status_code == 200, "inside a mounted app"
    assert client.post("/stac/collections", headers=callers["manager"]).status_code == 403


def test_me(client: TestClient, callers: Callers) -> None:
    anonymous = client.get("/auth/me").json()
    assert anonymous["authenticated"] is False and sorted(anonymous["collections"]) == sorted([OPEN, PAST])
    granted = client.get("/auth/me", headers=callers["granted"]).json()
    assert granted["authenticated"] and granted["email"] == "granted@example.org" and not granted["admin"]
    assert sorted(granted["collections"]) == sorted([APPLY, OPEN, PAST, LOGIN]), "not the embargoed one"
    assert EMBARGO in client.get("/auth/me", headers=callers["manager"]).json()["collections"]
    assert client.get("/auth/me", headers=callers["admin"]).json()["admin"] is True
