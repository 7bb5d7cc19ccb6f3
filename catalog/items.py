"""Items from published data files: rasters (COG) and vectors (GeoParquet + FlatGeobuf)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import rasterio
from multiformats import multihash
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.table import TableExtension
from rio_stac.stac import get_dataset_geom, get_projection_info, get_raster_info

from catalog.extensions import AuthenticationExtension, Band, RasterExtension, Statistics

GEOPARQUET = "application/vnd.apache.parquet"
FLATGEOBUF = "application/vnd.flatgeobuf"
SYNTHETIC_NOTE = "ncdc:synthetic"


@dataclass(frozen=True)
class ItemTime:
    """An instant or a period (UTC)."""

    start: datetime
    end: datetime | None = None

    def apply(self, item: pystac.Item) -> None:
        if self.end is None or self.end == self.start:
            item.datetime = self.start
            return
        item.datetime = None
        item.common_metadata.start_datetime = self.start
        item.common_metadata.end_datetime = self.end


@dataclass
class AssetSpec:
    """How an asset is described (from the recipe)."""

    key: str
    title: str | None = None
    description: str | None = None
    unit: str | None = None
    roles: list[str] = field(default_factory=lambda: ["data"])
    band_names: list[str] | None = None
    auth_schemes: dict[str, Any] = field(default_factory=dict)
    """The collection's ``auth:schemes``: every data asset of a restricted set refers to them."""


def add_file_info(asset: pystac.Asset, path: Path) -> None:
    """file:size and file:checksum (sha2-256 multihash) of the asset's file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.size = path.stat().st_size
    file_ext.checksum = multihash.wrap(digest.digest(), "sha2-256").hex()


def _restrict(item: pystac.Item, asset: pystac.Asset, schemes: dict[str, Any]) -> None:
    if schemes:
        item.properties["auth:schemes"] = schemes
        AuthenticationExtension.ext(asset, add_if_missing=True).refs = list(schemes)


def _new_item(
    item_id: str, geometry: dict[str, Any], bbox: list[float], time: ItemTime, properties: dict[str, Any]
) -> pystac.Item:
    item = pystac.Item(id=item_id, geometry=geometry, bbox=bbox, datetime=time.start, properties=dict(properties))
    time.apply(item)
    return item


def _bands(src: rasterio.io.DatasetReader, spec: AssetSpec) -> list[Band]:
    resolution = abs(src.res[0])
    bands = []
    for index, info in enumerate(get_raster_info(src, max_size=1024), start=0):
        name = (spec.band_names or [])[index] if spec.band_names and index < len(spec.band_names) else None
        stats = info.get("statistics", {})
        band = {
            "name": name or src.descriptions[index] or (spec.key if src.count == 1 else f"b{index + 1}"),
            "data_type": info["data_type"],
            "nodata": info.get("nodata"),
            "unit": spec.unit or info.get("unit"),
            "statistics": Statistics(**{k: float(v) for k, v in stats.items() if v is not None}),
            "raster:spatial_resolution": resolution,
            "raster:scale": info.get("scale") if info.get("scale") not in (None, 1.0) else None,
            "raster:offset": info.get("offset") if info.get("offset") not in (None, 0.0) else None,
        }
        bands.append(Band.model_validate(band))
    return bands


def create_raster_item(
    item_id: str, cog: Path, time: ItemTime, spec: AssetSpec, properties: dict[str, Any] | None = None
) -> pystac.Item:
    """An Item with one COG asset: projection v2 (+ proj:epsg for GDAL's STACIT), bands with raster v2, file."""
    with rasterio.open(cog) as src:
        geom = get_dataset_geom(src, densify_pts=0, precision=7)
        proj = get_projection_info(src)
        bands = _bands(src, spec)
    item = _new_item(item_id, geom["footprint"], list(geom["bbox"]), time, properties or {})
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.epsg = proj.get("epsg")
    projection.shape = proj["shape"]
    projection.transform = proj["transform"]
    projection.bbox = proj["bbox"]
    # GDAL < 3.10 (STACIT driver of QGIS 3.22 / Debian 12) knows proj:epsg, proj:wkt2 and proj:projjson but not
    # proj:code; projection v2 forbids proj:epsg, so the CRS is also written as WKT2.
    projection.wkt2 = proj.get("wkt2")
    asset = pystac.Asset(
        href=str(cog),
        media_type=pystac.MediaType.COG,
        title=spec.title,
        description=spec.description,
        roles=spec.roles,
    )
    item.add_asset(spec.key, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = bands
    add_file_info(asset, cog)
    _restrict(item, asset, spec.auth_schemes)
    return item


@dataclass(frozen=True)
class VectorFacts:
    """What the publisher learned about a vector file while converting it."""

    geometry: dict[str, Any]
    bbox: list[float]
    row_count: int
    columns: list[tuple[str, str, str | None]]
    """(name, type, description)."""
    epsg: int | None


def create_vector_item(
    item_id: str,
    parquet: Path,
    flatgeobuf: Path,
    facts: VectorFacts,
    time: ItemTime,
    spec: AssetSpec,
    properties: dict[str, Any] | None = None,
) -> pystac.Item:
    """An Item with a GeoParquet asset (table extension) and a FlatGeobuf copy for GDAL < 3.8 / QGIS 3.22."""
    item = _new_item(item_id, facts.geometry, facts.bbox, time, properties or {})
    if facts.epsg:
        ProjectionExtension.ext(item, add_if_missing=True).epsg = facts.epsg
    table = TableExtension.ext(item, add_if_missing=True)
    table.row_count = facts.row_count
    table.primary_geometry = "geometry"
    table.columns = [
        {k: v for k, v in {"name": n, "type": t, "description": d}.items() if v is not None}  # type: ignore[misc]
        for n, t, d in facts.columns
    ]
    for key, path, media_type, title in (
        (spec.key, parquet, GEOPARQUET, spec.title),
        (f"{spec.key}-flatgeobuf", flatgeobuf, FLATGEOBUF, f"{spec.title or spec.key} (FlatGeobuf, for QGIS / GDAL)"),
    ):
        asset = pystac.Asset(
            href=str(path), media_type=media_type, title=title, description=spec.description, roles=spec.roles
        )
        item.add_asset(key, asset)
        add_file_info(asset, path)
        _restrict(item, asset, spec.auth_schemes)
    return item


def add_thumbnail(item: pystac.Item, png: Path) -> None:
    """A thumbnail made from the data (public even for restricted sets: it is a picture, not data)."""
    item.add_asset(
        "thumbnail",
        pystac.Asset(href=str(png), media_type=pystac.MediaType.PNG, title="Thumbnail", roles=["thumbnail"]),
    )
