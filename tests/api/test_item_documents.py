"""One item by id on the embedded backend: read from its static item document, equal to its items.parquet row.

``GET /collections/{c}/items/{id}`` reads ``<collection>/<id>/<id>.json`` (one small file) instead of decoding the
row group of items.parquet that holds the item; search reads items.parquet. Both must give the same item.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.api.store import DuckDBStore
from services.app import create_app
from tests.api.publication import write_publication
from tests.publication import Publication


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_sample_item_equals_its_search_row(samples: Publication) -> None:
    """The published samples (publish's own static items and items.parquet): item by id == the search's item."""
    compared = 0
    with TestClient(create_app(Settings(root=samples.root, backend="duckdb"))) as client:
        for collection_id in samples.collection_ids.values():
            url: str | None = f"/stac/search?collections={collection_id}&limit=100"
            while url:
                page = _ok(client.get(url))
                for feature in page["features"]:
                    item = _ok(client.get(f"/stac/collections/{collection_id}/items/{feature['id']}"))
                    assert item == feature, f"{collection_id}/{feature['id']}"
                    compared += 1
                url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert compared >= 40
    assert (samples.root / collection_id / feature["id"] / f"{feature['id']}.json").is_file()


@pytest.fixture
def own_publication(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the small test publication (free to edit) and its Gangrigab collection id."""
    ids = write_publication(tmp_path)
    return tmp_path, ids["gangrigab-velocity.json"]


@pytest.fixture
def own_client(own_publication: tuple[Path, str]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(root=own_publication[0], backend="duckdb"))) as client:
        yield client


def test_item_is_read_from_its_static_document(own_publication: tuple[Path, str], own_client: TestClient) -> None:
    root, collection_id = own_publication
    path = root / collection_id / "202305" / "202305.json"
    url = f"/stac/collections/{collection_id}/items/202305"
    from_parquet = _ok(own_client.get(url))
    assert from_parquet["assets"]["data"]["href"] == f"http://testserver/files/{collection_id}/202305/202305.tif"

    document = json.loads(path.read_text("utf-8"))
    document["properties"]["ncdc:mean_velocity"] = 99.5
    path.write_text(json.dumps(document), "utf-8")
    edited = _ok(own_client.get(url))
    assert edited["properties"]["ncdc:mean_velocity"] == 99.5  # the document, not the parquet row (15.0)
    assert edited["assets"] == from_parquet["assets"]  # hrefs relative to the item folder, made the same URLs
    assert edited["links"] == from_parquet["links"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda path: path.unlink(), id="no document"),
        pytest.param(lambda path: path.write_text("{not json", "utf-8"), id="not JSON"),
        pytest.param(
            lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "id": "202306"})), id="other id"
        ),
        pytest.param(
            lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "collection": "x"})),
            id="other collection",
        ),
    ],
)
def test_items_parquet_answers_without_a_matching_document(
    own_publication: tuple[Path, str], own_client: TestClient, change: Any
) -> None:
    root, collection_id = own_publication
    path = root / collection_id / "202305" / "202305.json"
    url = f"/stac/collections/{collection_id}/items/202305"
    before = _ok(own_client.get(url))
    document = json.loads(path.read_text("utf-8"))
    document["properties"]["ncdc:mean_velocity"] = 99.5
    path.write_text(json.dumps(document), "utf-8")
    change(path)
    after = _ok(own_client.get(url))
    assert after == before
    assert after["properties"]["ncdc:mean_velocity"] == 15.0


def test_a_document_outside_a_published_item_is_never_read(
    own_publication: tuple[Path, str], own_client: TestClient
) -> None:
    """Only ``<collection>/<id>/<id>.json`` of an id that names one folder: no other file answers as an item."""
    root, collection_id = own_publication
    document = json.loads((root / collection_id / "202305" / "202305.json").read_text("utf-8"))
    decoys = {"..": root / "...json", "../202305": root / "202305.json", ".": root / collection_id / "..json"}
    for item_id, path in decoys.items():  # each the file the id would name, holding that id
        path.write_text(json.dumps({**document, "id": item_id}), "utf-8")
    for item_id in ("%2e%2e", "%2e", "202305%2F..%2F202305", "..%2F202305"):
        assert own_client.get(f"/stac/collections/{collection_id}/items/{item_id}").status_code == 404
    assert own_client.get(f"/stac/collections/{collection_id}/items/202305").status_code == 200
    store = DuckDBStore.open(root)
    try:
        entry = store.collections[collection_id]
        assert store.item_document(entry, "202305") is not None
        for item_id in (*decoys, "202305/../202305", "/202305", ""):
            assert store.item_document(entry, item_id) is None, item_id
    finally:
        store.close()
