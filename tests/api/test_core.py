"""Landing page, conformance, collections, collection search and queryables."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient


def _rels(document: dict[str, Any]) -> dict[str, list[str]]:
    rels: dict[str, list[str]] = {}
    for link in document["links"]:
        rels.setdefault(link["rel"], []).append(link["href"])
    return rels


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["collections"]]


def test_landing_page(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get("/stac/")
    assert response.status_code == 200
    page = response.json()
    assert page["type"] == "Catalog"
    assert page["id"] == "ncdc-stac"
    rels = _rels(page)
    assert rels["self"] == ["http://testserver/stac/"]
    assert rels["data"] == ["http://testserver/stac/collections"]
    assert rels["service-desc"] == ["http://testserver/stac/api"]
    assert sorted(rels["child"]) == sorted(f"http://testserver/stac/collections/{i}" for i in ids.values())
    assert client.get("/stac/api").status_code == 200


def test_conformance(client: TestClient) -> None:
    classes = set(client.get("/stac/conformance").json()["conformsTo"])
    assert set(client.get("/stac/").json()["conformsTo"]) == classes
    for expected in (
        "https://api.stacspec.org/v1.0.0/core",
        "https://api.stacspec.org/v1.0.0/item-search",
        "https://api.stacspec.org/v1.0.0/ogcapi-features",
        "https://api.stacspec.org/v1.0.0/collections",
        "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
        "https://api.stacspec.org/v1.1.0/item-search#sort",
        "https://api.stacspec.org/v1.0.0/item-search#fields",
        "https://api.stacspec.org/v1.0.0-rc.1/collection-search",
        "https://api.stacspec.org/v1.0.0-rc.1/collection-search#free-text",
    ):
        assert expected in classes


def test_collections(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get("/stac/collections")
    body = response.json()
    assert sorted(_ids(response)) == sorted(ids.values())
    assert body["numberMatched"] == 4
    by_id = {c["id"]: c for c in body["collections"]}
    glacier = by_id[ids["gangrigab"]]
    assert glacier["ncdc:i18n"]["zh-Hans"]["title"].startswith("2023年岗日嘎布")
    rels = _rels(glacier)
    assert rels["self"] == [f"http://testserver/stac/collections/{ids['gangrigab']}"]
    assert rels["items"] == [f"http://testserver/stac/collections/{ids['gangrigab']}/items"]
    assert "license" in rels
    assert "items" not in _rels(by_id[ids["cpec"]])  # published without items
    queryables = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
    assert rels[queryables] == [f"http://testserver/stac/collections/{ids['gangrigab']}/queryables"]
    assert queryables not in _rels(by_id[ids["cpec"]])
    thumbnail = glacier["assets"]["thumbnail"]["href"]
    assert thumbnail.startswith(f"http://testserver/files/{ids['gangrigab']}/")


def test_collection(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get(f"/stac/collections/{ids['muli']}")
    assert response.status_code == 200
    collection = response.json()
    assert collection["id"] == ids["muli"]
    assert collection["extent"]["spatial"]["bbox"][0][0] == pytest.approx(99.12277777777777)
    assert collection["keywords"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("冰川", {"gangrigab", "hma"}),
        ("岗日嘎布", {"gangrigab"}),
        ("木里煤田", {"muli"}),
        ("沉降", {"muli"}),
        ("subsidence", {"muli"}),
        ("SUBSIDENCE", {"muli"}),
        ("Glacier", {"gangrigab", "hma"}),
        ("glacier velocity", {"gangrigab", "hma"}),
        ("冰川,沉降", {"gangrigab", "hma", "muli"}),
        ("no-such-word", set()),
    ],
)
def test_free_text(client: TestClient, ids: dict[str, str], q: str, expected: set[str]) -> None:
    found = set(_ids(client.get("/stac/collections", params={"q": q})))
    assert found == {ids[name] for name in expected}


def test_collection_search_bbox_datetime(client: TestClient, ids: dict[str, str]) -> None:
    assert set(_ids(client.get("/stac/collections", params={"bbox": "99,38,99.2,38.2"}))) == {ids["muli"]}
    found = set(_ids(client.get("/stac/collections", params={"datetime": "2023-03-01T00:00:00Z"})))
    assert found == {ids["gangrigab"], ids["hma"], ids["muli"]}
    found = set(_ids(client.get("/stac/collections", params={"datetime": "../2014-01-01T00:00:00Z"})))
    assert found == {ids["hma"], ids["cpec"]}


def test_collection_search_pagination_sort_fields(client: TestClient, ids: dict[str, str]) -> None:
    seen: list[str] = []
    url: str | None = "/stac/collections?limit=3&sortby=id"
    while url:
        body = client.get(url).json()
        seen += [c["id"] for c in body["collections"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        assert len(seen) <= 4
    assert seen == sorted(ids.values())
    body = client.get("/stac/collections", params={"fields": "id,title", "limit": 1}).json()
    assert set(body["collections"][0]) <= {"id", "title", "type", "stac_version", "links", "collection"}


def test_queryables(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get("/stac/queryables")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    properties = response.json()["properties"]
    # type and format are the contract; annotations (pgstac adds a title, a description and a pattern) may vary
    assert {"type": "string", "format": "date-time"}.items() <= properties["datetime"].items()
    assert properties["ncdc:mean_velocity"] == {"type": "number"}
    assert {"id", "collection", "geometry", "ncdc:subsidence_mm"} <= set(properties)
    assert "assets" not in properties
    one = client.get(f"/stac/collections/{ids['muli']}/queryables").json()["properties"]
    assert "ncdc:subsidence_mm" in one
    assert "ncdc:mean_velocity" not in one
    assert client.get("/stac/collections/nope/queryables").status_code == 404
