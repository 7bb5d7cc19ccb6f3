"""Vectors -> GeoParquet 1.1 (spatially sorted, bbox covering, zstd) and a FlatGeobuf copy."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from PIL import Image
from rio_tiler.colormap import cmap

from catalog.items import VectorFacts
from publish.recipe import RenderDefaults
from publish.storage import temporary_sibling

ROW_GROUP_SIZE = 65_536
CANDIDATE_ENCODINGS = ("utf-8", "gb18030")
"""Tried in order on DBF text without a .cpg: GB18030 is a superset of GBK and GB2312."""


class VectorError(ValueError):
    """A vector file that cannot be read or converted; names the file."""


def _needs_detection(source: Path) -> bool:
    return source.suffix.lower() == ".shp" and not source.with_suffix(".cpg").exists()


def _detect(frame: gpd.GeoDataFrame, source: Path) -> gpd.GeoDataFrame:
    """Re-decode the field names and text read as Latin-1 (byte-preserving) with the first encoding that fits all
    of them."""
    geometry = frame.geometry.name
    text_columns = [c for c in frame.columns if c != geometry and pd.api.types.is_string_dtype(frame[c])]
    raw = {c: frame[c].map(lambda v: v.encode("latin-1") if isinstance(v, str) else v) for c in text_columns}
    names = {c: c.encode("latin-1") for c in frame.columns if c != geometry}
    for encoding in CANDIDATE_ENCODINGS:
        try:
            decoded = {c: raw[c].map(lambda v, e=encoding: v.decode(e) if isinstance(v, bytes) else v) for c in raw}
            renamed = {c: name.decode(encoding) for c, name in names.items()}
        except UnicodeDecodeError:
            continue
        return frame.assign(**decoded).rename(columns=renamed)
    raise VectorError(f"{source.with_suffix('.dbf')}: text is neither UTF-8 nor GBK/GB18030; add a .cpg file")


def _check_dbf(dbf: Path) -> None:
    """A DBF holds what its header declares (dBASE: record count at byte 4, header and record lengths at 8 and
    10); GDAL reads a DBF cut inside its header as one without fields, silently."""
    with dbf.open("rb") as file:
        header = file.read(32)
    if len(header) < 32:
        raise VectorError(f"{dbf}: cannot read vector data: the DBF is unreadable (no header)")
    records = int.from_bytes(header[4:8], "little")
    header_bytes, record_bytes = int.from_bytes(header[8:10], "little"), int.from_bytes(header[10:12], "little")
    expected, found = header_bytes + records * record_bytes, dbf.stat().st_size
    if found < expected:
        raise VectorError(
            f"{dbf}: cannot read vector data: the DBF is truncated ({found:,} bytes; its header declares "
            f"{records:,} records of {record_bytes} bytes after {header_bytes:,} bytes of header: {expected:,})"
        )


def read_vector(source: Path) -> gpd.GeoDataFrame:
    """Read any OGR vector; a shapefile's DBF encoding is detected when no .cpg says it; all-null columns dropped."""
    if source.suffix.lower() == ".shp":
        for sidecar in (".dbf", ".shx"):
            if not source.with_suffix(sidecar).exists():
                raise VectorError(f"{source}: the shapefile has no {sidecar} file")
        _check_dbf(source.with_suffix(".dbf"))
        try:
            pyogrio.read_info(source.with_suffix(".dbf"))
        except pyogrio.errors.DataSourceError:
            raise VectorError(f"{source.with_suffix('.dbf')}: cannot read vector data: the DBF is unreadable") from None
    try:
        if _needs_detection(source):
            frame = _detect(pyogrio.read_dataframe(source, encoding="ISO-8859-1"), source)
        else:
            frame = pyogrio.read_dataframe(source)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError) as err:
        raise VectorError(f"{source}: cannot read vector data: {err}") from None
    if frame.crs is None:
        hint = " (.prj file missing)" if source.suffix.lower() == ".shp" else ""
        raise VectorError(f"{source}: no coordinate reference system{hint}")
    if frame.empty:
        raise VectorError(f"{source}: no features")
    empty = [c for c in frame.columns if c != frame.geometry.name and frame[c].isna().all()]
    return frame.drop(columns=empty)  # e.g. the Name/description/... columns GDAL's KML drivers add, all null


def write_geoparquet(frame: gpd.GeoDataFrame, target: Path) -> gpd.GeoDataFrame:
    """GeoParquet 1.1: Hilbert-sorted rows, WKB geometry, bbox covering column, zstd, 64k-row groups."""
    ordered = frame.iloc[np.argsort(frame.hilbert_distance().to_numpy(), kind="stable")].reset_index(drop=True)
    with temporary_sibling(target) as tmp:
        ordered.to_parquet(
            tmp,
            compression="zstd",
            write_covering_bbox=True,
            schema_version="1.1.0",
            row_group_size=ROW_GROUP_SIZE,
            index=False,
        )
    return ordered


def write_flatgeobuf(frame: gpd.GeoDataFrame, target: Path) -> None:
    """FlatGeobuf with its packed R-tree: streamable over HTTP range requests by GDAL 3.6 / QGIS 3.22."""
    with temporary_sibling(target) as tmp:
        pyogrio.write_dataframe(frame, tmp, driver="FlatGeobuf", layer=target.stem, SPATIAL_INDEX="YES")


def facts(frame: gpd.GeoDataFrame, descriptions: dict[str, str]) -> VectorFacts:
    """Footprint (convex hull in WGS84), bbox, row count and columns of a frame."""
    wgs84 = frame.to_crs(4326) if frame.crs.to_epsg() != 4326 else frame
    hull = shapely.GeometryCollection(list(wgs84.geometry.values)).convex_hull
    if hull.geom_type != "Polygon":
        hull = shapely.box(*wgs84.total_bounds)
    columns = [(str(name), str(dtype), _describe(str(name), descriptions)) for name, dtype in frame.dtypes.items()]
    columns = [(n, "geometry" if n == "geometry" else t, d) for n, t, d in columns]
    return VectorFacts(
        geometry=shapely.geometry.mapping(shapely.set_precision(hull, 1e-7)),
        bbox=[float(v) for v in wgs84.total_bounds],
        row_count=len(frame),
        columns=columns,
        epsg=frame.crs.to_epsg(),
    )


def _describe(name: str, descriptions: dict[str, str]) -> str | None:
    for pattern, template in descriptions.items():
        match = re.fullmatch(pattern, name)
        if match:
            return template.format(**match.groupdict())
    return None


def thumbnail(frame: gpd.GeoDataFrame, target: Path, render: RenderDefaults, size: int = 256) -> None:
    """A PNG of the points coloured by the render's value column (transparent background)."""
    wgs84 = frame.to_crs(4326) if frame.crs.to_epsg() != 4326 else frame
    points = wgs84.geometry.representative_point()
    x, y = points.x.to_numpy(), points.y.to_numpy()
    west, south, east, north = wgs84.total_bounds
    col = np.clip(((x - west) / max(east - west, 1e-9) * (size - 1)).astype(int), 0, size - 1)
    row = np.clip(((north - y) / max(north - south, 1e-9) * (size - 1)).astype(int), 0, size - 1)
    column = render.value_column
    values = wgs84[column].to_numpy(dtype=float) if column in wgs84 else np.zeros(len(wgs84))
    low, high = render.rescale or (float(np.nanmin(values)), float(np.nanmax(values)) or 1.0)
    index = np.clip((values - low) / ((high - low) or 1.0) * 255, 0, 255).astype(np.uint8)
    colormap = cmap.get(render.colormap)
    palette = np.array([colormap[i] for i in range(256)], dtype=np.uint8)
    image = np.zeros((size, size, 4), dtype=np.uint8)
    order = np.argsort(np.abs(values - (low + high) / 2))  # extreme values drawn last, on top
    image[row[order], col[order]] = palette[index[order]]
    with temporary_sibling(target) as tmp:
        Image.fromarray(image, mode="RGBA").save(tmp, format="PNG")
