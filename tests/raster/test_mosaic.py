"""Collection mosaics by datetime: tiles, TileJSON, WMTS with a layer per time step, point, time steps."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.raster.helpers import cog, data_tile, decode_npy, source_point, source_tile, valid, valid_lonlat, zxy


@pytest.fixture
def client(indexed_client: TestClient) -> TestClient:
    """Every test here runs on both item indexes (DuckDB over stac-geoparquet, pgstac's search)."""
    return indexed_client


WMTS = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]


def test_month_mosaic_is_that_month(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    for month in ("2023-01", "2023-07", "2023-12"):
        path = cog(root, cid, month, "velocity")
        tile = data_tile(path)
        answer = client.get(f"/collections/{cid}/tiles/WebMercatorQuad/{zxy(tile)}.npy", params={"datetime": month})
        assert answer.status_code == 200
        assert answer.headers["x-assets"] == f"{cid}/{month}"
        data, ok = decode_npy(answer.content)
        expected = source_tile(path, tile)
        np.testing.assert_array_equal(ok, valid(expected))
        np.testing.assert_array_equal(data[0][ok], expected.data[0][ok])


def test_interval_mosaic_takes_the_newest_item_first(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    december = cog(root, cid, "2023-12", "velocity")
    tile = data_tile(december)
    for when in ("2023", "2023-10-15T00:00:00Z/..", "2023-11/2023-12"):
        answer = client.get(f"/collections/{cid}/tiles/WebMercatorQuad/{zxy(tile)}.npy", params={"datetime": when})
        assert answer.status_code == 200, when
        assert answer.headers["x-assets"].split(",")[0] == f"{cid}/2023-12"
        data, _ = decode_npy(answer.content)
        expected = source_tile(december, tile)
        np.testing.assert_array_equal(data[0][valid(expected)], expected.data[0][valid(expected)])


def test_hma_month_mosaic_has_both_glaciers(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["hma"]
    for glacier in ("baltoro", "siachen"):
        path = cog(root, cid, f"{glacier}-2013-04", "velocity")
        tile = data_tile(path)
        answer = client.get(
            f"/collections/{cid}/tiles/WebMercatorQuad/{zxy(tile)}.npy",
            params={"datetime": "2013-04", "assets": "velocity|bidx=3"},
        )
        assert answer.headers["x-assets"] == f"{cid}/{glacier}-2013-04"
        data, _ = decode_npy(answer.content)
        expected = source_tile(path, tile, indexes=3)
        np.testing.assert_array_equal(data[0][valid(expected)], expected.data[0][valid(expected)])


def test_muli_mosaic_defaults_to_the_displacement(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["muli"]
    path = cog(root, cid, "displacement-2019-06-12", "displacement")
    tile = data_tile(path)
    answer = client.get(f"/collections/{cid}/tiles/WebMercatorQuad/{zxy(tile)}.npy", params={"datetime": "2019-06-12"})
    assert answer.headers["x-assets"] == f"{cid}/displacement-2019-06-12"
    velocity = client.get(
        f"/collections/{cid}/tiles/WebMercatorQuad/{zxy(tile)}.npy", params={"datetime": "2020", "assets": "velocity"}
    )
    assert velocity.headers["x-assets"] == f"{cid}/mean-velocity"  # the item spans 2018-2023


def test_mosaic_tilejson_and_point(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    path = cog(root, cid, "2023-07", "velocity")
    tilejson = client.get(f"/collections/{cid}/WebMercatorQuad/tilejson.json", params={"datetime": "2023-07"}).json()
    assert "datetime=2023-07" in tilejson["tiles"][0] and tilejson["tiles"][0].startswith(
        "http://testserver/collections/"
    )
    assert list(tilejson["raster_layers"]) == MONTHS
    assert tilejson["maxzoom"] == 12
    lon, lat = valid_lonlat(path)
    point = client.get(f"/collections/{cid}/point/{lon},{lat}", params={"datetime": "2023-07"}).json()
    assert [a["name"] for a in point["assets"]] == [f"{cid}/2023-07"]
    assert point["assets"][0]["values"] == [pytest.approx(source_point(path, lon, lat))]
    info = client.get(f"/collections/{cid}/info", params={"datetime": "2023-07"}).json()
    assert info["main_asset"] == "velocity" and info["datetime"][0] == "2023-06-30T16:00:00Z"


def _layers(client: TestClient, url: str) -> tuple[ET.Element, list[str]]:
    answer = client.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    document = ET.fromstring(answer.text)
    return document, [e.text or "" for e in document.findall("w:Contents/w:Layer/ows:Identifier", WMTS)]


def test_collection_wmts_has_a_layer_per_month(client: TestClient, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    document, layers = _layers(client, f"/collections/{cid}/WMTSCapabilities.xml")
    for month in MONTHS:
        assert f"{cid}_WebMercatorQuad_{month}" in layers
        assert f"{cid}_WorldCRS84Quad_{month}" in layers
    assert len(layers) == 2 * (len(MONTHS) + 1)  # + the "default" layer of the request's own parameters
    sets = {e.text for e in document.findall("w:Contents/w:TileMatrixSet/ows:Identifier", WMTS)}
    assert sets == {"WebMercatorQuad", "WorldCRS84Quad"}
    for layer in document.findall("w:Contents/w:Layer", WMTS):
        name = layer.findtext("ows:Identifier", namespaces=WMTS) or ""
        template = layer.find("w:ResourceURL", WMTS)
        assert template is not None
        if name.endswith("_2023-07"):
            assert "datetime=2023-07" in template.attrib["template"]
            assert layer.findtext("w:TileMatrixSetLink/w:TileMatrixSet", namespaces=WMTS) in sets


def test_wmts_layer_urls_answer(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    document, _ = _layers(client, f"/collections/{cid}/WMTSCapabilities.xml")
    tile = data_tile(cog(root, cid, "2023-07", "velocity"))
    for layer in document.findall("w:Contents/w:Layer", WMTS):
        if layer.findtext("ows:Identifier", namespaces=WMTS) == f"{cid}_WebMercatorQuad_2023-07":
            resource = layer.find("w:ResourceURL", WMTS)
            assert resource is not None
            template = resource.attrib["template"]
    url = template.format(TileMatrix=tile.z, TileCol=tile.x, TileRow=tile.y).replace("http://testserver", "")
    answer = client.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"


def test_time_steps(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    steps = client.get(f"/collections/{ids['gangrigab']}/timesteps").json()
    assert [s["datetime"] for s in steps["timesteps"]] == MONTHS
    assert "datetime=2023-07" in steps["timesteps"][6]["tilejson"]
    muli = client.get(f"/collections/{ids['muli']}/timesteps").json()
    assert muli["asset"] == "displacement" and len(muli["timesteps"]) == 160
    assert muli["timesteps"][0]["datetime"] == "2018-01-12"
    hma = client.get(f"/collections/{ids['hma']}/timesteps").json()
    parquet = (root / ids["hma"] / "items.parquet").as_posix()
    months = duckdb.sql(f"SELECT count(DISTINCT split_part(id, '-', 2) || split_part(id, '-', 3)) FROM '{parquet}'")
    assert len(hma["timesteps"]) == months.fetchone()[0]  # type: ignore[index]


def test_bad_datetime_is_400(client: TestClient, ids: dict[str, str]) -> None:
    for value in ("July", "2023-13", "2023-07/2023-01"):
        answer = client.get(
            f"/collections/{ids['gangrigab']}/WebMercatorQuad/tilejson.json", params={"datetime": value}
        )
        assert answer.status_code == 400, value
