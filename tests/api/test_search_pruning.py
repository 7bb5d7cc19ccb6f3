"""The prunable forms of temporal filters and keyset pages find exactly what the general forms find."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

from services.api import search
from services.api.search import Search, SearchParams
from services.api.store import CollectionEntry, DuckDBStore

START = datetime(2020, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _item(n: int, kind: str) -> dict[str, Any]:
    """Item ``n``: a 10-day range from day 5n; ``kind`` says how its datetime relates to the range (inside:
    day 5n rounded up to a multiple of 10, so pairs of items share a datetime)."""
    start = START + timedelta(days=5 * n)
    end = start + timedelta(days=10)
    inside = start + timedelta(days=(-5 * n) % 10)
    nominal = {"inside": inside, "null": None, "outside": end + timedelta(days=40)}[kind]
    properties: dict[str, Any] = {"datetime": _stamp(nominal) if nominal else None}
    properties |= {"start_datetime": _stamp(start), "end_datetime": _stamp(end)}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": f"item-{n:03d}",
        "geometry": {"type": "Point", "coordinates": [80.0 + n / 100, 30.0]},
        "bbox": [80.0 + n / 100, 30.0, 80.0 + n / 100, 30.0],
        "properties": properties,
        "links": [],
        "assets": {},
    }


def _publish(root: Path, odd: str | None) -> None:
    """One collection of 60 items; every seventh item is of kind ``odd`` (None: all regular)."""
    folder = root / "c"
    folder.mkdir(parents=True)
    items = [_item(n, odd if odd and n % 7 == 3 else "inside") for n in range(60)]
    collection = {"type": "Collection", "id": "c", "stac_version": "1.1.0", "description": "test", "links": []}
    (folder / "collection.json").write_text(json.dumps(collection), encoding="utf-8")
    to_parquet(parse_stac_items_to_arrow(items), folder / "items.parquet")


@pytest.fixture(params=[(None, {"datetime", "ranges"}), ("null", {"ranges"}), ("outside", {"datetime"})])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[DuckDBStore, set[str]]]:
    odd, facts = request.param
    _publish(tmp_path, odd)
    store = DuckDBStore.open(tmp_path)
    try:
        yield store, facts
    finally:
        store.close()


def _ids(store: DuckDBStore, entry: CollectionEntry, **params: Any) -> list[str]:
    """Every id a search finds, following its pages."""
    found, token = [], None
    with store.cursor() as cursor:
        while True:
            page = Search([entry], SearchParams(collections=["c"], limit=4, token=token, **params)).run(cursor)
            found += page.table.column("id").to_pylist()
            token = page.next_token
            if token is None:
                return found


def test_census_and_pruned_forms_agree(store: tuple[DuckDBStore, set[str]]) -> None:
    db, facts = store
    entry = db.collections["c"]
    assert entry.complete == facts
    general = dataclasses.replace(entry, complete=frozenset())
    intervals = [
        (START + timedelta(days=35), START + timedelta(days=70)),  # ends of item 5 and start of item 14 meet it
        (START + timedelta(days=33), START + timedelta(days=71)),
        (START + timedelta(days=200), None),
        (None, START + timedelta(days=12)),
        (START + timedelta(days=500), START + timedelta(days=600)),
    ]
    for interval in intervals:
        for sortby in ([], [("datetime", False)], [("id", True)]):
            expected = _ids(db, general, interval=interval, sortby=sortby)
            assert _ids(db, entry, interval=interval, sortby=sortby) == expected, (interval, sortby)
    walk = _ids(db, entry)
    assert walk == _ids(db, general) and len(walk) == len(set(walk)) == 60


@pytest.mark.parametrize("budget", [60, 59])
def test_resident_collection_answers_like_its_files(tmp_path: Path, budget: int) -> None:
    _publish(tmp_path, "null")
    files, resident = DuckDBStore.open(tmp_path), DuckDBStore.open(tmp_path, resident_items=budget)
    try:
        assert files.collections["c"].resident is False
        assert resident.collections["c"].resident is (budget >= 60), "resident only within the item budget"
        with resident.cursor() as cursor:
            tables = cursor.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        assert tables == ([("resident/c",)] if budget >= 60 else [])
        interval = (START + timedelta(days=33), START + timedelta(days=71))
        for params in ({}, {"interval": interval}, {"sortby": [("id", True)]}, {"ids": ["item-007", "item-008"]}):
            expected = _ids(files, files.collections["c"], **params)
            assert _ids(resident, resident.collections["c"], **params) == expected, params
    finally:
        files.close()
        resident.close()


@pytest.mark.parametrize("limit", [9, 10, 11])
def test_number_matched_counts_only_when_the_first_page_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """A first page holding every match (10 items here) is its own count; a full one needs the count query."""
    _publish(tmp_path, None)
    counted: list[int] = []
    count = Search._count

    def recorded(self: Search, *args: Any) -> int:
        counted.append(count(self, *args))
        return counted[-1]

    monkeypatch.setattr(Search, "_count", recorded)
    db = DuckDBStore.open(tmp_path)
    try:
        with db.cursor() as cursor:
            ten = [f"item-{n:03d}" for n in range(10)]
            page = Search([db.collections["c"]], SearchParams(ids=ten, limit=limit)).run(cursor)
    finally:
        db.close()
    assert page.matched == 10
    assert page.table.num_rows == min(limit, 10)
    assert (page.next_token is not None) == (limit < 10)
    assert counted == ([10] if limit < 10 else [])


@pytest.mark.parametrize("one_query", [True, False])
@pytest.mark.parametrize("budget", [0, 60])
@pytest.mark.parametrize("limit", [3, 10, 11])
@pytest.mark.parametrize("sortby", [[], [("id", True)]])
def test_large_spatial_first_page_and_count_are_one_query(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_query: bool,
    budget: int,
    limit: int,
    sortby: list[tuple[str, bool]],
) -> None:
    """A large bbox or intersects search's first page reads its matches once (files or resident), counts them
    and continues, page after page, in the same order as two queries do for a smaller one."""
    _publish(tmp_path, "null")
    monkeypatch.setattr(search, "ONE_QUERY_ITEMS", 60 if one_query else 61)
    if one_query:
        monkeypatch.setattr(Search, "_count", lambda *args: pytest.fail("a large spatial first page runs one query"))
    db = DuckDBStore.open(tmp_path, resident_items=budget)
    inside = [_item(n, "null" if n % 7 == 3 else "inside") for n in range(10)]  # x 80.00 .. 80.09
    by_id = sorted(item["id"] for item in inside)
    expected = by_id[::-1] if sortby else [i["id"] for i in sorted(inside, key=_newest_first)]
    ring = [[79.9, 29.9], [80.095, 29.9], [80.095, 30.1], [79.9, 30.1], [79.9, 29.9]]
    box = {"type": "Polygon", "coordinates": [ring]}
    try:
        entry = db.collections["c"]
        assert entry.resident is (budget == 60)
        for spatial in ({"bbox": (79.9, 29.9, 80.095, 30.1)}, {"intersects": box}):
            with db.cursor() as cursor:
                first = Search([entry], SearchParams(limit=limit, sortby=sortby, **spatial)).run(cursor)
            assert first.matched == 10, spatial
            assert first.table.column("id").to_pylist() == expected[:limit], spatial
            assert "ncdc_stac:row" not in first.table.column_names
            assert _ids(db, entry, sortby=sortby, **spatial) == expected, spatial
            with db.cursor() as cursor:
                nothing = Search([entry], SearchParams(bbox=(10.0, 10.0, 11.0, 11.0), limit=limit)).run(cursor)
            assert (nothing.matched, nothing.table.num_rows, nothing.next_token) == (0, 0, None)
    finally:
        db.close()


def _newest_first(item: dict[str, Any]) -> tuple[float, str]:
    """The default order (datetime descending, start_datetime for an item without one, then id)."""
    properties = item["properties"]
    moment = datetime.fromisoformat(properties["datetime"] or properties["start_datetime"])
    return -moment.timestamp(), item["id"]


@pytest.mark.parametrize("sortby", [[], [("id", True)], [("quality", False)]])
def test_one_query_spatial_page_of_several_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sortby: list[tuple[str, bool]]
) -> None:
    """Over collections with different columns, one query gives the pages and count that two queries give."""
    _publish(tmp_path, "null")
    folder = tmp_path / "d"
    folder.mkdir()
    items = [{**_item(n, "inside"), "id": f"d-{n:03d}"} for n in range(0, 60, 2)]
    for n, item in enumerate(items):
        item["properties"]["quality"] = n % 4
    collection = {"type": "Collection", "id": "d", "stac_version": "1.1.0", "description": "test", "links": []}
    (folder / "collection.json").write_text(json.dumps(collection), encoding="utf-8")
    to_parquet(parse_stac_items_to_arrow(items), folder / "items.parquet")
    db = DuckDBStore.open(tmp_path, resident_items=60)  # d (the smaller) resident, c read from its file
    entries = [db.collections["c"], db.collections["d"]]
    assert [e.resident for e in entries] == [False, True]

    def pages(threshold: int) -> list[tuple[list[str], int | None]]:
        monkeypatch.setattr(search, "ONE_QUERY_ITEMS", threshold)
        found, token = [], None
        with db.cursor() as cursor:
            while True:
                params = SearchParams(bbox=(79.9, 29.9, 80.2, 30.1), sortby=sortby, limit=7, token=token)
                page = Search(entries, params).run(cursor)
                found.append((page.table.column("id").to_pylist(), page.matched))
                if (token := page.next_token) is None:
                    return found

    try:
        two_queries, one_query = pages(10**9), pages(0)
    finally:
        db.close()
    assert one_query == two_queries
    assert sum(len(ids) for ids, _ in one_query) == one_query[0][1] == 32  # 21 of c, 11 of d
