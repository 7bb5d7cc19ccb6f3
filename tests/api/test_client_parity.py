"""The same pystac-client searches give the same items, in the same order, on the embedded and pgstac backends.

Both services run on uvicorn (127.0.0.1) over the test publication of ``tests/api/conftest.py`` (pgstac loaded
with ``publish.ingest``, an upsert: loading it again for the pgstac half of the suite changes nothing). Runs only
when the suite's backend list (``NCDC_STAC_TEST_BACKENDS``) has both backends.

Every search below has a total order (unique sort keys) so that the order of the ids is comparable: ties would
be broken differently (the embedded backend by collection and id, pgstac by its own keys).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pystac_client import Client

from ncdc_stac.settings import Settings
from services.app import create_app
from tests import live
from tests.api.conftest import BACKENDS

PARITY = ("duckdb", "pgstac")
pytestmark = pytest.mark.skipif(
    not set(PARITY) <= set(BACKENDS),
    reason="needs both backends in the suite: NCDC_STAC_TEST_BACKENDS=duckdb,pgstac",
)

Key = tuple[str, str]
"""(collection, item id)"""


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The service on uvicorn at 127.0.0.1:<free port>, in a thread; yields its base URL."""
    with live.serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def clients(publication: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Client]]:
    """pystac-client Clients of both backends, over the same publication."""
    from publish.ingest import ingest

    dsn = str(request.getfixturevalue("pgstac_dsn"))
    ingest(publication, dsn)
    duckdb = Settings(root=publication, backend="duckdb")
    pgstac = Settings(root=publication, backend="pgstac", dsn=dsn)  # type: ignore[arg-type]
    with serve(duckdb) as duckdb_url, serve(pgstac) as pgstac_url:
        yield {
            "duckdb": Client.open(f"{duckdb_url}/stac/"),
            "pgstac": Client.open(f"{pgstac_url}/stac/"),
        }


def _run(client: Client, search: dict[str, Any], method: str) -> tuple[list[Key], int | None]:
    """The (collection, id) of every item the search yields, in order, and numberMatched."""
    result = client.search(method=method, **search)
    keys = [(str(item.get("collection")), str(item["id"])) for item in result.items_as_dicts()]
    return keys, result.matched()


# (name, search, expected number of items) - the numbers pin the searches to the test publication
SEARCHES: list[tuple[str, dict[str, Any], int]] = [
    ("bbox", {"bbox": [73, 28, 98, 36], "sortby": "-properties.datetime", "limit": 50}, 32),
    ("bbox-one-collection", {"collections": ["hma"], "bbox": [80, 33, 95, 40], "limit": 50}, 14),
    (
        "datetime-closed",
        {"datetime": "2013-01-01T00:00:00Z/2015-12-31T23:59:59Z", "sortby": "+properties.datetime", "limit": 50},
        30,
    ),
    ("datetime-open-start", {"datetime": "../2014-06-01T00:00:00Z", "sortby": "id", "limit": 50}, 14),
    ("datetime-open-end", {"datetime": "2022-12-01T00:00:00Z/..", "limit": 50}, 13),
    ("datetime-instant", {"datetime": "2023-03-15T00:00:00Z", "limit": 50}, 1),
    ("datetime-ranges", {"collections": ["muli"], "datetime": "2019-01-01T00:00:00Z/2019-02-01T00:00:00Z"}, 7),
    (
        "cql2-json",
        {
            "filter": {"op": ">=", "args": [{"property": "ncdc:mean_velocity"}, 20]},
            "filter_lang": "cql2-json",
            "sortby": "-properties.datetime",
            "limit": 50,
        },
        13,
    ),
    (
        "cql2-text",
        {
            "filter": "ncdc:mean_velocity < 12 AND platform = 'landsat-8'",
            "filter_lang": "cql2-text",
            "sortby": "+properties.datetime",
            "limit": 50,
        },
        12,
    ),
    ("cql2-text-subsidence", {"filter": "ncdc:subsidence_mm < -100", "sortby": "id", "limit": 50}, 4),
    ("sortby-property-desc", {"collections": ["hma"], "sortby": "-properties.ncdc:mean_velocity", "limit": 50}, 30),
    ("sortby-id", {"collections": ["gangrigab", "muli"], "sortby": "+id", "limit": 50}, 37),
    (
        "fields",
        {"collections": ["hma"], "fields": ["id", "-properties", "-assets"], "sortby": "-properties.datetime"},
        30,
    ),
    ("max-items-across-pages", {"sortby": "+properties.datetime", "limit": 4, "max_items": 10}, 10),
    ("all-pages", {"sortby": "-properties.datetime", "limit": 7}, 67),
]


def _resolve(search: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Short collection names (hma, muli, ...) -> the test publication's collection ids."""
    resolved = dict(search)
    if "collections" in resolved:
        resolved["collections"] = [ids[short] for short in resolved["collections"]]
    return resolved


CASES = [
    pytest.param(name, search, expected, method, id=f"{name}-{method}")
    for name, search, expected in SEARCHES
    for method in ("GET", "POST")
    if not (method == "POST" and search.get("filter_lang") == "cql2-text")  # POST takes cql2-json only
]


@pytest.mark.parametrize(("name", "search", "expected", "method"), CASES)
def test_same_items(
    clients: dict[str, Client], ids: dict[str, str], name: str, search: dict[str, Any], expected: int, method: str
) -> None:
    search = _resolve(search, ids)
    (duckdb, duckdb_matched), (pgstac, pgstac_matched) = (_run(clients[b], search, method) for b in PARITY)
    assert len(duckdb) == expected, duckdb
    assert len(set(duckdb)) == len(duckdb), "an item came twice"
    assert duckdb == pgstac, {
        "only duckdb": sorted(set(duckdb) - set(pgstac)),
        "only pgstac": sorted(set(pgstac) - set(duckdb)),
    }
    if duckdb_matched is not None and pgstac_matched is not None:
        assert duckdb_matched == pgstac_matched


def test_item_lookup(clients: dict[str, Client], ids: dict[str, str]) -> None:
    """One item by collection and id, and a search by ids, are the same item on both backends."""
    found = {}
    for backend in PARITY:
        collection = clients[backend].get_collection(ids["muli"])
        assert collection is not None
        item = collection.get_item("point-07")
        assert item is not None
        by_ids = list(clients[backend].search(ids=["point-07", "glacier-003"], limit=10).items_as_dicts())
        found[backend] = (item.id, item.properties["ncdc:subsidence_mm"], sorted(i["id"] for i in by_ids))
    assert found["duckdb"] == found["pgstac"] == ("point-07", -35.0, ["glacier-003", "point-07"])


SHARED = ("CORE", "COLLECTIONS", "FEATURES", "ITEM_SEARCH", "FIELDS", "SORT", "FILTER", "COLLECTION_SEARCH")
"""Conformance that pystac-client looks for and both backends implement (pgstac alone has the Query extension)."""


def test_same_client_conformance(clients: dict[str, Client]) -> None:
    """pystac-client sees the same capabilities on both (else it warns 'Server does not conform to ...')."""
    seen = {b: {name: clients[b].conforms_to(name) for name in SHARED} for b in PARITY}
    assert seen["duckdb"] == seen["pgstac"]
    assert all(seen["duckdb"].values()), seen["duckdb"]
