"""Synthetic monthly glacier-velocity items over High Mountain Asia, as a stac-geoparquet publication.

One collection; ``n`` items = glaciers x months from 2013-01, generated month by month, newest first, and
streamed through stac-geoparquet in 65,536-item chunks into the layout ``publish`` writes
(``publish.pipeline.write_items_parquet``: row groups of ``ROW_GROUP`` items, a Bloom filter on ``id``; and each
item's static document ``<collection>/<id>/<id>.json``, hrefs relative to its folder), never all items in memory.
Glacier outlines are irregular 16-vertex polygons of 0.05-0.4 degrees scattered over 70-100 E, 27-45 N; each item
has the properties and assets of a monthly velocity mosaic (mean/max velocity, platform, gsd, projection, start/end
of the month, COG assets, a thumbnail). Values are random with a fixed seed: the same ``n`` gives the same
publication.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
from stac_geoparquet.arrow import parse_stac_items_to_arrow

from publish.pipeline import write_items_parquet

COLLECTION = "hma-glacier-velocity-synthetic"
PARSE_CHUNK = 65_536
"""Items parsed into Arrow at a time (the file's row groups are those of ``publish``: ``write_items_parquet``)."""
FIRST_MONTH = datetime(2013, 1, 1, tzinfo=UTC)
MONTHS = 12 * 12
"""2013-01 .. 2024-12"""
WEST, SOUTH, EAST, NORTH = 70.0, 27.0, 100.0, 45.0
PLATFORMS = ("landsat-8", "landsat-9", "sentinel-2")
INSTRUMENTS = {"landsat-8": ["oli"], "landsat-9": ["oli-2"], "sentinel-2": ["msi"]}
GSD = {"landsat-8": 30.0, "landsat-9": 30.0, "sentinel-2": 10.0}
PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True)
class Glacier:
    number: int
    x: float
    y: float
    outline: list[list[float]]
    speed: float
    """Typical velocity, m/yr."""
    bbox: tuple[float, float, float, float]
    epsg: str


@dataclass(frozen=True)
class SyntheticPublication:
    """What was written: the publication root and facts the benchmark queries need."""

    root: Path
    collection: str
    items: int
    glaciers: int
    months: int
    parquet: Path
    row_groups: int
    bytes: int


def _glaciers(count: int, rng: np.random.Generator) -> list[Glacier]:
    glaciers = []
    for number in range(count):
        x, y = float(rng.uniform(WEST, EAST - 0.5)), float(rng.uniform(SOUTH, NORTH - 0.5))
        size = float(rng.uniform(0.05, 0.4))
        angles = np.sort(rng.uniform(0, 2 * math.pi, 16)).tolist()
        radii = (size / 2 * rng.uniform(0.55, 1.0, 16)).tolist()
        ring = [
            [round(x + r * math.cos(a), 6), round(y + r * math.sin(a), 6)] for a, r in zip(angles, radii, strict=True)
        ]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        epsg = f"EPSG:{32600 + int((x + 180) // 6) + 1}"
        box = (min(xs), min(ys), max(xs), max(ys))
        glaciers.append(Glacier(number, x, y, [*ring, ring[0]], float(rng.lognormal(3.5, 0.8)), box, epsg))
    return glaciers


def month_start(index: int) -> datetime:
    """First instant of the ``index``-th month from 2013-01."""
    return FIRST_MONTH.replace(year=FIRST_MONTH.year + index // 12, month=index % 12 + 1)


def item_id(glacier: int, month: int) -> str:
    start = month_start(month)
    return f"g{glacier:05d}-{start:%Y%m}"


def _item(glacier: Glacier, month: int, draws: tuple[float, float, int, int, int]) -> dict[str, Any]:
    start = month_start(month)
    end = month_start(month + 1) - timedelta(seconds=1)
    platform = PLATFORMS[(glacier.number + month) % len(PLATFORMS)]
    seasonal = 1.0 + 0.35 * math.sin(2 * math.pi * (start.month - 4) / 12)
    noise, peak, pixels, height, width = draws
    mean = round(glacier.speed * seasonal * noise, 2)
    identifier = item_id(glacier.number, month)
    folder = f"{COLLECTION}/{identifier}"
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [PROJECTION],
        "id": identifier,
        "collection": COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [glacier.outline]},
        "bbox": list(glacier.bbox),
        "properties": {
            "datetime": (start + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "start_datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": platform,
            "instruments": INSTRUMENTS[platform],
            "gsd": GSD[platform],
            "proj:code": glacier.epsg,
            "proj:shape": [height, width],
            "ncdc:glacier_id": f"RGI60-13.{glacier.number:05d}",
            "ncdc:mean_velocity": mean,
            "ncdc:max_velocity": round(mean * peak, 2),
            "ncdc:valid_pixels": pixels,
        },
        "links": [{"rel": "license", "href": "https://creativecommons.org/licenses/by/4.0/", "type": "text/html"}],
        "assets": {
            "velocity": {
                "href": f"{folder}/{identifier}_v.tif",
                "type": COG,
                "roles": ["data"],
                "title": "Velocity magnitude (m/yr)",
            },
            "vx": {"href": f"{folder}/{identifier}_vx.tif", "type": COG, "roles": ["data"], "title": "East velocity"},
            "vy": {"href": f"{folder}/{identifier}_vy.tif", "type": COG, "roles": ["data"], "title": "North velocity"},
            "thumbnail": {"href": f"{folder}/thumbnail.png", "type": "image/png", "roles": ["thumbnail"]},
        },
    }


def iter_items(n: int, seed: int = 20240601) -> Iterator[dict[str, Any]]:
    """``n`` items (the first ``n`` of glaciers x months from 2013-01), newest month first as ``publish`` orders
    them, glaciers in order within a month; each month's values are drawn from its own seed."""
    glaciers = _glaciers(glacier_count(n), np.random.default_rng(seed))
    months = math.ceil(n / len(glaciers))
    for month in reversed(range(months)):
        count = min(len(glaciers), n - month * len(glaciers))
        rng = np.random.default_rng((seed + 1, month))
        draws = zip(
            rng.uniform(0.85, 1.15, count).tolist(),
            rng.uniform(2.0, 4.0, count).tolist(),
            rng.integers(1_000, 200_000, count).tolist(),
            rng.integers(200, 1500, count).tolist(),
            rng.integers(200, 1500, count).tolist(),
            strict=True,
        )
        for glacier, drawn in zip(glaciers[:count], draws, strict=True):
            yield _item(glacier, month, drawn)


def with_static_items(
    items: Iterator[dict[str, Any]], folder: Path, only: Container[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The items, each (``only`` those ids) also written as publish writes its static item (hrefs relative to the
    item's folder)."""
    for item in items:
        if only is not None and item["id"] not in only:
            yield item
            continue
        home = folder / item["id"]
        home.mkdir(exist_ok=True)
        assets = {
            key: {**asset, "href": "./" + asset["href"].rsplit("/", 1)[-1]} for key, asset in item["assets"].items()
        }
        links = [
            {"rel": "self", "href": f"./{item['id']}.json", "type": "application/geo+json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            *item["links"],
        ]
        (home / f"{item['id']}.json").write_bytes(orjson.dumps({**item, "links": links, "assets": assets}))
        yield item


def glacier_count(n: int) -> int:
    return max(1, math.ceil(n / MONTHS))


def collection_document(n: int) -> dict[str, Any]:
    last = month_start(min(MONTHS, math.ceil(n / glacier_count(n)))) - timedelta(seconds=1)
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": COLLECTION,
        "title": "Synthetic monthly glacier velocity, High Mountain Asia (benchmark)",
        "description": "Synthetic items for the search benchmark; not measurements.",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[WEST, SOUTH, EAST, NORTH]]},
            "temporal": {
                "interval": [[FIRST_MONTH.strftime("%Y-%m-%dT%H:%M:%SZ"), last.strftime("%Y-%m-%dT%H:%M:%SZ")]]
            },
        },
        "links": [],
    }


def write_publication(root: Path, n: int, static: Container[str] | None = None) -> SyntheticPublication:
    """``root/<collection>/collection.json``, ``items.parquet`` newest first and the static items (``static``: only
    those ids; writing a million small files takes many minutes), in publish's layout."""
    folder = root / COLLECTION
    folder.mkdir(parents=True, exist_ok=True)
    document = collection_document(n)
    (folder / "collection.json").write_text(json.dumps(document, indent=1), "utf-8")
    # every item has the same fields: the schema of the first chunk fits all (one pass, no inference pass)
    items = with_static_items(iter_items(n), folder, static)
    reader = parse_stac_items_to_arrow(items, chunk_size=PARSE_CHUNK, schema="FirstBatch")
    parquet = folder / "items.parquet"
    write_items_parquet(reader, parquet, {COLLECTION: document})
    metadata = pq.ParquetFile(parquet).metadata
    return SyntheticPublication(
        root=root,
        collection=COLLECTION,
        items=metadata.num_rows,
        glaciers=glacier_count(n),
        months=math.ceil(n / glacier_count(n)),
        parquet=parquet,
        row_groups=metadata.num_row_groups,
        bytes=parquet.stat().st_size,
    )
