"""Nothing but published COGs can be opened: hostile ids, assets, expressions, URL parameters and hrefs get 4xx.

A spy on ``rasterio.open`` records every dataset opened while the requests run; none may be outside the
publication root, and no hostile source may be opened at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rasterio
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.raster import create_raster_app
from services.raster.reader import GDAL_ENV, gdal_env
from tests.raster.helpers import cog, data_tile, zxy

METADATA = "http://169.254.169.254/latest/meta-data/"
VRT = '<VRTDataset rasterXSize="1" rasterYSize="1"><VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
VRT += '<SourceFilename relativeToVRT="0">{source}</SourceFilename></SimpleSource></VRTRasterBand></VRTDataset>'
HOSTILE = [
    "file:///etc/passwd",
    "/etc/passwd",
    "../../../../../../etc/passwd",
    f"/vsicurl/{METADATA}",
    METADATA,
    VRT.format(source="/etc/passwd"),
    VRT.format(source=f"/vsicurl/{METADATA}"),
]


@pytest.fixture(scope="module")
def tile(root: Path, ids: dict[str, str]) -> str:
    """z/x/y of a Gangrigab tile with data (found before any spy is set)."""
    return zxy(data_tile(cog(root, ids["gangrigab"], "2023-07", "velocity")))


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path ``rasterio.open`` is asked to open during the test."""
    calls: list[str] = []
    real = rasterio.open

    def spy(fp: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    return calls


def _assert_refused(answer: Any, what: str) -> None:
    assert 400 <= answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:200]}"


def _only_inside(opened: list[str], root: Path) -> None:
    for path in opened:
        assert Path(path).resolve().is_relative_to(root), path
        assert "passwd" not in path and "169.254" not in path


def test_hostile_ids(client: TestClient, ids: dict[str, str], root: Path, opened: list[str]) -> None:
    cid = ids["gangrigab"]
    for url in (
        f"/collections/{cid}/items/%2E%2E/info",
        f"/collections/{cid}/items/..%2F..%2F..%2Fetc%2Fpasswd/info",
        f"/collections/%2E%2E/items/{cid}/info",
        "/collections/..%2F..%2Fetc/items/passwd/tiles/WebMercatorQuad/1/1/1.png",
        f"/collections/{cid}/items/%2Fetc%2Fpasswd/point/1,1",
        f"/collections/{cid}/items/file:%2F%2F%2Fetc%2Fpasswd/info",
        f"/collections/{cid}/items/%3CVRTDataset%3E/info",
        f"/collections/{cid}/items/.hidden/info",
        f"/collections/{cid}/items/2023-07%00/info",
        "/collections/%2E%2E/timeseries?lon=1&lat=1",
        "/collections/%2Fetc/legend",
        "/collections/%2E%2E/tiles/WebMercatorQuad/1/1/1.png",
        f"/collections/{ids['cpec']}/items/%2E%2E/vector/tilejson.json",
        f"/collections/{cid}/items/2023-07/tiles/..%2F..%2Fetc/1/1/1.png",
    ):
        _assert_refused(client.get(url), url)
    assert opened == []


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_parameters(
    client: TestClient, ids: dict[str, str], root: Path, tile: str, opened: list[str], value: str
) -> None:
    cid = ids["gangrigab"]
    item = f"/collections/{cid}/items/2023-07"
    requests: list[tuple[str, dict[str, Any]]] = [
        (f"{item}/tiles/WebMercatorQuad/{tile}.png", {"assets": value}),
        (f"{item}/info", {"assets": value}),
        (f"{item}/statistics", {"assets": value}),
        (f"{item}/preview.png", {"assets": value}),
        (f"{item}/tiles/WebMercatorQuad/{tile}.png", {"expression": value}),
        (f"{item}/point/96.75,29.25", {"expression": value}),
        (f"{item}/tiles/WebMercatorQuad/{tile}.png", {"url": value}),
        (f"{item}/WebMercatorQuad/tilejson.json", {"url": value}),
        (f"{item}/WMTSCapabilities.xml", {"url": value}),
        (f"{item}/tiles/WebMercatorQuad/{tile}.png", {"colormap": json.dumps({"1": value})}),
        (f"/collections/{cid}/tiles/WebMercatorQuad/{tile}.png", {"datetime": "2023-07", "assets": value}),
        (f"/collections/{cid}/tiles/WebMercatorQuad/{tile}.png", {"datetime": value}),
        (f"/collections/{cid}/WMTSCapabilities.xml", {"url": value}),
        (f"/collections/{cid}/point/96.75,29.25", {"url": value, "datetime": "2023-07"}),
        (f"/collections/{cid}/timeseries", {"lon": 96.75, "lat": 29.25, "asset": value}),
        (f"/collections/{cid}/timeseries", {"lon": 96.75, "lat": 29.25, "url": value}),
        (f"/collections/{cid}/legend", {"asset": value}),
        (f"/collections/{ids['cpec']}/items/ps-track-107-descending/vector/tilejson.json", {"asset": value}),
        (f"/collections/{ids['cpec']}/items/ps-track-107-descending/vector/tiles/8/181/98.mvt", {"url": value}),
    ]
    for url, params in requests:
        _assert_refused(client.get(url, params=params), f"{url} {params}")
    _only_inside(opened, root)


def test_code_in_expressions_is_refused(client: TestClient, ids: dict[str, str], opened: list[str]) -> None:
    item = f"/collections/{ids['gangrigab']}/items/2023-07"
    for expression in ("__import__('os').system('id')", "open('/etc/passwd')", "b1;b2;b3"):
        _assert_refused(client.get(f"{item}/point/96.75,29.25", params={"expression": expression}), expression)


def test_non_cog_assets_are_not_tiles(client: TestClient, ids: dict[str, str], root: Path, opened: list[str]) -> None:
    cid = ids["gangrigab"]
    answer = client.get(f"/collections/{cid}/items/2023-07/preview.png", params={"assets": "thumbnail"})
    assert answer.status_code == 404
    cpec = f"/collections/{ids['cpec']}/items/ps-track-107-descending"
    assert client.get(f"{cpec}/tiles/WebMercatorQuad/8/181/98.png", params={"assets": "points"}).status_code == 400
    _only_inside(opened, root)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory, root: Path, ids: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A publication whose item lists hostile asset hrefs (all typed as COG), and the service over it."""
    base = tmp_path_factory.mktemp("crafted")
    public, cid = base / "public", ids["gangrigab"]
    folder = public / cid / "2023-07"
    shutil.copytree(root / cid / "2023-07", folder)
    shutil.copy(root / cid / "collection.json", public / cid / "collection.json")
    outside = base / "outside.tif"
    shutil.copy(folder / "velocity.tif", outside)
    (folder / "vrt.tif").write_text(VRT.format(source=outside))
    (folder / "link.tif").symlink_to(outside)
    hrefs = {
        "file_url": "file:///etc/passwd",
        "absolute": str(outside),
        "parent": "../../../outside.tif",
        "vsicurl": f"/vsicurl/{METADATA}x.tif",
        "http": f"{METADATA}x.tif",
        "symlink": "./link.tif",
        "vrt": "./vrt.tif",
    }
    document = json.loads((folder / "2023-07.json").read_text())
    for key, href in hrefs.items():
        document["assets"][key] = {"href": href, "type": document["assets"]["velocity"]["type"], "roles": ["data"]}
    (folder / "2023-07.json").write_text(json.dumps(document))
    with TestClient(create_raster_app(Settings(root=public))) as client:
        yield {"client": client, "root": public.resolve(), "outside": outside, "keys": list(hrefs), "cid": cid}


def test_hostile_hrefs_are_never_opened(crafted: dict[str, Any], tile: str, opened: list[str]) -> None:
    client, cid = crafted["client"], crafted["cid"]
    item = f"/collections/{cid}/items/2023-07"
    assert sorted(client.get(f"{item}/assets").json()) == ["velocity", "vrt"]  # the rest fail the checks
    for key in crafted["keys"]:
        for url in (f"{item}/tiles/WebMercatorQuad/{tile}.png", f"{item}/info", f"{item}/point/96.75,29.25"):
            answer = client.get(url, params={"assets": key})
            expected = 403 if key == "vrt" else 404  # a VRT named .tif is no TIFF
            assert answer.status_code == expected, f"{key} {url}: {answer.status_code}"
    assert client.get(f"{item}/tiles/WebMercatorQuad/{tile}.png").status_code == 200
    _only_inside(opened, crafted["root"])
    assert str(crafted["outside"]) not in opened


def test_gdal_environment() -> None:
    env = gdal_env()
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert env["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] == ".tif,.tiff"
    assert env["VSI_CACHE"] == "TRUE" and env["GDAL_PAM_ENABLED"] == "NO"
    assert "GDAL_SKIP" not in GDAL_ENV
    env["VSI_CACHE"] = "FALSE"
    assert gdal_env()["VSI_CACHE"] == "TRUE"  # a fresh copy per request


def test_why_not_gdal_skip_vrt(root: Path, ids: dict[str, str]) -> None:
    """GDAL_SKIP=VRT, applied when GDAL registers its drivers, breaks rio-tiler's reprojected reads for good."""
    path = cog(root, ids["gangrigab"], "2023-07", "velocity")
    tile = data_tile(path)
    script = (
        "import sys, rasterio; from rio_tiler.io import Reader\n"
        "with rasterio.Env(GDAL_SKIP='VRT'), Reader(sys.argv[1]) as r:\n"
        f"    r.tile({tile.x}, {tile.y}, {tile.z})\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert run.returncode != 0 and "calculate_default_transform" in run.stderr
