"""STAC items out of stac-geoparquet record batches, converted a batch at a time.

``stac_geoparquet.arrow.stac_table_to_items`` turns each row into a dict with its own Arrow scalar and shapely
object; on a 50-item search page that costs more than the query. :func:`iter_items` keeps stac-geoparquet's
own column conversion (``StacArrowBatch.to_json_batch``: properties nested, timestamps as RFC 3339 strings,
bbox as an array) and replaces only the row loop with bulk conversions (``to_pylist`` for the columns,
``shapely.to_geojson`` for the WKB geometries). The output equals ``stac_table_to_items``'s item for item
once absent fields (null in columnar storage) are dropped and whole-second timestamps are written without the
zero fraction stac-geoparquet's ``strftime`` adds (``...T00:00:00Z``, as pystac writes them in the static items;
``tests/test_stac_arrow.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import shapely
from stac_geoparquet.arrow._batch import StacArrowBatch

PROJ_GEOMETRY = "proj:geometry"
WGS84_SRID = 4326
TIMESTAMP_PROPERTIES = (
    "datetime",
    "start_datetime",
    "end_datetime",
    "created",
    "updated",
    "expires",
    "published",
    "unpublished",
)
"""Properties stac-geoparquet stores as timestamp columns and turns back into strings."""


def whole_seconds(timestamp: str) -> str:
    """``...T16:00:00.000000Z`` as ``...T16:00:00Z``; any other timestamp as it is."""
    head, dot, fraction = timestamp.rpartition(".")
    return head + "Z" if dot and fraction.endswith("Z") and not fraction[:-1].strip("0") else timestamp


def _geojson(wkb: Any) -> Any:
    """GeoJSON geometry of a WKB value (None stays None)."""
    if wkb is None:
        return None
    return orjson.loads(shapely.to_geojson(shapely.from_wkb(wkb)))


def _geometries(column: pa.Array | pa.ChunkedArray, ewkb: bool) -> list[Any]:
    """Geometries of a WKB column, converted together: GeoJSON, or hex EWKB with SRID 4326."""
    geometries = shapely.from_wkb(column)
    if ewkb:
        return list(shapely.to_wkb(shapely.set_srid(geometries, WGS84_SRID), hex=True, include_srid=True))
    return [None if text is None else orjson.loads(text) for text in shapely.to_geojson(geometries)]


def iter_items(
    batches: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch], *, ewkb: bool = False
) -> Iterator[dict[str, Any]]:
    """JSON-ready STAC item dicts of stac-geoparquet batches: ``stac_table_to_items``'s items with
    :func:`drop_nulls` applied (geometries are GeoJSON already, so they are not walked).

    ``ewkb``: each geometry as the hex EWKB string (SRID 4326) that PostGIS loads, instead of GeoJSON.
    """
    source = batches.to_batches() if isinstance(batches, pa.Table) else batches
    for batch in source:
        if batch.num_rows == 0:
            continue
        json_batch = StacArrowBatch(batch).to_json_batch().inner
        column = json_batch.schema.get_field_index("geometry")
        geometries = _geometries(json_batch.column(column), ewkb) if column >= 0 else None
        rows = json_batch.set_column(column, "geometry", pa.nulls(batch.num_rows)) if column >= 0 else json_batch
        for index, row in enumerate(rows.to_pylist()):  # geometry keeps its place among the keys
            properties, assets = row.get("properties"), row.get("assets")
            if isinstance(properties, dict):
                if properties.get(PROJ_GEOMETRY) is not None:
                    properties[PROJ_GEOMETRY] = _geojson(properties[PROJ_GEOMETRY])
                for key in TIMESTAMP_PROPERTIES:
                    if type(value := properties.get(key)) is str:
                        properties[key] = whole_seconds(value)
            for asset in assets.values() if isinstance(assets, dict) else ():
                if isinstance(asset, dict) and asset.get(PROJ_GEOMETRY) is not None:
                    asset[PROJ_GEOMETRY] = _geojson(asset[PROJ_GEOMETRY])
            item = {
                key: geometries[index] if key == "geometry" and geometries is not None else drop_nulls(value)
                for key, value in row.items()
                if value is not None or (key == "geometry" and geometries is not None)
            }
            if "assets" not in row:
                item["assets"] = {}
            yield item


_PLAIN = frozenset({str, int, float, bool})
_CONVERSIONS: tuple[tuple[type | tuple[type, ...], Callable[[Any], Any]], ...] = (
    ((datetime, date), lambda value: value.isoformat().replace("+00:00", "Z")),
    (Decimal, float),
    (bytes, lambda value: value.hex()),
)


def drop_nulls(value: Any) -> Any:
    """JSON-ready copy: null members of objects dropped (columnar storage fills absent fields with null), tuples
    as lists, timestamps as RFC 3339 (``Z``), decimals as floats, bytes as hex."""
    kind = type(value)
    if kind is dict:
        return {
            key: member if type(member) in _PLAIN else drop_nulls(member)
            for key, member in value.items()
            if member is not None
        }
    if kind is list or kind is tuple:
        return [member if type(member) in _PLAIN else drop_nulls(member) for member in value]
    if kind in _PLAIN:
        return value
    for kinds, convert in _CONVERSIONS:
        if isinstance(value, kinds):
            return convert(value)
    return value
