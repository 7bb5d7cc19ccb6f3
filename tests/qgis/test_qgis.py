"""QGIS 3.22 itself (Debian's python3-qgis, headless) reads what we publish and serve, over HTTP from the live app.

Each run starts QGIS once in Debian's ``/usr/bin/python3`` (``tests/qgis/render.py``), loads the layers a
QGIS user would add (a COG through ``/vsicurl/``, the collection's WMTS time step, its XYZ tiles from the
TileJSON, the PS points' FlatGeobuf), renders each one and reports back as JSON.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio

from services.viewer.harness import BROWSER_HEADERS, authorized_settings, full_app
from tests.conftest import require
from tests.live import serve
from tests.publication import Publication

SYSTEM_PYTHON = "/usr/bin/python3"
RENDER_SCRIPT = Path(__file__).with_name("render.py")
IMAGE_SIZE = 256
HTTP_TIMEOUT = 60.0
MONTH = "2023-07"
PS_ITEM = "ps-track-107-descending"
WMTS_NS = {"wmts": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
BLACKHOLE_PROXY = "http://127.0.0.1:9"
"""GDAL's curl is sent through a closed loopback port for any host but 127.0.0.1 (``no_proxy``)."""

Results = dict[str, Any]


def layer(name: str, source: str | dict[str, Any], provider: str = "gdal", **extra: Any) -> dict[str, Any]:
    """A layer for the QGIS script: ``gdal`` and ``wms`` are rasters, ``ogr`` vectors."""
    kind = "vector" if provider == "ogr" else "raster"
    return {"name": name, "provider": provider, "kind": kind, "source": source, **extra}


def qgis_installed() -> bool:
    command = [SYSTEM_PYTHON, "-c", "import qgis.core"]
    return Path(SYSTEM_PYTHON).is_file() and subprocess.run(command, capture_output=True, check=False).returncode == 0


def run_qgis(layers: list[dict[str, Any]], scratch: Path, extra_env: dict[str, str] | None = None) -> Results:
    """Run the QGIS script on ``layers`` (headless, a throwaway home and profile); its JSON, with layers by name."""
    home = scratch / "home"
    home.mkdir(mode=0o700, parents=True)
    images = scratch / "images"
    images.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        "http_proxy": BLACKHOLE_PROXY,
        "https_proxy": BLACKHOLE_PROXY,
        "no_proxy": "127.0.0.1",
        **(extra_env or {}),
    }
    request = json.dumps({"layers": layers, "size": IMAGE_SIZE, "images": str(images)})
    command = [SYSTEM_PYTHON, str(RENDER_SCRIPT)]
    done = subprocess.run(command, input=request, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (scratch / "results.json").write_text(done.stdout)  # beside the rendered images, to look at
    results: Results = json.loads(done.stdout)
    results["layers"] = {layer["name"]: layer for layer in results["layers"]}
    return results


def wmts_layers(capabilities_url: str) -> list[str]:
    """The layer identifiers of a WMTS capabilities document."""
    document = ET.fromstring(httpx.get(capabilities_url, timeout=HTTP_TIMEOUT).raise_for_status().content)
    names = document.findall("wmts:Contents/wmts:Layer/ows:Identifier", WMTS_NS)
    return [name.text or "" for name in names]


def wmts_source(capabilities_url: str, layer: str) -> dict[str, str]:
    """URI parameters of QGIS's WMS/WMTS provider for one layer of a capabilities document (as its dialog writes)."""
    return {
        "contextualWMSLegend": "0",
        "crs": "EPSG:3857",
        "dpiMode": "7",
        "format": "image/png",
        "layers": layer,
        "styles": "default",
        "tileMatrixSet": "WebMercatorQuad",
        "url": capabilities_url,
    }


def band_statistics(cog: Path) -> dict[str, float]:
    """Band 1 statistics of a published COG as rasterio reads it (nodata masked)."""
    with rasterio.open(cog) as src:
        band = src.read(1, masked=True).astype(np.float64)
    valid = band.compressed()
    share = valid.size / band.size
    return {"min": valid.min(), "max": valid.max(), "mean": valid.mean(), "count": valid.size, "share": share}


def signed(live: str, **params: str) -> dict[str, Any]:
    """``/auth/sign``'s answer for the harness's admin key (``href=`` a file, or ``collection=`` its tiles)."""
    response = httpx.get(
        f"{live}/auth/sign", params=params, headers=BROWSER_HEADERS, timeout=HTTP_TIMEOUT
    ).raise_for_status()
    return dict(response.json())


@pytest.fixture(scope="module")
def live(publication: Publication) -> Iterator[str]:
    require(qgis_installed(), "Debian's python3-qgis (QGIS 3.22) is not importable by /usr/bin/python3")
    with serve(full_app(authorized_settings(publication.root))) as url:
        yield url


@pytest.fixture(scope="module")
def gangrigab(publication: Publication) -> str:
    """The open-access collection (anonymous QGIS users read it)."""
    return publication.collection_ids["gangrigab-velocity"]


@pytest.fixture(scope="module")
def gangrigab_wmts(live: str, gangrigab: str) -> str:
    return f"{live}/raster/collections/{gangrigab}/WMTSCapabilities.xml"


@pytest.fixture(scope="module")
def anonymous(
    live: str, publication: Publication, gangrigab: str, gangrigab_wmts: str, tmp_path_factory: pytest.TempPathFactory
) -> Results:
    """What an anonymous QGIS makes of the open collection, of the PS points (signed URL and not), of closed tiles."""
    tilejson = httpx.get(
        f"{live}/raster/collections/{gangrigab}/WebMercatorQuad/tilejson.json?datetime={MONTH}", timeout=HTTP_TIMEOUT
    ).json()
    cpec = publication.collection_ids["cpec-deformation"]
    points = f"{live}/files/{cpec}/{PS_ITEM}/points.fgb"
    hma = publication.collection_ids["hma-glacier-velocity"]
    hma_wmts = f"{live}/raster/collections/{hma}/WMTSCapabilities.xml"
    hma_step = wmts_layers(f"{hma_wmts}?{signed(live, collection=hma)['query']}")[0]
    xyz = {
        "type": "xyz",
        "url": tilejson["tiles"][0],
        "zmin": tilejson["minzoom"],
        "zmax": tilejson["maxzoom"],
        "tilePixelRatio": 2,  # the TileJSON's tiles are 512 px
    }
    layers = [
        layer("cog", f"/vsicurl/{live}/files/{gangrigab}/{MONTH}/velocity.tif"),
        layer("wmts", wmts_source(gangrigab_wmts, f"{gangrigab}_WebMercatorQuad_{MONTH}"), "wms"),
        layer("xyz", xyz, "wms", bbox=tilejson["bounds"]),
        layer("points-signed", f"/vsicurl/{signed(live, href=points)['href']}", "ogr"),
        layer("points-anonymous", f"/vsicurl/{points}", "ogr"),
        layer("closed-wmts", wmts_source(hma_wmts, hma_step), "wms"),
    ]
    return run_qgis(layers, tmp_path_factory.mktemp("qgis-anonymous"))


def test_qgis_streams_the_published_cog(anonymous: Results, publication: Publication) -> None:
    cog = anonymous["layers"]["cog"]
    assert cog["valid"], cog.get("error")
    assert anonymous["qgis"].startswith("3.22.")
    assert cog["crs"] == "EPSG:32647"
    expected = band_statistics(publication.collection_dir("gangrigab-velocity") / MONTH / "velocity.tif")
    for key in ("min", "max", "mean"):
        assert cog["stats"][key] == pytest.approx(expected[key], rel=1e-6), key
    assert cog["stats"]["count"] == expected["count"], "QGIS honours the COG's nodata"
    assert cog["render_errors"] == []
    assert cog["painted"] == pytest.approx(expected["share"], abs=0.01), "drawn over exactly the valid pixels"


def test_qgis_draws_a_wmts_time_step(anonymous: Results, gangrigab: str, gangrigab_wmts: str) -> None:
    identifier = f"{gangrigab}_WebMercatorQuad_{MONTH}"
    assert identifier in wmts_layers(gangrigab_wmts), "one layer per time step in our capabilities"
    wmts = anonymous["layers"]["wmts"]
    assert wmts["valid"], wmts.get("error")
    assert wmts["sublayers"] == [identifier]
    assert wmts["render_errors"] == []
    assert wmts["painted"] == pytest.approx(anonymous["layers"]["cog"]["painted"], abs=0.05)
    tiles = [url for url in anonymous["requests"] if f"/raster/collections/{gangrigab}/tiles/WebMercatorQuad/" in url]
    assert tiles and all(f"datetime={MONTH}" in url for url in tiles), "QGIS follows our ResourceURL template"


def test_qgis_draws_xyz_tiles_from_the_tilejson(anonymous: Results) -> None:
    xyz = anonymous["layers"]["xyz"]
    assert xyz["valid"], xyz.get("error")
    assert xyz["render_errors"] == []
    assert xyz["painted"] == pytest.approx(anonymous["layers"]["cog"]["painted"], abs=0.05)


def test_qgis_reads_ps_points_over_http(anonymous: Results, publication: Publication) -> None:
    points = anonymous["layers"]["points-signed"]
    assert points["valid"], points.get("error")
    parquet = publication.collection_dir("cpec-deformation") / PS_ITEM / "points.parquet"
    assert points["feature_count"] == pq.ParquetFile(parquet).metadata.num_rows
    assert points["crs"] == "EPSG:4326"
    assert {"CODE", "VEL", "COHER"} <= set(points["fields"])
    assert points["render_errors"] == [] and points["painted"] > 0.05
    assert not anonymous["layers"]["points-anonymous"]["valid"], "login-access points need a signature"


def test_closed_tiles_stay_closed_to_anonymous_qgis(anonymous: Results) -> None:
    closed = anonymous["layers"]["closed-wmts"]
    assert not closed["valid"] or closed["painted"] == 0, "apply-access capabilities and tiles are refused"


def test_qgis_requests_stay_on_loopback(anonymous: Results) -> None:
    hosts = {urlsplit(url).hostname for url in anonymous["requests"]}
    assert hosts == {"127.0.0.1"}


def test_restricted_data_through_headers_and_signed_capabilities(
    live: str, publication: Publication, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A signed-in QGIS user: an API key in GDAL_HTTP_HEADERS for files, a signed capabilities URL for WMTS."""
    hma = publication.collection_ids["hma-glacier-velocity"]
    cog = sorted(publication.collection_dir("hma-glacier-velocity").glob("*/velocity.tif"))[0]
    query = signed(live, collection=hma)["query"]
    capabilities = f"{live}/raster/collections/{hma}/WMTSCapabilities.xml?{query}"
    step = next(name for name in wmts_layers(capabilities) if "_WebMercatorQuad_" in name)
    cpec = publication.collection_ids["cpec-deformation"]
    layers = [
        layer("cog", f"/vsicurl/{live}/files/{hma}/{cog.parent.name}/velocity.tif"),
        layer("points", f"/vsicurl/{live}/files/{cpec}/{PS_ITEM}/points.fgb", "ogr"),
        layer("wmts", wmts_source(capabilities, step), "wms"),
    ]
    headers = "\n".join(f"{name}: {value}" for name, value in BROWSER_HEADERS.items())
    results = run_qgis(layers, tmp_path_factory.mktemp("qgis-signed-in"), {"GDAL_HTTP_HEADERS": headers})
    restricted = results["layers"]
    assert restricted["cog"]["valid"], restricted["cog"].get("error")
    assert restricted["cog"]["stats"]["count"] == band_statistics(cog)["count"]
    assert restricted["points"]["valid"] and restricted["points"]["feature_count"] > 0
    assert restricted["wmts"]["valid"] and restricted["wmts"]["render_errors"] == []
    assert restricted["wmts"]["painted"] > 0.001, "the signature reaches the tile URLs"
    assert {urlsplit(url).hostname for url in results["requests"]} == {"127.0.0.1"}
