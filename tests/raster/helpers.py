"""Decoding service answers (PNG, NPY, GeoTIFF, MVT) and reading the source COGs with rio-tiler in-process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.warp
from rasterio.io import MemoryFile
from rasterio.transform import xy
from rio_tiler.io import Reader
from rio_tiler.models import ImageData

WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


def decode_image(content: bytes) -> npt.NDArray[Any]:
    """Bands of a PNG or GeoTIFF answer (count, height, width)."""
    with MemoryFile(content) as memory, memory.open() as dataset:
        return dataset.read()


def decode_npy(content: bytes) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Data bands and validity (from the mask, the last band) of an NPY answer."""
    array = np.load(io.BytesIO(content))
    return array[:-1], array[-1] > array[-1].min(initial=0)


def cog(root: Path, collection: str, item: str, asset: str) -> Path:
    return root / collection / item / f"{asset}.tif"


def source_tile(path: Path, tile: morecantile.Tile, **options: Any) -> ImageData:
    """The tile read from the COG with rio-tiler in this process."""
    with Reader(str(path)) as reader:
        return reader.tile(tile.x, tile.y, tile.z, **options)


def source_point(path: Path, lon: float, lat: float, band: int = 1) -> float | None:
    with Reader(str(path)) as reader:
        point = reader.point(lon, lat, indexes=band)
    return None if point.array.mask[0] else float(point.array[0])


def _lonlat(dataset: rasterio.DatasetReader, row: Any, col: Any) -> tuple[float, float]:
    x, y = xy(dataset.transform, row, col)
    lons, lats = rasterio.warp.transform(dataset.crs, "EPSG:4326", [x], [y])
    return float(lons[0]), float(lats[0])


def valid_lonlat(path: Path, pick: str = "max", band: int = 1) -> tuple[float, float]:
    """Lon/lat (WGS 84) of the pixel centre of the band's maximum (``max``) or minimum (``min``)."""
    with rasterio.open(path) as dataset:
        data = dataset.read(band, masked=True)
        return _lonlat(dataset, *np.unravel_index(data.argmax() if pick == "max" else data.argmin(), data.shape))


def nodata_lonlat(path: Path) -> tuple[float, float]:
    """Lon/lat of a nodata pixel centre inside the raster (the middle one in row order)."""
    with rasterio.open(path) as dataset:
        rows, cols = np.nonzero(np.ma.getmaskarray(dataset.read(1, masked=True)))
        middle = len(rows) // 2
        return _lonlat(dataset, rows[middle], cols[middle])


def tiles_over(path: Path, zoom: int) -> Iterator[morecantile.Tile]:
    """The WebMercatorQuad tiles covering the COG at ``zoom``."""
    with Reader(str(path)) as reader:
        west, south, east, north = reader.get_geographic_bounds("EPSG:4326")
    yield from WEB_MERCATOR.tiles(west, south, east, north, [zoom])


def maxzoom(path: Path) -> int:
    with Reader(str(path)) as reader:
        return int(reader.maxzoom)


def valid(image: ImageData) -> npt.NDArray[np.bool_]:
    """Valid pixels of the first band."""
    return ~np.ma.getmaskarray(image.array)[0]


def data_tile(path: Path, zoom: int | None = None) -> morecantile.Tile:
    """A tile (default: at the COG's max zoom) with valid and nodata pixels."""
    for tile in tiles_over(path, maxzoom(path) if zoom is None else zoom):
        ok = valid(source_tile(path, tile))
        if ok.any() and not ok.all():
            return tile
    raise AssertionError(f"{path}: no partly valid tile")


def empty_tile(path: Path) -> morecantile.Tile:
    """A tile at the COG's max zoom inside its bounds with no valid pixel."""
    for tile in tiles_over(path, maxzoom(path)):
        if not valid(source_tile(path, tile)).any():
            return tile
    raise AssertionError(f"{path}: every tile has data")


def zxy(tile: morecantile.Tile) -> str:
    return f"{tile.z}/{tile.x}/{tile.y}"


def source_statistics(path: Path) -> dict[str, Any]:
    with Reader(str(path)) as reader:
        return reader.statistics()


# ------------------------------------------------------------------ minimal Mapbox Vector Tile decoding


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _packed(buf: bytes) -> list[int]:
    values, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        values.append(value)
    return values


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


_VALUES: dict[int, Any] = {
    1: lambda raw: raw.decode(),
    2: lambda raw: float(np.frombuffer(raw, "<f4")[0]),
    3: lambda raw: float(np.frombuffer(raw, "<f8")[0]),
    4: int,
    5: int,
    6: _zigzag,
    7: bool,
}
"""Value fields of vector_tile.proto: string, float, double, int, uint, sint, bool."""


def _value(buf: bytes) -> Any:
    return next((_VALUES[number](raw) for number, _, raw in _fields(buf) if number in _VALUES), None)


def decode_mvt(content: bytes) -> dict[str, dict[str, Any]]:
    """Layers of a vector tile: name -> {"extent", "features": [{"properties", "points"}]} (point features)."""
    layers: dict[str, dict[str, Any]] = {}
    for number, _, layer_buf in _fields(content):
        if number != 3:
            continue
        name, keys, values, raw_features, extent = "", [], [], [], 4096
        for field, _, value in _fields(layer_buf):
            if field == 1:
                name = value.decode()
            elif field == 2:
                raw_features.append(value)
            elif field == 3:
                keys.append(value.decode())
            elif field == 4:
                values.append(_value(value))
            elif field == 5:
                extent = value
        features = []
        for raw in raw_features:
            tags: list[int] = []
            geometry: list[int] = []
            for field, _, value in _fields(raw):
                if field == 2:
                    tags = _packed(value)
                elif field == 4:
                    geometry = _packed(value)
            properties = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
            features.append({"properties": properties, "points": _points(geometry)})
        layers[name] = {"extent": extent, "features": features}
    return layers


def _points(geometry: list[int]) -> list[tuple[int, int]]:
    points, x, y, i = [], 0, 0, 0
    while i < len(geometry):
        command, count = geometry[i] & 7, geometry[i] >> 3
        i += 1
        assert command == 1, "point geometries only"
        for _ in range(count):
            x, y = x + _zigzag(geometry[i]), y + _zigzag(geometry[i + 1])
            points.append((x, y))
            i += 2
    return points
