"""Items, item search, CQL2 filters, sorting, fields and pagination."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.publication import subsidence_items

TOTAL = 12 + 30 + 25
"""Items in the test publication: gangrigab 12, hma 30, muli 25."""


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(response: Any) -> list[str]:
    return [f["id"] for f in _ok(response)["features"]]


def _next(body: dict[str, Any]) -> dict[str, Any] | None:
    return next((link for link in body["links"] if link["rel"] == "next"), None)


def test_items(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get(f"/stac/collections/{ids['gangrigab']}/items", params={"limit": 5})
    assert response.headers["content-type"].startswith("application/geo+json")
    body = _ok(response)
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 12
    assert body["numberReturned"] == 5
    assert [f["id"] for f in body["features"]] == ["202312", "202311", "202310", "202309", "202308"]
    item = body["features"][0]
    assert item["collection"] == ids["gangrigab"]
    assert item["properties"]["gsd"] == 30.0
    assert item["properties"]["datetime"].startswith("2023-12-15T00:00:00")
    assert "ncdc:subsidence_mm" not in item["properties"]  # other collections' columns do not leak in
    assert item["bbox"] == [96.5, 29.0, 97.0, 29.5]
    assert item["geometry"]["type"] == "Polygon"
    rels = {link["rel"] for link in body["links"]}
    assert {"self", "root", "next", "collection"} <= rels


def test_item(client: TestClient, ids: dict[str, str]) -> None:
    item = _ok(client.get(f"/stac/collections/{ids['muli']}/items/point-03"))
    assert item["id"] == "point-03"
    assert item["type"] == "Feature"
    assert item["geometry"] == {"type": "Point", "coordinates": [99.14, 38.13]}
    assert item["properties"]["datetime"] is None
    assert item["properties"]["start_datetime"].startswith("2018-07-11")
    assert item["properties"]["ncdc:subsidence_mm"] == -15.0
    self_link = next(link for link in item["links"] if link["rel"] == "self")
    assert self_link["href"] == f"http://testserver/stac/collections/{ids['muli']}/items/point-03"


def test_default_order(client: TestClient, ids: dict[str, str]) -> None:
    """Newest first; an item with a period instead of a datetime sorts by its start."""
    assert _ids(client.get(f"/stac/collections/{ids['muli']}/items", params={"limit": 2})) == ["point-24", "point-23"]
    newest = _ids(client.get("/stac/search", params={"limit": 3}))
    assert newest == ["202312", "202311", "202310"]


def test_search_everything(client: TestClient) -> None:
    body = _ok(client.get("/stac/search", params={"limit": 100}))
    assert body["numberMatched"] == TOTAL
    assert len({(f["collection"], f["id"]) for f in body["features"]}) == TOTAL
    assert _next(body) is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"bbox": "96,28,98,30"}, 12),
        ({"bbox": "99.12,38.12,99.132,38.15"}, 10),
        ({"bbox": "0,0,1,1"}, 0),
        ({"bbox": "170,-10,-170,10"}, 0),  # crosses the antimeridian
        ({"bbox": "74,30,74.5,30.5"}, 1),
        ({"datetime": "2023-03-15T00:00:00Z"}, 1),
        ({"datetime": "2023-03-01T00:00:00Z/2023-05-31T23:59:59Z"}, 3),
        ({"datetime": "2023-06-01T00:00:00Z/.."}, 7),
        ({"datetime": "../2013-06-30T00:00:00Z"}, 3),
        ({"datetime": "2019-01-01T00:00:00Z/2019-02-01T00:00:00Z"}, 7),  # muli items span a year each
        ({"ids": "202301,point-00,glacier-000,nope"}, 3),
        ({"bbox": "96,28,98,30", "datetime": "2023-01-01T00:00:00Z/2023-02-28T00:00:00Z"}, 2),
        ({"intersects": json.dumps({"type": "Point", "coordinates": [96.7, 29.2]})}, 12),
    ],
)
def test_search_get(client: TestClient, params: dict[str, str], expected: int) -> None:
    body = _ok(client.get("/stac/search", params={**params, "limit": 100}))
    assert body["numberMatched"] == expected
    assert len(body["features"]) == expected


def test_search_collections(client: TestClient, ids: dict[str, str]) -> None:
    both = f"{ids['hma']},{ids['muli']}"
    body = _ok(client.get("/stac/search", params={"collections": both, "limit": 100}))
    assert body["numberMatched"] == 55
    assert {f["collection"] for f in body["features"]} == {ids["hma"], ids["muli"]}
    assert _ok(client.get("/stac/search", params={"collections": "nope"}))["features"] == []
    assert _ok(client.get("/stac/search", params={"collections": ids["cpec"]}))["features"] == []


def test_search_post(client: TestClient, ids: dict[str, str]) -> None:
    body = _ok(
        client.post(
            "/stac/search",
            json={
                "collections": [ids["hma"]],
                "intersects": {"type": "Polygon", "coordinates": [[[74, 30], [79, 30], [79, 31], [74, 31], [74, 30]]]},
                "datetime": "2013-01-01T00:00:00Z/2013-12-31T23:59:59Z",
                "limit": 50,
            },
        )
    )
    assert sorted(f["id"] for f in body["features"]) == ["glacier-000", "glacier-001", "glacier-002"]


@pytest.mark.parametrize(
    ("cql2_text", "expected"),
    [
        ("\"ncdc:mean_velocity\" > 20 AND platform = 'landsat-8'", 10),
        ("ncdc:mean_velocity BETWEEN 10 AND 12", 5),
        ("platform IN ('sentinel-2')", 6),
        ("id LIKE 'glacier-00%'", 10),
        ("CASEI(platform) = casei('LANDSAT-8')", 36),
        ("gsd IS NULL", 55),
        ("ncdc:subsidence_mm < -100", 4),
        ("S_INTERSECTS(geometry, POLYGON((96 28, 98 28, 98 30, 96 30, 96 28)))", 12),
        ("S_INTERSECTS(geometry, BBOX(99.12, 38.12, 99.132, 38.15))", 10),
        ("T_INTERSECTS(datetime, INTERVAL('2023-03-01T00:00:00Z', '2023-05-31T00:00:00Z'))", 3),
        ("T_BEFORE(datetime, TIMESTAMP('2013-06-01T00:00:00Z'))", 2),
        ("T_INTERSECTS(datetime, INTERVAL('2019-01-01T00:00:00Z', '2019-02-01T00:00:00Z'))", 7),
        ("datetime >= TIMESTAMP('2023-12-01T00:00:00Z')", 1),
        ("NOT (collection = 'monthly-glacier-surface-velocity-gangrigab-area-2023')", 55),
        ("ncdc:name = '冰川 7'", 1),
        ("id = 'x'' OR ''1''=''1'", 0),
        ("S_WITHIN(POINT(96.7 29.2), geometry)", 12),  # the geometry property second
        ("TRUE AND platform = 'landsat-8'", 36),
        ("NOT FALSE AND ncdc:name = '冰川 7'", 1),
    ],
)
def test_filter_cql2_text(client: TestClient, cql2_text: str, expected: int) -> None:
    body = _ok(client.get("/stac/search", params={"filter": cql2_text, "filter-lang": "cql2-text", "limit": 100}))
    assert body["numberMatched"] == expected
    assert len(body["features"]) == expected


def test_filter_on_datetime_of_items_with_a_period(client: TestClient, ids: dict[str, str]) -> None:
    """An item with start/end_datetime and a null datetime compares by its start (pgstac's datetime column)."""
    items = subsidence_items(ids["muli"])
    moment = "2021-01-01T00:00:00Z"
    expected = sorted(item["id"] for item in items if item["properties"]["start_datetime"] >= moment)
    assert 0 < len(expected) < len(items)
    for text in (f"datetime >= TIMESTAMP('{moment}')", f"NOT datetime < TIMESTAMP('{moment}')"):
        body = _ok(client.get("/stac/search", params={"collections": ids["muli"], "filter": text, "limit": 100}))
        assert sorted(feature["id"] for feature in body["features"]) == expected, text
    body = _ok(client.get("/stac/search", params={"collections": ids["muli"], "filter": "datetime IS NULL"}))
    assert body["numberMatched"] == 0


def test_filter_cql2_json(client: TestClient, ids: dict[str, str]) -> None:
    cql2_json = {
        "op": "and",
        "args": [
            {"op": ">=", "args": [{"property": "ncdc:mean_velocity"}, 20]},
            {"op": "=", "args": [{"property": "collection"}, ids["hma"]]},
        ],
    }
    get = _ok(client.get("/stac/search", params={"filter": json.dumps(cql2_json), "filter-lang": "cql2-json"}))
    post = _ok(client.post("/stac/search", json={"filter": cql2_json, "filter-lang": "cql2-json", "limit": 10}))
    assert get["numberMatched"] == post["numberMatched"] == 10
    assert [f["id"] for f in get["features"]] == [f["id"] for f in post["features"]]


def test_filter_on_items_endpoint(client: TestClient, ids: dict[str, str]) -> None:
    url = f"/stac/collections/{ids['gangrigab']}/items"
    assert _ids(client.get(url, params={"filter": "platform = 'sentinel-2' AND gsd = 30", "limit": 3})) == [
        "202311",
        "202309",
        "202307",
    ]


def test_sortby(client: TestClient, ids: dict[str, str]) -> None:
    url = f"/stac/collections/{ids['hma']}/items"
    ascending = _ids(client.get(url, params={"sortby": "+properties.ncdc:mean_velocity", "limit": 3}))
    assert ascending == ["glacier-000", "glacier-001", "glacier-002"]
    # across the collections that have the property: where items lack it is not specified (DuckDB sorts them
    # last, PostgreSQL as the largest value, so first in descending order)
    both = f"{ids['gangrigab']},{ids['hma']}"
    descending = _ids(
        client.get("/stac/search", params={"sortby": "-ncdc:mean_velocity", "collections": both, "limit": 3})
    )
    assert descending == ["glacier-029", "glacier-028", "glacier-027"]
    body = {"sortby": [{"field": "id", "direction": "asc"}], "collections": [ids["muli"]], "limit": 2}
    assert _ids(client.post("/stac/search", json=body)) == ["point-00", "point-01"]


def test_fields(client: TestClient, ids: dict[str, str]) -> None:
    body = _ok(client.get("/stac/search", params={"fields": "properties.gsd,-assets,-geometry", "limit": 1}))
    item = body["features"][0]
    assert "assets" not in item
    assert "geometry" not in item
    assert set(item["properties"]) == {"gsd"}
    assert {"id", "collection", "links"} <= set(item)
    only_excluded_response = client.get(f"/stac/collections/{ids['muli']}/items", params={"fields": "-properties"})
    assert only_excluded_response.headers["content-type"].startswith("application/geo+json")
    only_excluded = _ok(only_excluded_response)
    assert "properties" not in only_excluded["features"][0]
    assert "assets" in only_excluded["features"][0]
    post = {"fields": {"include": ["properties.datetime"], "exclude": ["links"]}, "limit": 1}
    item = _ok(client.post("/stac/search", json=post))["features"][0]
    assert set(item) == {"id", "type", "collection", "stac_version", "properties"}


def _follow_get(client: TestClient, url: str, params: dict[str, Any]) -> tuple[list[tuple[str, str]], int]:
    seen: list[tuple[str, str]] = []
    body = _ok(client.get(url, params=params))
    matched = body["numberMatched"]
    pages = 1
    while True:
        seen += [(f["collection"], f["id"]) for f in body["features"]]
        link = _next(body)
        if link is None:
            return seen, matched
        pages += 1
        assert pages <= TOTAL + 1, "pagination does not end"
        body = _ok(client.get(link["href"]))
        assert body["numberMatched"] == matched


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 7},
        {"limit": 51, "sortby": "-id"},  # large pages: keys first, rows after
        {"limit": 1, "collections": "monthly-glacier-surface-velocity-gangrigab-area-2023"},
        {"limit": 4, "sortby": "platform,-id"},
        {"limit": 5, "sortby": "ncdc:mean_velocity"},  # NULL for most items: ties broken by collection, id
        {"limit": 3, "filter": "ncdc:mean_velocity > 10", "bbox": "70,25,100,45"},
    ],
)
def test_pagination_get(client: TestClient, params: dict[str, Any]) -> None:
    seen, matched = _follow_get(client, "/stac/search", params)
    assert len(seen) == len(set(seen)) == matched


def test_pagination_items(client: TestClient, ids: dict[str, str]) -> None:
    seen, matched = _follow_get(client, f"/stac/collections/{ids['muli']}/items", {"limit": 6})
    assert matched == 25
    assert sorted(i for _, i in seen) == [f"point-{n:02d}" for n in range(25)]


def test_pagination_post(client: TestClient) -> None:
    body: dict[str, Any] = {"limit": 10, "sortby": [{"field": "properties.datetime", "direction": "asc"}]}
    seen: list[tuple[str, str]] = []
    for _ in range(TOTAL + 1):
        page = _ok(client.post("/stac/search", json=body))
        seen += [(f["collection"], f["id"]) for f in page["features"]]
        link = _next(page)
        if link is None:
            break
        assert link["method"] == "POST"
        assert link["href"] == "http://testserver/stac/search"
        body = link["body"]
    assert len(seen) == len(set(seen)) == TOTAL
    dated = [i for i in seen if not i[1].startswith("point")]
    assert dated[0] == ("monthly-velocity-large-glaciers-high-mountain-asia-2013-2024", "glacier-000")
