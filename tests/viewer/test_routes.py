"""The viewer's routes: the page and its policy, its configuration, its static modules (no browser)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.viewer import MAPLIBRE_DIR, content_security_policy, create_viewer_router, viewer_config
from tests.viewer.conftest import require_maplibre


def client(**options: object) -> TestClient:
    app = FastAPI()
    app.include_router(create_viewer_router(**options))  # type: ignore[arg-type]
    return TestClient(app)


def page_config(text: str) -> dict[str, object]:
    match = re.search(r'<meta name="ncdc-viewer-config" content="([^"]*)">', text)
    assert match, "the page carries its configuration"
    config: dict[str, object] = json.loads(html.unescape(match.group(1)))
    return config


def test_page_is_served_with_a_same_origin_policy() -> None:
    require_maplibre()
    response = client().get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert page_config(response.text) == {"basemap": None, "stac": "stac/", "raster": "raster/"}
    assert 'src="static/viewer/js/main.js"' in response.text
    assert client().head("/").status_code == 200


def test_page_says_how_to_install_maplibre_when_it_is_missing(tmp_path: Path) -> None:
    response = client(maplibre_dir=tmp_path).get("/")
    assert response.status_code == 503
    assert "npm ci" in response.text
    assert client(maplibre_dir=tmp_path).get("/static/vendor/maplibre-gl/maplibre-gl.mjs").status_code == 404


def test_static_modules_and_maplibre() -> None:
    require_maplibre()
    app = client()
    module = app.get("/static/viewer/js/main.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    assert module.headers["cache-control"] == "no-cache"
    assert "etag" in module.headers
    assert app.get("/static/viewer/viewer.css").headers["content-type"].startswith("text/css")
    for name in ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css"):
        assert app.get(f"/static/vendor/maplibre-gl/{name}").status_code == 200, name
    assert app.get("/static/vendor/maplibre-gl/maplibre-gl.mjs").headers["content-type"].startswith("text/javascript")
    assert (MAPLIBRE_DIR / "maplibre-gl.d.ts").is_file()
    assert app.get("/static/vendor/maplibre-gl/maplibre-gl.d.ts").status_code == 404, "only the three files"


@pytest.mark.parametrize(
    "path",
    [
        "/static/viewer/index.html",
        "/static/viewer/../app.py",
        "/static/viewer/%2e%2e/app.py",
        "/static/viewer/..%2fapp.py",
        "/static/viewer/js/../../app.py",
        "/static/viewer/missing.js",
        "/static/vendor/maplibre-gl/..%2f..%2fpackage.json",
    ],
)
def test_nothing_else_is_served(path: str) -> None:
    assert client().get(path).status_code == 404


def test_basemap_configuration_and_policy() -> None:
    raster = viewer_config("https://tiles.example.org/{z}/{x}/{y}.png", "© Example")
    assert raster.basemap is not None and raster.basemap.kind == "raster"
    assert raster.basemap.attribution == "© Example"
    policy = content_security_policy(raster)
    assert "img-src 'self' data: blob: https://tiles.example.org;" in policy
    assert "connect-src 'self' https://tiles.example.org;" in policy
    assert "script-src 'self';" in policy

    style = viewer_config("https://maps.example.org/styles/basic/style.json")
    assert style.basemap is not None and style.basemap.kind == "style"

    same_origin = viewer_config("/basemap/{z}/{x}/{y}.png")
    assert same_origin.basemap is not None and same_origin.basemap.kind == "raster"
    assert content_security_policy(same_origin) == content_security_policy(viewer_config(None))

    for bad in ("javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "https://"):
        with pytest.raises(ValueError, match="basemap URL"):
            viewer_config(bad)


def test_basemap_from_settings() -> None:
    require_maplibre()

    class WithBasemap(Settings):
        basemap_url: str | None = None

    settings = WithBasemap(basemap_url="https://tiles.example.org/{z}/{x}/{y}.png")
    app = FastAPI()
    app.include_router(create_viewer_router(settings))
    test = TestClient(app)
    config = test.get("/viewer/config.json").json()
    assert config["basemap"] == {
        "kind": "raster",
        "url": "https://tiles.example.org/{z}/{x}/{y}.png",
        "attribution": None,
    }
    page = test.get("/")
    assert page_config(page.text)["basemap"] == config["basemap"]
    assert "https://tiles.example.org" in page.headers["content-security-policy"]


def test_no_basemap_by_default() -> None:
    assert client(settings=Settings()).get("/viewer/config.json").json()["basemap"] is None
