"""Point time series through a collection's items, against per-file rio-tiler point reads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.raster.helpers import cog, nodata_lonlat, source_point, valid_lonlat


@pytest.fixture
def client(indexed_client: TestClient) -> TestClient:
    """Every test here runs on both item indexes (DuckDB over stac-geoparquet, pgstac's search)."""
    return indexed_client


def test_gangrigab_twelve_months(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    lon, lat = valid_lonlat(cog(root, cid, "2023-07", "velocity"))
    series = client.get(f"/collections/{cid}/timeseries", params={"lon": lon, "lat": lat}).json()
    assert (series["asset"], series["band"], series["unit"]) == ("velocity", 1, "m/d")
    months = [f"2023-{m:02d}" for m in range(1, 13)]
    assert [v["item"] for v in series["values"]] == months
    expected = [source_point(cog(root, cid, month, "velocity"), lon, lat) for month in months]
    assert [v["value"] for v in series["values"]] == expected
    assert all(value is not None for value in expected)
    assert series["values"][0]["datetime"] == "2022-12-31T16:00:00Z"  # 2023-01 in China Standard Time


def test_csv(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    lon, lat = valid_lonlat(cog(root, cid, "2023-07", "velocity"))
    answer = client.get(f"/collections/{cid}/timeseries", params={"lon": lon, "lat": lat, "format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 12 and rows[6]["item"] == "2023-07" and rows[6]["unit"] == "m/d"
    assert float(rows[6]["value"]) == source_point(cog(root, cid, "2023-07", "velocity"), lon, lat)


def test_nodata_is_null(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    path = cog(root, cid, "2023-07", "velocity")
    lon, lat = nodata_lonlat(path)
    assert source_point(path, lon, lat) is None
    series = client.get(f"/collections/{cid}/timeseries", params={"lon": lon, "lat": lat}).json()
    assert series["values"][6]["item"] == "2023-07" and series["values"][6]["value"] is None


def test_muli_bowl_deepens(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["muli"]
    lon, lat = valid_lonlat(cog(root, cid, "displacement-2023-04-04", "displacement"), pick="min")
    series = client.get(f"/collections/{cid}/timeseries", params={"lon": lon, "lat": lat}).json()
    assert series["asset"] == "displacement" and series["unit"] == "mm"
    values = [v["value"] for v in series["values"]]
    assert len(values) == 160 and None not in values
    dates = [v["datetime"] for v in series["values"]]
    assert dates == sorted(dates)
    quarters = np.array_split(np.array(values), 4)
    means = [float(q.mean()) for q in quarters]
    assert means == sorted(means, reverse=True)  # deeper every year
    assert values[-1] < values[0] - 100
    sample = series["values"][80]
    assert sample["value"] == source_point(cog(root, cid, sample["item"], "displacement"), lon, lat)


def test_hma_only_the_glacier_under_the_point(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["hma"]
    path = cog(root, cid, "siachen-2013-07", "velocity")
    lon, lat = valid_lonlat(path, band=3)
    series = client.get(f"/collections/{cid}/timeseries", params={"lon": lon, "lat": lat, "band": "speed"}).json()
    items = [v["item"] for v in series["values"]]
    assert items and all(item.startswith("siachen-") for item in items)
    assert len(items) == len(list((root / cid).glob("siachen-*/siachen-*.json")))
    assert (series["band"], series["band_name"]) == (3, "speed")
    july = items.index("siachen-2013-07")
    assert series["values"][july]["value"] == source_point(path, lon, lat, band=3)
    by_index = client.get(f"/collections/{cid}/timeseries", params={"lon": lon, "lat": lat, "band": "3"}).json()
    assert by_index["values"] == series["values"]


def test_errors(client: TestClient, ids: dict[str, str]) -> None:
    cid = ids["hma"]
    base = f"/collections/{cid}/timeseries"
    assert client.get(base, params={"lon": 0, "lat": 0}).status_code == 204  # no item there
    assert client.get(base, params={"lon": 76.4, "lat": 35.75, "band": "9"}).status_code == 404
    assert client.get(base, params={"lon": 76.4, "lat": 35.75, "band": "pressure"}).status_code == 404
    assert client.get(base, params={"lon": 76.4, "lat": 35.75, "asset": "thumbnail"}).status_code == 404
    assert client.get(base, params={"lon": 200, "lat": 35.75}).status_code == 422
    assert client.get("/collections/nope/timeseries", params={"lon": 1, "lat": 1}).status_code == 404
