"""Bad requests are 400 with a message, unknown ids 404, and nothing is a 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient


def _message(response: Any) -> str:
    body = response.json()
    return json.dumps(body.get("description") or body.get("detail"), ensure_ascii=False)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"bbox": "1,2,3"}, "4 or 6"),
        ({"bbox": "a,b,c,d"}, "invalid bbox"),
        ({"bbox": "0,50,10,40"}, "south"),
        ({"bbox": "0,0,200,10"}, "within"),
        ({"datetime": "2023-13-01T00:00:00Z"}, ""),
        ({"datetime": "yesterday"}, "RFC3339"),
        ({"datetime": "2024-01-01T00:00:00Z/2023-01-01T00:00:00Z"}, "before"),
        ({"datetime": "../.."}, "Double open-ended"),
        ({"limit": "0"}, "greater than 0"),
        ({"limit": "-3"}, "greater than 0"),
        ({"limit": "ten"}, "integer"),
        ({"filter": "gsd >>> 3"}, "invalid CQL2"),
        ({"filter": "no_such_property = 3"}, "unknown property"),
        ({"filter": "id > 5"}, "cannot be evaluated"),
        ({"filter": "gsd = 'thirty'"}, "cannot be evaluated"),
        ({"filter": "platform = 5"}, "cannot be evaluated"),
        ({"filter": "A_CONTAINS(platform, ('a'))"}, "cannot be evaluated"),
        ({"filter": "S_INTERSECTS(platform, POINT(1 2))"}, "cannot be evaluated"),
        ({"filter": "datetime > TIMESTAMP('2023-02-30T00:00:00Z')"}, ""),
        ({"filter": "unknown_function(gsd) = 1"}, "unsupported"),
        ({"filter": '{"op": "=", "args": [1]}', "filter-lang": "cql2-json"}, "invalid CQL2"),
        ({"filter": "gsd = 30", "filter-crs": "EPSG:3857"}, "filter-crs"),
        ({"filter": "gsd = 30", "filter-lang": "sql"}, ""),
        ({"sortby": "no_such_property"}, "unknown property"),
        ({"sortby": "geometry"}, "cannot sort"),
        ({"token": "not-a-token"}, "token"),
        ({"intersects": "{not json"}, "intersects"),
        ({"intersects": '{"type": "Polygon", "coordinates": 5}'}, ""),
    ],
)
def test_search_400(client: TestClient, params: dict[str, str], says: str) -> None:
    response = client.get("/stac/search", params=params)
    assert response.status_code == 400, response.text
    assert says in _message(response)


def test_post_search_400(client: TestClient) -> None:
    for body in (
        {"bbox": [1, 2, 3]},
        {"limit": 0},
        {"datetime": "not a date"},
        {"filter": {"op": "like", "args": [{"property": "id"}]}},
        {"intersects": {"type": "Point", "coordinates": [1, 2]}, "bbox": [0, 0, 1, 1]},
        {"sortby": [{"field": "nope", "direction": "asc"}]},
        {"token": "eyJ2IjpbXX0"},
    ):
        response = client.post("/stac/search", json=body)
        assert response.status_code == 400, (body, response.text)


def test_token_of_another_sort(client: TestClient) -> None:
    first = client.get("/stac/search", params={"limit": 2, "sortby": "id"}).json()
    href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    token = parse_qs(urlsplit(href).query)["token"][0]
    response = client.get("/stac/search", params={"limit": 2, "sortby": "-id", "token": token})
    assert response.status_code == 400
    assert "sortby" in _message(response)


def test_404(client: TestClient, ids: dict[str, str]) -> None:
    for url in (
        "/stac/collections/no-such-collection",
        "/stac/collections/no-such-collection/items",
        "/stac/collections/no-such-collection/items/202301",
        f"/stac/collections/{ids['gangrigab']}/items/no-such-item",
        f"/stac/collections/{ids['cpec']}/items/anything",
        "/stac/collections/no-such-collection/queryables",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "not found" in _message(response)


def test_items_endpoint_400(client: TestClient, ids: dict[str, str]) -> None:
    url = f"/stac/collections/{ids['hma']}/items"
    for params in ({"bbox": "1,2"}, {"datetime": "x"}, {"limit": "0"}, {"filter": "x ="}, {"sortby": "nope"}):
        assert client.get(url, params=params).status_code == 400, params


def test_collections_400(client: TestClient) -> None:
    for params in ({"bbox": "1,2"}, {"datetime": "x"}, {"limit": "0"}, {"offset": "-1"}):
        assert client.get("/stac/collections", params=params).status_code == 400, params
