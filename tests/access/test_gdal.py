"""GDAL (rasterio, and QGIS's GDAL 3.6) streams a restricted COG over HTTP ranges through a signed URL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from tests.access.conftest import APPLY, EMBARGO, ITEM, Callers, World, data_path
from tests.conftest import require
from tests.live import serve

GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "0", "VSI_CACHE": "FALSE"}


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[str]:
    with serve(world.app) as url:
        yield url


def sign(live: str, headers: dict[str, str], path: str) -> str:
    response = httpx.get(f"{live}/auth/sign", params={"href": path}, headers=headers)
    assert response.status_code == 200, response.text
    href = str(response.json()["href"])
    assert href.startswith(f"{live}{path}?")
    return href


READER = """
import json, sys
import rasterio
from rasterio.windows import Window

url, env = sys.argv[1], json.loads(sys.argv[2])
try:
    with rasterio.Env(**env), rasterio.open("/vsicurl/" + url) as remote:
        block = remote.read(1, window=Window(256, 256, 64, 64))
        overview = remote.read(1, out_shape=(128, 128))
        print(json.dumps({"shape": remote.shape, "overviews": remote.overviews(1),
                          "block": int(block.astype("int64").sum()), "overview": int(overview.astype("int64").sum())}))
except rasterio.errors.RasterioIOError as error:
    print(json.dumps({"error": str(error)}))
"""


def rasterio_read(url: str, **env: str) -> dict[str, Any]:
    """Read a window and an overview with rasterio in a child process (GDAL blocks the GIL while it waits)."""
    result = subprocess.run(
        [sys.executable, "-c", READER, url, json.dumps({**GDAL_ENV, **env})],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize(("collection", "caller"), [(APPLY, "granted"), (EMBARGO, "manager")])
def test_rasterio_reads_a_restricted_cog_through_a_signed_url(
    live: str, callers: Callers, world: World, collection: str, caller: str
) -> None:
    remote = rasterio_read(sign(live, callers[caller], data_path(collection)))
    with rasterio.open(world.root / collection / ITEM / "data.tif") as local:
        block = local.read(1, window=Window(256, 256, 64, 64))
        overview = local.read(1, out_shape=(128, 128))
    assert remote == {
        "shape": [512, 512],
        "overviews": [2, 4],
        "block": int(block.astype(np.int64).sum()),
        "overview": int(overview.astype(np.int64).sum()),
    }


def test_rasterio_refuses_tampered_or_unsigned_urls(live: str, callers: Callers) -> None:
    url = sign(live, callers["granted"], data_path(APPLY))
    split = urlsplit(url)
    params = dict(parse_qsl(split.query))
    tampered = f"{live}{split.path}?{urlencode({**params, 'exp': str(int(params['exp']) + 60)})}"
    for target in (tampered, f"{live}{data_path(APPLY)}"):
        assert "error" in rasterio_read(target)


def test_rasterio_with_a_bearer_header(live: str, callers: Callers) -> None:
    """QGIS / GDAL can also send the token itself (GDAL_HTTP_HEADERS, GDAL >= 3.6)."""
    token = callers["granted"]["Authorization"]
    remote = rasterio_read(f"{live}{data_path(APPLY)}", GDAL_HTTP_HEADERS=f"Authorization: {token}")
    assert remote["shape"] == [512, 512]


def test_gdal36_gdalinfo_through_a_signed_url(live: str, callers: Callers) -> None:
    gdalinfo = shutil.which("gdalinfo", path="/usr/bin")
    require(gdalinfo is not None, "Debian's gdal-bin (GDAL 3.6 as in QGIS 3.22) is not installed")
    url = sign(live, callers["granted"], data_path(APPLY))
    result = subprocess.run(
        [str(gdalinfo), f"/vsicurl/{url}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "PATH": "/usr/bin:/bin"},
    )
    assert "Size is 512, 512" in result.stdout and "Overviews: 256x256, 128x128" in result.stdout
