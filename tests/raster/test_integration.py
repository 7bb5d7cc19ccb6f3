"""What services/app.py relies on: a shared DuckDB store, route guards, and signed-URL parameters kept in links."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from fastapi import Depends, HTTPException, Request
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.api.store import DuckDBStore
from services.raster import create_raster_app

WMTS = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
SIGNED = {"exp": "4102444800", "sig": "abc123", "sub": "someone"}


def test_shared_store_and_guard(root: Path, ids: dict[str, str]) -> None:
    seen: list[str] = []

    def guard(request: Request) -> None:
        collection_id = request.path_params["collection_id"]  # every guarded route has one
        seen.append(collection_id)
        if collection_id == ids["cpec"]:
            raise HTTPException(401, "sign in")

    store = DuckDBStore.open(root)
    try:
        app = create_raster_app(Settings(root=root), store=store, collection_dependencies=[Depends(guard)])
        with TestClient(app) as client:
            cpec = f"/collections/{ids['cpec']}/items/ps-track-107-descending"
            assert client.get(f"{cpec}/vector/tilejson.json").status_code == 401
            assert client.get(f"{cpec}/info").status_code == 401
            assert (
                client.get(f"/collections/{ids['cpec']}/timeseries", params={"lon": 75, "lat": 38}).status_code == 401
            )
            assert client.get(f"/collections/{ids['gangrigab']}/timesteps").status_code == 200
            assert client.get(f"/collections/{ids['gangrigab']}/legend").status_code == 200
            assert client.get("/tileMatrixSets").status_code == 200
            assert client.get("/colorMaps/viridis").status_code == 200
        assert store.connected  # a shared store is the lender's to close
    finally:
        store.close()
    assert set(seen) == {ids["cpec"], ids["gangrigab"]}


def test_mounted_in_the_service(root: Path, ids: dict[str, str]) -> None:
    """services/app.py's wiring: /raster shares the STAC API's store, is guarded by access control, keeps signatures."""
    from services.access import require_collection_access
    from services.access.signing import SIGNED_PARAMETERS
    from services.api.urls import MountedApp
    from services.app import create_app

    service = create_app(Settings(root=root))
    raster = create_raster_app(
        Settings(root=root),
        store=service.state.stac.state.store,
        collection_dependencies=[Depends(require_collection_access)],
        forward_parameters=SIGNED_PARAMETERS,
    )
    service.mount("/raster", MountedApp(raster), name="raster")
    with TestClient(service) as client:
        open_tilejson = client.get(f"/raster/collections/{ids['gangrigab']}/WebMercatorQuad/tilejson.json")
        assert open_tilejson.status_code == 200
        assert open_tilejson.json()["tiles"][0].startswith(f"http://testserver/raster/collections/{ids['gangrigab']}/")
        cpec = f"/raster/collections/{ids['cpec']}/items/ps-track-107-descending/vector/tilejson.json"
        denied = client.get(cpec)
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
        signature = service.state.access.sign_collection(ids["cpec"], None)
        signed = client.get(cpec, params=signature)
        assert signed.status_code == 200
        tile_url = signed.json()["tiles"][0].replace("http://testserver", "").replace("{z}/{x}/{y}", "8/181/98")
        assert f"sig={signature['sig']}" in tile_url
        assert client.get(tile_url).status_code == 200
        assert client.get("/raster/tileMatrixSets").status_code == 200


def test_signed_parameters_are_kept_in_links(root: Path, ids: dict[str, str]) -> None:
    app = create_raster_app(Settings(root=root), forward_parameters=frozenset(SIGNED))
    with TestClient(app) as client:
        _check_signed_links(client, ids["gangrigab"])
    with TestClient(create_raster_app(Settings(root=root))) as client:  # nothing forwarded by default
        templates = client.get(f"/collections/{ids['gangrigab']}/timesteps", params=SIGNED).json()["timesteps"]
        assert not any("sig=" in step["tilejson"] for step in templates)


def _check_signed_links(client: TestClient, cid: str) -> None:
    document = ET.fromstring(client.get(f"/collections/{cid}/WMTSCapabilities.xml", params=SIGNED).text)
    templates = [e.attrib["template"] for e in document.findall("w:Contents/w:Layer/w:ResourceURL", WMTS)]
    assert templates and all("sig=abc123" in t and "exp=4102444800" in t for t in templates)
    steps = client.get(f"/collections/{cid}/timesteps", params=SIGNED).json()["timesteps"]
    assert all("sig=abc123" in step["tilejson"] for step in steps)
    item = f"/collections/{cid}/items/2023-07"
    tilejson = client.get(f"{item}/WebMercatorQuad/tilejson.json", params=SIGNED).json()
    assert "sig=abc123" in tilejson["tiles"][0]
    document = ET.fromstring(client.get(f"{item}/WMTSCapabilities.xml", params=SIGNED).text)
    templates = [e.attrib["template"] for e in document.findall("w:Contents/w:Layer/w:ResourceURL", WMTS)]
    assert templates and all("sig=abc123" in t for t in templates)
    links = client.get(f"{item}/renders", params=SIGNED).json()["renders"]["velocity"]["links"]
    assert all("sig=abc123" in link["href"] for link in links)
    unsigned = client.get(f"{item}/renders").json()["renders"]["velocity"]["links"]
    assert not any("sig=" in link["href"] for link in unsigned)
