"""Item tiles, TileJSON, WMTS, preview, point, statistics, info and renders, checked against the source COGs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rio_tiler.colormap import cmap
from starlette.testclient import TestClient
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from services.raster.renders import band_selection
from tests.raster.helpers import (
    cog,
    data_tile,
    decode_image,
    decode_npy,
    maxzoom,
    source_point,
    source_statistics,
    source_tile,
    valid,
    valid_lonlat,
    zxy,
)

WMTS = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
MONTH = "2023-07"


@pytest.fixture(scope="module")
def gangrigab(root: Path, ids: dict[str, str]) -> tuple[str, Path]:
    return ids["gangrigab"], cog(root, ids["gangrigab"], MONTH, "velocity")


def test_npy_tile_is_the_source_data(client: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, path = gangrigab
    tile = data_tile(path)
    answer = client.get(f"/collections/{cid}/items/{MONTH}/tiles/WebMercatorQuad/{zxy(tile)}.npy")
    assert answer.status_code == 200
    data, ok = decode_npy(answer.content)
    expected = source_tile(path, tile)
    np.testing.assert_array_equal(ok, valid(expected))
    np.testing.assert_array_equal(data[0][ok], expected.data[0][ok])


def test_geotiff_tile_is_the_source_data(client: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, path = gangrigab
    tile = data_tile(path)
    answer = client.get(f"/collections/{cid}/items/{MONTH}/tiles/WebMercatorQuad/{zxy(tile)}.tif")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/tiff")
    bands = decode_image(answer.content)
    expected = source_tile(path, tile)
    ok = valid(expected)
    np.testing.assert_array_equal(bands[0][ok], expected.data[0][ok])


def test_png_tile_uses_the_render_defaults(client: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, path = gangrigab
    tile = data_tile(path)
    answer = client.get(f"/collections/{cid}/items/{MONTH}/tiles/WebMercatorQuad/{zxy(tile)}.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    expected, _ = render_image(
        source_tile(path, tile),
        colormap=cmap.get("viridis"),
        rescale=[(0.0, 1.5)],
        output_format=ImageType.png,
    )
    np.testing.assert_array_equal(decode_image(answer.content), decode_image(expected))


def test_request_parameters_override_the_render(client: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, path = gangrigab
    tile = data_tile(path)
    url = f"/collections/{cid}/items/{MONTH}/tiles/WebMercatorQuad/{zxy(tile)}.png"
    answer = client.get(url, params={"colormap_name": "plasma", "rescale": "0,3"})
    expected, _ = render_image(
        source_tile(path, tile), colormap=cmap.get("plasma"), rescale=[(0.0, 3.0)], output_format=ImageType.png
    )
    np.testing.assert_array_equal(decode_image(answer.content), decode_image(expected))
    default = client.get(url)
    assert not np.array_equal(decode_image(default.content), decode_image(answer.content))


def test_multiband_asset_band_selection(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["hma"]
    path = cog(root, cid, "baltoro-2013-07", "velocity")
    tile = data_tile(path)
    base = f"/collections/{cid}/items/baltoro-2013-07/tiles/WebMercatorQuad/{zxy(tile)}"
    speed = client.get(f"{base}.npy", params={"assets": "velocity|bidx=3"})
    data, _ = decode_npy(speed.content)
    expected = source_tile(path, tile, indexes=3)
    ok = valid(expected)
    assert data.shape[0] == 1
    np.testing.assert_array_equal(data[0][ok], expected.data[0][ok])
    picture = client.get(f"{base}.png")  # the render has a colormap: one band is drawn
    assert picture.status_code == 200 and decode_image(picture.content).shape[0] == 4


def test_single_band_render_reads_that_band_alone(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    """The HMA render draws ``b3``: the tile is band 3 read alone, by default and as the URLs of WMTS layers spell
    it. (Reading the three bands and keeping the third samples the source differently: on this tile about a third
    of the valid pixels take a neighbouring source pixel's value, and the mask differs along the glacier edge.)"""
    cid = ids["hma"]
    path = cog(root, cid, "baltoro-2013-07", "velocity")
    tile = data_tile(path)
    url = f"/collections/{cid}/items/baltoro-2013-07/tiles/WebMercatorQuad/{zxy(tile)}.npy"
    expected = source_tile(path, tile, indexes=3, nodata=-9999.0)
    # the default, and the render spelled out as the URLs of WMTS layers and time steps spell it
    for params in ({}, {"assets": "velocity", "expression": "b3"}):
        data, ok = decode_npy(client.get(url, params=params).content)
        assert data.shape[0] == 1
        np.testing.assert_array_equal(ok, valid(expected))
        np.testing.assert_array_equal(data[0][ok], expected.data[0][ok])


@pytest.mark.parametrize(
    ("assets", "expression", "selected"),
    [
        (["velocity"], "b3", ([{"name": "velocity", "indexes": [3]}], None)),
        (["velocity"], " b10 ", ([{"name": "velocity", "indexes": [10]}], None)),
        (["velocity"], "b0", (["velocity"], "b0")),  # no band 0: rio-tiler's expression error, not an index error
        (["velocity"], "b03", (["velocity"], "b03")),
        (["velocity"], "b3 * 2", (["velocity"], "b3 * 2")),
        (["vx", "vy"], "b1", (["vx", "vy"], "b1")),
        ([{"name": "velocity", "indexes": [1, 2]}], "b1", ([{"name": "velocity", "indexes": [1, 2]}], "b1")),
    ],
)
def test_band_selection_reads_one_band_for_a_band_expression(
    assets: list[Any], expression: str, selected: tuple[list[Any], str | None]
) -> None:
    assert band_selection(assets, expression) == selected


def test_tilejson_and_mounted_urls(client: TestClient, mounted: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, path = gangrigab
    tilejson = client.get(f"/collections/{cid}/items/{MONTH}/WebMercatorQuad/tilejson.json").json()
    assert tilejson["maxzoom"] == maxzoom(path)
    assert tilejson["tiles"][0].startswith(f"http://testserver/collections/{cid}/items/{MONTH}/tiles/WebMercatorQuad/")
    assert set(tilejson["raster_layers"]) == {"velocity"}
    west, south, east, north = tilejson["bounds"]
    assert 96.6 < west < east < 96.9 and 29.1 < south < north < 29.4
    under = mounted.get(f"/raster/collections/{cid}/items/{MONTH}/WebMercatorQuad/tilejson.json").json()
    assert under["tiles"][0].startswith(f"http://testserver/raster/collections/{cid}/items/{MONTH}/tiles/")
    url = under["tiles"][0].replace("{z}/{x}/{y}", zxy(data_tile(path))).replace("http://testserver", "")
    assert mounted.get(url).status_code == 200


def test_item_wmts_capabilities(client: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, _ = gangrigab
    answer = client.get(f"/collections/{cid}/items/{MONTH}/WMTSCapabilities.xml")
    assert answer.status_code == 200
    document = ET.fromstring(answer.text)
    layers = {e.text for e in document.findall("w:Contents/w:Layer/ows:Identifier", WMTS)}
    assert f"{MONTH}_WebMercatorQuad_velocity" in layers
    sets = {e.text for e in document.findall("w:Contents/w:TileMatrixSet/ows:Identifier", WMTS)}
    assert sets == {"WebMercatorQuad", "WorldCRS84Quad"}
    url = document.find("w:Contents/w:Layer/w:ResourceURL", WMTS)
    assert url is not None and "{TileMatrix}/{TileCol}/{TileRow}.png" in url.attrib["template"]
    assert "colormap_name=viridis" in url.attrib["template"]


def test_point_statistics_info_preview(client: TestClient, gangrigab: tuple[str, Path]) -> None:
    cid, path = gangrigab
    lon, lat = valid_lonlat(path)
    base = f"/collections/{cid}/items/{MONTH}"
    point = client.get(f"{base}/point/{lon},{lat}").json()
    assert point["values"] == [pytest.approx(source_point(path, lon, lat))]
    statistics = client.get(f"{base}/statistics").json()
    assert statistics["b1"]["max"] == pytest.approx(source_statistics(path)["b1"].max)
    info = client.get(f"{base}/info").json()
    assert info["velocity"]["dtype"] == "float32" and info["velocity"]["nodata_value"] == -9999.0
    preview = client.get(f"{base}/preview.png")
    assert preview.status_code == 200 and decode_image(preview.content).shape[0] == 4
    assert client.get(f"{base}/assets").json() == ["velocity"]


def test_renders_listing(client: TestClient, ids: dict[str, str]) -> None:
    muli = ids["muli"]
    listing = client.get(f"/collections/{muli}/items/displacement-2018-01-12/renders").json()
    assert set(listing["renders"]) == {"displacement"}  # the velocity render needs an asset this item lacks
    render = listing["renders"]["displacement"]
    assert render["valid"] and render["params"]["colormap_name"] == "rdbu"
    hrefs = [link["href"] for link in render["links"]]
    assert all("url=" not in href for href in hrefs)
    assert any("/WMTSCapabilities.xml?" in href for href in hrefs)
    one = client.get(f"/collections/{muli}/items/mean-velocity/renders/velocity")
    assert one.status_code == 200 and one.json()["params"]["rescale"] == [[-100.0, 100.0]]
    assert client.get(f"/collections/{muli}/items/mean-velocity/renders/displacement").status_code == 404


def test_muli_items_take_the_render_of_their_asset(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["muli"]
    path = cog(root, cid, "mean-velocity", "velocity")
    tile = data_tile(path)
    answer = client.get(f"/collections/{cid}/items/mean-velocity/tiles/WebMercatorQuad/{zxy(tile)}.png")
    expected, _ = render_image(
        source_tile(path, tile),
        colormap=cmap.get("rdbu"),
        rescale=[(-100.0, 100.0)],
        output_format=ImageType.png,
    )
    np.testing.assert_array_equal(decode_image(answer.content), decode_image(expected))
