"""A small publication written into a temporary folder: real Collections from the records, synthetic items."""

from __future__ import annotations

import copy
import json
import posixpath
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

from catalog.collection import create_collection
from catalog.record import load_record

RECORDS = Path(__file__).resolve().parents[2] / "records"
GLACIER_MONTHLY = "gangrigab-velocity.json"
GLACIER_HMA = "hma-glacier-velocity.json"
SUBSIDENCE = "muli-subsidence.json"
NO_ITEMS = "cpec-deformation.json"


def _box(x: float, y: float, size: float) -> dict[str, Any]:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _item(collection: str, item_id: str, geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    coords = geometry["coordinates"]
    points = [coords] if geometry["type"] == "Point" else coords[0]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "collection": collection,
        "geometry": geometry,
        "bbox": [min(xs), min(ys), max(xs), max(ys)],
        "properties": properties,
        "links": [
            {"rel": "self", "href": f"./{item_id}.json", "type": "application/geo+json"},
            {"rel": "license", "href": "https://creativecommons.org/licenses/by/4.0/", "type": "text/html"},
        ],
        "assets": {
            "data": {
                "href": f"{collection}/{item_id}/{item_id}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "title": "速度 velocity",
            },
            "source": {"href": "https://example.org/source/" + item_id + ".zip", "roles": ["source"]},
        },
    }


def monthly_glacier_items(collection: str) -> list[dict[str, Any]]:
    """12 monthly rasters over Gangrigab, 2023."""
    return [
        _item(
            collection,
            f"2023{month:02d}",
            _box(96.5, 29.0, 0.5),
            {
                "datetime": _iso(datetime(2023, month, 15, tzinfo=UTC)),
                "gsd": 30.0,
                "platform": "sentinel-2" if month % 2 else "landsat-8",
                "ncdc:mean_velocity": 10.0 + month,
            },
        )
        for month in range(1, 13)
    ]


def hma_glacier_items(collection: str) -> list[dict[str, Any]]:
    """30 glaciers in a grid over High Mountain Asia, one month each from 2013-04."""
    items = []
    for number in range(30):
        x, y = 74.0 + (number % 10) * 2.2, 30.0 + (number // 10) * 4.0
        when = datetime(2013, 4, 1, tzinfo=UTC) + timedelta(days=31 * number)
        items.append(
            _item(
                collection,
                f"glacier-{number:03d}",
                _box(x, y, 0.4),
                {
                    "datetime": _iso(when),
                    "platform": "landsat-8",
                    "ncdc:mean_velocity": float(number),
                    "ncdc:name": f"冰川 {number}",
                },
            )
        )
    return items


def subsidence_items(collection: str) -> list[dict[str, Any]]:
    """25 measurement points in the Muli No. 4 pit, each covering a period (no single datetime)."""
    items = []
    for number in range(25):
        x, y = 99.125 + (number % 5) * 0.005, 38.13 + (number // 5) * 0.002
        start = datetime(2018, 1, 12, tzinfo=UTC) + timedelta(days=60 * number)
        items.append(
            _item(
                collection,
                f"point-{number:02d}",
                {"type": "Point", "coordinates": [x, y]},
                {
                    "datetime": None,
                    "start_datetime": _iso(start),
                    "end_datetime": _iso(start + timedelta(days=365)),
                    "ncdc:subsidence_mm": -5.0 * number,
                },
            )
        )
    return items


ITEMS = {GLACIER_MONTHLY: monthly_glacier_items, GLACIER_HMA: hma_glacier_items, SUBSIDENCE: subsidence_items}


def write_items(folder: Path, items: list[dict[str, Any]]) -> None:
    """items.parquet (stac-geoparquet, hrefs relative to the root) plus the static item JSON files (hrefs relative
    to the item's folder), as publish writes them."""
    to_parquet(parse_stac_items_to_arrow(items), folder / "items.parquet")
    for item in items:
        (folder / item["id"]).mkdir(parents=True, exist_ok=True)
        static = copy.deepcopy(item)
        for asset in static["assets"].values():
            if not urlsplit(asset["href"]).scheme:
                asset["href"] = posixpath.relpath(asset["href"], f"{folder.name}/{item['id']}")
        (folder / item["id"] / f"{item['id']}.json").write_text(json.dumps(static, ensure_ascii=False), "utf-8")


def write_publication(root: Path) -> dict[str, str]:
    """Write the publication; returns record file name -> collection id."""
    ids: dict[str, str] = {}
    catalog_links = []
    for name in (GLACIER_MONTHLY, GLACIER_HMA, SUBSIDENCE, NO_ITEMS):
        collection = create_collection(load_record(RECORDS / name))
        folder = root / collection.id
        folder.mkdir(parents=True)
        document = collection.to_dict(include_self_link=False)
        document["links"].append({"rel": "root", "href": "../catalog.json", "type": "application/json"})
        (folder / "collection.json").write_text(json.dumps(document, ensure_ascii=False, indent=1), "utf-8")
        if name in ITEMS:
            write_items(folder, ITEMS[name](collection.id))
        ids[name] = collection.id
        catalog_links.append({"rel": "child", "href": f"./{collection.id}/collection.json"})
    first = root / ids[GLACIER_MONTHLY] / "202301" / "202301.tif"
    first.write_bytes(b"II*\x00synthetic")
    catalog = {"type": "Catalog", "stac_version": "1.1.0", "id": "ncdc", "description": "test", "links": catalog_links}
    (root / "catalog.json").write_text(json.dumps(catalog), "utf-8")
    return ids
