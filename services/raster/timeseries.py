"""Point time series: the value at a point in every item of a collection whose bbox contains it.

Each item's COG is read with rio-tiler's point in a thread pool (GDAL releases the GIL). Values are
``null`` where the pixel is nodata or the point falls outside the raster; items are sorted by time (item
datetime, else start).
"""

import csv
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import numpy
import rasterio
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from pydantic import BaseModel
from rio_tiler.constants import MAX_THREADS
from rio_tiler.errors import PointOutsideBounds
from rio_tiler.utils import inherit_rasterio_env
from starlette.responses import Response

from ncdc_stac.storage import StoredFile
from services.raster.index import ItemIndex
from services.raster.mosaic import main_asset
from services.raster.publication import COG, CollectionInfo, NotFoundError, Publication, PublishedItem
from services.raster.reader import PublishedCOGReader, gdal_env
from services.raster.renders import pick_render, render_band
from services.raster.timeline import iso


class TimeValue(BaseModel):
    """The value of one item."""

    item: str
    datetime: str | None
    value: float | None


class TimeSeries(BaseModel):
    """A point's values through a collection."""

    collection: str
    lon: float
    lat: float
    asset: str
    band: int
    band_name: str | None
    unit: str | None
    values: list[TimeValue]

    def csv(self) -> str:
        """``item,datetime,value,unit`` rows."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["item", "datetime", "value", "unit"])
        writer.writerows(
            [v.item, v.datetime or "", "" if v.value is None else v.value, self.unit or ""] for v in self.values
        )
        return out.getvalue()


def read_points(files: Sequence[StoredFile], band: int, lon: float, lat: float) -> list[float | None]:
    """The value of ``band`` at lon/lat in each COG (``None``: nodata or outside), read in parallel."""

    def read(file: StoredFile) -> float | None:
        try:
            with PublishedCOGReader.of(file) as cog:
                point = cog.point(lon, lat, indexes=band)
        except PointOutsideBounds:
            return None
        return None if numpy.ma.getmaskarray(point.array)[0] else float(point.array[0])

    with rasterio.Env(**gdal_env()):
        task = inherit_rasterio_env(read)
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, len(files)))) as pool:
            return list(pool.map(task, files))


def band_of(item: PublishedItem, asset: str, band: str | None, default: int) -> tuple[int, dict[str, Any]]:
    """The 1-based index and description of ``band`` (a name or an index; default ``default``)."""
    bands = item.bands(asset) or [{}]
    if band is None:
        index = default
    elif band.isdigit():
        index = int(band)
    else:
        names = [b.get("name") for b in bands]
        if band not in names:
            raise NotFoundError(f"no band {band!r} in asset {asset!r}; bands: {names}")
        index = names.index(band) + 1
    if not 1 <= index <= len(bands):
        raise NotFoundError(f"no band {index} in asset {asset!r} ({len(bands)} bands)")
    return index, bands[index - 1]


def point_series(
    publication: Publication,
    index: ItemIndex,
    info: CollectionInfo,
    lon: float,
    lat: float,
    asset: str | None,
    band: str | None,
) -> TimeSeries:
    """The time series of ``asset`` (default: the main COG asset) at lon/lat."""
    asset = asset or main_asset(index, info)
    if asset is None or asset not in info.asset_keys(COG):
        raise NotFoundError(f"no raster asset {asset!r} in collection {info.id!r}")
    hits = index.search(info.id, [asset], None, (lon, lat, lon, lat), newest_first=False)
    items = [item for item in publication.items(info.id, [hit.id for hit in hits]) if asset in item.cogs]
    default = render_band(pick_render(info.renders, [asset], [asset], asset))
    number, described = band_of(items[0], asset, band, default) if items else (default, {})
    values = read_points([item.cogs[asset] for item in items], number, lon, lat)
    return TimeSeries(
        collection=info.id,
        lon=lon,
        lat=lat,
        asset=asset,
        band=number,
        band_name=described.get("name"),
        unit=described.get("unit"),
        values=[
            TimeValue(item=item.id, datetime=iso(item.start) if item.start else None, value=value)
            for item, value in zip(items, values, strict=True)
        ],
    )


def timeseries_router(publication: Publication, index: ItemIndex) -> APIRouter:
    """``GET /collections/{collection_id}/timeseries``."""
    router = APIRouter(tags=["Time series"])

    @router.get(
        "/collections/{collection_id}/timeseries",
        response_model=TimeSeries,
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
        name="timeseries",
    )
    def timeseries(
        collection_id: Annotated[str, PathParam(description="Collection id")],
        lon: Annotated[float, Query(ge=-180, le=180, description="Longitude (WGS 84)")],
        lat: Annotated[float, Query(ge=-90, le=90, description="Latitude (WGS 84)")],
        asset: Annotated[str | None, Query(description="COG asset (default: the one most items have)")] = None,
        band: Annotated[str | None, Query(description="Band name or 1-based index (default: the render's)")] = None,
        format: Annotated[Literal["json", "csv"], Query(description="Response format")] = "json",
    ) -> Response:
        """The value at lon/lat of every item whose bbox contains the point, sorted by time; 204 if there is none."""
        info = publication.collection(collection_id)
        try:
            series = point_series(publication, index, info, lon, lat, asset, band)
        except ValueError as err:
            raise HTTPException(400, str(err)) from None
        if not series.values:
            return Response(status_code=204)
        if format == "csv":
            return Response(series.csv(), media_type="text/csv; charset=utf-8")
        return Response(series.model_dump_json(), media_type="application/json")

    return router
