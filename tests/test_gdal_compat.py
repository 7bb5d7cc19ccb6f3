"""QGIS 3.22 / GDAL 3.6 read our items through STACIT and stream COG and FlatGeobuf over HTTP ranges."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from ncdc_stac.settings import ApiKey, Settings
from services.access import hash_api_key
from services.app import create_app
from services.compat import PROJECTION_V1, projection_v1
from tests.conftest import require
from tests.live import serve
from tests.publication import Publication
from tests.stac_schemas import OfflineValidator

SCRIPT_KEY = "qgis-desktop-key-for-tests"


@pytest.fixture(scope="module")
def live(publication: Publication) -> Iterator[str]:
    keys = {hash_api_key(SCRIPT_KEY): ApiKey(subject="qgis", roles=["admin"])}
    with serve(create_app(Settings(root=publication.root, api_keys=keys))) as url:
        yield url


def gdal36(tool: str) -> str:
    path = shutil.which(tool, path="/usr/bin")
    require(path is not None, f"Debian's gdal-bin ({tool}, GDAL 3.6 as in QGIS 3.22) is not installed")
    return str(path)


def run(*command: str, headers: str | None = None) -> str:
    env = {"GDAL_HTTP_HEADERS": headers} if headers else {}
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120, env=env).stdout


def test_stacit_items_are_valid_projection_v1(live: str, publication: Publication) -> None:
    import httpx

    collection = publication.collection_ids["gangrigab-velocity"]
    page = httpx.get(f"{live}/gdal/stacit/{collection}", params={"datetime": "2023-07-15T00:00:00Z"}).json()
    assert [f["id"] for f in page["features"]] == ["2023-07"]
    item = page["features"][0]
    assert item["properties"]["proj:epsg"] == 32647 and "proj:code" not in item["properties"]
    assert PROJECTION_V1 in item["stac_extensions"]
    assert item["assets"]["velocity"]["href"].startswith(f"{live}/files/")
    assert projection_v1({"stac_extensions": [], "properties": {}}) == {"stac_extensions": [], "properties": {}}


def test_stacit_items_validate(live: str, publication: Publication, stac_validator: OfflineValidator) -> None:
    import httpx

    collection = publication.collection_ids["hma-glacier-velocity"]
    page = httpx.get(f"{live}/gdal/stacit/{collection}", params={"datetime": "2018-01-15T00:00:00Z"}).json()
    assert len(page["features"]) == 2, "the two sample glaciers of January 2018"
    for item in page["features"]:
        assert stac_validator.errors(item) == []


def test_gdal36_opens_a_month_through_stacit(live: str, publication: Publication) -> None:
    collection = publication.collection_ids["gangrigab-velocity"]
    source = f'STACIT:"{live}/gdal/stacit/{collection}?datetime=2023-07-15T00:00:00Z":asset=velocity'
    info = run(gdal36("gdalinfo"), "-stats", source)
    assert "/vsicurl/" in info and "velocity.tif" in info
    assert "WGS 84 / UTM zone 47N" in info and "Size is 300, 300" in info


def test_gdal36_streams_cog_and_flatgeobuf(live: str, publication: Publication) -> None:
    gangrigab = publication.collection_dir("gangrigab-velocity").name
    cog = f"/vsicurl/{live}/files/{gangrigab}/2023-01/velocity.tif"
    info = run(gdal36("gdalinfo"), cog)
    assert "LAYOUT=COG" in info and "Size is 300, 300" in info
    cpec = publication.collection_dir("cpec-deformation").name
    fgb = f"/vsicurl/{live}/files/{cpec}/ps-track-107-descending/points.fgb"
    anonymous = subprocess.run(
        [gdal36("ogrinfo"), "-so", "-al", fgb], capture_output=True, text=True, timeout=120, check=False
    )
    assert anonymous.returncode != 0, "login-access data is not streamed to anonymous users"
    key = f"X-API-Key: {SCRIPT_KEY}"
    summary = run(gdal36("ogrinfo"), "-so", "-al", fgb, headers=key)
    assert "Feature Count: 2000" in summary
    clipped = run(gdal36("ogrinfo"), "-al", "-q", "-spat", "75.2", "37.7", "75.4", "37.9", fgb, headers=key)
    assert 0 < clipped.count("OGRFeature") < 2000, "the spatial filter uses the packed R-tree over HTTP ranges"
