"""A real STAC client against the service running on uvicorn."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cql2
import httpx
import pystac
import pytest
from pystac_client import Client


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pystac_client_search(live_url: str, ids: dict[str, str], method: str) -> None:
    client = Client.open(f"{live_url}/stac/")
    assert {c.id for c in client.get_collections()} == set(ids.values())
    search = client.search(
        method=method,
        collections=[ids["hma"], ids["gangrigab"]],
        bbox=[73, 28, 98, 36],
        datetime="2013-01-01T00:00:00Z/2023-06-30T23:59:59Z",
        filter={"op": ">=", "args": [{"property": "ncdc:mean_velocity"}, 5]},
        sortby="-properties.datetime",
        limit=4,
    )
    items = list(search.items())
    assert search.matched() == len(items) == 15 + 6  # hma glaciers 5-19 (grid rows 0-1) + gangrigab Jan-Jun
    assert len({(i.collection_id, i.id) for i in items}) == len(items)
    dates = [i.datetime for i in items]
    assert dates == sorted(dates, reverse=True)  # type: ignore[type-var]
    first = items[0]
    assert isinstance(first, pystac.Item)
    assert first.assets["data"].href.startswith(f"{live_url}/files/")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pystac_client_text_filter(live_url: str, ids: dict[str, str], method: str) -> None:
    """A string filter, as users write it: pystac-client sends it as cql2-text, in the body for POST."""
    client = Client.open(f"{live_url}/stac/")
    text = "\"ncdc:mean_velocity\" >= 5 AND platform = 'landsat-8'"
    as_json = {
        "op": "and",
        "args": [
            {"op": ">=", "args": [{"property": "ncdc:mean_velocity"}, 5]},
            {"op": "=", "args": [{"property": "platform"}, "landsat-8"]},
        ],
    }
    found = {
        str(kind): sorted((i.collection_id, i.id) for i in client.search(method=method, filter=value, limit=7).items())
        for kind, value in (("text", text), ("json", as_json))
    }
    assert found["text"] == found["json"] and len(found["text"]) > 7  # several pages, followed with the filter


def test_post_text_filter(live_url: str) -> None:
    """cql2-text in a POST body (as other clients send it) answers as its CQL2-JSON; bad ones are 400s."""
    text = "\"ncdc:mean_velocity\" >= 5 AND platform = 'landsat-8'"
    pages = [
        httpx.post(f"{live_url}/stac/search", json={"filter": value, "filter-lang": lang, "limit": 100})
        for value, lang in ((text, "cql2-text"), (text, None), (cql2.parse_text(text).to_json(), "cql2-json"))
    ]
    assert [page.status_code for page in pages] == [200, 200, 200], pages[0].text
    found = [sorted(f["id"] for f in page.json()["features"]) for page in pages]
    assert found[0] == found[1] == found[2] and len(found[0]) > 7


def test_post_text_filter_errors(live_url: str) -> None:
    bad = httpx.post(f"{live_url}/stac/search", json={"filter": "ncdc:mean_velocity >>> 5", "filter-lang": "cql2-text"})
    assert bad.status_code == 400 and "CQL2" in bad.text
    other = httpx.post(f"{live_url}/stac/search", json={"filter": "x = 1", "filter-lang": "sql"})
    assert other.status_code == 400 and "cql2-text or cql2-json" in other.text


def test_pystac_client_item(live_url: str, ids: dict[str, str]) -> None:
    collection = Client.open(f"{live_url}/stac/").get_collection(ids["muli"])
    assert collection is not None
    item = collection.get_item("point-07")
    assert item is not None
    assert item.properties["ncdc:subsidence_mm"] == -35.0


def test_concurrent_requests(live_url: str, ids: dict[str, str]) -> None:
    """Requests run in parallel threads, each with its own DuckDB cursor."""
    urls = [
        f"{live_url}/stac/search?limit=5&bbox=70,25,100,45",
        f"{live_url}/stac/collections/{ids['muli']}/items/point-03",
        f"{live_url}/stac/search?filter=ncdc:mean_velocity%3E3&limit=50",
        f"{live_url}/stac/collections?q=%E5%86%B0%E5%B7%9D",
    ] * 8
    with httpx.Client() as http, ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(http.get, urls))
    assert [r.status_code for r in responses] == [200] * len(urls)
    assert len({r.text for r in responses[1::4]}) == 1
