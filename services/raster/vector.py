"""PS-InSAR points: MVT tiles, their TileJSON, and the nearest point with its displacement series.

Read with DuckDB spatial straight from the published GeoParquet (Hilbert-sorted, with a ``bbox`` covering
column, so a tile reads only the row groups it needs): ``ST_TileEnvelope`` / ``ST_AsMVTGeom`` /
``ST_AsMVT``. Tiles carry the scalar attributes (velocity, coherence, height, ...), not the ``D<YYYYMMDD>``
displacement columns, which the point endpoint returns as a time series.
"""

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from morecantile import Tile
from morecantile import tms as default_tms
from starlette.responses import JSONResponse, Response

from catalog.items import GEOPARQUET
from ncdc_stac.storage import StoredFile
from services.api.cql2_sql import quote_ident
from services.raster.errors import check_tile
from services.raster.publication import NotFoundError, Publication, PublishedItem
from services.raster.renders import forwarded, usable_renders

LAYER = "points"
EXTENT = 4096
BUFFER = 64
MAX_RADIUS_M = 5000.0
MAX_ZOOM = 18
MVT = "application/vnd.mapbox-vector-tile"
SERIES = re.compile(r"D(\d{4})(\d{2})(\d{2})")
SCALAR = re.compile(
    r"BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL.*|VARCHAR"
)
WEB_MERCATOR = default_tms.get("WebMercatorQuad")
Cursor = Callable[[], duckdb.DuckDBPyConnection]
CollectionId = Annotated[str, PathParam(description="Collection id")]
ItemId = Annotated[str, PathParam(description="Item id")]
AssetKey = Annotated[str | None, Query(description="GeoParquet asset (default: the first)")]


@dataclass(frozen=True)
class PointsAsset:
    """A published GeoParquet asset of an item and its columns."""

    item: PublishedItem
    key: str
    path: StoredFile
    columns: dict[str, str]
    """Column name -> DuckDB type."""
    geometry: str
    render: dict[str, Any] | None

    @property
    def attributes(self) -> list[str]:
        """Scalar columns drawn in tiles (no displacement series)."""
        return [c for c, t in self.columns.items() if SCALAR.fullmatch(t) and not SERIES.fullmatch(c)]

    @property
    def series(self) -> list[tuple[str, str]]:
        """(ISO date, column) of the ``D<YYYYMMDD>`` columns, oldest first."""
        found = [(f"{m[1]}-{m[2]}-{m[3]}", c) for c in self.columns if (m := SERIES.fullmatch(c))]
        return sorted(found)

    @property
    def value_column(self) -> str | None:
        """The attribute that colours the points (the render's ``value_column``)."""
        column = (self.render or {}).get("value_column")
        return column if column in self.columns else None

    @property
    def descriptions(self) -> dict[str, str]:
        """Column descriptions from the item's table extension."""
        columns = self.item.stac.properties.get("table:columns") or []
        return {c["name"]: c["description"] for c in columns if isinstance(c, dict) and c.get("description")}


def points_asset(
    publication: Publication, cursor: Cursor, collection_id: str, item_id: str, asset: str | None
) -> PointsAsset:
    """The item's GeoParquet asset ``asset`` (default: the first) or ``NotFoundError``."""
    item = publication.item(collection_id, item_id)
    files = item.files_of(GEOPARQUET)
    key = asset or next(iter(files), "")
    if key not in files:
        raise NotFoundError(f"no GeoParquet asset {key!r} in item {item_id!r}")
    with cursor() as con:
        described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files[key].duckdb]).fetchall()
    columns = {str(row[0]): str(row[1]) for row in described}
    geometry = str(item.stac.properties.get("table:primary_geometry") or "geometry")
    renders = usable_renders(item.info.renders, [key])
    return PointsAsset(item, key, files[key], columns, geometry, next(iter(renders.values()), None))


def _bbox_filter(points: PointsAsset, west: float, south: float, east: float, north: float) -> tuple[str, list[float]]:
    if "bbox" in points.columns:
        return "bbox.xmin <= ? AND bbox.xmax >= ? AND bbox.ymin <= ? AND bbox.ymax >= ?", [east, west, north, south]
    return f"ST_Intersects({quote_ident(points.geometry)}, ST_MakeEnvelope(?, ?, ?, ?))", [west, south, east, north]


def mvt(cursor: Cursor, points: PointsAsset, z: int, x: int, y: int) -> bytes:
    """The MVT of tile z/x/y (WebMercatorQuad); empty bytes when no point falls in it."""
    bounds = WEB_MERCATOR.bounds(Tile(x, y, z))
    pad_x, pad_y = ((bounds.right - bounds.left) * BUFFER / EXTENT, (bounds.top - bounds.bottom) * BUFFER / EXTENT)
    where, params = _bbox_filter(
        points, bounds.left - pad_x, bounds.bottom - pad_y, bounds.right + pad_x, bounds.top + pad_y
    )
    geom = quote_ident(points.geometry)
    attributes = ", ".join(quote_ident(c) for c in points.attributes)
    sql = (
        f"SELECT ST_AsMVT(t, '{LAYER}', {EXTENT}, 'geom'), count(*) FROM ("
        f"SELECT ST_AsMVTGeom(ST_Transform({geom}, 'EPSG:4326', 'EPSG:3857', true), "
        f"ST_Extent(ST_TileEnvelope(?, ?, ?)), {EXTENT}, {BUFFER}, true) AS geom"
        f"{', ' + attributes if attributes else ''} FROM read_parquet(?) WHERE {where}) t WHERE geom IS NOT NULL"
    )
    with cursor() as con:
        row = con.execute(sql, [z, x, y, points.path.duckdb, *params]).fetchone()
    return bytes(row[0]) if row and row[1] else b""


def nearest(cursor: Cursor, points: PointsAsset, lon: float, lat: float, radius_m: float) -> dict[str, Any] | None:
    """The point nearest to lon/lat within ``radius_m`` metres, with its attributes, or ``None``."""
    dlat = radius_m / 111_320.0
    dlon = radius_m / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
    where, params = _bbox_filter(points, lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    geom = quote_ident(points.geometry)
    excluded = ", ".join(quote_ident(c) for c in (points.geometry, "bbox") if c in points.columns)
    sql = (
        f"SELECT * EXCLUDE ({excluded}), ST_X({geom}) AS __x, ST_Y({geom}) AS __y, "
        f"ST_Distance_Sphere(ST_Point(ST_Y({geom}), ST_X({geom})), ST_Point(?, ?)) AS __d "  # lat/lon order
        f"FROM read_parquet(?) WHERE {where} ORDER BY __d LIMIT 1"
    )
    with cursor() as con:
        result = con.execute(sql, [lat, lon, points.path.duckdb, *params])
        row = result.fetchone()
        names = [d[0] for d in result.description or []]
    if row is None or row[-1] is None or row[-1] > radius_m:
        return None
    return dict(zip(names, row, strict=True))


def _min_zoom(bbox: tuple[float, float, float, float]) -> int:
    span = max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1e-9)
    return max(0, min(MAX_ZOOM, math.floor(math.log2(360.0 / span))))


def vector_router(publication: Publication, cursor: Cursor, forward: Collection[str] = ()) -> APIRouter:
    """MVT tiles, TileJSON and nearest point of an item's GeoParquet points.

    ``forward``: names of request parameters repeated in the TileJSON's tile URL (signed URLs).
    """
    router = APIRouter(prefix="/collections/{collection_id}/items/{item_id}/vector", tags=["Vector points"])

    @router.get(
        "/tiles/{z}/{x}/{y}.mvt", response_class=Response, responses={200: {"content": {MVT: {}}}}, name="vector_tile"
    )
    def tile(collection_id: CollectionId, item_id: ItemId, z: int, x: int, y: int, asset: AssetKey = None) -> Response:
        """Mapbox vector tile (WebMercatorQuad) of the points, layer ``points``; 204 when empty."""
        check_tile(WEB_MERCATOR, z, x, y)
        points = points_asset(publication, cursor, collection_id, item_id, asset)
        content = mvt(cursor, points, z, x, y)
        return Response(content, media_type=MVT) if content else Response(status_code=204)

    @router.get("/tilejson.json", name="vector_tilejson")
    def tilejson(
        request: Request, collection_id: CollectionId, item_id: ItemId, asset: AssetKey = None
    ) -> dict[str, Any]:
        """TileJSON 3.0 of the vector tiles, with the attributes and the render (value column, colormap, rescale)."""
        points = points_asset(publication, cursor, collection_id, item_id, asset)
        url = str(
            request.url_for("vector_tile", collection_id=collection_id, item_id=item_id, z="{z}", x="{x}", y="{y}")
        )
        query = urlencode([*([("asset", points.key)] if asset else []), *forwarded(request, forward)])
        url = url.replace("%7B", "{").replace("%7D", "}") + (f"?{query}" if query else "")
        bbox = points.item.bbox
        minzoom = _min_zoom(bbox)
        descriptions = points.descriptions
        return {
            "tilejson": "3.0.0",
            "name": f"{collection_id}/{item_id}/{points.key}",
            "tiles": [url],
            "minzoom": minzoom,
            "maxzoom": MAX_ZOOM,
            "bounds": list(bbox),
            "center": [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, minzoom],
            "vector_layers": [
                {
                    "id": LAYER,
                    "fields": {c: descriptions.get(c, points.columns[c]) for c in points.attributes},
                    "minzoom": minzoom,
                    "maxzoom": MAX_ZOOM,
                }
            ],
            "value_column": points.value_column,
            "render": points.render,
        }

    @router.get("/point", name="vector_point")
    def point(
        collection_id: CollectionId,
        item_id: ItemId,
        lon: Annotated[float, Query(ge=-180, le=180)],
        lat: Annotated[float, Query(ge=-90, le=90)],
        radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M, description="Search radius (m)")] = 100.0,
        asset: AssetKey = None,
    ) -> Response:
        """The nearest point within ``radius_m``: attributes and displacement series; 204 when none."""
        points = points_asset(publication, cursor, collection_id, item_id, asset)
        found = nearest(cursor, points, lon, lat, radius_m)
        if found is None:
            return Response(status_code=204)
        series = [{"date": date, "value": found.get(column)} for date, column in points.series]
        body = {
            "collection": collection_id,
            "item": item_id,
            "asset": points.key,
            "distance_m": found["__d"],
            "geometry": {"type": "Point", "coordinates": [found["__x"], found["__y"]]},
            "value_column": points.value_column,
            "properties": {c: found.get(c) for c in points.attributes},
            "descriptions": points.descriptions,
            "timeseries": series,
        }
        return JSONResponse(body)

    return router
