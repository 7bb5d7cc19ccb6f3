"""PS-InSAR points: MVT tiles (decoded), TileJSON, nearest point, and the FlatGeobuf read by GDAL 3.6 over HTTP."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import morecantile
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.app import create_app
from tests.conftest import require
from tests.live import serve
from tests.raster.helpers import WEB_MERCATOR, decode_mvt

ITEM = "ps-track-107-descending"
OGRINFO = "/usr/bin/ogrinfo"


@pytest.fixture(scope="module")
def points(root: Path, ids: dict[str, str]) -> list[dict[str, Any]]:
    """The item's rows as published (GeoParquet), without geometry."""
    table = pq.read_table(root / ids["cpec"] / ITEM / "points.parquet")
    return table.drop_columns([c for c in ("geometry", "bbox") if c in table.column_names]).to_pylist()


def _mercator(lon: float, lat: float) -> tuple[float, float]:
    x = math.radians(lon) * 6378137.0
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0
    return x, y


def _inside(rows: list[dict[str, Any]], z: int, x: int, y: int) -> list[dict[str, Any]]:
    bounds = WEB_MERCATOR.xy_bounds(morecantile.Tile(x, y, z))
    found = []
    for row in rows:
        mx, my = _mercator(row["LON"], row["LAT"])
        if bounds.left <= mx < bounds.right and bounds.bottom < my <= bounds.top:
            found.append(row)
    return found


def test_mvt_tile_has_the_points_and_velocity(
    client: TestClient, ids: dict[str, str], points: list[dict[str, Any]]
) -> None:
    first = points[0]
    tile = WEB_MERCATOR.tile(first["LON"], first["LAT"], 11)
    answer = client.get(f"/collections/{ids['cpec']}/items/{ITEM}/vector/tiles/{tile.z}/{tile.x}/{tile.y}.mvt")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = decode_mvt(answer.content)["points"]
    assert layer["extent"] == 4096
    features = layer["features"]
    inside = _inside(points, tile.z, tile.x, tile.y)
    assert len(inside) <= len(features) <= len(inside) + 20  # + the buffer around the tile
    by_code = {f["properties"]["CODE"]: f for f in features}
    for row in inside:
        feature = by_code[row["CODE"]]
        assert feature["properties"]["VEL"] == pytest.approx(row["VEL"])
        assert not any(key.startswith("D20") for key in feature["properties"])
        (px, py), *_ = feature["points"]
        assert -64 <= px <= 4096 + 64 and -64 <= py <= 4096 + 64


def test_vector_tilejson(client: TestClient, ids: dict[str, str]) -> None:
    tilejson = client.get(f"/collections/{ids['cpec']}/items/{ITEM}/vector/tilejson.json").json()
    assert tilejson["tilejson"] == "3.0.0"
    assert tilejson["tiles"] == [
        f"http://testserver/collections/{ids['cpec']}/items/{ITEM}/vector/tiles/{{z}}/{{x}}/{{y}}.mvt"
    ]
    (layer,) = tilejson["vector_layers"]
    assert layer["id"] == "points" and layer["fields"]["VEL"] == "mean LOS velocity (mm/yr)"
    assert 0 <= tilejson["minzoom"] <= tilejson["maxzoom"]


def test_nearest_point_and_its_displacement_series(
    client: TestClient, ids: dict[str, str], points: list[dict[str, Any]]
) -> None:
    row = points[42]
    answer = client.get(
        f"/collections/{ids['cpec']}/items/{ITEM}/vector/point",
        params={"lon": row["LON"] + 0.0002, "lat": row["LAT"], "radius_m": 200},
    )
    assert answer.status_code == 200
    found = answer.json()
    assert found["properties"]["CODE"] == row["CODE"] or found["distance_m"] <= 200
    nearest = next(p for p in points if p["CODE"] == found["properties"]["CODE"])
    assert found["properties"]["VEL"] == nearest["VEL"]
    dates = sorted(c for c in nearest if c.startswith("D") and c[1:].isdigit())
    assert [s["date"].replace("-", "") for s in found["timeseries"]] == [d[1:] for d in dates]
    assert [s["value"] for s in found["timeseries"]] == [nearest[d] for d in dates]
    assert found["descriptions"]["VEL"] == "mean LOS velocity (mm/yr)"


def test_empty_and_out_of_range(client: TestClient, ids: dict[str, str]) -> None:
    base = f"/collections/{ids['cpec']}/items/{ITEM}/vector"
    assert client.get(f"{base}/tiles/3/0/0.mvt").status_code == 204
    assert client.get(f"{base}/tiles/31/0/0.mvt").status_code == 404
    assert client.get(f"{base}/tiles/2/9/0.mvt").status_code == 404
    assert client.get(f"{base}/point", params={"lon": 10, "lat": 10}).status_code == 204
    assert client.get(f"{base}/point", params={"lon": 10, "lat": 10, "radius_m": 1e9}).status_code == 422
    assert client.get(f"{base}/tilejson.json", params={"asset": "points-flatgeobuf"}).status_code == 404
    raster = f"/collections/{ids['gangrigab']}/items/2023-07/vector/tilejson.json"
    assert client.get(raster).status_code == 404


@pytest.fixture(scope="module")
def live_app(root: Path) -> FastAPI:
    """The whole service (services.app)."""
    return create_app(Settings(root=root))


@pytest.fixture(scope="module")
def live_url(live_app: FastAPI) -> Iterator[str]:
    """The whole service on uvicorn at a free loopback port, in a thread."""
    with serve(live_app) as url:
        yield url


def _signed(app: FastAPI, path: str) -> str:
    """``path`` with a signature when the service controls access (the CPEC points are login-access)."""
    access = getattr(app.state, "access", None)
    return f"{path}?{urlencode(access.sign_path(path, None))}" if access is not None else path


def test_flatgeobuf_streams_to_gdal_36(
    live_app: FastAPI, live_url: str, ids: dict[str, str], points: list[dict[str, Any]]
) -> None:
    require(shutil.which(OGRINFO) is not None, f"{OGRINFO} (Debian's GDAL) is not installed")
    path = f"/files/{ids['cpec']}/{ITEM}/points.fgb"
    url = f"/vsicurl/{live_url}{_signed(live_app, path)}"
    summary = subprocess.run(
        [OGRINFO, "-ro", "-so", "-al", url], check=False, capture_output=True, text=True, timeout=120
    )
    assert summary.returncode == 0, summary.stderr
    assert "using driver `FlatGeobuf' successful" in summary.stdout
    assert "Feature Count: 2000" in summary.stdout and "VEL: Real" in summary.stdout
    lon, lat = points[0]["LON"], points[0]["LAT"]
    west, south, east, north = lon - 0.02, lat - 0.02, lon + 0.02, lat + 0.02
    spat = [str(v) for v in (west, south, east, north)]
    window = subprocess.run(
        [OGRINFO, "-ro", "-al", "-spat", *spat, url], check=False, capture_output=True, text=True, timeout=120
    )
    assert window.returncode == 0, window.stderr
    expected = [p for p in points if west <= p["LON"] <= east and south <= p["LAT"] <= north]
    assert window.stdout.count("OGRFeature(points)") == len(expected) > 0  # a window read through range requests
