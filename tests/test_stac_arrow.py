"""Bulk stac-geoparquet conversion (``ncdc_stac.stac_arrow``) against stac-geoparquet's own row by row one."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from stac_geoparquet.arrow import parse_stac_items_to_arrow, stac_table_to_items

from ncdc_stac.stac_arrow import TIMESTAMP_PROPERTIES, drop_nulls, iter_items, whole_seconds
from tests.publication import Publication


def reference(table: pa.Table) -> list[dict[str, Any]]:
    """What stac-geoparquet makes of the table, nulls dropped, whole-second timestamps without a fraction."""
    items = [drop_nulls(item) for item in stac_table_to_items(table)]
    for item in items:
        properties = item["properties"]
        properties.update({k: whole_seconds(properties[k]) for k in TIMESTAMP_PROPERTIES if k in properties})
    return items


def same(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> bool:
    """Equal including the order of the keys (what a client sees)."""
    return json.dumps(left) == json.dumps(right)


def test_published_samples_convert_as_stac_geoparquet_does(publication: Publication) -> None:
    parquets = sorted(publication.root.glob("*/items.parquet"))
    assert len(parquets) == len(publication.summaries)
    for path in parquets:
        table = pq.read_table(path)
        items = list(iter_items(table))
        assert len(items) == table.num_rows > 0
        assert same(items, reference(table)), path
        # record batches of any size give the same items
        assert same(list(iter_items(table.to_batches(max_chunksize=5))), items), path


def _item(n: int, **extra: Any) -> dict[str, Any]:
    west = 80.0 + n
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": f"item-{n}",
        "geometry": {"type": "Point", "coordinates": [west, 30.5]},
        "bbox": [west, 30.5, west, 30.5],
        "properties": {"datetime": f"2024-0{n + 1}-01T00:00:00Z", **extra},
        "links": [],
        "assets": {"data": {"href": f"c/item-{n}/data.tif", "roles": ["data"]}},
    }


FOOTPRINT = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]}


def test_projection_geometries_become_geojson() -> None:
    items = [_item(n, **{"proj:geometry": FOOTPRINT}) for n in range(2)]
    for item in items:
        item["assets"]["thumbnail"] = {"href": f"c/{item['id']}/thumb.png", "proj:geometry": FOOTPRINT}
    table = parse_stac_items_to_arrow(items).read_all()
    converted = list(iter_items(table))
    assert same(converted, reference(table))
    assert converted[0]["properties"]["proj:geometry"] == FOOTPRINT
    assert converted[1]["assets"]["thumbnail"]["proj:geometry"] == FOOTPRINT
    assert converted[0]["geometry"] == {"type": "Point", "coordinates": [80.0, 30.5]}


def test_absent_fields_are_dropped() -> None:
    """Fields only some items have are null columns for the others (stac-geoparquet 0.8 fails on a null
    proj:geometry; the bulk conversion leaves the field out)."""
    items = [_item(0, **{"proj:geometry": FOOTPRINT, "gsd": 30.0}), _item(1, created="2024-05-06T07:08:09Z")]
    items[1]["assets"]["thumbnail"] = {"href": "c/item-1/thumb.png", "proj:geometry": FOOTPRINT}
    first, second = iter_items(parse_stac_items_to_arrow(items).read_all())
    assert first["properties"]["proj:geometry"] == FOOTPRINT and first["properties"]["gsd"] == 30.0
    assert "created" not in first["properties"] and "thumbnail" not in first["assets"]
    assert "gsd" not in second["properties"] and "proj:geometry" not in second["properties"]
    assert second["properties"]["created"] == "2024-05-06T07:08:09Z"  # as written (stac-geoparquet: .000000Z)
    assert second["assets"]["thumbnail"]["proj:geometry"] == FOOTPRINT


def test_ewkb_geometries_are_what_postgis_loads() -> None:
    table = parse_stac_items_to_arrow([_item(0), _item(1)]).read_all()
    geojson, ewkb = list(iter_items(table)), list(iter_items(table, ewkb=True))
    for plain, encoded in zip(geojson, ewkb, strict=True):
        geometry = shapely.from_wkb(encoded["geometry"])
        assert shapely.get_srid(geometry) == 4326
        assert shapely.geometry.mapping(geometry)["coordinates"] == tuple(plain["geometry"]["coordinates"])
        assert {**encoded, "geometry": None} == {**plain, "geometry": None}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": None, "b": [1, None, {"c": None}], "d": (1.5, "x")}, {"b": [1, None, {}], "d": [1.5, "x"]}),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (date(2024, 1, 2), "2024-01-02"),
        (Decimal("1.25"), 1.25),
        (b"\x01\xff", "01ff"),
        (True, True),
    ],
)
def test_drop_nulls(value: Any, expected: Any) -> None:
    assert drop_nulls(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-04-03T16:00:00.000000Z", "2023-04-03T16:00:00Z"),
        ("2023-04-03T16:00:00.000000000Z", "2023-04-03T16:00:00Z"),
        ("2023-04-03T16:00:00.500000Z", "2023-04-03T16:00:00.500000Z"),
        ("2023-04-03T16:00:00Z", "2023-04-03T16:00:00Z"),
        ("2023-04-03T16:00:00.000000+08:00", "2023-04-03T16:00:00.000000+08:00"),
    ],
)
def test_whole_seconds(value: str, expected: str) -> None:
    assert whole_seconds(value) == expected
